using TrainingForensics.Training;
using static TorchSharp.torch;

namespace TrainingForensics.Diagnostics.Doctor;

/// <summary>
/// Cadence and thresholds of the <see cref="TrainingDoctor"/>. Thresholds are global (the same for every model);
/// where a published tool uses a value, the default is that value (AutoTrainer's vanishing-gradient rule, the 0.7
/// zero fraction for dying ReLUs, TheDeepChecker's 0.5 relative train/eval gap).
/// </summary>
public sealed record DoctorOptions
{
    /// <summary>Gradient, weight, output and probe-loss detectors run every this many steps (cheap default).</summary>
    public int Every { get; init; } = 50;
    /// <summary>BatchNorm statistics and the train/eval gap on the probe batch, every this many steps.</summary>
    public int BatchNormEvery { get; init; } = 100;
    /// <summary>Consecutive measurements a detector must see before it fires (guards against one noisy batch).</summary>
    public int Patience { get; init; } = 3;
    /// <summary>Examples of the first training batch kept as the fixed probe batch (copied, never trained on twice).</summary>
    public int ProbeSize { get; init; } = 32;
    /// <summary>A probe batch of your own (inputs), instead of the first training batch.</summary>
    public Tensor? ProbeInputs { get; init; }
    /// <summary>Targets of <see cref="ProbeInputs"/>.</summary>
    public Tensor? ProbeTargets { get; init; }
    /// <summary>The training loss function, when it is not given through <see cref="TrainingDoctor.Loss"/> or a TrainingLoop.</summary>
    public Func<Tensor, Tensor, Tensor>? LossFunction { get; init; }
    /// <summary>Whether the loss expects logits (softmax cross-entropy, BCE-with-logits); null = find out from the loss function.</summary>
    public bool? LogitsLoss { get; init; }
    /// <summary>The reduction a squared-error loss is meant to have (null: do not check the loss scale).</summary>
    public Reduction? ExpectedReduction { get; init; } = Reduction.SumOverBatch;

    public double VanishingRatio { get; init; } = 1e-3;
    public double VanishingFirstNorm { get; init; } = 1e-4;
    public double ExplodingFactor { get; init; } = 100;
    public double DeadReluFraction { get; init; } = 0.7;
    public double UpdateRatioLow { get; init; } = 1e-7;
    public double UpdateRatioHigh { get; init; } = 1.0;
    public double SaturatedFraction { get; init; } = 0.99;
    public double DivergenceFactor { get; init; } = 2;
    public double RelativeGapThreshold { get; init; } = 0.5;

    /// <summary>
    /// Every detector at every step (for short runs and tests), on a 12-example probe batch: the probe-batch forward
    /// passes are most of the per-step cost, and a measurement every step needs fewer examples to be steady. The clinic
    /// finds the same bugs at the same steps with 12 as with 16 and raises no false alarm; with 8 its healthy Adam MLP
    /// raised one (docs/benchmarks.md has the detection table at this cadence).
    /// </summary>
    public static DoctorOptions EveryStep => new() { Every = 1, BatchNormEvery = 1, ProbeSize = 12 };

    internal void Validate()
    {
        if (Every < 1) throw new ArgumentOutOfRangeException(nameof(Every), Every, "cadence must be at least 1 step");
        if (BatchNormEvery < 1) throw new ArgumentOutOfRangeException(nameof(BatchNormEvery), BatchNormEvery, "cadence must be at least 1 step");
        if (Patience < 1) throw new ArgumentOutOfRangeException(nameof(Patience), Patience, "patience must be at least 1 measurement");
        if (ProbeSize < 2) throw new ArgumentOutOfRangeException(nameof(ProbeSize), ProbeSize, "the probe batch needs at least 2 examples (batch statistics)");
        if ((ProbeInputs is null) != (ProbeTargets is null)) throw new ArgumentException("give both ProbeInputs and ProbeTargets, or neither");
        if (ExpectedReduction == Reduction.None) throw new ArgumentException("the expected reduction must produce a single number (or be null)");
    }
}
