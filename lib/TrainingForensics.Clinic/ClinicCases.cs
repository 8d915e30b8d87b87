using TorchSharp;
using TorchSharp.Modules;
using TrainingForensics.CaseStudies.BatchNormTrainVsEval;
using TrainingForensics.CaseStudies.LossPlateau;
using TrainingForensics.Data;
using TrainingForensics.Metrics;
using TrainingForensics.Models;
using TrainingForensics.Training;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

using TrainingForensics.Diagnostics;
using TrainingForensics.Diagnostics.Doctor;
using TrainingForensics.Native;

namespace TrainingForensics.Clinic;

/// <summary>
/// The clinic's suite: the buggy variants of the three case studies, healthy baselines (their fixes and other
/// architectures, optimisers and data, two of them deliberately slow), and bugs the doctor was not built around.
/// Every case is small (a few hundred steps on small data) and seeded.
/// </summary>
public static class ClinicCases
{
    static readonly object Gate = new();
    static MnistData? _mnist;
    static readonly Dictionary<(int Length, int Seed, bool Eval), EcgSet> Ecg = new();

    /// <summary>MNIST, loaded once per process (data/mnist).</summary>
    static ImageSet? _mnistTrain, _mnistTest;

    static void LoadMnist()
    {
        lock (Gate)
        {
            if (_mnist != null) return;
            // loaded outside any step's dispose scope: the tensors live for the process
            using (NewDisposeScope())
            {
                var data = Mnist.Load(DataPaths.Find("mnist"));
                var train = data.Train.Take(MnistTrain);
                var test = data.Test.Take(512);
                foreach (var t in new[] { data.Train.Images, data.Train.Labels, data.Test.Images, data.Test.Labels, train.Images, train.Labels, test.Images, test.Labels })
                    t.DetachFromDisposeScope();
                (_mnist, _mnistTrain, _mnistTest) = (data, train, test);
            }
        }
    }

    static ImageSet MnistTrainSet() { LoadMnist(); return _mnistTrain!; }
    static ImageSet MnistTestSet() { LoadMnist(); return _mnistTest!; }

    static EcgSet EcgData(int length, bool eval)
    {
        lock (Gate)
        {
            var key = (length, 7, eval);
            if (!Ecg.TryGetValue(key, out var set))
            {
                using (NewDisposeScope())
                {
                    set = EcgGenerator.Generate(new EcgOptions { Length = length, Records = eval ? 100 : 256, AfCount = eval ? 52 : null, Seed = eval ? 8 : 7 });
                    set.Signals.DetachFromDisposeScope(); set.Labels.DetachFromDisposeScope();
                }
                Ecg[key] = set;
            }
            return set;
        }
    }

    /// <summary>Epoch after epoch of batches (the order drawn from a generator seeded with <paramref name="seed"/>), each moved to <paramref name="device"/>.</summary>
    static IEnumerable<(Tensor X, Tensor Y)> Endless(Func<Generator, IEnumerable<(Tensor X, Tensor Y)>> epoch, int seed, Device device)
    {
        var g = new Generator((ulong)seed);
        while (true)
            foreach (var (x, y) in epoch(g)) yield return (x.On(device), y.On(device));
    }

    const int MnistTrain = 8192;
    static IEnumerable<(Tensor X, Tensor Y)> MnistBatches(int seed, int batch, bool flatten, Device device) =>
        Endless(g => MnistTrainSet().Batches(batch, shuffle: true, generator: g, flatten: flatten, dropLast: true), seed, device);

    static Sequential SmallCnn(double bnMomentum = 0.1, bool dropout = false)
    {
        var layers = new List<(string, Module<Tensor, Tensor>)>
        {
            ("conv1", Conv2d(1, 16, 3, stride: 2, padding: 1)), ("bn1", BatchNorm2d(16, momentum: bnMomentum)), ("relu1", ReLU()),
            ("conv2", Conv2d(16, 32, 3, stride: 2, padding: 1)), ("bn2", BatchNorm2d(32, momentum: bnMomentum)), ("relu2", ReLU()),
            ("pool", AdaptiveAvgPool2d(new long[] { 1, 1 })), ("flat", Flatten()),
        };
        if (dropout) layers.Add(("drop", Dropout(0.2)));
        layers.Add(("fc", Linear(32, 10)));
        return Sequential(layers);
    }

