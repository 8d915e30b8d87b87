using TorchSharp;
using TrainingForensics.Metrics;
using static TorchSharp.torch;

namespace TrainingForensics.Diagnostics.Doctor;

/// <summary>
/// Fires the first time the loss, a gradient or a weight is NaN or ±∞. No patience: one non-finite number
/// poisons every later step.
/// </summary>
public sealed class NonFiniteValues : Check
{
    public override string Name => "nan-or-inf";

    /// <summary>Checks one loss value.</summary>
    public void ObserveLoss(long step, double loss)
    {
        if (!double.IsFinite(loss))
            Fire(step, $"the loss is {loss}: from here on every gradient and weight the optimiser touches is poisoned",
                new Dictionary<string, double> { ["loss"] = loss },
                "look for log(0), division by zero or an exploding step before this one; lower the learning rate, clip gradients, or use the numerically stable *_with_logits losses",
                "04-diagnose-your-own-training");
    }

    /// <summary>Checks the total squared norms of the gradients and of the weights (NaN/∞ propagate into a sum).</summary>
    public void ObserveTensors(long step, double gradSquaredNorm, double weightSquaredNorm)
    {
        if (!double.IsFinite(gradSquaredNorm) || !double.IsFinite(weightSquaredNorm))
            Fire(step, !double.IsFinite(weightSquaredNorm)
                    ? "a weight is NaN or infinite: the model is destroyed"
                    : "a gradient is NaN or infinite (or overflows float32 when squared): the next update destroys the weights",
                new Dictionary<string, double> { ["grad_squared_norm"] = gradSquaredNorm, ["weight_squared_norm"] = weightSquaredNorm },
                "lower the learning rate or clip gradients (nn.utils.clip_grad_norm_); check the loss for log(0) and the inputs for NaN",
                "04-diagnose-your-own-training");
    }
}

/// <summary>
/// Vanishing gradients in AutoTrainer's terms: the first layer's gradient norm is at most
/// <see cref="RatioThreshold"/> (1e-3) of the last layer's AND at most <see cref="FirstNormThreshold"/> (1e-4), for
/// <see cref="Patience"/> consecutive measurements. When every gradient is exactly zero the ratio counts as 0.
/// </summary>
public sealed class VanishingGradients : Check
{
    int _streak;
    long _since = -1;

    public VanishingGradients(double ratioThreshold = 1e-3, double firstNormThreshold = 1e-4, int patience = 3)
    {
        if (!(ratioThreshold > 0) || !(firstNormThreshold > 0)) throw new ArgumentOutOfRangeException(nameof(ratioThreshold), "thresholds must be positive");
        if (patience < 1) throw new ArgumentOutOfRangeException(nameof(patience), patience, "patience must be at least 1");
        RatioThreshold = ratioThreshold; FirstNormThreshold = firstNormThreshold; Patience = patience;
    }

    public double RatioThreshold { get; }
    public double FirstNormThreshold { get; }
    public int Patience { get; }
    public override string Name => "vanishing-gradients";

    /// <param name="step">The training step measured.</param>
    /// <param name="first">‖∇W‖ of the first weight (in forward/parameter order).</param>
    /// <param name="last">‖∇W‖ of the last weight.</param>
    /// <param name="firstName">The first weight's name, for the finding's text.</param>
    /// <param name="lastName">The last weight's name.</param>
    public void Observe(long step, double first, double last, string firstName = "first layer", string lastName = "last layer")
    {
        if (!double.IsFinite(first) || !double.IsFinite(last)) { _streak = 0; return; }
        double ratio = last > 0 ? first / last : first == 0 ? 0 : double.PositiveInfinity;
        bool hit = ratio <= RatioThreshold && first <= FirstNormThreshold;
        if (!hit) { _streak = 0; _since = -1; return; }
        if (_streak++ == 0) _since = step;
        if (_streak >= Patience)
            Fire(step, last == 0
                    ? $"every layer's gradient is exactly zero ({_streak} measurements in a row): nothing reaches the weights"
                    : $"the gradient reaching {firstName} is {ratio:G3} of {lastName}'s and only {first:G3}: the first layers have stopped learning",
                new Dictionary<string, double> { ["first_grad_norm"] = first, ["last_grad_norm"] = last, ["ratio"] = ratio, ["since_step"] = _since },
                "look for saturating activations (sigmoid/tanh, or a sigmoid/softmax before a logits loss), a bad initialisation, or a too-deep plain stack (use ReLU, normalisation, residual connections)",
                "01-loss-plateau");
    }

