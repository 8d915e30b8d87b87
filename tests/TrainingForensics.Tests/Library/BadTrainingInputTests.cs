using TorchSharp;
using TrainingForensics.Data;
using TrainingForensics.Metrics;
using TrainingForensics.Models;
using TrainingForensics.Runner;
using TrainingForensics.Training;
using static TorchSharp.torch;

namespace TrainingForensics.Tests.Library;

/// <summary>
/// The library under bad input (the fault-injection group, with the runner's in Runner/FaultInjectionTests.cs):
/// non-finite training, mis-shaped targets, non-finite scores, unchecked data, no epochs. Each names the cause.
/// </summary>
[Trait("Category", "FaultInjection")]
public class BadTrainingInputTests
{
    static (TrainingLoop Loop, Tensor X, Tensor Y) Tiny(double lr, bool stop = true)
    {
        torch.manual_seed(1);
        var model = Mlp.Create(new[] { 4, 8, 3 });
        var loop = new TrainingLoop(model, optim.SGD(model.parameters(), lr), Losses.CrossEntropy, "tiny") { StopOnNonFiniteLoss = stop };
        return (loop, randn(16, 4), randint(0, 3, 16));
    }

    [Fact]
    public void NaN_inputs_stop_training_at_the_first_step_naming_the_inputs()
    {
        var (loop, x, y) = Tiny(0.1);
        x[0, 0] = float.NaN;
        var e = Assert.Throws<NonFiniteLossException>(() => loop.Step(x, y));
        Assert.Equal(0, e.Step);
        Assert.True(double.IsNaN(e.Loss));
        Assert.Contains("at step 0", e.Message);
        Assert.Contains("inputs hold NaN", e.Message);
        Assert.Contains("StopOnNonFiniteLoss = false", e.Message);
    }

    [Fact]
    public void A_NaN_learning_rate_is_named_as_the_cause()
    {
        var (loop, x, y) = Tiny(double.NaN);
        loop.Step(x, y); // the first loss comes from the initial weights: finite
        var e = Assert.Throws<NonFiniteLossException>(() => loop.Step(x, y));
        Assert.Equal(1, e.Step);
        Assert.Contains("learning rate NaN is not a positive finite number", e.Message);
    }

    [Fact]
    public void A_huge_learning_rate_diverges_and_is_named_as_the_likely_cause()
    {
        var (loop, x, y) = Tiny(1e6);
        var e = Assert.Throws<NonFiniteLossException>(() => { for (int i = 0; i < 200; i++) loop.Step(x, y); });
        Assert.Contains("likely too high", e.Message);
        Assert.Contains("1000000", e.Message);
        Assert.Equal(e.Step + 1, loop.StepCount); // stopped at that step: the history ends with it
    }

    [Fact]
    public void Keeping_going_through_a_divergence_is_a_choice_and_the_history_keeps_the_NaN()
    {
        var (loop, x, y) = Tiny(0.1, stop: false);
        x[0, 0] = float.NaN;
        var record = loop.Step(x, y);
        Assert.True(double.IsNaN(record.Loss));
        Assert.True(double.IsNaN(loop.History.Losses[^1]));
    }

