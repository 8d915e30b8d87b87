using TorchSharp;
using TrainingForensics.Data;
using TrainingForensics.Diagnostics;
using TrainingForensics.Models;
using TrainingForensics.Setup;
using TrainingForensics.Training;
using static TorchSharp.torch;
using TrainingForensics.Native;

namespace TrainingForensics.CaseStudies.LossScale;

/// <summary>What every run of case study 2 shares: the data, the training budget and the intended (reference) reduction.</summary>
public sealed record LossScaleConfig
{
    public required ImageSet TrainingSet { get; init; }
    public required ImageSet TestSet { get; init; }
    /// <summary>Passes over the training set (the report: 10).</summary>
    public int Epochs { get; init; } = 10;
    /// <summary>Images per step (the report: 32).</summary>
    public int BatchSize { get; init; } = 32;
    /// <summary>The reduction the loss was meant to have: the hand-written Σ(out − onehot)²/B.</summary>
    public Reduction Reference { get; init; } = Reduction.SumOverBatch;
    /// <summary>Layer widths of the MLP (the report: 784→256→128→10, ReLU, no output activation).</summary>
    public int[] Layers { get; init; } = { 784, 256, 128, 10 };
    /// <summary>Steps between two readings of the loss-scale check that rides along every run.</summary>
    public int CheckEvery { get; init; } = 500;
    /// <summary>Images per evaluation batch (evaluation only: it does not change the numbers, only the memory).</summary>
    public int EvaluationBatch { get; init; } = 1000;
    /// <summary>Where the models and the images live (null: <see cref="TorchEnvironment.CurrentDevice"/>).</summary>
    public Device? Device { get; init; }
}

/// <summary>
/// The recipe of every run of case study 2 (the 10× quieter loss): the MNIST MLP, trained with a squared error of a
/// given reduction, optimiser and learning rate, evaluated after each epoch; a loss-scale check rides along every run.
/// It keeps each run's model and check by run name, for the sections that look at them afterwards. The image sets are
/// moved to the device once, here.
/// </summary>
public sealed class LossScaleExperiment : IDisposable
{
    readonly Dictionary<string, nn.Module<Tensor, Tensor>> _models = new();
    readonly Dictionary<string, LossScaleCheck> _checks = new();

    public LossScaleExperiment(LossScaleConfig config)
    {
        Config = config ?? throw new ArgumentNullException(nameof(config));
        if (config.Epochs < 1 || config.BatchSize < 1 || config.CheckEvery < 1 || config.EvaluationBatch < 1)
            throw new ArgumentException($"epochs ({config.Epochs}), batch size ({config.BatchSize}), check cadence ({config.CheckEvery}) and evaluation batch ({config.EvaluationBatch}) must be positive");
        if (config.Layers.Length < 2) throw new ArgumentException("the MLP needs at least an input and an output width");
        Device = Placement.Resolve(config.Device);
        TrainingSet = config.TrainingSet.To(Device);
        TestSet = config.TestSet.To(Device);
        _oneHotRows = eye(Classes, dtype: ScalarType.Float32, device: Device);
        _oneHotRows.DetachFromDisposeScope();
    }

    // row k is class k's one-hot target: the training loss looks its targets up here instead of building them every step
    readonly Tensor _oneHotRows;

    public LossScaleConfig Config { get; }
    public Device Device { get; }
    /// <summary>The training images on <see cref="Device"/> (the config's set itself when it is already there).</summary>
    public ImageSet TrainingSet { get; }
    /// <summary>The test images on <see cref="Device"/>.</summary>
    public ImageSet TestSet { get; }
    /// <summary>Output width of the MLP: the number of classes.</summary>
    public int Classes => Config.Layers[^1];

    /// <summary>Each run's trained model, by run name ("variant · seed N").</summary>
    public IReadOnlyDictionary<string, nn.Module<Tensor, Tensor>> Models => _models;
    /// <summary>Each run's loss-scale check (reference reduction, every <see cref="LossScaleConfig.CheckEvery"/> steps), by run name.</summary>
    public IReadOnlyDictionary<string, LossScaleCheck> Checks => _checks;

    /// <summary>A fresh MLP with the initialisation <paramref name="scheme"/> ("torch" or "glorot"), on the device.</summary>
    public nn.Module<Tensor, Tensor> CreateModel(string scheme) =>
        Initialization.Apply(Mlp.Create(Config.Layers), scheme).On(Device);

