using TorchSharp;
using TrainingForensics.Training;
using static TorchSharp.torch;
using TrainingForensics.Native;

namespace TrainingForensics.Probes;

/// <summary>
/// How saturated a model's outputs are: the fraction of output values that lie in [0,1] within
/// <see cref="Epsilon"/> of 0 or 1, where a sigmoid or softmax has a derivative below ~ε and passes back
/// (almost) no gradient. Logged per step as "saturated_fraction" (and "unit_interval_fraction": the share of
/// outputs inside [0,1] at all); the raw outputs of chosen steps are kept for a histogram.
/// </summary>
public sealed class OutputSaturation
{
    readonly HashSet<long> _keep;
    readonly List<(long Step, double Value)> _series = new();
    readonly Dictionary<long, float[]> _snapshots = new();

    /// <param name="epsilon">Distance from 0 or 1 that counts as saturated (1e-6: the sigmoid's slope u(1−u) is below 1e-6).</param>
    /// <param name="keepSteps">Steps whose output values are kept (for <see cref="Snapshots"/>).</param>
    public OutputSaturation(double epsilon = 1e-6, IEnumerable<long>? keepSteps = null)
    {
        if (!(epsilon > 0 && epsilon < 0.5)) throw new ArgumentOutOfRangeException(nameof(epsilon), epsilon, "epsilon must be in (0, 0.5)");
        Epsilon = epsilon;
        _keep = new HashSet<long>(keepSteps ?? Array.Empty<long>());
    }

    public double Epsilon { get; }

    /// <summary>(step, saturated fraction) in step order.</summary>
    public IReadOnlyList<(long Step, double Value)> Series => _series;

    /// <summary>Output values of the steps asked for in the constructor.</summary>
    public IReadOnlyDictionary<long, float[]> Snapshots => _snapshots;

    public OutputSaturation AttachTo(TrainingLoop loop)
    {
        loop.AfterBackward += Observe;
        return this;
    }

    public void DetachFrom(TrainingLoop loop) => loop.AfterBackward -= Observe;

    public void Observe(StepContext ctx)
    {
        var (saturated, unit) = Measure(ctx.Outputs, Epsilon);
        ctx.Log("saturated_fraction", saturated);
        ctx.Log("unit_interval_fraction", unit);
        _series.Add((ctx.Step, saturated));
        if (_keep.Contains(ctx.Step))
            using (var flat = ctx.Outputs.detach().cpu().to_type(ScalarType.Float32).flatten())
                _snapshots[ctx.Step] = flat.data<float>().ToArray();
    }

    /// <summary>(fraction of values saturated, fraction of values in [0,1]) of any output tensor.</summary>
    public static (double Saturated, double UnitInterval) Measure(Tensor outputs, double epsilon = 1e-6)
    {
        if (outputs.numel() == 0) throw new ArgumentException("cannot measure the saturation of an empty tensor");
        using var scope = NewDisposeScope();
        var o = outputs.detach().to_type(ScalarType.Float64);
        var inUnit = o.AtLeast(0).logical_and(o.AtMost(1));
        var nearEdge = o.AtMost(epsilon).logical_or(o.AtLeast(1 - epsilon));
        double n = o.numel();
        return (inUnit.logical_and(nearEdge).sum().item<long>() / n, inUnit.sum().item<long>() / n);
    }
}
