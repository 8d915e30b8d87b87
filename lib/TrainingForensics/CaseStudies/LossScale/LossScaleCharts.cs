using Plotly.NET;
using TrainingForensics.Charts;
using TrainingForensics.Training;

namespace TrainingForensics.CaseStudies.LossScale;

/// <summary>
/// Case study 2's charts. Two curves that coincide — (a) and (c) are one optimisation — must both stay visible: the
/// first run is drawn as a wide, pale solid line and the others as thin dashed or dotted lines on top of it.
/// </summary>
public static class LossScaleCharts
{
    // colour = layer in the per-layer charts, colour = variant in the accuracy chart
    static readonly string[] Colours = { "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b" };

    /// <summary>Line style of the i-th run: wide pale solid, then dashed, dotted, dash-dot on top of it.</summary>
    static (string? Dash, double Width, double Opacity, string DashWord) Style(int i) => i switch
    {
        0 => (null, 5, 0.45, "wide solid"),
        1 => ("dash", 2, 1, "dashed"),
        2 => ("dot", 2.5, 1, "dotted"),
        _ => ("dashdot", 2, 1, "dash-dot"),
    };

    /// <summary>
    /// A per-layer probe of several runs on one log axis, smoothed over <paramref name="smooth"/> readings: colour
    /// says the layer, line style the run (first run wide and pale, the next dashed, then dotted), and the legend is
    /// grouped by run.
    /// </summary>
    public static GenericChart PerLayer(string title, string yTitle, IReadOnlyList<(string Run, IReadOnlyDictionary<string, List<(long Step, double Value)>> Layers)> runs,
        int smooth = 8)
    {
        if (runs.Count == 0) throw new ArgumentException("no runs to draw");
        var layers = runs.SelectMany(r => r.Layers.Keys).Distinct().ToList();
        var series = new List<Series>();
        for (int i = 0; i < runs.Count; i++)
        {
            var (dash, width, opacity, word) = Style(i);
            foreach (var (layer, points) in runs[i].Layers)
                series.Add(new Series(layer, points.Select(p => (double)p.Step).ToArray(), Plots.MovingAverage(points.Select(p => p.Value).ToArray(), smooth),
                    dash, Colours[layers.IndexOf(layer) % Colours.Length]) { Group = $"{runs[i].Run} ({word})", Width = width, Opacity = opacity });
        }
        return Plots.Lines(title, "training step (one batch each)", yTitle, series, logY: true);
    }

    /// <summary>
    /// Test accuracy after each epoch of the main table: each variant's mean over its seeds (colour = variant; the
    /// first wide and pale, the others dashed, dotted, … with a marker of their own) and each seed thin and dotted in
    /// the variant's colour. Diverged runs are left out.
    /// </summary>
    public static GenericChart TestAccuracy(string title, LossScaleRuns runs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        return TestAccuracy(title, runs.Variants.Select(v => (v.Label, (IReadOnlyList<TrainingHistory>)runs.Seeds.Select(s => runs[v.Key, s]).ToList())).ToList());
    }

    /// <summary>Test accuracy after each epoch, one line per run (named by the run), styled as the main table's chart.</summary>
    public static GenericChart TestAccuracy(string title, IEnumerable<TrainingHistory> runs) =>
        TestAccuracy(title, runs.Select(r => (r.Name, (IReadOnlyList<TrainingHistory>)new[] { r })).ToList());

    /// <summary>Test accuracy after each epoch: per group, the mean over its finished runs, and each run thin and dotted when there are several.</summary>
    public static GenericChart TestAccuracy(string title, IReadOnlyList<(string Label, IReadOnlyList<TrainingHistory> Runs)> groups)
    {
        if (groups.Count == 0) throw new ArgumentException("no runs to draw");
        string[] markers = { "circle", "x", "diamond", "square", "triangle-up" };
        var series = new List<Series>();
        for (int i = 0; i < groups.Count; i++)
        {
            var members = groups[i].Runs.Where(r => r.Divergence == null && r.Epochs.Count > 0).ToList();
            if (members.Count == 0) continue;
            var (dash, width, opacity, _) = Style(i);
            string colour = Colours[i % Colours.Length], marker = markers[i % markers.Length];
            int n = members.Min(r => r.Epochs.Count);
            var epochs = Enumerable.Range(1, n).Select(e => (double)e).ToArray();
            var mean = Enumerable.Range(0, n).Select(e => members.Average(r => r.EpochValues("test_accuracy")[e])).ToArray();
            string label = members.Count > 1 ? $"{groups[i].Label} (mean of {members.Count} seeds)" : groups[i].Label;
            series.Add(new Series(label, epochs, mean, dash, colour) { Width = width, Opacity = Math.Max(opacity, 0.6), Marker = marker });
            if (members.Count > 1)
                foreach (var r in members)
                    series.Add(new Series($"{groups[i].Label}: each seed", r.Epochs.Select(e => (double)e.Epoch).ToArray(), r.EpochValues("test_accuracy"), "dot", colour)
                        { Width = 1, Opacity = 0.6 });
        }
        if (series.Count == 0) throw new ArgumentException("every run diverged: no accuracy to draw");
        return PlotlyFigure.Panels(title, new[]
        {
            new Panel(title, "epoch (one pass over the training images)", "test accuracy (fraction of the test images)", series, WholeX: true),
        });
    }
}
