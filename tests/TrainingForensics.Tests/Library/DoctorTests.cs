using System.Text.Json;
using TorchSharp;
using TorchSharp.Modules;
using TrainingForensics.Diagnostics;
using TrainingForensics.Diagnostics.Doctor;
using TrainingForensics.Models;
using TrainingForensics.Probes;
using TrainingForensics.Setup;
using TrainingForensics.Training;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using Reduction = TrainingForensics.Training.Reduction;

namespace TrainingForensics.Tests.Library;

public class DoctorTests
{
    // ------------------------------------------------------------------ detectors on crafted numbers

    [Fact]
    public void NonFinite_fires_on_nan_loss_and_inf_gradients_only()
    {
        var quiet = new NonFiniteValues();
        quiet.ObserveLoss(0, 0.7); quiet.ObserveTensors(0, 1.5, 30);
        Assert.False(quiet.Fired);
        var loss = new NonFiniteValues();
        loss.ObserveLoss(4, double.NaN);
        Assert.Equal(4, loss.Finding!.FirstStep);
        var grads = new NonFiniteValues();
        grads.ObserveTensors(7, double.PositiveInfinity, 30);
        Assert.Contains("gradient", grads.Finding!.Summary);
    }

    [Fact]
    public void Vanishing_gradients_follow_the_AutoTrainer_rule_with_patience()
    {
        var c = new VanishingGradients(patience: 2);
        c.Observe(0, 1e-3, 1.0);   // ratio 1e-3 but ‖G1‖ 1e-3 > 1e-4: healthy
        c.Observe(1, 5e-5, 0.01);  // ‖G1‖ ≤ 1e-4 but ratio 5e-3 > 1e-3: healthy
        Assert.False(c.Fired);
        c.Observe(2, 5e-5, 1.0);
        Assert.False(c.Fired);     // first hit, patience 2
        c.Observe(3, 0, 0);        // all zero counts as vanished
        Assert.True(c.Fired);
        Assert.Equal(3, c.Finding!.FirstStep);
        Assert.Equal(2, c.Finding.Evidence["since_step"]);
    }

    [Fact]
    public void Exploding_gradients_compare_with_the_start_of_training()
    {
        var c = new ExplodingGradients(factor: 100, patience: 2);
        foreach (var (s, n) in new[] { (0L, 1.0), (1L, 2.0), (2L, 1.5) }) c.Observe(s, n);
        Assert.Equal(1.5, c.Baseline);
        c.Observe(3, 140); c.Observe(4, 10); c.Observe(5, 200);
        Assert.False(c.Fired);
        c.Observe(6, 300);
        Assert.True(c.Fired);
        Assert.Equal(200, c.Finding!.Evidence["growth"], 6);
    }

    [Fact]
    public void Dying_relu_and_update_ratio_and_divergence_need_sustained_evidence()
    {
        var d = new DyingRelu(patience: 2);
        d.Observe(0, 0.9, 100); d.Observe(1, 0.5, 100); d.Observe(2, 0.8, 100);
        Assert.False(d.Fired);
        d.Observe(3, 0.7, 100);
        Assert.True(d.Fired);

        var u = new UpdateRatioBand(patience: 2);
        foreach (var r in new[] { 1e-3, 0.5, 2.0, 1e-3, 1e-8 }) u.Observe(0, r);
        Assert.False(u.Fired);
        u.Observe(9, 1e-9);
        Assert.Contains("not moving", u.Finding!.Summary);
        var high = new UpdateRatioBand(patience: 1);
        high.Observe(3, 1.5);
        Assert.Contains("far too high", high.Finding!.Summary);

        var l = new LossDiverging(patience: 2);
        foreach (var (s, v) in new[] { (0L, 2.3), (1L, 1.0), (2L, 0.5), (3L, 1.2), (4L, 0.4), (5L, 0.9) }) l.Observe(s, v);
        Assert.False(l.Fired);     // 0.9 > 2×0.4 but only once in a row
        l.Observe(6, 0.95);
        Assert.True(l.Fired);
        Assert.Equal(0.4, l.Finding!.Evidence["best_loss"]);
        var tiny = new LossDiverging(patience: 1);
        foreach (var v in new[] { 2.3, 0.001, 0.003, 0.004 }) tiny.Observe(0, v); // doubling near zero is not divergence
        Assert.False(tiny.Fired);
    }

