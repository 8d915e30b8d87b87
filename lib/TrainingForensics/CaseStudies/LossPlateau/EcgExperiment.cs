using System.Diagnostics;
using Microsoft.Data.Analysis;
using TorchSharp;
using TrainingForensics.Data;
using TrainingForensics.Diagnostics;
using TrainingForensics.Metrics;
using TrainingForensics.Models;
using TrainingForensics.Probes;
using TrainingForensics.Setup;
using TrainingForensics.Training;
using static TorchSharp.torch;
using TrainingForensics.Native;

namespace TrainingForensics.CaseStudies.LossPlateau;

/// <summary>One configuration of the ECG classifier of case study 1 (the frozen loss).</summary>
public sealed record EcgRunConfig
{
    public string Name { get; init; } = "run";
    /// <summary>"mlp" (L→Hidden→outputs, ReLU) or "cnn" (<see cref="StridedConvNet"/>).</summary>
    public string Model { get; init; } = "mlp";
    /// <summary>Final activation inside the model: "none" (logits), "sigmoid" or "softmax" (the bug).</summary>
    public string Activation { get; init; } = "sigmoid";
    /// <summary>"ce" (softmax cross-entropy with logits, class-index targets), "ce-onehot" (the same with one-hot
    /// targets) or "bce" (one output, binary cross-entropy with logits).</summary>
    public string Loss { get; init; } = "ce";
    /// <summary>Standardise each record (mean 0, std 1) before the model sees it.</summary>
    public bool Standardize { get; init; }
    /// <summary>One of <see cref="Optimizers.Names"/> (the case study compares "adam" with "sgd").</summary>
    public string Optimizer { get; init; } = "adam";
    public double LearningRate { get; init; } = 1e-3;
    public int BatchSize { get; init; } = 32;
    public int Steps { get; init; } = 50;
    /// <summary>Evaluate on the evaluation set every this many steps (and after the last step).</summary>
    public int EvaluateEvery { get; init; } = 1;
    public int Hidden { get; init; } = 32;
    /// <summary>Seeds the weights and the batch order.</summary>
    public int Seed { get; init; } = 42;
    /// <summary>Where the model and the records live (null: <see cref="TorchEnvironment.CurrentDevice"/>).</summary>
    public Device? Device { get; init; }

    public int Outputs => Loss == "bce" ? 1 : 2;

    internal void Validate()
    {
        if (Model is not ("mlp" or "cnn")) throw new ArgumentException($"unknown model '{Model}': use mlp or cnn");
        if (Activation is not ("none" or "sigmoid" or "softmax")) throw new ArgumentException($"unknown activation '{Activation}': use none, sigmoid or softmax");
        if (Loss is not ("ce" or "ce-onehot" or "bce")) throw new ArgumentException($"unknown loss '{Loss}': use ce, ce-onehot or bce");
        if (Loss == "bce" && Activation == "softmax") throw new ArgumentException("a softmax over a single output is always 1: use sigmoid or none with the bce loss");
        Optimizers.Validate(Optimizer);
        if (!(LearningRate > 0)) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "learning rate must be positive");
        if (BatchSize < 1 || Steps < 1 || EvaluateEvery < 1 || Hidden < 1)
            throw new ArgumentException($"batch size ({BatchSize}), steps ({Steps}), evaluation cadence ({EvaluateEvery}) and hidden size ({Hidden}) must be positive");
    }
}

/// <summary>What one run produced: histories, evaluation curve, final confusion matrix, probes and checks.</summary>
public sealed class EcgRun
{
    public required EcgRunConfig Config { get; init; }
    public required TrainingHistory History { get; init; }
    public required GradientNorms Gradients { get; init; }
    public required OutputSaturation Saturation { get; init; }
    /// <summary>The four checks of case study 1, in the order probabilities-into-logits-loss, saturated-outputs, frozen-loss, loss-at-analytic-floor.</summary>
    public required IReadOnlyList<Check> Checks { get; init; }
    public List<long> EvalSteps { get; } = new();
    /// <summary>Evaluation loss after each evaluated step (float32, as the loss returned it).</summary>
    public List<float> EvalLosses { get; } = new();
    public List<double> EvalAccuracies { get; } = new();
    public ConfusionMatrix? Confusion { get; internal set; }
    /// <summary>Model outputs on the evaluation set after the last step (N×outputs).</summary>
    public float[][] FinalOutputs { get; internal set; } = Array.Empty<float[]>();
    public double Seconds { get; internal set; }
    public float FinalLoss => EvalLosses[^1];
    public double FinalAccuracy => EvalAccuracies[^1];
    public DiagnosisReport Report => new(Checks);
    /// <summary>The check with this name.</summary>
    public Check Check(string name) => Checks.FirstOrDefault(c => c.Name == name) ?? throw new KeyNotFoundException($"no check named '{name}' (have: {string.Join(", ", Checks.Select(c => c.Name))})");
}

