using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using TrainingForensics.Charts;

namespace TrainingForensics.Runner;

/// <summary>
/// The executed notebook as one self-contained offline page: Markdown rendered, code cells with their outputs,
/// plotly.js inlined once in the head when a chart is shown. No external script, style or font is referenced.
/// </summary>
public static class HtmlReport
{
    const string Style = """
        body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
        pre{background:#f6f8fa;padding:.6em .8em;overflow-x:auto;border-radius:4px;font-size:13px;line-height:1.35}
        code{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,monospace}
        p code,li code,td code{background:#f0f0f0;padding:0 .2em;border-radius:3px}
        .cell{margin:1.2em 0}
        .code .prompt{color:#888;font:12px ui-monospace,monospace;margin-bottom:.2em}
        .code pre.source{border-left:3px solid #4a90d9}
        .output{margin:.3em 0 .3em 1.2em}
        .output pre{background:#fff;border:1px solid #eee}
        .output pre.stderr{background:#fff6e5}
        .output pre.error{background:#fdecea;border-color:#f5c2c0;color:#8a1f11}
        table{border-collapse:collapse;margin:.5em 0;font-size:13px}
        th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
        th{background:#f3f3f3}
        blockquote{border-left:3px solid #ccc;margin-left:0;padding-left:1em;color:#555}
        .status{padding:.4em .8em;border-radius:4px;display:inline-block}
        .status.ok{background:#e6f4ea;color:#137333}.status.failed{background:#fdecea;color:#a50e0e}
        .dataframe-more,.dataframe-shape{color:#666;font-size:12px;margin:.2em 0}
        """;

    public static string Render(Notebook nb, string title, string? error)
    {
        bool hasChart = false;
        var body = new StringBuilder();
        body.Append("<h1 class=\"notebook-title\">").Append(Esc(title)).Append("</h1>\n");
        body.Append(error == null
            ? "<p><span class=\"status ok\">ran without errors</span></p>\n"
            : $"<p><span class=\"status failed\">failed — {Esc(error)}</span></p>\n");
        foreach (var cell in nb.Cells.OfType<JsonObject>())
        {
            string type = Notebook.CellType(cell);
            string source = Notebook.Source(cell);
            if (type == "markdown")
                body.Append("<div class=\"cell markdown\">\n").Append(Markdown.ToHtml(source)).Append("</div>\n");
            else if (type == "raw")
                body.Append("<div class=\"cell raw\"><pre>").Append(Esc(source)).Append("</pre></div>\n");
            else if (type == "code")
            {
                var count = cell["execution_count"] is JsonValue v && v.TryGetValue<int>(out int n) ? n.ToString(CultureInfo.InvariantCulture) : " ";
                body.Append("<div class=\"cell code\">\n<div class=\"prompt\">In [").Append(count).Append("]:</div>\n<pre class=\"source\"><code class=\"language-csharp\">")
                    .Append(Esc(source)).Append("</code></pre>\n");
                if (cell["outputs"] is JsonArray outs)
                    foreach (var o in outs.OfType<JsonObject>())
                        body.Append(RenderOutput(o, ref hasChart));
                body.Append("</div>\n");
            }
        }
        var page = new StringBuilder();
        page.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>")
            .Append(Esc(title)).Append("</title>\n<style>\n").Append(Style).Append("</style>\n");
        if (hasChart) page.Append(PlotlyJs.ScriptTag()).Append('\n');
        page.Append("</head>\n<body>\n").Append(body).Append("</body>\n</html>\n");
        return page.ToString();
    }