    [Fact]
    public void Metric_shapes_flag_the_auto_accuracy_pitfalls_only()
    {
        var check = new MetricInputShapes();
        Assert.Null(check.Observe(0, tensor(new long[] { 1, 2, 3 }), randn(3, 10)));                 // sparse categorical: fine
        Assert.Null(check.Observe(0, functional.one_hot(tensor(new long[] { 1, 2 }), 4), randn(2, 4))); // one-hot vs scores: fine
        Assert.Null(check.Observe(0, tensor(new long[] { 0, 1, 1 }), rand(3, 1)));                    // binary with 0/1 labels: fine
        Assert.False(check.Fired);
        Assert.NotNull(check.Observe(5, tensor(new long[] { 1, 2, 3 }), tensor(new long[] { 1, 2, 2 })));
        Assert.Equal(5, check.Finding!.FirstStep);
        Assert.Contains("ONE", check.Finding.Summary);
        var binary = new MetricInputShapes();
        Assert.NotNull(binary.Observe(0, tensor(new long[] { 0, 4, 9 }), rand(3, 1)));
    }

    // ------------------------------------------------------------------ the doctor on real training

    static (Sequential Model, optim.Optimizer Opt) Mlp(int seed, string? output = null, double lr = 1e-2, string opt = "adam")
    {
        TorchEnvironment.Reseed(seed);
        var m = Models.Mlp.Create(new[] { 20, 32, 3 }, output);
        return (m, opt == "sgd" ? optim.SGD(m.parameters(), lr) : optim.Adam(m.parameters(), lr));
    }

    /// <summary>A learnable 3-class problem: the class is the argmax of three fixed projections of the input.</summary>
    static (Tensor X, Tensor Y) Batch(long step, int n = 32, double scale = 1)
    {
        var g = new Generator((ulong)(1000 + step));
        var x = randn(new long[] { n, 20 }, generator: g) * scale;
        var y = x.narrow(1, 0, 3).argmax(1);
        return (x, y);
    }

    static DoctorReport Train(nn.Module<Tensor, Tensor> model, optim.Optimizer opt, Func<Tensor, Tensor, Tensor> loss, int steps, DoctorOptions? options = null, double scale = 1)
    {
        using var doctor = TrainingDoctor.Attach(model, opt, options ?? new DoctorOptions { Every = 5, BatchNormEvery = 5 });
        var lossFn = doctor.Loss(loss);
        for (int s = 0; s < steps; s++)
        {
            using var scope = NewDisposeScope();
            var (x, y) = Batch(s, scale: scale);
            opt.zero_grad();
            var l = lossFn(model.call(x), y);
            l.backward();
            doctor.Observe(s);
            opt.step();
        }
        return doctor.Report();
    }

    static Tensor Ce(Tensor o, Tensor y) => functional.cross_entropy(o, y);

    [Fact]
    public void Healthy_training_gives_no_finding()
    {
        var (m, opt) = Mlp(1);
        var report = Train(m, opt, Ce, 120);
        Assert.True(report.Healthy, report.ToString());
        Assert.Equal(120, report.StepsObserved);
        Assert.True(report.Vitals["max_update_ratio"] < 1.0);
    }

    [Fact]
    public void Softmax_before_cross_entropy_is_found_statically_and_by_the_outputs()
    {
        var (m, opt) = Mlp(1, output: "softmax");
        var report = Train(m, opt, Ce, 30);
        Assert.Equal(0, report.Get("squashing-layer-before-logits-loss")!.FirstStep);
        Assert.True(report.Has("probabilities-into-logits-loss"));
        Assert.Equal("01-loss-plateau", report.Get("squashing-layer-before-logits-loss")!.Notebook);
        // a static finding has no numbers: its evidence line says where it came from instead of ending empty
        Assert.Contains("evidence: the model's structure (a static check: nothing measured)", report.ToString());
        Assert.DoesNotMatch(@"evidence: *\r?\n", report.ToString());
    }

    [Fact]
    public void A_squashing_layer_before_an_mse_loss_is_not_a_logits_bug()
    {
        var (m, opt) = Mlp(1, output: "sigmoid");
        var report = Train(m, opt, (o, y) => functional.mse_loss(o, functional.one_hot(y, 3).to_type(ScalarType.Float32)), 30);
        Assert.False(report.Has("squashing-layer-before-logits-loss"));
        Assert.False(report.Has("probabilities-into-logits-loss"));
    }

