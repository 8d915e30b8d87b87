using static TorchSharp.torch;

namespace TrainingForensics.Clinic;

/// <summary>What an evaluation callback sees.</summary>
public sealed class ClinicEvaluation
{
    public required nn.Module<Tensor, Tensor> Model { get; init; }
    /// <summary>The device the model and its training data are on: evaluation data goes there too.</summary>
    public required Device Device { get; init; }
    public required long Step { get; init; }
    /// <summary>Wraps a metric so the doctor sees its inputs (identity when uninstrumented).</summary>
    public required Func<Func<Tensor, Tensor, double>, Func<Tensor, Tensor, double>> Metric { get; init; }
    /// <summary>Wraps a validation loss so the doctor compares it with the training loss (identity when uninstrumented).</summary>
    public required Func<Func<Tensor, Tensor, Tensor>, Func<Tensor, Tensor, Tensor>> ValidationLoss { get; init; }
}
