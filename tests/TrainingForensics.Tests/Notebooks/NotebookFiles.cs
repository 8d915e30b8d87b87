using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace TrainingForensics.Tests.Notebooks;

/// <summary>The committed notebooks and the central package versions, read the way the tests need them.</summary>
internal static class NotebookFiles
{
    public static string Folder => Path.Combine(TestPaths.RepositoryRoot, "notebooks");

    public static IEnumerable<string> All() => Directory.GetFiles(Folder, "*.ipynb").OrderBy(p => p, StringComparer.Ordinal);

    /// <summary>xunit theory data: one row per notebook file name.</summary>
    public static TheoryData<string> Names()
    {
        var data = new TheoryData<string>();
        foreach (var p in All()) data.Add(Path.GetFileName(p));
        return data;
    }

    public static JsonElement Load(string name) => JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, name))).RootElement;

    public static string Source(JsonElement cell) =>
        cell.GetProperty("source") is var s && s.ValueKind == JsonValueKind.Array
            ? string.Concat(s.EnumerateArray().Select(x => x.GetString()))
            : cell.GetProperty("source").GetString() ?? "";

    public static IEnumerable<JsonElement> CodeCells(JsonElement nb) =>
        nb.GetProperty("cells").EnumerateArray().Where(c => c.GetProperty("cell_type").GetString() == "code");

    /// <summary>Name → version of the packages notebooks may reference (Notebook="true" in Directory.Packages.props).</summary>
    public static IReadOnlyDictionary<string, string> CentralNotebookPackages()
    {
        var doc = XDocument.Load(Path.Combine(TestPaths.RepositoryRoot, "Directory.Packages.props"));
        return doc.Descendants("PackageVersion")
            .Where(e => (string?)e.Attribute("Notebook") == "true")
            .ToDictionary(e => (string)e.Attribute("Include")!, e => (string)e.Attribute("Version")!, StringComparer.OrdinalIgnoreCase);
    }

    public static readonly Regex NugetReference = new(@"^#r\s+""nuget:\s*([^,""]+?)\s*(?:,\s*([^""]+?))?\s*""\s*$", RegexOptions.Multiline);
    public static readonly Regex PathReference = new(@"^#r\s+""(?!nuget:)([^""]+)""\s*$", RegexOptions.Multiline);

    /// <summary>The notebook's quick configuration (metadata.trainingforensics.quick_parameters) as --param arguments.</summary>
    public static string[] QuickParameters(JsonElement nb)
    {
        var args = new List<string>();
        if (nb.GetProperty("metadata").TryGetProperty("trainingforensics", out var tf) && tf.TryGetProperty("quick_parameters", out var q))
            foreach (var p in q.EnumerateObject())
            {
                string value = p.Value.ValueKind switch
                {
                    JsonValueKind.String => p.Value.GetString()!,
                    JsonValueKind.True => "true",
                    JsonValueKind.False => "false",
                    _ => p.Value.GetRawText(),
                };
                args.Add("--param");
                args.Add($"{p.Name}={value}");
            }
        return args.ToArray();
    }
}