    /// <summary>
    /// One run: reseed with <paramref name="runSeed"/> (weights and shuffling), build the MLP with
    /// <paramref name="scheme"/>, train it with the squared error reduced by <paramref name="reduction"/> and
    /// <paramref name="optimizer"/> at <paramref name="rate"/> for the configured epochs (or <paramref name="maxSteps"/>),
    /// evaluating test loss and accuracy after each epoch and the training accuracy after the last. Returns the run's
    /// history, named "<paramref name="variant"/> · seed <paramref name="runSeed"/>".
    /// </summary>
    /// <param name="instrument">Attaches probes to the run's loop (after the loss-scale check).</param>
    /// <param name="alsoValidateWith">Also computes the test loss with this reduction each epoch ("test_loss_" + its label).</param>
    /// <param name="trackAccuracy">Logs each step's batch accuracy in the last epoch ("accuracy"): what a framework's fit reports as that epoch's training accuracy.</param>
    /// <param name="variant">The run's name before the seed.</param>
    /// <param name="reduction">The reduction of the training (and test) loss.</param>
    /// <param name="rate">The learning rate.</param>
    /// <param name="scheme">The initialisation.</param>
    /// <param name="runSeed">The seed.</param>
    /// <param name="optimizer">One of <see cref="Optimizers.Names"/>.</param>
    /// <param name="maxSteps">Stops after this many steps (at the end of that epoch's evaluation).</param>
    public TrainingHistory Train(string variant, Reduction reduction, double rate, string scheme, int runSeed, string optimizer = "sgd",
        Action<TrainingLoop>? instrument = null, long? maxSteps = null, Reduction? alsoValidateWith = null, bool trackAccuracy = false) =>
        Prepare(variant, reduction, rate, scheme, runSeed, optimizer, instrument, maxSteps, alsoValidateWith, trackAccuracy)();

    /// <summary>
    /// <see cref="Train"/> in two halves: this builds the run (reseeds, draws the weights from the global seed,
    /// attaches the check and <paramref name="instrument"/>) and returns the training, which draws only from the
    /// run's own generator, so runs built one after another can train side by side (<see cref="ConcurrentRuns"/>)
    /// with the numbers they would have alone.
    /// </summary>
    public Func<TrainingHistory> Prepare(string variant, Reduction reduction, double rate, string scheme, int runSeed, string optimizer = "sgd",
        Action<TrainingLoop>? instrument = null, long? maxSteps = null, Reduction? alsoValidateWith = null, bool trackAccuracy = false)
    {
        TorchEnvironment.Reseed(runSeed);
        var model = CreateModel(scheme);
        var loop = new TrainingLoop(model, Optimizers.Create(optimizer, model.parameters(), rate), TrainingLoss(reduction), $"{variant} · seed {runSeed}");
        // fit's training accuracy is the mean batch accuracy of the last epoch: only those batches are measured
        // (each measurement reads back to the host), with the outputs the loop's TrackAccuracy would use
        if (trackAccuracy)
            loop.AfterStep += ctx => { if (ctx.Epoch == Config.Epochs) ctx.Log("accuracy", Metrics.Accuracy.Compute(ctx.Outputs, ctx.Targets)); };
        lock (_models)
        {
            _checks[loop.History.Name] = new LossScaleCheck(Config.Reference, every: Config.CheckEvery).AttachTo(loop);
            _models[loop.History.Name] = model;
        }
        instrument?.Invoke(loop);
        var shuffle = new Generator((ulong)runSeed);
        return () => Run(loop, model, shuffle, reduction, maxSteps, alsoValidateWith);
    }

    /// <summary>
    /// The squared error with <paramref name="reduction"/> against the one-hot rows of class labels: the numbers of
    /// <see cref="Losses.Mse"/>, bit for bit, with each target row looked up on the device. Losses.Mse builds the rows
    /// every step and first reads the labels' range back to the host; the labels here were checked once, at loading.
    /// Other targets (already one-hot, or another width) go to Losses.Mse itself.
    /// </summary>
    public Func<Tensor, Tensor, Tensor> TrainingLoss(Reduction reduction)
    {
        var general = Losses.Mse(reduction);
        return (outputs, targets) =>
            targets.dim() == 1 && outputs.dim() == 2 && outputs.shape[1] == Classes && outputs.dtype == ScalarType.Float32
                && targets.dtype == ScalarType.Int64 && targets.IsOn(Device) && outputs.IsOn(Device)
                ? Losses.Reduce((outputs - _oneHotRows.index_select(0, targets)).Squared(), reduction)
                : general(outputs, targets);
    }

