using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace TrainingForensics.Models;

/// <summary>Multi-layer perceptrons as the case studies use them: Linear layers with ReLU between, no output activation unless asked.</summary>
public static class Mlp
{
    /// <summary>
    /// Linear(sizes[0]→sizes[1]) → ReLU → … → Linear(→sizes[^1]), layers named fc1, fc2, … so probes can report
    /// them by name. <paramref name="output"/> optionally appends "sigmoid" or "softmax" (the case-study-1 bug).
    /// </summary>
    public static TorchSharp.Modules.Sequential Create(int[] sizes, string? output = null)
    {
        if (sizes is null || sizes.Length < 2) throw new ArgumentException("an MLP needs at least an input and an output size");
        if (sizes.Any(s => s <= 0)) throw new ArgumentException($"layer sizes must be positive: [{string.Join(", ", sizes)}]");
        var layers = new List<(string, Module<Tensor, Tensor>)>();
        for (int i = 0; i + 1 < sizes.Length; i++)
        {
            layers.Add(($"fc{i + 1}", Linear(sizes[i], sizes[i + 1])));
            if (i + 2 < sizes.Length) layers.Add(($"relu{i + 1}", ReLU()));
        }
        switch (output?.ToLowerInvariant())
        {
            case null or "" or "none": break;
            case "sigmoid": layers.Add(("sigmoid", Sigmoid())); break;
            case "softmax": layers.Add(("softmax", Softmax(1))); break;
            default: throw new ArgumentException($"unknown output activation '{output}': use none, sigmoid or softmax");
        }
        return Sequential(layers);
    }
}
