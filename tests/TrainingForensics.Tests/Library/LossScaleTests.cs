using TorchSharp;
using TrainingForensics.Diagnostics;
using TrainingForensics.Models;
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
}
