using System.Diagnostics;
using Microsoft.Data.Analysis;
using Plotly.NET;
using TrainingForensics.Charts;
using TrainingForensics.Diagnostics;
using TrainingForensics.Models;
using TrainingForensics.Probes;
using TrainingForensics.Results;
using TrainingForensics.Training;

namespace TrainingForensics.CaseStudies.BatchNormTrainVsEval;

/// <summary>One row of the fix table: the fix, the train/eval gap on the evaluation set after it, its cost, and (for runs) whether the BN-lag check fired.</summary>
public sealed record BatchNormFix(string Fix, TrainEvalGapResult Result, double Seconds, bool? CheckFired);

/// <summary>
/// Section 5 of case study 3: the fixes, each measured on the whole evaluation set. Fixes applied to the broken run
/// itself (other BN momenta from its shadow statistics, batch statistics, BN re-estimation of one layer or of all) leave
/// its model as it was; separate runs train the same setup with one setting changed.
/// </summary>
public sealed class BatchNormFixes
{
    /// <summary>The name of the row of BN re-estimation over <paramref name="batches"/> training batches.</summary>
    public static string RecalibrationName(int batches) => $"BN re-estimation ({batches} batches)";

    readonly List<BatchNormFix> _rows = new();
    readonly List<(string Name, IReadOnlyList<TrainEvalGapResult> Curve)> _curves = new();

    /// <summary>Starts the table with the broken run: its final gap <paramref name="final"/> and whether <paramref name="check"/> fired.</summary>
    public BatchNormFixes(KeypointTrainingRun broken, TrainEvalGapResult final, BatchNormDriftCheck check)
    {
        Broken = broken ?? throw new ArgumentNullException(nameof(broken));
        BrokenFinal = final;
        _rows.Add(new BatchNormFix($"broken (momentum {broken.Config.BnMomentum})", final, broken.Seconds, check.Fired));
        _curves.Add((_rows[0].Fix, broken.Curve));
    }

    public KeypointTrainingRun Broken { get; }
    public TrainEvalGapResult BrokenFinal { get; }
    public IReadOnlyList<BatchNormFix> Rows => _rows;
    /// <summary>The broken run's curve and each separate run's, by row name: eval and train mode on the probe set over steps.</summary>
    public IReadOnlyList<(string Name, IReadOnlyList<TrainEvalGapResult> Curve)> Curves => _curves;
    /// <summary>The best eval accuracy after recalibrating a single BN layer (NaN before <see cref="AddSingleLayerRecalibration"/>).</summary>
    public double BestSingleLayer { get; private set; } = double.NaN;

    /// <summary>The broken run evaluated with the running statistics its shadow kept at each momentum (training is the same at any momentum).</summary>
    public void AddMomenta(params double[] momenta)
    {
        var shadow = Broken.Shadow ?? throw new InvalidOperationException("the broken run kept no shadow statistics (KeypointTrainingConfig.ShadowMomenta)");
        foreach (var m in momenta)
            using (shadow.Use(m)) _rows.Add(new BatchNormFix($"BN momentum {m}", Broken.Final(), 0, null));
    }

    /// <summary>Eval with batch statistics: the broken run's train-mode columns (a diagnosis only: inference on one image has no batch).</summary>
    public void AddBatchStatistics() =>
        _rows.Add(new BatchNormFix("eval with batch statistics",
            BrokenFinal with { EvalLoss = BrokenFinal.TrainModeLoss, EvalAccuracy = BrokenFinal.TrainModeAccuracy, EvalMaxOutput = BrokenFinal.TrainModeMaxOutput }, 0, null));

    /// <summary>
    /// Recalibrates one BN layer at a time (the others keep their running statistics), measures, and puts the old
    /// statistics back; returns (and keeps) the best eval accuracy any single layer reached.
    /// </summary>
    public double AddSingleLayerRecalibration(int batches = 50)
    {
        double best = 0;
        foreach (var (name, _) in ConvBnNet.BatchNorms(Broken.Model))
        {
            using (BatchNormBuffers.Preserve(Broken.Model))
            {
                BatchNormRecalibration.Run(Broken.Model, Broken.TrainingBatches(batches), batches, layers: n => n == name);
                best = Math.Max(best, Broken.Final().EvalAccuracy);
            }
        }
        return BestSingleLayer = best;
    }