/// <summary>
/// Trains and evaluates one ECG classifier configuration with the probes (per-layer gradient norms, output
/// saturation) and the four checks of case study 1 attached, optionally writing a TensorBoard event log.
/// </summary>
public static class EcgExperiment
{
    /// <summary>The model a configuration describes, for records of <paramref name="length"/> samples, on its device.</summary>
    public static nn.Module<Tensor, Tensor> CreateModel(EcgRunConfig c, int length)
    {
        c.Validate();
        // Initialised on the CPU and then moved, so a seed gives the same weights on every device.
        nn.Module<Tensor, Tensor> model = c.Model == "mlp"
            ? Mlp.Create(new[] { length, c.Hidden, c.Outputs }, c.Activation)
            : new StridedConvNet(c.Outputs, output: c.Activation);
        return model.On(Placement.Resolve(c.Device));
    }

    /// <summary>The optimiser a configuration names, over <paramref name="model"/>'s parameters.</summary>
    static optim.Optimizer CreateOptimizer(EcgRunConfig c, nn.Module<Tensor, Tensor> model) =>
        Optimizers.Create(c.Optimizer, model.parameters(), c.LearningRate);

    /// <summary>The loss a configuration names, taking (model outputs, class-index targets).</summary>
    public static Func<Tensor, Tensor, Tensor> CreateLoss(string loss) => loss switch
    {
        "ce" => (o, y) => nn.functional.cross_entropy(o, y),
        "ce-onehot" => (o, y) => -(nn.functional.one_hot(y, o.shape[1]).to_type(o.dtype) * nn.functional.log_softmax(o, 1)).sum(1).mean(),
        "bce" => (o, y) => nn.functional.binary_cross_entropy_with_logits(o.squeeze(1), y.to_type(o.dtype)),
        _ => throw new ArgumentException($"unknown loss '{loss}': use ce, ce-onehot or bce"),
    };

    /// <summary>Named data sets as a table: records, samples per record, AF records and the mean level (mV, 4 decimals).</summary>
    public static DataFrame DataTable(IEnumerable<(string Name, EcgSet Set)> sets)
    {
        var list = sets.ToList();
        return new DataFrame(
            new StringDataFrameColumn("set", list.Select(s => s.Name)),
            new Int64DataFrameColumn("records", list.Select(s => s.Set.Count)),
            new Int64DataFrameColumn("samples", list.Select(s => s.Set.Length)),
            new Int64DataFrameColumn("AF", list.Select(s => s.Set.AfCount)),
            new DoubleDataFrameColumn("mean (mV)", list.Select(s => Math.Round(s.Set.MeanMv, 4))));
    }

    /// <summary>
    /// The share of the records' mean square that their means (DC offsets) account for: mean over records of
    /// mean(x)², over the mean of x². 1: every record a constant; 0: every record zero-mean.
    /// </summary>
    public static double OffsetShare(EcgSet set)
    {
        using var scope = NewDisposeScope();
        var x = set.Signals.to_type(ScalarType.Float64);
        return x.mean(new long[] { 1 }).Squared().mean().item<double>() / x.Squared().mean().item<double>();
    }

    /// <summary>Predicted classes from outputs: argmax of two columns; a single column is class 1 above 0 (logit) or 0.5 (sigmoid).</summary>
    public static Tensor Predict(Tensor outputs, string activation) =>
        outputs.shape[1] == 1 ? outputs.squeeze(1).GreaterThan(activation == "sigmoid" ? 0.5 : 0.0).to_type(ScalarType.Int64) : outputs.argmax(1);

