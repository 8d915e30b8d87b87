using TorchSharp;
using TorchSharp.Modules;
using TrainingForensics.Probes;
using static TorchSharp.torch;
using TrainingForensics.Native;

namespace TrainingForensics.Diagnostics.Doctor;

/// <summary>The numbers of one measurement, on the host.</summary>
internal sealed record Measurement
{
    /// <summary>Names of the weights that had a gradient, in parameter order.</summary>
    public required IReadOnlyList<string> GradientNames { get; init; }
    /// <summary>‖∇W‖₂ of those weights.</summary>
    public required double[] GradientNorms { get; init; }
    /// <summary>Σ‖W‖² over every watched weight (its measured entries): NaN or ∞ when a weight is.</summary>
    public required double WeightSquaredNorm { get; init; }
    /// <summary>Median ‖ΔW‖/‖W‖ of the previous step's update (null: not measured, or no weight had a norm).</summary>
    public double? MedianUpdateRatio { get; init; }
    /// <summary>Whether the loss was given floating-point outputs (else the output figures are NaN).</summary>
    public bool HasOutputs { get; init; }
    public double OutputMin { get; init; } = double.NaN;
    public double OutputMax { get; init; } = double.NaN;
    /// <summary>Fraction of the outputs within ε of 0 or 1 (0 when not counted: the outputs were not probabilities).</summary>
    public double SaturatedFraction { get; init; }
    /// <summary>Dead ReLU units counted by the hooks (null when none were counted).</summary>
    public long? DeadUnits { get; init; }
    /// <summary>The zero_grad check's norms (null when it had nothing to check this step).</summary>
    public BiasGradientNorms? ZeroGrad { get; init; }
}

/// <summary>
/// The doctor's measurement on a measured step: every number in one float64 vector and one transfer to the host —
/// [‖∇W‖…, ‖W‖…, ‖ΔW‖…, output min, output max | saturated outputs, dead ReLU units | zero_grad check vectors] (values
/// in the weights' precision and counts are stacked apart: two conversions instead of one per value). Each measurement
/// ends with a snapshot of the weights, so the next step can measure one update.
/// </summary>
internal sealed class MeasurementBatch : IDisposable
{
    /// <summary>Weights up to this many entries are snapshot whole for the update ratio; larger ones are sampled.</summary>
    internal const long UpdateSampleLimit = 1 << 16;

    readonly List<(string Name, Parameter Parameter)> _weights;
    readonly double _saturationEpsilon;
    WeightSnapshot? _snapshot;     // made at the first measurement (views into the weights, and buffers of their size)
    bool? _outputsInUnitInterval;  // at the last measurement (null: not yet measured)

    /// <param name="weights">The watched weights (see <see cref="WatchedWeights"/>).</param>
    /// <param name="saturationEpsilon">How close to 0 or 1 an output counts as saturated.</param>
    public MeasurementBatch(List<(string Name, Parameter Parameter)> weights, double saturationEpsilon)
    {
        _weights = weights;
        _saturationEpsilon = saturationEpsilon;
    }

    /// <summary>The weights the doctor watches: every trainable parameter with 2 or more dimensions, in parameter order.</summary>
    public static List<(string Name, Parameter Parameter)> WatchedWeights(nn.Module<Tensor, Tensor> model)
    {
        var weights = model.named_parameters().Where(p => p.parameter.requires_grad && p.parameter.dim() >= 2).Select(p => (p.name, p.parameter)).ToList();
        if (weights.Count == 0) throw new ArgumentException("the model has no trainable weight matrices (parameters with 2 or more dimensions) to watch");
        return weights;
    }

    /// <summary>Whether a snapshot from the step before <paramref name="step"/> is held: its update can be measured.</summary>
    public bool UpdateDue(long step) => _snapshot?.Step == step - 1;

    /// <summary>Drops the snapshot (a step without measurement: the next update is not measured).</summary>
    public void ForgetSnapshot() => _snapshot?.Forget();

    /// <summary>The median update ratio of the previous step's update alone (a step without measurement), and the snapshot dropped.</summary>
    public double? UpdateRatioAlone()
    {
        _snapshot!.Capture();
        var distances = ParameterMeasurement.Read(_snapshot.CapturedDistances().ToList());
        var median = MedianUpdateRatio(distances);
        _snapshot.Forget();
        return median;
    }

