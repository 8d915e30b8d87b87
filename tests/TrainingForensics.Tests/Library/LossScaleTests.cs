using TorchSharp;
using TrainingForensics.CaseStudies.LossScale;
using TrainingForensics.Data;
using TrainingForensics.Diagnostics;
using TrainingForensics.Metrics;
using TrainingForensics.Models;
using TrainingForensics.Results;
using TrainingForensics.Setup;
using TrainingForensics.Training;
using static TorchSharp.torch;

namespace TrainingForensics.Tests.Library;

public class LossScaleTests
{
    static (Tensor Outputs, Tensor Labels) Batch(int b = 8, int c = 10)
    {
        TorchEnvironment.Reseed(7);
        return (randn(b, c), randint(0, c, new long[] { b }));
    }

    [Fact]
    public void A_reading_names_the_reduction_and_its_factor()
    {
        var (o, y) = Batch();
        var mean = LossScale.Read(Losses.Mse(Reduction.Mean), o, y);
        Assert.Equal(Reduction.Mean, mean.InUse);
        Assert.False(mean.AsExpected);
        Assert.Equal(0.1, mean.Factor, 5);                 // 1/C with C = 10
        Assert.Contains("mean", mean.ToString());
        var sumB = LossScale.Read(Losses.Mse(Reduction.SumOverBatch), o, y);
        Assert.Equal(Reduction.SumOverBatch, sumB.InUse);
        Assert.True(sumB.AsExpected);
        Assert.Equal(1.0, sumB.Factor, 6);
        var sum = LossScale.Read(Losses.Mse(Reduction.Sum), o, y);
        Assert.Equal(8.0, sum.Factor, 4);                   // B = 8
        // torch's own mse_loss against one-hot targets is the "mean" reduction
        var torchMse = LossScale.Read((p, t) => nn.functional.mse_loss(p, Losses.OneHot(t, 10)), o, y);
        Assert.Equal(Reduction.Mean, torchMse.InUse);
        Assert.Equal(4, mean.ToDataFrame().Rows.Count);
    }

    [Fact]
    public void A_loss_that_is_no_reference_is_named_as_such()
    {
        var (o, y) = Batch();
        var r = LossScale.Read((p, t) => Losses.SquaredError(p, t, Reduction.Mean) * 0.37, o, y);
        Assert.Null(r.InUse);
        Assert.Empty(r.Matches);
        Assert.Equal("none of the references", r.InUseLabel);
        Assert.Equal(0.037, r.Factor, 5);
        var check = new LossScaleCheck();
        check.Inspect(r.Loss, o, y, step: 3);
        Assert.True(check.Fired);
        Assert.Contains("none of the reference", check.Finding!.Summary);
    }

    [Fact]
    public void The_check_stays_quiet_on_the_intended_loss_and_fires_once_on_another()
    {
        TorchEnvironment.Reseed(2);
        var model = Mlp.Create(new[] { 6, 5, 4 });
        var x = randn(16, 6);
        var y = randint(0, 4, new long[] { 16 });
        var healthy = new TrainingLoop(model, optim.SGD(model.parameters(), 0.01), Losses.Mse(Reduction.SumOverBatch));
        var ok = new LossScaleCheck(every: 1).AttachTo(healthy);
        for (int i = 0; i < 3; i++) healthy.Step(x, y);
        Assert.False(ok.Fired);
        Assert.True(ok.Last!.AsExpected);

        var quiet = new TrainingLoop(model, optim.SGD(model.parameters(), 0.01), Losses.Mse(Reduction.Mean));
        var check = new LossScaleCheck(every: 2).AttachTo(quiet);
        for (int i = 0; i < 5; i++) quiet.Step(x, y);
        Assert.True(check.Fired);
        var f = check.Finding!;
        Assert.Equal(0, f.FirstStep);
        Assert.Equal("loss-scale", f.Check);
        Assert.Equal(0.25, f.Evidence["factor"], 5);        // C = 4
        Assert.Contains("'mean'", f.Summary);
        Assert.Contains("sum/B", f.Summary);
        Assert.Contains("4", f.Fix);                         // multiply lr by 4
        Assert.Equal("02-loss-scale-and-metrics", f.Notebook);
        Assert.Single(new DiagnosisReport(new Check[] { ok, check }).Findings);
        check.Reset();
        Assert.False(check.Fired);
        Assert.Null(check.Last);
    }

