using Plotly.NET;
using TrainingForensics.Metrics;

namespace TrainingForensics.Charts;

/// <summary>A confusion matrix as an annotated heatmap (rows: true class, columns: predicted class).</summary>
public static class ConfusionMatrixChart
{
    public static GenericChart Create(ConfusionMatrix matrix, string title = "confusion matrix") =>
        Plots.Heatmap(title, matrix.ToArray(), matrix.ClassNames, matrix.ClassNames,
            xTitle: "predicted class", yTitle: "true class", colorscale: "Blues", annotate: true,
            reverseScale: true); // plotly.js's Blues runs dark to light: reversed, an empty cell is white and a full one dark
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
        double size = (hi - lo) / bins;
        var centres = Enumerable.Range(0, bins).Select(b => lo + (b + 0.5) * size).ToArray();
        var traces = sets.Select(s =>
        {
            var (counts, outside) = Count(s.Value, lo, hi, bins);
            return new Dictionary<string, object>
            {
                ["type"] = "bar", ["name"] = outside > 0 ? $"{s.Key} ({outside} outside the range)" : s.Key, ["x"] = centres, ["y"] = counts,
                ["width"] = size / Math.Max(1, sets.Count) * 0.95,
            };
        }).ToList();
        var layout = new Dictionary<string, object>
        {
            // side by side, not overlaid: an overlay hides one set's bars behind another's
            ["title"] = PlotlyFigure.Text(title), ["barmode"] = "group", ["bargap"] = 0,
            ["xaxis"] = new Dictionary<string, object> { ["title"] = PlotlyFigure.Text(xTitle) },
            ["yaxis"] = new Dictionary<string, object> { ["title"] = PlotlyFigure.Text("count"), ["type"] = logY ? "log" : "linear" },
        };
        return PlotlyFigure.Build(traces, layout);
    }

    /// <summary>
    /// Counts in <paramref name="bins"/> equal bins over [lo, hi]: each bin holds [start, end) except the last, which
    /// also holds hi (a saturated output of exactly 1.0 belongs on the chart). Non-finite and out-of-range values are
    /// counted apart.
    /// </summary>
    internal static (long[] Counts, long Outside) Count(IEnumerable<float> values, double lo, double hi, int bins)
    {
        var counts = new long[bins];
        long outside = 0;
        double size = (hi - lo) / bins;
        foreach (var v in values)
        {
            if (!float.IsFinite(v) || v < lo || v > hi) { outside++; continue; }
            counts[Math.Min(bins - 1, (int)((v - lo) / size))]++;
        }
        return (counts, outside);
    }
}
