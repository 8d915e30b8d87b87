using System.Diagnostics;
using TorchSharp;
using TorchSharp.Modules;
using TrainingForensics.Data;
using TrainingForensics.Diagnostics;
using TrainingForensics.Models;
using TrainingForensics.Probes;
using TrainingForensics.Setup;
using TrainingForensics.Training;
using static TorchSharp.torch;
using TrainingForensics.Native;

namespace TrainingForensics.CaseStudies.BatchNormTrainVsEval;

/// <summary>
/// One training run of case study 3: the keypoint-heatmap task, the Conv-BN-ReLU6 net, sigmoid + MSE, and the
/// settings the original report varied. Defaults are the report's: Adam lr 1e-3, batch 8, BN momentum 0.003.
/// </summary>
public sealed record KeypointTrainingConfig
{
    public string Name { get; init; } = "run";
    public int Seed { get; init; } = 42;
    public int Steps { get; init; } = 1500;
    public int BatchSize { get; init; } = 8;
    /// <summary>
    /// One of <see cref="Optimizers.Names"/>: the report's "adam", "sgd-momentum" (the summed-loss comparison), "adamw"
    /// (decoupled decay), "sgd", "rmsprop".
    /// </summary>
    public string Optimizer { get; init; } = "adam";
    public double LearningRate { get; init; } = 1e-3;
    /// <summary>Momentum of "sgd-momentum" (and of "sgd"/"rmsprop" when set); null: the optimiser's default (0.9 for sgd-momentum).</summary>
    public double? Momentum { get; init; }
    /// <summary>
    /// Weight decay λ, the optimiser's weight_decay: coupled L2 (λ·W added to the gradient) for every optimiser but
    /// "adamw", which decays decoupled (W shrinks by lr·λ·W beside the step).
    /// </summary>
    public double WeightDecay { get; init; } = 1e-3;
    /// <summary>"conv" (convolution weights only, as TF-slim's scope does) or "all".</summary>
    public string WeightDecayOn { get; init; } = "conv";
    public double? BnMomentum { get; init; } = 0.003;
    /// <summary>"mean" (MSE averaged over every heatmap pixel) or "sum" (summed).</summary>
    public string Reduction { get; init; } = "mean";
    /// <summary>0 = a fresh batch every step (endless data); N = a fixed set of N images reshuffled each epoch.</summary>
    public int TrainingSetSize { get; init; } = 0;
    /// <summary>Measure the train/eval gap and the BN statistics every this many steps.</summary>
    public int EvalEvery { get; init; } = 100;
    /// <summary>Images of the held-out probe set used for the curves and the BN statistics.</summary>
    public int ProbeSize { get; init; } = 64;
    /// <summary>Extra BN momenta whose running statistics are shadowed during the run (see <see cref="BatchNormShadow"/>).</summary>
    public double[] ShadowMomenta { get; init; } = Array.Empty<double>();
    public ConvBnOptions? Net { get; init; }
    /// <summary>Where the model and the images live (null: <see cref="TorchEnvironment.CurrentDevice"/>).</summary>
    public Device? Device { get; init; }

    public void Validate()
    {
        if (Steps < 1) throw new ArgumentOutOfRangeException(nameof(Steps), Steps, "need at least one step");
        if (BatchSize < 2) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "BatchNorm needs batches of at least 2");
        Optimizers.Validate(Optimizer);
        if (!(LearningRate > 0)) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "learning rate must be positive");
        if (!(WeightDecay >= 0)) throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay, "weight decay cannot be negative");
        if (WeightDecayOn?.ToLowerInvariant() is not ("conv" or "all")) throw new ArgumentException($"unknown weight-decay scope '{WeightDecayOn}': use conv or all");
        if (Reduction?.ToLowerInvariant() is not ("mean" or "sum")) throw new ArgumentException($"unknown loss reduction '{Reduction}': use mean or sum");
        if (TrainingSetSize < 0 || (TrainingSetSize > 0 && TrainingSetSize < BatchSize))
            throw new ArgumentOutOfRangeException(nameof(TrainingSetSize), TrainingSetSize, $"use 0 (fresh data) or at least one batch ({BatchSize})");
        if (EvalEvery < 1) throw new ArgumentOutOfRangeException(nameof(EvalEvery), EvalEvery, "evaluation cadence must be at least 1");
        if (ProbeSize < BatchSize) throw new ArgumentOutOfRangeException(nameof(ProbeSize), ProbeSize, $"the probe set needs at least one batch ({BatchSize}) of images");
        if (BnMomentum is { } m && !(m > 0 && m <= 1)) throw new ArgumentOutOfRangeException(nameof(BnMomentum), m, "BN momentum must be in (0, 1]");
    }
}