    [Fact]
    public void Dead_relus_are_found_through_forward_hooks()
    {
        var (m, opt) = Mlp(1);
        using (no_grad()) ((Linear)m[0]).bias!.fill_(-50);   // every hidden unit starts (and stays) dead
        var report = Train(m, opt, Ce, 20);
        var f = report.Get("dying-relu");
        Assert.NotNull(f);
        Assert.Equal(1.0, f!.Evidence["dead_fraction"]);
        Assert.Equal(32, f.Evidence["units"]);
    }

    [Fact]
    public void Nan_from_a_huge_learning_rate_is_found()
    {
        var (m, opt) = Mlp(1, lr: 1e4, opt: "sgd");
        var report = Train(m, opt, (o, y) => (o - functional.one_hot(y, 3)).pow(2).sum(), 40, scale: 100);
        Assert.True(report.Has("nan-or-inf"), report.ToString());
    }

    [Fact]
    public void Mean_mse_under_sgd_is_read_as_the_wrong_reduction_but_not_under_adam()
    {
        var mean = Losses.Mse(Reduction.Mean);
        var (m, opt) = Mlp(1, lr: 0.01, opt: "sgd");
        var sgd = Train(m, opt, mean, 10);
        var f = sgd.Get("loss-scale");
        Assert.NotNull(f);
        Assert.Equal(1.0 / 3, f!.Evidence["factor"], 4);
        var (m2, opt2) = Mlp(1, lr: 0.01);
        Assert.False(Train(m2, opt2, mean, 10).Has("loss-scale"));
        var (m3, opt3) = Mlp(1, lr: 0.01, opt: "sgd");
        Assert.False(Train(m3, opt3, Losses.Mse(Reduction.SumOverBatch), 10).Has("loss-scale"));
    }

    [Fact]
    public void Metric_and_validation_wrappers_inspect_what_they_are_given()
    {
        var (m, opt) = Mlp(1);
        using var doctor = TrainingDoctor.Attach(m, opt);
        var train = doctor.Loss(Losses.Mse(Reduction.SumOverBatch));
        var (x, y) = Batch(0);
        var l = train(m.call(x), y); l.backward(); doctor.Observe(0);
        var metric = doctor.Metric((t, p) => (double)p.eq(t).sum().item<long>());
        Assert.Equal(metric(y, y), (double)y.shape[0]);     // the wrapped metric returns what the metric returns
        Assert.True(doctor.Checks.Single(c => c.Name == "metric-label-shapes").Fired);
        var val = doctor.ValidationLoss(Losses.Mse(Reduction.Mean));
        using (no_grad()) val(m.call(x), y);
        Assert.True(doctor.Checks.Single(c => c.Name == "validation-loss-reduction").Fired);
    }

    // ------------------------------------------------------------------ no interference, attach/detach

    static Sequential BnDropoutNet()
    {
        return Sequential(("fc1", Linear(20, 32)), ("bn", BatchNorm1d(32, momentum: 0.1)), ("relu", ReLU()),
            ("drop", Dropout(0.3)), ("fc2", Linear(32, 3)));
    }

    static (List<float> Losses, float[] Weights, float[] RunningVar) Run(int steps, DoctorOptions? options, int detachAfter = int.MaxValue, bool loop = false)
    {
        TorchEnvironment.Reseed(7);
        var model = BnDropoutNet();
        var opt = optim.Adam(model.parameters(), 1e-2);
        var losses = new List<float>();
        TrainingDoctor? doctor = options != null ? TrainingDoctor.Attach(model, opt, options) : null;
        if (loop)
        {
            var tl = new TrainingLoop(model, opt, Ce);
            doctor?.AttachTo(tl);
            for (int s = 0; s < steps; s++)
            {
                if (s == detachAfter) doctor?.Detach();
                using var scope = NewDisposeScope();
                var (x, y) = Batch(s);
                losses.Add((float)tl.Step(x, y).Loss);
            }
        }
        else
        {
            var lossFn = doctor?.Loss(Ce) ?? Ce;
            for (int s = 0; s < steps; s++)
            {
                if (s == detachAfter) doctor?.Detach();
                using var scope = NewDisposeScope();
                var (x, y) = Batch(s);
                model.train();
                opt.zero_grad();
                var l = lossFn(model.call(x), y);
                l.backward();
                if (doctor is { Detached: false }) doctor.Observe(s);
                opt.step();
                losses.Add(l.item<float>());
            }
        }
        var w = model.parameters().SelectMany(p => p.detach().data<float>().ToArray()).ToArray();
        var rv = ((BatchNorm1d)model[1]).running_var!.data<float>().ToArray();
        return (losses, w, rv);
    }

