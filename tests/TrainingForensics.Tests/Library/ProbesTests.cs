using TorchSharp;
using TrainingForensics.Diagnostics;
using TrainingForensics.Models;
using TrainingForensics.Probes;
using TrainingForensics.Setup;
using TrainingForensics.Training;
using static TorchSharp.torch;

namespace TrainingForensics.Tests.Library;

public class ProbesTests
{
    [Fact]
    public void Gradient_norms_and_update_ratios_match_a_hand_computation()
    {
        TorchEnvironment.Reseed(11);
        var model = Mlp.Create(new[] { 3, 4, 2 });
        double lr = 0.5;
        var loop = new TrainingLoop(model, optim.SGD(model.parameters(), lr), (o, t) => nn.functional.cross_entropy(o, t));
        var grads = new GradientNorms().AttachTo(loop);
        var ratios = new UpdateRatios(every: 2).AttachTo(loop);
        var x = randn(8, 3);
        var y = randint(0, 2, new long[] { 8 });
        double w0 = 0, g0 = 0;
        loop.AfterBackward += ctx =>
        {
            if (ctx.Step != 0) return;
            var p = model.named_parameters().Single(p => p.name == "fc1.weight").parameter;
            w0 = p.norm().item<float>();
            g0 = p.grad!.norm().item<float>();
        };
        for (int i = 0; i < 4; i++) loop.Step(x, y);
        Assert.Equal(new[] { "fc1.weight", "fc2.weight" }, grads.Series.Keys.OrderBy(k => k));
        Assert.Equal(4, grads.Series["fc1.weight"].Count);
        Assert.Equal(g0, grads.Series["fc1.weight"][0].Value, 5);
        // plain SGD: ΔW = lr·∇W, so ‖ΔW‖/‖W‖ = lr·‖∇W‖/‖W‖
        Assert.Equal(lr * g0 / w0, ratios.Series["fc1.weight"][0].Value, 4);
        Assert.Equal(new long[] { 0, 2 }, ratios.Series["fc1.weight"].Select(s => s.Step));
        Assert.Equal(g0, loop.History.Steps[0].Values["grad_norm/fc1.weight"], 5);
        Assert.False(loop.History.Steps[1].Values.ContainsKey("update_ratio/fc1.weight"));
        grads.DetachFrom(loop);
        loop.Step(x, y);
        Assert.Equal(4, grads.Series["fc1.weight"].Count);
    }

    sealed class AlwaysAbove : Check
    {
        public override string Name => "above";
        public void See(long step, double v) { if (v > 1) Fire(step, "above one", new Dictionary<string, double> { ["v"] = v }, "lower it", "00-start-here"); }
    }

    [Fact]
    public void A_check_fires_once_and_reports_its_first_step()
    {
        var c = new AlwaysAbove();
        c.See(0, 0.5); c.See(3, 2); c.See(4, 5);
        var report = new DiagnosisReport(new[] { c });
        var f = Assert.Single(report.Findings);
        Assert.Equal(3, f.FirstStep);
        Assert.Equal(2, f.Evidence["v"]);
        Assert.Contains("[above] step 3", report.ToString());
        Assert.Contains("\"FirstStep\": 3", report.ToJson());
        Assert.Equal(1, report.ToDataFrame().Rows.Count);
        c.Reset();
        Assert.True(new DiagnosisReport(new[] { c }).Healthy);
    }
}
