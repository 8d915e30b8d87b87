using TorchSharp;
using static TorchSharp.torch;
using TrainingForensics.Native;

namespace TrainingForensics.Training;

/// <summary>
/// How a per-element loss (B examples × C outputs) becomes one number. The names say what is divided by what,
/// because two losses that differ only here train differently under SGD: the gradient scales with the divisor.
/// </summary>
public enum Reduction
{
    /// <summary>No reduction: the B×C per-element losses.</summary>
    None,
    /// <summary>Σ over everything ("sum").</summary>
    Sum,
    /// <summary>Σ over the outputs, mean over the batch: Σ/B ("sum/B", the usual hand-written loss).</summary>
    SumOverBatch,
    /// <summary>Mean over the outputs, summed over the batch: Σ/C ("sum/C").</summary>
    SumOverOutputs,
    /// <summary>Mean over every element: Σ/(B·C) ("mean", what framework MSE losses do by default).</summary>
    Mean,
}

/// <summary>
/// Loss helpers with an explicit, named reduction, so the scale of a loss (and of its gradients) is a visible
/// choice rather than a framework default. Targets may be class indices (turned into one-hot rows) or
/// tensors of the outputs' shape.
/// </summary>
public static class Losses
{
    /// <summary>The reductions a loss-scale comparison looks at, in the order they are reported.</summary>
    public static IReadOnlyList<Reduction> References { get; } =
        new[] { Reduction.SumOverBatch, Reduction.Mean, Reduction.Sum, Reduction.SumOverOutputs };

    /// <summary>Short name: "none", "sum", "sum/B", "sum/C", "mean".</summary>
    public static string Label(this Reduction reduction) => reduction switch
    {
        Reduction.None => "none",
        Reduction.Sum => "sum",
        Reduction.SumOverBatch => "sum/B",
        Reduction.SumOverOutputs => "sum/C",
        Reduction.Mean => "mean",
        _ => throw new ArgumentOutOfRangeException(nameof(reduction), reduction, "unknown reduction"),
    };

    /// <summary>What the reduction computes, in words.</summary>
    public static string Describe(this Reduction reduction) => reduction switch
    {
        Reduction.None => "no reduction (one value per example and output)",
        Reduction.Sum => "sum over the batch and the outputs",
        Reduction.SumOverBatch => "sum over the outputs, mean over the batch (Σ/B)",
        Reduction.SumOverOutputs => "mean over the outputs, sum over the batch (Σ/C)",
        Reduction.Mean => "mean over the batch and the outputs (Σ/(B·C))",
        _ => throw new ArgumentOutOfRangeException(nameof(reduction), reduction, "unknown reduction"),
    };

    /// <summary>Reads a reduction from its <see cref="Label"/> or enum name (case-insensitive), e.g. for a notebook parameter.</summary>
    public static Reduction Parse(string name)
    {
        string n = (name ?? "").Trim().ToLowerInvariant();
        foreach (var r in Enum.GetValues<Reduction>())
            if (n == r.Label().ToLowerInvariant() || n == r.ToString().ToLowerInvariant()) return r;
        throw new ArgumentException($"unknown reduction '{name}': use one of {string.Join(", ", Enum.GetValues<Reduction>().Select(r => r.Label()))}", nameof(name));
    }

    /// <summary>The number the element sum is divided by: 1, B, C or B·C (1 for <see cref="Reduction.None"/>).</summary>
    public static double Divisor(this Reduction reduction, long batch, long outputs)
    {
        if (batch <= 0 || outputs <= 0) throw new ArgumentOutOfRangeException(nameof(batch), $"batch ({batch}) and outputs ({outputs}) must be positive");
        return reduction switch
        {
            Reduction.None or Reduction.Sum => 1,
            Reduction.SumOverBatch => batch,
            Reduction.SumOverOutputs => outputs,
            Reduction.Mean => (double)batch * outputs,
            _ => throw new ArgumentOutOfRangeException(nameof(reduction), reduction, "unknown reduction"),
        };
    }

    /// <summary>
    /// loss(<paramref name="reduction"/>) / loss(<paramref name="reference"/>) for the same per-element losses:
    /// e.g. Mean vs SumOverBatch is 1/C. Under plain SGD the gradients, and so the steps, scale by the same factor.
    /// </summary>
    public static double Factor(Reduction reduction, Reduction reference, long batch, long outputs)
    {
        if (reduction == Reduction.None || reference == Reduction.None)
            throw new ArgumentException("an unreduced loss has no single scale: pick a reduction");
        return reference.Divisor(batch, outputs) / reduction.Divisor(batch, outputs);
    }

