namespace TrainingForensics.CaseStudies.BatchNormTrainVsEval;

/// <summary>
/// Claims that describe one setup (the notebook's defaults, the report's broken configuration) and would be wrong
/// under a reader's variation: they run when the setup applies, and otherwise a line says which claims were skipped
/// and why — the run completes, and nothing is skipped silently.
/// </summary>
public static class SetupClaims
{
    /// <summary>Runs <paramref name="claims"/> when <paramref name="applies"/>; else prints that <paramref name="what"/> was skipped because of <paramref name="because"/>.</summary>
    public static void When(bool applies, string what, string because, Action claims)
    {
        ArgumentNullException.ThrowIfNull(claims);
        if (applies) claims();
        else Console.WriteLine($"– skipped: {what} (they hold for {because}; this run differs)");
    }
}
