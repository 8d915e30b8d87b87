using System.Text.Json.Nodes;
using TrainingForensics.Runner;
using static TrainingForensics.Tests.Runner.RunnerKit;

namespace TrainingForensics.Tests.Runner;

/// <summary>tf-run --prepare: parameterised copies that any client (the .NET Interactive kernel) runs unchanged.</summary>
public class PrepareTests
{
    static JsonObject Load(string path) => (JsonObject)JsonNode.Parse(File.ReadAllText(path))!;

    static IEnumerable<string> CodeSources(JsonObject nb) =>
        nb["cells"]!.AsArray().OfType<JsonObject>().Where(c => (string?)c["cell_type"] == "code").Select(c => Notebook.MultilineText(c["source"]));

    [Fact]
    public void Prepare_writes_the_quick_copy_without_running_it_and_rebases_relative_references()
    {
        using var kit = new RunnerKit();
        string lib = Path.Combine(kit.Dir, "lib", "Some.dll");
        Directory.CreateDirectory(Path.GetDirectoryName(lib)!);
        File.WriteAllText(lib, "not run");
        string src = kit.Write("nb",
            Code("#r \"nuget: Plotly.NET, 6.0.0\"\n#r \"lib/Some.dll\""),
            Code("int epochs = 5;\nstring name = \"a\";", "csharp", Parameters.ParametersTag),
            Code("throw new Exception(\"must not run\");"));
        var doc = Load(src);
        doc["metadata"]!["trainingforensics"] = new JsonObject { ["quick_parameters"] = new JsonObject { ["epochs"] = 1 } };
        File.WriteAllText(src, doc.ToJsonString());

        string outDir = Path.Combine(kit.Dir, "deeper", "prepared");
        var r = kit.Run(src, "--quick", "--param", "name=b", "--prepare", "--out", outDir);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("prepared", r.Stdout);
        var copy = Load(Path.Combine(outDir, "nb.ipynb"));
        var sources = CodeSources(copy).ToList();
        Assert.Contains("#r \"nuget: Plotly.NET, 6.0.0\"", sources[0]); // package references untouched
        Assert.Contains("#r \"../../lib/Some.dll\"", sources[0]); // the same file, seen from the copy's folder
        Assert.Equal(Path.GetFullPath(lib), Path.GetFullPath(Path.Combine(outDir, "../../lib/Some.dll")));
        Assert.Contains(sources, s => s.Contains("epochs = 1;") && s.Contains("name = \"b\";")); // injected after the parameters cell
        Assert.All(copy["cells"]!.AsArray().OfType<JsonObject>().Where(c => (string?)c["cell_type"] == "code"),
            c => Assert.Empty(c["outputs"]!.AsArray())); // nothing ran
        Assert.False(File.Exists(Path.Combine(outDir, "nb.figures.json")));
        Assert.False(File.Exists(Path.Combine(outDir, "index.html")));
    }

    [Fact]
    public void Prepare_refuses_to_overwrite_the_source_notebook()
    {
        using var kit = new RunnerKit();
        string src = kit.Write("nb", Code("int epochs = 5;", "csharp", Parameters.ParametersTag));
        string before = File.ReadAllText(src);
        var r = kit.Run(src, "--param", "epochs=1", "--prepare", "--out", kit.Dir);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("overwrite the source notebook", r.Stderr);
        Assert.Equal(before, File.ReadAllText(src));
    }

    [Fact]
    public void Cells_see_the_kernels_default_namespaces_and_no_more()
    {
        // the C# kernel (1.0.712001) imports System, System.Collections.Generic, System.Linq, System.Text and
        // System.Threading.Tasks; a notebook that leaned on anything more would fail there and pass here
        using var kit = new RunnerKit();
        string ok = kit.Write("ok", Code("var sb = new StringBuilder(); var l = new List<int> { 1 }; await Task.Yield(); display(l.Sum() + sb.Length);"));
        Assert.Equal(0, kit.Run(ok, "--out", kit.OutDir).ExitCode);
        string io = kit.Write("io", Code("display(File.Exists(\"x\"));"));
        var r = kit.Run(io, "--out", kit.OutDir);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("CS0103", File.ReadAllText(Path.Combine(kit.OutDir, "io.ipynb")));
    }
}