    [Fact]
    public void The_doctor_does_not_change_training_bit_for_bit_before_and_after_detach()
    {
        var plain = Run(40, null);
        var watched = Run(40, DoctorOptions.EveryStep, detachAfter: 25);
        Assert.Equal(plain.Losses, watched.Losses);          // dropout draws and BN statistics unchanged
        Assert.Equal(plain.Weights, watched.Weights);
        Assert.Equal(plain.RunningVar, watched.RunningVar);
        var looped = Run(40, DoctorOptions.EveryStep, detachAfter: 25, loop: true);
        var plainLoop = Run(40, null, loop: true);
        Assert.Equal(plainLoop.Losses, looped.Losses);
        Assert.Equal(plainLoop.Weights, looped.Weights);
    }

    [Fact]
    public void The_probe_pass_puts_every_module_s_mode_back_whatever_it_switched()
    {
        // mode-dependent leaves only (BatchNorm, dropout: switched one by one), none (plain MLP: nothing switched),
        // and a module of one's own with submodules (the whole model switched and put back module by module)
        foreach (var make in new Func<Module<Tensor, Tensor>>[]
        {
            () => Sequential(("fc1", Linear(6, 8)), ("bn", BatchNorm1d(8)), ("relu", ReLU()), ("drop", Dropout(0.2)), ("fc2", Linear(8, 3))),
            () => TrainingForensics.Models.Mlp.Create(new[] { 6, 8, 3 }),
            () => Sequential(("inner", Sequential(("fc1", Linear(6, 8)), ("drop", Dropout(0.2)))), ("fc2", Linear(8, 3))),
        })
        {
            TorchEnvironment.Reseed(2);
            var model = make();
            var opt = optim.SGD(model.parameters(), 0.05);
            var doctor = TrainingDoctor.Attach(model, opt, DoctorOptions.EveryStep);
            var lossFn = doctor.Loss(Ce);
            var modules = model.modules().ToList();
            model.train();
            modules[^2].eval(); // one module left in eval mode on purpose: it must stay there
            var before = modules.Select(m => m.training).ToArray();
            var g = new Generator(2);
            for (int s = 0; s < 4; s++)
            {
                using var scope = NewDisposeScope();
                var x = randn(new long[] { 16, 6 }, generator: g);
                var y = randint(0, 3, new long[] { 16 }, generator: g);
                opt.zero_grad();
                lossFn(model.call(x), y).backward();
                doctor.Observe(s);
                opt.step();
                Assert.Equal(before, modules.Select(m => m.training).ToArray());
            }
            Assert.True(doctor.Vitals.ContainsKey("max_probe_loss_over_best")); // the probe pass ran
            doctor.Detach();
        }
    }

    [Fact]
    public void Batched_reads_give_the_same_batchnorm_statistics_and_update_ratios_as_the_direct_measurements()
    {
        TorchEnvironment.Reseed(5);
        var model = BnDropoutNet();
        var opt = optim.SGD(model.parameters(), 0.05);
        var (px, py) = Batch(100);
        using var doctor = TrainingDoctor.Attach(model, opt, DoctorOptions.EveryStep with { ProbeInputs = px, ProbeTargets = py });
        var lossFn = doctor.Loss(Ce);
        var weights = model.named_parameters().Where(p => p.parameter.dim() >= 2).Select(p => p.parameter).ToList();
        var before = new List<Tensor>();
        for (int s = 0; s < 2; s++)
        {
            var (x, y) = Batch(s);
            model.train(); opt.zero_grad();
            lossFn(model.call(x), y).backward();
            doctor.Observe(s);
            if (s == 0)
            {
                // the doctor's BatchNorm reading (one eval-mode pass whose second copy its hooks normalise with batch
                // statistics; float32) against BatchNormProbe (a real training-mode pass, float64) on the same state and images
                var check = new BatchNormDriftCheck();
                check.Observe(0, BatchNormProbe.Measure(model, px, 0));
                Assert.Equal(1.0, doctor.Vitals["max_bn_var_ratio"] / check.LastVarRatio, 6);
                Assert.Equal(1.0, doctor.Vitals["max_bn_mean_shift"] / check.LastMeanShift, 6);
                // and its train/eval gap against the two losses computed directly: eval mode, and BN in training mode
                // (dropout off) with the running statistics restored afterwards
                double evalLoss, trainLoss;
                using (no_grad())
                {
                    model.eval();
                    evalLoss = Ce(model.call(px), py).item<float>();
                    using (BatchNormBuffers.Preserve(model))
                    {
                        ((BatchNorm1d)model[1]).train();
                        trainLoss = Ce(model.call(px), py).item<float>();
                    }
                    model.train();
                }
                Assert.NotEqual(evalLoss, trainLoss);
                Assert.Equal(evalLoss / trainLoss - 1, doctor.Vitals["max_relative_train_eval_gap"], 5);
                before = weights.Select(w => w.detach().clone()).ToList();
            }
            else
            {
                // ‖ΔW‖/‖W‖ of step 0 (measured at step 1), median over the weight matrices (two here: the mean of both)
                var ratios = weights.Select((w, i) => linalg.vector_norm(w.detach() - before[i]).item<float>() / (double)linalg.vector_norm(before[i]).item<float>()).ToList();
                Assert.True(ratios.Min() > 0);
                Assert.Equal(ratios.Average(), doctor.Vitals["max_update_ratio"], 12);
            }
            opt.step();
        }
    }