    static Func<Tensor, Tensor, Tensor> CrossEntropy => (o, y) => functional.cross_entropy(o, y);

    // ---------------------------------------------------------------- case study 1: ECG, squashed outputs into a logits loss
    static ClinicCase Ecg1(string name, string model, string activation, string loss, string description, bool quick, ClinicHookup hookup = ClinicHookup.Wrap) =>
        new(name, ClinicGroup.DesignedBug, "01-loss-plateau", description, 200,
            new[] { "squashing-layer-before-logits-loss", "probabilities-into-logits-loss", "saturated-outputs", "frozen-loss", "loss-at-analytic-floor", "vanishing-gradients" },
            (seed, device) => EcgAdam(seed, device, new EcgRunConfig { Model = model, Activation = activation, Loss = loss, Seed = seed }, loss, 1e-3, standardize: false, hookup), quick);

    /// <summary>An ECG model of case study 1 under Adam, on the 6,000-sample records (raw or standardised per batch).</summary>
    static ClinicSetup EcgAdam(int seed, Device device, EcgRunConfig config, string loss, double lr, bool standardize, ClinicHookup hookup = ClinicHookup.Wrap)
    {
        var train = EcgData(6000, eval: false);
        var model = EcgExperiment.CreateModel(config, (int)train.Length).On(device);
        return new ClinicSetup
        {
            Model = model, Optimizer = Optimizers.Create("adam", model.parameters(), lr), Loss = EcgExperiment.CreateLoss(loss),
            Batches = Endless(g => train.Batches(32, true, g, standardize: standardize, dropLast: true), seed, device),
            Hookup = hookup,
        };
    }

    // ---------------------------------------------------------------- case study 2: MNIST MLP, loss scale and metrics
    static ClinicSetup MnistMlp(int seed, Device device, Func<Tensor, Tensor, Tensor> loss, string optimizer, double lr, string init = "torch", double dropout = 0)
    {
        var model = Initialization.Apply(Mlp.Create(new[] { 784, 256, 128, 10 }), init);
        Sequential m = model;
        if (dropout > 0) m = Sequential(("mlp", (Module<Tensor, Tensor>)model), ("drop", Dropout(dropout)));
        m = m.On(device);
        // "sgdm" is the suite's short name for SGD with momentum 0.9 (the factory's "sgd-momentum")
        var opt = Optimizers.Create(optimizer == "sgdm" ? "sgd-momentum" : optimizer, m.parameters(), lr);
        return new ClinicSetup { Model = m, Optimizer = opt, Loss = loss, Batches = MnistBatches(seed, 64, flatten: true, device) };
    }

    /// <summary>Auto-selected accuracy as a framework's plain "accuracy" computes it.</summary>
    static double AutoAccuracy(Tensor yTrue, Tensor yPred)
    {
        var m = AccuracyVariants.Auto(yTrue, yPred);
        m.Update(yTrue, yPred);
        return m.Result;
    }

    static void EvaluateMnist(ClinicEvaluation e, bool argmaxToAuto, Func<Tensor, Tensor, Tensor>? validation, bool bnTrainMode, bool flatten = true)
    {
        var test = MnistTestSet();
        var x = (flatten ? test.Flat() : test.Images).On(e.Device);
        var labels = test.Labels.On(e.Device);
        using var noGrad = no_grad();
        if (bnTrainMode) e.Model.train(); else e.Model.eval();
        var scores = e.Model.call(x);
        if (argmaxToAuto) e.Metric(AutoAccuracy)(labels, scores.argmax(1));
        else e.Metric((t, p) => Accuracy.Compute(p, t))(labels, scores);
        if (validation != null) e.ValidationLoss(validation)(scores, labels);
    }

