using System.Globalization;
using Microsoft.Data.Analysis;
using TorchSharp;
using TrainingForensics.Training;
using static TorchSharp.torch;
using TrainingForensics.Native;

namespace TrainingForensics.Diagnostics;

/// <summary>
/// A loss value set against the reference reductions of the same per-element losses: which reduction it is,
/// and its factor relative to the one that was intended.
/// </summary>
public sealed record LossScaleReading(
    double Loss,
    long Batch,
    long Outputs,
    IReadOnlyDictionary<Reduction, double> References,
    IReadOnlyList<Reduction> Matches,
    Reduction Expected)
{
    /// <summary>The reduction in use: the single match, the expected one when it is among several matches, else null.</summary>
    public Reduction? InUse => Matches.Contains(Expected) ? Expected : Matches.Count > 0 ? Matches[0] : null;

    /// <summary>loss / loss(expected reduction): 1 when the intended reduction is in use, 1/C for "mean" vs "sum/B".</summary>
    public double Factor => Loss / References[Expected];

    /// <summary>Whether the loss is the expected reduction (within the tolerance it was read with).</summary>
    public bool AsExpected => Matches.Contains(Expected);

    /// <summary>"mean", "sum/B", … or "none of the references".</summary>
    public string InUseLabel => InUse?.Label() ?? "none of the references";

    /// <summary>The references as a table: reduction, divisor, value, ratio to the observed loss, match.</summary>
    public DataFrame ToDataFrame() => new(
        new StringDataFrameColumn("reduction", References.Keys.Select(r => r.Label())),
        new StringDataFrameColumn("meaning", References.Keys.Select(r => r.Describe())),
        new DoubleDataFrameColumn("divisor", References.Keys.Select(r => r.Divisor(Batch, Outputs))),
        new DoubleDataFrameColumn("value", References.Values),
        new DoubleDataFrameColumn("observed / value", References.Values.Select(v => Loss / v)),
        new BooleanDataFrameColumn("matches", References.Keys.Select(r => Matches.Contains(r))));

    public override string ToString() =>
        $"loss {Loss.ToString("G6", CultureInfo.InvariantCulture)} on a batch of {Batch}×{Outputs}: reduction in use = {InUseLabel}" +
        (AsExpected ? $" (as intended)" : $", {Factor.ToString("G6", CultureInfo.InvariantCulture)}× the intended {Expected.Label()}");
}

/// <summary>Per-parameter comparison of the gradients of two losses on the same batch and weights.</summary>
public sealed record GradientComparison(string Parameter, double NormA, double NormB, double Ratio, double MaxRelativeDeviation);

/// <summary>
/// Reading a loss's scale: recompute the per-element losses of a batch, reduce them every reference way, and
/// see which one the observed loss equals.
/// </summary>
public static class LossScale
{
    /// <summary>Relative tolerance for "equals a reference": float32 sums of a few hundred terms agree to ~1e-6.</summary>
    public const double DefaultTolerance = 1e-4;

    /// <summary>
    /// Reads <paramref name="loss"/> against the reference reductions of <paramref name="elementwise"/>(outputs, targets)
    /// (default: squared errors against one-hot targets).
    /// </summary>
    public static LossScaleReading Read(double loss, Tensor outputs, Tensor targets, Reduction expected = Reduction.SumOverBatch,
        Func<Tensor, Tensor, Tensor>? elementwise = null, double tolerance = DefaultTolerance)
    {
        if (expected == Reduction.None) throw new ArgumentException("the expected reduction must produce a single number");
        if (!double.IsFinite(loss)) throw new ArgumentOutOfRangeException(nameof(loss), loss, "the loss must be finite to read its scale");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var per = (elementwise ?? Losses.SquaredErrors)(outputs.detach(), targets);
        if (per.dim() < 1 || per.shape[0] != outputs.shape[0])
            throw new ArgumentException($"the per-element losses [{string.Join(",", per.shape)}] must have the batch as first dimension ({outputs.shape[0]})");
        long batch = per.shape[0], outs = per.numel() / batch;
        double sum = per.to_type(ScalarType.Float64).sum().item<double>();
        var refs = Losses.References.ToDictionary(r => r, r => sum / r.Divisor(batch, outs));
        var matches = refs.Where(kv => Math.Abs(loss - kv.Value) <= tolerance * Math.Max(Math.Abs(kv.Value), 1e-30)).Select(kv => kv.Key).ToList();
        return new LossScaleReading(loss, batch, outs, refs, matches, expected);
    }