    [Theory]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(0.0)]
    [InlineData(-0.1)]
    public void The_optimiser_factory_refuses_a_learning_rate_that_is_not_positive_and_finite(double lr)
    {
        var model = Mlp.Create(new[] { 4, 2 });
        foreach (var name in Optimizers.Names)
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => Optimizers.Create(name, model.parameters(), lr));
            Assert.Contains("positive finite", e.Message);
        }
    }

    [Fact]
    public void A_run_of_no_epochs_is_refused()
    {
        var (loop, x, y) = Tiny(0.1);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => loop.Run(_ => new[] { (x, y) }, 0));
        Assert.Contains("epochs must be at least 1", e.Message);
    }

    [Fact]
    public void Cross_entropy_names_the_fix_for_a_column_of_labels_and_other_misfits()
    {
        var logits = randn(5, 3);
        Assert.Contains("squeeze(1)", Assert.Throws<ArgumentException>(() => Losses.CrossEntropy(logits, zeros(5, 1, dtype: ScalarType.Int64))).Message);
        Assert.Contains("floating point", Assert.Throws<ArgumentException>(() => Losses.CrossEntropy(logits, zeros(5))).Message);
        Assert.Contains("4 targets for 5 rows", Assert.Throws<ArgumentException>(() => Losses.CrossEntropy(logits, zeros(4, dtype: ScalarType.Int64))).Message);
        Assert.Contains("logits [B,C]", Assert.Throws<ArgumentException>(() => Losses.CrossEntropy(randn(5), zeros(5, dtype: ScalarType.Int64))).Message);
        // what it accepts equals libtorch's own loss
        var y = tensor(new long[] { 0, 2, 1, 1, 0 });
        Assert.Equal(nn.functional.cross_entropy(logits, y).item<float>(), Losses.CrossEntropy(logits, y).item<float>());
        var p = logits.softmax(1);
        Assert.Equal(nn.functional.cross_entropy(logits, p).item<float>(), Losses.CrossEntropy(logits, p).item<float>());
    }

    [Fact]
    public void Accuracy_of_non_finite_scores_is_refused()
    {
        var scores = full(8, 4, float.NaN);
        var e = Assert.Throws<MetricInputException>(() => Accuracy.Compute(scores, zeros(8, dtype: ScalarType.Int64)));
        Assert.Contains("32 non-finite", e.Message);
        var one = randn(8, 4);
        one[3, 1] = float.PositiveInfinity;
        Assert.Contains("1 non-finite", Assert.Throws<MetricInputException>(() => Accuracy.Correct(one, zeros(8, dtype: ScalarType.Int64))).Message);
    }

    [Fact]
    public void MNIST_without_its_checksum_list_loads_with_a_warning_in_the_environment_report()
    {
        using var dir = new TempDir();
        foreach (var f in new[] { Mnist.TrainImages, Mnist.TrainLabels, Mnist.TestImages, Mnist.TestLabels })
            File.Copy(Path.Combine(TestPaths.MnistDir, f), dir.File(f));
        var stderr = new StringWriter();
        var saved = Console.Error;
        Console.SetError(stderr);
        try { using var data = Mnist.Load(dir.Path); }
        finally { Console.SetError(saved); }
        Assert.Contains(DataIntegrity.Warnings, w => w.StartsWith(dir.Path) && w.Contains("integrity is unchecked"));
        Assert.Contains("warning: " + dir.Path, stderr.ToString());
        Assert.Contains("WARNING, integrity unchecked", DataIntegrity.Summary());

        // the repository's copy is verified
        using (Mnist.Load(TestPaths.MnistDir)) { }
        Assert.Contains(TestPaths.MnistDir, DataIntegrity.Verified);
    }

    [Fact]
    public void Notebook_00_with_no_epochs_fails_saying_so()
    {
        using var outDir = new TempDir();
        string path = Path.Combine(TestPaths.RepositoryRoot, "notebooks", "00-start-here.ipynb");
        int exit = RunnerCli.Run(new[] { path, "--quick", "--param", "epochs=0", "--out", outDir.Path }, new StringWriter(), new StringWriter());
        Assert.Equal(RunnerCli.NotebookFailed, exit);
        string executed = File.ReadAllText(Path.Combine(outDir.Path, "00-start-here.ipynb"));
        Assert.Contains("epochs must be at least 1", executed);
        Assert.DoesNotContain("Index was out of range", executed);
    }

    [Fact]
    public void Notebook_02_with_a_summed_loss_completes_and_says_in_words_which_runs_diverged()
    {
        using var outDir = new TempDir();
        string path = Path.Combine(TestPaths.RepositoryRoot, "notebooks", "02-loss-scale-and-metrics.ipynb");
        var stdout = new StringWriter();
        int exit = RunnerCli.Run(new[] { path, "--quick", "--param", "quietReduction=sum", "--out", outDir.Path }, stdout, new StringWriter());
        string executed = File.ReadAllText(Path.Combine(outDir.Path, "02-loss-scale-and-metrics.ipynb"));
        Assert.True(exit == 0, stdout.ToString());
        Assert.Contains("runs diverged and stopped at their first non-finite loss", executed);
        Assert.Contains("likely too high", executed);
        Assert.Contains("✓ runs diverge only when the loss is scaled above the hand-written one", executed);
        var figures = TrainingForensics.Results.Figures.ReadJson(Path.Combine(outDir.Path, "02-loss-scale-and-metrics.figures.json"));
        Assert.True((double)figures["diverged_runs"] >= 1);
        Assert.DoesNotContain("test_accuracy_d", figures.Keys);   // no accuracy for a variant whose runs all diverged
    }
}
