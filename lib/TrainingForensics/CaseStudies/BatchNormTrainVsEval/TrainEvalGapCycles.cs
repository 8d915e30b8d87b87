using Microsoft.Data.Analysis;
using TrainingForensics.Probes;
using TrainingForensics.Results;

namespace TrainingForensics.CaseStudies.BatchNormTrainVsEval;

/// <summary>
/// A sudden rise of the total conv-weight norm: from <see cref="Low"/> (at <see cref="LowStep"/>) to
/// <see cref="High"/> (at <see cref="HighStep"/>). <see cref="PeakBefore"/> is the highest norm between the previous
/// jump (or the start) and this one, so <see cref="ShrinkBefore"/> says how far the weights had shrunk before it.
/// <see cref="LossSpike"/> is the largest training-step loss inside the jump divided by the median step loss of the
/// run's second half (NaN when the step losses were not given).
/// </summary>
public sealed record WeightNormJump(long LowStep, double Low, long HighStep, double High, double PeakBefore, double LossSpike)
{
    /// <summary>High / Low.</summary>
    public double Rise => High / Low;

    /// <summary>1 − Low / PeakBefore: the fraction of the norm lost between the previous high and this jump.</summary>
    public double ShrinkBefore => 1 - Low / PeakBefore;

    /// <summary>Largest eval-mode loss measured from <see cref="LowStep"/> to <see cref="HighStep"/> (filled in by TrainEvalGapCycles.Analyze; NaN from <see cref="TrainEvalGapCycles.Jumps"/> alone).</summary>
    public double PeakEvalLoss { get; init; } = double.NaN;
}

/// <summary>
/// The stretch between two jumps (or from the last jump to the end of the run), where the decay shrinks the conv weights:
/// the norm at its start and end, the smallest eval loss reached in it and the eval loss at its end (just before the next
/// jump), and the largest train-mode loss in it.
/// </summary>
public sealed record ShrinkPhase(long FromStep, long ToStep, double NormFrom, double NormTo, double MinEvalLoss, double EndEvalLoss,
    double MaxTrainModeLoss)
{
    /// <summary>EndEvalLoss / MinEvalLoss: how much worse eval mode got while the weights shrank.</summary>
    public double EvalLossRise => EndEvalLoss / MinEvalLoss;
}