    /// <summary>
    /// One plain-SGD step with weight decay <paramref name="weightDecay"/> for (a) (the reference reduction at
    /// <paramref name="rate"/>) and for (c) (<paramref name="quiet"/> at <paramref name="rate"/> × <paramref name="compensation"/>),
    /// from the same initial weights and batch; then the same without weight decay, and with (c)'s decay divided by
    /// the compensation. SGD adds λ·w to the gradient before multiplying by the learning rate, so (c), whose rate is
    /// k times larger, decays its weights k times as fast: after one step the two differ by lr·|k − 1|·λ·‖w‖.
    /// </summary>
    public WeightDecayStep CompareOneSgdStep(string scheme, int seed, Tensor inputs, Tensor labels, Reduction quiet, double rate,
        double compensation, double weightDecay)
    {
        if (!(weightDecay > 0)) throw new ArgumentOutOfRangeException(nameof(weightDecay), weightDecay, "the comparison needs a positive weight decay");
        using var scope = NewDisposeScope();
        Tensor Weights(nn.Module<Tensor, Tensor> m) => cat(m.parameters().Select(p => p.detach().reshape(-1)).ToArray());
        Tensor After(Reduction reduction, double lr, double decay)
        {
            TorchEnvironment.Reseed(seed);
            var model = CreateModel(scheme);
            var sgd = Optimizers.Create("sgd", model.parameters(), lr, weightDecay: decay);
            sgd.zero_grad();
            Losses.Mse(reduction)(model.call(inputs), labels).backward();
            sgd.step();
            return Weights(model);
        }
        TorchEnvironment.Reseed(seed);
        var start = Weights(CreateModel(scheme));
        double Distance(Tensor x, Tensor y) => (x - y).norm().item<float>();
        var a = After(Config.Reference, rate, weightDecay);
        var a0 = After(Config.Reference, rate, 0);
        return new WeightDecayStep(weightDecay, compensation,
            Step: Distance(a, start),
            WithDecay: Distance(a, After(quiet, rate * compensation, weightDecay)),
            Predicted: rate * Math.Abs(compensation - 1) * weightDecay * start.norm().item<float>(),
            WithoutDecay: Distance(a0, After(quiet, rate * compensation, 0)),
            WithDecayOverK: Distance(a, After(quiet, rate * compensation, weightDecay / compensation)));
    }

    /// <summary>Trains runs made by <see cref="Prepare"/> side by side; their histories in the order given.</summary>
    public static IReadOnlyList<TrainingHistory> TrainSideBySide(params Func<TrainingHistory>[] prepared) =>
        ConcurrentRuns.Map(prepared, p => p, p => p());

    TrainingHistory Run(TrainingLoop loop, nn.Module<Tensor, Tensor> model, Generator shuffle, Reduction reduction, long? maxSteps, Reduction? alsoValidateWith)
    {
        int epochs = Config.Epochs, done = 0;
        // a diverging run (a loss scaled up at the same lr) stops at its first NaN/∞ loss; its history says where and why
        try
        {
            loop.Run(_ => TrainingSet.Batches(Config.BatchSize, generator: shuffle, flatten: true), epochs, maxSteps: maxSteps, evaluate: () =>
            {
                var (testLoss, testAccuracy) = Evaluation.Run(model, TestBatches(), Losses.Mse(reduction));
                var values = new Dictionary<string, double> { ["test_accuracy"] = testAccuracy, ["test_loss"] = testLoss };
                if (alsoValidateWith is { } other)
                    values["test_loss_" + other.Label()] = Evaluation.Run(model, TestBatches(), Losses.Mse(other)).Loss;
                if (++done == epochs || loop.StepCount >= (maxSteps ?? long.MaxValue))
                    values["train_accuracy"] = Evaluation.Run(model, TrainingSet.Batches(Config.EvaluationBatch, shuffle: false, flatten: true)).Accuracy;
                return values;
            });
        }
        catch (NonFiniteLossException) when (loop.History.Divergence != null) { }
        return loop.History;
    }

    IEnumerable<(Tensor X, Tensor Y)> TestBatches() => TestSet.Batches(Config.EvaluationBatch, shuffle: false, flatten: true);

    /// <summary>
    /// Mean relative difference |loss_x − scale·loss_y| / loss_x over the first <paramref name="steps"/> steps of two
    /// runs: how closely <paramref name="y"/>, rescaled into <paramref name="x"/>'s units, follows <paramref name="x"/>.
    /// </summary>
    public static double Drift(TrainingHistory x, TrainingHistory y, double scale, int steps) =>
        x.Losses.Take(steps).Zip(y.Losses.Take(steps), (p, q) => Math.Abs(p - scale * q) / p).Average();

    /// <summary>Disposes the copies made for the device (sets that were already there belong to the caller).</summary>
    public void Dispose()
    {
        _oneHotRows.Dispose();
        if (!ReferenceEquals(TrainingSet, Config.TrainingSet)) TrainingSet.Dispose();
        if (!ReferenceEquals(TestSet, Config.TestSet)) TestSet.Dispose();
    }
}

/// <summary>
/// One SGD step of (a) and (c) from the same weights and batch (<see cref="LossScaleExperiment.CompareOneSgdStep"/>):
/// the distance between their weights afterwards, with weight decay, without it, and with (c)'s decay divided by k;
/// <see cref="Predicted"/> is lr·|k − 1|·λ·‖w‖, and <see cref="Step"/> the size of (a)'s step, for scale.
/// </summary>
public sealed record WeightDecayStep(double WeightDecay, double Compensation, double Step, double WithDecay, double Predicted, double WithoutDecay, double WithDecayOverK)
{
    public override string ToString() =>
        $"one SGD step, ‖Δw‖ of (a) = {Step:E3}; distance between (a) and (c) afterwards: " +
        $"without weight decay {WithoutDecay:E2}, with λ = {WeightDecay:G3} {WithDecay:E3} (predicted lr·|k−1|·λ·‖w‖ = {Predicted:E3}), " +
        $"with (c)'s λ divided by k = {Compensation:G3}: {WithDecayOverK:E2}";
}
