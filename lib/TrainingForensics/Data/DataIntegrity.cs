namespace TrainingForensics.Data;

/// <summary>
/// What the data loaders could and could not verify in this process, for the environment report: a data folder
/// without its checksum list loads, but nothing proves its files are the originals, and that must not pass silently.
/// </summary>
public static class DataIntegrity
{
    static readonly List<string> _checked = new(), _unchecked = new();
    static readonly object Gate = new();

    /// <summary>Folders whose files matched their MD5SUMS.</summary>
    public static IReadOnlyList<string> Verified { get { lock (Gate) return _checked.ToList(); } }

    /// <summary>Warnings: folders loaded without a checksum list.</summary>
    public static IReadOnlyList<string> Warnings { get { lock (Gate) return _unchecked.ToList(); } }

    internal static void RecordVerified(string folder)
    {
        lock (Gate) if (!_checked.Contains(folder)) _checked.Add(folder);
    }

    internal static void RecordUnchecked(string folder, string why)
    {
        string warning = $"{folder}: {why}";
        lock (Gate)
        {
            if (_unchecked.Contains(warning)) return;
            _unchecked.Add(warning);
        }
        Console.Error.WriteLine($"warning: {warning}");
    }

    // Before anything loads (the setup cell runs first): say now whether the repository's MNIST can be verified.
    static string BeforeLoading()
    {
        string folder;
        try { folder = DataPaths.Find("mnist"); }
        catch (DataFileException) { return "no data loaded yet; data/mnist not found"; }
        return File.Exists(Path.Combine(folder, "MD5SUMS"))
            ? $"no data loaded yet; {folder} has MD5SUMS (checked when loaded)"
            : $"WARNING: {folder} has no MD5SUMS: its integrity cannot be checked";
    }

    /// <summary>One line for the environment report.</summary>
    public static string Summary()
    {
        lock (Gate)
        {
            if (_checked.Count == 0 && _unchecked.Count == 0) return BeforeLoading();
            var parts = new List<string>();
            if (_unchecked.Count > 0) parts.Add("WARNING, integrity unchecked: " + string.Join("; ", _unchecked));
            if (_checked.Count > 0) parts.Add("md5 verified: " + string.Join(", ", _checked));
            return string.Join(" — ", parts);
        }
    }
}
