using Plotly.NET;

namespace TrainingForensics.Charts;

/// <summary>
/// A Plotly.NET chart as offline HTML: a div and the script that draws it, with no CDN or require.js loader.
/// plotly.js itself comes from <see cref="PlotlyJs"/>: the runner puts it once per notebook and page, the notebook
/// kernel's formatter (<see cref="Setup.NotebookKernel"/>) with the first chart it formats.
/// </summary>
public static class ChartHtml
{
    /// <summary>Marks the div of a formatted chart (page checks and the runner find charts by it).</summary>
    public const string ChartMarker = "data-tf-run-plotly-chart";

    /// <summary>
    /// The chart's div and drawing script. The script draws as soon as <c>window.Plotly</c> exists and otherwise
    /// retries for up to 30 s: in a notebook front end the output that carries plotly.js may render after this one
    /// (cells re-run out of order, outputs restored from a saved notebook).
    /// </summary>
    public static string Format(GenericChart chart)
    {
        using var ledger = Results.RunLedger.Time(Results.RunLedger.Charts);
        var options = DisplayOptions.setPlotlyReference(PlotlyJSReference.NoReference).Invoke(GenericChart.getDisplayOptions(chart));
        string html = WithCachedTemplate(GenericChart.setDisplayOptions(options, chart));
        return $"<div {ChartMarker}=\"1\">\n{WaitForPlotly(html)}\n</div>";
    }

    const string LayoutStart = "var layout = {";

    /// <summary>The last template serialised: a copy of it, and its <c>"template":{…}</c> as Plotly.NET writes it in a layout.</summary>
    sealed record SerialisedTemplate(DynamicObj.DynamicObj Copy, string Property);
    static SerialisedTemplate? _lastTemplate;

    /// <summary>
    /// Plotly.NET's HTML of the chart, with the layout's template serialised once per process and reused while charts
    /// carry an equal one: serialising the template took ~120 ms on every chart (whatever its data), the rest of a
    /// chart a few. Every chart carries its own copy of the default template, so they are compared by content.
    /// </summary>
    internal static string WithCachedTemplate(GenericChart chart)
    {
        var layout = GenericChart.getLayout(chart);
        if (layout.TryGetPropertyValue("template") is not { Value: DynamicObj.DynamicObj template }) return GenericChart.toChartHTML(chart);
        var cached = _lastTemplate;
        if (cached is null || !template.StructurallyEquals(cached.Copy))
        {
            if (SerialiseTemplate(template) is not { } property) return GenericChart.toChartHTML(chart);
            _lastTemplate = cached = new SerialisedTemplate((DynamicObj.DynamicObj)template.DeepCopyProperties(Microsoft.FSharp.Core.FSharpOption<bool>.Some(true)), property);
        }
        var bare = new Layout();
        layout.ShallowCopyDynamicPropertiesTo(bare, true);
        bare.RemoveProperty("template");
        string html = GenericChart.toChartHTML(GenericChart.setLayout(bare, chart));
        int at = html.IndexOf(LayoutStart, StringComparison.Ordinal);
        if (at < 0) return GenericChart.toChartHTML(chart);
        int rest = at + LayoutStart.Length;
        return html[..rest] + cached.Property + (html[rest] == '}' ? "" : ",") + html[rest..];
    }

    /// <summary><c>"template":{…}</c> as Plotly.NET writes <paramref name="template"/> in a layout (null if its HTML is not of the expected shape).</summary>
    static string? SerialiseTemplate(DynamicObj.DynamicObj template)
    {
        var only = new Layout();
        only.SetProperty("template", template);
        string html = GenericChart.toChartHTML(GenericChart.setLayout(only, Chart.Invisible()));
        int start = html.IndexOf(LayoutStart, StringComparison.Ordinal);
        int end = start < 0 ? -1 : html.IndexOf("};\n", start, StringComparison.Ordinal);
        if (end < 0) return null;
        string inner = html[(start + LayoutStart.Length)..end];
        // exactly one property, the template (else the splice would carry something else into every chart)
        using var parsed = System.Text.Json.JsonDocument.Parse("{" + inner + "}");
        return parsed.RootElement.EnumerateObject().Select(p => p.Name).ToList() is ["template"] ? inner : null;
    }

    /// <summary>Rewrites Plotly.NET's immediate <c>renderPlotly_ID();</c> call into one that waits for plotly.js.</summary>
    internal static string WaitForPlotly(string html)
    {
        const string prefix = "renderPlotly_";
        int call = html.LastIndexOf(prefix, StringComparison.Ordinal);
        if (call < 0) return html;
        int end = html.IndexOf("();", call, StringComparison.Ordinal);
        if (end < 0) return html;
        string name = html[call..end];
        // the definition ("var renderPlotly_ID = function") precedes the call; only the call is replaced
        if (html.IndexOf(name, StringComparison.Ordinal) == call) return html;
        string waiting = $"(function tfDraw(tries) {{ if (window.Plotly) {name}(); else if (tries > 0) setTimeout(function () {{ tfDraw(tries - 1); }}, 100); }})(300);";
        return html[..call] + waiting + html[(end + 3)..];
    }
}

/// <summary>plotly.js as shipped inside Plotly.NET (embedded resource "Plotly.NET.plotly-&lt;version&gt;.min.js").</summary>
public static class PlotlyJs
{
    static readonly Lazy<(string Name, string Source)> Resource = new(() =>
    {
        var asm = typeof(GenericChart).Assembly;
        string name = asm.GetManifestResourceNames()
            .FirstOrDefault(n => n.StartsWith("Plotly.NET.plotly", StringComparison.Ordinal) && n.EndsWith(".min.js", StringComparison.Ordinal))
            ?? throw new InvalidOperationException("Plotly.NET.dll carries no plotly.min.js resource");
        using var stream = asm.GetManifestResourceStream(name)!;
        using var reader = new StreamReader(stream);
        return (name, reader.ReadToEnd());
    });

    /// <summary>The resource name, e.g. "Plotly.NET.plotly-2.28.0.min.js".</summary>
    public static string ResourceName => Resource.Value.Name;

    public static string Source => Resource.Value.Source;

    /// <summary>Attribute that marks the inline plotly.js script (so a page can find and de-duplicate it).</summary>
    public const string ScriptMarker = "data-tf-run-plotly-js";

    /// <summary>plotly.js in one inline script element ("&lt;/script" inside the source is escaped).</summary>
    /// <remarks>
    /// The source runs inside a function whose <c>define</c>, <c>exports</c> and <c>module</c> are undefined, so its
    /// UMD header always sets <c>window.Plotly</c> (classic Jupyter has require.js, where it would define an AMD module).
    /// The guard skips it where plotly.js is already loaded (a second copy in the same front-end page).
    /// </remarks>
    public static string ScriptTag() =>
        $"<script type=\"text/javascript\" {ScriptMarker}=\"{ResourceName}\">\nif (!window.Plotly) (function (define, exports, module) {{\n" +
        Source.Replace("</script", "<\\/script", StringComparison.OrdinalIgnoreCase) +
        "\n}).call(window);\n</script>";
}
