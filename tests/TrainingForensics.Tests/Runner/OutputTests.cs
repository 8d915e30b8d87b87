using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.Data.Analysis;
using TrainingForensics.Charts;
using TrainingForensics.Runner;
using Xunit.Abstractions;
using static TrainingForensics.Tests.Runner.RunnerKit;

namespace TrainingForensics.Tests.Runner;

/// <summary>Formatters, offline plotly.js, HTML pages and nbformat validity of the executed notebook.</summary>
public class OutputTests(ITestOutputHelper log)
{
    const string ChartCell = "var chart = Plotly.NET.Chart.Invisible();\ndisplay(chart);\ndisplay(chart);";

    [Fact]
    public void Plotly_js_comes_from_Plotly_NET_and_is_embedded_once_offline()
    {
        Assert.Matches(@"^Plotly\.NET\.plotly-[\d.]+\.min\.js$", PlotlyJs.ResourceName);
        Assert.True(PlotlyJs.Source.Length > 1_000_000);

        using var kit = new RunnerKit();
        string path = kit.Write("chart", Markdown("## A chart"), Code(ChartCell), Code("display(Plotly.NET.Chart.Invisible());"));
        Assert.Equal(0, kit.Run(path).ExitCode);

        string html = kit.Html("chart");
        Assert.Equal(1, Count(html, PlotlyJs.ScriptMarker));
        Assert.Equal(1, Count(html, "For license information please see plotly.min.js.LICENSE.txt"));
        Assert.True(html.IndexOf(PlotlyJs.ScriptMarker, StringComparison.Ordinal) < html.IndexOf("</head>", StringComparison.Ordinal));
        Assert.Equal(3, Count(html, Formatters.ChartMarker));
        Assert.Equal(3, Count(html, "Plotly.newPlot('")); // the charts' calls (plotly.js itself has "Plotly.newPlot(" too)
        Assert.DoesNotMatch(new Regex(@"<script[^>]*\ssrc\s*=", RegexOptions.IgnoreCase), html);
        Assert.DoesNotMatch(new Regex(@"<link[^>]*https?:", RegexOptions.IgnoreCase), html);

        var nb = kit.Executed("chart");
        var charts = Outputs(nb, 1).Concat(Outputs(nb, 2)).Select(o => Text(o["data"]![MimeBundle.Html])).ToList();
        Assert.Equal(3, charts.Count);
        Assert.Contains(PlotlyJs.ScriptMarker, charts[0]); // the first chart carries plotly.js for VS Code / Jupyter
        Assert.All(charts.Skip(1), c => Assert.DoesNotContain(PlotlyJs.ScriptMarker, c));
        Assert.All(charts.Skip(1), c => Assert.DoesNotContain("http", c)); // the chart's own div/script: no URL at all
        Assert.Equal(1, Count(File.ReadAllText(Path.Combine(kit.OutDir, "chart.ipynb")), "LICENSE.txt"));
    }

    [Fact]
    public void A_page_without_charts_has_no_plotly_js()
    {
        using var kit = new RunnerKit();
        Assert.Equal(0, kit.Run(kit.Write("plain", Code("\"text\""))).ExitCode);
        Assert.DoesNotContain(PlotlyJs.ScriptMarker, kit.Html("plain"));
        Assert.DoesNotContain("<script", kit.Html("plain"));
    }

    static int Count(string s, string what) => Regex.Matches(s, Regex.Escape(what)).Count;

    [Fact]
    public void Dataframes_tensors_and_report_objects_are_formatted()
    {
        using var kit = new RunnerKit();
        string path = kit.Write("formats",
            Code("using Microsoft.Data.Analysis;\nvar df = new DataFrame(new PrimitiveDataFrameColumn<double>(\"loss\", Enumerable.Range(0, 60).Select(i => 1.0 / (i + 3))),\n" +
                 "  new StringDataFrameColumn(\"tag\", Enumerable.Range(0, 60).Select(i => $\"<t{i}>\")));\ndf"),
            Code("TorchSharp.torch.ones(2)"),
            Code("public class Report { public string ToHtml() => \"<b>report</b>\"; public override string ToString() => \"report text\"; }\nnew Report()"),
            Code("new[] { 1.5, 2.0 / 3 }"),
            Code("new List<string> { \"a\", \"b\" }"));
        Assert.Equal(0, kit.Run(path).ExitCode);
        var nb = kit.Executed("formats");

        var df = Outputs(nb, 0)[0]["data"]!;
        string table = Text(df[MimeBundle.Html]);
        Assert.StartsWith("<table", table);
        Assert.Contains("<th>loss</th><th>tag</th>", table);
        Assert.Contains("<td>0.333333</td><td>&lt;t0&gt;</td>", table);
        Assert.Equal(50, Count(table, "<tr><td>"));
        Assert.Contains("… 10 more rows", table);
        Assert.Contains("0.333333", Text(df[MimeBundle.Plain]));

        string tensor = Plain(Outputs(nb, 1)[0]);
        Assert.Contains("[2]", tensor);
        Assert.Contains("Float32", tensor);
        Assert.Matches(@"1\s+1", tensor);

        var report = Outputs(nb, 2)[0]["data"]!;
        Assert.Equal("<b>report</b>", Text(report[MimeBundle.Html]));
        Assert.Equal("report text", Text(report[MimeBundle.Plain]));

        Assert.Equal("[1.5, 0.666667]", Plain(Outputs(nb, 3)[0]));
        Assert.Equal("[a, b]", Plain(Outputs(nb, 4)[0]));

        string html = kit.Html("formats");
        Assert.Contains("<th>loss</th>", html); // html outputs go into the page as html
        Assert.Contains("<b>report</b>", html);
    }