    /// <summary>
    /// Measures the gradients, weights, the update since the last step (when <paramref name="withUpdate"/>), the
    /// outputs the loss was given, the dead units and the zero_grad check, then takes a snapshot of the weights.
    /// </summary>
    public Measurement Read(long step, Tensor outputs, Tensor? deadUnits, ZeroGradWatch? zeroGrad, bool withUpdate)
    {
        var snapshot = _snapshot ??= new WeightSnapshot(_weights.Select(w => w.Parameter), UpdateSampleLimit);
        var (names, values) = ParameterMeasurement.GradientNorms(_weights);
        int nGrads = values.Count;
        // ‖W‖ on the entries the update ratio samples (all of a small weight): the ratio's denominator at the next
        // step, and the NaN/∞ check (a non-finite weight anywhere reaches the loss at the next step)
        snapshot.Capture(); // one pass over each weight's measured entries; norms, distances and the next snapshot use the copy
        values.AddRange(snapshot.CapturedNorms());
        int distancesAt = values.Count;
        if (withUpdate) values.AddRange(snapshot.CapturedDistances());
        bool hasOutputs = outputs.numel() > 0 && outputs.is_floating_point();
        // saturation is counted while the outputs were inside [0, 1] at the last measurement (a property of the model's
        // head, so the one-measurement lag costs nothing; logits skip the count)
        bool countSaturated = hasOutputs && _outputsInUnitInterval != false;
        var counts = new List<Tensor>(2);
        if (hasOutputs) AddOutputFigures(outputs.detach(), countSaturated, values, counts);
        if (deadUnits is not null) counts.Add(deadUnits);
        var zeroGradVectors = zeroGrad?.Vectors(step);
        var all = Transfer(values, counts, zeroGradVectors);

        int at = values.Count, n = _weights.Count;
        double? median = withUpdate ? MedianUpdateRatio(all.AsSpan(distancesAt, n)) : null;
        BiasGradientNorms? zeroGradNorms = zeroGradVectors is null ? null : zeroGrad!.Norms(all.AsSpan(values.Count + counts.Count));
        double weightSq = 0;
        for (int i = nGrads; i < nGrads + n; i++) weightSq += all[i] * all[i];
        double min = hasOutputs ? all[at - 2] : double.NaN, max = hasOutputs ? all[at - 1] : double.NaN;
        if (hasOutputs) _outputsInUnitInterval = min >= 0 && max <= 1;
        double saturated = countSaturated ? all[at++] / outputs.numel() : 0;
        long? dead = deadUnits is null ? null : (long)all[at++];
        snapshot.TakeCaptured(step, all.AsSpan(nGrads, n));
        return new Measurement
        {
            GradientNames = names, GradientNorms = all[..nGrads], WeightSquaredNorm = weightSq, MedianUpdateRatio = median,
            HasOutputs = hasOutputs, OutputMin = min, OutputMax = max, SaturatedFraction = saturated, DeadUnits = dead, ZeroGrad = zeroGradNorms,
        };
    }

    /// <summary>The outputs' min and max (values), and the count of those within ε of 0 or 1 (counts) when <paramref name="countSaturated"/>.</summary>
    void AddOutputFigures(Tensor o, bool countSaturated, List<Tensor> values, List<Tensor> counts)
    {
        var (min, max) = o.aminmax();
        values.Add(min); values.Add(max);
        if (!countSaturated) return;
        // |o − ½| ∈ [½ − ε, ½] ⇔ o ∈ [0, ε] ∪ [1 − ε, 1]
        var d = o.Minus(0.5).abs_();
        counts.Add(d.AtLeast(0.5 - _saturationEpsilon).logical_and_(d.AtMost(0.5)).sum());
    }

    /// <summary>[values | counts | zero_grad vectors] on the host, in one transfer.</summary>
    static double[] Transfer(List<Tensor> values, List<Tensor> counts, Tensor? zeroGradVectors)
    {
        var groups = new List<Tensor> { ParameterMeasurement.Stack(values) };
        if (counts.Count > 0) groups.Add(stack(counts.ToArray()).to_type(ScalarType.Float64));
        if (zeroGradVectors is not null) groups.Add(zeroGradVectors);
        return ParameterMeasurement.ToHost(groups.Count == 1 ? groups[0] : cat(groups.ToArray()));
    }

    /// <summary>‖ΔW‖/‖W_before‖ per weight with a positive ‖W_before‖, median over the weights (null: none had one).</summary>
    double? MedianUpdateRatio(ReadOnlySpan<double> distances)
    {
        var ratios = new List<double>(_weights.Count);
        for (int i = 0; i < _weights.Count; i++)
            if (_snapshot!.NormBefore(i) > 0) ratios.Add(_snapshot.Ratio(i, distances[i]));
        if (ratios.Count == 0) return null;
        ratios.Sort();
        return ratios.Count % 2 == 1 ? ratios[ratios.Count / 2] : (ratios[ratios.Count / 2 - 1] + ratios[ratios.Count / 2]) / 2;
    }

    /// <summary>
    /// Dead units without ReLU modules to hook: weight rows whose gradient is exactly zero, over all weights with a
    /// gradient (rows, dead rows).
    /// </summary>
    public (long Rows, long Dead) ZeroGradientRows()
    {
        long rows = 0, dead = 0;
        foreach (var (_, p) in _weights)
            if (p.grad is { } g)
            {
                var rowAbs = g.flatten(1).abs().sum(1);
                rows += rowAbs.shape[0];
                dead += rowAbs.EqualTo(0).sum().item<long>();
            }
        return (rows, dead);
    }

    public void Dispose()
    {
        _snapshot?.Dispose();
        _snapshot = null;
    }
}
