using TorchSharp;
using TorchSharp.Modules;
using TrainingForensics.CaseStudies.BatchNormTrainVsEval;
using TrainingForensics.Data;
using TrainingForensics.Diagnostics;
using TrainingForensics.Models;
using TrainingForensics.Probes;
using TrainingForensics.Setup;
using TrainingForensics.Training;
using static TorchSharp.torch;

namespace TrainingForensics.Tests.Library;

public class BatchNormTests
{
    static float[] F(Tensor t) => t.detach().clone().data<float>().ToArray();

    [Fact]
    public void ConvBn_net_has_the_described_shape()
    {
        TorchEnvironment.Setup(1);
        var net = ConvBnNet.Create();
        long n = net.ParameterCount();
        Assert.InRange(n, 40_000, 50_000);
        var bns = ConvBnNet.BatchNorms(net);
        Assert.Equal(7, bns.Count);
        Assert.All(bns, b => { Assert.Equal(0.003, b.Layer.momentum); Assert.Equal(1e-3, b.Layer.eps); });
        Assert.Equal(new long[] { 3, 2, 16, 16 }, net.call(randn(3, 1, 32, 32)).shape);
        Assert.Equal(7, ConvBnNet.ConvWeights(net).Count());
        var deeper = ConvBnNet.Create(new ConvBnOptions { Widths = new[] { 16, 16, 16 }, Activation = "relu", BnMomentum = null });
        Assert.Equal(3, ConvBnNet.BatchNorms(deeper).Count);
        Assert.Null(ConvBnNet.BatchNorms(deeper)[0].Layer.momentum);
        var mobile = ConvBnNet.Create(new ConvBnOptions { Architecture = "mobilenetv2" });
        Assert.Equal(new long[] { 2, 2, 16, 16 }, mobile.call(randn(2, 1, 32, 32)).shape);
        Assert.Equal(1 + 6 * 3, ConvBnNet.BatchNorms(mobile).Count);
        Assert.Throws<ArgumentException>(() => ConvBnNet.Create(new ConvBnOptions { Activation = "gelu" }));
        Assert.Throws<ArgumentOutOfRangeException>(() => ConvBnNet.Create(new ConvBnOptions { BnMomentum = 0 }));
    }

    [Fact]
    public void Probe_reads_batch_statistics_without_touching_running_statistics()
    {
        TorchEnvironment.Setup(1);
        var net = ConvBnNet.Create(new ConvBnOptions { Widths = new[] { 16, 16 } });
        net.train();
        using (no_grad()) net.call(randn(8, 1, 32, 32) * 2 + 1); // move the running statistics away from (0, 1)
        var bns = ConvBnNet.BatchNorms(net);
        var before = bns.Select(b => (F(b.Layer.running_mean!), F(b.Layer.running_var!), b.Layer.num_batches_tracked!.item<long>())).ToList();
        var x = randn(16, 1, 32, 32) * 3 + 0.5;
        net.eval();
        var stats = BatchNormProbe.Measure(net, x, step: 7);
        Assert.False(net.training); // mode restored
        for (int i = 0; i < bns.Count; i++)
        {
            Assert.Equal(before[i].Item1, F(bns[i].Layer.running_mean!)); // bit-identical
            Assert.Equal(before[i].Item2, F(bns[i].Layer.running_var!));
            Assert.Equal(before[i].Item3, bns[i].Layer.num_batches_tracked!.item<long>());
        }
        // the first layer's input is the conv output of x: recompute its statistics by hand
        var conv = net.named_modules().Single(m => m.name == "block1.conv").module as Conv2d;
        using (no_grad())
        {
            var h = conv!.call(x).transpose(0, 1).flatten(1).to_type(ScalarType.Float64);
            var mean = h.mean(new long[] { 1 }).data<double>().ToArray();
            var variance = h.var(1).data<double>().ToArray();
            for (int c = 0; c < 16; c++)
            {
                Assert.Equal(mean[c], stats[0].BatchMean[c], 4);
                Assert.Equal(variance[c], stats[0].BatchVar[c], 3);
            }
        }
        Assert.Equal(7, stats[0].Step);
        Assert.Equal("block1.bn", stats[0].Layer);
        double expectedRatio = Enumerable.Range(0, 16).Average(c => Math.Log(stats[0].RunningVar[c] / stats[0].BatchVar[c]));
        Assert.Equal(expectedRatio, stats[0].LogVarRatio, 10);
        Assert.Equal(Math.Pow(0.997, 1), stats[0].InitialShare, 10);
    }

