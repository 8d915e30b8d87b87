using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TrainingForensics.Training;

/// <summary>
/// The optimisers a reader would try, by name — one factory for the case studies, the clinic and the notebooks'
/// <c>optimizer</c> parameters. Every name keeps TorchSharp's defaults for what it does not set (Adam's betas
/// 0.9/0.999 and ε 1e-8, RMSprop's α 0.99 and ε 1e-8, no dampening or Nesterov), so a run built here is the same run,
/// step for step, as one built with <c>optim.SGD/Adam/AdamW/RMSProp</c> and the same settings — bit for bit: they are
/// TorchSharp's optimisers with the step rewritten to hold its Scalars through each call (HeldScalarOptimizers.cs).
/// Adam and AdamW step CPU float32 weights in one pass over their memory with the same numbers (FusedAdam.cs: about
/// half the time of the operations on notebook 02's MLP; it checks itself against them once per process).
/// </summary>
/// <remarks>
/// Weight decay: <c>adamw</c> decays decoupled (w ← w − lr·λ·w, beside the Adam step); every other name adds
/// coupled L2 to the gradient (g ← g + λ·w), which Adam and RMSprop then rescale per weight.
/// </remarks>
public static class Optimizers
{
    /// <summary>The valid names: plain SGD, SGD with momentum (0.9 unless set), Adam, AdamW, RMSprop.</summary>
    public static IReadOnlyList<string> Names { get; } = new[] { "sgd", "sgd-momentum", "adam", "adamw", "rmsprop" };

    /// <summary>The momentum of <c>sgd-momentum</c> when none is given.</summary>
    public const double DefaultSgdMomentum = 0.9;

    /// <summary>
    /// The optimiser <paramref name="name"/> over <paramref name="parameters"/>, with one weight decay for all.
    /// <paramref name="momentum"/>: SGD's or RMSprop's momentum (null: 0.9 for <c>sgd-momentum</c>, 0 for the others);
    /// Adam and AdamW have none (their β₁ plays that part) and refuse one.
    /// </summary>
    public static optim.Optimizer Create(string name, IEnumerable<Parameter> parameters, double learningRate,
        double weightDecay = 0, double? momentum = null)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        return Create(name, new[] { (parameters, weightDecay) }, learningRate, momentum);
    }

    /// <summary>
    /// The optimiser <paramref name="name"/> over groups of parameters that each have their own weight decay (e.g.
    /// decay on the convolution weights only, as TF-slim scopes it). Empty groups are left out.
    /// </summary>
    public static optim.Optimizer Create(string name, IEnumerable<(IEnumerable<Parameter> Parameters, double WeightDecay)> groups,
        double learningRate, double? momentum = null)
    {
        ArgumentNullException.ThrowIfNull(groups);
        string key = Validate(name);
        if (!(learningRate > 0 && double.IsFinite(learningRate))) throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "the learning rate must be a positive finite number");
        var list = groups.Select(g => (Parameters: g.Parameters.ToList(), g.WeightDecay)).Where(g => g.Parameters.Count > 0).ToList();
        if (list.Count == 0) throw new ArgumentException("no parameters to optimise", nameof(groups));
        foreach (var g in list)
            if (!(g.WeightDecay >= 0)) throw new ArgumentOutOfRangeException(nameof(groups), g.WeightDecay, "weight decay cannot be negative");
        double lr = learningRate;
        switch (key)
        {
            case "sgd":
            case "sgd-momentum":
            {
                double m = Momentum(key, momentum, key == "sgd-momentum" ? DefaultSgdMomentum : 0);
                if (key == "sgd-momentum" && !(m > 0)) throw new ArgumentOutOfRangeException(nameof(momentum), m, "sgd-momentum needs a momentum above 0 (use sgd for none)");
                return new HeldScalarSGD(list.Select(g => new SGD.ParamGroup(g.Parameters, lr, momentum: m, weight_decay: g.WeightDecay)), lr);
            }
            case "adam":
                Momentum(key, momentum, 0);
                return new HeldScalarAdam(list.Select(g => new Adam.ParamGroup(g.Parameters, lr, weight_decay: g.WeightDecay)), lr);
            case "adamw":
                Momentum(key, momentum, 0);
                return new HeldScalarAdamW(list.Select(g => new AdamW.ParamGroup(g.Parameters, lr, weight_decay: g.WeightDecay)), lr);
            default: // rmsprop
            {
                double m = Momentum(key, momentum, 0);
                return new HeldScalarRMSProp(list.Select(g => new RMSProp.ParamGroup(g.Parameters, lr, momentum: m, weight_decay: g.WeightDecay)), lr);
            }
        }
    }

    /// <summary>The name in its canonical (lower-case) spelling; an unknown name throws, listing the valid ones.</summary>
    public static string Validate(string? name)
    {
        string key = name?.Trim().ToLowerInvariant() ?? "";
        if (!Names.Contains(key))
            throw new ArgumentException($"unknown optimizer '{name}': use {string.Join(", ", Names)}", nameof(name));
        return key;
    }

    static double Momentum(string key, double? requested, double fallback)
    {
        if (requested is not { } m) return fallback;
        if (key is "adam" or "adamw") throw new ArgumentException($"{key} takes no momentum (its beta1 plays that part): leave it unset", nameof(requested));
        if (!(m >= 0 && m < 1)) throw new ArgumentOutOfRangeException(nameof(requested), m, "momentum must be in [0, 1)");
        return m;
    }
}
