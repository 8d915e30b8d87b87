using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using TrainingForensics.Results;

namespace TrainingForensics.Runner;

/// <summary>How a notebook's run ended. Anything but <see cref="Ok"/> is not a good run.</summary>
public enum RunStatus { Ok, Failed, TimedOut, Interrupted, NotRun }

/// <summary>The three files of one notebook's run, as names inside the output folder.</summary>
public sealed record RunFiles(string Notebook, string Html, string Figures)
{
    /// <summary>A good run's files: NAME.ipynb, NAME.html, NAME.figures.json.</summary>
    public static RunFiles Good(string name) => new(name + ".ipynb", name + ".html", name + ".figures.json");

    /// <summary>
    /// A failed run's files when a good run is kept: NAME.failed.ipynb, NAME.failed.html, NAME.figures.failed.json
    /// (not NAME.failed.figures.json, which a glob for *.figures.json would take for a notebook named NAME.failed).
    /// </summary>
    public static RunFiles Beside(string name) => new(name + ".failed.ipynb", name + ".failed.html", name + ".figures.failed.json");

    public IEnumerable<string> All => [Notebook, Html, Figures];
}

/// <summary>
/// Where a run's outputs go, so that a failed run never replaces a good one. A run that fails, times out or is
/// interrupted while the folder holds a good run of the same notebook (NAME.ipynb whose tf_run status is "ok")
/// writes its outputs beside it (<see cref="RunFiles.Beside"/>) and leaves the good ones as they are. Any other
/// run writes NAME.ipynb, NAME.html and NAME.figures.json and removes an earlier failed run's files beside them.
/// Every file is written through a temporary file and a rename.
/// </summary>
public static class RunOutputs
{
    public static string StatusText(RunStatus s) => s switch
    {
        RunStatus.Ok => "ok",
        RunStatus.Failed => "failed",
        RunStatus.TimedOut => "timed_out",
        RunStatus.Interrupted => "interrupted",
        _ => "not_run",
    };

    public static string Utc(DateTime t) => t.ToUniversalTime().ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);

    /// <summary>The finish time of the good run the folder holds for <paramref name="name"/>, or null when it holds none.</summary>
    public static string? GoodRunIn(string outDir, string name)
    {
        var meta = TfRunMetadata(Path.Combine(outDir, RunFiles.Good(name).Notebook));
        if (meta?["status"]?.GetValue<string>() != "ok") return null;
        return meta["finished_utc"] is JsonValue v && v.TryGetValue<string>(out var s) ? s : "an earlier run";
    }

    /// <summary>An executed notebook's metadata.tf_run, or null when the file is missing, unreadable or not tf-run's.</summary>
    internal static JsonObject? TfRunMetadata(string ipynb)
    {
        if (!File.Exists(ipynb)) return null;
        try
        {
            using var stream = File.OpenRead(ipynb);
            return JsonNode.Parse(stream)?["metadata"]?["tf_run"] as JsonObject;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or InvalidOperationException)
        {
            return null; // nothing readable to protect: a new run may replace it
        }
    }

    /// <summary>Writes a notebook's executed copy, page and figures where <see cref="RunOutputs"/> says; returns the files and the good run kept, if any.</summary>
    public static (RunFiles Files, string? KeptGoodRun) Write(string outDir, string name, RunStatus status, Notebook executed, string html, string figuresJson)
    {
        string? kept = status == RunStatus.Ok ? null : GoodRunIn(outDir, name);
        var files = kept == null ? RunFiles.Good(name) : RunFiles.Beside(name);
        executed.Save(Path.Combine(outDir, files.Notebook));
        AtomicFile.WriteAllText(Path.Combine(outDir, files.Html), html);
        AtomicFile.WriteAllText(Path.Combine(outDir, files.Figures), figuresJson);
        if (kept == null)
            foreach (var stale in RunFiles.Beside(name).All)
                File.Delete(Path.Combine(outDir, stale)); // an earlier failure's files: this run supersedes them
        return (files, kept);
    }

    /// <summary>The recorded figures as tf-run writes them: the library's JSON with the run's status, finish time and error added.</summary>
    public static string FiguresJson(string name, RunStatus status, DateTime finishedUtc, string? error)
    {
        var doc = JsonNode.Parse(Figures.ToJson(name))!.AsObject();
        var figures = doc["figures"];
        doc.Remove("figures");
        // a reader that only takes "figures" sees no change; one that checks "status" can tell a partial set from a full one
        doc["status"] = StatusText(status);
        doc["finished_utc"] = Utc(finishedUtc);
        if (error != null) doc["error"] = error;
        doc["figures"] = figures;
        return doc.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }

    // .NET's message for EACCES names the path of the file it tried (here a probe the user never asked for)
    static string Reason(Exception e) => e is UnauthorizedAccessException ? "permission denied" : e.Message;

    /// <summary>
    /// Checks the output folder before any cell runs: it is (or can be made) a folder, a file can be created in it,
    /// and no output would overwrite a source notebook or a folder. Throws <see cref="UsageException"/> naming the path.
    /// </summary>
    public static void CheckOutDir(string outDir, IEnumerable<PreparedNotebook> notebooks)
    {
        if (File.Exists(outDir))
            throw new UsageException($"--out '{outDir}' is a file, not a folder: name a folder (it is created if missing)");
        try { Directory.CreateDirectory(outDir); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // "could not find a part of the path" says little when the part in the way is a file: name it
            string? above = Path.GetDirectoryName(outDir);
            while (above != null && !Path.Exists(above)) above = Path.GetDirectoryName(above);
            string why = above != null && File.Exists(above) ? $"'{above}' is a file, not a folder" : Reason(e);
            throw new UsageException($"--out '{outDir}': cannot create the folder: {why}");
        }
        string probe = Path.Combine(outDir, $".tf-run-probe-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            using (File.Create(probe, 1, FileOptions.DeleteOnClose)) { }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"--out '{outDir}' is not writable: creating a file in it failed: {Reason(e)}");
        }
        foreach (var p in notebooks)
        {
            string source = Path.GetFullPath(p.SourcePath);
            foreach (var file in RunFiles.Good(p.Name).All.Concat(RunFiles.Beside(p.Name).All).Append(RunHistory.FileName).Append("index.html"))
            {
                string target = Path.Combine(outDir, file);
                if (string.Equals(Path.GetFullPath(target), source, StringComparison.Ordinal))
                    throw new UsageException($"--out '{outDir}' would overwrite the source notebook '{p.SourcePath}': choose another --out");
                if (Directory.Exists(target))
                    throw new UsageException($"--out '{outDir}': the output '{target}' is a folder; move it away or choose another --out");
            }
        }
    }
}