    public override void Reset() { base.Reset(); _streak = 0; _since = -1; }
}

/// <summary>
/// Exploding gradients: the total gradient norm grows to <see cref="Factor"/> times its value at the start of
/// training (the median of the first three measurements) for <see cref="Patience"/> consecutive measurements.
/// </summary>
public sealed class ExplodingGradients : Check
{
    readonly List<double> _start = new();
    int _streak;

    public ExplodingGradients(double factor = 100, int patience = 2)
    {
        if (!(factor > 1)) throw new ArgumentOutOfRangeException(nameof(factor), factor, "the growth factor must exceed 1");
        if (patience < 1) throw new ArgumentOutOfRangeException(nameof(patience), patience, "patience must be at least 1");
        Factor = factor; Patience = patience;
    }

    public double Factor { get; }
    public int Patience { get; }
    public override string Name => "exploding-gradients";

    /// <summary>Total gradient norm at the start (NaN before three measurements).</summary>
    public double Baseline => _start.Count < 3 ? double.NaN : _start.OrderBy(x => x).ElementAt(1);

    /// <summary>Largest norm / baseline seen so far.</summary>
    public double MaxGrowth { get; private set; } = double.NaN;

    public void Observe(long step, double totalNorm)
    {
        if (!double.IsFinite(totalNorm)) return; // the NaN/Inf check reports those
        if (_start.Count < 3) { _start.Add(totalNorm); return; }
        double baseline = Baseline;
        if (!(baseline > 0)) return;
        double growth = totalNorm / baseline;
        MaxGrowth = double.IsNaN(MaxGrowth) ? growth : Math.Max(MaxGrowth, growth);
        _streak = growth >= Factor ? _streak + 1 : 0;
        if (_streak >= Patience)
            Fire(step, $"the gradient norm is {growth:G3}× its value at the start of training ({totalNorm:G3} vs {baseline:G3})",
                new Dictionary<string, double> { ["grad_norm"] = totalNorm, ["start_grad_norm"] = baseline, ["growth"] = growth },
                "lower the learning rate, clip gradients, and check that gradients are zeroed every step (zero_grad) and the loss is not summed where a mean was meant",
                "02-loss-scale-and-metrics");
    }

    public override void Reset() { base.Reset(); _start.Clear(); _streak = 0; MaxGrowth = double.NaN; }
}

/// <summary>
/// Dying ReLUs: the fraction of ReLU units that output zero for every example of a training batch (and, for
/// convolutions, every position) is at least <see cref="Threshold"/> (0.7, the zero-gradient fraction used by
/// AutoTrainer/DeepDiagnosis) for <see cref="Patience"/> consecutive measurements. A dead unit passes back no gradient.
/// </summary>
public sealed class DyingRelu : Check
{
    int _streak;

    public DyingRelu(double threshold = 0.7, int patience = 3)
    {
        if (!(threshold > 0 && threshold <= 1)) throw new ArgumentOutOfRangeException(nameof(threshold), threshold, "threshold is a fraction in (0, 1]");
        if (patience < 1) throw new ArgumentOutOfRangeException(nameof(patience), patience, "patience must be at least 1");
        Threshold = threshold; Patience = patience;
    }

    public double Threshold { get; }
    public int Patience { get; }
    public override string Name => "dying-relu";

    /// <param name="step">The training step measured.</param>
    /// <param name="deadFraction">Dead units / all ReLU units measured.</param>
    /// <param name="units">Number of units measured.</param>
    /// <param name="source">"activations" (forward hooks on ReLU modules) or "gradients" (zero gradient rows).</param>
    public void Observe(long step, double deadFraction, long units, string source = "activations")
    {
        if (units <= 0 || !double.IsFinite(deadFraction)) return;
        _streak = deadFraction >= Threshold ? _streak + 1 : 0;
        if (_streak >= Patience)
            Fire(step, source == "activations"
                    ? $"{deadFraction:P0} of the {units} ReLU units output zero for the whole batch: dead units pass back no gradient"
                    : $"{deadFraction:P0} of the {units} weight rows get exactly zero gradient: their units are dead",
                new Dictionary<string, double> { ["dead_fraction"] = deadFraction, ["units"] = units, ["threshold"] = Threshold },
                "lower the learning rate, check the initialisation (biases not strongly negative), or use LeakyReLU/ELU",
                "04-diagnose-your-own-training");
    }

