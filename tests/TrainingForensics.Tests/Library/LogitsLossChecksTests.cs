using TorchSharp;
using TrainingForensics.CaseStudies.LossPlateau;
using TrainingForensics.Data;
using TrainingForensics.Diagnostics;
using TrainingForensics.Models;
using TrainingForensics.Setup;
using static TorchSharp.torch;

namespace TrainingForensics.Tests.Library;

public class CaseStudy1LogitsLossChecksTests
{
    [Fact]
    public void The_analytic_plateaus_match_the_report_and_libtorch()
    {
        Assert.Equal(0.3132617, SquashedCrossEntropy.Floor(), 7);
        Assert.Equal(1.3132617, SquashedCrossEntropy.Ceiling(), 7);
        Assert.Equal(Math.Log(2), SquashedCrossEntropy.Row(new[] { 1.0, 1.0 }, 0), 12);
        Assert.Equal(0.79326169, SquashedCrossEntropy.AllPredicted(1, new long[] { 48, 52 }), 8);
        Assert.Equal(0.83326169, SquashedCrossEntropy.AllPredicted(0, new long[] { 48, 52 }), 8);
        // libtorch's softmax cross-entropy on one-hot "logits" gives the same value (float32).
        using var labels = cat(new[] { zeros(48, ScalarType.Int64), ones(52, ScalarType.Int64) });
        float measured = SquashedCrossEntropy.AllPredictedFloat32(1, labels);
        Assert.Equal(0.79326169, measured, 6);
        var outputs = Enumerable.Range(0, 100).Select(_ => new float[] { 1.49e-36f, 1f }).ToArray();
        Assert.Equal(SquashedCrossEntropy.AllPredicted(1, new long[] { 48, 52 }), SquashedCrossEntropy.Expected(outputs, labels.data<long>().ToArray()), 12);
        Assert.Contains("not saturated", Assert.Throws<ArgumentException>(() =>
            SquashedCrossEntropy.Expected(new[] { new float[] { 0.5f, 0.5f } }, new long[] { 0 })).Message);
    }

    [Fact]
    public void Probabilities_into_logits_loss_fires_at_once_on_softmax_rows_and_after_patience_on_sigmoid_outputs()
    {
        TorchEnvironment.Reseed(3);
        var softmaxCheck = new ProbabilitiesIntoLogitsLoss(patience: 5);
        using (var p = softmax(randn(8, 2), 1)) softmaxCheck.Observe(7, p);
        Assert.Equal(7, softmaxCheck.Finding!.FirstStep);

        var sigmoidCheck = new ProbabilitiesIntoLogitsLoss(patience: 5);
        for (int step = 0; step < 4; step++) using (var s = sigmoid(randn(8, 2))) sigmoidCheck.Observe(step, s);
        Assert.False(sigmoidCheck.Fired);
        using (var s = sigmoid(randn(8, 2))) sigmoidCheck.Observe(4, s);
        Assert.Equal(4, sigmoidCheck.Finding!.FirstStep);
        Assert.Equal(0, sigmoidCheck.Finding.Evidence["since_step"]);

        // Raw logits leave [0,1]: the streak restarts, nothing fires.
        var logits = new ProbabilitiesIntoLogitsLoss(patience: 5);
        for (int step = 0; step < 50; step++)
        {
            using var o = step % 4 == 3 ? randn(8, 2) * 3 : sigmoid(randn(8, 2));
            logits.Observe(step, o);
        }
        Assert.False(logits.Fired);
    }

    [Fact]
    public void Saturated_outputs_fire_on_one_hot_outputs_only()
    {
        var check = new SaturatedOutputs();
        using (var soft = sigmoid(randn(32, 2))) check.Observe(0, soft);
        Assert.False(check.Fired);
        using (var hard = sigmoid(randn(32, 2).sign() * 100)) check.Observe(1, hard);
        Assert.Equal(1, check.Finding!.FirstStep);
        Assert.Equal(1.0, check.Finding.Evidence["saturated_fraction"]);
        check.Reset();
        Assert.False(check.Fired);
    }

