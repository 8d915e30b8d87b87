using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace TrainingForensics.Models;

/// <summary>
/// A small strided 1-D CNN for long single-lead records: three Conv1d layers (conv1–conv3, each followed by ReLU)
/// that shrink the record by their strides, global average and max pooling over time, and one Linear layer (fc)
/// to the class scores. Why this shape for 60,000-sample records: each conv weight sees only a short window
/// (kernel) instead of all L samples, so a DC offset shifts a pre-activation by ~lr·kernel·offset, not
/// ~lr·L·offset; the weights are shared along the record (a QRS complex looks the same wherever it is); and
/// the pooling makes the output independent of the record length. Accepts N×L or N×1×L.
/// </summary>
public sealed class StridedConvNet : Module<Tensor, Tensor>
{
    readonly Conv1d conv1, conv2, conv3;
    readonly Linear fc;
    readonly string _output;

    /// <param name="classes">Output width (2 for two-class logits, 1 for a single BCE logit).</param>
    /// <param name="channels">Channels of conv1, conv2, conv3.</param>
    /// <param name="kernel">Kernel width of every convolution, in samples.</param>
    /// <param name="stride">Stride of every convolution (equal to the kernel: windows do not overlap).</param>
    /// <param name="output">"none" (logits), "sigmoid" or "softmax" (the case-study-1 bug).</param>
    /// <param name="name">The module's name.</param>
    public StridedConvNet(int classes = 2, int[]? channels = null, int kernel = 8, int stride = 8, string? output = null,
        string name = "StridedConvNet") : base(name)
    {
        channels ??= new[] { 8, 16, 32 };
        if (classes < 1) throw new ArgumentOutOfRangeException(nameof(classes), classes, "need at least one output");
        if (channels.Length != 3 || channels.Any(c => c < 1)) throw new ArgumentException($"channels must be three positive counts, got [{string.Join(", ", channels)}]");
        if (kernel < 1 || stride < 1) throw new ArgumentException($"kernel ({kernel}) and stride ({stride}) must be positive");
        _output = (output ?? "none").ToLowerInvariant();
        if (_output is not ("none" or "sigmoid" or "softmax")) throw new ArgumentException($"unknown output activation '{output}': use none, sigmoid or softmax");
        conv1 = Conv1d(1, channels[0], kernel, stride: stride, padding: 0L);
        conv2 = Conv1d(channels[0], channels[1], kernel, stride: stride, padding: 0L);
        conv3 = Conv1d(channels[1], channels[2], kernel, stride: stride, padding: 0L);
        fc = Linear(2 * channels[2], classes);
        RegisterComponents();
    }

    /// <summary>The output activation ("none", "sigmoid", "softmax").</summary>
    public string Output => _output;

    public override Tensor forward(Tensor x)
    {
        if (x.dim() == 2) x = x.unsqueeze(1);
        if (x.dim() != 3 || x.shape[1] != 1) throw new ArgumentException($"expected records N×L or N×1×L, got [{string.Join(",", x.shape)}]");
        using var scope = NewDisposeScope();
        var h = functional.relu(conv1.forward(x));
        h = functional.relu(conv2.forward(h));
        h = functional.relu(conv3.forward(h));
        var pooled = cat(new[] { h.mean(new long[] { 2 }), h.amax(new long[] { 2 }) }, 1);
        var z = fc.forward(pooled);
        z = _output switch { "sigmoid" => sigmoid(z), "softmax" => softmax(z, 1), _ => z };
        return z.MoveToOuterDisposeScope();
    }
}