    public override void Reset() { base.Reset(); _streak = 0; }
}

/// <summary>
/// The effective step size ‖ΔW‖/‖W‖ of one optimiser step (median over the weight matrices) outside
/// [<see cref="Low"/>, <see cref="High"/>] for <see cref="Patience"/> consecutive measurements: below, the optimiser
/// does not move the weights at all; above, each step replaces a large part of them.
/// </summary>
public sealed class UpdateRatioBand : Check
{
    int _low, _high;

    public UpdateRatioBand(double low = 1e-7, double high = 1.0, int patience = 3)
    {
        if (!(low >= 0 && high > low)) throw new ArgumentOutOfRangeException(nameof(high), $"band [{low}, {high}] is empty");
        if (patience < 1) throw new ArgumentOutOfRangeException(nameof(patience), patience, "patience must be at least 1");
        Low = low; High = high; Patience = patience;
    }

    public double Low { get; }
    public double High { get; }
    public int Patience { get; }
    public override string Name => "update-ratio";

    /// <summary>Largest median ratio seen so far.</summary>
    public double MaxSeen { get; private set; } = double.NaN;
    /// <summary>Smallest median ratio seen so far.</summary>
    public double MinSeen { get; private set; } = double.NaN;

    public void Observe(long step, double medianRatio)
    {
        if (!double.IsFinite(medianRatio)) return;
        MaxSeen = double.IsNaN(MaxSeen) ? medianRatio : Math.Max(MaxSeen, medianRatio);
        MinSeen = double.IsNaN(MinSeen) ? medianRatio : Math.Min(MinSeen, medianRatio);
        _low = medianRatio < Low ? _low + 1 : 0;
        _high = medianRatio > High ? _high + 1 : 0;
        if (_high >= Patience)
            Fire(step, $"each optimiser step changes the weights by {medianRatio:G3} of their norm (median over layers): steps larger than the weights themselves — the learning rate is far too high",
                new Dictionary<string, double> { ["median_update_ratio"] = medianRatio, ["high"] = High },
                "lower the learning rate (by 10× or more) or add warm-up; check that the loss is not summed where a mean was meant",
                "02-loss-scale-and-metrics");
        else if (_low >= Patience)
            Fire(step, $"each optimiser step changes the weights by only {medianRatio:G3} of their norm (median over layers): the weights are not moving",
                new Dictionary<string, double> { ["median_update_ratio"] = medianRatio, ["low"] = Low },
                "no gradient reaches the weights, or the learning rate / loss scale is far too small: check the gradient norms and the loss reduction",
                "02-loss-scale-and-metrics");
    }

    public override void Reset() { base.Reset(); _low = _high = 0; MaxSeen = MinSeen = double.NaN; }
}

/// <summary>
/// The loss on a fixed probe batch (eval mode) rises to more than <see cref="Factor"/> times its best value so far,
/// by more than a tenth of its first value, for <see cref="Patience"/> consecutive measurements: training diverges.
/// </summary>
public sealed class LossDiverging : Check
{
    double _first = double.NaN, _best = double.PositiveInfinity;
    int _streak;

    public LossDiverging(double factor = 2, int patience = 3)
    {
        if (!(factor > 1)) throw new ArgumentOutOfRangeException(nameof(factor), factor, "factor must exceed 1");
        if (patience < 1) throw new ArgumentOutOfRangeException(nameof(patience), patience, "patience must be at least 1");
        Factor = factor; Patience = patience;
    }

    public double Factor { get; }
    public int Patience { get; }
    public override string Name => "loss-diverging";

