using TrainingForensics.Probes;
using TrainingForensics.Training;

namespace TrainingForensics.Diagnostics;

/// <summary>
/// Flags BatchNorm running statistics that cannot follow the batch statistics — the cause of "fine in training,
/// flat in inference". Fed with <see cref="BatchNormProbe"/> measurements (and optionally train/eval gaps), it
/// fires when, for <see cref="Patience"/> consecutive measurements, either
/// <list type="bullet">
/// <item>the median over layers of the bias-corrected variance ratio σ²_run/σ²_B exceeds <see cref="VarRatioThreshold"/>
/// (the running variance's initial value 1 is discounted by its remaining weight (1−momentum)^t, so the normal
/// warm-up of a slow running average does not count — only batches whose variance keeps falling away from it), or</item>
/// <item>the median over layers of |μ_B − μ_run|/√σ²_run exceeds <see cref="MeanShiftThreshold"/> once the running average
/// has forgotten 99% of its initial value, or</item>
/// <item>the eval-mode loss exceeds the train-mode loss on the same images by more than <see cref="RelativeGapThreshold"/>
/// (0.5, as TheDeepChecker's train/eval check) once the running average has forgotten 99% of its initial value.</item>
/// </list>
/// </summary>
public sealed class BatchNormDriftCheck : Check
{
    public override string Name => "bn-running-stats-lag";

    public double VarRatioThreshold { get; init; } = 3.0;
    public double MeanShiftThreshold { get; init; } = 1.0;
    public double RelativeGapThreshold { get; init; } = 0.5;
    public int Patience { get; init; } = 2;

    int _varStreak, _shiftStreak, _gapStreak;

    /// <summary>The last measured median (over layers) bias-corrected variance ratio.</summary>
    public double LastVarRatio { get; private set; } = double.NaN;
    /// <summary>The last measured median (over layers) mean shift.</summary>
    public double LastMeanShift { get; private set; } = double.NaN;

    public void Observe(long step, IReadOnlyList<BatchNormLayerStats> layers)
    {
        if (layers is null || layers.Count == 0) throw new ArgumentException("no BatchNorm statistics to check");
        double varRatio = Math.Exp(Median(layers.Select(l => l.CorrectedLogVarRatio)));
        double shift = Median(layers.Select(l => l.MeanShift));
        double share = layers.Max(l => l.InitialShare);
        LastVarRatio = varRatio; LastMeanShift = shift;
        _varStreak = varRatio > VarRatioThreshold ? _varStreak + 1 : 0;
        _shiftStreak = share < 0.01 && shift > MeanShiftThreshold ? _shiftStreak + 1 : 0;
        if (_varStreak >= Patience || _shiftStreak >= Patience)
        {
            var worst = layers.OrderByDescending(l => l.CorrectedLogVarRatio).First();
            Fire(step,
                _varStreak >= Patience
                    ? $"running variance {varRatio:G3}× the batch variance (median over {layers.Count} BN layers, after discounting the initial value): eval mode squashes activations"
                    : $"running mean off by {shift:G3} running standard deviations (median over {layers.Count} BN layers)",
                new Dictionary<string, double>
                {
                    ["median_var_ratio_corrected"] = varRatio,
                    ["median_mean_shift"] = shift,
                    ["worst_layer_var_ratio"] = Math.Exp(worst.CorrectedLogVarRatio),
                    ["initial_value_share"] = share,
                    ["momentum"] = layers[0].Momentum ?? double.NaN,
                },
                "re-estimate BN statistics after training (BatchNormRecalibration.Run), raise BN momentum (0.003 → 0.1), or stop the weight decay from shrinking BN-scaled conv weights (lower lr / decoupled decay)",
                "03-batchnorm-train-vs-eval");
        }
    }

    /// <summary>Feeds a train/eval gap measured on fixed images; ignored while the running average still holds ≥1% of its initial value.</summary>
    public void ObserveGap(TrainEvalGapResult gap, double? momentum)
    {
        ArgumentNullException.ThrowIfNull(gap);
        double warmup = momentum is { } m && m < 1 ? BatchNormRecalibration.StepsToForget(m) : 0;
        _gapStreak = gap.Step >= warmup && gap.RelativeGap > RelativeGapThreshold ? _gapStreak + 1 : 0;
        if (_gapStreak >= Patience)
            Fire(gap.Step, $"eval-mode loss {gap.EvalLoss:G3} is {gap.RelativeGap:P0} above the train-mode loss {gap.TrainModeLoss:G3} on the same images",
                new Dictionary<string, double>
                {
                    ["eval_loss"] = gap.EvalLoss, ["train_mode_loss"] = gap.TrainModeLoss, ["relative_gap"] = gap.RelativeGap,
                    ["eval_accuracy"] = gap.EvalAccuracy, ["train_mode_accuracy"] = gap.TrainModeAccuracy,
                },
                "compare BN running statistics with batch statistics (BatchNormProbe); re-estimate them (BatchNormRecalibration.Run) or raise BN momentum",
                "03-batchnorm-train-vs-eval");
    }

    public override void Reset()
    {
        base.Reset();
        _varStreak = _shiftStreak = _gapStreak = 0;
        LastVarRatio = LastMeanShift = double.NaN;
    }

    static double Median(IEnumerable<double> values)
    {
        var v = values.OrderBy(x => x).ToArray();
        return v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }
}
