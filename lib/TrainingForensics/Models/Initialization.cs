using TorchSharp;
using static TorchSharp.torch;

namespace TrainingForensics.Models;

/// <summary>
/// Weight initialisations by name, so runs can be compared under the same scheme as another framework.
/// TorchSharp's Linear starts from U(−1/√fan_in, 1/√fan_in) for weights and biases ("torch"); Keras' Dense starts
/// from Glorot-uniform weights, U(−√(6/(fan_in+fan_out)), +…), and zero biases ("glorot").
/// </summary>
public static class Initialization
{
    /// <summary>The names <see cref="Apply"/> accepts.</summary>
    public static IReadOnlyList<string> Schemes { get; } = new[] { "torch", "glorot" };

    /// <summary>Glorot/Xavier-uniform bound √(6/(fan_in+fan_out)).</summary>
    public static double GlorotBound(long fanIn, long fanOut)
    {
        if (fanIn <= 0 || fanOut <= 0) throw new ArgumentOutOfRangeException(nameof(fanIn), $"fan-in ({fanIn}) and fan-out ({fanOut}) must be positive");
        return Math.Sqrt(6.0 / (fanIn + fanOut));
    }

    /// <summary>
    /// Re-initialises every Linear layer of <paramref name="module"/>: Glorot-uniform weights, zero biases.
    /// Draws from <paramref name="generator"/> (or torch's seeded global generator). Returns the module.
    /// </summary>
    public static T GlorotUniform<T>(T module, Generator? generator = null) where T : nn.Module
    {
        int n = 0;
        using (no_grad())
            foreach (var (_, m) in module.named_modules())
            {
                if (m is not TorchSharp.Modules.Linear linear) continue;
                var w = linear.weight ?? throw new InvalidOperationException("a Linear layer without weights");
                long fanOut = w.shape[0], fanIn = w.shape[1];
                double a = GlorotBound(fanIn, fanOut);
                w.uniform_(-a, a, generator);
                linear.bias?.zero_();
                n++;
            }
        if (n == 0) throw new ArgumentException($"{module.GetType().Name} has no Linear layers to initialise");
        return module;
    }

    /// <summary>Applies a scheme by name: "torch" (leave TorchSharp's default) or "glorot".</summary>
    public static T Apply<T>(T module, string scheme, Generator? generator = null) where T : nn.Module =>
        (scheme ?? "").Trim().ToLowerInvariant() switch
        {
            "torch" or "default" => module,
            "glorot" or "glorot-uniform" or "xavier" => GlorotUniform(module, generator),
            _ => throw new ArgumentException($"unknown initialisation '{scheme}': use {string.Join(" or ", Schemes)}", nameof(scheme)),
        };
}