    [Fact]
    public void Update_ratio_of_a_large_weight_is_estimated_from_an_evenly_spread_sample()
    {
        TorchEnvironment.Reseed(11);
        var model = Sequential(("big", Linear(400, 400)), ("relu", ReLU()), ("head", Linear(400, 3)));
        var opt = optim.Adam(model.parameters(), 1e-3);
        using var doctor = TrainingDoctor.Attach(model, opt, DoctorOptions.EveryStep);
        var lossFn = doctor.Loss(Ce);
        var weights = new[] { ((Linear)model[0]).weight!, ((Linear)model[2]).weight! };
        Assert.True(weights[0].numel() > 1 << 16); // sampled
        var before = new List<Tensor>();
        var exact = new List<double>();
        for (int s = 0; s < 2; s++)
        {
            var x = randn(32, 400); var y = randint(0, 3, 32, dtype: int64);
            opt.zero_grad();
            lossFn(model.call(x), y).backward();
            doctor.Observe(s);
            if (s == 0) before = weights.Select(w => w.detach().clone()).ToList();
            else exact = weights.Select((w, i) => linalg.vector_norm(w.detach() - before[i]).item<float>() / (double)linalg.vector_norm(before[i]).item<float>()).ToList();
            opt.step();
        }
        // median of two = their mean; the small weight is exact, the large one sampled (16,384+ entries of 160,000)
        double estimate = doctor.Vitals["max_update_ratio"];
        Assert.InRange(estimate / exact.Average(), 0.97, 1.03);
        Assert.NotEqual(exact.Average(), estimate, 9); // it is an estimate, not the whole-weight figure
    }

    [Fact]
    public void Evaluating_in_training_mode_is_found_when_it_recurs_and_not_for_eval_mode_or_one_recalibration()
    {
        var check = new EvaluationInTrainingMode();
        check.Observe(10, "1 BatchNorm");
        check.Observe(10, "1 BatchNorm"); // several batches of one evaluation are one occasion
        Assert.False(check.Fired);
        check.Observe(20, "1 BatchNorm");
        Assert.Equal(20, check.Finding!.FirstStep);

        foreach (bool callEval in new[] { false, true })
        {
            TorchEnvironment.Reseed(3);
            var model = BnDropoutNet();
            var opt = optim.SGD(model.parameters(), 0.05);
            using var doctor = TrainingDoctor.Attach(model, opt);
            var lossFn = doctor.Loss(Ce);
            var (px, _) = Batch(99);
            for (int s = 0; s < 40; s++)
            {
                using var scope = NewDisposeScope();
                var (x, y) = Batch(s);
                model.train(); opt.zero_grad();
                lossFn(model.call(x), y).backward();
                doctor.Observe(s);
                opt.step();
                if (s == 5) doctor.RecalibrateBatchNorm(new[] { px }); // on purpose: not an evaluation
                if (s % 10 == 9)
                    using (no_grad())
                    {
                        if (callEval) model.eval();
                        model.call(px);
                    }
            }
            var names = doctor.Report().Findings.Select(f => f.Check).ToList();
            if (callEval) Assert.DoesNotContain("evaluation-in-training-mode", names);
            else Assert.Contains("evaluation-in-training-mode", names);
        }
    }