    /// <summary>Reads the reduction of <paramref name="lossFunction"/> by calling it on a batch.</summary>
    public static LossScaleReading Read(Func<Tensor, Tensor, Tensor> lossFunction, Tensor outputs, Tensor targets,
        Reduction expected = Reduction.SumOverBatch, Func<Tensor, Tensor, Tensor>? elementwise = null, double tolerance = DefaultTolerance)
    {
        double loss;
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            var l = lossFunction(outputs.detach(), targets);
            if (l.numel() != 1) throw new ArgumentException($"the loss function returned shape [{string.Join(",", l.shape)}], not a single number");
            loss = l.to_type(ScalarType.Float64).item<double>();
        }
        return Read(loss, outputs, targets, expected, elementwise, tolerance);
    }

    /// <summary>
    /// Gradients of two losses on the same batch and weights, per parameter: ‖∇A‖, ‖∇B‖, their ratio and the largest
    /// element-wise deviation from proportionality, max|∇A − ratio·∇B| / max|∇A|. Gradients already on the model are
    /// left as they were.
    /// </summary>
    public static IReadOnlyList<GradientComparison> CompareGradients(nn.Module<Tensor, Tensor> model, Tensor inputs, Tensor targets,
        Func<Tensor, Tensor, Tensor> lossA, Func<Tensor, Tensor, Tensor> lossB)
    {
        var named = model.named_parameters().Where(p => p.parameter.requires_grad).ToList();
        if (named.Count == 0) throw new ArgumentException("the model has no trainable parameters");
        using var scope = NewDisposeScope();
        var saved = named.Select(p => p.parameter.grad is { } g ? g.clone() : null).ToList();
        Tensor[] Grads(Func<Tensor, Tensor, Tensor> loss)
        {
            foreach (var (_, p) in named) p.grad = null;
            var l = loss(model.call(inputs), targets);
            if (l.numel() != 1) throw new ArgumentException($"a loss returned shape [{string.Join(",", l.shape)}], not a single number");
            l.backward();
            return named.Select(p => p.parameter.grad!.detach().clone().to_type(ScalarType.Float64)).ToArray();
        }
        var a = Grads(lossA);
        var b = Grads(lossB);
        for (int i = 0; i < named.Count; i++) named[i].parameter.grad = saved[i];
        var rows = new List<GradientComparison>();
        for (int i = 0; i < named.Count; i++)
        {
            double na = a[i].norm().item<double>(), nb = b[i].norm().item<double>();
            double ratio = nb > 0 ? na / nb : double.NaN;
            double maxA = a[i].abs().max().item<double>();
            double dev = maxA > 0 && double.IsFinite(ratio) ? (a[i] - b[i].Times(ratio)).abs().max().item<double>() / maxA : double.NaN;
            rows.Add(new GradientComparison(named[i].name, na, nb, ratio, dev));
        }
        return rows;
    }

    /// <summary><see cref="CompareGradients"/> as a table.</summary>
    public static DataFrame ToDataFrame(IEnumerable<GradientComparison> rows)
    {
        var list = rows.ToList();
        return new DataFrame(
            new StringDataFrameColumn("parameter", list.Select(r => r.Parameter)),
            new DoubleDataFrameColumn("‖∇A‖", list.Select(r => r.NormA)),
            new DoubleDataFrameColumn("‖∇B‖", list.Select(r => r.NormB)),
            new DoubleDataFrameColumn("‖∇A‖/‖∇B‖", list.Select(r => r.Ratio)),
            new DoubleDataFrameColumn("max deviation from proportional", list.Select(r => r.MaxRelativeDeviation)));
    }
}

/// <summary>
/// Fires when the training loss is not the intended reduction of its per-element losses — e.g. a framework "MSE"
/// that also averages over the C outputs, which makes loss and gradients C× smaller than the hand-written Σ/B and
/// silently divides SGD's learning rate by C. Attach to a loop, or feed it batches with <see cref="Inspect"/>.
/// </summary>
public sealed class LossScaleCheck : Check
{
    readonly Func<Tensor, Tensor, Tensor>? _elementwise;
    readonly int _every;
    readonly double _tolerance;

    public LossScaleCheck(Reduction expected = Reduction.SumOverBatch, Func<Tensor, Tensor, Tensor>? elementwise = null,
        int every = 100, double tolerance = LossScale.DefaultTolerance)
    {
        if (expected == Reduction.None) throw new ArgumentException("the expected reduction must produce a single number", nameof(expected));
        if (every < 1) throw new ArgumentOutOfRangeException(nameof(every), every, "cadence must be at least 1");
        Expected = expected; _elementwise = elementwise; _every = every; _tolerance = tolerance;
    }

    public override string Name => "loss-scale";

    /// <summary>The reduction the loss is meant to have.</summary>
    public Reduction Expected { get; }

    /// <summary>The latest reading.</summary>
    public LossScaleReading? Last { get; private set; }

