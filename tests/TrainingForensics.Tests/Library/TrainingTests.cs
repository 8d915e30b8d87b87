using TorchSharp;
using TorchSharp.Modules;
using TrainingForensics.Models;
using TrainingForensics.Setup;
using TrainingForensics.Training;
using static TorchSharp.torch;

namespace TrainingForensics.Tests.Library;

public class TrainingTests
{
    /// <summary>Two Gaussian blobs in 4-D: linearly separable, so a healthy loop must learn them.</summary>
    static (Tensor X, Tensor Y) Blobs(int n, int seed)
    {
        var g = new Generator((ulong)seed);
        var y = randint(0, 2, new long[] { n }, generator: g);
        var x = randn(new long[] { n, 4 }, generator: g) * 0.5 + y.unsqueeze(1).to_type(ScalarType.Float32) * 2 - 1;
        return (x, y);
    }

    static IEnumerable<(Tensor, Tensor)> Batches(Tensor x, Tensor y, int size)
    {
        for (long i = 0; i < x.shape[0]; i += size)
        {
            long n = Math.Min(size, x.shape[0] - i);
            yield return (x.narrow(0, i, n), y.narrow(0, i, n));
        }
    }

    static TrainingLoop NewLoop(int seed, out nn.Module<Tensor, Tensor> model)
    {
        TorchEnvironment.Reseed(seed);
        model = Mlp.Create(new[] { 4, 8, 2 });
        var opt = optim.SGD(model.parameters(), 0.1);
        return new TrainingLoop(model, opt, (o, t) => nn.functional.cross_entropy(o, t)) { TrackAccuracy = true };
    }

    [Fact]
    public void Loop_learns_separable_data_and_records_history()
    {
        var (x, y) = Blobs(256, 1);
        var loop = NewLoop(1, out var model);
        var history = loop.Run(_ => Batches(x, y, 32), epochs: 5,
            evaluate: () => new Dictionary<string, double> { ["eval_accuracy"] = Evaluation.Run(model, Batches(x, y, 64)).Accuracy });
        Assert.Equal(40, history.Steps.Count);
        Assert.Equal(5, history.Epochs.Count);
        Assert.True(history.Losses[^1] < history.Losses[0] / 3, $"loss {history.Losses[0]} → {history.Losses[^1]}");
        Assert.True(history.EpochValues("eval_accuracy")[^1] > 0.95);
        var steps = history.StepsFrame();
        Assert.Equal(new[] { "epoch", "step", "loss", "seconds", "accuracy" }, steps.Columns.Select(c => c.Name));
        Assert.Equal(40, steps.Rows.Count);
        var epochs = history.EpochsFrame();
        Assert.Contains("eval_accuracy", epochs.Columns.Select(c => c.Name));
        Assert.True(model.training); // evaluation restored train mode
        Assert.Throws<KeyNotFoundException>(() => history.EpochValues("nope"));
    }

