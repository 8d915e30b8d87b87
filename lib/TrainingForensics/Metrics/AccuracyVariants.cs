using Microsoft.Data.Analysis;
using TorchSharp;
using static TorchSharp.torch;
using TrainingForensics.Native;

namespace TrainingForensics.Metrics;

/// <summary>The accuracy metrics a shape-guessing framework chooses between.</summary>
public enum AccuracyKind
{
    /// <summary>Element-wise equality of labels and predictions ("Accuracy"): one value per element.</summary>
    Elementwise,
    /// <summary>Labels vs predictions thresholded at 0.5, averaged over the last axis: one value per row.</summary>
    Binary,
    /// <summary>argmax(labels) vs argmax(predictions) over the last axis: one value per row.</summary>
    Categorical,
    /// <summary>Class indices vs argmax(predictions) over the last axis: one value per label.</summary>
    SparseCategorical,
}

/// <summary>
/// A streaming accuracy metric with the semantics of the common framework metrics (Keras-style): each
/// <see cref="Update"/> turns (labels, predictions) into a tensor of per-item values; <see cref="Total"/> adds their
/// sum and <see cref="Count"/> their number, and the result is Total / Count. What counts as one item is the
/// point: for the categorical metric it is a row of the last axis — so a plain vector of class indices is ONE item.
/// Arguments are in the frameworks' order: labels (y_true) first, predictions (y_pred) second.
/// </summary>
public abstract class AccuracyMetric
{
    public abstract AccuracyKind Kind { get; }

    /// <summary>Sum of the per-item values so far.</summary>
    public double Total { get; private set; }

    /// <summary>Number of items so far (what the result is averaged over).</summary>
    public long Count { get; private set; }

    /// <summary>Total / Count (NaN before the first update).</summary>
    public double Result => Count > 0 ? Total / Count : double.NaN;

    /// <summary>Adds one batch; returns the values it contributed (sum, count).</summary>
    public (double Sum, long Count) Update(Tensor yTrue, Tensor yPred)
    {
        if (yTrue is null || yPred is null) throw new ArgumentNullException(yTrue is null ? nameof(yTrue) : nameof(yPred));
        using var scope = NewDisposeScope();
        var values = Values(yTrue, yPred);
        double sum = values.to_type(ScalarType.Float64).sum().item<double>();
        long n = values.numel();
        Total += sum;
        Count += n;
        return (sum, n);
    }

    /// <summary>Forgets all updates.</summary>
    public void Reset() { Total = 0; Count = 0; }

    /// <summary>One metric value per item (1 = correct, 0 = wrong; binary rows may be fractions).</summary>
    protected abstract Tensor Values(Tensor yTrue, Tensor yPred);

    public override string ToString() => $"{Kind}: {Result:F4} (total {Total:G6} over count {Count})";

    internal static string Shape(Tensor t) => $"[{string.Join(",", t.shape)}]";

    /// <summary>
    /// Equalises ranks that differ by one the way frameworks do: a trailing axis of size 1 on the higher-rank
    /// tensor is squeezed away. Returns the (possibly squeezed) pair.
    /// </summary>
    internal static (Tensor, Tensor) SqueezeToSameRank(Tensor yTrue, Tensor yPred)
    {
        if (yPred.dim() == yTrue.dim() + 1 && yPred.shape[^1] == 1) return (yTrue, yPred.squeeze(-1));
        if (yTrue.dim() == yPred.dim() + 1 && yTrue.shape[^1] == 1) return (yTrue.squeeze(-1), yPred);
        return (yTrue, yPred);
    }

    internal static void RequireSameShape(Tensor yTrue, Tensor yPred, string metric)
    {
        if (!yTrue.shape.SequenceEqual(yPred.shape))
            throw new MetricInputException($"{metric} needs labels and predictions of the same shape, got labels {Shape(yTrue)} and predictions {Shape(yPred)}");
        if (yTrue.dim() == 0) throw new MetricInputException($"{metric} needs at least one axis, got scalars");
    }
}

/// <summary>Element-wise equality ("Accuracy"): count = number of elements. y=[1,2,3], ŷ=[1,2,2] → 2/3 with count 3.</summary>
public sealed class ElementwiseAccuracy : AccuracyMetric
{
    public override AccuracyKind Kind => AccuracyKind.Elementwise;

    protected override Tensor Values(Tensor yTrue, Tensor yPred)
    {
        var (t, p) = SqueezeToSameRank(yTrue, yPred);
        RequireSameShape(t, p, "element-wise accuracy");
        return t.to_type(ScalarType.Float64).eq(p.to_type(ScalarType.Float64));
    }
}

