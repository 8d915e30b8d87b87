using System.Text;
using System.Text.Json;
using Microsoft.Data.Analysis;

namespace TrainingForensics.Diagnostics;

/// <summary>
/// What a check concluded: which check, the first step it fired, a one-line explanation, the numbers behind it,
/// the suggested fix and the notebook that teaches the bug.
/// </summary>
public sealed record Finding(
    string Check,
    long FirstStep,
    string Summary,
    IReadOnlyDictionary<string, double> Evidence,
    string Fix,
    string Notebook);

/// <summary>
/// Base of the reusable checks. A check looks at what a run produces (losses, outputs, gradients, BN statistics)
/// and fires at most once per run: the first step matters, later repeats add nothing.
/// </summary>
public abstract class Check
{
    /// <summary>Short identifier, e.g. "frozen-loss".</summary>
    public abstract string Name { get; }

    /// <summary>The finding, once the check fired (null while healthy).</summary>
    public Finding? Finding { get; private set; }

    public bool Fired => Finding != null;

    /// <summary>Records the finding if this is the first time the check fires; returns whether it fired now.</summary>
    protected bool Fire(long step, string summary, IReadOnlyDictionary<string, double> evidence, string fix, string notebook)
    {
        if (Finding != null) return false;
        Finding = new Finding(Name, step, summary, evidence, fix, notebook);
        return true;
    }

    /// <summary>Forgets the finding (to reuse the check on another run).</summary>
    public virtual void Reset() => Finding = null;
}

/// <summary>Findings of several checks, readable as a table, text or JSON.</summary>
public sealed class DiagnosisReport
{
    public IReadOnlyList<Finding> Findings { get; }
    public IReadOnlyList<string> ChecksRun { get; }

    public DiagnosisReport(IEnumerable<Check> checks)
    {
        var list = checks.ToList();
        ChecksRun = list.Select(c => c.Name).ToList();
        Findings = list.Where(c => c.Fired).Select(c => c.Finding!).OrderBy(f => f.FirstStep).ToList();
    }

    public bool Healthy => Findings.Count == 0;

    public DataFrame ToDataFrame() => new(
        new StringDataFrameColumn("check", Findings.Select(f => f.Check)),
        new Int64DataFrameColumn("first_step", Findings.Select(f => f.FirstStep)),
        new StringDataFrameColumn("finding", Findings.Select(f => f.Summary)),
        new StringDataFrameColumn("evidence", Findings.Select(EvidenceText)),
        new StringDataFrameColumn("fix", Findings.Select(f => f.Fix)),
        new StringDataFrameColumn("notebook", Findings.Select(f => f.Notebook)));

    // a static check (read from the model's structure) has no measured numbers: say so instead of an empty line
    static string EvidenceText(Finding f) => f.Evidence.Count == 0
        ? "the model's structure (a static check: nothing measured)"
        : string.Join("; ", f.Evidence.Select(e => $"{e.Key}={e.Value:G6}"));

    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.AppendLine(Healthy ? $"No findings ({ChecksRun.Count} checks: {string.Join(", ", ChecksRun)})" : $"{Findings.Count} finding(s) from {ChecksRun.Count} checks:");
        foreach (var f in Findings)
        {
            sb.AppendLine($"- [{f.Check}] step {f.FirstStep}: {f.Summary}");
            sb.AppendLine($"    evidence: {EvidenceText(f)}");
            sb.AppendLine($"    fix: {f.Fix} (see {f.Notebook})");
        }
        return sb.ToString();
    }

    public string ToJson() => JsonSerializer.Serialize(new { checks = ChecksRun, findings = Findings }, new JsonSerializerOptions { WriteIndented = true });
}