    [Fact]
    public void Same_seed_gives_identical_losses()
    {
        var (x, y) = Blobs(128, 2);
        var a = NewLoop(5, out _).Run(_ => Batches(x, y, 16), 2).Losses;
        var b = NewLoop(5, out _).Run(_ => Batches(x, y, 16), 2).Losses;
        var c = NewLoop(6, out _).Run(_ => Batches(x, y, 16), 2).Losses;
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void Hooks_see_gradients_before_and_weights_after_the_update()
    {
        var (x, y) = Blobs(64, 3);
        var loop = NewLoop(3, out var model);
        var order = new List<string>();
        double before = 0, after = 0, grad = 0;
        loop.AfterBackward += ctx =>
        {
            order.Add("backward");
            var w = model.parameters().First();
            before = w.sum().item<float>();
            grad = w.grad!.abs().sum().item<float>();
            ctx.Log("grad_l1", grad);
        };
        loop.AfterStep += ctx => { order.Add("step"); after = model.parameters().First().sum().item<float>(); };
        loop.Step(x, y);
        Assert.Equal(new[] { "backward", "step" }, order);
        Assert.True(grad > 0);
        Assert.NotEqual(before, after);
        Assert.Equal(grad, loop.History.Steps[0].Values["grad_l1"], 6);
    }

    [Fact]
    public void Native_memory_stays_flat_over_many_steps()
    {
        var (x, y) = Blobs(64, 4);
        var loop = NewLoop(4, out _);
        loop.Run(_ => Batches(x, y, 16), 2); // warm up lazily created state (optimizer buffers)
        long live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        loop.Run(_ => Batches(x, y, 16), 20);
        Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void Max_steps_stops_early_and_a_non_scalar_loss_is_refused()
    {
        var (x, y) = Blobs(64, 5);
        var loop = NewLoop(5, out var model);
        loop.Run(_ => Batches(x, y, 8), 10, maxSteps: 12);
        Assert.Equal(12, loop.StepCount);
        var bad = new TrainingLoop(model, optim.SGD(model.parameters(), 0.1), (o, t) => nn.functional.cross_entropy(o, t, reduction: nn.Reduction.None));
        Assert.Contains("single number", Assert.Throws<InvalidOperationException>(() => bad.Step(x, y)).Message);
    }

    [Fact]
    public void Any_module_counts_its_parameters_frozen_ones_included()
    {
        using var conv = torch.nn.Conv2d(1, 16, 3);
        Assert.Equal(16 * 9 + 16, ModuleSize.ParameterCount(conv));
        conv.bias!.requires_grad = false;
        Assert.Equal(16 * 9 + 16, conv.ParameterCount());
    }

    [Fact]
    public void Mlp_layers_are_named_and_counted()
    {
        var m = Mlp.Create(new[] { 784, 256, 128, 10 });
        Assert.Equal(784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10, m.ParameterCount());
        Assert.Contains("fc3.weight", m.named_parameters().Select(p => p.name));
        Assert.Throws<ArgumentException>(() => Mlp.Create(new[] { 4 }));
        Assert.Throws<ArgumentException>(() => Mlp.Create(new[] { 4, 2 }, "tanh"));
        using var p = Mlp.Create(new[] { 4, 3 }, "softmax").call(randn(2, 4)).sum(1);
        Assert.Equal(1f, p[0].item<float>(), 5);
    }

    // ---------------------------------------------------------------- the optimiser factory

    static T Options<T>(optim.Optimizer o, int group = 0) where T : class =>
        (T)(object)((TorchSharp.Modules.ParamGroup)o.ParamGroups.ElementAt(group)).Options;

    [Fact]
    public void Each_optimizer_name_builds_that_optimizer_with_its_settings()
    {
        TorchEnvironment.Reseed(1);
        var model = Mlp.Create(new[] { 4, 8, 2 });
        var sgd = Optimizers.Create("sgd", model.parameters(), 0.1);
        Assert.IsAssignableFrom<SGD>(sgd);
        Assert.Equal((0.1, 0.0, 0.0), (Options<SGD.Options>(sgd).LearningRate!.Value, Options<SGD.Options>(sgd).momentum!.Value, Options<SGD.Options>(sgd).weight_decay!.Value));
        var momentum = Optimizers.Create("sgd-momentum", model.parameters(), 0.1, weightDecay: 1e-4);
        Assert.IsAssignableFrom<SGD>(momentum);
        Assert.Equal(Optimizers.DefaultSgdMomentum, Options<SGD.Options>(momentum).momentum);
        Assert.Equal(1e-4, Options<SGD.Options>(momentum).weight_decay);
        Assert.Equal(0.5, Options<SGD.Options>(Optimizers.Create("sgd-momentum", model.parameters(), 0.1, momentum: 0.5)).momentum);
        var adam = Optimizers.Create("Adam", model.parameters(), 1e-3, weightDecay: 2e-3);   // names are case-insensitive
        Assert.IsAssignableFrom<Adam>(adam);
        Assert.Equal((1e-3, 0.9, 0.999, 1e-8, 2e-3), (Options<Adam.Options>(adam).LearningRate!.Value, Options<Adam.Options>(adam).beta1!.Value,
            Options<Adam.Options>(adam).beta2!.Value, Options<Adam.Options>(adam).eps!.Value, Options<Adam.Options>(adam).weight_decay!.Value));
        var adamw = Optimizers.Create("adamw", model.parameters(), 1e-3, weightDecay: 0.01);
        Assert.IsAssignableFrom<AdamW>(adamw);
        Assert.Equal(0.01, Options<AdamW.Options>(adamw).weight_decay);
        var rmsprop = Optimizers.Create("rmsprop", model.parameters(), 1e-3);
        Assert.IsAssignableFrom<RMSProp>(rmsprop);
        Assert.Equal((0.99, 0.0), (Options<RMSProp.Options>(rmsprop).alpha!.Value, Options<RMSProp.Options>(rmsprop).momentum!.Value));
        // groups keep their own weight decay; an empty group is left out
        var weights = model.named_parameters().Where(p => p.name.EndsWith("weight")).Select(p => p.parameter).ToList();
        var biases = model.named_parameters().Where(p => p.name.EndsWith("bias")).Select(p => p.parameter).ToList();
        var grouped = Optimizers.Create("sgd-momentum", new (IEnumerable<Parameter>, double)[] { (weights, 1e-3), (biases, 0), (new List<Parameter>(), 5) }, 0.1);
        Assert.Equal(2, grouped.ParamGroups.Count());
        Assert.Equal(1e-3, Options<SGD.Options>(grouped, 0).weight_decay);
        Assert.Equal(0.0, Options<SGD.Options>(grouped, 1).weight_decay);
    }

    /// <summary>
    /// Optimizers.Create's optimisers rewrite TorchSharp's step to hold its Scalars (HeldScalarOptimizers.cs): the
    /// parameters after each step must be TorchSharp's, bit for bit, for every name and the options the rewrite
    /// branches on (weight decay, Nesterov, AMSGrad, maximize, centred RMSprop, RMSprop momentum).
    /// </summary>
    [Fact]
    public void Each_optimizer_steps_exactly_as_torchsharps_own()
    {
        var cases = new (string What, Func<IEnumerable<Parameter>, optim.Optimizer> Ours, Func<IEnumerable<Parameter>, optim.Optimizer> Theirs)[]
        {
            ("sgd", p => Optimizers.Create("sgd", p, 0.05), p => optim.SGD(p, 0.05)),
            ("sgd-momentum + L2", p => Optimizers.Create("sgd-momentum", p, 0.05, weightDecay: 1e-3), p => optim.SGD(p, 0.05, momentum: 0.9, weight_decay: 1e-3)),
            ("sgd nesterov, maximize", p => new HeldScalarSGD(new[] { new SGD.ParamGroup(p, 0.05, momentum: 0.8, nesterov: true, maximize: true) }, 0.05),
                p => optim.SGD(p, 0.05, momentum: 0.8, nesterov: true, maximize: true)),
            ("sgd dampening", p => new HeldScalarSGD(new[] { new SGD.ParamGroup(p, 0.05, momentum: 0.8, dampening: 0.1) }, 0.05),
                p => optim.SGD(p, 0.05, momentum: 0.8, dampening: 0.1)),
            ("adam + L2", p => Optimizers.Create("adam", p, 1e-2, weightDecay: 1e-2), p => optim.Adam(p, 1e-2, weight_decay: 1e-2)),
            ("adam amsgrad, maximize", p => new HeldScalarAdam(new[] { new Adam.ParamGroup(p, 1e-2, amsgrad: true, maximize: true) }, 1e-2),
                p => optim.Adam(p, 1e-2, amsgrad: true, maximize: true)),
            ("adamw", p => Optimizers.Create("adamw", p, 1e-2, weightDecay: 0.05), p => optim.AdamW(p, 1e-2, weight_decay: 0.05)),
            ("adamw amsgrad", p => new HeldScalarAdamW(new[] { new AdamW.ParamGroup(p, 1e-2, weight_decay: 0.05, amsgrad: true) }, 1e-2),
                p => optim.AdamW(p, 1e-2, weight_decay: 0.05, amsgrad: true)),
            ("rmsprop momentum + L2", p => Optimizers.Create("rmsprop", p, 1e-3, weightDecay: 1e-3, momentum: 0.5),
                p => optim.RMSProp(p, 1e-3, weight_decay: 1e-3, momentum: 0.5)),
            ("rmsprop centred", p => new HeldScalarRMSProp(new[] { new RMSProp.ParamGroup(p, 1e-3, centered: true) }, 1e-3),
                p => optim.RMSProp(p, 1e-3, centered: true)),
        };
        var (x, y) = Blobs(64, 3);
        foreach (var (what, ours, theirs) in cases)
        {
            var models = new[] { 0, 1 }.Select(_ => { TorchEnvironment.Reseed(11); return Mlp.Create(new[] { 4, 8, 2 }); }).ToArray();
            var optimizers = new[] { ours(models[0].parameters()), theirs(models[1].parameters()) };
            var before = models[0].parameters().First().detach().clone();
            for (int step = 0; step < 8; step++)
                for (int i = 0; i < 2; i++)
                {
                    using var scope = NewDisposeScope();
                    optimizers[i].zero_grad();
                    nn.functional.cross_entropy(models[i].call(x.narrow(0, 8 * step, 8)), y.narrow(0, 8 * step, 8)).backward();
                    optimizers[i].step();
                }
            foreach (var (a, b) in models[0].parameters().Zip(models[1].parameters()))
                Assert.True(a.eq(b).all().item<bool>(), $"{what}: a parameter differs from TorchSharp's own optimiser after 8 steps");
            Assert.True(models[0].parameters().First().ne(before).any().item<bool>(), $"{what}: the steps changed nothing");
        }
    }

    /// <summary>
    /// Adam and AdamW from Optimizers.Create step CPU float32 weights in one pass over their memory (FusedAdam). The
    /// weights must be TorchSharp's own optimiser's, bit for bit, where that pass is hardest to get right: gradients
    /// holding exact zeros (blank input features, as MNIST's border pixels), a weight matrix larger than one block,
    /// sizes that are not multiples of 8, and every option the pass branches on. A float64 model (the operations'
    /// path) must match too.
    /// </summary>
    [Fact]
    public void Fused_adam_steps_exactly_as_torchsharps_own_with_zero_gradients_and_odd_sizes()
    {
        if (System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported)
            Assert.True(FusedAdam.Enabled, $"on an AVX2/FMA CPU the fused Adam step should pass its self-check: {FusedAdam.Setting}");
        var cases = new (string What, Func<IEnumerable<Parameter>, optim.Optimizer> Ours, Func<IEnumerable<Parameter>, optim.Optimizer> Theirs)[]
        {
            ("adam", p => Optimizers.Create("adam", p, 1e-2), p => optim.Adam(p, 1e-2)),
            ("adam + L2", p => Optimizers.Create("adam", p, 1e-2, weightDecay: 1e-2), p => optim.Adam(p, 1e-2, weight_decay: 1e-2)),
            ("adam, maximize", p => new HeldScalarAdam(new[] { new Adam.ParamGroup(p, 1e-3, maximize: true) }, 1e-3), p => optim.Adam(p, 1e-3, maximize: true)),
            ("adam, β and ε", p => new HeldScalarAdam(new[] { new Adam.ParamGroup(p, 3e-3, beta1: 0.8, beta2: 0.99, eps: 1e-6) }, 3e-3),
                p => optim.Adam(p, 3e-3, beta1: 0.8, beta2: 0.99, eps: 1e-6)),
            ("adamw", p => Optimizers.Create("adamw", p, 1e-2, weightDecay: 5e-2), p => optim.AdamW(p, 1e-2, weight_decay: 5e-2)),
        };
        var g = new Generator(5);
        var x = randn(new long[] { 160, 300 }, generator: g);
        x.narrow(1, 0, 41).zero_(); x.narrow(1, 250, 50).zero_();   // features that are never on: their weights' gradients are exact zeros
        var y = randint(0, 3, new long[] { 160 }, generator: g);
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.Float64 })
            foreach (var (what, ours, theirs) in cases)
            {
                var models = new[] { 0, 1 }.Select(_ => { TorchEnvironment.Reseed(13); return Mlp.Create(new[] { 300, 21, 3 }).to(dtype); }).ToArray();
                var optimizers = new[] { ours(models[0].parameters()), theirs(models[1].parameters()) };
                long fusedBefore = FusedAdam.ParameterSteps;
                var inputs = x.to(dtype);
                for (int step = 0; step < 40; step++)
                    for (int i = 0; i < 2; i++)
                    {
                        using var scope = NewDisposeScope();
                        optimizers[i].zero_grad();
                        long at = 16 * (step % 10);
                        nn.functional.cross_entropy(models[i].call(inputs.narrow(0, at, 16)), y.narrow(0, at, 16)).backward();
                        optimizers[i].step();
                    }
                if (dtype == ScalarType.Float32 && FusedAdam.Enabled)
                    Assert.True(FusedAdam.ParameterSteps - fusedBefore >= 40 * 4, $"{what}: the fused path did not step the float32 weights");
                foreach (var (a, b) in models[0].parameters().Zip(models[1].parameters()))
                    Assert.True(a.to(ScalarType.Float64).data<double>().ToArray().Select(BitConverter.DoubleToInt64Bits)
                        .SequenceEqual(b.to(ScalarType.Float64).data<double>().ToArray().Select(BitConverter.DoubleToInt64Bits)),
                        $"{what} ({dtype}): a parameter differs from TorchSharp's own optimiser after 40 steps");
            }
    }

