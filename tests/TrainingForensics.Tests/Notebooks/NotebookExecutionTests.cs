using System.Text.Json;
using TrainingForensics.Runner;

namespace TrainingForensics.Tests.Notebooks;

/// <summary>
/// Every committed notebook runs through the headless runner in its quick configuration, and every claim its cells
/// assert must hold: a failing Claim fails the notebook, and so this test.
/// </summary>
public class NotebookExecutionTests
{
    [Theory]
    [MemberData(nameof(NotebookFiles.Names), MemberType = typeof(NotebookFiles))]
    public void Runs_in_its_quick_configuration_with_every_claim_holding(string name)
    {
        using var outDir = new TempDir();
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        string path = Path.Combine(NotebookFiles.Folder, name);
        byte[] before = File.ReadAllBytes(path);
        int exit = RunnerCli.Run(new[] { path, "--quick", "--out", outDir.Path }, stdout, stderr);

        string stem = Path.GetFileNameWithoutExtension(name);
        string executed = Path.Combine(outDir.Path, stem + ".ipynb");
        Assert.True(exit == 0, $"{name} failed (exit {exit}):\n{stdout}\n{Errors(executed)}");
        Assert.Equal(before, File.ReadAllBytes(path)); // the source notebook is never modified

        var nb = JsonDocument.Parse(File.ReadAllText(executed)).RootElement;
        var code = nb.GetProperty("cells").EnumerateArray().Where(c => c.GetProperty("cell_type").GetString() == "code").ToList();
        Assert.All(code, c => Assert.DoesNotContain(c.GetProperty("outputs").EnumerateArray(), o => o.GetProperty("output_type").GetString() == "error"));
        Assert.Contains(code, c => c.GetProperty("metadata").TryGetProperty("tags", out var t) && t.EnumerateArray().Any(x => x.GetString() == "injected-parameters"));

        var figures = TrainingForensics.Results.Figures.ReadJson(Path.Combine(outDir.Path, stem + ".figures.json"));
        Assert.NotEmpty(figures);
        string html = File.ReadAllText(Path.Combine(outDir.Path, stem + ".html"));
        Assert.DoesNotContain("<script src=\"http", html);
    }

    static string Errors(string executed)
    {
        if (!File.Exists(executed)) return "(no executed notebook written)";
        var nb = JsonDocument.Parse(File.ReadAllText(executed)).RootElement;
        return string.Join("\n", nb.GetProperty("cells").EnumerateArray()
            .SelectMany(c => c.TryGetProperty("outputs", out var o) ? o.EnumerateArray() : Enumerable.Empty<JsonElement>())
            .Where(o => o.GetProperty("output_type").GetString() == "error")
            .Select(o => o.GetProperty("ename").GetString() + ": " + o.GetProperty("evalue").GetString()));
    }
}
