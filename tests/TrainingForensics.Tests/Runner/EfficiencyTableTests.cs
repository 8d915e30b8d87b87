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

        // a notebook without a ledger (not run, or not a good run) is named in the error
        var e = Assert.Throws<FileNotFoundException>(() => NotebookEfficiency.Read("absent", 1, kit.OutDir));
        Assert.Contains("absent.ledger.json", e.Message);
    }
}
