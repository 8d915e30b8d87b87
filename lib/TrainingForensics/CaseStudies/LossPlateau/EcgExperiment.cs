using System.Diagnostics;
using TorchSharp;
using TrainingForensics.Data;
using TrainingForensics.Diagnostics;
using TrainingForensics.Metrics;
using TrainingForensics.Models;
using TrainingForensics.Probes;
using TrainingForensics.Training;
using static TorchSharp.torch;

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
    /// <summary>"adam" or "sgd".</summary>
    public string Optimizer { get; init; } = "adam";
    public double LearningRate { get; init; } = 1e-3;
    public int BatchSize { get; init; } = 32;
    public int Steps { get; init; } = 50;
    /// <summary>Evaluate on the evaluation set every this many steps (and after the last step).</summary>
    public int EvaluateEvery { get; init; } = 1;
    public int Hidden { get; init; } = 32;
    /// <summary>Seeds the weights and the batch order.</summary>
    public int Seed { get; init; } = 42;

    public int Outputs => Loss == "bce" ? 1 : 2;

    internal void Validate()
    {
        if (Model is not ("mlp" or "cnn")) throw new ArgumentException($"unknown model '{Model}': use mlp or cnn");
        if (Activation is not ("none" or "sigmoid" or "softmax")) throw new ArgumentException($"unknown activation '{Activation}': use none, sigmoid or softmax");
        if (Loss is not ("ce" or "ce-onehot" or "bce")) throw new ArgumentException($"unknown loss '{Loss}': use ce, ce-onehot or bce");
        if (Loss == "bce" && Activation == "softmax") throw new ArgumentException("a softmax over a single output is always 1: use sigmoid or none with the bce loss");
        if (Optimizer is not ("adam" or "sgd")) throw new ArgumentException($"unknown optimizer '{Optimizer}': use adam or sgd");
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
    /// <summary>The model a configuration describes, for records of <paramref name="length"/> samples.</summary>
    public static nn.Module<Tensor, Tensor> CreateModel(EcgRunConfig c, int length)
    {
        c.Validate();
        return c.Model == "mlp"
            ? Mlp.Create(new[] { length, c.Hidden, c.Outputs }, c.Activation)
            : new StridedConvNet(c.Outputs, output: c.Activation);
    }

    /// <summary>The loss a configuration names, taking (model outputs, class-index targets).</summary>
    public static Func<Tensor, Tensor, Tensor> CreateLoss(string loss) => loss switch
    {
        "ce" => (o, y) => nn.functional.cross_entropy(o, y),
        "ce-onehot" => (o, y) => -(nn.functional.one_hot(y, o.shape[1]).to_type(o.dtype) * nn.functional.log_softmax(o, 1)).sum(1).mean(),
        "bce" => (o, y) => nn.functional.binary_cross_entropy_with_logits(o.squeeze(1), y.to_type(o.dtype)),
        _ => throw new ArgumentException($"unknown loss '{loss}': use ce, ce-onehot or bce"),
    };

    /// <summary>Predicted classes from outputs: argmax of two columns; a single column is class 1 above 0 (logit) or 0.5 (sigmoid).</summary>
    public static Tensor Predict(Tensor outputs, string activation) =>
        outputs.shape[1] == 1 ? outputs.squeeze(1).gt(activation == "sigmoid" ? 0.5 : 0.0).to_type(ScalarType.Int64) : outputs.argmax(1);

    public static EcgRun Run(EcgRunConfig config, EcgSet train, EcgSet eval, string? tensorBoardDir = null, IEnumerable<long>? keepOutputSteps = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        if (train.Length != eval.Length) throw new ArgumentException($"training records have {train.Length} samples, evaluation records {eval.Length}");
        var watch = Stopwatch.StartNew();
        Setup.TorchEnvironment.Reseed(config.Seed);
        var model = CreateModel(config, (int)train.Length);
        var optimizer = config.Optimizer == "adam"
            ? (optim.Optimizer)optim.Adam(model.parameters(), config.LearningRate)
            : optim.SGD(model.parameters(), config.LearningRate);
        var lossFn = CreateLoss(config.Loss);
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
                    var (loss, accuracy, _) = Evaluate(run, model, eval, lossFn, final: step == config.Steps);
                    run.EvalSteps.Add(step - 1);
                    run.EvalLosses.Add(loss);
                    run.EvalAccuracies.Add(accuracy);
                    frozen.Observe(step - 1, loss);
                    floor.Observe(step - 1, loss, eval.Labels);
                    board?.Scalar("eval/loss", loss, step - 1);
                    board?.Scalar("eval/accuracy", accuracy, step - 1);
                }
                if (step >= config.Steps) break;
            }
        }
        run.Seconds = watch.Elapsed.TotalSeconds;
        return run;
    }

    static (float Loss, double Accuracy, ConfusionMatrix Confusion) Evaluate(EcgRun run, nn.Module<Tensor, Tensor> model, EcgSet eval,
        Func<Tensor, Tensor, Tensor> lossFn, bool final)
    {
        model.eval();
        try
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            // One batch: the loss is then exactly libtorch's float32 mean over the set (comparable to analytic values).
            var x = run.Config.Standardize ? EcgSet.Standardize(eval.Signals) : eval.Signals;
            var outputs = model.call(x);
            float loss = lossFn(outputs, eval.Labels).item<float>();
            var confusion = ConfusionMatrix.Compute(Predict(outputs, run.Config.Activation), eval.Labels, 2, EcgSet.ClassNames);
            if (final)
            {
                run.Confusion = confusion;
                var o = outputs.to_type(ScalarType.Float32).contiguous();
                var flat = o.data<float>().ToArray();
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
    /// One row of the pre-activation sweep: after a single optimizer step, how large the first layer's and the
    /// output layer's pre-activations are, next to the prediction lr·L·mean(x) (Adam moves every weight by ~lr,
    /// and with a DC offset the inputs share one sign, so a first-layer unit shifts by ~lr·Σx).
    /// </summary>
    /// <param name="Fc1Shift">Largest change of a first-layer pre-activation caused by the step, max |fc1(x)after − fc1(x)before|.</param>
    /// <param name="OutputAfter">Largest |output-layer pre-activation| (the value the sigmoid/softmax squashes) after the step.</param>
    /// <param name="SaturatedAfter">Fraction of saturated outputs after the step.</param>
    public sealed record PreActivationRow(int Length, double MeanInput, double PredictedShift, double Fc1Shift,
        double OutputBefore, double OutputAfter, double SaturatedAfter);

    /// <summary>Runs the sweep for each record length (small sets: <paramref name="records"/> records each, one batch, one step).</summary>
    public static IReadOnlyList<PreActivationRow> FirstStepSweep(IEnumerable<int> lengths, EcgRunConfig config, EcgOptions data, int records = 64)
    {
        config.Validate();
        if (config.Model != "mlp") throw new ArgumentException("the sweep measures the MLP's layers fc1 and fc2; use model mlp");
        var rows = new List<PreActivationRow>();
        foreach (int length in lengths)
        {
            using var set = EcgGenerator.Generate(data with { Length = length, Records = records, AfCount = null });
            Setup.TorchEnvironment.Reseed(config.Seed);
            var model = (TorchSharp.Modules.Sequential)CreateModel(config, length);
            var optimizer = config.Optimizer == "adam" ? (optim.Optimizer)optim.Adam(model.parameters(), config.LearningRate) : optim.SGD(model.parameters(), config.LearningRate);
            var loop = new TrainingLoop(model, optimizer, CreateLoss(config.Loss));
            using var scope = NewDisposeScope();
            var x = set.Signals.narrow(0, 0, Math.Min(config.BatchSize, records));
            if (config.Standardize) x = EcgSet.Standardize(x);
            var y = set.Labels.narrow(0, 0, x.shape[0]);
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
        return rows;
    }
}
