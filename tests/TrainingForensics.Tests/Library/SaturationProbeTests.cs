using TorchSharp;
using TrainingForensics.Models;
using TrainingForensics.Probes;
using TrainingForensics.Setup;
using TrainingForensics.Training;
using static TorchSharp.torch;

namespace TrainingForensics.Tests.Library;

public class CaseStudy1SaturationTests
{
    [Fact]
    public void Measure_counts_values_within_epsilon_of_zero_or_one()
    {
        using var o = tensor(new float[] { 0f, 1f, 0.5f, 1f - 1e-7f, -0.2f, 2f });
        var (saturated, unit) = OutputSaturation.Measure(o, 1e-6);
        Assert.Equal(3 / 6.0, saturated, 12);
        Assert.Equal(4 / 6.0, unit, 12);
        Assert.Throws<ArgumentException>(() => OutputSaturation.Measure(zeros(0)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new OutputSaturation(epsilon: 0.7));
    }

    [Fact]
    public void The_probe_logs_every_step_and_keeps_the_asked_snapshots()
    {
        TorchEnvironment.Reseed(4);
        var model = Mlp.Create(new[] { 5, 4, 2 }, "sigmoid");
        var loop = new TrainingLoop(model, optim.SGD(model.parameters(), 0.1), (o, t) => nn.functional.cross_entropy(o, t));
        var probe = new OutputSaturation(keepSteps: new long[] { 1 }).AttachTo(loop);
        using var x = randn(6, 5);
        using var y = tensor(new long[] { 0, 1, 0, 1, 0, 1 });
        for (int i = 0; i < 3; i++) loop.Step(x, y);
        Assert.Equal(new long[] { 0, 1, 2 }, probe.Series.Select(s => s.Step));
        Assert.All(loop.History.StepValues("unit_interval_fraction"), v => Assert.Equal(1.0, v));
        Assert.Equal(0.0, loop.History.StepValues("saturated_fraction")[0]);
        Assert.Equal(new long[] { 1 }, probe.Snapshots.Keys);
        Assert.Equal(12, probe.Snapshots[1].Length);
    }

    [Fact]
    public void Pre_activations_are_the_outputs_of_the_linear_layers()
    {
        TorchEnvironment.Reseed(5);
        var model = Mlp.Create(new[] { 3, 4, 2 }, "sigmoid");
        using var x = randn(7, 3);
        var max = PreActivations.MaxAbs(model, x);
        Assert.Equal(new[] { "fc1", "fc2" }, max.Keys.OrderBy(k => k));
        using var scope = NewDisposeScope();
        var fc1 = ((nn.Module<Tensor, Tensor>)model.named_children().First(c => c.name == "fc1").module).call(x);
        Assert.Equal(fc1.abs().max().item<float>(), max["fc1"], 6);
    }

    [Fact]
    public void The_TensorBoard_log_writes_a_non_empty_event_file_that_grows_with_steps()
    {
        using var dir = new TempDir();
        TorchEnvironment.Reseed(6);
        var model = Mlp.Create(new[] { 4, 3, 2 });
        var loop = new TrainingLoop(model, optim.Adam(model.parameters(), 1e-2), (o, t) => nn.functional.cross_entropy(o, t));
        new OutputSaturation().AttachTo(loop);
        var board = new TensorBoardLog(dir.File("tb"), histogramEvery: 1).AttachTo(loop);
        using var x = randn(8, 4);
        using var y = tensor(new long[] { 0, 1, 0, 1, 0, 1, 0, 1 });
        loop.Step(x, y);
        var file = Assert.Single(board.EventFiles);
        Assert.StartsWith("events.out.tfevents.", Path.GetFileName(file));
        long first = new FileInfo(file).Length;
        Assert.True(first > 0);
        for (int i = 0; i < 3; i++) loop.Step(x, y);
        board.Scalar("eval/loss", 0.5, 3);
        Assert.True(new FileInfo(file).Length > first);
        Assert.Throws<ArgumentException>(() => new TensorBoardLog(" "));
    }
}
