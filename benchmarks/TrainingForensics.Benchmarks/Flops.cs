using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TrainingForensics.Benchmarks;

/// <summary>
/// Multiply-add FLOPs of one training step, counted from the shapes one forward pass really produces (hooks on the
/// Linear and Conv2d modules): forward 2·|output|·(fan-in per output); backward the weight gradient (the same
/// again) plus the input gradient (the same again) for every layer but the first, whose input needs no gradient.
/// Not counted: biases, activations, BatchNorm, the loss, the optimiser — so the FLOP rate is a lower bound.
/// </summary>
internal static class Flops
{
    public sealed record Count(double Forward, double Backward)
    {
        public double Step => Forward + Backward;
    }

    public static Count OfStep(nn.Module<Tensor, Tensor> model, Tensor input)
    {
        var perLayer = new List<double>();
        var removers = new List<Action>();
        foreach (var (_, module) in model.named_modules())
        {
            if (module is Linear linear)
            {
                var h = linear.register_forward_hook((m, x, y) => { perLayer.Add(2.0 * y.numel() * linear.weight!.shape[1]); return y; });
                removers.Add(h.remove);
            }
            else if (module is Conv2d conv)
            {
                var h = conv.register_forward_hook((m, x, y) =>
                {
                    var w = conv.weight!.shape; // [out, in/groups, kh, kw]
                    perLayer.Add(2.0 * y.numel() * w[1] * w[2] * w[3]);
                    return y;
                });
                removers.Add(h.remove);
            }
        }
        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            model.call(input);
        }
        finally
        {
            foreach (var r in removers) r();
        }
        if (perLayer.Count == 0) throw new InvalidOperationException("no Linear or Conv2d layer found: nothing to count");
        double forward = perLayer.Sum();
        double backward = forward + (forward - perLayer[0]);
        return new Count(forward, backward);
    }
}
