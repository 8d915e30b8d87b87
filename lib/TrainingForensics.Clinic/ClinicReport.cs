using System.Globalization;
using System.Text;
using Microsoft.Data.Analysis;

namespace TrainingForensics.Clinic;

/// <summary>Everything a clinic run produced.</summary>
public sealed class ClinicReport
{
    public required IReadOnlyList<ClinicResult> Results { get; init; }
    public required IReadOnlyList<OverheadResult> Overhead { get; init; }
    public required double Seconds { get; init; }
    /// <summary>ToString adds each case's final loss and vitals.</summary>
    public bool Verbose { get; set; }

    /// <summary>Cases of group <paramref name="g"/> with one of <paramref name="verdicts"/>.</summary>
    public int Count(ClinicGroup g, params ClinicVerdict[] verdicts) => Results.Count(r => r.Case.Group == g && verdicts.Contains(r.Verdict));

    /// <summary>Found / false alarms / held-out found, per group.</summary>
    public ClinicTally Tally() => ClinicTally.Of(this);

    /// <summary>The worst (largest) overhead ratio over the workloads: at the default cadence and with every detector every step.</summary>
    public (double Default, double EveryStep) WorstOverhead() =>
        Overhead.Count == 0 ? (double.NaN, double.NaN) : (Overhead.Max(o => o.DefaultRatio), Overhead.Max(o => o.EveryStepRatio));

