using System.Text.Json;

namespace TrainingForensics.Tests.Notebooks;

/// <summary>nbdev-style gates on the committed notebooks: clean, valid Polyglot metadata, pinned versions, the agreed layout.</summary>
public class NotebookHygieneTests
{
    [Fact]
    public void The_start_here_notebook_exists()
    {
        Assert.Contains("00-start-here.ipynb", NotebookFiles.All().Select(Path.GetFileName));
    }

    [Theory]
    [MemberData(nameof(NotebookFiles.Names), MemberType = typeof(NotebookFiles))]
    public void Committed_without_outputs(string name)
    {
        foreach (var (cell, i) in NotebookFiles.Load(name).GetProperty("cells").EnumerateArray().Select((c, i) => (c, i)))
        {
            if (cell.GetProperty("cell_type").GetString() != "code") continue;
            Assert.True(cell.GetProperty("outputs").GetArrayLength() == 0, $"{name}: cell {i} has outputs; commit notebooks without outputs");
            Assert.True(cell.GetProperty("execution_count").ValueKind == JsonValueKind.Null, $"{name}: cell {i} has an execution count");
        }
    }

    [Theory]
    [MemberData(nameof(NotebookFiles.Names), MemberType = typeof(NotebookFiles))]
    public void Polyglot_metadata_is_valid(string name)
    {
        var nb = NotebookFiles.Load(name);
        Assert.Equal(4, nb.GetProperty("nbformat").GetInt32());
        var meta = nb.GetProperty("metadata");
        Assert.Equal(".net-csharp", meta.GetProperty("kernelspec").GetProperty("name").GetString());
        Assert.Equal("csharp", meta.GetProperty("polyglot_notebook").GetProperty("kernelInfo").GetProperty("defaultKernelName").GetString());
        var ids = new HashSet<string>();
        foreach (var cell in nb.GetProperty("cells").EnumerateArray())
        {
            Assert.True(ids.Add(cell.GetProperty("id").GetString()!), $"{name}: duplicate cell id");
            if (cell.GetProperty("cell_type").GetString() == "code")
                Assert.Equal("csharp", cell.GetProperty("metadata").GetProperty("polyglot_notebook").GetProperty("kernelName").GetString());
        }
    }

    [Theory]
    [MemberData(nameof(NotebookFiles.Names), MemberType = typeof(NotebookFiles))]
    public void First_cells_are_references_then_usings_then_parameters(string name)
    {
        var code = NotebookFiles.CodeCells(NotebookFiles.Load(name)).ToList();
        Assert.True(code.Count >= 4, $"{name} has too few code cells");
        var refs = Lines(code[0]);
        Assert.All(refs, l => Assert.StartsWith("#r ", l));
        Assert.DoesNotContain(code.Skip(1), c => Lines(c).Any(l => l.StartsWith("#r ")));
        Assert.All(Lines(code[1]), l => Assert.StartsWith("using ", l));
        Assert.DoesNotContain(code.Skip(2), c => Lines(c).Any(l => l.StartsWith("using ") && l.EndsWith(";") && !l.Contains('(')));
        var tags = code[2].GetProperty("metadata").TryGetProperty("tags", out var t) ? t.EnumerateArray().Select(x => x.GetString()).ToList() : new();
        Assert.Contains("parameters", tags);
        Assert.Single(code, c => c.GetProperty("metadata").TryGetProperty("tags", out var tt) && tt.EnumerateArray().Any(x => x.GetString() == "parameters"));
    }

    [Theory]
    [MemberData(nameof(NotebookFiles.Names), MemberType = typeof(NotebookFiles))]
    public void Nuget_references_are_pinned_to_the_central_versions(string name)
    {
        var central = NotebookFiles.CentralNotebookPackages();
        string refs = NotebookFiles.Source(NotebookFiles.CodeCells(NotebookFiles.Load(name)).First());
        var found = NotebookFiles.NugetReference.Matches(refs).ToList();
        Assert.NotEmpty(found);
        foreach (var m in found)
        {
            string package = m.Groups[1].Value, version = m.Groups[2].Value;
            Assert.True(central.ContainsKey(package), $"{name}: '{package}' is not a notebook package in Directory.Packages.props");
            Assert.True(version == central[package], $"{name}: {package} {(version == "" ? "is not pinned" : "pinned to " + version)}; Directory.Packages.props has {central[package]}");
        }
        Assert.Contains(found, m => m.Groups[1].Value == "TorchSharp-cpu");
    }

    [Theory]
    [MemberData(nameof(NotebookFiles.Names), MemberType = typeof(NotebookFiles))]
    public void Library_reference_points_at_the_built_library(string name)
    {
        string refs = NotebookFiles.Source(NotebookFiles.CodeCells(NotebookFiles.Load(name)).First());
        var paths = NotebookFiles.PathReference.Matches(refs).Select(m => Path.GetFullPath(Path.Combine(NotebookFiles.Folder, m.Groups[1].Value))).ToList();
        // one path per project whatever configuration was built (CopyForNotebooks puts each there): the library
        // first, then (04) the clinic, which is built on it
        string Built(string project) => Path.Combine(TestPaths.RepositoryRoot, "lib", project, "bin", TrainingForensics.Setup.NotebookKernel.BuildFolder, project + ".dll");
        var expected = name.StartsWith("04") ? new[] { Built("TrainingForensics"), Built("TrainingForensics.Clinic") } : new[] { Built("TrainingForensics") };
        Assert.Equal(expected, paths);
        foreach (var full in paths) Assert.True(File.Exists(full), $"{full} missing: `dotnet build` produces it");
    }

    [Theory]
    [MemberData(nameof(NotebookFiles.Names), MemberType = typeof(NotebookFiles))]
    public void Has_a_quick_configuration_for_the_tests(string name)
    {
        Assert.NotEmpty(NotebookFiles.QuickParameters(NotebookFiles.Load(name)));
    }

    static List<string> Lines(JsonElement cell) =>
        NotebookFiles.Source(cell).Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith("//")).ToList();
}
