using static TorchSharp.torch;

namespace TrainingForensics.Clinic;

/// <summary>
/// What a case hands the training: the model, optimiser, loss, data, and optional evaluation, all on the device the
/// case was set up for. Everything is built from the seed, so an instrumented and an uninstrumented run see the same numbers.
/// </summary>
public sealed record ClinicSetup
{
    public required nn.Module<Tensor, Tensor> Model { get; init; }
    /// <summary>The optimiser of <see cref="Model"/>'s parameters (made after the model is on its device).</summary>
    public required optim.Optimizer Optimizer { get; init; }
    public required Func<Tensor, Tensor, Tensor> Loss { get; init; }
    /// <summary>Endless training batches (x, y); created inside the step's dispose scope.</summary>
    public required IEnumerable<(Tensor X, Tensor Y)> Batches { get; init; }
    /// <summary>Call optimizer.zero_grad() every step (false: the forgotten-zero_grad bug).</summary>
    public bool ZeroGrad { get; init; } = true;
    /// <summary>Evaluate every this many steps (0 = never).</summary>
    public int EvaluateEvery { get; init; }
    /// <summary>The evaluation: gets the model, the (possibly wrapped) metric and validation-loss wrappers.</summary>
    public Action<ClinicEvaluation>? Evaluate { get; init; }
    /// <summary>How the doctor is hooked up.</summary>
    public ClinicHookup Hookup { get; init; } = ClinicHookup.Wrap;
    /// <summary>Disposed after the run (data sets).</summary>
    public IDisposable? Owned { get; init; }
}
