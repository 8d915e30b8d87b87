using TorchSharp;
using static TorchSharp.torch;
using TrainingForensics.Native;

namespace TrainingForensics.Diagnostics;

/// <summary>
/// The values a softmax cross-entropy takes when it is given already-squashed outputs u ∈ [0,1]^C instead of
/// logits. Per row the loss is log Σⱼ e^{uⱼ} − u_true; for two classes that is log(1 + e^{u_other − u_true}),
/// between log(1+e⁻¹) ≈ 0.3133 (confidently right) and log(1+e) ≈ 1.3133 (confidently wrong).
/// </summary>
public static class SquashedCrossEntropy
{
    /// <summary>Cross-entropy of one row of outputs u (treated as logits) for class <paramref name="target"/>.</summary>
    public static double Row(IReadOnlyList<double> u, int target)
    {
        if (u.Count < 2) throw new ArgumentException("need at least two outputs per row");
        if (target < 0 || target >= u.Count) throw new ArgumentOutOfRangeException(nameof(target), target, $"not a class 0–{u.Count - 1}");
        double max = u.Max();
        return max + Math.Log(u.Sum(v => Math.Exp(v - max))) - u[target];
    }

    /// <summary>The lowest loss squashed outputs can reach: every row one-hot on its true class, log(e + C − 1) − 1.</summary>
    public static double Floor(int classes = 2) => Math.Log(Math.E + classes - 1) - 1;

    /// <summary>The highest: every row one-hot on a wrong class, log(e + C − 1).</summary>
    public static double Ceiling(int classes = 2) => Math.Log(Math.E + classes - 1);

    /// <summary>Every row stuck at [1, …, 1] (or at any constant row): log C.</summary>
    public static double AllOnes(int classes = 2) => Math.Log(classes);

    /// <summary>
    /// Mean loss when every example is predicted, saturated, as class <paramref name="predicted"/>: the floor plus the
    /// fraction of examples of the other classes (0.3133 + 0.48 on a 52/48 two-class set predicted as the 52).
    /// </summary>
    public static double AllPredicted(int predicted, IReadOnlyList<long> classCounts)
    {
        if (classCounts.Count < 2) throw new ArgumentException("need the counts of at least two classes");
        if (predicted < 0 || predicted >= classCounts.Count) throw new ArgumentOutOfRangeException(nameof(predicted), predicted, $"not a class 0–{classCounts.Count - 1}");
        long total = classCounts.Sum();
        if (total <= 0) throw new ArgumentException("class counts must add up to at least one example");
        return Floor(classCounts.Count) + (double)(total - classCounts[predicted]) / total;
    }

    /// <summary>
    /// The same value as the float32 mean libtorch computes: each row's loss rounded to float32, then averaged in
    /// float32 by torch (so it can be compared with a measured loss to float32 precision).
    /// </summary>
    public static float AllPredictedFloat32(int predicted, Tensor labels, int classes = 2)
    {
        using var scope = NewDisposeScope();
        var onehot = nn.functional.one_hot(HeldScalars.Filled(labels.shape[0], predicted, ScalarType.Int64, labels.device), classes).to_type(ScalarType.Float32);
        return nn.functional.cross_entropy(onehot, labels.to_type(ScalarType.Int64)).item<float>();
    }

    /// <summary>
    /// The analytic loss of a saturated state: each output rounded to 0 or 1, then the mean of <see cref="Row"/>
    /// over the examples (in double precision). For outputs that really are saturated this is the value the loss
    /// must show; outputs farther than <paramref name="tolerance"/> from 0 or 1 are refused (not saturated).
    /// </summary>
    public static double Expected(IReadOnlyList<float[]> outputs, IReadOnlyList<long> labels, double tolerance = 1e-6)
    {
        if (outputs.Count == 0 || outputs.Count != labels.Count) throw new ArgumentException($"{outputs.Count} output rows for {labels.Count} labels");
        double sum = 0;
        for (int i = 0; i < outputs.Count; i++)
        {
            var u = outputs[i].Select(v =>
            {
                double r = Math.Round((double)v);
                if (!(v >= 0 && v <= 1) || Math.Abs(v - r) > tolerance)
                    throw new ArgumentException($"output {v:G6} in row {i} is not saturated (not within {tolerance:G2} of 0 or 1)");
                return r;
            }).ToArray();
            sum += Row(u, (int)labels[i]);
        }
        return sum / outputs.Count;
    }