    [Fact]
    public void Gradients_of_sum_over_batch_and_mean_differ_by_C_in_every_element()
    {
        TorchEnvironment.Reseed(4);
        var model = Mlp.Create(new[] { 12, 9, 5 });
        var x = randn(32, 12);
        var y = randint(0, 5, new long[] { 32 });
        var rows = LossScale.CompareGradients(model, x, y, Losses.Mse(Reduction.SumOverBatch), Losses.Mse(Reduction.Mean));
        Assert.Equal(4, rows.Count);                          // 2 weights, 2 biases
        foreach (var r in rows)
        {
            Assert.Equal(5.0, r.Ratio, 4);
            Assert.True(r.MaxRelativeDeviation < 1e-5, $"{r.Parameter}: {r.MaxRelativeDeviation}");
        }
        // a genuinely different loss is not proportional
        var other = LossScale.CompareGradients(model, x, y, Losses.Mse(Reduction.SumOverBatch), (o, t) => nn.functional.cross_entropy(o, t));
        Assert.Contains(other, r => r.MaxRelativeDeviation > 1e-2);
        Assert.All(model.parameters(), p => Assert.True(p.grad is null || p.grad.abs().sum().item<float>() == 0));
        Assert.Equal(4, LossScale.ToDataFrame(rows).Rows.Count);
    }

    [Fact]
    public void The_reporting_check_catches_a_validation_loss_with_another_reduction()
    {
        var (o, y) = Batch(b: 32);
        var consistent = new LossScaleReportingCheck();
        Assert.Equal(1.0, consistent.Inspect(Losses.Mse(Reduction.SumOverBatch), Losses.Mse(Reduction.SumOverBatch), o, y), 9);
        Assert.False(consistent.Fired);

        var check = new LossScaleReportingCheck();
        double factor = check.Inspect(Losses.Mse(Reduction.SumOverBatch), Losses.Mse(Reduction.Mean), o, y, step: 1875);
        Assert.Equal(0.1, factor, 5);
        Assert.True(check.Fired);
        Assert.Equal(1875, check.Finding!.FirstStep);
        Assert.Contains("'mean'", check.Finding.Summary);
        Assert.Contains("'sum/B'", check.Finding.Summary);
        Assert.Equal(Reduction.Mean, check.Readings!.Value.Validation.InUse);
        Assert.Equal("validation-loss-reduction", check.Name);
    }