    [Fact]
    public void Frozen_loss_fires_on_a_constant_window_but_not_on_a_moving_or_finished_loss()
    {
        var frozen = new FrozenLoss(window: 5);
        frozen.Observe(0, 0.9);
        for (int s = 1; s < 5; s++) frozen.Observe(s, 0.79326171);
        Assert.False(frozen.Fired);
        frozen.Observe(5, 0.79326171);
        Assert.Equal(5, frozen.Finding!.FirstStep);
        Assert.Equal(1, frozen.Finding.Evidence["since_step"]);

        var moving = new FrozenLoss(window: 5);
        for (int s = 0; s < 100; s++) moving.Observe(s, 0.7 * Math.Exp(-s / 30.0));
        Assert.False(moving.Fired);
        var finished = new FrozenLoss(window: 5);
        for (int s = 0; s < 20; s++) finished.Observe(s, 1e-7);
        Assert.False(finished.Fired);
    }

    [Fact]
    public void Loss_at_analytic_floor_recognises_the_plateaus_for_the_observed_split()
    {
        using var labels = cat(new[] { zeros(48, ScalarType.Int64), ones(52, ScalarType.Int64) });
        var check = new LossAtAnalyticFloor(patience: 3);
        check.Observe(0, 0.75, labels);
        check.Observe(1, 0.79326171, labels);
        check.Observe(2, 0.79326171, labels);
        Assert.False(check.Fired);
        check.Observe(3, 0.79326171, labels);
        Assert.Equal(3, check.Finding!.FirstStep);
        Assert.Contains("class 1", check.Finding.Summary);

        var log2 = new LossAtAnalyticFloor(patience: 2);
        log2.Observe(0, 0.6931473, labels); log2.Observe(1, 0.6931473, labels);
        Assert.Contains("log C", log2.Finding!.Summary);

        var healthy = new LossAtAnalyticFloor();
        for (int s = 0; s < 200; s++) healthy.Observe(s, 0.7 * Math.Exp(-s / 40.0), labels);
        Assert.False(healthy.Fired);
        Assert.Throws<ArgumentException>(() => healthy.Observe(0, 0.5, labels.to_type(ScalarType.Float32)));
    }

    [Fact]
    public void The_buggy_configuration_freezes_on_long_records_and_the_checks_name_it_while_a_fixed_CNN_trips_none()
    {
        var data = new EcgOptions { Length = 60_000, Seed = 4 };
        using var train = EcgGenerator.Generate(data with { Records = 64 });
        using var eval = EcgGenerator.Generate(data with { Records = 20, AfCount = 11, Seed = 5 });
        var bug = EcgExperiment.Run(new EcgRunConfig { Name = "bug", Steps = 24, Seed = 1 }, train, eval);
        Assert.All(bug.Checks, c => Assert.True(c.Fired, c.Name));
        Assert.InRange(bug.Check("frozen-loss").Finding!.FirstStep, 4, 8);
        Assert.Single(bug.EvalLosses.Skip(3).Distinct());
        Assert.True(bug.Confusion!.SingleClassPredicted);
        double expected = SquashedCrossEntropy.Expected(bug.FinalOutputs, eval.Labels.data<long>().ToArray());
        Assert.InRange(bug.FinalLoss, expected - 5e-7, expected + 5e-7);
        var analysis = FrozenLossAnalysis.Of(bug, eval);
        Assert.Equal(expected, analysis.Analytic);
        Assert.InRange(bug.FinalLoss, analysis.Analytic - analysis.Tolerance, analysis.Analytic + analysis.Tolerance);
        Assert.Equal(bug.FinalAccuracy, analysis.PredictedClassShare, 12);
        Assert.False(analysis.IsReportState);                                 // 20 records, not the report's 100
        Assert.Contains("measured frozen loss", analysis.ToString());

        var healthy = EcgExperiment.Run(new EcgRunConfig { Name = "fixed", Model = "cnn", Activation = "none", Standardize = true, Steps = 8, EvaluateEvery = 4, Seed = 1 }, train, eval);
        Assert.True(healthy.Report.Healthy, healthy.Report.ToString());
        Assert.Equal(new long[] { 3, 7 }, healthy.EvalSteps);
    }

