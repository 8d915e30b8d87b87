using TorchSharp;
using TrainingForensics.Training;
using static TorchSharp.torch;

namespace TrainingForensics.Probes;

/// <summary>
/// Per-layer gradient norms ‖∇W‖₂ after each backward pass, logged into the step record as "grad_norm/&lt;param&gt;"
/// (e.g. grad_norm/fc1.weight) and kept as series. Attach with <see cref="AttachTo"/>; <paramref name="every"/>
/// thins the cadence when steps are many.
/// </summary>
public sealed class GradientNorms
{
    readonly int _every;
    readonly Dictionary<string, List<(long Step, double Value)>> _series = new();
    readonly Func<string, bool> _include;

    public GradientNorms(int every = 1, Func<string, bool>? include = null)
    {
        if (every < 1) throw new ArgumentOutOfRangeException(nameof(every), every, "cadence must be at least 1");
        _every = every;
        _include = include ?? (name => name.EndsWith("weight"));
    }

    /// <summary>Parameter name → (step, norm) in step order.</summary>
    public IReadOnlyDictionary<string, List<(long Step, double Value)>> Series => _series;

    public GradientNorms AttachTo(TrainingLoop loop)
    {
        loop.AfterBackward += Observe;
        return this;
    }

    public void DetachFrom(TrainingLoop loop) => loop.AfterBackward -= Observe;

    /// <summary>Measures now (gradients must be present).</summary>
    public void Observe(StepContext ctx)
    {
        if (ctx.Step % _every != 0) return;
        foreach (var (name, p) in ctx.Model.named_parameters())
        {
            if (!_include(name)) continue;
            double norm = p.grad is { } g ? g.norm().item<float>() : 0.0;
            ctx.Log("grad_norm/" + name, norm);
            if (!_series.TryGetValue(name, out var list)) _series[name] = list = new();
            list.Add((ctx.Step, norm));
        }
    }
}

/// <summary>
/// The effective step size per layer, ‖ΔW‖/‖W‖ of each optimizer step (logged as "update_ratio/&lt;param&gt;").
/// A healthy SGD run sits around 1e-3; far below means the optimiser barely moves (e.g. a loss 10× too small).
/// </summary>
public sealed class UpdateRatios
{
    readonly int _every;
    readonly Func<string, bool> _include;
    readonly Dictionary<string, Tensor> _before = new();
    readonly Dictionary<string, List<(long Step, double Value)>> _series = new();

    public UpdateRatios(int every = 1, Func<string, bool>? include = null)
    {
        if (every < 1) throw new ArgumentOutOfRangeException(nameof(every), every, "cadence must be at least 1");
        _every = every;
        _include = include ?? (name => name.EndsWith("weight"));
    }

    public IReadOnlyDictionary<string, List<(long Step, double Value)>> Series => _series;

    public UpdateRatios AttachTo(TrainingLoop loop)
    {
        loop.AfterBackward += Before;
        loop.AfterStep += After;
        return this;
    }

    public void DetachFrom(TrainingLoop loop)
    {
        loop.AfterBackward -= Before;
        loop.AfterStep -= After;
    }

    void Before(StepContext ctx)
    {
        if (ctx.Step % _every != 0) return;
        foreach (var (name, p) in ctx.Model.named_parameters())
        {
            if (!_include(name)) continue;
            var copy = p.detach().clone();
            copy.DetachFromDisposeScope(); // lives until After, across the step's scope boundary
            if (_before.Remove(name, out var old)) old.Dispose();
            _before[name] = copy;
        }
    }

    void After(StepContext ctx)
    {
        if (ctx.Step % _every != 0) return;
        foreach (var (name, p) in ctx.Model.named_parameters())
        {
            if (!_before.Remove(name, out var old)) continue;
            using (old)
            using (var scope = NewDisposeScope())
            {
                double w = old.norm().item<float>();
                double ratio = w > 0 ? (p.detach() - old).norm().item<float>() / w : double.NaN;
                ctx.Log("update_ratio/" + name, ratio);
                if (!_series.TryGetValue(name, out var list)) _series[name] = list = new();
                list.Add((ctx.Step, ratio));
            }
        }
    }
}
