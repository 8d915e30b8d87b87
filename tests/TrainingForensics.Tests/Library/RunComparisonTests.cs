using TorchSharp;
using TrainingForensics.Charts;
using TrainingForensics.Models;
using TrainingForensics.Setup;
using TrainingForensics.Training;
using static TorchSharp.torch;

namespace TrainingForensics.Tests.Library;

public class RunComparisonTests
{
    // Tiny real runs: a fixed value sequence per epoch through the evaluate hook.
    static TrainingHistory Run(string name, params double[] testAccuracy)
    {
        TorchEnvironment.Reseed(1);
        var model = Mlp.Create(new[] { 3, 2 });
        var loop = new TrainingLoop(model, optim.SGD(model.parameters(), 0.1), (o, t) => nn.functional.cross_entropy(o, t), name);
        var x = randn(4, 3);
        var y = tensor(new long[] { 0, 1, 0, 1 });
        int epoch = 0;
        loop.Run(_ => new[] { (x, y), (x, y) }, testAccuracy.Length,
            () => new Dictionary<string, double> { ["test_accuracy"] = testAccuracy[epoch++], ["train_accuracy"] = 0.5 });
        return loop.History;
    }

    [Fact]
    public void Table_has_one_row_per_run_with_final_values()
    {
        var runs = new[] { Run("a", 0.5, 0.9), Run("b", 0.4, 0.6) };
        var df = RunComparison.Table(runs, "test_accuracy");
        Assert.Equal(2, df.Rows.Count);
        Assert.Equal("b", df.Columns["run"][1]);
        Assert.Equal(0.9, (double)df.Columns["final test_accuracy"][0]);
        Assert.Equal(4L, (long)df.Columns["steps"][0]);
        Assert.Equal(2, (int)df.Columns["epochs"][1]);
        Assert.Equal(runs[0].Epochs[^1].TrainLoss, (double)df.Columns["final train_loss"][0]);
        Assert.Contains("final train_accuracy", RunComparison.Table(runs).Columns.Select(c => c.Name));
        Assert.Contains("nope", Assert.Throws<KeyNotFoundException>(() => RunComparison.Table(runs, "nope")).Message);
        Assert.Throws<ArgumentException>(() => RunComparison.Table(Array.Empty<TrainingHistory>()));
    }

    [Fact]
    public void Summaries_give_mean_sample_std_and_range_per_group()
    {
        var runs = new[] { Run("a s1", 0.5, 0.90), Run("a s2", 0.5, 0.94), Run("b s1", 0.1, 0.70) };
        var s = RunComparison.Summarize("a", runs.Take(2), "test_accuracy");
        Assert.Equal(0.92, s.Mean, 12);
        Assert.Equal(Math.Sqrt(0.0008), s.Std, 12);      // sample std of {0.90, 0.94}
        Assert.Equal(0.04, s.Range, 12);
        Assert.Equal(0, RunComparison.Summarize("b", runs.Skip(2), "test_accuracy").Std);
        var g = RunComparison.GroupTable(runs, r => r.Name.Split(' ')[0], "test_accuracy");
        Assert.Equal(2, g.Rows.Count);
        Assert.Equal(2, (int)g.Columns["runs"][0]);
        Assert.Equal(0.92, (double)g.Columns["test_accuracy mean"][0], 12);
        Assert.Equal(0.70, (double)g.Columns["test_accuracy max"][1], 12);
    }

    [Fact]
    public void The_chart_draws_each_run_or_each_group_mean()
    {
        var runs = new[] { Run("a s1", 0.5, 0.5), Run("a s2", 0.5, 0.75), Run("b s1", 0.1, 0.70) };
        string perRun = Plots.ToJson(Plots.RunComparison("test accuracy", runs));
        Assert.Contains("\"a s2\"", perRun);
        string grouped = Plots.ToJson(Plots.RunComparison("test accuracy", runs, group: r => r.Name.Split(' ')[0]));
        Assert.Contains("a (mean of 2 runs", grouped);
        Assert.Contains("0.625", grouped);                // the mean at epoch 2
        Assert.Contains("\"dot\"", grouped);
        Assert.Contains("\"b\"", grouped);
        Assert.Throws<KeyNotFoundException>(() => Plots.RunComparison("x", runs, "nope"));
    }
}
