using System.Globalization;
using TrainingForensics.Results;

namespace TrainingForensics.Runner;

/// <summary>
/// A workload's step time measured bare by the benchmark, outside any notebook: the same model, optimiser and batch
/// shape stepping on random data in a loop of its own — one run alone, and two copies side by side (one per core, as
/// the notebooks train their independent runs). Medians of the steps' own time, in seconds.
/// </summary>
public sealed record BareStepTime(double AloneSeconds, double SideBySideSeconds)
{
    /// <summary>
    /// Wall seconds of <paramref name="steps"/> at these rates when the runs trained <paramref name="concurrency"/> at
    /// once on average (clamped to 1–2): for a share f = k − 1 of the wall time two runs stepped, each at the
    /// side-by-side rate, and for the rest one run alone, so steps = W·(1 − f)/alone + W·2f/side-by-side.
    /// </summary>
    public double WallSeconds(long steps, double concurrency)
    {
        double f = Math.Clamp(concurrency, 1, 2) - 1;
        return steps / ((1 - f) / AloneSeconds + 2 * f / SideBySideSeconds);
    }
}

/// <summary>
/// One notebook's default run against its pure training cost: wall time, the training steps it ran × the bare step
/// time of each workload (model, optimiser and batch shape; <see cref="BareStepTime"/>, where the benchmark could
/// rebuild the workload, else the median step time in the run), and where the rest went (from the run's
/// <see cref="RunLedger"/>, NAME.ledger.json). The targets of issue 17: wall ≤ 1.3 × pure training + 10 s of fixed
/// start-up, and an absolute time per notebook on a quiet machine.
/// </summary>
public sealed record EfficiencyRow(string Notebook, double WallSeconds, LedgerSnapshot Ledger)
{
    /// <summary>Bare step times by workload key (empty: every workload uses its median step time in the run).</summary>
    public IReadOnlyDictionary<string, BareStepTime> Bare { get; init; } = new Dictionary<string, BareStepTime>();

    /// <summary>Fixed start-up the ratio target allows (process, Roslyn, references).</summary>
    public const double StartupAllowance = 10;
    /// <summary>Wall time the ratio target allows per second of pure training.</summary>
    public const double RatioAllowance = 1.3;

    /// <summary>
    /// Σ over workloads of their pure training wall seconds (<see cref="PureSecondsOf"/>): two runs at once on two
    /// cores take about half the wall time of their steps' thread time.
    /// </summary>
    public double PureTrainingSeconds => Ledger.Workloads.Sum(PureSecondsOf);
    /// <summary>
    /// A workload's steps at its bare step time with as many runs at once as it had (<see cref="BareStepTime.WallSeconds"/>),
    /// or, where it was not timed bare, steps × its median step time in the run ÷ the runs at once.
    /// </summary>
    public double PureSecondsOf(WorkloadSteps w) =>
        Bare.TryGetValue(w.Workload, out var b) ? b.WallSeconds(w.Steps, w.Concurrency) : w.PureTrainingSeconds;
    /// <summary>The share of the training steps whose workload was timed bare (the rest use their in-run median).</summary>
    public double BareShare => Ledger.TotalSteps > 0 ? (double)Ledger.Workloads.Where(w => Bare.ContainsKey(w.Workload)).Sum(w => w.Steps) / Ledger.TotalSteps : 0;
    /// <summary>The steps' own time as they ran (outliers and contention included), as wall seconds.</summary>
    public double TrainingAsRunSeconds => Ledger.WallSecondsOf(RunLedger.Training);
    /// <summary>How many runs trained at once, on average over the training (thread seconds ÷ wall seconds of the steps).</summary>
    public double Concurrency => TrainingAsRunSeconds > 0 ? Ledger.SecondsOf(RunLedger.Training) / TrainingAsRunSeconds : 1;
    /// <summary>Wall ÷ pure training (NaN when the notebook trains nothing).</summary>
    public double Ratio => PureTrainingSeconds > 0 ? WallSeconds / PureTrainingSeconds : double.NaN;
    /// <summary>What no category accounts for: start-up, cell code, output writing, waiting for the CPU (every category as wall seconds).</summary>
    public double OtherSeconds => WallSeconds - NotebookEfficiency.Categories.Sum(Ledger.WallSecondsOf);
    public double TargetSeconds => RatioAllowance * PureTrainingSeconds + StartupAllowance;
    public bool RatioTargetMet => WallSeconds <= TargetSeconds;
    /// <summary>The absolute target on a quiet machine (null: none set for this notebook).</summary>
    public double? AbsoluteTarget => NotebookEfficiency.AbsoluteTarget(Notebook);
    public bool? AbsoluteTargetMet => AbsoluteTarget is { } t ? WallSeconds <= t : null;
}