    [Fact]
    public void Gradients_not_zeroed_rule_needs_the_previous_gradient_left_over_after_an_update()
    {
        var c = new GradientsNotZeroed(patience: 2);
        c.Observe(1, "fc.bias", 2.0, 1.5, 1e-7, 0.01);  // leftover = previous gradient, bias moved
        c.Observe(2, "fc.bias", 2.0, 1e-8, 1e-8, 0.01); // zeroed (leftover is rounding): the run restarts
        c.Observe(3, "fc.bias", 2.0, 1.5, 0.4, 0.01);   // leftover differs from the previous gradient: other accumulation
        c.Observe(4, "fc.bias", 2.0, 1.5, 1e-7, 0);     // no update in between: micro-batch accumulation
        Assert.False(c.Fired);
        c.Observe(5, "fc.bias", 2.0, 1.5, 1e-7, 0.01);
        c.Observe(6, "fc.bias", 3.0, 2.5, 1e-7, 0.01);
        Assert.Equal(6, c.Finding!.FirstStep);
        Assert.Contains("fc.bias", c.Finding.Summary);
        Assert.Equal(2.5 / 3.0, c.Finding.Evidence["leftover_fraction"], 9);
    }

    /// <summary>
    /// SGD on the MLP for 120 backward passes with gradients handled as <paramref name="pattern"/>; the findings' names.
    /// "forgotten": never zeroed; "before-forward" / "before-backward": zeroed at those points (the latter with
    /// zeros kept, set_to_none false); "micro-batches": 4 backward passes per update, observed each pass;
    /// "micro-batches, observed per update": the same, observed once per update.
    /// </summary>
    static List<string> ZeroGradPattern(string pattern, DoctorOptions options, bool inplaceRelu = false)
    {
        TorchEnvironment.Reseed(5);
        var model = inplaceRelu
            ? Sequential(("fc1", Linear(20, 32)), ("relu1", ReLU()), ("fc2", Linear(32, 3)), ("relu2", ReLU(inplace: true)))
            : Models.Mlp.Create(new[] { 20, 32, 3 });
        var opt = optim.SGD(model.parameters(), 0.01);
        using var doctor = TrainingDoctor.Attach(model, opt, options);
        var lossFn = doctor.Loss(Ce);
        bool micro = pattern.StartsWith("micro-batches", StringComparison.Ordinal), perUpdate = pattern.EndsWith("per update", StringComparison.Ordinal);
        long step = 0;
        for (int s = 0; s < 120; s++)
        {
            using var scope = NewDisposeScope();
            var (x, y) = Batch(s);
            if (pattern == "before-forward" || (micro && s % 4 == 0)) opt.zero_grad();
            var loss = lossFn(model.call(x), y);
            if (pattern == "before-backward") foreach (var p in model.parameters()) p.grad?.zero_();
            loss.backward();
            bool update = !micro || s % 4 == 3;
            if (!perUpdate || update) doctor.Observe(step++);
            if (update) opt.step();
        }
        return doctor.Report().Findings.Select(f => f.Check).ToList();
    }

    [Fact]
    public void Zero_grad_watch_takes_the_last_trainable_bias_and_tells_a_leftover_gradient_from_its_own()
    {
        TorchEnvironment.Reseed(4);
        Assert.Null(ZeroGradWatch.Find(Sequential(("fc", Linear(4, 3, hasBias: false)), ("relu", ReLU())), every: 1));
        var frozen = Sequential(("fc", Linear(4, 3)));
        ((Linear)frozen[0]).bias!.requires_grad = false;
        Assert.Null(ZeroGradWatch.Find(frozen, every: 1));
        var model = Sequential(("fc1", Linear(4, 3)), ("relu", ReLU()), ("fc2", Linear(3, 2)), ("out", Linear(2, 2, hasBias: false)));
        var watch = ZeroGradWatch.Find(model, every: 1)!;
        Assert.Equal("fc2.bias", watch.Parameter);

        var remove = watch.Hook(() => true);
        var x = randn(5, 4);
        Tensor plain;
        using (no_grad()) plain = model.call(x);
        for (long step = 0; step < 2; step++)   // the same batch twice, gradients never zeroed, no update in between
        {
            watch.Arm(step);
            var o = model.call(x);
            Assert.Equal(plain.data<float>().ToArray(), o.detach().data<float>().ToArray()); // the zero leaf changes no value
            o.sum().backward();
            if (step == 1)
            {
                var v = watch.Vectors(step)!.data<double>().ToArray();
                var n = watch.Norms(v);
                // .grad holds two equal gradients and this pass's own is one of them (the leaf's gradient is reduced by
                // another kernel than the bias's own: equal to float rounding, as the check's tolerance allows)
                Assert.InRange(n.Leftover / n.Accumulated, 0.5 - 1e-6, 0.5 + 1e-6);
                Assert.True(n.LeftoverVsPrevious <= GradientsNotZeroed.Tolerance * n.Leftover, $"{n}");
                Assert.Equal(0, n.Update);                         // no optimiser step between the passes
            }
            watch.Keep(step);
        }
        remove();
        watch.Dispose();
    }

