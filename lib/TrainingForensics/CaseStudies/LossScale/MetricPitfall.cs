using TorchSharp;
using static TorchSharp.torch;

namespace TrainingForensics.CaseStudies.LossScale;

/// <summary>
/// What the auto-selected accuracies compute when handed class indices instead of what they expect, derived by
/// counting on the host instead of through the metrics — so the notebook can check the metrics against the rule
/// it explains.
/// </summary>
public static class MetricPitfall
{
    /// <summary>
    /// Categorical accuracy on (index labels, argmax'd predictions) in batches of <paramref name="batchSize"/>, derived
    /// on the host: each batch is ONE item, right when the position of the first largest predicted class equals the
    /// position of the first largest label (argmax of each vector, ties to the first). Also: the batches whose first 9
    /// (the largest class, <paramref name="classes"/> − 1) is predicted 9 with no earlier image predicted 9 — the
    /// usual way a batch counts as right — and the recall of that class over the whole set.
    /// </summary>
    public static (long RightBatches, long Batches, long FirstLargestFound, double LargestClassRecall) FirstLargestRule(
        Tensor labels, Tensor predicted, int batchSize, int classes)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be positive");
        var (y, p) = Host(labels, predicted);
        long top = classes - 1, right = 0, batches = 0, found = 0, topTotal = 0, topFound = 0;
        for (int i = 0; i < y.Length; i++)
            if (y[i] == top) { topTotal++; if (p[i] == top) topFound++; }
        for (int start = 0; start < y.Length; start += batchSize, batches++)
        {
            int end = Math.Min(start + batchSize, y.Length);
            int FirstLargest(long[] v) { int at = start; for (int i = start + 1; i < end; i++) if (v[i] > v[at]) at = i; return at; }
            if (FirstLargest(y) == FirstLargest(p)) right++;
            int firstTop = Array.IndexOf(y, top, start, end - start);
            if (firstTop >= 0 && p[firstTop] == top && Array.IndexOf(p, top, start, firstTop - start) < 0) found++;
        }
        return (right, batches, found, topTotal > 0 ? (double)topFound / topTotal : double.NaN);
    }

    /// <summary>
    /// Binary accuracy on (label column, argmax'd column), derived: predictions above 0.5 count as 1, so a predicted
    /// class ≥ 1 becomes 1 and class 0 stays 0; compared with the label as a number, only a label 0 predicted 0 and a
    /// label 1 predicted as any class ≥ 1 are equal. Returns that fraction, and the share of labels that are 0 or 1
    /// (the most the reading can be).
    /// </summary>
    public static (double Derived, double ShareOfZerosAndOnes) BinaryOnClassIndices(Tensor labels, Tensor predicted)
    {
        var (y, p) = Host(labels, predicted);
        long equal = 0, zerosAndOnes = 0;
        for (int i = 0; i < y.Length; i++)
        {
            if (y[i] is 0 or 1) zerosAndOnes++;
            if ((y[i] == 0 && p[i] == 0) || (y[i] == 1 && p[i] >= 1)) equal++;
        }
        return ((double)equal / y.Length, (double)zerosAndOnes / y.Length);
    }

    // both vectors read back once, as int64
    static (long[] Labels, long[] Predicted) Host(Tensor labels, Tensor predicted)
    {
        if (labels.dim() != 1 || !labels.shape.SequenceEqual(predicted.shape))
            throw new ArgumentException($"labels [{string.Join(",", labels.shape)}] and predicted classes [{string.Join(",", predicted.shape)}] must be two vectors of one length");
        return (labels.cpu().to_type(ScalarType.Int64).data<long>().ToArray(), predicted.cpu().to_type(ScalarType.Int64).data<long>().ToArray());
    }
}