/// <summary>
/// Eval mode on the probe set with the running statistics a shadow kept at <see cref="Momentum"/> (same weights, same step):
/// what eval mode would have shown with that BN momentum.
/// </summary>
public sealed record ShadowEvalPoint(long Step, double Momentum, double EvalLoss, double EvalAccuracy, double EvalMaxOutput);

/// <summary>
/// The size of one optimiser step on the conv weights (the head's excepted), taken at a measurement step: the total norm
/// ‖W‖ = √(Σ‖W_l‖²) after the step and ‖ΔW‖, how far that step moved them.
/// </summary>
public sealed record WeightStep(long Step, double Norm, double StepNorm)
{
    /// <summary>‖ΔW‖ / ‖W‖: the step relative to the weights. BN makes the conv weights scale-invariant, so this is what the step does to the function.</summary>
    public double RelativeStep => StepNorm / Norm;
}

/// <summary>What a <see cref="KeypointTraining"/> run produced. Owns the model and data; dispose when done.</summary>
public sealed class KeypointTrainingRun : IDisposable
{
    internal KeypointTrainingRun(KeypointTrainingConfig config, Device device, Sequential model, TrainingLoop loop, KeypointSet eval, KeypointSet probe,
        KeypointSet? train, KeypointGenerator generator, BatchNormProbe bn, BatchNormShadow? shadow, List<TrainEvalGapResult> curve,
        List<ShadowEvalPoint> shadowCurve, List<WeightStep> weightSteps, double seconds)
    {
        Config = config; Device = device; Model = model; Loop = loop; EvalSet = eval; ProbeSet = probe; TrainingSet = train; Generator = generator;
        BatchNorm = bn; Shadow = shadow; Curve = curve; ShadowCurve = shadowCurve; WeightSteps = weightSteps; Seconds = seconds;
    }

    public KeypointTrainingConfig Config { get; }
    /// <summary>The device the model and the image sets are on.</summary>
    public Device Device { get; }
    public Sequential Model { get; }
    public TrainingLoop Loop { get; }
    /// <summary>Held-out images (256 by default) for the final numbers.</summary>
    public KeypointSet EvalSet { get; }
    /// <summary>The first <see cref="KeypointTrainingConfig.ProbeSize"/> images of <see cref="EvalSet"/>, measured during training.</summary>
    public KeypointSet ProbeSet { get; }
    /// <summary>The finite training set (null when every step drew fresh images).</summary>
    public KeypointSet? TrainingSet { get; }
    public KeypointGenerator Generator { get; }
    public BatchNormProbe BatchNorm { get; }
    public BatchNormShadow? Shadow { get; }
    /// <summary>Train-mode vs eval-mode loss/accuracy on the probe set every EvalEvery steps.</summary>
    public IReadOnlyList<TrainEvalGapResult> Curve { get; }
    /// <summary>At every measurement, eval mode on the probe set with each shadow momentum's statistics (empty without <see cref="KeypointTrainingConfig.ShadowMomenta"/>).</summary>
    public IReadOnlyList<ShadowEvalPoint> ShadowCurve { get; }
    /// <summary>The step that led to each measurement: its size and the weights' norm.</summary>
    public IReadOnlyList<WeightStep> WeightSteps { get; }
    /// <summary>Training time (steps plus the measurements during training).</summary>
    public double Seconds { get; }

    /// <summary>The shadow eval curve of <paramref name="momentum"/>, in step order.</summary>
    public IReadOnlyList<ShadowEvalPoint> ShadowCurveOf(double momentum)
    {
        var points = ShadowCurve.Where(p => p.Momentum == momentum).ToList();
        return points.Count > 0 ? points
            : throw new ArgumentException($"momentum {momentum} was not shadowed (have: {string.Join(", ", Config.ShadowMomenta)})");
    }

    /// <summary>The gap on the whole evaluation set now.</summary>
    public TrainEvalGapResult Final() => TrainEvalGap.Measure(Model, EvalSet, Loop.StepCount, Config.BatchSize);

    /// <summary>
    /// Training batches for recalibration: drawn from the finite training set (reshuffled) or fresh from the
    /// training generator (indices after those used in training), on the run's device.
    /// </summary>
    public IEnumerable<Tensor> TrainingBatches(int count)
    {
        if (TrainingSet is { } set)
        {
            var g = new Generator().manual_seed(Config.Seed + 7);
            int made = 0;
            while (made < count)
                foreach (var (x, y) in set.Batches(Config.BatchSize, g))
                {
                    y.Dispose();
                    yield return x;
                    if (++made >= count) yield break;
                }
        }
        else
            for (int i = 0; i < count; i++)
            {
                var (x, y) = Generator.Batch(Config.Steps + 1 + i, Config.BatchSize);
                y.Dispose();
                yield return x.MovedTo(Device);
            }
    }