    static ClinicSetup With(this ClinicSetup s, int evaluateEvery = 0, Action<ClinicEvaluation>? evaluate = null, bool zeroGrad = true, ClinicHookup? hookup = null) =>
        s with { ZeroGrad = zeroGrad, EvaluateEvery = evaluateEvery, Evaluate = evaluate, Hookup = hookup ?? s.Hookup };

    // ---------------------------------------------------------------- case study 3: keypoint heatmaps, BatchNorm running statistics
    static ClinicSetup Keypoints(int seed, Device device, double bnMomentum, double weightDecay, double lr = 1e-3)
    {
        var config = new KeypointTrainingConfig { Seed = seed, BnMomentum = bnMomentum, WeightDecay = weightDecay, LearningRate = lr };
        var model = ConvBnNet.Create(new ConvBnOptions { BnMomentum = bnMomentum }).On(device);
        var generator = new KeypointGenerator(seed, new KeypointOptions());
        IEnumerable<(Tensor, Tensor)> Stream() { for (long i = 0; ; i++) yield return generator.Batch(i, 8, device); }
        return new ClinicSetup
        {
            Model = model, Optimizer = KeypointTraining.MakeOptimizer(model, config),
            Loss = (o, y) => functional.mse_loss(o.sigmoid(), y), Batches = Stream(), Hookup = ClinicHookup.Loop,
        };
    }

    /// <summary>The small CNN with BatchNorm under SGD-momentum lr 0.05 on cross-entropy, MNIST images.</summary>
    static ClinicSetup MnistCnn(int seed, Device device)
    {
        var model = SmallCnn().On(device);
        return new ClinicSetup { Model = model, Optimizer = Optimizers.Create("sgd-momentum", model.parameters(), 0.05, momentum: 0.9), Loss = CrossEntropy, Batches = MnistBatches(seed, 64, flatten: false, device) };
    }