    /// <summary>BN re-estimation of every layer (reset, cumulative average over <paramref name="batches"/> training batches), measured, then undone.</summary>
    public void AddRecalibration(int batches = 50)
    {
        var watch = Stopwatch.StartNew();
        using (BatchNormBuffers.Preserve(Broken.Model))
        {
            BatchNormRecalibration.Run(Broken.Model, Broken.TrainingBatches(batches), batches);
            _rows.Add(new BatchNormFix(RecalibrationName(batches), Broken.Final(), watch.Elapsed.TotalSeconds, null));
        }
    }

    /// <summary>
    /// Trains <paramref name="config"/> with a BN-lag check of its own, adds its final gap as <paramref name="name"/>,
    /// and disposes the run. <paramref name="progress"/> gets a line after each measurement.
    /// </summary>
    public BatchNormFix AddRun(string name, KeypointTrainingConfig config, Action<string>? progress = null) =>
        AddRuns(new[] { (name, config) }, progress)[0];

    /// <summary>
    /// <see cref="AddRun"/> for several configurations, trained side by side (<see cref="KeypointTraining.TrainSideBySide"/>:
    /// each run gives the numbers it gives alone), each with a BN-lag check of its own; rows are added in the order given.
    /// </summary>
    public IReadOnlyList<BatchNormFix> AddRuns(IReadOnlyList<(string Name, KeypointTrainingConfig Config)> runs, Action<string>? progress = null, int? workers = null)
    {
        ArgumentNullException.ThrowIfNull(runs);
        var checks = runs.Select(_ => new BatchNormDriftCheck()).ToList();
        var trained = KeypointTraining.TrainSideBySide(runs.Select((r, i) => (r.Config, (BatchNormDriftCheck?)checks[i])).ToList(), progress, workers);
        return runs.Select((r, i) => AddTrained(r.Name, trained[i], checks[i])).ToList();
    }

    /// <summary>
    /// Adds a separate run trained elsewhere (e.g. side by side with others by <see cref="KeypointTraining.TrainSideBySide"/>)
    /// as <paramref name="name"/>: its final gap on the evaluation set, its curve, whether <paramref name="check"/> fired;
    /// then disposes the run (its model is no longer needed).
    /// </summary>
    public BatchNormFix AddTrained(string name, KeypointTrainingRun run, BatchNormDriftCheck check)
    {
        ArgumentNullException.ThrowIfNull(run);
        ArgumentNullException.ThrowIfNull(check);
        var row = new BatchNormFix(name, run.Final(), run.Seconds, check.Fired);
        _rows.Add(row);
        _curves.Add((name, run.Curve));
        run.Dispose();
        return row;
    }

    /// <summary>
    /// Eval-mode accuracy over steps of the broken run and of each separate run (the runs' own BN statistics), with the
    /// broken run's train-mode accuracy dashed for reference.
    /// </summary>
    public GenericChart CurvesChart(string title)
    {
        var series = _curves.Select(c => new Series(c.Name, Steps(c.Curve), c.Curve.Select(g => g.EvalAccuracy).ToArray())).ToList();
        var broken = _curves[0].Curve;
        series.Add(new Series($"{_curves[0].Name}, train mode", Steps(broken), broken.Select(g => g.TrainModeAccuracy).ToArray(), Dash: "dash"));
        return PlotlyFigure.Panels(title, new[] { new Panel(title, "training step", "eval-mode keypoint accuracy (within 2 px)", series, YRange: (0, 1.02)) });
    }

    static double[] Steps(IReadOnlyList<TrainEvalGapResult> curve) => curve.Select(g => (double)g.Step).ToArray();

    /// <summary>The row named <paramref name="fix"/>.</summary>
    public BatchNormFix this[string fix] =>
        _rows.SingleOrDefault(r => r.Fix == fix) ?? throw new KeyNotFoundException($"no fix named '{fix}' (have: {string.Join("; ", _rows.Select(r => r.Fix))})");

    /// <summary>The eval-mode accuracy after the fix named <paramref name="fix"/>.</summary>
    public double EvalAccuracy(string fix) => this[fix].Result.EvalAccuracy;