    /// <summary>The plateaus a loss of saturated outputs can sit on for these class counts (name → value).</summary>
    public static IReadOnlyDictionary<string, double> Plateaus(IReadOnlyList<long> classCounts)
    {
        int c = classCounts.Count;
        var result = new Dictionary<string, double>
        {
            ["floor (all right, saturated)"] = Floor(c),
            ["all rows [1,…,1]: log C"] = AllOnes(c),
            ["ceiling (all wrong, saturated)"] = Ceiling(c),
        };
        for (int k = 0; k < c; k++) result[$"all predicted as class {k}"] = AllPredicted(k, classCounts);
        return result;
    }
}

/// <summary>
/// Static-style check on the tensor given to a loss that expects logits (softmax cross-entropy, BCE-with-logits):
/// fires when every value lies in [0,1] — the tensor is already a sigmoid or softmax output — for
/// <see cref="Patience"/> consecutive steps. A softmax output is recognised at once (rows sum to 1).
/// </summary>
public sealed class ProbabilitiesIntoLogitsLoss : Check
{
    long _streak, _since = -1;

    /// <param name="patience">Consecutive steps of [0,1] outputs before firing. Raw logits of a fresh model can
    /// sit inside [0,1] for a few steps; they leave it once the model learns. Rows summing to 1 fire at once.</param>
    public ProbabilitiesIntoLogitsLoss(int patience = 20)
    {
        if (patience < 1) throw new ArgumentOutOfRangeException(nameof(patience), patience, "patience must be at least 1 step");
        Patience = patience;
    }

    public int Patience { get; }
    public override string Name => "probabilities-into-logits-loss";

    public void Observe(Training.StepContext ctx) => Observe(ctx.Step, ctx.Outputs);

    public void Observe(long step, Tensor lossInput)
    {
        using var scope = NewDisposeScope();
        var o = lossInput.detach().to_type(ScalarType.Float64);
        double min = o.min().item<double>(), max = o.max().item<double>();
        bool unit = min >= 0 && max <= 1;
        double rowSumError = double.NaN;
        if (unit && o.dim() == 2 && o.shape[1] > 1) rowSumError = o.sum(1).Minus(1L).abs().max().item<double>();
        bool softmax = unit && rowSumError <= 1e-5;
        if (!unit) { _streak = 0; _since = -1; return; }
        if (_streak++ == 0) _since = step;
        if (softmax || _streak >= Patience)
            Fire(step,
                softmax
                    ? "the tensor given to a logits loss is a probability vector per row: every value in [0,1] and every row sums to 1 (softmax, or saturated one-hot sigmoid rows)"
                    : $"the tensor given to a logits loss has stayed inside [0,1] for {_streak} steps: it looks like sigmoid outputs, not logits",
                new Dictionary<string, double> { ["min"] = min, ["max"] = max, ["max_row_sum_error"] = rowSumError, ["since_step"] = _since, ["steps"] = _streak },
                "give the loss raw logits: remove the final sigmoid/softmax from the model (apply it only when reporting probabilities)",
                "01-loss-plateau");
    }

    public override void Reset() { base.Reset(); _streak = 0; _since = -1; }
}

/// <summary>Fires when at least <see cref="Threshold"/> of the outputs are saturated (see <see cref="Probes.OutputSaturation"/>).</summary>
public sealed class SaturatedOutputs : Check
{
    public SaturatedOutputs(double threshold = 0.99, double epsilon = 1e-6)
    {
        if (!(threshold > 0 && threshold <= 1)) throw new ArgumentOutOfRangeException(nameof(threshold), threshold, "threshold is a fraction in (0, 1]");
        Threshold = threshold; Epsilon = epsilon;
    }

    public double Threshold { get; }
    public double Epsilon { get; }
    public override string Name => "saturated-outputs";

    public void Observe(Training.StepContext ctx) => Observe(ctx.Step, ctx.Outputs);

    public void Observe(long step, Tensor outputs)
    {
        var (saturated, _) = Probes.OutputSaturation.Measure(outputs, Epsilon);
        Observe(step, saturated);
    }

    public void Observe(long step, double saturatedFraction)
    {
        if (saturatedFraction >= Threshold)
            Fire(step, $"{saturatedFraction:P1} of the outputs are within {Epsilon:G2} of 0 or 1: the squashing function passes back (almost) no gradient",
                new Dictionary<string, double> { ["saturated_fraction"] = saturatedFraction, ["threshold"] = Threshold, ["epsilon"] = Epsilon },
                "feed logits to the loss (no final sigmoid/softmax) and normalise the inputs so pre-activations stay small",
                "01-loss-plateau");
    }
}