    /// <summary>The full suite (cases marked Quick form the test-suite subset).</summary>
    public static IReadOnlyList<ClinicCase> All()
    {
        var mse = Losses.Mse(TrainingForensics.Training.Reduction.SumOverBatch);
        var mseMean = Losses.Mse(TrainingForensics.Training.Reduction.Mean);
        var cases = new List<ClinicCase>
        {
            // designed-for bugs
            Ecg1("cs1: MLP, sigmoid → cross-entropy", "mlp", "sigmoid", "ce", "the report's bug: a sigmoid before softmax cross-entropy, DC-offset records of 6,000 samples", quick: true),
            Ecg1("cs1: MLP, softmax → cross-entropy", "mlp", "softmax", "ce", "the same with a softmax as the last layer", quick: false),
            Ecg1("cs1: MLP, sigmoid → BCE-with-logits", "mlp", "sigmoid", "bce", "one output: a sigmoid before BCE-with-logits", quick: false),
            Ecg1("cs1: CNN, sigmoid → cross-entropy", "cnn", "sigmoid", "ce", "the strided 1-D CNN with a functional sigmoid (no layer to spot); doctor.Observe without the loss function", quick: false, hookup: ClinicHookup.Observe),
            new("cs2: mean-MSE under SGD", ClinicGroup.DesignedBug, "02-loss-scale-and-metrics", "(b): framework MSE (mean over the 10 outputs) with SGD lr 0.01", 300,
                new[] { "loss-scale" }, (seed, device) => MnistMlp(seed, device, mseMean, "sgd", 0.01), Quick: true),
            new("cs2: mean-MSE under SGD, Glorot", ClinicGroup.DesignedBug, "02-loss-scale-and-metrics", "(d): the same with Glorot initialisation", 300,
                new[] { "loss-scale" }, (seed, device) => MnistMlp(seed, device, mseMean, "sgd", 0.01, "glorot")),
            new("cs2: accuracy on argmax'd indices", ClinicGroup.DesignedBug, "02-loss-scale-and-metrics", "healthy training, evaluated with an auto-selected accuracy on (labels, argmax predictions)", 200,
                new[] { "metric-label-shapes" }, (seed, device) => MnistMlp(seed, device, mse, "sgd", 0.01).With(100, e => EvaluateMnist(e, true, null, false)), Quick: true),
            new("cs2: validation loss in other units", ClinicGroup.DesignedBug, "02-loss-scale-and-metrics", "healthy training, validation loss computed with the mean reduction", 200,
                new[] { "validation-loss-reduction" }, (seed, device) => MnistMlp(seed, device, mse, "sgd", 0.01).With(100, e => EvaluateMnist(e, false, mseMean, false))),
            new("cs3: BN momentum 0.003 + L2", ClinicGroup.DesignedBug, "03-batchnorm-train-vs-eval", "keypoint heatmaps, Conv-BN-ReLU6, Adam + coupled L2 3e-3 on conv weights, BN momentum 0.003", 900,
                new[] { "bn-running-stats-lag" }, (seed, device) => Keypoints(seed, device, 0.003, 3e-3), Quick: true),
            // missed as held-out bugs in the clinic's first runs; the doctor has had a check for each since (so they count as designed-for)
            new("zero_grad forgotten", ClinicGroup.DesignedBug, "04-diagnose-your-own-training", "SGD lr 0.01 on cross-entropy, gradients never zeroed (they accumulate)", 300,
                new[] { "gradients-not-zeroed" }, (seed, device) => MnistMlp(seed, device, CrossEntropy, "sgd", 0.01).With(zeroGrad: false), Quick: true),
            new("BN CNN evaluated without model.eval()", ClinicGroup.DesignedBug, "03-batchnorm-train-vs-eval", "the CNN+BN baseline, evaluated every 50 steps without model.eval()", 200,
                new[] { "evaluation-in-training-mode" },
                (seed, device) => MnistCnn(seed, device).With(50, e => EvaluateMnist(e, false, null, true, flatten: false))),

            // healthy baselines
            new("ECG MLP, logits, standardised", ClinicGroup.Healthy, "01-loss-plateau (fix)", "case study 1 fixed: logits into cross-entropy, standardised records", 150, Array.Empty<string>(),
                (seed, device) => EcgAdam(seed, device, new EcgRunConfig { Activation = "none" }, "ce", 1e-3, standardize: true), Quick: true),
            new("ECG CNN, logits", ClinicGroup.Healthy, "01-loss-plateau (fix)", "the strided 1-D CNN with logits, raw records", 150, Array.Empty<string>(),
                (seed, device) => EcgAdam(seed, device, new EcgRunConfig { Model = "cnn", Activation = "none" }, "ce", 1e-3, standardize: false, ClinicHookup.Observe)),
            new("MNIST MLP, Σ/B MSE, SGD", ClinicGroup.Healthy, "02-loss-scale-and-metrics (fix)", "(a): the hand-written Σ/B squared error, SGD lr 0.01, honest metric and validation loss", 300, Array.Empty<string>(),
                (seed, device) => MnistMlp(seed, device, mse, "sgd", 0.01).With(100, e => EvaluateMnist(e, false, mse, false)), Quick: true),
            new("MNIST MLP, CE, Adam", ClinicGroup.Healthy, "other", "cross-entropy, Adam lr 1e-3", 300, Array.Empty<string>(),
                (seed, device) => MnistMlp(seed, device, CrossEntropy, "adam", 1e-3)),
            new("MNIST CNN+BN, CE, SGD-momentum", ClinicGroup.Healthy, "other", "2 conv + BatchNorm (momentum 0.1) + linear, SGD-momentum lr 0.05, eval in eval mode", 200, Array.Empty<string>(),
                (seed, device) => MnistCnn(seed, device).With(100, e => EvaluateMnist(e, false, null, false, flatten: false)), Quick: true),
            new("keypoints, BN momentum 0.1", ClinicGroup.Healthy, "03-batchnorm-train-vs-eval (fix)", "case study 3 with BN momentum 0.1 and no weight decay", 400, Array.Empty<string>(),
                (seed, device) => Keypoints(seed, device, 0.1, 0)),
            new("MNIST MLP, CE, SGD lr 1e-3 (slow)", ClinicGroup.Healthy, "other", "trains, but slowly: plain SGD at lr 1e-3", 300, Array.Empty<string>(),
                (seed, device) => MnistMlp(seed, device, CrossEntropy, "sgd", 1e-3)),
            new("ECG MLP, Adam lr 1e-5 (slow)", ClinicGroup.Healthy, "other", "trains, but slowly: Adam at lr 1e-5, standardised records", 150, Array.Empty<string>(),
                (seed, device) => EcgAdam(seed, device, new EcgRunConfig { Activation = "none" }, "ce", 1e-5, standardize: true)),
            new("MNIST MLP+dropout, CE, RMSProp", ClinicGroup.Healthy, "other", "dropout 0.2 (random numbers every step), RMSProp lr 1e-3", 300, Array.Empty<string>(),
                (seed, device) => MnistMlp(seed, device, CrossEntropy, "rmsprop", 1e-3, dropout: 0.2)),

            // bugs the doctor was not built around
            new("held-out: Adam lr 100× too high", ClinicGroup.HeldOutBug, "held out", "Adam at lr 0.1 instead of 1e-3", 300, Array.Empty<string>(),
                (seed, device) => MnistMlp(seed, device, CrossEntropy, "adam", 0.1), Quick: true),
            new("held-out: SGD lr 100× too high", ClinicGroup.HeldOutBug, "held out", "the Σ/B squared-error baseline at SGD lr 1 instead of 0.01", 300, Array.Empty<string>(),
                (seed, device) => MnistMlp(seed, device, mse, "sgd", 1.0)),
            new("held-out: pixels not scaled (0–255)", ClinicGroup.HeldOutBug, "held out", "the cross-entropy SGD lr 0.01 MLP fed raw 0–255 pixel values", 300, Array.Empty<string>(),
                (seed, device) => MnistMlp(seed, device, CrossEntropy, "sgd", 0.01).WithInputScale(255)),
            new("held-out: labels out of step with images", ClinicGroup.HeldOutBug, "held out", "the cross-entropy SGD-momentum MLP, each batch's labels shifted by one place (inputs and labels shuffled apart)", 300, Array.Empty<string>(),
                (seed, device) => MnistMlp(seed, device, CrossEntropy, "sgdm", 0.01).WithLabelsShifted(), Quick: true),
            new("held-out: optimiser given the last layer only", ClinicGroup.HeldOutBug, "held out", "Adam lr 1e-3 on cross-entropy, but the optimiser was built from the output layer's parameters: the hidden layers never train", 300, Array.Empty<string>(),
                (seed, device) => MnistMlp(seed, device, CrossEntropy, "adam", 1e-3).WithOptimizerOnLastLayer(1e-3)),
        };
        return cases;
    }