/// <summary>The benchmark's notebook-efficiency table (see <see cref="EfficiencyRow"/>).</summary>
public static class NotebookEfficiency
{
    /// <summary>The ledger's categories, in table order (training first).</summary>
    public static readonly IReadOnlyList<string> Categories =
        [RunLedger.Training, RunLedger.Evaluation, RunLedger.Probes, RunLedger.HostReads, RunLedger.Charts, RunLedger.Compile, RunLedger.DataLoading];

    /// <summary>Wall-time targets on a quiet machine, by notebook number (issue 17).</summary>
    static readonly Dictionary<string, double> Targets = new() { ["00"] = 10, ["01"] = 45, ["02"] = 150, ["03"] = 120, ["04"] = 45 };

    public static double? AbsoluteTarget(string notebook) =>
        notebook.Length >= 2 && Targets.TryGetValue(notebook[..2], out var t) ? t : null;

    /// <summary>The row of a notebook run by tf-run into <paramref name="outDir"/> (its NAME.ledger.json) that took <paramref name="wallSeconds"/>.</summary>
    public static EfficiencyRow Read(string notebook, double wallSeconds, string outDir)
    {
        string path = Path.Combine(outDir, notebook + ".ledger.json");
        if (!File.Exists(path)) throw new FileNotFoundException($"no ledger for {notebook} at {path}: did the run succeed (tf-run writes it beside the figures of a good run)?", path);
        return new EfficiencyRow(notebook, wallSeconds, LedgerSnapshot.FromJson(File.ReadAllText(path)));
    }

    static string F(double v, string format = "N1") => v.ToString(format, CultureInfo.InvariantCulture);

    /// <summary>The table as Markdown lines: header, separator, one row per notebook.</summary>
    public static IEnumerable<string> Table(IReadOnlyList<EfficiencyRow> rows)
    {
        yield return "| notebook | wall s | steps | runs at once | pure training s | steps timed bare | steps as run s | evaluation s | probes s | host reads s | charts s | compile s | data loading s | other s | wall ÷ pure | ≤ 1.3 × pure + 10 s | absolute target |";
        yield return "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|";
        foreach (var r in rows)
        {
            var l = r.Ledger;
            string absolute = r.AbsoluteTarget is { } t ? $"{(r.AbsoluteTargetMet == true ? "pass" : "FAIL")} (≤ {F(t, "N0")} s)" : "—";
            yield return $"| {r.Notebook} | {F(r.WallSeconds)} | {l.TotalSteps.ToString("N0", CultureInfo.InvariantCulture)} | {F(r.Concurrency, "N2")} | {F(r.PureTrainingSeconds)} | {F(100 * r.BareShare, "N0")} % | {F(r.TrainingAsRunSeconds)} | " +
                         string.Join(" | ", Categories.Skip(1).Select(c => F(l.WallSecondsOf(c)))) + $" | {F(r.OtherSeconds)} | " +
                         $"{(double.IsNaN(r.Ratio) ? "—" : F(r.Ratio, "N2") + "×")} | {(r.RatioTargetMet ? "pass" : "FAIL")} (≤ {F(r.TargetSeconds)} s) | {absolute} |";
        }
    }

    /// <summary>Each notebook's workloads as Markdown lines: steps, in-run median and bare step times, pure training.</summary>
    public static IEnumerable<string> Workloads(IReadOnlyList<EfficiencyRow> rows)
    {
        yield return "| notebook | workload (model, optimiser · batch) | steps | median step ms in the run | bare ms, alone | bare ms, 2 side by side | runs at once | pure training s | as run, wall s | as run, thread s |";
        yield return "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|";
        foreach (var r in rows)
            foreach (var w in r.Ledger.Workloads)
            {
                string bare = r.Bare.TryGetValue(w.Workload, out var b) ? $"{F(b.AloneSeconds * 1e3, "N3")} | {F(b.SideBySideSeconds * 1e3, "N3")}" : "not timed | not timed";
                yield return $"| {r.Notebook} | {w.Workload} | {w.Steps.ToString("N0", CultureInfo.InvariantCulture)} | {F(w.MedianStepSeconds * 1e3, "N3")} | {bare} | {F(w.Concurrency, "N2")} | " +
                             $"{F(r.PureSecondsOf(w), "N2")} | {F(double.IsNaN(w.WallShareSeconds) ? w.Seconds : w.WallShareSeconds, "N2")} | {F(w.Seconds, "N2")} |";
            }
    }
}
