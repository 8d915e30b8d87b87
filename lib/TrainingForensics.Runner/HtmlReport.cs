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
        details.claims{background:#f3faf5;border:1px solid #cde8d5;border-radius:4px;padding:.4em .8em;margin:.6em 0}
        details.claims li{list-style:none;margin:.15em 0}details.claims li.failed{color:#a50e0e}
        """;

    public static string Render(Notebook nb, string title, string? error, RunStatus status = RunStatus.Failed, IReadOnlyList<string>? claims = null)
    {
        bool hasChart = false;
        var body = new StringBuilder();
        body.Append("<h1 class=\"notebook-title\">").Append(Esc(title)).Append("</h1>\n");
        body.Append(error == null
            ? "<p><span class=\"status ok\">ran without errors</span></p>\n"
            : $"<p><span class=\"status failed\">{StatusWords(status)} — {Esc(error)}</span></p>\n");
        body.Append(ClaimsList(claims ?? Array.Empty<string>(), error));
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

    // every claim the run checked, where a reader looks first; each also shows as a ✓ line in its cell's output
    static string ClaimsList(IReadOnlyList<string> claims, string? error)
    {
        bool failedClaim = error?.Contains("claim failed", StringComparison.Ordinal) == true;
        if (claims.Count == 0 && !failedClaim) return "<p class=\"claims\">This run checked no claims.</p>\n";
        var sb = new StringBuilder("<details class=\"claims\" open>\n<summary>")
            .Append(claims.Count).Append(claims.Count == 1 ? " claim" : " claims").Append(" checked and held")
            .Append(failedClaim ? "; then one failed (below)" : "").Append("</summary>\n<ul>\n");
        foreach (var c in claims) sb.Append("<li>✓ ").Append(Esc(c)).Append("</li>\n");
        if (failedClaim) sb.Append("<li class=\"failed\">").Append(Esc(error!)).Append("</li>\n");
        return sb.Append("</ul>\n</details>\n").ToString();
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

    static string StatusWords(RunStatus s) => s switch
    {
        RunStatus.Ok => "ok",
        RunStatus.TimedOut => "timed out",
        RunStatus.Interrupted => "interrupted",
        RunStatus.NotRun => "not run",
        _ => "failed",
    };

    static string Link(string file, string text) => $"<a href=\"{Esc(Uri.EscapeDataString(file))}\">{Esc(text)}</a>";

    static string? Str(JsonNode? n) => n is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    // a number read from runs.json and one just recorded (an int) differ in CLR type: go through the JSON text
    static string Number(JsonNode? n, string format) =>
        n is JsonValue v && v.GetValueKind() == System.Text.Json.JsonValueKind.Number
            ? double.Parse(v.ToJsonString(), CultureInfo.InvariantCulture).ToString(format, CultureInfo.InvariantCulture) : "—";

    /// <summary>
    /// The output folder's index: this run's tally, then one row per notebook ever run into the folder (runs.json)
    /// with its last status and finish time, and, for a run that was not good, the good run kept beside it.
    /// </summary>
    public static string RenderIndex(IReadOnlyDictionary<string, JsonObject> history, IReadOnlyList<NotebookRunResult> thisRun, DateTime finishedUtc,
                                     string? stoppedBy = null)
    {
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>TrainingForensics notebooks</title>\n<style>\n")
            .Append(Style).Append("td:first-child,th:first-child{text-align:left}\n</style>\n</head>\n<body>\n<h1>TrainingForensics notebooks</h1>\n")
            .Append("<p>Last run finished ").Append(finishedUtc.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture)).Append(" UTC — ")
            .Append(thisRun.Count(r => r.Succeeded)).Append(" of ").Append(thisRun.Count).Append(" succeeded");
        if (stoppedBy != null) sb.Append(" (").Append(Esc(stoppedBy)).Append(')');
        sb.Append(".</p>\n<p>Each notebook's last run in this folder:</p>\n")
            .Append("<table>\n<thead><tr><th>Notebook</th><th>Last status</th><th>Finished (UTC)</th><th>Cells run</th><th>Claims held</th><th>Seconds</th><th>Files</th></tr></thead>\n<tbody>\n");
        foreach (var (name, e) in history)
        {
            string status = Str(e["status"]) ?? "unknown";
            var files = e["files"] as JsonObject;
            string html = Str(files?["html"]) ?? name + ".html", ipynb = Str(files?["ipynb"]) ?? name + ".ipynb", fig = Str(files?["figures"]) ?? name + ".figures.json";
            string cells = e["cells_run"] is JsonValue && e["code_cells"] is JsonValue ? $"{Number(e["cells_run"], "0")} / {Number(e["code_cells"], "0")}" : "—";
            string when = (Str(e["finished_utc"]) ?? "—").Replace('T', ' ').TrimEnd('Z');
            string error = Str(e["error"]) ?? "";
            string cls = status == "ok" ? "ok" : "failed";
            sb.Append("<tr><td>").Append(Link(html, name)).Append("</td><td><span class=\"status ").Append(cls).Append("\" title=\"").Append(Esc(error)).Append("\">")
                .Append(Esc(status.Replace('_', ' '))).Append("</span></td><td>").Append(Esc(when))
                .Append("</td><td>").Append(cells).Append("</td><td>").Append(Number(e["claims_held"], "0")).Append("</td><td>").Append(Number(e["duration_s"], "F1"))
                .Append("</td><td>").Append(Link(ipynb, "ipynb")).Append(" · ").Append(Link(fig, "figures")).Append("</td></tr>\n");
            if (status != "ok" && error.Length > 0)
                sb.Append("<tr><td colspan=\"7\" style=\"text-align:left;color:#a50e0e\">").Append(Esc(error)).Append("</td></tr>\n");
            if (e["kept_ok"] is JsonObject kept)
            {
                var kf = kept["files"] as JsonObject;
                string khtml = Str(kf?["html"]) ?? name + ".html", kipynb = Str(kf?["ipynb"]) ?? name + ".ipynb", kfig = Str(kf?["figures"]) ?? name + ".figures.json";
                sb.Append("<tr class=\"kept\"><td colspan=\"7\" style=\"text-align:left\">last good run, finished ")
                    .Append(Esc((Str(kept["finished_utc"]) ?? "earlier").Replace('T', ' ').TrimEnd('Z'))).Append(" UTC, kept: ")
                    .Append(Link(khtml, khtml)).Append(" · ").Append(Link(kipynb, kipynb)).Append(" · ").Append(Link(kfig, kfig)).Append("</td></tr>\n");
            }
        }
        sb.Append("</tbody>\n</table>\n</body>\n</html>\n");
        return sb.ToString();
    }
}
