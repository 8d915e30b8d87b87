using Plotly.NET;
using TorchSharp;
using TrainingForensics.Training;
using static TorchSharp.torch;

namespace TrainingForensics.Charts;

/// <summary>The recurring pictures of the notebooks, as Plotly.NET charts.</summary>
public static class Plots
{
    /// <summary>Lines on one set of axes.</summary>
    public static GenericChart Lines(string title, string xTitle, string yTitle, IEnumerable<Series> series, bool logY = false, bool logX = false) =>
        PlotlyFigure.Panels(title, new[] { new Panel(title, xTitle, yTitle, series.ToList(), logY, logX) });

    /// <summary>Several panels side by side (e.g. loss and accuracy), a legend shared by series name.</summary>
    public static GenericChart SideBySide(string title, params Panel[] panels) => PlotlyFigure.Panels(title, panels);

    /// <summary>
    /// Training curves of several runs: per-step loss on the left (smoothed over <paramref name="smooth"/> steps),
    /// and each epoch's <paramref name="epochValue"/> (e.g. "test_accuracy") on the right when the runs have it.
    /// </summary>
    public static GenericChart TrainingCurves(string title, IEnumerable<TrainingHistory> runs, string? epochValue = null, int smooth = 1, bool logLoss = false)
    {
        var list = runs.ToList();
        if (list.Count == 0) throw new ArgumentException("no runs to draw");
        var loss = list.Select(r => new Series(r.Name, r.Steps.Select(s => (double)s.Step).ToArray(), MovingAverage(r.Losses, smooth))).ToList();
        var panels = new List<Panel> { new("loss", "step", smooth > 1 ? $"training loss (mean of {smooth} steps)" : "training loss", loss, logLoss) };
        if (epochValue != null)
            panels.Add(new Panel(epochValue, "epoch", epochValue,
                list.Select(r => new Series(r.Name, r.Epochs.Select(e => (double)e.Epoch).ToArray(), r.EpochValues(epochValue))).ToList(),
                WholeX: true, YRange: IsFraction(epochValue) ? (0, 1) : null));
        return PlotlyFigure.Panels(title, panels);
    }

    // accuracies and fractions live on [0, 1]: an axis fitted to the data exaggerates small differences
    static bool IsFraction(string name) => name.Contains("accuracy", StringComparison.OrdinalIgnoreCase) || name.Contains("fraction", StringComparison.OrdinalIgnoreCase);

    /// <summary>Trailing moving average over <paramref name="window"/> values (window 1 returns a copy).</summary>
    public static double[] MovingAverage(IReadOnlyList<double> values, int window)
    {
        if (window < 1) throw new ArgumentOutOfRangeException(nameof(window), window, "window must be at least 1");
        var result = new double[values.Count];
        double sum = 0;
        for (int i = 0; i < values.Count; i++)
        {
            sum += values[i];
            if (i >= window) sum -= values[i - window];
            result[i] = sum / Math.Min(i + 1, window);
        }
        return result;
    }

    /// <summary>
    /// A grid of greyscale images (N×1×H×W or N×H×W, any value range) with optional captions such as labels,
    /// drawn as one heatmap (fast to render, small to store).
    /// </summary>
    public static GenericChart ImageGrid(Tensor images, IReadOnlyList<string>? captions = null, int columns = 8, string title = "", int cellPixels = 56)
    {
        if (images.dim() == 4 && images.shape[1] == 1) images = images.squeeze(1);
        if (images.dim() != 3) throw new ArgumentException($"images must be N×H×W or N×1×H×W, got [{string.Join(",", images.shape)}]");
        if (columns < 1) throw new ArgumentOutOfRangeException(nameof(columns), columns, "need at least one column");
        int n = (int)images.shape[0], h = (int)images.shape[1], w = (int)images.shape[2];
        if (captions != null && captions.Count != n) throw new ArgumentException($"{captions.Count} captions for {n} images");
        int cols = Math.Min(columns, n), rows = (n + cols - 1) / cols, gap = 2;
        var pixels = images.detach().cpu().to_type(ScalarType.Float64).contiguous().data<double>().ToArray();
        var z = new double?[rows * (h + gap)][];
        for (int r = 0; r < z.Length; r++) z[r] = new double?[cols * (w + gap)];
        var annotations = new List<object>();
        for (int k = 0; k < n; k++)
        {
            int top = (k / cols) * (h + gap), left = (k % cols) * (w + gap);
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    z[top + y][left + x] = pixels[(long)k * h * w + y * w + x];
            if (captions != null)
                annotations.Add(new Dictionary<string, object>
                {
                    ["text"] = System.Net.WebUtility.HtmlEncode(captions[k]), ["x"] = left + w / 2.0, ["y"] = top - 0.5,
                    ["showarrow"] = false, ["yanchor"] = "bottom", ["font"] = new Dictionary<string, object> { ["size"] = 11 },
                });
        }
        var trace = new Dictionary<string, object>
        {
            ["type"] = "heatmap", ["z"] = z, ["colorscale"] = "Greys", ["reversescale"] = true, ["showscale"] = false,
            ["hoverinfo"] = "skip",
        };
        var axis = new Dictionary<string, object> { ["visible"] = false, ["constrain"] = "domain" };
        var layout = new Dictionary<string, object>
        {
            ["title"] = PlotlyFigure.Text(title),
            ["xaxis"] = axis,
            ["yaxis"] = new Dictionary<string, object> { ["visible"] = false, ["autorange"] = "reversed", ["scaleanchor"] = "x" },
            ["width"] = Math.Max(300, cols * cellPixels + 40), ["height"] = rows * cellPixels + (captions != null ? rows * 14 : 0) + 80,
            ["margin"] = new Dictionary<string, object> { ["t"] = 50, ["b"] = 10, ["l"] = 10, ["r"] = 10 },
            ["annotations"] = annotations,
        };
        return PlotlyFigure.Build(new[] { trace }, layout);
    }