/// <summary>What TrainEvalGapCycles.Analyze found in a long run.</summary>
/// <param name="Norms">Total conv-weight norm √(Σ‖W_l‖²) at every measurement.</param>
/// <param name="Jumps">Rises of the norm by at least the rise factor within the window.</param>
/// <param name="Phases">Shrink phases after each jump that last at least <c>minPhasePoints</c> measurements.</param>
/// <param name="Cycles">Jumps preceded by a shrink of at least the shrink fraction: shrink, then spike.</param>
/// <param name="LateFrom">Measurements after this step count as late.</param>
/// <param name="LatePoints">Number of late measurements.</param>
/// <param name="LateCollapseShare">Share of late measurements with eval loss above (1 + gap) × train-mode loss.</param>
/// <param name="LateLowAccuracyShare">Share of late measurements with eval accuracy below the accuracy threshold.</param>
/// <param name="LateTrainModeAccuracy">Mean train-mode accuracy over the late measurements.</param>
/// <param name="LateMaxTrainModeLoss">Largest train-mode loss over the late measurements.</param>
/// <param name="LateMaxEvalLoss">Largest eval loss over the late measurements.</param>
public sealed record GapCycleAnalysis(IReadOnlyList<(long Step, double Norm)> Norms, IReadOnlyList<WeightNormJump> Jumps,
    IReadOnlyList<ShrinkPhase> Phases, int Cycles, long LateFrom, int LatePoints, double LateCollapseShare, double LateLowAccuracyShare,
    double LateTrainModeAccuracy, double LateMaxTrainModeLoss, double LateMaxEvalLoss)
{
    /// <summary>The smallest eval-loss rise over the shrink phases (NaN without phases).</summary>
    public double MinEvalLossRise => Phases.Count > 0 ? Phases.Min(p => p.EvalLossRise) : double.NaN;

    /// <summary>The smallest training-loss spike over the jumps, in median step losses (NaN without jumps).</summary>
    public double MinLossSpike => Jumps.Count > 0 ? Jumps.Min(j => j.LossSpike) : double.NaN;

    /// <summary>One row per jump: its steps, the norm's rise, the shrink before it, its loss spike and its peak eval loss over <paramref name="zeroLoss"/>.</summary>
    public DataFrame JumpsFrame(double zeroLoss) => new(
        new Int64DataFrameColumn("from_step", Jumps.Select(j => j.LowStep)), new Int64DataFrameColumn("to_step", Jumps.Select(j => j.HighStep)),
        new DoubleDataFrameColumn("norm_rise", Jumps.Select(j => Math.Round(j.Rise, 2))),
        new DoubleDataFrameColumn("shrink_before", Jumps.Select(j => Math.Round(j.ShrinkBefore, 2))),
        new DoubleDataFrameColumn("loss_spike", Jumps.Select(j => Math.Round(j.LossSpike, 1))),
        new DoubleDataFrameColumn("peak_eval_loss_over_zero_output", Jumps.Select(j => Math.Round(j.PeakEvalLoss / zeroLoss, 2))));

    /// <summary>One row per shrink phase: its steps, the norm at its ends, the eval loss's rise and the largest train-mode loss.</summary>
    public DataFrame PhasesFrame() => new(
        new Int64DataFrameColumn("phase_from", Phases.Select(p => p.FromStep)), new Int64DataFrameColumn("phase_to", Phases.Select(p => p.ToStep)),
        new DoubleDataFrameColumn("norm_from", Phases.Select(p => Math.Round(p.NormFrom, 2))), new DoubleDataFrameColumn("norm_to", Phases.Select(p => Math.Round(p.NormTo, 2))),
        new DoubleDataFrameColumn("eval_loss_rise", Phases.Select(p => Math.Round(p.EvalLossRise, 1))),
        new DoubleDataFrameColumn("max_train_mode_loss", Phases.Select(p => Math.Round(p.MaxTrainModeLoss, 5))));

    /// <summary>
    /// Records regime B's figures (with the default thresholds of <see cref="TrainEvalGapCycles.Analyze(KeypointTrainingRun, double, int, double, double, double, double, int)"/>):
    /// the run's <paramref name="steps"/>, cycles, late shares, the smallest rise and spike, and the late maxima over <paramref name="zeroLoss"/>.
    /// </summary>
    public void Record(long steps, double zeroLoss)
    {
        Figures.Record("regime_b_steps", steps, "steps");
        Figures.Record("regime_b_cycles", (long)Cycles, null, "conv-weight-norm jumps (≥25% within 2 measurements) after a shrink of ≥30%");
        Figures.Record("regime_b_late_collapse_share", LateCollapseShare, null, "late evaluation points with eval loss > 1.5× train-mode loss");
        Figures.Record("regime_b_late_low_accuracy_share", LateLowAccuracyShare, null, "late evaluation points with eval accuracy < 0.9");
        Figures.Record("regime_b_late_train_mode_accuracy", LateTrainModeAccuracy);
        Figures.Record("regime_b_min_eval_loss_rise_per_phase", MinEvalLossRise, "×");
        Figures.Record("regime_b_min_loss_spike_at_jumps", MinLossSpike, "× median step loss");
        Figures.Record("regime_b_late_max_train_mode_loss_over_zero_output", LateMaxTrainModeLoss / zeroLoss, "×");
        Figures.Record("regime_b_late_max_eval_loss_over_zero_output", LateMaxEvalLoss / zeroLoss, "×");
    }
}

/// <summary>
/// Finds the recurring cycles of a long BatchNorm run with weight decay: the decay shrinks the (scale-invariant) conv
/// weights, eval mode falls behind, then an optimiser spike blows the weights up again. Works on the curve and the
/// weight norms a <see cref="KeypointTraining"/> run measured.
/// </summary>
public static class TrainEvalGapCycles
{
    /// <summary>
    /// Jumps of <paramref name="norms"/>: a measurement at least <paramref name="rise"/> times the smallest of the
    /// <paramref name="window"/> measurements before it starts a jump; the jump runs from that smallest value while the norm keeps
    /// rising. <paramref name="stepLosses"/> (optional, index k = loss of the (k+1)-th step) gives each jump its loss spike.
    /// </summary>
    public static IReadOnlyList<WeightNormJump> Jumps(IReadOnlyList<(long Step, double Norm)> norms, double rise = 1.25, int window = 2,
        IReadOnlyList<double>? stepLosses = null)
    {
        ArgumentNullException.ThrowIfNull(norms);
        if (!(rise > 1)) throw new ArgumentOutOfRangeException(nameof(rise), rise, "a jump must be a rise: factor above 1");
        if (window < 1) throw new ArgumentOutOfRangeException(nameof(window), window, "window must be at least one measurement");
        if (norms.Any(n => !(n.Norm > 0) || double.IsInfinity(n.Norm)))
            throw new ArgumentException("weight norms must be positive and finite", nameof(norms));
        double median = double.NaN;
        if (stepLosses is { Count: > 1 })
        {
            var late = stepLosses.Skip(stepLosses.Count / 2).OrderBy(v => v).ToList();
            median = late[late.Count / 2];
        }
        var jumps = new List<WeightNormJump>();
        double peak = norms.Count > 0 ? norms[0].Norm : 0;
        int floor = 0; // a jump never reaches back before the end of the previous one
        for (int i = 1; i < norms.Count; i++)
        {
            int s = Math.Max(floor, i - window);
            for (int k = s + 1; k < i; k++) if (norms[k].Norm < norms[s].Norm) s = k;
            if (norms[i].Norm >= rise * norms[s].Norm)
            {
                int e = i;
                while (e + 1 < norms.Count && norms[e + 1].Norm > norms[e].Norm) e++;
                double spike = double.NaN;
                if (stepLosses is not null && !double.IsNaN(median))
                {
                    long from = norms[s].Step, to = Math.Min(norms[e].Step, stepLosses.Count);
                    double max = 0;
                    for (long k = from; k < to; k++) max = Math.Max(max, stepLosses[(int)k]);
                    spike = max / median;
                }
                jumps.Add(new WeightNormJump(norms[s].Step, norms[s].Norm, norms[e].Step, norms[e].Norm, Math.Max(peak, norms[s].Norm), spike));
                peak = norms[e].Norm;
                floor = e;
                i = e;
                continue;
            }
            peak = Math.Max(peak, norms[i].Norm);
        }
        return jumps;
    }