    [Fact]
    public void Recalibration_estimates_the_datas_mean_and_variance_and_keeps_momentum()
    {
        TorchEnvironment.Setup(1);
        var bn = nn.BatchNorm2d(3, eps: 1e-3, momentum: 0.003);
        var model = nn.Sequential(("bn", (nn.Module<Tensor, Tensor>)bn));
        var means = tensor(new float[] { 2f, -1f, 0.5f }).view(1, 3, 1, 1);
        var stds = tensor(new float[] { 3f, 0.5f, 1f }).view(1, 3, 1, 1);
        var batches = Enumerable.Range(0, 200).Select(_ => randn(8, 3, 4, 4) * stds + means).ToList();
        model.eval();
        int used = BatchNormRecalibration.Run(model, batches, maxBatches: 150);
        Assert.Equal(150, used);
        Assert.False(model.training);
        Assert.Equal(0.003, bn.momentum); // restored
        var rm = F(bn.running_mean!); var rv = F(bn.running_var!);
        Assert.Equal(2.0, rm[0], 1); Assert.Equal(-1.0, rm[1], 1); Assert.Equal(0.5, rm[2], 1);
        Assert.InRange(rv[0], 9 * 0.93, 9 * 1.07); Assert.InRange(rv[1], 0.25 * 0.93, 0.25 * 1.07); Assert.InRange(rv[2], 0.93, 1.07);
        // exactly the plain average of the batches' statistics (the cumulative average), not an exponential one
        var used150 = batches.Take(150).ToList();
        var expectedMean = stack(used150.Select(b => b.mean(new long[] { 0, 2, 3 })).ToArray()).mean(new long[] { 0 });
        Assert.True(bn.running_mean!.allclose(expectedMean, rtol: 1e-4, atol: 1e-5));
        // a momentum-0.003 running average over the same batches would still be mostly its initial value
        var slow = nn.BatchNorm2d(3, eps: 1e-3, momentum: 0.003); slow.train();
        using (no_grad()) foreach (var b in used150) slow.call(b);
        Assert.True(F(slow.running_mean!)[0] < 1.0);
        Assert.Throws<ArgumentException>(() => BatchNormRecalibration.Run(model, Array.Empty<Tensor>()));
        Assert.Throws<ArgumentException>(() => BatchNormRecalibration.Run(model, batches, layers: _ => false));
        Assert.Equal(1533, Math.Round(BatchNormRecalibration.StepsToForget(0.003)));
    }

    [Fact]
    public void Recalibrating_one_layer_leaves_the_others_untouched()
    {
        TorchEnvironment.Setup(1);
        var net = ConvBnNet.Create(new ConvBnOptions { Widths = new[] { 16, 16 } });
        var second = ConvBnNet.BatchNorms(net)[1].Layer;
        var before = (F(second.running_mean!), F(second.running_var!));
        BatchNormRecalibration.Run(net, Enumerable.Range(0, 5).Select(_ => randn(4, 1, 32, 32)), layers: n => n == "block1.bn");
        Assert.Equal(before.Item1, F(second.running_mean!));
        Assert.Equal(before.Item2, F(second.running_var!));
        Assert.NotEqual(new float[16], F(ConvBnNet.BatchNorms(net)[0].Layer.running_mean!));
    }

