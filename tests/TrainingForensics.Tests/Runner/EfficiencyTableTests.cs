using TrainingForensics.Results;
using TrainingForensics.Runner;
using static TrainingForensics.Tests.Runner.RunnerKit;

namespace TrainingForensics.Tests.Runner;

/// <summary>The benchmark's notebook-efficiency table, on a tiny notebook run by tf-run (structure only: no timing is asserted).</summary>
public class EfficiencyTableTests
{
    const string Training =
        "using TorchSharp;\nusing static TorchSharp.torch;\n" +
        "TrainingForensics.Setup.TorchEnvironment.Reseed(1);\n" +
        "var model = TrainingForensics.Models.Mlp.Create(new[] { 3, 4, 2 });\n" +
        "var loop = new TrainingForensics.Training.TrainingLoop(model, optim.SGD(model.parameters(), 0.1), (o, t) => nn.functional.cross_entropy(o, t));\n" +
        "var x = randn(8, 3); var y = randint(0, 2, new long[] { 8 });\n" +
        "for (int i = 0; i < 5; i++) loop.Step(x, y);\n" +
        "TrainingForensics.Training.Evaluation.Run(model, new[] { (x, y) }).Accuracy";

    [Fact]
    public void Tf_run_writes_the_ledger_and_the_table_reads_it()
    {
        using var kit = new RunnerKit();
        string path = kit.Write("00-tiny", Code(Training));
        Assert.Equal(0, kit.Run(path).ExitCode);

        var row = NotebookEfficiency.Read("00-tiny", 30, kit.OutDir);
        Assert.Equal(5, row.Ledger.TotalSteps);
        var workload = Assert.Single(row.Ledger.Workloads);
        Assert.Equal("Sequential, 26 parameters, SGD · batch [8×3]", workload.Workload);
        Assert.True(row.Ledger.Seconds.ContainsKey("compile"));
        Assert.True(row.Ledger.Seconds.ContainsKey("evaluation"));
        Assert.Equal(10, row.AbsoluteTarget); // 00: ≤ 10 s on a quiet machine
        Assert.Equal(row.WallSeconds - NotebookEfficiency.Categories.Sum(row.Ledger.WallSecondsOf), row.OtherSeconds, 9);
        Assert.Equal(1, row.Concurrency, 6); // one run at a time: thread seconds are wall seconds
        Assert.Equal(1.3 * row.PureTrainingSeconds + 10, row.TargetSeconds, 9);

        var table = NotebookEfficiency.Table([row]).ToList();
        Assert.Equal(3, table.Count);
        Assert.Equal(table[0].Count(c => c == '|'), table[2].Count(c => c == '|')); // every column filled
        Assert.StartsWith("| 00-tiny | 30.0 | 5 | 1.00 |", table[2]);
        Assert.Contains("(≤ 10 s)", table[2]);
        var workloads = NotebookEfficiency.Workloads([row]).ToList();
        Assert.Contains("| 00-tiny | Sequential, 26 parameters, SGD · batch [8×3] | 5 |", workloads[2]);
        Assert.Equal(workloads[0].Count(c => c == '|'), workloads[2].Count(c => c == '|'));

        // the same row with the workload timed bare: pure training is its steps at the bare rate (one run at a time: alone)
        var bare = row with { Bare = new Dictionary<string, BareStepTime> { [workload.Workload] = new(0.002, 0.003) } };
        Assert.Equal(5 * 0.002, bare.PureTrainingSeconds, 12);
        Assert.Equal(1, bare.BareShare, 12);
        Assert.Equal(0, row.BareShare, 12);
        Assert.StartsWith("| 00-tiny | 30.0 | 5 | 1.00 | 0.0 | 100 % |", NotebookEfficiency.Table([bare]).Last());
        Assert.Contains("| 2.000 | 3.000 |", NotebookEfficiency.Workloads([bare]).Last());
        Assert.Contains("| not timed | not timed |", NotebookEfficiency.Workloads([row]).Last());

        // a notebook without a ledger (not run, or not a good run) is named in the error
        var e = Assert.Throws<FileNotFoundException>(() => NotebookEfficiency.Read("absent", 1, kit.OutDir));
        Assert.Contains("absent.ledger.json", e.Message);
    }

    [Fact]
    public void Bare_step_times_give_the_wall_time_of_the_runs_side_by_side()
    {
        var t = new BareStepTime(AloneSeconds: 0.010, SideBySideSeconds: 0.016);
        Assert.Equal(1000 * 0.010, t.WallSeconds(1000, 1), 12);        // one run at a time: steps × alone
        Assert.Equal(1000 * 0.016 / 2, t.WallSeconds(1000, 2), 12);    // always two at once: two steps per side-by-side step time
        // 1.5 at once: half the wall time W two runs (2 steps per 16 ms), half one run (1 per 10 ms): 1000 = W/2·(2/0.016 + 1/0.010)
        Assert.Equal(1000 / (0.5 * (2 / 0.016 + 1 / 0.010)), t.WallSeconds(1000, 1.5), 12);
        Assert.Equal(t.WallSeconds(1000, 2), t.WallSeconds(1000, 3.5), 12);   // more than two at once counts as two (the pairs timed)

        // a workload at concurrency 2 in a ledger: pure training from the bare pair rate, not the in-run median
        var w = new WorkloadSteps("m · batch [1]", 1000, 30.0, 0.030) { WallShareSeconds = 15.0 };
        var row = new EfficiencyRow("02-x", 20, new LedgerSnapshot(new Dictionary<string, double>(), [w]))
            { Bare = new Dictionary<string, BareStepTime> { ["m · batch [1]"] = t } };
        Assert.Equal(8.0, row.PureTrainingSeconds, 12);
        var withoutBare = row with { Bare = new Dictionary<string, BareStepTime>() };
        Assert.Equal(15.0, withoutBare.PureTrainingSeconds, 12);   // 1000 × 30 ms ÷ 2 at once
    }
}