    public void Observe(long step, double loss)
    {
        if (!double.IsFinite(loss)) return;
        if (double.IsNaN(_first)) _first = loss;
        bool up = loss > Factor * _best && loss - _best > 0.1 * Math.Abs(_first);
        _streak = up ? _streak + 1 : 0;
        if (!up) _best = Math.Min(_best, loss);
        if (_streak >= Patience)
            Fire(step, $"the loss on a fixed batch has risen to {loss:G4}, {loss / _best:G3}× its best value {_best:G4}: training is diverging",
                new Dictionary<string, double> { ["loss"] = loss, ["best_loss"] = _best, ["first_loss"] = _first },
                "lower the learning rate; check that gradients are zeroed every step; in eval mode, compare BatchNorm running and batch statistics",
                "04-diagnose-your-own-training");
    }

    public override void Reset() { base.Reset(); _first = double.NaN; _best = double.PositiveInfinity; _streak = 0; }
}

/// <summary>
/// The shapes a framework's automatic "accuracy" would misread (see <see cref="AccuracyVariants"/>): class-index
/// vectors on both sides (categorical accuracy reads the whole batch as ONE row), or a single output column next to
/// labels of more than two classes (binary accuracy). Fed with the arguments given to a metric, or with the
/// targets and outputs given to the loss.
/// </summary>
public sealed class MetricInputShapes : Check
{
    public override string Name => "metric-label-shapes";

    /// <summary>Inspects one (labels, predictions) pair; returns the problem found, or null.</summary>
    public string? Observe(long step, Tensor yTrue, Tensor yPred, string source = "metric")
    {
        if (yTrue is null || yPred is null || yTrue.dim() == 0 || yPred.dim() == 0) return null;
        var (kind, reason) = AccuracyVariants.SelectForShapes(yTrue.shape, yPred.shape);
        string? problem = null;
        double maxLabel = double.NaN;
        if (kind == AccuracyKind.Categorical && yTrue.dim() == 1 && yPred.dim() == 1 && yTrue.shape[0] > 1)
            problem = $"{reason}: a vector of class indices is read as ONE one-hot row, so each batch counts as a single item (right or wrong)";
        else if (kind == AccuracyKind.Binary && !yTrue.is_floating_point() && yTrue.numel() > 0)
        {
            using var m = yTrue.max();
            maxLabel = m.to_type(ScalarType.Float64).item<double>();
            if (maxLabel > 1) problem = $"{reason}, but the labels go up to class {maxLabel:G}: one output column cannot tell {maxLabel + 1:G} classes apart";
        }
        if (problem != null)
            Fire(step, $"{source}: {problem}",
                new Dictionary<string, double> { ["label_rank"] = yTrue.dim(), ["prediction_rank"] = yPred.dim(), ["label_last_axis"] = yTrue.shape[^1], ["prediction_last_axis"] = yPred.shape[^1], ["max_label"] = maxLabel },
                "give the metric scores [N,C] with class indices [N] (sparse categorical), or compare argmax'd predictions element-wise (Metrics.Accuracy refuses ambiguous shapes)",
                "02-loss-scale-and-metrics");
        return problem;
    }
}

/// <summary>
/// A sigmoid or softmax is the model's last layer while the loss applies its own softmax (shift-invariant:
/// loss(o + c) = loss(o)): the outputs are squashed twice. A static check, fired at the first observation.
/// </summary>
internal sealed class SquashingLayerBeforeLogitsLoss : Check
{
    public override string Name => "squashing-layer-before-logits-loss";

    public void Observe(long step, string lastLayer, string lastLayerType)
    {
        Fire(step, $"the model's last layer '{lastLayer}' is a {lastLayerType}, and the loss applies its own softmax: outputs are squashed twice and the gradient vanishes as they saturate",
            new Dictionary<string, double>(),
            "remove the final sigmoid/softmax from the model and give the loss raw logits (apply it only when reporting probabilities)",
            "01-loss-plateau");
    }
}

/// <summary>
/// Forward passes without gradients (an evaluation) while the model is still in training mode, on
/// <see cref="Occasions"/> different training steps: every BatchNorm layer normalises with the evaluation batch's own
/// statistics and folds them into its running statistics, and dropout stays on — the reported figures are not eval-mode
/// figures, and training is changed. Re-estimating BatchNorm statistics on purpose looks the same once; it is rarely
/// repeated, hence more than one occasion. Added after the clinic's first run, where this was a held-out bug it missed.
/// </summary>
public sealed class EvaluationInTrainingMode : Check
{
    readonly HashSet<long> _steps = new();