    [Fact]
    public void Shadow_running_statistics_match_a_real_layer_with_that_momentum()
    {
        TorchEnvironment.Setup(1);
        TorchEnvironment.Reseed(3);
        var net = ConvBnNet.Create(new ConvBnOptions { Widths = new[] { 16, 16 }, BnMomentum = 0.1 });
        TorchEnvironment.Reseed(3);
        var slow = ConvBnNet.Create(new ConvBnOptions { Widths = new[] { 16, 16 }, BnMomentum = 0.003 });
        using var shadow = new BatchNormShadow(slow, 0.1);
        net.train(); slow.train();
        for (int i = 0; i < 20; i++) { var x = randn(8, 1, 32, 32) + i * 0.1; net.call(x); slow.call(x); }
        using (no_grad()) slow.call(randn(8, 1, 32, 32) * 100); // passes without gradients are not training
        var real = ConvBnNet.BatchNorms(net)[1].Layer;
        var mine = ConvBnNet.BatchNorms(slow)[1].Layer;
        var slowVar = F(mine.running_var!);
        using (shadow.Use(0.1))
        {
            Assert.True(mine.running_var!.allclose(real.running_var!, rtol: 1e-4));
            Assert.True(mine.running_mean!.allclose(real.running_mean!, rtol: 1e-4, atol: 1e-6));
        }
        Assert.Equal(slowVar, F(mine.running_var!)); // restored
        Assert.Throws<ArgumentException>(() => shadow.Use(0.5));
    }

    [Fact]
    public void Shadow_statistics_of_a_BatchNorm1d_match_a_real_layer_per_feature()
    {
        TorchEnvironment.Setup(1);
        var real = nn.BatchNorm1d(5, momentum: 0.2);
        var slow = nn.BatchNorm1d(5, momentum: 0.01);
        using var shadow = new BatchNormShadow(nn.Sequential(("bn", slow)), 0.2);
        real.train(); slow.train();
        // features with different means and spreads: the statistics must be per feature (dimension 1), not pooled
        var scale = tensor(new float[] { 1, 10, 0.1f, 3, 50 });
        for (int i = 0; i < 15; i++) { var x = randn(6, 5) * scale + i; real.call(x); slow.call(x); }
        using (shadow.Use(0.2))
        {
            Assert.True(slow.running_var!.allclose(real.running_var!, rtol: 1e-4));
            Assert.True(slow.running_mean!.allclose(real.running_mean!, rtol: 1e-4, atol: 1e-6));
        }
    }

    [Fact]
    public void Train_eval_gap_preserves_buffers_and_sees_a_stale_running_variance()
    {
        TorchEnvironment.Setup(1);
        TorchEnvironment.Reseed(1);
        var net = ConvBnNet.Create(new ConvBnOptions { Widths = new[] { 16, 16 } });
        using var set = new KeypointGenerator(9).Generate(32);
        var bn = ConvBnNet.BatchNorms(net);
        var before = F(bn[0].Layer.running_var!);
        var gap = TrainEvalGap.Measure(net, set, step: 3, chunk: 8);
        Assert.Equal(before, F(bn[0].Layer.running_var!));
        Assert.Equal(3, gap.Step);
        Assert.InRange(gap.EvalLoss, 0, 1);
        Assert.Equal((gap.EvalLoss - gap.TrainModeLoss) / gap.TrainModeLoss, gap.RelativeGap, 12);
        // inflate the running variance 100×: eval-mode activations shrink, the eval output changes, train mode does not
        using (no_grad()) foreach (var (_, l) in bn) l.running_var!.mul_(100);
        var stale = TrainEvalGap.Measure(net, set, chunk: 8);
        Assert.Equal(gap.TrainModeLoss, stale.TrainModeLoss, 6);
        Assert.NotEqual(gap.EvalLoss, stale.EvalLoss);
        Assert.Throws<ArgumentOutOfRangeException>(() => TrainEvalGap.Measure(net, set, chunk: 1));
    }

    static BatchNormLayerStats Layer(double runVar, double batchVar, long tracked, double momentum = 0.003, double shift = 0) =>
        new("bn", 0, new[] { shift }, new[] { batchVar }, new[] { 0.0 }, new[] { runVar }, tracked, momentum);