    static ClinicSetup WithInputScale(this ClinicSetup s, double scale) => s with { Batches = s.Batches.Select(b => (b.X.Times(scale), b.Y)) };

    static ClinicSetup WithLabelsShifted(this ClinicSetup s) => s with { Batches = s.Batches.Select(b => (b.X, b.Y.roll(1, 0))) };

    static ClinicSetup WithOptimizerOnLastLayer(this ClinicSetup s, double lr) =>
        s with { Optimizer = Optimizers.Create("adam", s.Model.named_modules().Last(m => m.module is Linear).module.parameters(), lr) };

    /// <summary>The test-suite subset.</summary>
    public static IReadOnlyList<ClinicCase> Quick() => All().Where(c => c.Quick).ToList();

    /// <summary>Cases by name (exact), in the order given.</summary>
    public static IReadOnlyList<ClinicCase> Named(params string[] names)
    {
        var all = All();
        return names.Select(n => all.FirstOrDefault(c => c.Name == n) ?? throw new ArgumentException($"no clinic case '{n}' (have: {string.Join("; ", all.Select(c => c.Name))})")).ToList();
    }

    /// <summary>The workloads the overhead is timed on: an MLP (many cheap steps) and a CNN with BatchNorm.</summary>
    public static IReadOnlyList<(ClinicCase Case, int StepsPerRound)> OverheadWorkloads()
    {
        var all = All();
        return new[] { (all.First(c => c.Name == "MNIST MLP, CE, Adam"), 100), (all.First(c => c.Name == "MNIST CNN+BN, CE, SGD-momentum"), 100) };
    }
}
