using Plotly.NET;
using TrainingForensics.Charts;
using TrainingForensics.Probes;
using TrainingForensics.Results;

namespace TrainingForensics.CaseStudies.BatchNormTrainVsEval;

/// <summary>
/// The shape the original report described, measured on one run's curve: eval mode first gets good — <see cref="Best"/>,
/// the first measurement where its loss is within (1 + gap) of the train-mode loss on the same images — later it gets much
/// worse (<see cref="Worst"/>: the largest eval/train-mode loss ratio after that), while train mode stays good throughout
/// (<see cref="MaxTrainModeLossAfterBest"/>, <see cref="MinTrainModeAccuracyAfterBest"/>).
/// </summary>
public sealed record ReportedShape(TrainEvalGapResult Best, TrainEvalGapResult Worst, double MaxTrainModeLossAfterBest,
    double MinTrainModeAccuracyAfterBest)
{
    /// <summary>Eval loss over train-mode loss at the best point: near 1 when eval mode is as good as train mode.</summary>
    public double GapAtBest => Best.EvalLoss / Best.TrainModeLoss;

    /// <summary>Eval loss over train-mode loss at the worst point.</summary>
    public double GapAtWorst => Worst.EvalLoss / Worst.TrainModeLoss;

    /// <summary>How many times the eval loss rose from the best point to the worst.</summary>
    public double EvalLossRise => Worst.EvalLoss / Best.EvalLoss;

    /// <summary>
    /// Finds the shape on <paramref name="curve"/>; null when eval mode never came within (1 + <paramref name="gap"/>) of
    /// train mode (it never caught up: nothing could collapse) or nothing was measured after that.
    /// </summary>
    public static ReportedShape? Find(IReadOnlyList<TrainEvalGapResult> curve, double gap = 0.5)
    {
        ArgumentNullException.ThrowIfNull(curve);
        if (!(gap > 0)) throw new ArgumentOutOfRangeException(nameof(gap), gap, "the gap is a positive fraction of the train-mode loss");
        var best = curve.FirstOrDefault(c => c.EvalLoss <= (1 + gap) * c.TrainModeLoss);
        if (best is null) return null;
        var after = curve.Where(c => c.Step > best.Step).ToList();
        if (after.Count == 0) return null;
        var worst = after.MaxBy(c => c.EvalLoss / c.TrainModeLoss)!;
        return new ReportedShape(best, worst, after.Max(c => c.TrainModeLoss), after.Min(c => c.TrainModeAccuracy));
    }

    /// <summary>
    /// The median, over the measurements after <paramref name="afterStep"/>, of eval loss with the statistics the shadow of
    /// <paramref name="momentum"/> kept over the train-mode loss at the same step: near 1 when that momentum keeps eval mode with train mode.
    /// </summary>
    public static double ShadowGapAfter(KeypointTrainingRun run, double momentum, long afterStep)
    {
        ArgumentNullException.ThrowIfNull(run);
        var train = run.Curve.ToDictionary(c => c.Step, c => c.TrainModeLoss);
        var ratios = run.ShadowCurveOf(momentum).Where(p => p.Step > afterStep).Select(p => p.EvalLoss / train[p.Step]).OrderBy(v => v).ToList();
        if (ratios.Count == 0) throw new ArgumentException($"no measurement after step {afterStep}", nameof(afterStep));
        return ratios.Count % 2 == 1 ? ratios[ratios.Count / 2] : (ratios[ratios.Count / 2 - 1] + ratios[ratios.Count / 2]) / 2;
    }

    /// <summary>Records the shape's figures (losses over <paramref name="zeroLoss"/>, the all-zero output's) and the shadow momentum's median gap.</summary>
    public void Record(double zeroLoss, double shadowGap)
    {
        Figures.Record("regime_b_catch_up_step", Best.Step, "step", "first measurement with eval loss within 1.5× the train-mode loss");
        Figures.Record("regime_b_eval_accuracy_at_catch_up", Best.EvalAccuracy);
        Figures.Record("regime_b_worst_step", Worst.Step, "step", "largest eval/train-mode loss ratio after catching up");
        Figures.Record("regime_b_worst_eval_over_train_mode_loss", GapAtWorst, "×");
        Figures.Record("regime_b_eval_loss_rise_after_catch_up", EvalLossRise, "×");
        Figures.Record("regime_b_max_train_mode_loss_after_catch_up_over_zero_output", MaxTrainModeLossAfterBest / zeroLoss, "×");
        Figures.Record("regime_b_min_train_mode_accuracy_after_catch_up", MinTrainModeAccuracyAfterBest);
        Figures.Record("regime_b_shadow_momentum_median_gap", shadowGap, "×", "median eval/train-mode loss after catch-up with the faster momentum's statistics");
    }

    /// <summary>
    /// The headline chart of case study 3: on the left the heatmap loss in eval mode (the running statistics the run kept),
    /// in train mode on the same images, and in eval mode with the statistics a faster BN momentum would have kept on the
    /// same run (<paramref name="shadowMomentum"/>, dashed), with the all-zero output's loss dotted; on the right the largest
    /// output in both modes. Markers at the best and worst eval points.
    /// </summary>
    public GenericChart Chart(string title, KeypointTrainingRun run, double zeroLoss, double? shadowMomentum)
    {
        ArgumentNullException.ThrowIfNull(run);
        var c = run.Curve;
        double[] x = c.Select(g => (double)g.Step).ToArray();
        string m = run.Config.BnMomentum?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "cumulative";
        var loss = new List<Series>
        {
            new($"eval mode (BN momentum {m}, as trained)", x, c.Select(g => g.EvalLoss).ToArray(), Color: "#d62728"),
            new("train mode (batch statistics)", x, c.Select(g => g.TrainModeLoss).ToArray(), Color: "#1f77b4"),
        };
        var peak = new List<Series>
        {
            new($"eval mode (BN momentum {m}, as trained)", x, c.Select(g => g.EvalMaxOutput).ToArray(), Color: "#d62728"),
            new("train mode (batch statistics)", x, c.Select(g => g.TrainModeMaxOutput).ToArray(), Color: "#1f77b4"),
        };
        if (shadowMomentum is { } sm)
        {
            var s = run.ShadowCurveOf(sm);
            string name = $"eval mode, BN momentum {sm} (same run)";
            loss.Add(new(name, s.Select(p => (double)p.Step).ToArray(), s.Select(p => p.EvalLoss).ToArray(), Dash: "dash", Color: "#2ca02c"));
            peak.Add(new(name, s.Select(p => (double)p.Step).ToArray(), s.Select(p => p.EvalMaxOutput).ToArray(), Dash: "dash", Color: "#2ca02c"));
        }
        loss.Add(new("all-zero output", new double[] { x[0], x[^1] }, new[] { zeroLoss, zeroLoss }, Dash: "dot", Color: "#7f7f7f"));
        loss.Add(new("eval mode: caught up → worst", new double[] { Best.Step, Worst.Step }, new[] { Best.EvalLoss, Worst.EvalLoss }, Dash: "dot", Color: "#000000"));
        return PlotlyFigure.Panels(title, new[]
        {
            new Panel("heatmap loss on 64 held-out images", "training step", "MSE (log scale)", loss, LogY: true),
            new Panel("largest output (target peak: 1)", "training step", "max sigmoid output", peak, YRange: (0, 1.05)),
        }, height: 460);
    }
}
