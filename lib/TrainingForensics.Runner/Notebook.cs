using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace TrainingForensics.Runner;

/// <summary>A notebook file could not be read as nbformat 4 JSON.</summary>
public sealed class NotebookFormatException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// An nbformat-4 notebook kept as a JSON tree, so whatever the runner does not touch (metadata, attachments,
/// markdown and raw cells) is written back exactly as it was read.
/// </summary>
public sealed class Notebook
{
    public JsonObject Root { get; }
    public string? SourcePath { get; init; }

    Notebook(JsonObject root) => Root = root;

    public JsonArray Cells => (JsonArray)Root["cells"]!;

    public int NbformatMinor => Root["nbformat_minor"] is JsonValue v && v.TryGetValue<int>(out int m) ? m : 0;

    /// <summary>The notebook-wide default kernel (polyglot_notebook), "csharp" when the notebook names none.</summary>
    public string DefaultKernel =>
        Root["metadata"]?["polyglot_notebook"]?["kernelInfo"]?["defaultKernelName"] is JsonValue v && v.TryGetValue<string>(out var s) && !string.IsNullOrWhiteSpace(s)
            ? s : "csharp";

    public static Notebook Load(string path)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new NotebookFormatException($"cannot read notebook '{path}': {e.Message}", e); }
        return Parse(text, path);
    }

    public static Notebook Parse(string json, string? path = null)
    {
        string where = path ?? "notebook";
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { AllowTrailingCommas = false });
        }
        catch (JsonException e)
        {
            throw new NotebookFormatException($"'{where}' is not valid JSON: {e.Message}", e);
        }
        if (node is not JsonObject root)
            throw new NotebookFormatException($"'{where}' is not a notebook: the top level is not a JSON object");
        if (root["nbformat"] is not JsonValue nbf || !nbf.TryGetValue<int>(out int major) || major != 4)
            throw new NotebookFormatException($"'{where}' is not an nbformat 4 notebook (\"nbformat\": 4 is missing)");
        if (root["cells"] is not JsonArray cells)
            throw new NotebookFormatException($"'{where}' has no \"cells\" array");
        for (int i = 0; i < cells.Count; i++)
        {
            if (cells[i] is not JsonObject c || c["cell_type"] is not JsonValue t || !t.TryGetValue<string>(out _))
                throw new NotebookFormatException($"'{where}': cell {i + 1} has no \"cell_type\"");
            if (c["source"] is not (JsonValue or JsonArray))
                throw new NotebookFormatException($"'{where}': cell {i + 1} has no \"source\"");
        }
        root["metadata"] ??= new JsonObject();
        return new Notebook(root) { SourcePath = path };
    }

    public Notebook Clone() => new((JsonObject)Root.DeepClone()) { SourcePath = SourcePath };

    public static string CellType(JsonObject cell) => cell["cell_type"]!.GetValue<string>();

    /// <summary>A cell's source, whether stored as one string or as a list of lines.</summary>
    public static string Source(JsonObject cell) => MultilineText(cell["source"]);

    public static string MultilineText(JsonNode? node) => node switch
    {
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonArray a => string.Concat(a.Select(x => x?.GetValue<string>() ?? "")),
        _ => "",
    };

    /// <summary>Text as nbformat's multi-line list: lines keep their "\n", the last one may lack it.</summary>
    public static JsonArray ToLines(string text)
    {
        var arr = new JsonArray();
        int start = 0;
        while (start < text.Length)
        {
            int nl = text.IndexOf('\n', start);
            int end = nl < 0 ? text.Length : nl + 1;
            arr.Add(text[start..end]);
            start = end;
        }
        return arr;
    }

    public static IReadOnlyList<string> Tags(JsonObject cell) =>
        cell["metadata"]?["tags"] is JsonArray tags
            ? tags.Select(t => t is JsonValue v && v.TryGetValue<string>(out var s) ? s : "").ToList()
            : [];

    /// <summary>The kernel a code cell runs in: its own polyglot/dotnet_interactive metadata, else the notebook's default.</summary>
    public string KernelOf(JsonObject cell)
    {
        var md = cell["metadata"];
        if (md?["polyglot_notebook"]?["kernelName"] is JsonValue k && k.TryGetValue<string>(out var kn) && !string.IsNullOrWhiteSpace(kn))
            return kn;
        if (md?["dotnet_interactive"]?["language"] is JsonValue l && l.TryGetValue<string>(out var ln) && !string.IsNullOrWhiteSpace(ln))
            return ln;
        return DefaultKernel;
    }

    public static bool IsCSharpKernel(string kernel) =>
        kernel.Trim().ToLowerInvariant() is "csharp" or "c#" or "cs" or ".net" or "dotnet";

    static readonly JsonSerializerOptions WriteOptions = new()
    {
        WriteIndented = true,
        IndentSize = 1,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public string ToJson() => Root.ToJsonString(WriteOptions) + "\n";

    public void Save(string path) => AtomicFile.WriteAllText(path, ToJson());
}

/// <summary>Writes a file through a temporary file in the same folder and a rename, so readers never see half a file.</summary>
public static class AtomicFile
{
    public static void WriteAllText(string path, string text)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        string temp = Path.Combine(dir, "." + Path.GetFileName(full) + ".tmp-" + Environment.ProcessId + "-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            File.WriteAllText(temp, text, new UTF8Encoding(false));
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }
}
