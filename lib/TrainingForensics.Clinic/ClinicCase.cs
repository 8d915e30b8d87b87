using static TorchSharp.torch;

namespace TrainingForensics.Clinic;

/// <summary>One training configuration of the clinic.</summary>
/// <param name="Expected">Checks that count as finding the bug (empty for healthy cases and held-out bugs: any finding counts).</param>
/// <param name="Setup">Builds the training from a seed, on a device.</param>
public sealed record ClinicCase(string Name, ClinicGroup Group, string Source, string Description, int Steps,
    IReadOnlyList<string> Expected, Func<int, Device, ClinicSetup> Setup, bool Quick = false);
