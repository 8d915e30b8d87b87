using System.Globalization;
using TrainingForensics.Results;

namespace TrainingForensics.Clinic;

/// <summary>
/// The clinic's score in three numbers per group: designed-for bugs found by a check meant for them, false alarms
/// on healthy baselines, held-out bugs found at all.
/// </summary>
public sealed record ClinicTally(int Designed, int DesignedFound, int Healthy, int FalseAlarms, int HeldOut, int HeldOutFound)
{
    public static ClinicTally Of(ClinicReport report) => new(
        report.Results.Count(r => r.Case.Group == ClinicGroup.DesignedBug), report.Count(ClinicGroup.DesignedBug, ClinicVerdict.Found),
        report.Results.Count(r => r.Case.Group == ClinicGroup.Healthy), report.Count(ClinicGroup.Healthy, ClinicVerdict.FalseAlarm),
        report.Results.Count(r => r.Case.Group == ClinicGroup.HeldOutBug), report.Count(ClinicGroup.HeldOutBug, ClinicVerdict.Found));

    /// <summary>Records the six counts as the notebook's figures (clinic_designed_found, …).</summary>
    public void Record()
    {
        Figures.Record("clinic_designed_found", (long)DesignedFound, "cases"); Figures.Record("clinic_designed_cases", (long)Designed, "cases");
        Figures.Record("clinic_false_alarms", (long)FalseAlarms, "cases"); Figures.Record("clinic_healthy_cases", (long)Healthy, "cases");
        Figures.Record("clinic_heldout_found", (long)HeldOutFound, "cases"); Figures.Record("clinic_heldout_cases", (long)HeldOut, "cases");
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"designed-for: {DesignedFound}/{Designed} found; healthy: {FalseAlarms}/{Healthy} false alarms; held-out: {HeldOutFound}/{HeldOut} found");
}