/// <summary>
/// Binary accuracy: predictions above <see cref="Threshold"/> count as 1, compared with the labels and averaged
/// over the last axis; count = number of rows (a rank-1 batch is a single row).
/// </summary>
public sealed class BinaryAccuracy : AccuracyMetric
{
    public BinaryAccuracy(double threshold = 0.5) => Threshold = threshold;
    public double Threshold { get; }
    public override AccuracyKind Kind => AccuracyKind.Binary;

    protected override Tensor Values(Tensor yTrue, Tensor yPred)
    {
        var (t, p) = SqueezeToSameRank(yTrue, yPred);
        RequireSameShape(t, p, "binary accuracy");
        var predicted = p.to_type(ScalarType.Float64).GreaterThan(Threshold).to_type(ScalarType.Float64);
        return t.to_type(ScalarType.Float64).eq(predicted).to_type(ScalarType.Float64).mean(new long[] { -1 });
    }
}

/// <summary>
/// Categorical accuracy: argmax of the labels vs argmax of the predictions along the last axis (ties → first
/// index); count = number of rows. Meant for one-hot labels next to scores; handed two vectors of class indices
/// it reads each vector as ONE one-hot-like row: y=[1,2,3], ŷ=[1,2,2] → argmax 2 vs 1 → 0.0 with count 1.
/// </summary>
public sealed class CategoricalAccuracy : AccuracyMetric
{
    public override AccuracyKind Kind => AccuracyKind.Categorical;

    protected override Tensor Values(Tensor yTrue, Tensor yPred)
    {
        RequireSameShape(yTrue, yPred, "categorical accuracy");
        return yTrue.argmax(-1).eq(yPred.argmax(-1));
    }
}

/// <summary>
/// Sparse categorical accuracy: class indices vs argmax of the scores along the last axis; count = number of
/// labels. Labels may carry a trailing axis of size 1 (squeezed).
/// </summary>
public sealed class SparseCategoricalAccuracy : AccuracyMetric
{
    public override AccuracyKind Kind => AccuracyKind.SparseCategorical;

    protected override Tensor Values(Tensor yTrue, Tensor yPred)
    {
        var t = yTrue.dim() == yPred.dim() && yTrue.dim() > 0 && yTrue.shape[^1] == 1 ? yTrue.squeeze(-1) : yTrue;
        if (yPred.dim() < 1 || t.dim() != yPred.dim() - 1 || !t.shape.SequenceEqual(yPred.shape[..^1]))
            throw new MetricInputException($"sparse categorical accuracy needs class indices {Shape(yTrue)} with one axis fewer than the scores {Shape(yPred)} (e.g. [N] with [N,C])");
        return t.to_type(ScalarType.Int64).eq(yPred.argmax(-1));
    }
}

/// <summary>
/// The automatic choice behind a framework's plain "accuracy" metric, reproduced so its pitfalls can be shown:
/// binary if the predictions' last axis has size 1; sparse categorical if the labels have lower rank than the
/// predictions, or a last axis of size 1 while the predictions' is larger; categorical otherwise.
/// </summary>
public static class AccuracyVariants
{
    /// <summary>The metric the rule picks for these shapes, with the reason in words.</summary>
    public static (AccuracyKind Kind, string Reason) Select(Tensor yTrue, Tensor yPred) => SelectForShapes(yTrue.shape, yPred.shape);

    /// <summary>The rule on shapes alone.</summary>
    public static (AccuracyKind Kind, string Reason) SelectForShapes(IReadOnlyList<long> trueShape, IReadOnlyList<long> predShape)
    {
        if (predShape.Count == 0 || trueShape.Count == 0)
            throw new MetricInputException($"the accuracy rule needs labels and predictions with at least one axis, got [{string.Join(",", trueShape)}] and [{string.Join(",", predShape)}]");
        long predLast = predShape[^1], trueLast = trueShape[^1];
        string shapes = $"labels [{string.Join(",", trueShape)}], predictions [{string.Join(",", predShape)}]";
        if (predLast == 1)
            return (AccuracyKind.Binary, $"{shapes}: the predictions' last axis has size 1 → binary");
        if (trueShape.Count < predShape.Count)
            return (AccuracyKind.SparseCategorical, $"{shapes}: labels have lower rank than predictions → sparse categorical");
        if (trueLast == 1 && predLast > 1)
            return (AccuracyKind.SparseCategorical, $"{shapes}: labels' last axis is 1 while the predictions' is {predLast} → sparse categorical");
        return (AccuracyKind.Categorical, $"{shapes}: same rank, last axes {trueLast} and {predLast} → categorical");
    }