    [Fact]
    public void One_Adam_step_shifts_first_layer_pre_activations_by_about_lr_L_mean_x()
    {
        var rows = EcgExperiment.FirstStepSweep(new[] { 130, 20_000 }, new EcgRunConfig(), new EcgOptions { Seed = 2 }, records: 32);
        foreach (var r in rows) Assert.InRange(r.Fc1Shift / r.PredictedShift, 0.5, 2.0);
        Assert.Equal(2, rows.ToDataFrame().Rows.Count);
        Assert.True(rows[1].OutputAfter > 10 * rows[0].OutputAfter);
        Assert.Throws<ArgumentException>(() => EcgExperiment.FirstStepSweep(new[] { 130 }, new EcgRunConfig { Model = "cnn" }, new EcgOptions()));
    }

    [Fact]
    public void The_fix_comparison_crosses_model_output_and_normalisation()
    {
        var names = EcgFixComparison.Variants(new EcgRunConfig { Activation = "sigmoid" }, 30, includeMlp: true).Select(v => v.Name).ToList();
        Assert.Equal(9, names.Count);
        Assert.Contains(EcgFixComparison.FixedName, names);
        Assert.Contains("mlp, sigmoid, raw", names);
        Assert.Equal(EcgFixComparison.SingleLogitName, names[^1]);
        Assert.All(EcgFixComparison.Variants(new EcgRunConfig(), 30, includeMlp: true), v => Assert.Equal((30, 10), (v.Steps, v.EvaluateEvery)));
        Assert.Equal(5, EcgFixComparison.Variants(new EcgRunConfig(), 30, includeMlp: false).Count);
        // without a bug there is one output per model and normalisation, not the same configuration twice
        var none = EcgFixComparison.Variants(new EcgRunConfig { Activation = "none" }, 30, includeMlp: true).Select(v => v.Name).ToList();
        Assert.Equal(none.Distinct(), none);
        Assert.Equal(5, none.Count);
    }

    [Fact]
    public void The_fix_comparison_side_by_side_gives_each_run_the_numbers_it_has_alone()
    {
        var data = new EcgOptions { Length = 2_000, Seed = 4 };
        using var train = EcgGenerator.Generate(data with { Records = 48 });
        using var eval = EcgGenerator.Generate(data with { Records = 16, AfCount = 8, Seed = 5 });
        var buggy = new EcgRunConfig { Name = "bug", Steps = 12, Seed = 1 };
        var bug = EcgExperiment.Run(buggy with { EvaluateEvery = 10 }, train, eval);
        var lines = new List<string>();
        var alone = EcgFixComparison.Run(buggy, bug, train, eval, 12, includeMlp: true, workers: 1);
        var together = EcgFixComparison.Run(buggy, bug, train, eval, 12, includeMlp: true, progress: lines.Add, workers: 2);
        // in the variants' order, whatever order they ran in; the first, the buggy configuration, is the run given (not trained again)
        Assert.Same(bug, together.Runs[0]);
        Assert.Equal(EcgFixComparison.Variants(buggy, 12, includeMlp: true).Select(v => v.Name).Skip(1), together.Runs.Skip(1).Select(r => r.Config.Name));
        foreach (var (a, t) in alone.Runs.Zip(together.Runs))
        {
            Assert.Equal(a.History.Losses, t.History.Losses);   // bit for bit
            Assert.Equal(a.EvalLosses, t.EvalLosses);
            Assert.Equal(a.EvalAccuracies, t.EvalAccuracies);
        }
        Assert.Equal(10, lines.Count);                          // a line as each of the 9 runs starts, and the summary
    }

    [Fact]
    public void Bad_configurations_are_refused()
    {
        var unknown = Assert.Throws<ArgumentException>(() => EcgExperiment.CreateModel(new EcgRunConfig { Optimizer = "lbfgs" }, 100)).Message;
        Assert.Contains("sgd-momentum", unknown);
        Assert.NotNull(EcgExperiment.CreateModel(new EcgRunConfig { Optimizer = "adamw" }, 100));
        Assert.Contains("unknown loss", Assert.Throws<ArgumentException>(() => EcgExperiment.CreateModel(new EcgRunConfig { Loss = "mse" }, 100)).Message);
        Assert.Contains("softmax over a single output", Assert.Throws<ArgumentException>(() => EcgExperiment.CreateModel(new EcgRunConfig { Loss = "bce", Activation = "softmax" }, 100)).Message);
        Assert.Contains("unknown model", Assert.Throws<ArgumentException>(() => EcgExperiment.CreateModel(new EcgRunConfig { Model = "rnn" }, 100)).Message);
    }
}
