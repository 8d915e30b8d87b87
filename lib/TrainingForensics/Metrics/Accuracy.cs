using TorchSharp;
using static TorchSharp.torch;
using TrainingForensics.Native;

namespace TrainingForensics.Metrics;

/// <summary>Inputs to a metric whose shapes or types do not say unambiguously what is being compared.</summary>
public sealed class MetricInputException : ArgumentException
{
    public MetricInputException(string message) : base(message) { }
}

/// <summary>
/// Classification accuracy that accepts only unambiguous inputs. Frameworks that guess the metric from shapes
/// (and broadcast silently) report plausible wrong numbers — case study 2 shows one at 91.79% for a 96.7% model.
/// Accepted: scores N×C with labels N (class indices) or N×C (one-hot); predicted classes N with labels N.
/// Everything else is refused with the shapes and the fix in the message.
/// </summary>
public static class Accuracy
{
    /// <summary>Fraction of examples whose predicted class equals the label.</summary>
    public static double Compute(Tensor predictions, Tensor labels)
    {
        using var scope = NewDisposeScope();
        var (predicted, truth) = Classes(predictions, labels);
        return predicted.eq(truth).to_type(ScalarType.Float64).mean().item<double>();
    }

    /// <summary>Number of examples whose predicted class equals the label (for summing over batches).</summary>
    public static long Correct(Tensor predictions, Tensor labels)
    {
        using var scope = NewDisposeScope();
        var (predicted, truth) = Classes(predictions, labels);
        return predicted.eq(truth).sum().item<long>();
    }

    static (Tensor Predicted, Tensor Truth) Classes(Tensor predictions, Tensor labels)
    {
        string p = Describe(predictions), l = Describe(labels);
        if (predictions.dim() == 0 || labels.dim() == 0)
            throw new MetricInputException($"accuracy needs one prediction and one label per example; got predictions {p}, labels {l}");
        if (predictions.shape[0] != labels.shape[0])
            throw new MetricInputException($"predictions {p} and labels {l} have different numbers of examples ({predictions.shape[0]} vs {labels.shape[0]})");
        if (predictions.shape[0] == 0)
            throw new MetricInputException("accuracy of zero examples is undefined");
        if (predictions.is_floating_point())
        {
            // argmax over NaN scores picks an arbitrary class: an "accuracy" of a diverged model would look like chance
            using var notFinite = predictions.isfinite().logical_not().sum();
            long bad = notFinite.item<long>();
            if (bad > 0)
                throw new MetricInputException($"predictions {p} hold {bad} non-finite score(s) (NaN or ±∞) of {predictions.numel()}: " +
                                               "the model diverged or its inputs were not finite; accuracy is undefined");
        }

        bool labelsInteger = IsInteger(labels);
        if (predictions.dim() == 2 && predictions.shape[1] > 1)
        {
            if (!predictions.is_floating_point())
                throw new MetricInputException($"predictions {p} look like scores (N×C) but are not floating point");
            long c = predictions.shape[1];
            if (labels.dim() == 1)
            {
                if (!labelsInteger)
                    throw new MetricInputException($"labels {l} are floating point: class indices must be integers (did you pass probabilities or one-hot rows flattened?)");
                CheckRange(labels, c, l);
                return (predictions.argmax(1), labels.to_type(ScalarType.Int64));
            }
            if (labels.dim() == 2 && labels.shape[1] == 1)
                throw new MetricInputException($"labels {l} are a column of class indices next to scores {p}: ambiguous (a metric could read them as one-hot or as binary); squeeze them to shape [N] (labels.squeeze(1))");
            if (labels.dim() == 2 && labels.shape[1] == c)
            {
                using var rowSums = labels.to_type(ScalarType.Float64).sum(1);
                bool oneHot = labels.EqualTo(0).logical_or(labels.EqualTo(1)).all().item<bool>() && rowSums.EqualTo(1).all().item<bool>();
                if (!oneHot)
                    throw new MetricInputException($"labels {l} have the scores' shape but are not one-hot rows (0/1 entries, one 1 per row)");
                return (predictions.argmax(1), labels.argmax(1));
            }
            throw new MetricInputException($"labels {l} do not fit scores {p}: give class indices [N] or one-hot rows [N,{c}]");
        }
        if (predictions.dim() == 1)
        {
            if (!IsInteger(predictions))
                throw new MetricInputException($"predictions {p} are floating point with one value per example: ambiguous (probabilities of a binary class? rounded classes?); pass N×C scores or integer class predictions");
            if (labels.dim() != 1 || !labelsInteger)
                throw new MetricInputException($"predicted classes {p} need integer class labels of shape [N], got {l}");
            return (predictions.to_type(ScalarType.Int64), labels.to_type(ScalarType.Int64));
        }
        throw new MetricInputException($"predictions {p} are neither scores [N,C] (C>1) nor classes [N]; for a single output per example use a binary metric explicitly");
    }

    static void CheckRange(Tensor labels, long classes, string described)
    {
        long min = labels.min().item<long>(), max = labels.max().item<long>();
        if (min < 0 || max >= classes)
            throw new MetricInputException($"labels {described} range over {min}…{max}, outside the {classes} classes of the scores");
    }

    static bool IsInteger(Tensor t) => t.dtype is ScalarType.Int64 or ScalarType.Int32 or ScalarType.Int16 or ScalarType.Int8 or ScalarType.Byte;

    internal static string Describe(Tensor t) => $"[{string.Join(",", t.shape)}] {t.dtype}";
}
