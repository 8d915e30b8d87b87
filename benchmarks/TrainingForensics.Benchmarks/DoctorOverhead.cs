using TrainingForensics.Clinic;
using TrainingForensics.Diagnostics.Doctor;
using static TrainingForensics.Benchmarks.Measure;

namespace TrainingForensics.Benchmarks;

/// <summary>The clinic's doctor overhead measured several times in a row: the medians of each repeat and their spread.</summary>
internal static class DoctorOverhead
{
    public static void Repeated(int repeats, int rounds, Action<string> line)
    {
        line($"doctor overhead ({repeats} repeats of {rounds} interleaved rounds; load at start {Machine.LoadAverage()})");
        foreach (var (c, stepsPerRound) in ClinicCases.OverheadWorkloads())
        {
            foreach (var (clockName, clock) in new (string, Func<double>?)[] { ("wall time", null), ("process CPU time", ClinicRunner.ProcessCpuSeconds) })
            {
                var results = new List<OverheadResult>();
                for (int r = 0; r < repeats; r++)
                {
                    var o = ClinicRunner.MeasureOverhead(c, stepsPerRound, rounds, 1, new DoctorOptions(), clock: clock);
                    results.Add(o);
                    line($"  {c.Name} ({clockName}): baseline {F(o.BaselineStepMs, "N3")} ms/step, default {F(o.DefaultRatio, "N3")}×, every step {F(o.EveryStepRatio, "N3")}× (load {Machine.LoadAverage()})");
                }
                Summary(c.Name + $" ({clockName})", results, line);
            }
        }
    }

    static void Summary(string name, List<OverheadResult> results, Action<string> line) =>
        line($"{name}: default median {F(Median(results.Select(o => o.DefaultRatio)), "N3")}× (range {F(results.Min(o => o.DefaultRatio), "N3")}–{F(results.Max(o => o.DefaultRatio), "N3")}), " +
                 $"every step median {F(Median(results.Select(o => o.EveryStepRatio)), "N3")}× (range {F(results.Min(o => o.EveryStepRatio), "N3")}–{F(results.Max(o => o.EveryStepRatio), "N3")})");

    /// <summary>
    /// The clinic's detection at the default cadence and with every detector every step (what the overhead buys):
    /// found / false alarms / held-out found, the median steps to detection, and each case's verdict at both.
    /// </summary>
    public static void Detection(bool quick, Action<string> line)
    {
        var cases = quick ? ClinicCases.Quick() : ClinicCases.All();
        var cadences = new[] { ("default", new DoctorOptions()), ("every step", DoctorOptions.EveryStep) };
        var reports = cadences.Select(c => ClinicRunner.Run(cases, c.Item2, seed: 1, measureOverhead: false)).ToList();
        line($"The clinic's detection at both cadences ({(quick ? "the quick subset" : "every case")}, seed 1; `ClinicRunner.Run`, as notebook 04's `fullClinic`):");
        line("");
        line("| cadence | designed-for found | false alarms | held-out found | median steps to detection (designed-for) | seconds |");
        line("|---|---:|---:|---:|---:|---:|");
        for (int i = 0; i < cadences.Length; i++)
        {
            var t = reports[i].Tally();
            var steps = reports[i].Results.Where(r => r.Case.Group == ClinicGroup.DesignedBug && r.StepsToDetection is not null).Select(r => (double)r.StepsToDetection!.Value);
            line($"| {cadences[i].Item1} | {t.DesignedFound}/{t.Designed} | {t.FalseAlarms}/{t.Healthy} | {t.HeldOutFound}/{t.HeldOut} | {F(Median(steps), "N0")} | {F(reports[i].Seconds, "N0")} |");
        }
        line("");
        line("| case | group | default: verdict (step) | every step: verdict (step) |");
        line("|---|---|---|---|");
        string Cell(ClinicResult r) => r.Verdict.Text() + (r.StepsToDetection is { } s ? $" ({s})" : "");
        for (int k = 0; k < cases.Count; k++)
            line($"| {cases[k].Name} | {reports[0].Results[k].Group} | {Cell(reports[0].Results[k])} | {Cell(reports[1].Results[k])} |");
        line("");
    }
}