    /// <summary>
    /// Reduces per-element losses of shape B×… (first dimension = batch, the rest = outputs per example).
    /// </summary>
    public static Tensor Reduce(Tensor elementwise, Reduction reduction)
    {
        if (elementwise.dim() < 1) throw new ArgumentException("per-element losses need a batch dimension, got a scalar");
        long batch = elementwise.shape[0];
        if (batch == 0) throw new ArgumentException("cannot reduce the losses of an empty batch");
        long outputs = elementwise.numel() / batch;
        return reduction switch
        {
            Reduction.None => elementwise.alias(),
            Reduction.Sum => elementwise.sum(),
            Reduction.SumOverBatch => elementwise.sum().DividedBy(batch),
            Reduction.SumOverOutputs => elementwise.sum().DividedBy(outputs),
            Reduction.Mean => elementwise.mean(),
            _ => throw new ArgumentOutOfRangeException(nameof(reduction), reduction, "unknown reduction"),
        };
    }

    /// <summary>One-hot rows (float32) of integer class labels of shape [B].</summary>
    public static Tensor OneHot(Tensor labels, long classes)
    {
        if (labels.dim() != 1) throw new ArgumentException($"one-hot needs labels of shape [B], got [{string.Join(",", labels.shape)}]");
        if (labels.is_floating_point()) throw new ArgumentException($"one-hot needs integer class labels, got {labels.dtype}");
        if (classes < 1) throw new ArgumentOutOfRangeException(nameof(classes), classes, "need at least one class");
        if (labels.numel() > 0)
        {
            long min = labels.min().item<long>(), max = labels.max().item<long>();
            if (min < 0 || max >= classes) throw new ArgumentException($"labels range over {min}…{max}, outside the {classes} classes");
        }
        return nn.functional.one_hot(labels.to_type(ScalarType.Int64), classes).to_type(ScalarType.Float32);
    }

    /// <summary>
    /// Targets in the outputs' shape: class indices [B] next to outputs [B,C] become one-hot rows; a tensor of
    /// the outputs' shape is used as it is; anything else is refused naming both shapes.
    /// </summary>
    public static Tensor AsTargets(Tensor outputs, Tensor targets)
    {
        if (outputs.dim() == 2 && targets.dim() == 1 && !targets.is_floating_point() && targets.shape[0] == outputs.shape[0])
            return OneHot(targets, outputs.shape[1]).to_type(outputs.dtype).to(outputs.device);
        if (targets.shape.SequenceEqual(outputs.shape))
            return targets.dtype == outputs.dtype ? targets.alias() : targets.to_type(outputs.dtype);
        throw new ArgumentException($"targets [{string.Join(",", targets.shape)}] {targets.dtype} do not fit outputs [{string.Join(",", outputs.shape)}]: " +
                                    "give class indices [B] or targets of the outputs' shape");
    }

    /// <summary>Per-element squared errors (outputs − targets)², shape B×C.</summary>
    public static Tensor SquaredErrors(Tensor outputs, Tensor targets) => (outputs - AsTargets(outputs, targets)).Squared();

    /// <summary>Squared error with an explicit reduction (targets: class indices or one-hot / same-shape).</summary>
    public static Tensor SquaredError(Tensor outputs, Tensor targets, Reduction reduction) =>
        Reduce(SquaredErrors(outputs, targets), reduction);

    /// <summary>
    /// Softmax cross-entropy of logits [B,C] against class indices [B] (or class probabilities [B,C]), mean over the
    /// batch, as <c>nn.functional.cross_entropy</c>, after checking the shapes libtorch would reject with a native
    /// stack: a column of labels [B,1], floating-point indices, a batch-size mismatch.
    /// </summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor targets)
    {
        string o = $"[{string.Join(",", logits.shape)}]", t = $"[{string.Join(",", targets.shape)}] {targets.dtype}";
        if (logits.dim() != 2)
            throw new ArgumentException($"cross-entropy needs logits [B,C], got {o}");
        if (targets.dim() == 2 && targets.shape[1] == 1 && logits.shape[1] != 1)
            throw new ArgumentException($"targets {t} are a column of class indices: cross-entropy needs them as [B]; use targets.squeeze(1)");
        if (targets.dim() == 1)
        {
            if (targets.is_floating_point())
                throw new ArgumentException($"targets {t} are floating point: class indices must be integers (targets.to_type(ScalarType.Int64))");
            if (targets.shape[0] != logits.shape[0])
                throw new ArgumentException($"{targets.shape[0]} targets for {logits.shape[0]} rows of logits {o}");
        }
        else if (!targets.shape.SequenceEqual(logits.shape) || !targets.is_floating_point())
            throw new ArgumentException($"targets {t} do not fit logits {o}: give class indices [B] or class probabilities of the logits' shape");
        return nn.functional.cross_entropy(logits, targets);
    }

    /// <summary>A squared-error loss function for <see cref="TrainingLoop"/> with the given reduction.</summary>
    public static Func<Tensor, Tensor, Tensor> Mse(Reduction reduction) => (o, t) => SquaredError(o, t, reduction);
}