/// <summary>
/// runs.json in the output folder: each notebook's last run (status, finish time, cells, files, the good run kept
/// beside a failed one). index.html is rendered from it, so it lists every notebook run into the folder, not only
/// the last run's. Rewritten atomically after each run.
/// </summary>
public static class RunHistory
{
    public const string FileName = "runs.json";

    /// <summary>The recorded runs by notebook name; when the folder has no runs.json, what its executed notebooks say.</summary>
    public static SortedDictionary<string, JsonObject> Load(string outDir, TextWriter warnings)
    {
        var result = new SortedDictionary<string, JsonObject>(StringComparer.Ordinal);
        string path = Path.Combine(outDir, FileName);
        if (File.Exists(path))
        {
            try
            {
                if (JsonNode.Parse(File.ReadAllText(path))?["notebooks"] is JsonObject notebooks)
                    foreach (var (name, entry) in notebooks)
                        if (entry is JsonObject o) result[name] = (JsonObject)o.DeepClone();
                return result;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
            {
                warnings.WriteLine($"tf-run: warning: {path} is unreadable ({e.Message.Replace('\n', ' ')}); it is rebuilt from the executed notebooks");
                result.Clear();
            }
        }
        // an output folder from before runs.json (or one whose runs.json was lost): its executed notebooks say their own status
        if (Directory.Exists(outDir))
            foreach (var ipynb in Directory.GetFiles(outDir, "*.ipynb"))
            {
                string name = Path.GetFileNameWithoutExtension(ipynb);
                if (name.EndsWith(".failed", StringComparison.Ordinal) || TfRunMetadata(ipynb) is not { } meta) continue;
                var files = RunFiles.Good(name);
                result[name] = new JsonObject
                {
                    ["status"] = meta["status"]?.DeepClone(),
                    ["finished_utc"] = meta["finished_utc"]?.DeepClone(),
                    ["duration_s"] = meta["duration_s"]?.DeepClone(),
                    ["error"] = meta["error"]?.DeepClone(),
                    ["source"] = meta["source"]?.DeepClone(),
                    ["files"] = FilesJson(files),
                };
            }
        return result;
    }

    static JsonObject? TfRunMetadata(string ipynb) => RunOutputs.TfRunMetadata(ipynb);

    internal static JsonObject FilesJson(RunFiles f) => new() { ["ipynb"] = f.Notebook, ["html"] = f.Html, ["figures"] = f.Figures };

    /// <summary>Records the runs that ran (not those left unrun) and writes runs.json atomically.</summary>
    public static void Record(SortedDictionary<string, JsonObject> history, IEnumerable<NotebookRunResult> results, string outDir)
    {
        foreach (var r in results.Where(r => r.Status != RunStatus.NotRun))
        {
            var entry = new JsonObject
            {
                ["status"] = RunOutputs.StatusText(r.Status),
                ["finished_utc"] = RunOutputs.Utc(r.FinishedUtc),
                ["duration_s"] = Math.Round(r.Elapsed.TotalSeconds, 3),
                ["cells_run"] = r.ExecutedCells,
                ["code_cells"] = r.CodeCells,
                ["claims_held"] = r.Claims.Count,
                ["error"] = r.Error,
                ["source"] = r.SourcePath,
                ["files"] = FilesJson(new RunFiles(Path.GetFileName(r.NotebookPath), Path.GetFileName(r.HtmlPath), Path.GetFileName(r.FiguresPath))),
            };
            if (r.KeptGoodRun != null)
                entry["kept_ok"] = new JsonObject { ["finished_utc"] = r.KeptGoodRun, ["files"] = FilesJson(RunFiles.Good(r.Name)) };
            history[r.Name] = entry;
        }
        var notebooks = new JsonObject();
        foreach (var (name, entry) in history) notebooks[name] = entry;
        var doc = new JsonObject { ["tool"] = "tf-run", ["notebooks"] = notebooks };
        AtomicFile.WriteAllText(Path.Combine(outDir, FileName), doc.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }
}
