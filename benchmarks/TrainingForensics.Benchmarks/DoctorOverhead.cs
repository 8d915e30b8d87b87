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
            var results = new List<OverheadResult>();
            for (int r = 0; r < repeats; r++)
            {
                var o = ClinicRunner.MeasureOverhead(c, stepsPerRound, rounds, 1, new DoctorOptions());
                results.Add(o);
                line($"  {c.Name}: baseline {F(o.BaselineStepMs, "N3")} ms/step, default {F(o.DefaultRatio, "N3")}×, every step {F(o.EveryStepRatio, "N3")}× (load {Machine.LoadAverage()})");
            }
            line($"{c.Name}: default median {F(Median(results.Select(o => o.DefaultRatio)), "N3")}× (range {F(results.Min(o => o.DefaultRatio), "N3")}–{F(results.Max(o => o.DefaultRatio), "N3")}), " +
                 $"every step median {F(Median(results.Select(o => o.EveryStepRatio)), "N3")}× (range {F(results.Min(o => o.EveryStepRatio), "N3")}–{F(results.Max(o => o.EveryStepRatio), "N3")})");
        }
    }
}