    [Fact]
    public void Bad_inputs_are_refused()
    {
        var (o, y) = Batch();
        Assert.Throws<ArgumentException>(() => new LossScaleCheck(Reduction.None));
        Assert.Throws<ArgumentOutOfRangeException>(() => new LossScaleCheck(every: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => LossScale.Read(double.NaN, o, y));
        Assert.Contains("single number", Assert.Throws<ArgumentException>(() => LossScale.Read(Losses.Mse(Reduction.None), o, y)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new LossScaleReportingCheck(0));
    }

    // ---------------------------------------------------------------- case study 2's experiment (CaseStudies/LossScale)

    static LossScaleExperiment SmallExperiment(MnistData mnist, int epochs = 2) => new(new LossScaleConfig
    {
        TrainingSet = mnist.Train.Take(320), TestSet = mnist.Test.Take(200), Epochs = epochs, BatchSize = 32, CheckEvery = 4,
    });

    [Fact]
    public void The_experiment_trains_a_run_evaluates_each_epoch_and_keeps_its_model_and_check()
    {
        TorchEnvironment.Setup(1);
        using var mnist = Mnist.Load(TestPaths.MnistDir);
        var experiment = SmallExperiment(mnist);
        Assert.Same(experiment.Config.TrainingSet, experiment.TrainingSet);   // on the CPU nothing is copied
        Assert.Equal(10, experiment.Classes);
        var run = experiment.Train("quiet", Reduction.Mean, 0.1, "torch", 3, alsoValidateWith: Reduction.SumOverBatch, trackAccuracy: true);
        Assert.Equal("quiet · seed 3", run.Name);
        Assert.Equal(2, run.Epochs.Count);
        Assert.Equal(20, run.Steps.Count);                                    // 320 / 32 per epoch
        Assert.All(run.Epochs, e => Assert.Contains("test_accuracy", e.Values.Keys));
        Assert.All(run.Epochs, e => Assert.Contains("test_loss_sum/B", e.Values.Keys));
        Assert.False(run.Epochs[0].Values.ContainsKey("train_accuracy"));      // only after the last epoch
        Assert.Contains("train_accuracy", run.Epochs[^1].Values.Keys);
        Assert.All(run.Steps, st => Assert.Equal(st.Epoch == 2, st.Values.ContainsKey("accuracy")));   // fit's: the last epoch's batches
        Assert.Same(experiment.Models[run.Name], experiment.Models.Single().Value);
        Assert.True(experiment.Checks[run.Name].Fired);                       // the mean is not the intended Σ/B
        Assert.Equal(0.1, experiment.Checks[run.Name].Last!.Factor, 4);
        // the same seed gives the same run; maxSteps stops early
        var again = experiment.Train("again", Reduction.Mean, 0.1, "torch", 3, maxSteps: 5);
        Assert.Equal(run.Losses.Take(5), again.Losses);
        Assert.Single(again.Epochs);
    }

    [Fact]
    public void Sigma_over_B_and_the_mean_at_C_times_the_rate_are_one_optimisation_in_the_variant_runs()
    {
        TorchEnvironment.Setup(1);
        using var mnist = Mnist.Load(TestPaths.MnistDir);
        var experiment = SmallExperiment(mnist);
        var variants = new LossScaleVariant[]
        {
            new("a", "(a)", Reduction.SumOverBatch, 0.01, "torch") { Probed = true, AlsoValidateWith = Reduction.Mean },
            new("b", "(b)", Reduction.Mean, 0.01, "torch") { Probed = true },
            new("c", "(c)", Reduction.Mean, 0.1, "torch") { Probed = true },
            new("d", "(d)", Reduction.Mean, 0.01, "glorot") { TrackAccuracy = true },
        };
        var messages = new List<string>();
        var runs = LossScaleRuns.Train(experiment, variants, new[] { 5, 6 }, messages.Add, workers: 2);
        Assert.Equal(8, runs.Count);
        // trained side by side, each run is the run it is alone
        var alone = LossScaleRuns.Train(SmallExperiment(mnist), variants, new[] { 5, 6 }, workers: 1);
        Assert.All(runs.All.Zip(alone.All), p => Assert.Equal(p.Second.Losses, p.First.Losses));
        Assert.All(runs.All.Zip(alone.All), p => Assert.Equal(p.Second.Epochs[^1].Values["test_accuracy"], p.First.Epochs[^1].Values["test_accuracy"]));
        Assert.Equal(9, messages.Count);                                      // one per run, then the summary
        Assert.StartsWith("trained 8 runs", messages[^1]);
        Assert.Equal(new[] { "(a) · seed 5", "(a) · seed 6", "(b) · seed 5" }, runs.All.Take(3).Select(r => r.Name));
        Assert.Equal("(c)", LossScaleRuns.Group(runs["c", 6]));
        Assert.Equal(new[] { "a", "b", "c" }, runs.GradientNorms.Keys.OrderBy(k => k));   // probes on the first seed only
        Assert.Contains("test_loss_mean", runs["a", 5].Epochs[0].Values.Keys);
        Assert.DoesNotContain("test_loss_mean", runs["a", 6].Epochs[0].Values.Keys);
        // (a) and (c): same weights, same batches, steps equal up to float32 rounding
        Assert.True(LossScaleExperiment.Drift(runs["a", 5], runs["c", 5], 10, 10) < 1e-5);
        Assert.True(LossScaleExperiment.Drift(runs["a", 5], runs["b", 5], 10, 10) > 1e-3);
        // update ratios: (c)'s steps are (a)'s, (b)'s are smaller
        long epoch = runs["a", 5].Epochs[0].Steps;
        Assert.Equal(1, runs.MedianUpdateRatio("c", "fc1.weight", epoch) / runs.MedianUpdateRatio("a", "fc1.weight", epoch), 2);
        Assert.True(runs.MedianUpdateRatio("b", "fc1.weight", epoch) < runs.MedianUpdateRatio("a", "fc1.weight", epoch));
        Assert.Equal(3, runs.UpdateRatioTable(epoch).Rows.Count);
        // gaps: two seeds are too few to measure the spread, so the tolerance is one point
        var gaps = runs.Gaps();
        Assert.False(gaps.SpreadMeasured);
        Assert.Equal(0.01, gaps.ToleranceAB);
        Assert.Equal(runs.TestAccuracy("a").Mean, gaps.A.Mean);
        Assert.Contains("fixed margin", gaps.ToString());
        var fit = runs.FitStyleTrainAccuracy("d");
        Assert.InRange(fit.Mean, 0, 1);
        var variation = new OptimizerVariation("sgd", 5, runs["a", 5], runs["b", 5], runs["c", 5], 10);
        Assert.Equal(runs["a", 5].Epochs[^1].Values["test_accuracy"], variation.ReferenceAccuracy);
        Assert.True(variation.Drift(10).ScaledLr < 1e-5);
        Assert.Throws<KeyNotFoundException>(() => runs["e", 5]);
        // the table's loss columns: each run's own reduction, and all converted to Σ/B
        var table = runs.Table();
        Assert.Equal(8, table.Rows.Count);
        Assert.Equal(runs["b", 5].Epochs[^1].TrainLoss * 10, runs.FinalTrainLossInReferenceUnits(runs["b", 5], Reduction.Mean), 9);
        Assert.Equal(runs["a", 5].Epochs[^1].TrainLoss, runs.FinalTrainLossInReferenceUnits(runs["a", 5], Reduction.SumOverBatch), 12);
        Assert.Equal(runs.FinalTrainLossInReferenceUnits(runs["b", 5], Reduction.Mean), (double)table["final train loss in sum/B units"][2]!, 12);
        // the charts: colour = layer and a legend grouped by run; (a) and (c) coincide, so (a) is drawn wide under (c)
        string perLayer = TrainingForensics.Charts.Plots.ToJson(LossScaleCharts.PerLayer("t", "y",
            new[] { ("(a)", runs.UpdateRatios["a"].Series), ("(c)", runs.UpdateRatios["c"].Series) }));
        Assert.Contains("legendgrouptitle", perLayer);
        using (var doc = System.Text.Json.JsonDocument.Parse(perLayer))
        {
            var traces = doc.RootElement.GetProperty("data").EnumerateArray().ToList();
            Assert.Equal(6, traces.Count);
            Assert.Equal(traces[0].GetProperty("line").GetProperty("color").GetString(), traces[3].GetProperty("line").GetProperty("color").GetString());
            Assert.NotEqual(traces[0].GetProperty("line").GetProperty("color").GetString(), traces[1].GetProperty("line").GetProperty("color").GetString());
            Assert.True(traces[0].GetProperty("line").GetProperty("width").GetDouble() > traces[3].GetProperty("line").GetProperty("width").GetDouble());
            Assert.All(traces, t => Assert.True(t.GetProperty("showlegend").GetBoolean()));   // names repeat across runs, not within one
        }
        Assert.Contains("mean of 2 seeds", TrainingForensics.Charts.Plots.ToJson(LossScaleCharts.TestAccuracy("t", runs)));
    }

    [Fact]
    public void The_training_loss_is_Losses_Mse_bit_for_bit_and_weight_decay_parts_a_and_c_as_predicted()
    {
        TorchEnvironment.Setup(1);
        using var mnist = Mnist.Load(TestPaths.MnistDir);
        using var experiment = SmallExperiment(mnist);
        var (x, y) = experiment.TrainingSet.Batches(32, shuffle: false, flatten: true).First();
        TorchEnvironment.Reseed(3);
        var outputs = experiment.CreateModel("torch").call(x);
        foreach (var r in new[] { Reduction.SumOverBatch, Reduction.Mean, Reduction.Sum, Reduction.SumOverOutputs })
            Assert.Equal(Losses.Mse(r)(outputs, y).item<float>(), experiment.TrainingLoss(r)(outputs, y).item<float>());
        var oneHot = Losses.OneHot(y, 10);   // targets already one-hot go through Losses.Mse itself
        Assert.Equal(Losses.Mse(Reduction.Mean)(outputs, oneHot).item<float>(), experiment.TrainingLoss(Reduction.Mean)(outputs, oneHot).item<float>());
        // one SGD step: without decay (a) and (c) land together; with λ they part by lr·|k−1|·λ·‖w‖; λ/k for (c) repairs it
        var step = experiment.CompareOneSgdStep("torch", 3, x, y, Reduction.Mean, 0.01, 10, 1e-3);
        Assert.True(step.WithoutDecay < 1e-4 * step.Step, step.ToString());
        Assert.Equal(1, step.WithDecay / step.Predicted, 2);
        Assert.True(step.WithDecayOverK < 1e-4 * step.Step, step.ToString());
        Assert.Throws<ArgumentOutOfRangeException>(() => experiment.CompareOneSgdStep("torch", 3, x, y, Reduction.Mean, 0.01, 10, 0));
    }

    [Fact]
    public void The_metric_pitfall_readings_derived_by_counting_are_what_the_metrics_report()
    {
        var labels = tensor(new long[] { 1, 9, 3, 9, 0, 1, 2, 0 });
        var predicted = tensor(new long[] { 1, 9, 3, 4, 0, 7, 2, 9 });
        // batches of 4: the first largest label and the first largest prediction sit together in the first batch only
        var rule = MetricPitfall.FirstLargestRule(labels, predicted, 4, 10);
        Assert.Equal((1L, 2L, 1L), (rule.RightBatches, rule.Batches, rule.FirstLargestFound));
        Assert.Equal(0.5, rule.LargestClassRecall);
        Assert.Equal(rule.RightBatches, (long)AccuracyVariants.Stream(new CategoricalAccuracy(), labels, predicted, 4).Total);
        // binary on class indices: label 0 predicted 0, label 1 predicted ≥ 1 — 3 of 8; labels 0 or 1: 4 of 8
        var binary = MetricPitfall.BinaryOnClassIndices(labels, predicted);
        Assert.Equal(3.0 / 8, binary.Derived);
        Assert.Equal(0.5, binary.ShareOfZerosAndOnes);
        Assert.Equal(binary.Derived, AccuracyVariants.Stream(new BinaryAccuracy(), labels.unsqueeze(1), predicted.unsqueeze(1), 4).Result, 12);
        Assert.Throws<ArgumentException>(() => MetricPitfall.BinaryOnClassIndices(labels, predicted.unsqueeze(1)));
    }

    [Fact]
    public void A_diverging_run_stops_at_its_first_non_finite_loss_and_is_left_out_of_the_comparisons_in_words()
    {
        TorchEnvironment.Setup(1);
        using var mnist = Mnist.Load(TestPaths.MnistDir);
        var experiment = SmallExperiment(mnist);
        var variants = new LossScaleVariant[]
        {
            new("a", "(a)", Reduction.SumOverBatch, 0.01, "torch"),
            new("b", "(b)", Reduction.Sum, 0.01, "glorot"),   // a loss 32× the hand-written one at the same lr: diverges
            new("c", "(c)", Reduction.Mean, 0.1, "torch"),
            new("d", "(d)", Reduction.Mean, 0.01, "glorot"),
        };
        var runs = LossScaleRuns.Train(experiment, variants, new[] { 5 });
        var diverged = Assert.Single(runs.Diverged);
        Assert.Equal("(b) · seed 5", diverged.Name);
        Assert.False(double.IsFinite(diverged.Losses[^1]));
        Assert.Equal(diverged.Steps.Count - 1, diverged.Divergence!.Step);   // stopped there
        Assert.Contains("likely too high", diverged.Divergence.Cause);
        Assert.DoesNotContain(diverged, runs.Completed);
        Assert.Equal(0, runs.TestAccuracy("b").Runs);
        Assert.True(double.IsNaN(runs.TestAccuracy("b").Mean));
        string report = runs.DivergenceReport();
        Assert.StartsWith("1 of 4 runs diverged", report);
        Assert.Contains("(b) · seed 5: loss", report);
        Assert.Contains("b: every run diverged: no test accuracy", runs.Gaps().ToString());
        Figures.Reset();
        runs.Gaps().Record();                                                  // the diverged variant's figures are left out, not NaN
        runs.RecordDivergence();
        Assert.Throws<KeyNotFoundException>(() => Figures.Get("test_accuracy_b"));
        Assert.Equal(1L, Figures.Get("diverged_runs"));
        Assert.Equal("no run diverged: all 4 losses stayed finite",
            LossScaleRuns.Train(SmallExperiment(mnist), variants.Select(v => v.Key == "b" ? v with { Reduction = Reduction.SumOverBatch } : v).ToList(), new[] { 5 }).DivergenceReport());
    }
}
