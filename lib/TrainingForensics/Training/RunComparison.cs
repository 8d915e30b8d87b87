using Microsoft.Data.Analysis;

namespace TrainingForensics.Training;

/// <summary>Mean, spread and extremes of one final value over several runs of the same configuration (e.g. seeds).</summary>
public sealed record RunSummary(string Group, int Runs, double Mean, double Std, double Min, double Max, IReadOnlyList<double> Values)
{
    /// <summary>Max − min.</summary>
    public double Range => Max - Min;
}

/// <summary>
/// Side-by-side comparison of training runs: one table row per run (final values), per-group summaries over seeds,
/// and a chart of an epoch value (e.g. test accuracy) for every run or every group.
/// </summary>
public static class RunComparison
{
    /// <summary>The value of the last epoch that has <paramref name="name"/> (NaN when none has).</summary>
    public static double Final(TrainingHistory run, string name)
    {
        for (int i = run.Epochs.Count - 1; i >= 0; i--)
            if (run.Epochs[i].Values.TryGetValue(name, out var v)) return v;
        return double.NaN;
    }

    /// <summary>
    /// One row per run: run, epochs, steps, seconds, final training loss (mean of the last epoch), and the last
    /// epoch's value of each name in <paramref name="values"/> (default: every evaluation value the runs have).
    /// </summary>
    public static DataFrame Table(IEnumerable<TrainingHistory> runs, params string[] values)
    {
        var list = runs.ToList();
        if (list.Count == 0) throw new ArgumentException("no runs to compare");
        var names = values.Length > 0 ? values : list.SelectMany(r => r.Epochs.SelectMany(e => e.Values.Keys)).Distinct().ToArray();
        var columns = new List<DataFrameColumn>
        {
            new StringDataFrameColumn("run", list.Select(r => r.Name)),
            new Int32DataFrameColumn("epochs", list.Select(r => r.Epochs.Count)),
            new Int64DataFrameColumn("steps", list.Select(r => (long)r.Steps.Count)),
            new DoubleDataFrameColumn("seconds", list.Select(r => r.Epochs.Sum(e => e.Seconds))),
            new DoubleDataFrameColumn("final train_loss", list.Select(r => r.Epochs.Count > 0 ? r.Epochs[^1].TrainLoss : double.NaN)),
        };
        foreach (var n in names)
        {
            if (list.All(r => double.IsNaN(Final(r, n))))
                throw new KeyNotFoundException($"no run has an epoch value named '{n}'");
            columns.Add(new DoubleDataFrameColumn("final " + n, list.Select(r => Final(r, n))));
        }
        return new DataFrame(columns);
    }

    /// <summary>Summary of the final <paramref name="value"/> over a group of runs (sample standard deviation; 0 for one run).</summary>
    public static RunSummary Summarize(string group, IEnumerable<TrainingHistory> runs, string value)
    {
        var v = runs.Select(r => Final(r, value)).ToList();
        if (v.Count == 0) throw new ArgumentException($"group '{group}' has no runs");
        if (v.Any(double.IsNaN)) throw new KeyNotFoundException($"a run of group '{group}' has no epoch value named '{value}'");
        double mean = v.Average();
        double std = v.Count > 1 ? Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Count - 1)) : 0;
        return new RunSummary(group, v.Count, mean, std, v.Min(), v.Max(), v);
    }

    /// <summary>
    /// One row per group (runs grouped by <paramref name="group"/>, e.g. the configuration without the seed):
    /// runs, then mean, std, min and max of each final value.
    /// </summary>
    public static DataFrame GroupTable(IEnumerable<TrainingHistory> runs, Func<TrainingHistory, string> group, params string[] values)
    {
        var groups = runs.GroupBy(group).ToList();
        if (groups.Count == 0) throw new ArgumentException("no runs to compare");
        if (values.Length == 0) throw new ArgumentException("name at least one epoch value to summarise");
        var columns = new List<DataFrameColumn>
        {
            new StringDataFrameColumn("group", groups.Select(g => g.Key)),
            new Int32DataFrameColumn("runs", groups.Select(g => g.Count())),
        };
        foreach (var n in values)
        {
            var s = groups.Select(g => Summarize(g.Key, g, n)).ToList();
            columns.Add(new DoubleDataFrameColumn($"{n} mean", s.Select(x => x.Mean)));
            columns.Add(new DoubleDataFrameColumn($"{n} std", s.Select(x => x.Std)));
            columns.Add(new DoubleDataFrameColumn($"{n} min", s.Select(x => x.Min)));
            columns.Add(new DoubleDataFrameColumn($"{n} max", s.Select(x => x.Max)));
        }
        return new DataFrame(columns);
    }


}