    public void Dispose()
    {
        Shadow?.Dispose();
        ProbeSet.Dispose(); EvalSet.Dispose(); TrainingSet?.Dispose();
        Model.Dispose();
    }
}

/// <summary>Trains the case-study-3 model with one configuration, measuring the train/eval gap and BN statistics along the way.</summary>
public static class KeypointTraining
{
    /// <summary>Size of the held-out evaluation set.</summary>
    public const int EvalSize = 256;

    /// <summary>
    /// Runs <paramref name="config"/>. <paramref name="checks"/> (optional) are fed every measurement;
    /// <paramref name="progress"/> gets (step, gap) after each measurement (e.g. to update a notebook display).
    /// </summary>
    public static KeypointTrainingRun Train(KeypointTrainingConfig config, IEnumerable<BatchNormDriftCheck>? checks = null,
        Action<long, TrainEvalGapResult>? progress = null) => Prepare(config, checks, progress)();

    /// <summary>
    /// <see cref="Train"/> in two halves: this builds the run (reseeds, draws the weights from the global seed,
    /// generates its image sets) and returns the training, which draws only from the run's own generators, so runs
    /// built one after another can train side by side (<see cref="ConcurrentRuns"/>) with the numbers they have alone.
    /// </summary>
    public static Func<KeypointTrainingRun> Prepare(KeypointTrainingConfig config, IEnumerable<BatchNormDriftCheck>? checks = null,
        Action<long, TrainEvalGapResult>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        var device = Placement.Resolve(config.Device);
        TorchEnvironment.Reseed(config.Seed);
        var netOptions = (config.Net ?? new ConvBnOptions()) with { BnMomentum = config.BnMomentum };
        var model = ConvBnNet.Create(netOptions).On(device);
        var generator = new KeypointGenerator(config.Seed, new KeypointOptions());
        // The image sets go to the device once; fresh batches (endless data) are drawn on the CPU and moved per step.
        var evalSet = new KeypointGenerator(unchecked(config.Seed + 1_000_003)).Generate(EvalSize, device: device);
        var probe = evalSet.Take(config.ProbeSize);
        var train = config.TrainingSetSize > 0 ? generator.Generate(config.TrainingSetSize, device: device) : null;
        var optimizer = MakeOptimizer(model, config);
        bool sum = config.Reduction.Equals("sum", StringComparison.OrdinalIgnoreCase);
        var loop = new TrainingLoop(model, optimizer,
            (o, y) => nn.functional.mse_loss(o.sigmoid(), y, sum ? nn.Reduction.Sum : nn.Reduction.Mean), config.Name);
        var shadow = config.ShadowMomenta.Length > 0 ? new BatchNormShadow(model, config.ShadowMomenta) : null;
        var bn = new BatchNormProbe(config.EvalEvery);
        var checkList = checks?.ToList() ?? new List<BatchNormDriftCheck>();
        var curve = new List<TrainEvalGapResult>();
        var shuffle = new Generator().manual_seed(config.Seed + 1);
        return () => Run(config, device, model, generator, evalSet, probe, train, loop, shadow, bn, checkList, curve, shuffle, progress);
    }

    /// <summary>
    /// Trains several configurations side by side (<see cref="ConcurrentRuns"/>: each gives the numbers it gives alone) and
    /// returns the runs in the order given; each is fed its own check. Put the longest run first: runs start in order.
    /// <paramref name="progress"/> gets a line after each measurement of any run (never two at once).
    /// </summary>
    public static IReadOnlyList<KeypointTrainingRun> TrainSideBySide(IReadOnlyList<(KeypointTrainingConfig Config, BatchNormDriftCheck? Check)> runs,
        Action<string>? progress = null, int? workers = null)
    {
        ArgumentNullException.ThrowIfNull(runs);
        var gate = new object();
        return ConcurrentRuns.Map(runs,
            r => Prepare(r.Config, r.Check is null ? null : new[] { r.Check },
                (s, g) => { lock (gate) progress?.Invoke($"{r.Config.Name}: step {s}, eval acc {g.EvalAccuracy:F2}, train-mode acc {g.TrainModeAccuracy:F2}"); }),
            train => train(), workers);
    }