    [Fact]
    public void Drift_check_discounts_the_warm_up_and_fires_on_a_lagging_variance()
    {
        var check = new BatchNormDriftCheck();
        // early in training: running variance still mostly its initial 1, batch variance 0.1 → raw ratio 10, but the
        // bias-corrected running variance equals the batch variance → no firing
        double share = Math.Pow(0.997, 100);
        double runVar = share * 1 + (1 - share) * 0.1;
        var early = new[] { Layer(runVar, 0.1, 100), Layer(runVar, 0.1, 100), Layer(runVar, 0.1, 100) };
        Assert.True(early[0].VarRatio > 5);
        Assert.Equal(0.0, early[0].CorrectedLogVarRatio, 6);
        check.Observe(100, early); check.Observe(200, early);
        Assert.False(check.Fired);
        // the batches' variance fell 10× below what the running average has seen: fires after Patience (2) measurements
        var lagging = new[] { Layer(runVar, 0.01, 100), Layer(runVar, 0.01, 100), Layer(1.0, 1.0, 100) };
        check.Observe(300, lagging);
        Assert.False(check.Fired);
        check.Observe(400, lagging);
        Assert.True(check.Fired);
        Assert.Equal(400, check.Finding!.FirstStep);
        Assert.InRange(check.Finding.Evidence["median_var_ratio_corrected"], 9, 11);
        Assert.Equal("03-batchnorm-train-vs-eval", check.Finding.Notebook);
        check.Reset();
        Assert.False(check.Fired);
    }

    [Fact]
    public void Drift_check_uses_the_loss_gap_only_after_the_warm_up()
    {
        var check = new BatchNormDriftCheck();
        var bad = (long step) => new TrainEvalGapResult(step, 0.012, 0.002, 0, 1, 0.04, 0.9);
        check.ObserveGap(bad(200), 0.003); check.ObserveGap(bad(300), 0.003);
        Assert.False(check.Fired); // a 0.003 running average needs ~1533 steps to forget its start
        check.ObserveGap(bad(1600), 0.003); check.ObserveGap(bad(1700), 0.003);
        Assert.Equal(1700, check.Finding!.FirstStep);
        var fine = new BatchNormDriftCheck();
        for (int s = 100; s <= 1000; s += 100) fine.ObserveGap(new TrainEvalGapResult(s, 0.0021, 0.002, 1, 1, 0.9, 0.9), 0.1);
        Assert.False(fine.Fired);
    }
    // a sawtooth of conv-weight norms: 10 measurements shrinking 10% each, then a 3x jump, three times over
    static List<(long Step, double Norm)> Sawtooth(int teeth, int length = 10, double jump = 3)
    {
        var norms = new List<(long, double)>();
        double n = 4; long step = 100;
        for (int t = 0; t < teeth; t++)
        {
            for (int k = 0; k < length; k++, step += 100) { norms.Add((step, n)); n *= 0.9; }
            n *= jump;
        }
        for (int k = 0; k < length; k++, step += 100) { norms.Add((step, n)); n *= 0.9; }
        return norms;
    }

