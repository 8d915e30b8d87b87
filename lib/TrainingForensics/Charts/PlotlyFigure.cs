using Plotly.NET;

namespace TrainingForensics.Charts;

/// <summary>One line of a chart: a name and its points. <paramref name="Dash"/>: null (solid), "dash", "dot".</summary>
public sealed record Series(string Name, IReadOnlyList<double> X, IReadOnlyList<double> Y, string? Dash = null, string? Color = null)
{
    /// <summary>
    /// A legend group with this title (e.g. a run, when the colour says the layer): series of one group are listed
    /// together under it, and a name needs to be unique only within its group.
    /// </summary>
    public string? Group { get; init; }
    /// <summary>Line width in pixels: a wider, lighter line under a thin one shows two curves that coincide.</summary>
    public double Width { get; init; } = 2;
    /// <summary>Line opacity, 0–1.</summary>
    public double Opacity { get; init; } = 1;
    /// <summary>A plotly.js marker symbol ("circle", "x", "diamond", …) drawn at every point; null: markers only on short series.</summary>
    public string? Marker { get; init; }

    /// <summary>A series over 0, 1, 2, … (steps).</summary>
    public static Series Of(string name, IReadOnlyList<double> y, string? dash = null) =>
        new(name, Enumerable.Range(0, y.Count).Select(i => (double)i).ToArray(), y, dash);
}

/// <summary>
/// One sub-plot of a figure: axis titles, log axes, and its series. <paramref name="WholeX"/>: ticks on whole numbers
/// only (epochs); <paramref name="YRange"/>: a fixed value range (a fraction: 0 to 1) instead of the data's.
/// </summary>
public sealed record Panel(string Title, string XTitle, string YTitle, IReadOnlyList<Series> Series, bool LogY = false, bool LogX = false,
    bool WholeX = false, (double Low, double High)? YRange = null);

/// <summary>
/// Builds Plotly.NET charts from plotly.js attribute names. Plotly.NET's typed API is made for F#: from C# every
/// optional argument must be spelled out. Setting plotly.js attributes directly keeps the charts readable here
/// and still yields a Plotly.NET GenericChart, which notebooks and the runner display as usual.
/// </summary>
public static class PlotlyFigure
{
    static readonly string[] Palette = { "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf" };

    public static GenericChart Build(IEnumerable<Dictionary<string, object>> traces, Dictionary<string, object> layout)
    {
        using var ledger = Results.RunLedger.Time(Results.RunLedger.Charts);
        var charts = traces.Select(t =>
        {
            var trace = new Trace2D((string)t["type"]);
            foreach (var (k, v) in t) if (k != "type") trace.SetProperty(k, v);
            return GenericChart.ofTraceObject(true, trace);
        }).ToList();
        if (charts.Count == 0) throw new ArgumentException("a chart needs at least one trace");
        var chart = charts.Count == 1 ? charts[0] : GenericChart.combine(charts);
        var l = new Layout();
        foreach (var (k, v) in layout) l.SetProperty(k, v);
        return GenericChart.addLayout(l, chart);
    }

    /// <summary>Panels side by side (one row), each with its own axes; series with the same name share a colour and legend entry.</summary>
    public static GenericChart Panels(string title, IReadOnlyList<Panel> panels, int height = 420)
    {
        using var ledger = Results.RunLedger.Time(Results.RunLedger.Charts);
        if (panels.Count == 0) throw new ArgumentException("a chart needs at least one panel");
        var colours = new Dictionary<string, string>();
        var traces = new List<Dictionary<string, object>>();
        var layout = new Dictionary<string, object>
        {
            ["title"] = Text(title),
            ["height"] = height,
            // Plotly.NET's default width (600 px) squeezes side-by-side panels
            ["width"] = Math.Min(1150, 160 + 420 * panels.Count),
            ["margin"] = new Dictionary<string, object> { ["t"] = 60, ["b"] = 50, ["l"] = 60, ["r"] = 20 },
            ["legend"] = new Dictionary<string, object> { ["orientation"] = "h", ["y"] = -0.2 },
            ["annotations"] = new List<object>(),
        };
        double gap = 0.07, width = (1.0 - gap * (panels.Count - 1)) / panels.Count;
        for (int i = 0; i < panels.Count; i++)
        {
            var p = panels[i];
            string suffix = i == 0 ? "" : (i + 1).ToString();
            double left = i * (width + gap);
            layout["xaxis" + suffix] = new Dictionary<string, object>
            {
                ["domain"] = new[] { left, left + width }, ["title"] = Text(p.XTitle), ["anchor"] = "y" + suffix,
                ["type"] = p.LogX ? "log" : "linear",
            };
            if (p.WholeX) ((Dictionary<string, object>)layout["xaxis" + suffix])["dtick"] = 1;
            layout["yaxis" + suffix] = new Dictionary<string, object>
            {
                ["title"] = Text(p.YTitle), ["anchor"] = "x" + suffix, ["type"] = p.LogY ? "log" : "linear",
                ["exponentformat"] = "e",
            };
            if (p.YRange is { } range) ((Dictionary<string, object>)layout["yaxis" + suffix])["range"] = new[] { range.Low, range.High };
            if (panels.Count > 1)
                ((List<object>)layout["annotations"]).Add(new Dictionary<string, object>
                {
                    ["text"] = $"<b>{System.Net.WebUtility.HtmlEncode(p.Title)}</b>", ["x"] = left + width / 2, ["y"] = 1.0,
                    ["xref"] = "paper", ["yref"] = "paper", ["xanchor"] = "center", ["yanchor"] = "bottom", ["showarrow"] = false,
                });
            foreach (var s in p.Series)
            {
                if (s.X.Count != s.Y.Count)
                    throw new ArgumentException($"series '{s.Name}' has {s.X.Count} x values and {s.Y.Count} y values");
                string key = s.Group is null ? s.Name : s.Group + "\u0001" + s.Name;
                bool first = !colours.ContainsKey(key);
                if (first) colours[key] = s.Color ?? Palette[colours.Count % Palette.Length];
                var trace = new Dictionary<string, object>
                {
                    ["type"] = "scatter", ["mode"] = s.Marker != null || s.X.Count <= 60 ? "lines+markers" : "lines", ["name"] = s.Name,
                    ["x"] = s.X.Select(Clean).ToArray(), ["y"] = s.Y.Select(Clean).ToArray(),
                    ["xaxis"] = "x" + suffix, ["yaxis"] = "y" + suffix, ["legendgroup"] = key, ["showlegend"] = first,
                    ["line"] = new Dictionary<string, object> { ["color"] = colours[key], ["dash"] = s.Dash ?? "solid", ["width"] = s.Width },
                };
                if (s.Opacity < 1) trace["opacity"] = s.Opacity;
                if (s.Marker != null) trace["marker"] = new Dictionary<string, object> { ["symbol"] = s.Marker, ["size"] = 8 };
                if (s.Group != null)
                {
                    // plotly.js lists a legend group's entries together under its title
                    trace["legendgroup"] = s.Group;
                    trace["legendgrouptitle"] = Text(s.Group);
                }
                traces.Add(trace);
            }
        }
        if (panels.Count == 1)
        {
            layout.Remove("annotations");
        }
        return Build(traces, layout);
    }

    public static Dictionary<string, object> Text(string s) => new() { ["text"] = s };

    // NaN breaks a line in plotly.js only as null; Newtonsoft writes NaN as a bare token that JSON.parse rejects.
    static object? CleanObj(double v) => double.IsFinite(v) ? v : null;
    static object Clean(double v) => CleanObj(v)!;
}