    public EvaluationInTrainingMode(int occasions = 2)
    {
        if (occasions < 1) throw new ArgumentOutOfRangeException(nameof(occasions), occasions, "need at least one occasion");
        Occasions = occasions;
    }

    public int Occasions { get; }
    public override string Name => "evaluation-in-training-mode";

    /// <summary>One forward pass without gradients in training mode, after training step <paramref name="step"/>.</summary>
    /// <param name="step">The last training step before the pass.</param>
    /// <param name="layers">The mode-dependent layers it went through (e.g. "2 BatchNorm, 1 dropout").</param>
    public void Observe(long step, string layers)
    {
        _steps.Add(step);
        if (_steps.Count >= Occasions)
            Fire(step, $"forward passes without gradients ran in training mode after {_steps.Count} different steps: the {layers} layer(s) behaved as in training (BatchNorm used and updated batch statistics, dropout dropped units)",
                new Dictionary<string, double> { ["occasions"] = _steps.Count, ["first_step"] = _steps.Min() },
                "call model.eval() before evaluating (and model.train() before training again); to re-estimate BatchNorm statistics on purpose use BatchNormRecalibration.Run",
                "03-batchnorm-train-vs-eval");
    }

    public override void Reset() { base.Reset(); _steps.Clear(); }
}

/// <summary>
/// Gradients accumulating across optimiser steps (zero_grad forgotten). The doctor adds a zero leaf to one biased
/// layer's output on the steps it checks; that leaf's gradient is the bias gradient of this backward pass alone.
/// Whatever else the bias's <c>.grad</c> holds was there before the pass. It fires when that leftover equals the
/// gradient observed at the previous step (to float rounding) and the optimiser changed the bias between the two
/// forward passes: a gradient already used for an update is used again. Deliberate accumulation over micro-batches
/// (no update in between) and zeroing between forward and backward do not fire. Added after the clinic's first runs,
/// where this was a held-out bug it missed.
/// </summary>
public sealed class GradientsNotZeroed : Check
{
    readonly int _patience;
    int _run;

    public GradientsNotZeroed(int patience = 2)
    {
        if (patience < 1) throw new ArgumentOutOfRangeException(nameof(patience), patience, "patience must be at least 1 observation");
        _patience = patience;
    }

    public override string Name => "gradients-not-zeroed";

    /// <summary>Relative tolerance of "equals" (float rounding of two sums in different orders is far below it).</summary>
    public const double Tolerance = 1e-3;

    /// <param name="step">The checked training step.</param>
    /// <param name="parameter">The watched bias, e.g. "fc3.bias".</param>
    /// <param name="accumulated">‖.grad‖ after this step's backward pass.</param>
    /// <param name="leftover">‖.grad − this pass's own gradient‖: what .grad held before the pass.</param>
    /// <param name="leftoverVsPrevious">‖leftover − .grad observed at the previous step‖.</param>
    /// <param name="update">‖Δbias‖ between the previous step's forward pass and this one's.</param>
    public void Observe(long step, string parameter, double accumulated, double leftover, double leftoverVsPrevious, double update)
    {
        bool carried = double.IsFinite(accumulated) && accumulated > 0 && leftover > Tolerance * accumulated
            && leftoverVsPrevious <= Tolerance * leftover && update > 0;
        _run = carried ? _run + 1 : 0;
        if (_run >= _patience)
            Fire(step, $"gradients accumulate across optimiser steps: before this step's backward pass {parameter}.grad still held the previous step's gradient ({leftover / accumulated:P0} of the gradient the optimiser now applies), although the optimiser had updated the weights since",
                new Dictionary<string, double> { ["accumulated_grad_norm"] = accumulated, ["leftover_grad_norm"] = leftover, ["leftover_fraction"] = leftover / accumulated, ["bias_update_norm"] = update, ["consecutive_steps"] = _run },
                "call optimizer.zero_grad() once per step, before loss.backward() (to accumulate over micro-batches on purpose, step and zero only after the last one)",
                "04-diagnose-your-own-training");
    }

    public override void Reset() { base.Reset(); _run = 0; }
}
