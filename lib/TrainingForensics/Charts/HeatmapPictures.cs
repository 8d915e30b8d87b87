using Plotly.NET;
using TorchSharp;
using static TorchSharp.torch;
using TrainingForensics.Native;

namespace TrainingForensics.Charts;

/// <summary>Pictures for heatmap models: inputs next to predicted maps, and simple bar charts for fix tables.</summary>
public static class HeatmapPictures
{
    /// <summary>
    /// One row per labelled group of maps, one column per image: the inputs first, then each group (e.g. "eval mode",
    /// "train mode"). Maps N×K×h×w are summed over K and scaled up to the image size so they line up with the inputs;
    /// all groups share one grey scale (0 = white, 1 = black), so a flat map looks flat. Each picture is drawn
    /// <paramref name="cellPixels"/> px wide (the 32-px images are small: scaled up so a learner sees the shapes).
    /// </summary>
    public static GenericChart Compare(Tensor images, IReadOnlyList<(string Label, Tensor Maps)> groups, string title = "", int cellPixels = 150)
    {
        if (images.dim() != 4) throw new ArgumentException($"images must be N×1×H×W, got [{string.Join(",", images.shape)}]");
        long n = images.shape[0], size = images.shape[2];
        using var scope = NewDisposeScope();
        var rows = new List<Tensor>();
        var captions = new List<string>();
        var img = images.detach().cpu().squeeze(1);
        var lo = img.amin(new long[] { 1, 2 }, keepdim: true); var hi = img.amax(new long[] { 1, 2 }, keepdim: true);
        rows.Add((img - lo) / (hi - lo).Plus(1e-6));
        captions.Add("input");
        foreach (var (label, maps) in groups)
        {
            if (maps.dim() != 4 || maps.shape[0] != n) throw new ArgumentException($"maps '{label}' must be {n}×K×h×w, got [{string.Join(",", maps.shape)}]");
            var m = maps.detach().cpu().sum(1, keepdim: true).Clamped(0, 1);
            rows.Add(nn.functional.interpolate(m, new long[] { size, size }, mode: InterpolationMode.Nearest).squeeze(1));
            captions.Add(label);
        }
        return Grid(cat(rows.ToArray(), 0), rows.Count, (int)n, captions, title, cellPixels);
    }

    // one heatmap of rows × columns square pictures; each row's label sits on the left, so no caption covers a picture,
    // and the toolbar stands upright at the right instead of over the title
    static GenericChart Grid(Tensor pictures, int rows, int columns, IReadOnlyList<string> rowLabels, string title, int cellPixels)
    {
        int size = (int)pictures.shape[1], gap = 2;
        var pixels = pictures.cpu().to_type(ScalarType.Float64).contiguous().data<double>().ToArray();
        var z = new double?[rows * (size + gap)][];
        for (int r = 0; r < z.Length; r++) z[r] = new double?[columns * (size + gap)];
        for (int k = 0; k < rows * columns; k++)
        {
            int top = (k / columns) * (size + gap), left = (k % columns) * (size + gap);
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++)
                    z[top + y][left + x] = pixels[(long)k * size * size + y * size + x];
        }
        var trace = new Dictionary<string, object>
        {
            ["type"] = "heatmap", ["z"] = z, ["colorscale"] = "Greys", ["reversescale"] = true, ["showscale"] = false, ["hoverinfo"] = "skip",
            ["zmin"] = 0.0, ["zmax"] = 1.0,
        };
        var ticks = Enumerable.Range(0, rows).Select(r => r * (size + gap) + size / 2.0).ToArray();
        var layout = new Dictionary<string, object>
        {
            ["title"] = PlotlyFigure.Text(title),
            ["xaxis"] = new Dictionary<string, object> { ["visible"] = false, ["constrain"] = "domain" },
            ["yaxis"] = new Dictionary<string, object>
            {
                ["autorange"] = "reversed", ["scaleanchor"] = "x", ["tickvals"] = ticks, ["ticktext"] = rowLabels.ToArray(),
                ["showgrid"] = false, ["zeroline"] = false, ["ticks"] = "", ["tickfont"] = new Dictionary<string, object> { ["size"] = 14 },
            },
            ["width"] = columns * (cellPixels + 10) + 140, ["height"] = rows * (cellPixels + 10) + 90,
            ["margin"] = new Dictionary<string, object> { ["t"] = 60, ["b"] = 10, ["l"] = 110, ["r"] = 40 },
            ["modebar"] = new Dictionary<string, object> { ["orientation"] = "v" },
        };
        return PlotlyFigure.Build(new[] { trace }, layout);
    }

    /// <summary>A bar chart (e.g. eval accuracy per fix).</summary>
    public static GenericChart Bars(string title, IReadOnlyList<string> names, IReadOnlyList<double> values, string yTitle = "", string xTitle = "")
    {
        if (names.Count != values.Count) throw new ArgumentException($"{names.Count} names for {values.Count} values");
        var trace = new Dictionary<string, object> { ["type"] = "bar", ["x"] = names.ToArray(), ["y"] = values.ToArray() };
        var layout = new Dictionary<string, object>
        {
            ["title"] = PlotlyFigure.Text(title),
            ["yaxis"] = new Dictionary<string, object> { ["title"] = PlotlyFigure.Text(yTitle) },
            ["xaxis"] = new Dictionary<string, object> { ["title"] = PlotlyFigure.Text(xTitle) },
            ["margin"] = new Dictionary<string, object> { ["t"] = 60, ["b"] = 150 },
        };
        return PlotlyFigure.Build(new[] { trace }, layout);
    }
}
