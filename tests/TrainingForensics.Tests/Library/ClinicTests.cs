using System.Text.Json;
using TrainingForensics.Clinic;
using TrainingForensics.Diagnostics;
using TrainingForensics.Diagnostics.Doctor;
using TrainingForensics.Setup;

namespace TrainingForensics.Tests.Library;

public class ClinicTests
{
    [Fact]
    public void Cases_trained_side_by_side_give_the_numbers_they_give_one_at_a_time()
    {
        TorchEnvironment.Setup(1);
        // the quick subset plus the dropout case (it must train alone, right after its reseed) and a BN CNN
        var cases = ClinicCases.Quick().Concat(ClinicCases.All().Where(c => c.Name is "MNIST MLP+dropout, CE, RMSProp" or "MNIST CNN+BN, CE, SGD-momentum")).DistinctBy(c => c.Name).ToList();
        Assert.Contains(cases, c => c.Name.Contains("dropout"));
        var alone = ClinicRunner.Run(cases, seed: 1, measureOverhead: false, workers: 1);
        var sideBySide = ClinicRunner.Run(cases, seed: 1, measureOverhead: false, workers: 2);
        for (int i = 0; i < cases.Count; i++)
        {
            var (a, b) = (alone.Results[i], sideBySide.Results[i]);
            Assert.Equal(a.Case.Name, b.Case.Name);
            Assert.Equal(a.Verdict, b.Verdict);
            Assert.Equal(a.StepsToDetection, b.StepsToDetection);
            Assert.True(a.FinalLoss.Equals(b.FinalLoss), $"{a.Case.Name}: final loss {a.FinalLoss:R} alone, {b.FinalLoss:R} side by side");
            Assert.Equal(a.Report.Findings.Select(f => (f.Check, f.FirstStep)), b.Report.Findings.Select(f => (f.Check, f.FirstStep)));
        }
    }

    [Fact]
    public void Quick_clinic_finds_the_designed_bugs_and_stays_quiet_on_the_baselines()
    {
        TorchEnvironment.Setup(1);
        var cases = ClinicCases.Quick();
        Assert.Contains(cases, c => c.Group == ClinicGroup.DesignedBug);
        Assert.Contains(cases, c => c.Group == ClinicGroup.Healthy);
        Assert.Contains(cases, c => c.Group == ClinicGroup.HeldOutBug);
        var report = ClinicRunner.Run(cases, seed: 1, measureOverhead: false);
        foreach (var r in report.Results.Where(r => r.Case.Group == ClinicGroup.DesignedBug))
            Assert.True(r.Verdict == ClinicVerdict.Found, $"{r.Case.Name}: {r.Verdict}\n{r.Report}");
        foreach (var r in report.Results.Where(r => r.Case.Group == ClinicGroup.Healthy))
            Assert.True(r.Verdict == ClinicVerdict.Quiet, $"{r.Case.Name}: {r.Verdict}\n{r.Report}");
        var confusion = report.Confusion();
        Assert.Equal(3, (int)confusion.Rows.Count);
        Assert.Equal(report.Results.Count, confusion.Columns["cases"].Cast<int?>().Sum(x => x ?? 0));
        using var json = JsonDocument.Parse(report.ToJson());
        Assert.Equal(cases.Count, json.RootElement.GetProperty("cases").GetArrayLength());
        Assert.Contains("designed-for bugs:", report.ToString());

        // the detection chart: found and missed are two measures, two traces; the axis fits the bars drawn
        var tally = report.Tally();
        Assert.Equal(report.Count(ClinicGroup.DesignedBug, ClinicVerdict.Found), tally.DesignedFound);
        using var chart = JsonDocument.Parse(TrainingForensics.Charts.Plots.ToJson(report.DetectionChart()));
        var traces = chart.RootElement.GetProperty("data").EnumerateArray().ToList();
        double longest = traces.SelectMany(t => t.GetProperty("x").EnumerateArray()).Max(x => x.GetDouble());
        double axisEnd = chart.RootElement.GetProperty("layout").GetProperty("xaxis").GetProperty("range")[1].GetDouble();
        Assert.Equal(1.35 * longest, axisEnd, 6);
        Assert.Equal(report.Results.Any(r => r.Verdict == ClinicVerdict.Missed && r.Case.Group != ClinicGroup.Healthy),
            traces.Any(t => t.GetProperty("name").GetString()!.StartsWith("missed")));
    }

    [Fact]
    public void Suite_meets_the_issue_counts_and_scoring_rules()
    {
        var all = ClinicCases.All();
        Assert.True(all.Count(c => c.Group == ClinicGroup.Healthy) >= 8);
        Assert.True(all.Count(c => c.Group == ClinicGroup.HeldOutBug) >= 3);
        foreach (var source in new[] { "01-loss-plateau", "02-loss-scale-and-metrics", "03-batchnorm-train-vs-eval" })
            Assert.Contains(all, c => c.Group == ClinicGroup.DesignedBug && c.Source == source);
        Assert.Equal(all.Count, all.Select(c => c.Name).Distinct().Count());
        Assert.Throws<ArgumentException>(() => ClinicCases.Named("no such case"));
    }

    [Fact]
    public void Overhead_is_measured_interleaved_with_medians()
    {
        TorchEnvironment.Setup(1);
        var mlp = ClinicCases.OverheadWorkloads()[0].Case;
        var o = ClinicRunner.MeasureOverhead(mlp, 20, 3, 1, new DoctorOptions());
        Assert.Equal(3, o.DefaultRatios.Length);
        Assert.Equal(o.DefaultRatios.OrderBy(x => x).ElementAt(1), o.DefaultRatio);
        Assert.True(o.BaselineStepMs > 0);
        Assert.Equal(o.EveryStepRatios.OrderBy(x => x).ElementAt(1), o.EveryStepRatio);
        // no comparison of the two ratios here: with tests running in parallel, 3 short rounds can come out either way
        // (timings belong in the benchmark and the notebook, which print them)
        Assert.All(o.DefaultRatios.Concat(o.EveryStepRatios), r => Assert.True(double.IsFinite(r) && r > 0, $"ratio {r}"));
        Assert.Throws<ArgumentOutOfRangeException>(() => ClinicRunner.MeasureOverhead(mlp, 0, 3, 1, new DoctorOptions()));
    }
}