    [Fact]
    public void An_unknown_optimizer_is_refused_with_the_valid_names_and_bad_settings_too()
    {
        TorchEnvironment.Reseed(1);
        var p = Mlp.Create(new[] { 4, 2 }).parameters();
        var e = Assert.Throws<ArgumentException>(() => Optimizers.Create("lbfgs", p, 0.1));
        Assert.Contains("'lbfgs'", e.Message);
        Assert.All(Optimizers.Names, n => Assert.Contains(n, e.Message));
        Assert.Equal(new[] { "sgd", "sgd-momentum", "adam", "adamw", "rmsprop" }, Optimizers.Names);
        Assert.Contains("beta1", Assert.Throws<ArgumentException>(() => Optimizers.Create("adam", p, 1e-3, momentum: 0.9)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => Optimizers.Create("sgd", p, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => Optimizers.Create("sgd", p, 0.1, weightDecay: -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Optimizers.Create("sgd-momentum", p, 0.1, momentum: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => Optimizers.Create("rmsprop", p, 0.1, momentum: 1));
        Assert.Equal("adamw", Optimizers.Validate(" AdamW "));
    }

    [Theory]
    [InlineData("sgd")]
    [InlineData("sgd-momentum")]
    [InlineData("adam")]
    [InlineData("adamw")]
    [InlineData("rmsprop")]
    public void A_factory_optimizer_steps_bit_for_bit_as_torchsharps_own(string name)
    {
        const double lr = 0.01, decay = 1e-3;
        optim.Optimizer Direct(IEnumerable<Parameter> p) => name switch
        {
            "sgd" => optim.SGD(p, lr, weight_decay: decay),
            "sgd-momentum" => optim.SGD(p, lr, momentum: 0.9, weight_decay: decay),
            "adam" => optim.Adam(p, lr, weight_decay: decay),
            "adamw" => optim.AdamW(p, lr, weight_decay: decay),
            _ => optim.RMSProp(p, lr, weight_decay: decay),
        };
        var (x, y) = Blobs(64, 3);
        float[] Train(Func<IEnumerable<Parameter>, optim.Optimizer> make)
        {
            TorchEnvironment.Reseed(4);
            var model = Mlp.Create(new[] { 4, 8, 2 });
            var loop = new TrainingLoop(model, make(model.parameters()), (o, t) => nn.functional.cross_entropy(o, t));
            foreach (var (bx, by) in Batches(x, y, 16)) loop.Step(bx, by);
            return model.parameters().SelectMany(p => p.detach().data<float>().ToArray()).ToArray();
        }
        Assert.Equal(Train(Direct), Train(p => Optimizers.Create(name, p, lr, weightDecay: decay)));
    }

    [Fact]
    public void AdamW_decays_the_weights_decoupled_while_Adam_adds_the_decay_to_the_gradient()
    {
        // a loss that does not depend on the weight: the only force on it is the decay
        Tensor Step(string name)
        {
            var w = new Parameter(full(new long[] { 3 }, 2.0f));
            var opt = Optimizers.Create(name, new[] { w }, 0.1, weightDecay: 0.5);
            (w * 0).sum().backward();
            opt.step();
            return w.detach();
        }
        // AdamW: w·(1 − lr·λ) and no Adam step (zero gradient); Adam: the decay is the gradient, normalised to a step of ~lr
        Assert.Equal(2.0 * (1 - 0.1 * 0.5), Step("adamw")[0].item<float>(), 5);
        Assert.Equal(2.0 - 0.1, Step("adam")[0].item<float>(), 4);
    }
}

public class ConcurrentRunsTests
{
    static TrainingForensics.Data.ImageSet Data()
    {
        torch.manual_seed(5);
        return new TrainingForensics.Data.ImageSet("random", torch.rand(256, 1, 4, 4), torch.randint(0, 3, 256));
    }

    static (TrainingLoop Loop, torch.Generator Shuffle) Build(int seed)
    {
        TrainingForensics.Setup.TorchEnvironment.Reseed(seed);
        var model = Mlp.Create(new[] { 16, 32, 3 });
        return (new TrainingLoop(model, torch.optim.SGD(model.parameters(), 0.1), Losses.CrossEntropy, $"seed {seed}"), new torch.Generator((ulong)seed));
    }

    [Fact]
    public void Runs_trained_side_by_side_equal_the_same_runs_trained_one_after_another_bit_for_bit()
    {
        using var data = Data();
        double[] Train((TrainingLoop Loop, torch.Generator Shuffle) r)
        {
            r.Loop.Run(_ => data.Batches(16, generator: r.Shuffle, flatten: true), 3);
            return r.Loop.History.Losses.ToArray();
        }
        var seeds = new[] { 1, 2, 3, 4, 5 };
        var alone = ConcurrentRuns.Map(seeds, Build, Train, workers: 1);
        var started = new System.Collections.Concurrent.ConcurrentBag<int>();
        var together = ConcurrentRuns.Map(seeds, Build, Train, workers: 3, started: started.Add);
        Assert.Equal(seeds.Length, together.Count);
        for (int i = 0; i < seeds.Length; i++) Assert.Equal(alone[i], together[i]);
        Assert.NotEqual(alone[0], alone[1]); // the seeds differ: equality above is not vacuous
        Assert.Equal(new[] { 0, 1, 2, 3, 4 }, started.OrderBy(i => i));
    }

    [Fact]
    public void A_failing_run_is_rethrown_and_later_runs_do_not_start()
    {
        int ran = 0;
        var e = Assert.Throws<InvalidOperationException>(() => ConcurrentRuns.Map(Enumerable.Range(0, 50).ToList(), i => i,
            i => { Interlocked.Increment(ref ran); if (i == 0) throw new InvalidOperationException("run 0 broke"); Thread.Sleep(20); return i; }, workers: 2));
        Assert.Equal("run 0 broke", e.Message);
        Assert.True(ran < 50, $"{ran} runs started after the failure");
        Assert.Throws<ArgumentOutOfRangeException>(() => ConcurrentRuns.Map(new[] { 1 }, i => i, i => i, workers: 0));
    }
}
