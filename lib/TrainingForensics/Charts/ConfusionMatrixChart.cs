using Plotly.NET;
using TrainingForensics.Metrics;

namespace TrainingForensics.Charts;

/// <summary>A confusion matrix as an annotated heatmap (rows: true class, columns: predicted class).</summary>
public static class ConfusionMatrixChart
{
    public static GenericChart Create(ConfusionMatrix matrix, string title = "confusion matrix") =>
        Plots.Heatmap(title, matrix.ToArray(), matrix.ClassNames, matrix.ClassNames,
            xTitle: "predicted class", yTitle: "true class", colorscale: "Blues", annotate: true);
}

/// <summary>Histograms of value sets (e.g. a model's outputs at several steps), overlaid.</summary>
public static class HistogramChart
{
    /// <param name="title">The chart's title.</param>
    /// <param name="sets">Name → values; each becomes one semi-transparent histogram.</param>
    /// <param name="xTitle">Title of the value axis.</param>
    /// <param name="bins">Number of equal-width bins over [<paramref name="min"/>, <paramref name="max"/>] (the range of all values when not given).</param>
    /// <param name="min">Lower end of the binned range; null: the smallest value.</param>
    /// <param name="max">Upper end of the binned range; null: the largest value.</param>
    /// <param name="logY">Counts on a log axis (a few values in a bin stay visible beside thousands).</param>
    public static GenericChart Create(string title, IReadOnlyDictionary<string, float[]> sets, string xTitle = "value", int bins = 50,
        double? min = null, double? max = null, bool logY = false)
    {
        if (sets.Count == 0 || sets.Values.All(v => v.Length == 0)) throw new ArgumentException("no values to draw");
        if (bins < 1) throw new ArgumentOutOfRangeException(nameof(bins), bins, "need at least one bin");
        var finite = sets.Values.SelectMany(v => v).Where(float.IsFinite).ToArray();
        double lo = min ?? (finite.Length > 0 ? finite.Min() : 0), hi = max ?? (finite.Length > 0 ? finite.Max() : 1);
        if (!(hi > lo)) hi = lo + 1;
        var traces = sets.Select(s => new Dictionary<string, object>
        {
            ["type"] = "histogram", ["name"] = s.Key, ["x"] = s.Value.Where(float.IsFinite).Select(v => (double)v).ToArray(), ["opacity"] = 0.6,
            ["xbins"] = new Dictionary<string, object> { ["start"] = lo, ["end"] = hi, ["size"] = (hi - lo) / bins },
            ["autobinx"] = false,
        }).ToList();
        var layout = new Dictionary<string, object>
        {
            ["title"] = PlotlyFigure.Text(title), ["barmode"] = "overlay",
            ["xaxis"] = new Dictionary<string, object> { ["title"] = PlotlyFigure.Text(xTitle) },
            ["yaxis"] = new Dictionary<string, object> { ["title"] = PlotlyFigure.Text("count"), ["type"] = logY ? "log" : "linear" },
        };
        return PlotlyFigure.Build(traces, layout);
    }
}
