namespace TrainingForensics.Clinic;

/// <summary>What a clinic case is: a bug the doctor was built for, a healthy baseline, or a bug it was not built around.</summary>
public enum ClinicGroup { DesignedBug, Healthy, HeldOutBug }

/// <summary>The groups as tables, JSON and reports name them.</summary>
public static class ClinicGroupText
{
    /// <summary>"designed-for bug", "healthy" or "held-out bug".</summary>
    public static string Text(this ClinicGroup group) => group switch
    {
        ClinicGroup.DesignedBug => "designed-for bug",
        ClinicGroup.Healthy => "healthy",
        ClinicGroup.HeldOutBug => "held-out bug",
        _ => throw new ArgumentOutOfRangeException(nameof(group), group, "not a clinic group"),
    };
}
