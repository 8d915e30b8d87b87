using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TrainingForensics.Probes;

/// <summary>
/// Pre-activations of a Sequential model: runs the layers one by one and reports, for every Linear or Conv layer
/// (the values an activation then squashes), the largest absolute value over a batch.
/// </summary>
public static class PreActivations
{
    /// <summary>
    /// Layer name → output of every Linear/Conv layer on <paramref name="x"/> (no gradients). The tensors belong to
    /// the caller's dispose scope.
    /// </summary>
    public static IReadOnlyDictionary<string, Tensor> Of(Sequential model, Tensor x)
    {
        using var noGrad = no_grad();
        var result = new Dictionary<string, Tensor>();
        var h = x;
        foreach (var (name, layer) in model.named_children())
        {
            if (layer is not nn.Module<Tensor, Tensor> m)
                throw new ArgumentException($"layer '{name}' ({layer.GetType().Name}) is not a tensor-to-tensor module");
            h = m.call(h);
            if (layer is Linear or Conv1d or Conv2d) result[name] = h;
        }
        return result;
    }

    /// <summary>Layer name → max |output| of that layer on <paramref name="x"/>.</summary>
    public static IReadOnlyDictionary<string, double> MaxAbs(Sequential model, Tensor x)
    {
        using var scope = NewDisposeScope();
        return Of(model, x).ToDictionary(p => p.Key, p => (double)p.Value.abs().max().item<float>());
    }
}