    /// <summary>
    /// Trains <paramref name="config"/> on <paramref name="train"/>, evaluating on <paramref name="eval"/>. Sets that are
    /// not on the config's device are copied there once for the run (hand over sets already there to skip the copy).
    /// </summary>
    public static EcgRun Run(EcgRunConfig config, EcgSet train, EcgSet eval, string? tensorBoardDir = null, IEnumerable<long>? keepOutputSteps = null) =>
        Prepare(config, train, eval, tensorBoardDir, keepOutputSteps)();

    /// <summary>
    /// <see cref="Run"/> in two halves: this builds the run (reseeds, draws the weights from the global seed, copies the
    /// sets to the device if needed) and returns the training, which draws only from the run's own batch-order
    /// generator, so runs built one after another can train side by side (<see cref="ConcurrentRuns"/>) with the
    /// numbers they have alone.
    /// </summary>
    public static Func<EcgRun> Prepare(EcgRunConfig config, EcgSet train, EcgSet eval, string? tensorBoardDir = null, IEnumerable<long>? keepOutputSteps = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        if (train.Length != eval.Length) throw new ArgumentException($"training records have {train.Length} samples, evaluation records {eval.Length}");
        var device = Placement.Resolve(config.Device);
        var trainOn = train.To(device);
        var evalOn = eval.To(device);
        TorchEnvironment.Reseed(config.Seed);
        var model = CreateModel(config with { Device = device }, (int)train.Length);
        return () =>
        {
            try
            {
                return Train(config, trainOn, evalOn, model, tensorBoardDir, keepOutputSteps);
            }
            finally
            {
                if (!ReferenceEquals(trainOn, train)) trainOn.Dispose();
                if (!ReferenceEquals(evalOn, eval)) evalOn.Dispose();
            }
        };
    }

    static EcgRun Train(EcgRunConfig config, EcgSet train, EcgSet eval, nn.Module<Tensor, Tensor> model, string? tensorBoardDir,
        IEnumerable<long>? keepOutputSteps)
    {
        var watch = Stopwatch.StartNew();
        var optimizer = CreateOptimizer(config, model);
        var lossFn = CreateLoss(config.Loss);
        // The checks count classes and the confusion matrix reads predictions on the CPU.
        var evalLabels = eval.Labels.On(CPU);
        var loop = new TrainingLoop(model, optimizer, lossFn, config.Name);
        var run = new EcgRun
        {
            Config = config, History = loop.History,
            Gradients = new GradientNorms().AttachTo(loop),
            Saturation = new OutputSaturation(keepSteps: keepOutputSteps).AttachTo(loop),
            Checks = new Check[] { new ProbabilitiesIntoLogitsLoss(), new SaturatedOutputs(), new FrozenLoss(), new LossAtAnalyticFloor() },
        };
        var intoLogits = (ProbabilitiesIntoLogitsLoss)run.Checks[0];
        var saturated = (SaturatedOutputs)run.Checks[1];
        var frozen = (FrozenLoss)run.Checks[2];
        var floor = (LossAtAnalyticFloor)run.Checks[3];
        loop.AfterBackward += ctx =>
        {
            intoLogits.Observe(ctx);
            saturated.Observe(ctx.Step, ctx.Logged["saturated_fraction"]);
        };
        var board = tensorBoardDir != null ? new TensorBoardLog(tensorBoardDir, histogramEvery: 5).AttachTo(loop) : null;
        board?.Text("config", config.ToString());

        var generator = new Generator((ulong)config.Seed);
        long step = 0;
        while (step < config.Steps)
        {
            using var epochScope = NewDisposeScope();
            foreach (var (x, y) in train.Batches(config.BatchSize, shuffle: true, generator, config.Standardize, dropLast: true))
            {
                using var scope = NewDisposeScope();
                loop.Step(x, y);
                step++;
                if (step % config.EvaluateEvery == 0 || step == config.Steps)
                {
                    var (loss, accuracy, _) = Evaluate(run, model, eval, evalLabels, lossFn, final: step == config.Steps);
                    run.EvalSteps.Add(step - 1);
                    run.EvalLosses.Add(loss);
                    run.EvalAccuracies.Add(accuracy);
                    frozen.Observe(step - 1, loss);
                    floor.Observe(step - 1, loss, evalLabels);
                    board?.Scalar("eval/loss", loss, step - 1);
                    board?.Scalar("eval/accuracy", accuracy, step - 1);
                }
                if (step >= config.Steps) break;
            }
        }
        run.Seconds = watch.Elapsed.TotalSeconds;
        // the run keeps numbers, not the model: free its weights and optimiser state now (an MLP on 60,000-sample
        // records holds hundreds of MB in native memory, which the .NET GC neither sees nor hurries to release)
        optimizer.Dispose();
        model.Dispose();
        return run;
    }

