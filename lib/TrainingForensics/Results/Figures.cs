using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace TrainingForensics.Results;

/// <summary>One named headline figure of a notebook run, e.g. <c>frozen_loss = 0.79326165</c>.</summary>
public sealed record Figure(string Name, object Value, string? Unit = null, string? Description = null);

/// <summary>
/// The headline figures a notebook records while it runs. The headless runner resets the store before each
/// notebook and writes it as <c>&lt;notebook&gt;.figures.json</c> beside the executed copy, so two runs can be
/// compared figure by figure. Names are snake_case identifiers; recording a name twice keeps the last value.
/// </summary>
public static class Figures
{
    static readonly object Gate = new();
    static readonly List<Figure> Store = new();

    /// <summary>Records a number (stored as a double; NaN/Infinity are refused because JSON cannot hold them).</summary>
    public static Figure Record(string name, double value, string? unit = null, string? description = null)
    {
        if (!double.IsFinite(value))
            throw new ArgumentOutOfRangeException(nameof(value), value, $"figure '{name}' must be finite to be recorded");
        return Put(new Figure(CheckName(name), value, unit, description));
    }

    /// <summary>Records a whole number (a count or a step index).</summary>
    public static Figure Record(string name, long value, string? unit = null, string? description = null) =>
        Put(new Figure(CheckName(name), value, unit, description));

    /// <summary>Records a yes/no outcome.</summary>
    public static Figure Record(string name, bool value, string? description = null) =>
        Put(new Figure(CheckName(name), value, null, description));

    /// <summary>Records a text value (a device name, a verdict).</summary>
    public static Figure Record(string name, string value, string? description = null) =>
        Put(new Figure(CheckName(name), value ?? throw new ArgumentNullException(nameof(value)), null, description));

    /// <summary>
    /// The environment variable naming a file that every <see cref="Record(string, double, string?, string?)"/> rewrites
    /// (atomically) with all figures so far: how a notebook run in the .NET Interactive kernel, which has no runner
    /// around it, leaves its figures JSON beside the executed copy.
    /// </summary>
    public const string PathVariable = "TF_FIGURES";

    /// <summary>The figures recorded so far, in recording order.</summary>
    public static IReadOnlyList<Figure> All
    {
        get { lock (Gate) return Store.ToList(); }
    }

    /// <summary>The value of a recorded figure; throws naming the figure when it was not recorded.</summary>
    public static object Get(string name)
    {
        lock (Gate)
            return Store.FirstOrDefault(f => f.Name == name)?.Value
                   ?? throw new KeyNotFoundException($"no figure named '{name}' was recorded");
    }

    /// <summary>Forgets every figure and every claim checked (the runner calls this before each notebook).</summary>
    public static void Reset()
    {
        lock (Gate) Store.Clear();
        Claim.Reset();
    }

    /// <summary>
    /// The figures as a JSON object: { "notebook": …, "figures": { name: { value, unit, description } }, "claims": [ the
    /// claims checked and held, in order ] }.
    /// </summary>
    public static string ToJson(string? notebook = null)
    {
        var figures = new Dictionary<string, object?>();
        foreach (var f in All)
            figures[f.Name] = new Dictionary<string, object?> { ["value"] = f.Value, ["unit"] = f.Unit, ["description"] = f.Description };
        var doc = new Dictionary<string, object?> { ["notebook"] = notebook, ["figures"] = figures, ["claims"] = Claim.Passed };
        return JsonSerializer.Serialize(doc, JsonOptions);
    }

    /// <summary>Writes <see cref="ToJson"/> atomically (temp file, then rename).</summary>
    public static void WriteJson(string path, string? notebook = null)
    {
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        string temp = full + ".tmp-" + Environment.ProcessId;
        File.WriteAllText(temp, ToJson(notebook));
        File.Move(temp, full, overwrite: true);
    }

    /// <summary>Reads a figures file written by <see cref="WriteJson"/> into name → value (numbers as double).</summary>
    public static IReadOnlyDictionary<string, object> ReadJson(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var result = new Dictionary<string, object>();
        foreach (var p in doc.RootElement.GetProperty("figures").EnumerateObject())
        {
            var v = p.Value.GetProperty("value");
            result[p.Name] = v.ValueKind switch
            {
                JsonValueKind.Number => v.GetDouble(),
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => v.GetString()!,
            };
        }
        return result;
    }

    static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        // 17 significant digits round-trip a double exactly; the default already does, keep invariant culture
        NumberHandling = JsonNumberHandling.Strict,
    };

    static string CheckName(string name)
    {
        if (string.IsNullOrEmpty(name) || !name.All(c => c is >= 'a' and <= 'z' or >= '0' and <= '9' or '_') || char.IsDigit(name[0]))
            throw new ArgumentException($"figure name '{name}' must be snake_case: lower-case letters, digits and '_', not starting with a digit", nameof(name));
        return name;
    }

    static Figure Put(Figure f)
    {
        lock (Gate)
        {
            Store.RemoveAll(x => x.Name == f.Name);
            Store.Add(f);
        }
        Rewrite();
        return f;
    }

    /// <summary>Rewrites the TF_FIGURES file (a kernel run), if one is named, with everything recorded so far.</summary>
    internal static void Rewrite()
    {
        string? path = Environment.GetEnvironmentVariable(PathVariable);
        if (!string.IsNullOrWhiteSpace(path)) WriteJson(path, Path.GetFileNameWithoutExtension(path).Replace(".figures", ""));
    }

    internal static string Format(object value) =>
        value is double d ? d.ToString("R", CultureInfo.InvariantCulture) : Convert.ToString(value, CultureInfo.InvariantCulture) ?? "";
}
