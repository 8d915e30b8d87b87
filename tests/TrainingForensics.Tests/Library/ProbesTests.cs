using TorchSharp;
using TrainingForensics.Native;
using TrainingForensics.Diagnostics;
using TrainingForensics.Diagnostics.Doctor;
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

    [Fact]
    public void Probes_and_doctor_share_one_measurement_and_give_identical_numbers()
    {
        TorchEnvironment.Reseed(13);
        var model = Mlp.Create(new[] { 20, 32, 3 });
        var opt = optim.SGD(model.parameters(), 0.1, momentum: 0.9);
        var loop = new TrainingLoop(model, opt, (o, t) => nn.functional.cross_entropy(o, t));
        var grads = new GradientNorms().AttachTo(loop);
        var ratios = new UpdateRatios().AttachTo(loop);
        using var doctor = TrainingDoctor.Attach(model, opt, DoctorOptions.EveryStep).AttachTo(loop);
        var g = new Generator(3);
        const int steps = 12;
        for (int i = 0; i < steps; i++)
        {
            using var scope = NewDisposeScope();
            loop.Step(randn(new long[] { 16, 20 }, generator: g), randint(0, 3, new long[] { 16 }, generator: g));
        }
        // the doctor keeps extremes only: the probes' series give the same extremes to the last bit
        Assert.Equal(grads.Series["fc1.weight"].Min(s => s.Value), doctor.Vitals["min_first_grad_norm"]);
        // its ratio of step s is measured at step s + 1, so the last step's update is the probe's alone; two weights: median = mean
        var medians = Enumerable.Range(0, steps - 1).Select(s =>
        {
            var r = new[] { ratios.Series["fc1.weight"][s].Value, ratios.Series["fc2.weight"][s].Value }.Order().ToArray();
            return (r[0] + r[1]) / 2;
        }).ToList();
        Assert.Equal(medians.Max(), doctor.Vitals["max_update_ratio"]);
        Assert.Equal(medians.Min(), doctor.Vitals["min_update_ratio"]);
    }

    [Fact]
    public void Weight_snapshot_measures_an_update_of_whole_and_sampled_weights()
    {
        var small = new TorchSharp.Modules.Parameter(ones(10, 10));
        var large = new TorchSharp.Modules.Parameter(ones(300, 300));
        Assert.Equal(90_000, WeightSnapshot.MeasuredEntries(large, WeightSnapshot.Whole).numel());
        Assert.Equal(15_000, WeightSnapshot.MeasuredEntries(large, 1 << 16).numel()); // every 6th entry
        using var snapshot = new WeightSnapshot(new[] { small, large }, 1 << 16);
        Assert.Throws<InvalidOperationException>(() => snapshot.Distances());
        var norms = ParameterMeasurement.Read(snapshot.Norms().ToList());
        Assert.Equal(10.0, norms[0], 5);
        Assert.Equal(Math.Sqrt(15_000), norms[1], 3); // the sample's norm
        Assert.Throws<ArgumentException>(() => snapshot.Take(0, norms.AsSpan(0, 1)));
        snapshot.Take(0, norms);
        using (no_grad()) { small.add_(0.5); large.mul_(2); } // in place, as an optimiser does: the views follow
        var distances = ParameterMeasurement.Read(snapshot.Distances().ToList());
        Assert.Equal(0.5, snapshot.Ratio(0, distances[0]), 6);   // ‖0.5·1‖ / ‖1‖ over 100 entries: 5 / 10
        Assert.Equal(1.0, snapshot.Ratio(1, distances[1]), 6);   // doubled: ‖ΔW‖ = ‖W‖
        Assert.True(double.IsNaN(ParameterMeasurement.UpdateRatio(1, 0)));
        snapshot.Forget();
        Assert.Null(snapshot.Step);
    }

    /// <summary>
    /// The doctor's path through a snapshot: one Capture of the measured entries, then norms, distances and the next
    /// snapshot from that copy (the buffers swap). It must measure what Norms/Distances/Take measure, over several
    /// updates in a row, for a whole and a sampled weight; and a capture must not alias the weights (a later in-place
    /// update must not move the snapshot taken from it).
    /// </summary>
    [Fact]
    public void A_captured_snapshot_measures_what_the_views_measure_update_after_update()
    {
        TorchEnvironment.Reseed(9);
        var small = new TorchSharp.Modules.Parameter(randn(10, 10));
        var large = new TorchSharp.Modules.Parameter(randn(300, 300));
        using var viaViews = new WeightSnapshot(new[] { small, large }, 1 << 16);
        using var viaCapture = new WeightSnapshot(new[] { small, large }, 1 << 16);
        for (int step = 0; step < 4; step++)
        {
            viaCapture.Capture();
            var norms = ParameterMeasurement.Read(viaViews.Norms().ToList());
            var captured = ParameterMeasurement.Read(viaCapture.CapturedNorms().ToList());
            // float32 sums of a strided view and of its contiguous copy may round differently: equal to 1e-5 relative
            static void Close(double expected, double actual) => Assert.True(Math.Abs(expected - actual) <= 1e-5 * Math.Abs(expected), $"{actual} vs {expected}");
            for (int i = 0; i < 2; i++) Close(norms[i], captured[i]);
            if (step > 0)
            {
                var d = ParameterMeasurement.Read(viaViews.Distances().ToList());
                var dc = ParameterMeasurement.Read(viaCapture.CapturedDistances().ToList());
                for (int i = 0; i < 2; i++)
                {
                    Assert.True(d[i] > 0, "the weights moved");
                    Close(d[i], dc[i]);
                }
            }
            viaViews.Take(step, norms);
            viaCapture.TakeCaptured(step, captured);
            using (no_grad()) { small.add_(randn(10, 10).Times(0.1)); large.mul_(randn(300, 300).Times(0.1).Plus(1.0)); }
        }
    }

    [Fact]
    public void Gradient_norms_leave_out_parameters_without_a_gradient_and_read_back_in_order()
    {
        var a = new TorchSharp.Modules.Parameter(tensor(new float[] { 3, 4 }));
        var b = new TorchSharp.Modules.Parameter(zeros(2));
        var c = new TorchSharp.Modules.Parameter(tensor(new double[] { 1, 1 }));
        (a * 2).sum().backward();
        (c * 3).sum().backward();
        var (names, norms) = ParameterMeasurement.GradientNorms(new[] { ("a", a), ("b", b), ("c", c) });
        Assert.Equal(new[] { "a", "c" }, names);
        var values = ParameterMeasurement.Read(norms);
        Assert.Equal(2, values.Length);
        Assert.Equal(Math.Sqrt(8), values[0], 6);                   // ‖(2, 2)‖
        Assert.Equal((double)(float)Math.Sqrt(18), values[1]);      // float64 ‖(3, 3)‖ stacked in the first one's precision, then widened
        Assert.Empty(ParameterMeasurement.Read(new List<Tensor>()));
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
