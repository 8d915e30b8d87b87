using static TorchSharp.torch.nn;

namespace TrainingForensics.Models;

/// <summary>Sizes of any TorchSharp module.</summary>
public static class ModuleSize
{
    /// <summary>Number of parameters (every tensor <c>parameters()</c> yields, trainable or frozen).</summary>
    public static long ParameterCount(this Module module) => module.parameters().Sum(p => p.numel());
}
