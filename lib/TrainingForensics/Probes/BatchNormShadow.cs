using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using TrainingForensics.Native;

namespace TrainingForensics.Probes;

/// <summary>
/// Running statistics with OTHER momenta, kept alongside a training run. BN momentum does not change training
/// at all (training mode normalises with the batch statistics); it only decides what eval mode will use. So one
/// run can answer "what would momentum 0.1 have given?": forward pre-hooks see each training batch's
/// statistics and update a shadow running mean/variance per momentum exactly as BatchNorm does
/// (r ← (1−m)·r + m·batch, unbiased variance). Passes without gradients (measurements, evaluation,
/// recalibration) are ignored. <see cref="Use"/> swaps a shadow into the model for evaluation.
/// </summary>
public sealed class BatchNormShadow : IDisposable
{
    readonly List<(NormBase Layer, Action Remove)> _hooks = new();
    readonly Dictionary<double, List<(Tensor Mean, Tensor Var)>> _shadows = new();

    public BatchNormShadow(nn.Module<Tensor, Tensor> model, params double[] momenta)
    {
        if (momenta is null || momenta.Length == 0) throw new ArgumentException("give at least one momentum to shadow");
        foreach (var m in momenta)
            if (!(m > 0 && m <= 1)) throw new ArgumentOutOfRangeException(nameof(momenta), m, "shadow momenta must be in (0, 1]");
        var layers = model.named_modules().Where(x => x.module is BatchNorm).Select(x => (BatchNorm)x.module).ToList();
        if (layers.Count == 0) throw new ArgumentException("the model has no BatchNorm layers to shadow");
        foreach (var m in momenta.Distinct())
        {
            var list = new List<(Tensor, Tensor)>();
            foreach (var bn in layers)
            {
                var mean = zeros_like(bn.running_mean!); mean.DetachFromDisposeScope();
                var var_ = ones_like(bn.running_var!); var_.DetachFromDisposeScope();
                list.Add((mean, var_));
            }
            _shadows[m] = list;
        }
        Momenta = _shadows.Keys.ToList();
        for (int i = 0; i < layers.Count; i++)
        {
            int index = i;
            var remover = layers[i].register_forward_pre_hook((module, x) => { Update(index, module, x); return x; });
            _hooks.Add((layers[i], remover.remove));
        }
    }

    public IReadOnlyList<double> Momenta { get; }

    void Update(int index, nn.Module<Tensor, Tensor> module, Tensor input)
    {
        if (!module.training || !is_grad_enabled()) return;
        using var ledger = Results.RunLedger.Time(Results.RunLedger.Probes); // a probe inside the forward pass: not the step's own time
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (mean, variance) = BatchNormProbe.ChannelMeanAndVariance(input.detach()); // every training step: kept cheap
        foreach (var (m, list) in _shadows)
        {
            var (rm, rv) = list[index];
            rm.ScaleAndAddInPlace(1 - m, mean, m);
            rv.ScaleAndAddInPlace(1 - m, variance, m);
        }
    }

    /// <summary>Puts the shadow statistics of <paramref name="momentum"/> into the model until the result is disposed.</summary>
    public IDisposable Use(double momentum)
    {
        if (!_shadows.TryGetValue(momentum, out var list))
            throw new ArgumentException($"momentum {momentum} is not shadowed (have: {string.Join(", ", Momenta)})");
        var saved = new List<(NormBase, Tensor, Tensor)>();
        using (no_grad())
            for (int i = 0; i < _hooks.Count; i++)
            {
                var bn = _hooks[i].Layer;
                var m0 = bn.running_mean!.clone(); m0.DetachFromDisposeScope();
                var v0 = bn.running_var!.clone(); v0.DetachFromDisposeScope();
                saved.Add((bn, m0, v0));
                bn.running_mean!.copy_(list[i].Mean);
                bn.running_var!.copy_(list[i].Var);
            }
        return new Restorer(saved);
    }

    sealed class Restorer : IDisposable
    {
        readonly List<(NormBase Bn, Tensor Mean, Tensor Var)> _saved;
        bool _done;
        public Restorer(List<(NormBase, Tensor, Tensor)> saved) => _saved = saved;
        public void Dispose()
        {
            if (_done) return;
            _done = true;
            using var noGrad = no_grad();
            foreach (var (bn, m, v) in _saved) { bn.running_mean!.copy_(m); bn.running_var!.copy_(v); m.Dispose(); v.Dispose(); }
        }
    }

    /// <summary>The shadow running variance of layer <paramref name="layerIndex"/> (forward order) for <paramref name="momentum"/>.</summary>
    public double[] RunningVar(double momentum, int layerIndex) =>
        _shadows[momentum][layerIndex].Var.cpu().to_type(ScalarType.Float64).data<double>().ToArray();

    public void Dispose()
    {
        foreach (var (_, remove) in _hooks) remove();
        _hooks.Clear();
        foreach (var list in _shadows.Values) foreach (var (m, v) in list) { m.Dispose(); v.Dispose(); }
        _shadows.Clear();
    }
}
