namespace TrainingForensics.Clinic;

/// <summary>How the doctor did on one clinic case (see <see cref="ClinicRunner.Score"/>).</summary>
public enum ClinicVerdict
{
    /// <summary>A bug case with a finding of a check meant for it (for a held-out bug: any finding).</summary>
    Found,
    /// <summary>A designed-for bug case found only by checks not meant for it.</summary>
    FoundByOtherCheck,
    /// <summary>A bug case without a finding.</summary>
    Missed,
    /// <summary>A healthy case without a finding.</summary>
    Quiet,
    /// <summary>A healthy case with a finding.</summary>
    FalseAlarm,
}

/// <summary>The verdicts as tables, JSON and reports write them.</summary>
public static class ClinicVerdictText
{
    /// <summary>"found", "found (other check)", "missed", "quiet" or "false alarm".</summary>
    public static string Text(this ClinicVerdict verdict) => verdict switch
    {
        ClinicVerdict.Found => "found",
        ClinicVerdict.FoundByOtherCheck => "found (other check)",
        ClinicVerdict.Missed => "missed",
        ClinicVerdict.Quiet => "quiet",
        ClinicVerdict.FalseAlarm => "false alarm",
        _ => throw new ArgumentOutOfRangeException(nameof(verdict), verdict, "not a clinic verdict"),
    };
}
