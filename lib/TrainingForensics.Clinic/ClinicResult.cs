using TrainingForensics.Diagnostics.Doctor;

namespace TrainingForensics.Clinic;

/// <summary>One case's result.</summary>
public sealed record ClinicResult(ClinicCase Case, DoctorReport Report, ClinicVerdict Verdict, long? StepsToDetection, double Seconds, double FinalLoss)
{
    /// <summary>The case's group in words ("designed-for bug", "healthy", "held-out bug").</summary>
    public string Group => Case.Group.Text();
}