    /// <summary>The table: eval and train-mode loss and accuracy, the largest eval output, seconds, and whether the check fired (runs only).</summary>
    public DataFrame ToDataFrame() => new(
        new StringDataFrameColumn("fix", _rows.Select(r => r.Fix)),
        new DoubleDataFrameColumn("eval_loss", _rows.Select(r => Math.Round(r.Result.EvalLoss, 5))),
        new DoubleDataFrameColumn("train_mode_loss", _rows.Select(r => Math.Round(r.Result.TrainModeLoss, 5))),
        new DoubleDataFrameColumn("eval_max_output", _rows.Select(r => Math.Round(r.Result.EvalMaxOutput, 3))),
        new DoubleDataFrameColumn("eval_accuracy", _rows.Select(r => Math.Round(r.Result.EvalAccuracy, 3))),
        new DoubleDataFrameColumn("train_mode_accuracy", _rows.Select(r => Math.Round(r.Result.TrainModeAccuracy, 3))),
        new DoubleDataFrameColumn("seconds", _rows.Select(r => Math.Round(r.Seconds, 1))),
        new StringDataFrameColumn("check_fired", _rows.Select(r => r.CheckFired?.ToString() ?? "")));

    /// <summary>Eval-mode accuracy per fix, as bars.</summary>
    public GenericChart Chart() =>
        HeatmapPictures.Bars("Eval-mode accuracy per fix on 256 held-out images (same setup)", _rows.Select(r => r.Fix).ToList(),
            _rows.Select(r => r.Result.EvalAccuracy).ToList(), "eval-mode keypoint accuracy (within 2 px)", "fix");

    /// <summary>
    /// Records the eval accuracy after BN momentum 0.1, after re-estimation over <paramref name="batches"/> batches and the
    /// best single-layer one; with the separate runs present, the no-decay and Adam lr 1e-4 eval accuracies and the
    /// SGD-momentum train-mode accuracies (summed and mean loss).
    /// </summary>
    public void Record(int batches = 50)
    {
        Figures.Record("eval_accuracy_bn_momentum_0_1", EvalAccuracy("BN momentum 0.1"));
        Figures.Record("eval_accuracy_recalibrated", EvalAccuracy(RecalibrationName(batches)));
        Figures.Record("eval_accuracy_best_single_layer_recalibration", BestSingleLayer);
        if (_rows.Any(r => r.Fix == NoDecayName)) Figures.Record("eval_accuracy_no_weight_decay", EvalAccuracy(NoDecayName));
        if (_rows.Any(r => r.Fix == SlowAdamName))
        {
            Figures.Record("eval_accuracy_adam_lr_1e_4", EvalAccuracy(SlowAdamName));
            Figures.Record("train_mode_accuracy_sgd_sum", SgdSummed.Result.TrainModeAccuracy);
            Figures.Record("train_mode_accuracy_sgd_mean", SgdMean.Result.TrainModeAccuracy);
        }
    }

    /// <summary>
    /// The separate fix runs of the notebook beside the control, built from the broken setup <paramref name="broken"/>:
    /// Adam at lr 1e-4, and SGD-momentum at <paramref name="sgdLr"/> with a summed and with a mean loss.
    /// </summary>
    public static IReadOnlyList<(string Name, KeypointTrainingConfig Config)> FixRuns(KeypointTrainingConfig broken, double sgdLr)
    {
        ArgumentNullException.ThrowIfNull(broken);
        var run = broken with { ShadowMomenta = Array.Empty<double>() };
        return new[]
        {
            (SlowAdamName, run with { Name = "adam-1e-4", Optimizer = "adam", LearningRate = 1e-4 }),
            ($"SGD-momentum lr {sgdLr}, summed loss", run with { Name = "sgd-sum", Optimizer = "sgd-momentum", LearningRate = sgdLr, Reduction = "sum" }),
            ($"SGD-momentum lr {sgdLr}, mean loss", run with { Name = "sgd-mean", Optimizer = "sgd-momentum", LearningRate = sgdLr, Reduction = "mean" }),
        };
    }

    /// <summary>The control: the broken setup <paramref name="broken"/> without weight decay.</summary>
    public static (string Name, KeypointTrainingConfig Config) ControlRun(KeypointTrainingConfig broken) =>
        (NoDecayName, (broken ?? throw new ArgumentNullException(nameof(broken))) with { Name = "no-decay", WeightDecay = 0, ShadowMomenta = Array.Empty<double>() });

    /// <summary>The control run without weight decay.</summary>
    public const string NoDecayName = "no weight decay (control)";
    /// <summary>The run with Adam at lr 1e-4.</summary>
    public const string SlowAdamName = "Adam lr 1e-4";
    /// <summary>The SGD-momentum run with the summed loss (its name contains "summed").</summary>
    public BatchNormFix SgdSummed => _rows.Single(r => r.Fix.Contains("summed"));
    /// <summary>The SGD-momentum run with the mean loss (its name contains "mean loss").</summary>
    public BatchNormFix SgdMean => _rows.Single(r => r.Fix.Contains("mean loss"));
}