    static KeypointTrainingRun Run(KeypointTrainingConfig config, Device device, Sequential model, KeypointGenerator generator, KeypointSet evalSet,
        KeypointSet probe, KeypointSet? train, TrainingLoop loop, BatchNormShadow? shadow, BatchNormProbe bn, List<BatchNormDriftCheck> checkList,
        List<TrainEvalGapResult> curve, Generator shuffle, Action<long, TrainEvalGapResult>? progress)
    {
        var watch = Stopwatch.StartNew();
        IEnumerator<(Tensor X, Tensor Y)>? epoch = null;
        int epochNumber = 0;
        var shadowCurve = new List<ShadowEvalPoint>();
        var weightSteps = new List<WeightStep>();
        var convWeights = ConvBnNet.ConvWeights(model).Select(p => p.Parameter).ToList();
        try
        {
            for (int step = 0; step < config.Steps; step++)
            {
                using (var scope = NewDisposeScope())
                {
                    Tensor x, y;
                    if (train is null)
                    {
                        (x, y) = generator.Batch(step, config.BatchSize, device);
                    }
                    else
                    {
                        if (epoch is null || !epoch.MoveNext())
                        {
                            epoch?.Dispose();
                            epochNumber++;
                            epoch = train.Batches(config.BatchSize, shuffle).GetEnumerator();
                            epoch.MoveNext();
                        }
                        (x, y) = epoch.Current;
                    }
                    long next = step + 1;
                    bool measure = next % config.EvalEvery == 0 || next == config.Steps;
                    // before a measurement, keep the weights to see how far this one step moves them (copies die with the scope)
                    var before = measure ? convWeights.Select(p => p.detach().clone()).ToList() : null;
                    loop.Step(x, y, epochNumber);
                    if (before is not null)
                        using (no_grad())
                        {
                            double delta = Math.Sqrt(convWeights.Zip(before, (p, b) => (p - b).Squared().sum().item<float>()).Sum());
                            double norm = Math.Sqrt(convWeights.Sum(p => p.Squared().sum().item<float>()));
                            weightSteps.Add(new WeightStep(next, norm, delta));
                        }
                }
                long done = step + 1;
                if (done % config.EvalEvery == 0 || done == config.Steps)
                {
                    var stats = bn.Record(model, probe.Images, done);
                    var gap = TrainEvalGap.Measure(model, probe, done, config.BatchSize);
                    curve.Add(gap);
                    if (shadow is not null)
                        foreach (var m in shadow.Momenta)
                            using (shadow.Use(m)) shadowCurve.Add(EvalMode(model, probe, done, m));
                    foreach (var c in checkList) { c.Observe(done, stats); c.ObserveGap(gap, config.BnMomentum); }
                    progress?.Invoke(done, gap);
                }
            }
        }
        finally { epoch?.Dispose(); }
        return new KeypointTrainingRun(config, device, model, loop, evalSet, probe, train, generator, bn, shadow, curve, shadowCurve, weightSteps,
            watch.Elapsed.TotalSeconds);
    }

    // eval mode only (the shadow statistics change nothing in training mode); one pass: eval mode has no batch effects
    static ShadowEvalPoint EvalMode(Sequential model, KeypointSet set, long step, double momentum)
    {
        using var scope = NewDisposeScope();
        var p = TrainEvalGap.Predict(model, set.Images, trainMode: false);
        double loss = nn.functional.mse_loss(p, set.Heatmaps).item<float>();
        double accuracy = (double)KeypointMetrics.Correct(p, set.Keypoints, set.Options.Stride) / (set.Count * set.Keypoints.shape[1]);
        return new ShadowEvalPoint(step, momentum, loss, accuracy, p.max().item<float>());
    }

    /// <summary>
    /// The configured optimiser (<see cref="Optimizers.Create(string, IEnumerable{ValueTuple{IEnumerable{Parameter}, double}}, double, double?)"/>)
    /// with the weight decay on the convolution weights only (the head's excepted), or on everything.
    /// </summary>
    public static optim.Optimizer MakeOptimizer(Sequential model, KeypointTrainingConfig config)
    {
        bool all = config.WeightDecayOn.Equals("all", StringComparison.OrdinalIgnoreCase);
        // one pass over the names: a set of Parameters would compare them by value (TorchSharp's Tensor.Equals)
        var named = model.named_parameters().ToList();
        bool Decays((string name, Parameter parameter) p) => all || (p.parameter.dim() == 4 && !p.name.StartsWith("head"));
        var decayed = named.Where(Decays).Select(p => p.parameter).ToList();
        var rest = named.Where(p => !Decays(p)).Select(p => p.parameter).ToList();
        return Optimizers.Create(config.Optimizer, new (IEnumerable<Parameter>, double)[] { (decayed, config.WeightDecay), (rest, 0) },
            config.LearningRate, config.Momentum);
    }
}
