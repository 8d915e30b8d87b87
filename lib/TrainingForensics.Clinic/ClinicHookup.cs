namespace TrainingForensics.Clinic;

/// <summary>How a clinic case hooks the doctor into its training (each way a reader can).</summary>
public enum ClinicHookup
{
    /// <summary>The loss wrapped with <c>doctor.Loss</c>, then <c>doctor.Observe(step)</c> after backward.</summary>
    Wrap,
    /// <summary><c>doctor.Observe(step, outputs, targets, loss)</c> with the tensors: the doctor is not given the loss function.</summary>
    Observe,
    /// <summary>A <c>TrainingLoop</c> with <c>doctor.AttachTo(loop)</c>.</summary>
    Loop,
}