    /// <summary>A fresh metric of the given kind.</summary>
    public static AccuracyMetric Create(AccuracyKind kind) => kind switch
    {
        AccuracyKind.Elementwise => new ElementwiseAccuracy(),
        AccuracyKind.Binary => new BinaryAccuracy(),
        AccuracyKind.Categorical => new CategoricalAccuracy(),
        AccuracyKind.SparseCategorical => new SparseCategoricalAccuracy(),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown accuracy kind"),
    };

    /// <summary>The metric the automatic rule picks for these shapes.</summary>
    public static AccuracyMetric Auto(Tensor yTrue, Tensor yPred) => Create(Select(yTrue, yPred).Kind);

    /// <summary>
    /// Streams (labels, predictions) through <paramref name="metric"/> in batches of <paramref name="batchSize"/>
    /// along the first axis, as a framework's evaluation loop would; returns the metric (Result, Total, Count).
    /// </summary>
    public static AccuracyMetric Stream(AccuracyMetric metric, Tensor yTrue, Tensor yPred, int batchSize)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be positive");
        if (yTrue.dim() == 0 || yPred.dim() == 0 || yTrue.shape[0] != yPred.shape[0])
            throw new MetricInputException($"labels {AccuracyMetric.Shape(yTrue)} and predictions {AccuracyMetric.Shape(yPred)} must have the same number of examples along the first axis");
        long n = yTrue.shape[0];
        for (long start = 0; start < n; start += batchSize)
        {
            long len = Math.Min(batchSize, n - start);
            using var scope = NewDisposeScope();
            metric.Update(yTrue.narrow(0, start, len), yPred.narrow(0, start, len));
        }
        return metric;
    }

    /// <summary>
    /// What the automatic rule does with several (labels, predictions) pairs: one row per case with both shapes,
    /// the metric it picks and why, and that metric's result and count when streamed in batches of
    /// <paramref name="batchSize"/> (the message instead, when the chosen metric refuses the shapes).
    /// </summary>
    public static DataFrame AutoTable(IEnumerable<(string Case, Tensor YTrue, Tensor YPred)> cases, int batchSize)
    {
        var rows = cases.ToList();
        if (rows.Count == 0) throw new ArgumentException("no cases to show");
        var results = new List<double?>(); var counts = new List<long?>(); var kinds = new List<string>(); var reasons = new List<string>();
        foreach (var (_, t, p) in rows)
        {
            var (kind, reason) = Select(t, p);
            kinds.Add(kind.ToString()); reasons.Add(reason);
            try
            {
                var m = Stream(Create(kind), t, p, batchSize);
                results.Add(m.Result); counts.Add(m.Count);
            }
            catch (MetricInputException e)
            {
                results.Add(null); counts.Add(null); reasons[^1] += " — refused: " + e.Message;
            }
        }
        return new DataFrame(
            new StringDataFrameColumn("case", rows.Select(r => r.Case)),
            new StringDataFrameColumn("labels", rows.Select(r => $"{AccuracyMetric.Shape(r.YTrue)} {r.YTrue.dtype}")),
            new StringDataFrameColumn("predictions", rows.Select(r => $"{AccuracyMetric.Shape(r.YPred)} {r.YPred.dtype}")),
            new StringDataFrameColumn("auto-selected", kinds),
            new DoubleDataFrameColumn("result", results),
            new Int64DataFrameColumn("count", counts),
            new StringDataFrameColumn("why", reasons));
    }

    /// <summary>
    /// Every metric on the same inputs as a table: metric, whether the rule would pick it, result, total, count
    /// (a metric that refuses the shapes shows its message instead of numbers).
    /// </summary>
    public static DataFrame Compare(Tensor yTrue, Tensor yPred, int? batchSize = null)
    {
        var auto = Select(yTrue, yPred).Kind;
        var names = new List<string>(); var picked = new List<bool>(); var results = new List<double?>(); var totals = new List<double?>();
        var counts = new List<long?>(); var notes = new List<string>();
        foreach (var kind in Enum.GetValues<AccuracyKind>())
        {
            names.Add(kind.ToString()); picked.Add(kind == auto);
            try
            {
                var m = Create(kind);
                if (batchSize is { } b) Stream(m, yTrue, yPred, b); else m.Update(yTrue, yPred);
                results.Add(m.Result); totals.Add(m.Total); counts.Add(m.Count); notes.Add("");
            }
            catch (MetricInputException e)
            {
                results.Add(null); totals.Add(null); counts.Add(null); notes.Add(e.Message);
            }
        }
        return new DataFrame(
            new StringDataFrameColumn("metric", names),
            new BooleanDataFrameColumn("auto-selected", picked),
            new DoubleDataFrameColumn("result", results),
            new DoubleDataFrameColumn("total", totals),
            new Int64DataFrameColumn("count", counts),
            new StringDataFrameColumn("note", notes));
    }
}
