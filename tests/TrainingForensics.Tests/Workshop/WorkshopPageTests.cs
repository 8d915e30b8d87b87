using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using TrainingForensics.Tests.Notebooks;
using TrainingForensics.Tests.Runner;
using Xunit.Abstractions;
using static TrainingForensics.Tests.Runner.RunnerKit;

namespace TrainingForensics.Tests.Workshop;

/// <summary>
/// The reader-facing checks of issue 8: the runner's HTML renders in headless Chromium (scripts/check_pages.py),
/// the README pictures come from a tagged or configured chart (scripts/render_pictures.py), notebooks pass
/// nbformat's validator (scripts/validate_notebooks.py). Each check is skipped, with a logged note, where its tool
/// (python3, Debian's chromium, python3-nbformat) is not installed.
/// </summary>
public class WorkshopPageTests(ITestOutputHelper log)
{
    const string ChartCell =
        "display(TrainingForensics.Charts.Plots.Lines(\"loss\", \"step\", \"loss\",\n" +
        "    new[] { TrainingForensics.Charts.Series.Of(\"run\", new double[] { 3, 2, 1.5, 1.2 }) }));";

    bool Missing(bool chromium)
    {
        if (ScriptRunner.OnPath("python3") == null) { log.WriteLine("python3 not found: check skipped"); return true; }
        if (chromium && !ScriptRunner.HasChromium) { log.WriteLine("chromium not found (apt-get install chromium): check skipped"); return true; }
        return false;
    }

    [Fact]
    public void Page_check_passes_a_runner_page_and_fails_a_script_error_or_an_undrawn_chart()
    {
        if (Missing(chromium: true)) return;
        using var kit = new RunnerKit();
        Assert.Equal(0, kit.Run(kit.Write("page", Markdown("# A page"), Code(ChartCell))).ExitCode);

        var ok = ScriptRunner.Python("check_pages.py", kit.OutDir);
        Assert.True(ok.ExitCode == 0, ok.ToString());
        Assert.Contains("ok   page.html: 1 chart(s) drawn, no JavaScript error", ok.Stdout);
        Assert.Contains("ok   index.html", ok.Stdout);

        string html = kit.Html("page");
        string broken = Path.Combine(kit.Dir, "broken");
        Directory.CreateDirectory(broken);
        // the chart's own call renamed: an uncaught TypeError and a chart that never draws
        string throws = Regex.Replace(html, @"Plotly\.newPlot\('", "Plotly.noSuchFunction('");
        Assert.NotEqual(html, throws);
        File.WriteAllText(Path.Combine(broken, "throws.html"), throws);
        // the render call removed: no error at all, but an empty chart
        string silent = Regex.Replace(html, @"renderPlotly_[0-9a-f]+\(\);", "");
        Assert.NotEqual(html, silent);
        File.WriteAllText(Path.Combine(broken, "silent.html"), silent);

        var bad = ScriptRunner.Python("check_pages.py", broken);
        Assert.True(bad.ExitCode == 1, bad.ToString());
        Assert.Contains("FAIL silent.html", bad.Stdout);
        Assert.Contains("FAIL throws.html", bad.Stdout);
        Assert.Contains("Uncaught TypeError", bad.Stdout);
        Assert.Contains("Plotly never drew it", bad.Stdout);
        Assert.Contains("0 of 2 page(s)", bad.Stdout);
    }