    [Fact]
    public void Cycle_analysis_finds_each_jump_once_with_its_shrink_and_loss_spike()
    {
        var norms = Sawtooth(3);
        var losses = Enumerable.Repeat(0.001, (int)norms[^1].Step).ToArray();
        losses[2050] = 0.02; // inside the second jump: measurements at 2000 (low) and 2100 (high) -> step indices 2000..2099
        var jumps = TrainEvalGapCycles.Jumps(norms, stepLosses: losses);
        Assert.Equal(3, jumps.Count);
        Assert.Equal(new long[] { 1000, 2000, 3000 }, jumps.Select(j => j.LowStep));
        Assert.Equal(new long[] { 1100, 2100, 3100 }, jumps.Select(j => j.HighStep));
        Assert.All(jumps, j => Assert.Equal(3 * 0.9, j.Rise, 9));
        Assert.Equal(1 - Math.Pow(0.9, 9), jumps[1].ShrinkBefore, 9);
        Assert.Equal(1.0, jumps[0].LossSpike, 9);
        Assert.Equal(20.0, jumps[1].LossSpike, 9);
        // a two-step rise is one jump (not two), and the next window does not reach back into it
        var twoStep = new List<(long, double)> { (100, 2.0), (200, 1.0), (300, 1.2), (400, 2.4), (500, 2.2), (600, 2.0) };
        var one = Assert.Single(TrainEvalGapCycles.Jumps(twoStep));
        Assert.Equal((200L, 400L), (one.LowStep, one.HighStep));
        Assert.Equal(0.5, one.ShrinkBefore, 9);
        // a slow drift up (10% per measurement) and small wiggles are not jumps
        var slow = Enumerable.Range(1, 20).Select(i => ((long)i * 100, Math.Pow(1.1, i) * (i % 2 == 0 ? 1.0 : 0.97))).ToList();
        Assert.Empty(TrainEvalGapCycles.Jumps(slow));
        Assert.Throws<ArgumentOutOfRangeException>(() => TrainEvalGapCycles.Jumps(norms, rise: 1.0));
        Assert.Throws<ArgumentException>(() => TrainEvalGapCycles.Jumps(new List<(long, double)> { (1, 1.0), (2, double.NaN) }));
    }

    [Fact]
    public void Cycle_analysis_measures_phases_and_late_shares()
    {
        var norms = Sawtooth(2);
        // eval loss grows while the weights shrink (0.001 right after a jump, x1.2 per measurement); train-mode loss flat
        var curve = new List<TrainEvalGapResult>();
        double ev = 0.001;
        for (int i = 0; i < norms.Count; i++)
        {
            if (i > 0 && norms[i].Norm > norms[i - 1].Norm) ev = 0.001;
            curve.Add(new TrainEvalGapResult(norms[i].Step, ev, 0.001, ev > 0.002 ? 0.5 : 1.0, 1.0, 0.9, 0.9));
            ev *= 1.2;
        }
        var a = TrainEvalGapCycles.Analyze(norms, curve, null, norms[^1].Step);
        Assert.Equal(2, a.Jumps.Count);
        Assert.Equal(2, a.Cycles);
        Assert.Equal(2, a.Phases.Count);
        Assert.Equal(1100, a.Phases[0].FromStep);
        Assert.Equal(2000, a.Phases[0].ToStep);
        Assert.Equal(0.001, a.Phases[0].MinEvalLoss, 12);
        Assert.Equal(Math.Pow(1.2, 9), a.Phases[0].EvalLossRise, 9);
        Assert.Equal(0.001 * Math.Pow(1.2, 9), a.Jumps[0].PeakEvalLoss, 12); // the low point before the jump
        Assert.True(double.IsNaN(a.Jumps[0].LossSpike));
        var late = curve.Where(c => c.Step > a.LateFrom).ToList();
        Assert.Equal(late.Count, a.LatePoints);
        Assert.Equal(late.Count(c => c.EvalLoss > 1.5 * c.TrainModeLoss) / (double)late.Count, a.LateCollapseShare, 12);
        Assert.Equal(late.Count(c => c.EvalAccuracy < 0.9) / (double)late.Count, a.LateLowAccuracyShare, 12);
        Assert.InRange(a.LateCollapseShare, 0.3, 0.95); // neither none nor all: the test data has both kinds
        Assert.Equal(0.001, a.LateMaxTrainModeLoss, 12);
        Assert.Equal(a.Phases.Min(p => p.EvalLossRise), a.MinEvalLossRise);
        Assert.True(double.IsNaN(a.MinLossSpike));                            // no step losses given
        Assert.Equal(2, a.JumpsFrame(zeroLoss: 0.01).Rows.Count);
        Assert.Equal(2, a.PhasesFrame().Rows.Count);
        // a stricter shrink threshold than the data's 61% counts no cycles
        Assert.Equal(0, TrainEvalGapCycles.Analyze(norms, curve, null, norms[^1].Step, shrink: 0.7).Cycles);
        Assert.Throws<ArgumentException>(() => TrainEvalGapCycles.Analyze(norms.Skip(1).ToList(), curve, null, 3000));
        Assert.Throws<ArgumentException>(() => TrainEvalGapCycles.Analyze(norms, curve, null, 2 * norms[^1].Step));
    }