    static string RenderOutput(JsonObject o, ref bool hasChart)
    {
        string kind = o["output_type"]?.GetValue<string>() ?? "";
        switch (kind)
        {
            case "stream":
                string name = o["name"]?.GetValue<string>() ?? "stdout";
                return $"<div class=\"output\"><pre class=\"{Esc(name)}\">{Esc(Notebook.MultilineText(o["text"]))}</pre></div>\n";
            case "error":
                var tb = o["traceback"] is JsonArray a ? string.Join("\n", a.Select(x => x?.GetValue<string>() ?? "")) : "";
                return $"<div class=\"output\"><pre class=\"error\">{Esc(o["ename"]?.GetValue<string>() ?? "")}: {Esc(o["evalue"]?.GetValue<string>() ?? "")}\n\n{Esc(tb)}</pre></div>\n";
            case "display_data" or "execute_result":
                var data = o["data"] as JsonObject;
                if (data?[MimeBundle.Html] is { } h)
                {
                    string html = StripPlotlyScript(Notebook.MultilineText(h));
                    hasChart |= html.Contains(Formatters.ChartMarker, StringComparison.Ordinal);
                    return $"<div class=\"output html\">\n{html}\n</div>\n";
                }
                if (data?[MimeBundle.Plain] is { } t)
                    return $"<div class=\"output\"><pre>{Esc(Notebook.MultilineText(t))}</pre></div>\n";
                return "";
            default:
                return "";
        }
    }

    /// <summary>Removes the inline plotly.js the executed notebook carries in its first chart (the page has it once in the head).</summary>
    internal static string StripPlotlyScript(string html)
    {
        while (true)
        {
            int marker = html.IndexOf(PlotlyJs.ScriptMarker, StringComparison.Ordinal);
            if (marker < 0) return html;
            int start = html.LastIndexOf("<script", marker, StringComparison.OrdinalIgnoreCase);
            int end = html.IndexOf("</script>", marker, StringComparison.OrdinalIgnoreCase);
            if (start < 0 || end < 0) return html;
            html = html[..start] + html[(end + "</script>".Length)..].TrimStart('\n');
        }
    }

    static string Esc(string s) => WebUtility.HtmlEncode(s);

    /// <summary>The run's index page: one row per notebook with status, cells and time.</summary>
    public static string RenderIndex(IReadOnlyList<NotebookRunResult> results, DateTime finishedUtc)
    {
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>TrainingForensics notebooks</title>\n<style>\n")
            .Append(Style).Append("td:first-child,th:first-child{text-align:left}\n</style>\n</head>\n<body>\n<h1>TrainingForensics notebooks</h1>\n")
            .Append("<p>Run finished ").Append(finishedUtc.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture)).Append(" UTC — ")
            .Append(results.Count(r => r.Succeeded)).Append(" of ").Append(results.Count).Append(" succeeded.</p>\n")
            .Append("<table>\n<thead><tr><th>Notebook</th><th>Status</th><th>Cells run</th><th>Seconds</th><th>Files</th></tr></thead>\n<tbody>\n");
        foreach (var r in results)
        {
            string html = Path.GetFileName(r.HtmlPath), ipynb = Path.GetFileName(r.NotebookPath), fig = Path.GetFileName(r.FiguresPath);
            sb.Append("<tr><td><a href=\"").Append(Esc(Uri.EscapeDataString(html))).Append("\">").Append(Esc(r.Name)).Append("</a></td><td>")
                .Append(r.Succeeded ? "<span class=\"status ok\">ok</span>" : $"<span class=\"status failed\" title=\"{Esc(r.Error ?? "")}\">failed</span>")
                .Append("</td><td>").Append(r.ExecutedCells).Append(" / ").Append(r.CodeCells)
                .Append("</td><td>").Append(r.Elapsed.TotalSeconds.ToString("F1", CultureInfo.InvariantCulture))
                .Append("</td><td><a href=\"").Append(Esc(Uri.EscapeDataString(ipynb))).Append("\">ipynb</a> · <a href=\"")
                .Append(Esc(Uri.EscapeDataString(fig))).Append("\">figures</a></td></tr>\n");
            if (!r.Succeeded && r.Error != null)
                sb.Append("<tr><td colspan=\"5\" style=\"text-align:left;color:#a50e0e\">").Append(Esc(r.Error)).Append("</td></tr>\n");
        }
        sb.Append("</tbody>\n</table>\n</body>\n</html>\n");
        return sb.ToString();
    }
}