    /// <summary>
    /// Analyses a finished run: total conv-weight norms, jumps, shrink phases, cycles, and the late-run shares.
    /// "Late" = measurements after <paramref name="lateFraction"/> of the run; a late point counts as collapsed when the eval
    /// loss exceeds (1 + <paramref name="gap"/>) × the train-mode loss, as low when eval accuracy is below <paramref name="accuracy"/>.
    /// </summary>
    public static GapCycleAnalysis Analyze(KeypointTrainingRun run, double rise = 1.25, int window = 2, double shrink = 0.3,
        double lateFraction = 0.5, double gap = 0.5, double accuracy = 0.9, int minPhasePoints = 4)
    {
        ArgumentNullException.ThrowIfNull(run);
        var norms = run.BatchNorm.WeightNorms.Select(w => (w.Step, Math.Sqrt(w.Norms.Values.Sum(v => v * v)))).ToList();
        return Analyze(norms, run.Curve, run.Loop.History.Losses, run.Config.Steps, rise, window, shrink, lateFraction, gap, accuracy, minPhasePoints);
    }

    /// <summary>The same analysis on plain data: norms and curve measured at the same steps, step losses optional.</summary>
    public static GapCycleAnalysis Analyze(IReadOnlyList<(long Step, double Norm)> norms, IReadOnlyList<TrainEvalGapResult> curve,
        IReadOnlyList<double>? stepLosses, long totalSteps, double rise = 1.25, int window = 2, double shrink = 0.3,
        double lateFraction = 0.5, double gap = 0.5, double accuracy = 0.9, int minPhasePoints = 4)
    {
        ArgumentNullException.ThrowIfNull(norms);
        ArgumentNullException.ThrowIfNull(curve);
        if (norms.Count != curve.Count || norms.Where((n, i) => n.Step != curve[i].Step).Any())
            throw new ArgumentException("weight norms and the train/eval curve must be measured at the same steps", nameof(curve));
        if (!(lateFraction >= 0 && lateFraction < 1)) throw new ArgumentOutOfRangeException(nameof(lateFraction), lateFraction, "use a fraction in [0, 1)");
        if (!(shrink > 0 && shrink < 1)) throw new ArgumentOutOfRangeException(nameof(shrink), shrink, "use a fraction in (0, 1)");
        var jumps = Jumps(norms, rise, window, stepLosses)
            .Select(j => j with { PeakEvalLoss = curve.Where(c => c.Step >= j.LowStep && c.Step <= j.HighStep).Max(c => c.EvalLoss) }).ToList();
        var phases = new List<ShrinkPhase>();
        for (int j = 0; j < jumps.Count; j++)
        {
            long from = jumps[j].HighStep, to = j + 1 < jumps.Count ? jumps[j + 1].LowStep : curve[^1].Step;
            var points = Enumerable.Range(0, curve.Count).Where(i => curve[i].Step >= from && curve[i].Step <= to).ToList();
            if (points.Count < minPhasePoints) continue;
            phases.Add(new ShrinkPhase(from, to, norms[points[0]].Norm, norms[points[^1]].Norm,
                points.Min(i => curve[i].EvalLoss), curve[points[^1]].EvalLoss, points.Max(i => curve[i].TrainModeLoss)));
        }
        long lateFrom = (long)Math.Floor(totalSteps * lateFraction);
        var late = curve.Where(c => c.Step > lateFrom).ToList();
        if (late.Count == 0) throw new ArgumentException($"no measurements after step {lateFrom}", nameof(curve));
        return new GapCycleAnalysis(norms, jumps, phases, jumps.Count(j => j.ShrinkBefore >= shrink), lateFrom, late.Count,
            late.Count(c => c.RelativeGap > gap) / (double)late.Count, late.Count(c => c.EvalAccuracy < accuracy) / (double)late.Count,
            late.Average(c => c.TrainModeAccuracy), late.Max(c => c.TrainModeLoss), late.Max(c => c.EvalLoss));
    }
}