    static (float Loss, double Accuracy, ConfusionMatrix Confusion) Evaluate(EcgRun run, nn.Module<Tensor, Tensor> model, EcgSet eval,
        Tensor labelsOnCpu, Func<Tensor, Tensor, Tensor> lossFn, bool final)
    {
        using var ledger = Results.RunLedger.Time(Results.RunLedger.Evaluation);
        model.eval();
        try
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            // One batch: the loss is then exactly libtorch's float32 mean over the set (comparable to analytic values).
            var x = run.Config.Standardize ? EcgSet.Standardize(eval.Signals) : eval.Signals;
            var outputs = model.call(x);
            float loss = lossFn(outputs, eval.Labels).item<float>();
            var confusion = ConfusionMatrix.Compute(Predict(outputs, run.Config.Activation).On(CPU), labelsOnCpu, 2, EcgSet.ClassNames);
            if (final)
            {
                run.Confusion = confusion;
                var o = outputs.to_type(ScalarType.Float32).On(CPU).contiguous();
                var flat = o.data<float>().ToArray();  // host: o was copied to the CPU just above
                int width = (int)o.shape[1];
                run.FinalOutputs = Enumerable.Range(0, (int)o.shape[0]).Select(i => flat.AsSpan(i * width, width).ToArray()).ToArray();
            }
            return (loss, confusion.Accuracy, confusion);
        }
        finally
        {
            model.train();
        }
    }

    /// <summary>
    /// One optimizer step at each record length, on small sets (<paramref name="records"/> records each, one batch):
    /// how far the first layer's pre-activations move, next to lr·L·mean(x). The model and the batch are on the
    /// config's device.
    /// </summary>
    public static PreActivationSweep FirstStepSweep(IEnumerable<int> lengths, EcgRunConfig config, EcgOptions data, int records = 64)
    {
        config.Validate();
        if (config.Model != "mlp") throw new ArgumentException("the sweep measures the MLP's layers fc1 and fc2; use model mlp");
        var device = Placement.Resolve(config.Device);
        var rows = new List<PreActivationRow>();
        foreach (int length in lengths)
        {
            using var set = EcgGenerator.Generate(data with { Length = length, Records = records, AfCount = null });
            TorchEnvironment.Reseed(config.Seed);
            using var model = (TorchSharp.Modules.Sequential)CreateModel(config with { Device = device }, length);
            using var optimizer = CreateOptimizer(config, model);   // freed each length: native memory the GC does not see
            var loop = new TrainingLoop(model, optimizer, CreateLoss(config.Loss));
            using var scope = NewDisposeScope();
            var x = set.Signals.narrow(0, 0, Math.Min(config.BatchSize, records)).On(device);
            if (config.Standardize) x = EcgSet.Standardize(x);
            var y = set.Labels.narrow(0, 0, x.shape[0]).On(device);
            var before = PreActivations.Of(model, x);
            loop.Step(x, y);
            var after = PreActivations.Of(model, x);
            double shift = (after["fc1"] - before["fc1"]).abs().max().item<float>();
            double sat;
            using (no_grad()) sat = OutputSaturation.Measure(model.call(x)).Saturated;
            double mean = x.mean().item<float>();
            rows.Add(new PreActivationRow(length, mean, config.LearningRate * length * mean, shift,
                before["fc2"].abs().max().item<float>(), after["fc2"].abs().max().item<float>(), sat));
        }
        return new PreActivationSweep(rows);
    }
}
