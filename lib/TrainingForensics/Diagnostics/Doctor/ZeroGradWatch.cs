using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using TrainingForensics.Native;

namespace TrainingForensics.Diagnostics.Doctor;

/// <summary>The norms <see cref="GradientsNotZeroed"/> judges, of one checked step (see its Observe).</summary>
internal readonly record struct BiasGradientNorms(double Accumulated, double Leftover, double LeftoverVsPrevious, double Update);

/// <summary>
/// What the zero_grad check measures, on one layer with a trainable bias (the last Linear, convolution or BatchNorm):
/// the bias as it was at the forward pass of the step before a checked step and of the checked step, its .grad after
/// the step before, and the checked pass's own bias gradient — the gradient of a zero leaf added to the layer's output,
/// which equals the bias gradient of that backward pass alone. Whatever else .grad holds was there before the pass.
/// </summary>
internal sealed class ZeroGradWatch : IDisposable
{
    readonly nn.Module<Tensor, Tensor> _layer;
    readonly Parameter _bias;
    readonly bool _channelsLast; // a Linear's features are its output's last dimension; a convolution's or BatchNorm's are dimension 1
    readonly int _every;
    // two slots, because with a check every step the copies of the step before and of the checked step are both kept
    readonly Tensor?[] _biasAt = new Tensor?[2];
    readonly long[] _biasSteps = { -1, -1 };
    Tensor? _gradBefore, _ownGrad;
    long _gradBeforeStep = -1;
    bool _armed;

    ZeroGradWatch(nn.Module<Tensor, Tensor> layer, string parameter, Parameter bias, bool channelsLast, int every)
    {
        _layer = layer; Parameter = parameter; _bias = bias; _channelsLast = channelsLast; _every = every;
    }

    /// <summary>The watched bias, e.g. "fc3.bias".</summary>
    public string Parameter { get; }

    /// <summary>A watch on the last Linear, convolution or BatchNorm layer with a trainable bias; null when there is none (the check is off).</summary>
    public static ZeroGradWatch? Find(nn.Module<Tensor, Tensor> model, int every)
    {
        ZeroGradWatch? found = null;
        foreach (var (name, module) in model.named_modules())
        {
            if (module is not (Linear or Convolution or BatchNorm)) continue;
            var bias = module.named_parameters(recurse: false).FirstOrDefault(p => p.name == "bias").parameter;
            if (bias is null || !bias.requires_grad || bias.dim() != 1) continue;
            found = new ZeroGradWatch((nn.Module<Tensor, Tensor>)module, name + ".bias", bias, module is Linear, every);
        }
        return found;
    }

    /// <summary>Hooks the layer; <paramref name="watching"/> says whether a forward pass is the training's own. Returns what removes the hook.</summary>
    public Action Hook(Func<bool> watching)
    {
        var h = _layer.register_forward_hook((m, input, output) => _armed && watching() ? OnOutput(output) : output);
        return h.remove;
    }

    /// <summary>
    /// At a training forward pass of <paramref name="step"/>, when it is checked or the step before one: the bias is
    /// copied once per step. On a checked step every pass arms the hook (the last pass of the step counts).
    /// </summary>
    public void Arm(long step)
    {
        bool due = step % _every == 0, beforeDue = (step + 1) % _every == 0;
        if (!due && !beforeDue) return;
        _ownGrad?.Dispose(); _ownGrad = null;
        _armed = due;
        if (_biasSteps[0] == step || _biasSteps[1] == step) return;
        using var noGrad = no_grad();
        int slot = _biasSteps[0] == step - 1 ? 1 : 0; // keep the previous step's copy
        if (_biasAt[slot] is null) { _biasAt[slot] = empty_like(_bias); _biasAt[slot]!.DetachFromDisposeScope(); }
        _biasAt[slot]!.copy_(_bias.detach());
        _biasSteps[slot] = step;
    }

    /// <summary>
    /// The layer's output plus a zero leaf shaped like the bias (broadcast over the batch and positions), so the leaf's
    /// gradient is exactly this pass's own bias gradient. Adding zero leaves every value as it was.
    /// </summary>
    Tensor OnOutput(Tensor output)
    {
        if (!output.is_floating_point()) return output;
        _armed = false;
        long c = _bias.shape[0];
        if (output.dim() < (_channelsLast ? 1 : 2) || output.shape[_channelsLast ? output.dim() - 1 : 1] != c) return output;
        var shape = _channelsLast ? new[] { c } : new[] { c }.Concat(Enumerable.Repeat(1L, (int)output.dim() - 2)).ToArray();
        _ownGrad = zeros(shape, output.dtype, output.device, requires_grad: true);
        _ownGrad.DetachFromDisposeScope();
        return output.Plus(_ownGrad);
    }

    /// <summary>
    /// On a checked step: [.grad, this pass's own gradient, .grad at the previous step, bias at the previous step's
    /// pass, bias at this step's pass] as one float64 vector, for the measurement's transfer (null: nothing to check).
    /// </summary>
    public Tensor? Vectors(long step)
    {
        if (_ownGrad is null || _gradBefore is null || _gradBeforeStep != step - 1) return null;
        int previous = Array.IndexOf(_biasSteps, step - 1), current = Array.IndexOf(_biasSteps, step);
        if (previous < 0 || current < 0 || _bias.grad is not { } g || _ownGrad.grad is not { } own) return null;
        return cat(new[] { g, own.reshape(-1), _gradBefore, _biasAt[previous]!, _biasAt[current]! }).to_type(ScalarType.Float64);
    }

    /// <summary>The norms of the check from the read-back <see cref="Vectors"/> (a bias is small: summed on the host).</summary>
    public BiasGradientNorms Norms(ReadOnlySpan<double> v)
    {
        int c = (int)_bias.shape[0];
        double accumulated = 0, leftover = 0, vsPrevious = 0, update = 0;
        for (int i = 0; i < c; i++)
        {
            double g = v[i], rest = g - v[c + i], d = rest - v[2 * c + i], u = v[4 * c + i] - v[3 * c + i];
            accumulated += g * g; leftover += rest * rest; vsPrevious += d * d; update += u * u;
        }
        return new BiasGradientNorms(Math.Sqrt(accumulated), Math.Sqrt(leftover), Math.Sqrt(vsPrevious), Math.Sqrt(update));
    }

    /// <summary>After a step: its bias gradient is kept when the next step is checked; this step's leaf is dropped.</summary>
    public void Keep(long step)
    {
        _ownGrad?.Dispose(); _ownGrad = null;
        if ((step + 1) % _every != 0) return;
        if (_bias.grad is not { } g) { _gradBeforeStep = -1; return; }
        if (_gradBefore is null) { _gradBefore = empty_like(g); _gradBefore.DetachFromDisposeScope(); }
        _gradBefore.copy_(g);
        _gradBeforeStep = step;
    }

    public void Dispose()
    {
        foreach (var t in new[] { _biasAt[0], _biasAt[1], _gradBefore, _ownGrad }) t?.Dispose();
        _biasAt[0] = _biasAt[1] = _gradBefore = _ownGrad = null;
    }
}
