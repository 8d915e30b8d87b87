using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using TrainingForensics.Native;

namespace TrainingForensics.Models;

/// <summary>
/// Settings of the small heatmap network of case study 3. Defaults: 7 Conv3×3-BN-ReLU6 blocks of widths
/// 16, 32, 32, 32, 32, 32, 16 (the first with stride 2, so a 32×32 image gives 16×16 maps), then a 1×1 conv to
/// <see cref="Outputs"/> heatmap logits — about 47k parameters. Widths are multiples of 16 on purpose: on the
/// development host (CPU without AVX-512 support in NNPACK), libtorch 2.10's CPU 3×3 convolution returned NaN/garbage
/// for channel counts such as 8 or 24 (it read uninitialised memory), while multiples of 16 were exact. BatchNorm: eps 1e-3 and momentum 0.003
/// (TorchSharp/PyTorch momentum = 1 − TensorFlow decay, so 0.003 is TF's decay 0.997).
/// </summary>
public sealed record ConvBnOptions
{
    public int InChannels { get; init; } = 1;
    public int[] Widths { get; init; } = { 16, 32, 32, 32, 32, 32, 16 };
    /// <summary>Index of the blocks that down-sample by 2 (default: the first).</summary>
    public int[] StrideTwoBlocks { get; init; } = { 0 };
    public int Outputs { get; init; } = 2;
    /// <summary>BatchNorm momentum (weight of the new batch in the running average); null = cumulative average.</summary>
    public double? BnMomentum { get; init; } = 0.003;
    public double BnEps { get; init; } = 1e-3;
    /// <summary>"relu6", "relu" or "none".</summary>
    public string Activation { get; init; } = "relu6";
    /// <summary>"plain" (Conv-BN-act blocks) or "mobilenetv2" (inverted residual blocks: 1×1 expand, 3×3 depthwise, 1×1 project).</summary>
    public string Architecture { get; init; } = "plain";
    /// <summary>Expansion factor of the MobileNetV2-style blocks.</summary>
    public int Expansion { get; init; } = 4;

    public void Validate()
    {
        if (InChannels < 1) throw new ArgumentOutOfRangeException(nameof(InChannels), InChannels, "need at least one input channel");
        if (Widths is null || Widths.Length == 0) throw new ArgumentException("need at least one block (Widths is empty)");
        if (Widths.Any(w => w < 1)) throw new ArgumentException($"block widths must be positive: [{string.Join(", ", Widths)}]");
        if (StrideTwoBlocks.Any(i => i < 0 || i >= Widths.Length)) throw new ArgumentException($"StrideTwoBlocks [{string.Join(", ", StrideTwoBlocks)}] must index the {Widths.Length} blocks");
        if (Outputs < 1) throw new ArgumentOutOfRangeException(nameof(Outputs), Outputs, "need at least one output map");
        if (BnMomentum is { } m && !(m > 0 && m <= 1)) throw new ArgumentOutOfRangeException(nameof(BnMomentum), m, "BN momentum must be in (0, 1] (or null for a cumulative average)");
        if (!(BnEps > 0)) throw new ArgumentOutOfRangeException(nameof(BnEps), BnEps, "BN eps must be positive");
        if (Expansion < 1) throw new ArgumentOutOfRangeException(nameof(Expansion), Expansion, "expansion must be at least 1");
        ConvBnNet.MakeActivation(Activation);
        if (Architecture?.ToLowerInvariant() is not ("plain" or "mobilenetv2"))
            throw new ArgumentException($"unknown architecture '{Architecture}': use plain or mobilenetv2");
    }
}

/// <summary>
/// The plain Conv-BN-ReLU6 heatmap network (or its MobileNetV2-style variant). It returns logits; the
/// loss applies the sigmoid. Parameters are named block1.conv.weight, block1.bn.weight, …, head.weight so that
/// probes and optimiser groups can pick them by name.
/// </summary>
public static class ConvBnNet
{
    public static Sequential Create(ConvBnOptions? options = null)
    {
        var o = options ?? new ConvBnOptions();
        o.Validate();
        var blocks = new List<(string, Module<Tensor, Tensor>)>();
        long cin = o.InChannels;
        bool mobile = o.Architecture.Equals("mobilenetv2", StringComparison.OrdinalIgnoreCase);
        for (int i = 0; i < o.Widths.Length; i++)
        {
            int stride = o.StrideTwoBlocks.Contains(i) ? 2 : 1;
            long cout = o.Widths[i];
            Module<Tensor, Tensor> block = mobile && i > 0
                ? new InvertedResidual($"block{i + 1}", cin, cout, stride, o)
                : Sequential(
                    ("conv", Conv2d(cin, cout, 3, stride: stride, padding: 1, bias: false)),
                    ("bn", Bn(cout, o)),
                    ("act", MakeActivation(o.Activation)));
            blocks.Add(($"block{i + 1}", block));
            cin = cout;
        }
        blocks.Add(("head", Conv2d(cin, o.Outputs, 1)));
        return Sequential(blocks);
    }

    /// <summary>The BatchNorm layers of a model with their names, in forward order.</summary>
    public static IReadOnlyList<(string Name, BatchNorm Layer)> BatchNorms(Module model) =>
        model.named_modules().Where(m => m.module is BatchNorm).Select(m => (m.name, (BatchNorm)m.module)).ToList();

    /// <summary>Convolution weights (names ending in "conv.weight" or the MobileNet's "expand/dw/project.weight"), excluding the head.</summary>
    public static IEnumerable<(string Name, Parameter Parameter)> ConvWeights(Module model) =>
        model.named_parameters().Where(p => p.name.EndsWith(".weight") && !p.name.StartsWith("head") && p.parameter.dim() == 4);

    internal static BatchNorm2d Bn(long channels, ConvBnOptions o)
    {
        var bn = BatchNorm2d(channels, eps: o.BnEps, momentum: o.BnMomentum ?? 0.1);
        bn.momentum = o.BnMomentum;
        return bn;
    }

    internal static Module<Tensor, Tensor> MakeActivation(string? name) => name?.ToLowerInvariant() switch
    {
        "relu6" => ReLU6(),
        "relu" => ReLU(),
        "none" or "identity" => Identity(),
        _ => throw new ArgumentException($"unknown activation '{name}': use relu6, relu or none"),
    };

    /// <summary>MobileNetV2's inverted residual: 1×1 expand-BN-act, 3×3 depthwise-BN-act, 1×1 project-BN, plus the input when shapes match.</summary>
    sealed class InvertedResidual : Module<Tensor, Tensor>
    {
        readonly Sequential body;
        readonly bool residual;

        public InvertedResidual(string name, long cin, long cout, int stride, ConvBnOptions o) : base(name)
        {
            long hidden = cin * o.Expansion;
            body = Sequential(
                ("expand", Conv2d(cin, hidden, 1, bias: false)), ("bn1", Bn(hidden, o)), ("act1", MakeActivation(o.Activation)),
                ("dw", Conv2d(hidden, hidden, 3, stride: stride, padding: 1, groups: hidden, bias: false)), ("bn2", Bn(hidden, o)), ("act2", MakeActivation(o.Activation)),
                ("project", Conv2d(hidden, cout, 1, bias: false)), ("bn3", Bn(cout, o)));
            residual = stride == 1 && cin == cout;
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => residual ? body.call(x).Plus(x) : body.call(x);
    }
}