    [Fact]
    public void Keypoint_optimizers_decay_the_conv_weights_only_and_keep_each_names_meaning()
    {
        TorchEnvironment.Setup(1);
        var net = ConvBnNet.Create();
        var momentum = KeypointTraining.MakeOptimizer(net, new KeypointTrainingConfig { Optimizer = "sgd-momentum", WeightDecay = 1e-3 });
        Assert.IsAssignableFrom<SGD>(momentum);
        var groups = momentum.ParamGroups.Cast<TorchSharp.Modules.ParamGroup>().Select(g => (SGD.Options)g.Options).ToList();
        Assert.Equal(new double?[] { 1e-3, 0 }, groups.Select(g => g.weight_decay));
        Assert.All(groups, g => Assert.Equal(0.9, g.momentum));
        long convWeights = ConvBnNet.ConvWeights(net).Count();
        Assert.Equal(convWeights, ((TorchSharp.Modules.ParamGroup)momentum.ParamGroups.First()).Parameters.Count());
        var plain = KeypointTraining.MakeOptimizer(net, new KeypointTrainingConfig { Optimizer = "sgd" });
        Assert.Equal(0.0, ((SGD.Options)((TorchSharp.Modules.ParamGroup)plain.ParamGroups.First()).Options).momentum);
        Assert.IsAssignableFrom<AdamW>(KeypointTraining.MakeOptimizer(net, new KeypointTrainingConfig { Optimizer = "adamw" }));
        var all = KeypointTraining.MakeOptimizer(net, new KeypointTrainingConfig { WeightDecayOn = "all" });
        Assert.Single(all.ParamGroups);
        Assert.Contains("sgd-momentum", Assert.Throws<ArgumentException>(() => new KeypointTrainingConfig { Optimizer = "sgdm" }.Validate()).Message);
    }

    [Fact]
    public void The_fixes_are_measured_on_the_broken_run_and_leave_its_model_as_it_was()
    {
        TorchEnvironment.Setup(3);
        var config = new KeypointTrainingConfig { Name = "broken", Steps = 12, BatchSize = 4, EvalEvery = 6, ProbeSize = 8, WeightDecay = 3e-3, ShadowMomenta = new[] { 0.1 } };
        var check = new BatchNormDriftCheck();
        using var broken = KeypointTraining.Train(config, new[] { check });
        Assert.Equal(DeviceType.CPU, broken.Device.type);
        var final = broken.Final();
        var before = ConvBnNet.BatchNorms(broken.Model).Select(b => F(b.Layer.running_var!)).ToList();
        var fixes = new BatchNormFixes(broken, final, check);
        fixes.AddMomenta(0.1);
        fixes.AddBatchStatistics();
        double best = fixes.AddSingleLayerRecalibration(batches: 2);
        fixes.AddRecalibration(batches: 2);
        var messages = new List<string>();
        var control = fixes.AddRun("no weight decay (control)", config with { Name = "no-decay", WeightDecay = 0, ShadowMomenta = Array.Empty<double>() }, messages.Add);
        Assert.Equal(before, ConvBnNet.BatchNorms(broken.Model).Select(b => F(b.Layer.running_var!)).ToList());
        Assert.Equal(new[] { "broken (momentum 0.003)", "BN momentum 0.1", "eval with batch statistics", "BN re-estimation (2 batches)", "no weight decay (control)" },
            fixes.Rows.Select(r => r.Fix));
        Assert.Equal(final.TrainModeAccuracy, fixes.EvalAccuracy("eval with batch statistics"));
        Assert.Equal(best, fixes.BestSingleLayer);
        Assert.NotNull(control.CheckFired);
        Assert.Equal(2, messages.Count);                                      // one line per measurement of the run
        Assert.Equal(5, fixes.ToDataFrame().Rows.Count);
        Assert.Throws<KeyNotFoundException>(() => fixes["nope"]);
    }
}