    sealed class Custom { }

    [Fact]
    public void The_formatter_registry_prefers_the_most_derived_type()
    {
        var f = Formatters.CreateDefault();
        f.Register<Custom>(_ => MimeBundle.Text("custom!"));
        f.Register<IFormattable>(x => MimeBundle.Text("formattable " + x.ToString(null, System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal("custom!", f.Format(new Custom())[MimeBundle.Plain]);
        Assert.Equal("formattable 2.5", f.Format(2.5)[MimeBundle.Plain]);
        Assert.Equal("just a string", f.Format("just a string")[MimeBundle.Plain]);
        Assert.Equal("<null>", f.Format(null)[MimeBundle.Plain]);
        var df = new DataFrame(new PrimitiveDataFrameColumn<int>("n", [1, 2]));
        Assert.True(f.Format(df).ContainsKey(MimeBundle.Html));
    }

    [Fact]
    public void Markdown_renders_the_common_constructs()
    {
        string html = TrainingForensics.Runner.Markdown.ToHtml(
            "# Head *it*\n\nPara with **bold**, _it_, `a<b>` and [link](https://x.org/a).\nsecond line\n\n- one\n- two `x`\n\n1. first\n2. second\n\n" +
            "```csharp\nvar x = \"<tag>\";\n```\n\n| a | b |\n|---|--:|\n| 1 | 2 |\n\n> quoted\n\n---\n<script>alert(1)</script>");
        Assert.Contains("<h1>Head <em>it</em></h1>", html);
        Assert.Contains("<p>Para with <strong>bold</strong>, <em>it</em>, <code>a&lt;b&gt;</code> and <a href=\"https://x.org/a\">link</a>.\nsecond line</p>", html);
        Assert.Contains("<ul>\n<li>one</li>\n<li>two <code>x</code></li>\n</ul>", html);
        Assert.Contains("<ol>\n<li>first</li>\n<li>second</li>\n</ol>", html);
        Assert.Contains("<pre><code class=\"language-csharp\">var x = &quot;&lt;tag&gt;&quot;;</code></pre>", html);
        Assert.Contains("<th>a</th><th style=\"text-align:right\">b</th>", html);
        Assert.Contains("<td>1</td><td style=\"text-align:right\">2</td>", html);
        Assert.Contains("<blockquote>\n<p>quoted</p>\n</blockquote>", html);
        Assert.Contains("<hr>", html);
        Assert.DoesNotContain("<script>", html);
    }

    [Fact]
    public void Magics_blank_their_lines_and_keep_the_rest()
    {
        var m = new Magics();
        var r = m.Process("#r \"nuget: Plotly.NET, 6.0.0\"\r\n#i \"nuget: x\"\nusing X;\n#region a\n#endregion", Path.GetTempPath());
        Assert.Equal("\r\n\nusing X;\n#region a\n#endregion", r.Code);
        Assert.Empty(r.ReferencePaths);
    }

    [Fact]
    public void The_executed_notebook_is_valid_nbformat()
    {
        using var kit = new RunnerKit();
        string path = kit.Write("valid", Markdown("# t"), Code("int n = 2;", null, "parameters"),
            Code("Console.WriteLine(n);\nConsole.Error.WriteLine(\"e\");\nvar h = display(\"x\");\nh.Update(TorchSharp.torch.zeros(1));\n" +
                 "display(Plotly.NET.Chart.Invisible());\nn"),
            Code("throw new Exception(\"stop\");"), Code("1"));
        Assert.Equal(1, kit.Run(path, "--param", "n=3").ExitCode);
        string file = Path.Combine(kit.OutDir, "valid.ipynb");

        // structural checks that always run
        var nb = JsonNode.Parse(File.ReadAllText(file))!.AsObject();
        Assert.Equal(4, nb["nbformat"]!.GetValue<int>());
        foreach (var cell in nb["cells"]!.AsArray().Cast<JsonObject>())
        {
            Assert.NotNull(cell["id"]);
            Assert.NotNull(cell["metadata"]);
            Assert.NotNull(cell["source"]);
            if (cell["cell_type"]!.GetValue<string>() != "code") { Assert.False(cell.ContainsKey("outputs")); continue; }
            // nbformat 4.5: a code cell has exactly these keys (the schema allows no others)
            Assert.Equal(["cell_type", "execution_count", "id", "metadata", "outputs", "source"], cell.Select(kv => kv.Key).OrderBy(k => k, StringComparer.Ordinal));
            foreach (var o in cell["outputs"]!.AsArray().Cast<JsonObject>())
            {
                var keys = o.Select(kv => kv.Key).OrderBy(k => k, StringComparer.Ordinal).ToArray();
                string[] expected = o["output_type"]!.GetValue<string>() switch
                {
                    "stream" => ["name", "output_type", "text"],
                    "display_data" => ["data", "metadata", "output_type"],
                    "execute_result" => ["data", "execution_count", "metadata", "output_type"],
                    "error" => ["ename", "evalue", "output_type", "traceback"],
                    var t => throw new Xunit.Sdk.XunitException("unexpected output_type " + t),
                };
                Assert.Equal(expected, keys);
            }
        }

        // nbformat's own validator where python3 has it (Debian's python3-nbformat lives under /usr/bin/python3,
        // which a pyenv python3 earlier on PATH does not see)
        var psi = new ProcessStartInfo(File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("import sys\ntry:\n import nbformat\nexcept ImportError:\n print('SKIP'); sys.exit(0)\n" +
                             "nb = nbformat.read(sys.argv[1], as_version=4)\nnbformat.validate(nb)\nprint('VALID')");
        psi.ArgumentList.Add(file);
        Process p;
        try { p = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception) { log.WriteLine("python3 not found: nbformat validation skipped"); return; }
        using (p)
        {
            string stdout = p.StandardOutput.ReadToEnd(), stderr = p.StandardError.ReadToEnd();
            p.WaitForExit();
            if (stdout.Trim() == "SKIP") { log.WriteLine("python3 has no nbformat: nbformat validation skipped"); return; }
            Assert.True(p.ExitCode == 0 && stdout.Trim() == "VALID", $"nbformat.validate failed:\n{stdout}\n{stderr}");
        }
    }
}

public class ClaimPageTests
{
    [Fact]
    public void The_page_and_the_index_list_the_claims_a_run_checked()
    {
        using var kit = new RunnerKit();
        string nb = kit.Write("claims",
            RunnerKit.Code("TrainingForensics.Results.Claim.That(1 + 1 == 2, \"arithmetic holds\");"),
            RunnerKit.Code("TrainingForensics.Results.Claim.Near(0.5, 0.5, 0.01, \"a half is a half\");"));
        var r = kit.Run(nb);
        Assert.Equal(0, r.ExitCode);
        string page = File.ReadAllText(Path.Combine(kit.OutDir, "claims.html"));
        Assert.Contains("2 claims checked and held", page);
        Assert.Contains("<li>✓ arithmetic holds</li>", page);
        Assert.Contains("✓ a half is a half", File.ReadAllText(Path.Combine(kit.OutDir, "claims.ipynb"))); // in the cell's output
        Assert.Contains("arithmetic holds", File.ReadAllText(Path.Combine(kit.OutDir, "claims.figures.json")));
        Assert.Matches(@"claims\s+2/2\s+2\s+[\d.]+\s+ok", r.Stdout); // the summary's claims column
        string index = File.ReadAllText(Path.Combine(kit.OutDir, "index.html"));
        Assert.Contains("<th>Claims held</th>", index);
        Assert.Contains("</td><td>2</td>", index);

        string failing = kit.Write("failing", RunnerKit.Code("TrainingForensics.Results.Claim.That(true, \"first holds\");\nTrainingForensics.Results.Claim.Below(3, 2, \"three below two\");"));
        Assert.Equal(1, kit.Run(failing).ExitCode);
        string failedPage = File.ReadAllText(Path.Combine(kit.OutDir, "failing.html"));
        Assert.Contains("1 claim checked and held; then one failed", failedPage);
        Assert.Contains("✗ claim failed: three below two", failedPage);
    }
}
