using Microsoft.Data.Analysis;
using TorchSharp;
using static TorchSharp.torch;
using TrainingForensics.Native;

namespace TrainingForensics.Metrics;

/// <summary>
/// Counts of (true class, predicted class) pairs. Rows are true classes, columns predicted classes. For two classes
/// with class 1 as the positive class: TN = [0,0], FP = [0,1], FN = [1,0], TP = [1,1].
/// </summary>
public sealed class ConfusionMatrix
{
    readonly long[,] _counts;

    public ConfusionMatrix(long[,] counts, IReadOnlyList<string>? classNames = null)
    {
        int c = counts.GetLength(0);
        if (c < 2 || counts.GetLength(1) != c) throw new ArgumentException($"a confusion matrix is C×C with C ≥ 2, got {counts.GetLength(0)}×{counts.GetLength(1)}");
        foreach (var v in counts) if (v < 0) throw new ArgumentException("counts cannot be negative");
        if (classNames != null && classNames.Count != c) throw new ArgumentException($"{classNames.Count} class names for {c} classes");
        _counts = (long[,])counts.Clone();
        ClassNames = classNames ?? Enumerable.Range(0, c).Select(i => i.ToString()).ToArray();
    }

    /// <summary>
    /// From scores N×C (argmax is the prediction), a single column N×1 of logits (&gt; 0 predicts class 1), or
    /// integer predicted classes N; labels are class indices N.
    /// </summary>
    public static ConfusionMatrix Compute(Tensor predictions, Tensor labels, int classes, IReadOnlyList<string>? classNames = null)
    {
        if (classes < 2) throw new ArgumentOutOfRangeException(nameof(classes), classes, "need at least two classes");
        using var scope = NewDisposeScope();
        if (labels.dim() != 1 || labels.is_floating_point())
            throw new MetricInputException($"labels must be integer class indices [N], got {Metrics.Accuracy.Describe(labels)}");
        Tensor predicted;
        if (predictions.dim() == 2 && predictions.shape[1] == classes && predictions.is_floating_point()) predicted = predictions.argmax(1);
        else if (predictions.dim() == 2 && predictions.shape[1] == 1 && classes == 2 && predictions.is_floating_point()) predicted = predictions.squeeze(1).GreaterThan(0).to_type(ScalarType.Int64);
        else if (predictions.dim() == 1 && !predictions.is_floating_point()) predicted = predictions.to_type(ScalarType.Int64);
        else throw new MetricInputException($"predictions {Metrics.Accuracy.Describe(predictions)} are neither scores [N,{classes}], a logit column [N,1] (two classes) nor integer classes [N]");
        if (predicted.shape[0] != labels.shape[0])
            throw new MetricInputException($"{predicted.shape[0]} predictions for {labels.shape[0]} labels");
        var p = predicted.cpu().data<long>().ToArray();
        var t = labels.to_type(ScalarType.Int64).cpu().data<long>().ToArray();
        var counts = new long[classes, classes];
        for (int i = 0; i < p.Length; i++)
        {
            if (t[i] < 0 || t[i] >= classes) throw new MetricInputException($"label {t[i]} at index {i} is not a class 0–{classes - 1}");
            if (p[i] < 0 || p[i] >= classes) throw new MetricInputException($"predicted class {p[i]} at index {i} is not a class 0–{classes - 1}");
            counts[t[i], p[i]]++;
        }
        return new ConfusionMatrix(counts, classNames);
    }

    public int Classes => _counts.GetLength(0);
    public IReadOnlyList<string> ClassNames { get; }
    /// <summary>Count of examples of true class <paramref name="truth"/> predicted as <paramref name="predicted"/>.</summary>
    public long this[int truth, int predicted] => _counts[truth, predicted];
    public long Total { get { long s = 0; foreach (var v in _counts) s += v; return s; } }

    public long TN => Binary(0, 0);
    public long FP => Binary(0, 1);
    public long FN => Binary(1, 0);
    public long TP => Binary(1, 1);

    /// <summary>Fraction on the diagonal.</summary>
    public double Accuracy { get { long d = 0; for (int i = 0; i < Classes; i++) d += _counts[i, i]; return (double)d / Total; } }

    /// <summary>How many examples were predicted as each class.</summary>
    public long[] PredictedCounts => Enumerable.Range(0, Classes).Select(c => Enumerable.Range(0, Classes).Sum(t => _counts[t, c])).ToArray();

    /// <summary>How many examples each true class has.</summary>
    public long[] TrueCounts => Enumerable.Range(0, Classes).Select(t => Enumerable.Range(0, Classes).Sum(c => _counts[t, c])).ToArray();

    /// <summary>Whether every example was predicted as the same class (the collapsed model's signature).</summary>
    public bool SingleClassPredicted => PredictedCounts.Count(n => n > 0) == 1;

    public double[,] ToArray()
    {
        var a = new double[Classes, Classes];
        for (int i = 0; i < Classes; i++) for (int j = 0; j < Classes; j++) a[i, j] = _counts[i, j];
        return a;
    }

    /// <summary>Rows = true class, one column per predicted class.</summary>
    public DataFrame ToDataFrame()
    {
        var cols = new List<DataFrameColumn> { new StringDataFrameColumn("true \\ predicted", ClassNames) };
        for (int c = 0; c < Classes; c++)
            cols.Add(new Int64DataFrameColumn(ClassNames[c], Enumerable.Range(0, Classes).Select(t => _counts[t, c])));
        return new DataFrame(cols);
    }

    public override string ToString() => Classes == 2
        ? $"TN {TN}, FP {FP}, FN {FN}, TP {TP}"
        : string.Join("; ", Enumerable.Range(0, Classes).Select(t => $"{ClassNames[t]}: [{string.Join(", ", Enumerable.Range(0, Classes).Select(c => _counts[t, c]))}]"));

    long Binary(int t, int p)
    {
        if (Classes != 2) throw new InvalidOperationException($"TN/FP/FN/TP are defined for two classes; this matrix has {Classes}");
        return _counts[t, p];
    }
}