/// <summary>
/// Fires when the last <see cref="Window"/> observed losses (typically the evaluation loss after each step) have a
/// standard deviation below <see cref="Tolerance"/> — a loss that no longer changes at all — while the loss is
/// above <see cref="MinLoss"/> (a loss frozen near zero is a finished fit, not a bug).
/// </summary>
public sealed class FrozenLoss : Check
{
    readonly Queue<(long Step, double Loss)> _window = new();

    public FrozenLoss(int window = 5, double tolerance = 1e-6, double minLoss = 1e-3)
    {
        if (window < 2) throw new ArgumentOutOfRangeException(nameof(window), window, "a window needs at least two losses");
        if (!(tolerance > 0)) throw new ArgumentOutOfRangeException(nameof(tolerance), tolerance, "tolerance must be positive");
        Window = window; Tolerance = tolerance; MinLoss = minLoss;
    }

    public int Window { get; }
    public double Tolerance { get; }
    public double MinLoss { get; }
    public override string Name => "frozen-loss";

    public void Observe(long step, double loss)
    {
        if (!double.IsFinite(loss)) { _window.Clear(); return; }
        _window.Enqueue((step, loss));
        if (_window.Count > Window) _window.Dequeue();
        if (_window.Count < Window) return;
        double mean = _window.Average(w => w.Loss);
        double std = Math.Sqrt(_window.Sum(w => (w.Loss - mean) * (w.Loss - mean)) / (Window - 1));
        if (std < Tolerance && mean > MinLoss)
            Fire(step, $"the loss has not changed over {Window} observations (std {std:G3} < {Tolerance:G2}) at {mean:G8}",
                new Dictionary<string, double> { ["loss"] = mean, ["std"] = std, ["since_step"] = _window.Peek().Step, ["window"] = Window },
                "nothing reaches the weights: look at the gradient norms and the outputs the loss is given (saturated sigmoid/softmax?)",
                "01-loss-plateau");
    }

    public override void Reset() { base.Reset(); _window.Clear(); }
}

/// <summary>
/// Fires when the loss sits, for <see cref="Patience"/> consecutive observations, within <see cref="Tolerance"/>
/// of a value that only saturated outputs fed to a softmax cross-entropy produce (see
/// <see cref="SquashedCrossEntropy.Plateaus"/>): the floor log(1+e⁻¹) ≈ 0.3133, log 2, the ceiling, or
/// floor + fraction of the other classes when everything is predicted as one class. The class counts come from
/// the targets of each observation.
/// </summary>
public sealed class LossAtAnalyticFloor : Check
{
    long _streak, _since = -1;
    string? _plateau;

    public LossAtAnalyticFloor(int patience = 3, double tolerance = 1e-5)
    {
        if (patience < 1) throw new ArgumentOutOfRangeException(nameof(patience), patience, "patience must be at least 1");
        if (!(tolerance > 0)) throw new ArgumentOutOfRangeException(nameof(tolerance), tolerance, "tolerance must be positive");
        Patience = patience; Tolerance = tolerance;
    }

    public int Patience { get; }
    public double Tolerance { get; }
    public override string Name => "loss-at-analytic-floor";

    /// <summary>The loss and the class-index targets it was computed on.</summary>
    public void Observe(long step, double loss, Tensor targets, int classes = 2)
    {
        if (targets.dim() != 1 || targets.is_floating_point())
            throw new ArgumentException($"targets must be class indices [N], got [{string.Join(",", targets.shape)}] {targets.dtype}");
        using var counts = targets.to_type(ScalarType.Int64).bincount(null, classes);
        Observe(step, loss, counts.cpu().data<long>().ToArray());
    }

    public void Observe(long step, double loss, IReadOnlyList<long> classCounts)
    {
        var hit = SquashedCrossEntropy.Plateaus(classCounts)
            .Select(p => (p.Key, p.Value, Distance: Math.Abs(loss - p.Value)))
            .OrderBy(p => p.Distance).First();
        if (!(hit.Distance <= Tolerance) || (_plateau != null && _plateau != hit.Key)) { _streak = 0; _since = -1; _plateau = null; }
        if (!(hit.Distance <= Tolerance)) return;
        if (_streak++ == 0) { _since = step; _plateau = hit.Key; }
        if (_streak >= Patience)
            Fire(step, $"the loss {loss:G8} sits on the analytic plateau '{hit.Key}' = {hit.Value:G8}, a value only saturated outputs fed to a softmax cross-entropy give",
                new Dictionary<string, double> { ["loss"] = loss, ["plateau"] = hit.Value, ["distance"] = hit.Distance, ["since_step"] = _since },
                "the model's outputs are squashed before a loss that squashes again: return raw logits",
                "01-loss-plateau");
    }

    public override void Reset() { base.Reset(); _streak = 0; _since = -1; _plateau = null; }
}