    /// <summary>A matrix as a heatmap (rows × columns), e.g. a per-layer statistic over steps or a confusion matrix.</summary>
    public static GenericChart Heatmap(string title, double[,] values, IReadOnlyList<string> rowNames, IReadOnlyList<string> columnNames,
        string xTitle = "", string yTitle = "", string colorscale = "Viridis", bool annotate = false, bool reverseScale = false)
    {
        int rows = values.GetLength(0), cols = values.GetLength(1);
        if (rowNames.Count != rows || columnNames.Count != cols)
            throw new ArgumentException($"{rows}×{cols} values but {rowNames.Count} row and {columnNames.Count} column names");
        var z = Enumerable.Range(0, rows).Select(r => Enumerable.Range(0, cols).Select(c => double.IsFinite(values[r, c]) ? values[r, c] : (double?)null).ToArray()).ToArray();
        var trace = new Dictionary<string, object>
        {
            ["type"] = "heatmap", ["z"] = z, ["x"] = columnNames.ToArray(), ["y"] = rowNames.ToArray(), ["colorscale"] = colorscale,
            ["reversescale"] = reverseScale,
        };
        if (annotate)
        {
            trace["text"] = z.Select(r => r.Select(v => v?.ToString("G4", System.Globalization.CultureInfo.InvariantCulture) ?? "").ToArray()).ToArray();
            trace["texttemplate"] = "%{text}";
        }
        var layout = new Dictionary<string, object>
        {
            ["title"] = PlotlyFigure.Text(title),
            ["xaxis"] = new Dictionary<string, object> { ["title"] = PlotlyFigure.Text(xTitle) },
            ["yaxis"] = new Dictionary<string, object> { ["title"] = PlotlyFigure.Text(yTitle), ["autorange"] = "reversed" },
        };
        return PlotlyFigure.Build(new[] { trace }, layout);
    }

    /// <summary>The chart's plotly.js figure as JSON (data + layout), for tests and for saving.</summary>
    public static string ToJson(GenericChart chart) => GenericChart.toJson(chart);

    /// <summary>
    /// <paramref name="value"/> per epoch: one line per run, or, with <paramref name="group"/>, one line per group
    /// (the mean over its runs) with each run drawn thin and dotted behind it.
    /// </summary>
    public static GenericChart RunComparison(string title, IEnumerable<TrainingHistory> runs, string value = "test_accuracy",
        Func<TrainingHistory, string>? group = null, string? yTitle = null)
    {
        var list = runs.ToList();
        if (list.Count == 0) throw new ArgumentException("no runs to draw");
        var series = new List<Series>();
        if (group == null)
        {
            foreach (var r in list) series.Add(new Series(r.Name, Epochs(r), r.EpochValues(value)));
        }
        else
        {
            // Lines of the same name share colour and legend entry: each run is drawn dotted in its group's colour.
            foreach (var g in list.GroupBy(group))
            {
                var members = g.ToList();
                int n = members.Min(r => r.Epochs.Count);
                var mean = Enumerable.Range(0, n).Select(i => members.Average(r => r.EpochValues(value)[i])).ToArray();
                string label = members.Count > 1 ? $"{g.Key} (mean of {members.Count} runs, dotted: each run)" : g.Key;
                series.Add(new Series(label, Enumerable.Range(1, n).Select(i => (double)i).ToArray(), mean));
                if (members.Count > 1)
                    foreach (var r in members) series.Add(new Series(label, Epochs(r), r.EpochValues(value), Dash: "dot"));
            }
        }
        return Lines(title, "epoch", yTitle ?? value, series);
    }

    static double[] Epochs(TrainingHistory r) => r.Epochs.Select(e => (double)e.Epoch).ToArray();
}
