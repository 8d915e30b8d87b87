using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using TrainingForensics.Native;

namespace TrainingForensics.Diagnostics.Doctor;

/// <summary>
/// Dead ReLU units, counted by forward hooks on every ReLU and ReLU6 module during a measured step's training pass:
/// per unit (dimension 1) the sum of its outputs over the batch and positions, kept on the device until the
/// measurement counts the zero sums of all layers in one reduction and one read. ReLU outputs are ≥ 0, so a zero sum
/// means the unit output zero for every example (a sum is faster than a max here).
/// </summary>
internal sealed class DeadUnitCount
{
    readonly List<nn.Module<Tensor, Tensor>> _relus;
    readonly List<Tensor> _perUnitSums = new();
    bool _armed;

    public DeadUnitCount(nn.Module<Tensor, Tensor> model)
    {
        _relus = model.named_modules().Select(m => m.module).Where(m => m is ReLU or ReLU6).Cast<nn.Module<Tensor, Tensor>>().ToList();
    }

    /// <summary>Whether the model has ReLU modules to hook (without, dead units are read from zero gradient rows).</summary>
    public bool HasRelu => _relus.Count > 0;

    /// <summary>Units summed since the last <see cref="Clear"/>.</summary>
    public long Units { get; private set; }

    /// <summary>Hooks every ReLU; <paramref name="watching"/> says whether a forward pass is the training's own. Returns what removes the hooks.</summary>
    public IEnumerable<Action> Hook(Func<bool> watching)
    {
        var removers = new List<Action>();
        foreach (var relu in _relus)
        {
            var h = relu.register_forward_hook((m, input, output) => { if (_armed && watching()) OnOutput(output); return output; });
            removers.Add(h.remove);
        }
        return removers;
    }

    /// <summary>At a training forward pass: counts start afresh, and are taken when the step is <paramref name="measured"/>.</summary>
    public void Arm(bool measured)
    {
        _armed = HasRelu && measured;
        Clear();
    }

    void OnOutput(Tensor output)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var o = output.detach();
        if (o.dim() < 2) return;
        var perUnit = o.sum(ReduceDims(o.dim()));
        Units += perUnit.shape[0];
        perUnit.DetachFromDisposeScope();
        _perUnitSums.Add(perUnit);
    }

    /// <summary>The number of dead units among those summed, as a scalar on the device (null when none were summed).</summary>
    public Tensor? DeadUnits() => _perUnitSums.Count == 0 ? null : cat(_perUnitSums).AtMost(0).sum();

    /// <summary>Forgets the sums (after a measurement, or at the next training pass).</summary>
    public void Clear()
    {
        Units = 0;
        foreach (var t in _perUnitSums) t.Dispose();
        _perUnitSums.Clear();
    }

    static readonly long[][] _reduceDims = Enumerable.Range(0, 9).Select(d => Enumerable.Range(0, d).Where(i => i != 1).Select(i => (long)i).ToArray()).ToArray();

    /// <summary>Every dimension but the units' (1).</summary>
    static long[] ReduceDims(long dim) => dim < _reduceDims.Length ? _reduceDims[dim] : Enumerable.Range(0, (int)dim).Where(i => i != 1).Select(i => (long)i).ToArray();
}
