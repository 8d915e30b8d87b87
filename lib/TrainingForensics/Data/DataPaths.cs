namespace TrainingForensics.Data;

/// <summary>Finds the repository's <c>data/</c> folder from wherever a notebook, test or tool runs.</summary>
public static class DataPaths
{
    /// <summary>
    /// <c>data/&lt;name&gt;</c>: from TF_DATA if set, else the first ancestor of the current directory or of the
    /// library's own location that has <c>data/&lt;name&gt;</c>. Throws naming the places searched.
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
        var starts = new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory, Path.GetDirectoryName(typeof(DataPaths).Assembly.Location) ?? "" };
        foreach (var start in starts.Where(s => s.Length > 0))
            for (var dir = new DirectoryInfo(start); dir != null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, "data", name);
                if (Directory.Exists(candidate)) return candidate;
            }
        throw new DataFileException(Path.Combine("data", name),
            $"not found above {string.Join(" or ", starts.Where(s => s.Length > 0).Distinct())}; set TF_DATA to the folder holding '{name}'");
    }
}
