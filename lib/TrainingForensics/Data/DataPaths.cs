namespace TrainingForensics.Data;

/// <summary>Finds a data set's folder from wherever a notebook, test or tool runs.</summary>
public static class DataPaths
{
    /// <summary>
    /// Where a data set may sit below a folder, in the order tried: the repository's own <c>data/</c>, then a
    /// <c>shared/data/</c> beside it (a workshop or CI machine keeps the larger data sets, such as Fashion-MNIST,
    /// outside the clone: <c>../shared/data</c> seen from the repository root).
    /// </summary>
    public static IReadOnlyList<string> Layouts { get; } = new[] { "data", Path.Combine("shared", "data") };

    /// <summary>
    /// The folder of data set <paramref name="name"/>: <c>TF_DATA/&lt;name&gt;</c> if TF_DATA is set; else, walking up
    /// from the current directory and from the library's own location, the first folder that has
    /// <c>data/&lt;name&gt;</c> or <c>shared/data/&lt;name&gt;</c> (<see cref="Layouts"/>). Throws naming the places searched.
    /// </summary>
    public static string Find(string name)
    {
        string? root = System.Environment.GetEnvironmentVariable("TF_DATA");
        if (!string.IsNullOrEmpty(root))
        {
            string p = Path.Combine(root, name);
            if (!Directory.Exists(p)) throw new DataFileException(p, $"not found (TF_DATA={root})");
            return p;
        }
        return Find(name, new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory, Path.GetDirectoryName(typeof(DataPaths).Assembly.Location) ?? "" });
    }

    /// <summary>The search of <see cref="Find(string)"/> without TF_DATA, from the given start folders (tests use it).</summary>
    internal static string Find(string name, IReadOnlyList<string> startFolders)
    {
        if (string.IsNullOrWhiteSpace(name) || name.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0)
            throw new ArgumentException($"'{name}' is not a data set name (a folder name such as 'mnist' or 'fashion-mnist')", nameof(name));
        var starts = startFolders.Where(s => s.Length > 0).Select(s => Path.GetFullPath(s).TrimEnd(Path.DirectorySeparatorChar)).Distinct().ToList();
        foreach (var start in starts)
            for (var dir = new DirectoryInfo(start); dir != null; dir = dir.Parent)
                foreach (var layout in Layouts)
                {
                    string candidate = Path.Combine(dir.FullName, layout, name);
                    if (Directory.Exists(candidate)) return candidate;
                }
        string where = string.Join(" and ", Layouts.Select(l => Path.Combine(l, name)));
        throw new DataFileException(Path.Combine("data", name),
            $"not found: searched {where} in every folder from {string.Join(" and from ", starts)} up to the file-system root; " +
            $"put the data set there or set TF_DATA to the folder that holds '{name}'");
    }
}