    [Fact]
    public void A_picture_is_rendered_from_the_tagged_cell_and_two_tags_are_refused()
    {
        if (Missing(chromium: true)) return;
        using var kit = new RunnerKit();
        kit.Write("pic", Code("1"), Code(ChartCell, null, "readme-figure"));
        Assert.Equal(0, kit.Run(Path.Combine(kit.Dir, "pic.ipynb")).ExitCode);
        string pictures = Path.Combine(kit.Dir, "pictures");

        var r = ScriptRunner.Python("render_pictures.py", kit.OutDir, pictures);
        Assert.True(r.ExitCode == 0, r.ToString());
        byte[] png = File.ReadAllBytes(Path.Combine(pictures, "pic.png"));
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        int width = (png[16] << 24) | (png[17] << 16) | (png[18] << 8) | png[19];
        int height = (png[20] << 24) | (png[21] << 16) | (png[22] << 8) | png[23];
        Assert.InRange(width, 300, 4000);
        Assert.InRange(height, 200, 4000);

        kit.Write("two", Code(ChartCell, null, "readme-figure"), Code(ChartCell, null, "readme-figure"));
        Assert.Equal(0, kit.Run(Path.Combine(kit.Dir, "two.ipynb")).ExitCode);
        var twice = ScriptRunner.Python("render_pictures.py", kit.OutDir, pictures);
        Assert.Equal(1, twice.ExitCode);
        Assert.Contains("2 cells are tagged 'readme-figure'", twice.Stdout);
    }

    [Fact]
    public void The_picture_configuration_names_chart_cells_the_notebooks_have()
    {
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(ScriptRunner.Scripts, "readme-figures.json")))!.AsObject();
        foreach (var (name, entry) in config.Where(kv => !kv.Key.StartsWith('_')))
        {
            string file = Path.Combine(NotebookFiles.Folder, name + ".ipynb");
            if (!File.Exists(file)) { log.WriteLine($"{name}.ipynb not in notebooks/ (yet): entry not checked"); continue; }
            string id = entry!["cell"]!.GetValue<string>();
            var cell = NotebookFiles.Load(name + ".ipynb").GetProperty("cells").EnumerateArray()
                .FirstOrDefault(c => c.GetProperty("id").GetString() == id);
            Assert.True(cell.ValueKind == JsonValueKind.Object, $"scripts/readme-figures.json: {name} has no cell '{id}' (cell ids changed?)");
            Assert.Equal("code", cell.GetProperty("cell_type").GetString());
            Assert.Matches(@"Chart|Plots\.", NotebookFiles.Source(cell)); // a cell that draws: a chart builder or Plots.*
        }
        foreach (var path in NotebookFiles.All())
        {
            int tagged = NotebookFiles.CodeCells(NotebookFiles.Load(Path.GetFileName(path)))
                .Count(c => c.GetProperty("metadata").TryGetProperty("tags", out var t) && t.EnumerateArray().Any(x => x.GetString() == "readme-figure"));
            Assert.True(tagged <= 1, $"{Path.GetFileName(path)}: {tagged} cells tagged readme-figure; tag one");
        }
    }

    [Fact]
    public void Nbformat_validator_accepts_the_committed_notebooks_and_rejects_a_broken_one()
    {
        if (Missing(chromium: false)) return;
        using var dir = new TempDir();
        var nb = JsonNode.Parse(File.ReadAllText(NotebookFiles.All().First()))!.AsObject();
        ((JsonObject)nb["cells"]!.AsArray().First(c => c!["cell_type"]!.GetValue<string>() == "code")!)["outputs"] = "not a list";
        File.WriteAllText(dir.File("broken.ipynb"), nb.ToJsonString());

        var broken = ScriptRunner.Python("validate_notebooks.py", "--require-nbformat", dir.File("broken.ipynb"));
        if (broken.ExitCode == 3) { log.WriteLine("no nbformat module (apt-get install python3-nbformat): validation skipped"); return; }
        Assert.True(broken.ExitCode == 1, broken.ToString());
        Assert.Contains("FAIL", broken.Stdout);

        var committed = ScriptRunner.Python("validate_notebooks.py", "--require-nbformat", NotebookFiles.Folder);
        Assert.True(committed.ExitCode == 0, committed.ToString());
        Assert.Contains($"{NotebookFiles.All().Count()} of {NotebookFiles.All().Count()} notebook(s) valid", committed.Stdout);
    }
}