    [Fact]
    public void Zero_grad_watch_norms_are_those_of_the_gradient_parts_and_the_bias_update()
    {
        var model = Sequential(("fc", Linear(2, 2)));
        var watch = ZeroGradWatch.Find(model, every: 1)!;
        // [.grad | own | .grad at the previous step | bias then | bias now], two channels
        var n = watch.Norms(new double[] { 3, 4, 1, 1, 2, 3, 0, 0, 0.3, 0.4 });
        Assert.Equal(5, n.Accumulated, 12);               // ‖(3, 4)‖
        Assert.Equal(Math.Sqrt(4 + 9), n.Leftover, 12);   // ‖(3, 4) − (1, 1)‖
        Assert.Equal(0, n.LeftoverVsPrevious, 12);        // (2, 3) − (2, 3)
        Assert.Equal(0.5, n.Update, 12);                  // ‖(0.3, 0.4)‖
    }

    [Fact]
    public void Dead_unit_count_sums_armed_training_passes_only()
    {
        TorchEnvironment.Reseed(6);
        var model = Sequential(("fc", Linear(4, 6)), ("relu", ReLU()));
        using (no_grad()) ((Linear)model[0]).bias!.narrow(0, 0, 4).fill_(-100); // 4 of 6 units never fire
        var count = new DeadUnitCount(model);
        Assert.True(count.HasRelu);
        bool watching = true;
        var removers = count.Hook(() => watching).ToList();
        var x = rand(8, 4);
        count.Arm(measured: false);
        model.call(x);
        Assert.Null(count.DeadUnits());                    // not a measured step
        count.Arm(measured: true);
        watching = false;
        model.call(x);
        Assert.Null(count.DeadUnits());                    // not the training's own pass
        watching = true;
        model.call(x);
        Assert.Equal(6, count.Units);
        Assert.Equal(4, count.DeadUnits()!.item<long>());
        count.Clear();
        Assert.Equal(0, count.Units);
        foreach (var r in removers) r();
        Assert.False(new DeadUnitCount(Sequential(("fc", Linear(4, 2)))).HasRelu);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Forgotten_zero_grad_is_found_and_correct_or_deliberate_accumulation_is_not(bool everyStep)
    {
        var options = everyStep ? DoctorOptions.EveryStep : new DoctorOptions { Every = 10 };
        Assert.Contains("gradients-not-zeroed", ZeroGradPattern("forgotten", options));
        Assert.Contains("gradients-not-zeroed", ZeroGradPattern("forgotten", options, inplaceRelu: true)); // in-place op after the watched layer
        foreach (var ok in new[] { "before-forward", "before-backward", "micro-batches", "micro-batches, observed per update" })
            Assert.DoesNotContain("gradients-not-zeroed", ZeroGradPattern(ok, options));
    }

    [Fact]
    public void Gradient_growth_must_last_ten_steps_at_short_cadences_and_two_measurements_at_the_default()
    {
        var (m, opt) = Mlp(1);
        ExplodingGradients Exploding(DoctorOptions o) => TrainingDoctor.Attach(m, opt, o).Checks.OfType<ExplodingGradients>().Single();
        Assert.Equal(2, Exploding(new DoctorOptions()).Patience);         // two measurements 50 steps apart
        Assert.Equal(10, Exploding(DoctorOptions.EveryStep).Patience);    // one noisy batch is not an explosion
        Assert.Equal(5, Exploding(new DoctorOptions { Every = 2 }).Patience);
    }

    [Fact]
    public void Detach_removes_hooks_and_the_loop_handler()
    {
        TorchEnvironment.Reseed(3);
        var model = BnDropoutNet();
        var opt = optim.Adam(model.parameters(), 1e-2);
        var loop = new TrainingLoop(model, opt, Ce);
        var doctor = TrainingDoctor.Attach(model, opt, DoctorOptions.EveryStep).AttachTo(loop);
        Assert.Throws<InvalidOperationException>(() => doctor.AttachTo(loop));
        for (int s = 0; s < 3; s++) { using var scope = NewDisposeScope(); var (x, y) = Batch(s); loop.Step(x, y); }
        Assert.Equal(3, doctor.Observations);
        doctor.Detach();
        for (int s = 3; s < 6; s++) { using var scope = NewDisposeScope(); var (x, y) = Batch(s); loop.Step(x, y); }
        Assert.Equal(3, doctor.Observations);
        Assert.True(doctor.Detached);
        Assert.Throws<InvalidOperationException>(() => doctor.Observe(10, randn(2, 3), tensor(new long[] { 0, 1 }), tensor(1.0f)));
        // a new doctor on the same model starts clean
        using var again = TrainingDoctor.Attach(model, opt, DoctorOptions.EveryStep).AttachTo(loop);
        { using var scope = NewDisposeScope(); var (x, y) = Batch(9); loop.Step(x, y); }
        Assert.Equal(1, again.Observations);
    }

    [Fact]
    public void Bad_arguments_are_refused_with_the_cause()
    {
        var (m, opt) = Mlp(1);
        Assert.Throws<ArgumentOutOfRangeException>(() => TrainingDoctor.Attach(m, opt, new DoctorOptions { Every = 0 }));
        Assert.Throws<ArgumentException>(() => TrainingDoctor.Attach(m, opt, new DoctorOptions { ProbeInputs = randn(4, 20) }));
        using var d = TrainingDoctor.Attach(m, opt);
        Assert.Throws<InvalidOperationException>(() => d.Observe(0));
        d.Observe(3, randn(2, 3), tensor(new long[] { 0, 1 }), tensor(1.0f));
        var e = Assert.Throws<ArgumentException>(() => d.Observe(3, randn(2, 3), tensor(new long[] { 0, 1 }), tensor(1.0f)));
        Assert.Contains("increase", e.Message);
    }

    // ------------------------------------------------------------------ report formats

    [Fact]
    public void Report_reads_as_table_text_json_and_timeline()
    {
        var (m, opt) = Mlp(1, output: "softmax");
        var report = Train(m, opt, Ce, 30);
        var df = report.ToDataFrame();
        Assert.Equal(new[] { "check", "first_step", "finding", "evidence", "fix", "notebook" }, df.Columns.Select(c => c.Name));
        Assert.Equal(report.Findings.Count, (int)df.Rows.Count);
        string text = report.ToString();
        Assert.Contains("squashing-layer-before-logits-loss", text);
        Assert.Contains("fix:", text);
        using var json = JsonDocument.Parse(report.ToJson());
        Assert.False(json.RootElement.GetProperty("healthy").GetBoolean());
        Assert.Equal(report.Findings.Count, json.RootElement.GetProperty("findings").GetArrayLength());
        Assert.Equal(30, json.RootElement.GetProperty("steps_observed").GetInt64());
        string chart = TrainingForensics.Charts.Plots.ToJson(report.Timeline());
        Assert.Contains("first fired", chart);
        Assert.Contains("squashing-layer-before-logits-loss", chart);
        Assert.Contains("<table>", report.ToHtml());
    }

    [Fact]
    public void Recalibration_is_one_call_away_and_leaves_training_untouched()
    {
        TorchEnvironment.Reseed(5);
        var model = BnDropoutNet();
        var opt = optim.Adam(model.parameters(), 1e-2);
        using var doctor = TrainingDoctor.Attach(model, opt);
        var bn = (BatchNorm1d)model[1];
        Assert.Equal(1f, bn.running_var!.data<float>()[0]);
        var batches = Enumerable.Range(0, 4).Select(i => Batch(i, scale: 3).X).ToList();
        Assert.Equal(4, doctor.RecalibrateBatchNorm(batches));
        Assert.True(bn.running_var!.mean().item<float>() > 2f);   // inputs ×3: variance ≫ 1 after re-estimation
        Assert.Equal(0.1, bn.momentum);
    }
}