    /// <summary>One line per overhead workload (ms/step, the ratios and each round's), then the targets and whether they were met.</summary>
    public string OverheadSummary()
    {
        if (Overhead.Count == 0) return "overhead not measured";
        var sb = new StringBuilder();
        foreach (var o in Overhead)
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"{o.Workload}: {o.BaselineStepMs:F2} ms/step; default {o.DefaultRatio:F3}× (rounds: {string.Join(" ", o.DefaultRatios.Select(r => r.ToString("F2", CultureInfo.InvariantCulture)))}); " +
                $"every step {o.EveryStepRatio:F3}× (rounds: {string.Join(" ", o.EveryStepRatios.Select(r => r.ToString("F2", CultureInfo.InvariantCulture)))})"));
        var (worstDefault, worstEvery) = WorstOverhead();
        sb.Append(string.Create(CultureInfo.InvariantCulture,
            $"targets: ≤ 1.05× at the default cadence — worst workload {worstDefault:F3}× ({(worstDefault <= 1.05 ? "met" : "NOT met")}); " +
            $"≤ 1.3× every step — worst {worstEvery:F3}× ({(worstEvery <= 1.3 ? "met" : "NOT met")})"));
        return sb.ToString();
    }

    /// <summary>Records the worst overhead ratios as the notebook's figures (overhead_default_worst, overhead_every_step_worst).</summary>
    public void RecordOverhead()
    {
        var (worstDefault, worstEvery) = WorstOverhead();
        if (Overhead.Count == 0) return;
        TrainingForensics.Results.Figures.Record("overhead_default_worst", worstDefault, "ratio", "instrumented/uninstrumented step time, default cadence, worst workload (median of rounds)");
        TrainingForensics.Results.Figures.Record("overhead_every_step_worst", worstEvery, "ratio", "the same with every detector every step");
    }

    /// <summary>One row per case: group, case, source, verdict, steps to detection, checks fired, seconds.</summary>
    public DataFrame ToDataFrame() => new(
        new StringDataFrameColumn("group", Results.Select(r => r.Group)),
        new StringDataFrameColumn("case", Results.Select(r => r.Case.Name)),
        new StringDataFrameColumn("source", Results.Select(r => r.Case.Source)),
        new StringDataFrameColumn("verdict", Results.Select(r => r.Verdict.Text())),
        new Int64DataFrameColumn("steps_to_detection", Results.Select(r => r.StepsToDetection)),
        new Int32DataFrameColumn("steps_run", Results.Select(r => r.Case.Steps)),
        new StringDataFrameColumn("checks_fired", Results.Select(r => string.Join(", ", r.Report.Findings.Select(f => $"{f.Check}@{f.FirstStep}")))),
        new DoubleDataFrameColumn("seconds", Results.Select(r => Math.Round(r.Seconds, 2))));

    /// <summary>The confusion table: per group, how many cases were found / missed / falsely flagged / quiet.</summary>
    public DataFrame Confusion()
    {
        var groups = new[] { ClinicGroup.DesignedBug, ClinicGroup.HeldOutBug, ClinicGroup.Healthy };
        double? MedianSteps(ClinicGroup g)
        {
            var s = Results.Where(r => r.Case.Group == g && r.StepsToDetection is not null).Select(r => (double)r.StepsToDetection!.Value).OrderBy(x => x).ToArray();
            return s.Length == 0 ? null : s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
        }
        return new DataFrame(
            new StringDataFrameColumn("group", groups.Select(g => g.Text())),
            new Int32DataFrameColumn("cases", groups.Select(g => Results.Count(r => r.Case.Group == g))),
            new Int32DataFrameColumn("found", groups.Select(g => Count(g, ClinicVerdict.Found))),
            new Int32DataFrameColumn("found by another check", groups.Select(g => Count(g, ClinicVerdict.FoundByOtherCheck))),
            new Int32DataFrameColumn("missed", groups.Select(g => Count(g, ClinicVerdict.Missed))),
            new Int32DataFrameColumn("false alarm", groups.Select(g => Count(g, ClinicVerdict.FalseAlarm))),
            new Int32DataFrameColumn("quiet", groups.Select(g => Count(g, ClinicVerdict.Quiet))),
            new DoubleDataFrameColumn("median steps to detection", groups.Select(MedianSteps)));
    }

    /// <summary>Horizontal bars: steps to detection per bug case (missed cases drawn at their full length, grey), healthy cases as false alarms if any.</summary>
    public Plotly.NET.GenericChart DetectionChart(string title = "Clinic: steps until the doctor's first relevant finding")
    {
        var rows = Results.Where(r => r.Case.Group != ClinicGroup.Healthy || r.Verdict == ClinicVerdict.FalseAlarm).Reverse().ToList();
        string Colour(ClinicResult r) => r.Verdict switch { ClinicVerdict.Found => "#2ca02c", ClinicVerdict.FoundByOtherCheck => "#bcbd22", _ => "#d62728" };
        // two measures, two traces: how long until a finding (solid), and how long a missed case ran with none (hatched grey)
        var detected = rows.Where(r => r.Verdict != ClinicVerdict.Missed).ToList();
        var missed = rows.Where(r => r.Verdict == ClinicVerdict.Missed).ToList();
        var traces = new List<Dictionary<string, object>>();
        if (detected.Count > 0)
            traces.Add(new()
            {
                ["type"] = "bar", ["orientation"] = "h", ["name"] = "steps to the first relevant finding",
                ["y"] = detected.Select(r => r.Case.Name).ToArray(),
                ["x"] = detected.Select(r => (double)(r.StepsToDetection ?? 0)).ToArray(),
                ["text"] = detected.Select(r => $"{r.Verdict.Text()} at step {r.StepsToDetection}").ToArray(),
                ["textposition"] = "outside",
                ["marker"] = new Dictionary<string, object> { ["color"] = detected.Select(Colour).ToArray() },
            });
        if (missed.Count > 0)
            traces.Add(new()
            {
                ["type"] = "bar", ["orientation"] = "h", ["name"] = "missed: steps run without a finding",
                ["y"] = missed.Select(r => r.Case.Name).ToArray(),
                ["x"] = missed.Select(r => (double)r.Case.Steps).ToArray(),
                ["text"] = missed.Select(r => $"missed ({r.Case.Steps} steps run)").ToArray(),
                ["textposition"] = "outside",
                ["marker"] = new Dictionary<string, object>
                {
                    ["color"] = "#d9d9d9", ["line"] = new Dictionary<string, object> { ["color"] = "#7f7f7f", ["width"] = 1 },
                    ["pattern"] = new Dictionary<string, object> { ["shape"] = "/", ["fgcolor"] = "#7f7f7f" },
                },
            });
        double longest = traces.SelectMany(t => (double[])t["x"]).DefaultIfEmpty(1).Max();
        var layout = new Dictionary<string, object>
        {
            ["title"] = new Dictionary<string, object> { ["text"] = title },
            ["height"] = 160 + 26 * rows.Count, ["width"] = 1000, ["barmode"] = "overlay",
            ["margin"] = new Dictionary<string, object> { ["l"] = 300, ["r"] = 40, ["t"] = 50, ["b"] = 90 },
            // the axis fits the bars drawn (room for their labels), not the longest case of the whole suite
            ["xaxis"] = new Dictionary<string, object> { ["title"] = new Dictionary<string, object> { ["text"] = "training steps" }, ["range"] = new[] { 0.0, 1.35 * Math.Max(1, longest) } },
            ["showlegend"] = true, ["legend"] = new Dictionary<string, object> { ["orientation"] = "h", ["y"] = -0.15 },
        };
        return TrainingForensics.Charts.PlotlyFigure.Build(traces, layout);
    }

    /// <summary>Grouped bars: instrumented / uninstrumented step time per workload, default cadence and every step, with the targets.</summary>
    public Plotly.NET.GenericChart OverheadChart(string title = "Overhead: instrumented / uninstrumented step time (median)")
    {
        if (Overhead.Count == 0) throw new InvalidOperationException("the clinic ran without measuring the overhead");
        var names = Overhead.Select(o => o.Workload).ToArray();
        var traces = new List<Dictionary<string, object>>
        {
            new() { ["type"] = "bar", ["name"] = "default cadence", ["x"] = names, ["y"] = Overhead.Select(o => o.DefaultRatio).ToArray(), ["marker"] = new Dictionary<string, object> { ["color"] = "#1f77b4" } },
            new() { ["type"] = "bar", ["name"] = "every detector every step", ["x"] = names, ["y"] = Overhead.Select(o => o.EveryStepRatio).ToArray(), ["marker"] = new Dictionary<string, object> { ["color"] = "#ff7f0e" } },
            new() { ["type"] = "scatter", ["mode"] = "lines", ["name"] = "target 1.05×", ["x"] = names, ["y"] = names.Select(_ => 1.05).ToArray(), ["line"] = new Dictionary<string, object> { ["color"] = "#1f77b4", ["dash"] = "dash" } },
            new() { ["type"] = "scatter", ["mode"] = "lines", ["name"] = "target 1.3×", ["x"] = names, ["y"] = names.Select(_ => 1.3).ToArray(), ["line"] = new Dictionary<string, object> { ["color"] = "#ff7f0e", ["dash"] = "dash" } },
        };
        var layout = new Dictionary<string, object>
        {
            ["title"] = new Dictionary<string, object> { ["text"] = title }, ["barmode"] = "group", ["height"] = 420, ["width"] = 800,
            ["yaxis"] = new Dictionary<string, object> { ["title"] = new Dictionary<string, object> { ["text"] = "× uninstrumented step time" } },
        };
        return TrainingForensics.Charts.PlotlyFigure.Build(traces, layout);
    }

    public DataFrame OverheadFrame() => new(
        new StringDataFrameColumn("workload", Overhead.Select(o => o.Workload)),
        new DoubleDataFrameColumn("baseline ms/step", Overhead.Select(o => Math.Round(o.BaselineStepMs, 3))),
        new DoubleDataFrameColumn("default cadence ×", Overhead.Select(o => Math.Round(o.DefaultRatio, 3))),
        new DoubleDataFrameColumn("every step ×", Overhead.Select(o => Math.Round(o.EveryStepRatio, 3))),
        new Int32DataFrameColumn("rounds", Overhead.Select(o => o.Rounds)),
        new Int32DataFrameColumn("steps per round", Overhead.Select(o => o.StepsPerRound)));

    /// <summary>Machine-readable: every case with its verdict and findings, the confusion counts and the overhead.</summary>
    public string ToJson() => System.Text.Json.JsonSerializer.Serialize(new
    {
        seconds = Seconds,
        cases = Results.Select(r => new
        {
            name = r.Case.Name, group = r.Group, source = r.Case.Source, verdict = r.Verdict.Text(), steps_to_detection = r.StepsToDetection,
            steps = r.Case.Steps, seconds = r.Seconds, findings = r.Report.Findings.Select(f => new { check = f.Check, first_step = f.FirstStep, summary = f.Summary }),
        }),
        overhead = Overhead.Select(o => new { workload = o.Workload, baseline_ms_per_step = o.BaselineStepMs, default_ratio = o.DefaultRatio, every_step_ratio = o.EveryStepRatio, rounds = o.Rounds, steps_per_round = o.StepsPerRound }),
    }, new System.Text.Json.JsonSerializerOptions { WriteIndented = true });

    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"{"group",-17} {"case",-34} {"verdict",-20} {"steps→det",9}  checks fired");
        foreach (var r in Results)
            sb.AppendLine($"{r.Group,-17} {r.Case.Name,-34} {r.Verdict.Text(),-20} {(r.StepsToDetection?.ToString() ?? "-"),9}  {string.Join(", ", r.Report.Findings.Select(f => $"{f.Check}@{f.FirstStep}"))}" +
                (Verbose ? $"\n    final loss {r.FinalLoss:G4}; " + string.Join(", ", r.Report.Vitals.Select(v => $"{v.Key}={v.Value:G3}")) : ""));
        sb.AppendLine();
        foreach (ClinicGroup g in new[] { ClinicGroup.DesignedBug, ClinicGroup.HeldOutBug, ClinicGroup.Healthy })
        {
            int n = Results.Count(r => r.Case.Group == g);
            if (n == 0) continue;
            sb.AppendLine(g == ClinicGroup.Healthy
                ? $"healthy baselines: {Count(g, ClinicVerdict.Quiet)} quiet, {Count(g, ClinicVerdict.FalseAlarm)} false alarm(s) of {n}"
                : $"{(g == ClinicGroup.DesignedBug ? "designed-for bugs" : "held-out bugs")}: {Count(g, ClinicVerdict.Found)} found, {Count(g, ClinicVerdict.FoundByOtherCheck)} found by another check, {Count(g, ClinicVerdict.Missed)} missed of {n}");
        }
        foreach (var o in Overhead)
            sb.AppendLine($"overhead ({o.Workload}, {o.BaselineStepMs:F2} ms/step, median of {o.Rounds} interleaved rounds of {o.StepsPerRound} steps): default cadence {o.DefaultRatio:F3}×, every step {o.EveryStepRatio:F3}×");
        sb.AppendLine($"clinic time {Seconds:F1} s");
        return sb.ToString();
    }
}