    /// <summary>Reads one batch's loss; fires (once) when it is not the expected reduction.</summary>
    public LossScaleReading Inspect(double loss, Tensor outputs, Tensor targets, long step = 0)
    {
        var reading = LossScale.Read(loss, outputs, targets, Expected, _elementwise, _tolerance);
        Last = reading;
        if (!reading.AsExpected)
        {
            var evidence = new Dictionary<string, double> { ["loss"] = loss, ["factor"] = reading.Factor, ["batch"] = reading.Batch, ["outputs"] = reading.Outputs };
            foreach (var (r, v) in reading.References) evidence["ref " + r.Label()] = v;
            string f = reading.Factor.ToString("G4", CultureInfo.InvariantCulture);
            string summary = reading.InUse is { } used
                ? $"the loss is the '{used.Label()}' reduction ({used.Describe()}), {f}× the intended '{Expected.Label()}': gradients and SGD steps are {f}× as large"
                : $"the loss matches none of the reference reductions; it is {f}× the intended '{Expected.Label()}'";
            Fire(step, summary, evidence,
                $"compute the loss with the '{Expected.Label()}' reduction, or (plain SGD only) multiply the learning rate by {(1 / reading.Factor).ToString("G4", CultureInfo.InvariantCulture)}",
                "02-loss-scale-and-metrics");
        }
        return reading;
    }

    /// <summary>Inspects every <c>every</c>-th step of <paramref name="loop"/> (after backward, on that step's outputs and targets).</summary>
    public LossScaleCheck AttachTo(TrainingLoop loop)
    {
        loop.AfterBackward += Observe;
        return this;
    }

    public void DetachFrom(TrainingLoop loop) => loop.AfterBackward -= Observe;

    void Observe(StepContext ctx)
    {
        if (ctx.Step % _every != 0) return;
        double loss = ctx.Loss.to_type(ScalarType.Float64).item<double>();
        // a NaN/∞ loss has no scale to read; the loop itself stops on it and names the cause
        if (double.IsFinite(loss)) Inspect(loss, ctx.Outputs, ctx.Targets, ctx.Step);
    }

    public override void Reset()
    {
        base.Reset();
        Last = null;
    }
}

/// <summary>
/// The reporting pitfall: a validation loss computed with a different reduction than the training loss. Both loss
/// functions are applied to the same outputs and targets; when they disagree by more than the tolerance, the check
/// fires and names both reductions and the factor (validation / training). A validation loss 10× below the training
/// loss then reads as what it is — a unit mismatch, not generalisation.
/// </summary>
public sealed class LossScaleReportingCheck : Check
{
    readonly double _tolerance;
    readonly Func<Tensor, Tensor, Tensor>? _elementwise;

    public LossScaleReportingCheck(double tolerance = LossScale.DefaultTolerance, Func<Tensor, Tensor, Tensor>? elementwise = null)
    {
        if (!(tolerance > 0)) throw new ArgumentOutOfRangeException(nameof(tolerance), tolerance, "tolerance must be positive");
        _tolerance = tolerance; _elementwise = elementwise;
    }

    public override string Name => "validation-loss-reduction";

    /// <summary>Validation loss / training loss on the same batch at the last inspection (1 when consistent).</summary>
    public double Factor { get; private set; } = double.NaN;

    /// <summary>The reductions read for the training and validation loss at the last inspection.</summary>
    public (LossScaleReading Training, LossScaleReading Validation)? Readings { get; private set; }

    /// <summary>Applies both loss functions to one batch; fires when they differ. Returns validation / training.</summary>
    public double Inspect(Func<Tensor, Tensor, Tensor> trainingLoss, Func<Tensor, Tensor, Tensor> validationLoss, Tensor outputs, Tensor targets, long step = 0)
    {
        var train = LossScale.Read(trainingLoss, outputs, targets, Reduction.SumOverBatch, _elementwise, _tolerance);
        var val = LossScale.Read(validationLoss, outputs, targets, Reduction.SumOverBatch, _elementwise, _tolerance);
        Readings = (train, val);
        Factor = val.Loss / train.Loss;
        if (!double.IsFinite(Factor)) throw new ArgumentException($"cannot compare losses {train.Loss} and {val.Loss}: the training loss must be non-zero and both finite");
        if (Math.Abs(Factor - 1) > _tolerance)
        {
            string f = Factor.ToString("G4", CultureInfo.InvariantCulture);
            Fire(step,
                $"the validation loss is the '{val.InUseLabel}' reduction but the training loss is '{train.InUseLabel}': on the same batch the validation loss is {f}× the training loss, so the two curves are not comparable",
                new Dictionary<string, double> { ["factor"] = Factor, ["training loss"] = train.Loss, ["validation loss"] = val.Loss, ["batch"] = train.Batch, ["outputs"] = train.Outputs },
                "compute the validation loss with the training loss function (same reduction), or report both per example",
                "02-loss-scale-and-metrics");
        }
        return Factor;
    }

    public override void Reset()
    {
        base.Reset();
        Factor = double.NaN;
        Readings = null;
    }
}
