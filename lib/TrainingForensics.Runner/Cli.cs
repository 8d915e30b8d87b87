using System.Globalization;
using System.Text;

namespace TrainingForensics.Runner;

/// <summary>A bad command line or input (exit code 2, nothing executed).</summary>
public sealed class UsageException(string message) : Exception(message);

public sealed record CliOptions(
    IReadOnlyList<string> Inputs, string OutDir, IReadOnlyList<KeyValuePair<string, string>> Parameters, bool Help, bool Quick = false,
    string? Device = null, bool Prepare = false)
{
    /// <summary>The longest a cell may run; null: no limit (--cell-timeout 0).</summary>
    public TimeSpan? CellTimeout { get; init; } = RunnerCli.DefaultCellTimeout;
}

/// <summary>
/// tf-run's command line: see <see cref="Usage"/>.
/// Exit codes: 0 every notebook ran, 1 a notebook failed or timed out (its outputs show the error), 2 bad arguments,
/// input or output folder (nothing ran), 130 / 143 interrupted by SIGINT / SIGTERM (what ran is written).
/// </summary>
public static class RunnerCli
{
    public const int Ok = 0, NotebookFailed = 1, UsageError = 2;

    /// <summary>A cell's time limit unless --cell-timeout says otherwise: far beyond any quick run, short of forever.</summary>
    public static readonly TimeSpan DefaultCellTimeout = TimeSpan.FromMinutes(30);

    public const string Usage = """
        Usage: tf-run [notebook.ipynb | folder]... [--out DIR] [--param name=value]... [--quick] [--device cpu|cuda|auto]
                      [--cell-timeout T] [--prepare]

        Runs C# Polyglot notebooks headlessly (one Roslyn scripting state per notebook, cells in order) and writes,
        for each notebook NAME: DIR/NAME.ipynb (executed copy with outputs), DIR/NAME.html (offline page),
        DIR/NAME.figures.json (recorded figures), DIR/runs.json (each notebook's last run) and DIR/index.html.
        A run that fails, times out or is interrupted while DIR holds a good run of NAME leaves that run in place and
        writes NAME.failed.ipynb, NAME.failed.html and NAME.figures.failed.json beside it.

          notebook.ipynb | folder   notebooks to run; a folder means its *.ipynb files, sorted by name
                                    (default: notebooks/ in the current directory)
          --out DIR                 output folder (default: artifacts)
          --param name=value        set a parameter of the notebook's "parameters"-tagged cell (repeatable);
                                    the value is converted to the declared type (int, long, double, float,
                                    decimal, bool, string)
          --quick                   use each notebook's quick configuration (metadata
                                    trainingforensics.quick_parameters, what the tests run); --param wins
          --device cpu|cuda|auto    the device TorchEnvironment.Setup picks (sets TF_DEVICE for the run);
                                    default: TF_DEVICE if set, else auto (CUDA when a CUDA libtorch is
                                    loaded and a GPU is usable, else CPU), as in the kernel
          --cell-timeout T          the longest one cell may run: seconds, or with a unit (90s, 10m, 2h);
                                    0 for no limit (default: 30m). A cell past it fails its notebook
          --prepare                 write each notebook with its parameters applied to DIR/NAME.ipynb and run
                                    nothing: a copy any client runs unchanged (the .NET Interactive kernel through
                                    VS Code, Jupyter or dotnet-repl); relative #r paths are rewritten for DIR
          -h, --help                show this help

        Exit codes: 0 all notebooks ran, 1 a notebook failed or timed out, 2 bad arguments, unreadable notebook or
        unwritable output folder (nothing ran), 130 / 143 stopped by SIGINT / SIGTERM (the notebook is written as far
        as it ran, marked interrupted).
        """;

    public static CliOptions Parse(IReadOnlyList<string> args)
    {
        var inputs = new List<string>();
        var parameters = new List<KeyValuePair<string, string>>();
        string? outDir = null;
        string? device = null;
        TimeSpan? cellTimeout = DefaultCellTimeout;
        bool help = false, onlyInputs = false, quick = false, prepare = false;
        for (int i = 0; i < args.Count; i++)
        {
            string a = args[i];
            string? Value(string option)
            {
                int eq = a.IndexOf('=');
                if (a.StartsWith(option + "=", StringComparison.Ordinal)) return a[(eq + 1)..];
                if (i + 1 >= args.Count) throw new UsageException($"{option} needs a value");
                return args[++i];
            }
            if (onlyInputs || !a.StartsWith('-') || a == "-") { inputs.Add(a); continue; }
            if (a == "--") { onlyInputs = true; continue; }
            if (a is "-h" or "--help" or "-?") { help = true; continue; }
            if (a == "--quick") { quick = true; continue; }
            if (a == "--prepare") { prepare = true; continue; }
            if (a == "--out" || a.StartsWith("--out=", StringComparison.Ordinal))
            {
                outDir = Value("--out");
                if (string.IsNullOrWhiteSpace(outDir)) throw new UsageException("--out needs a folder");
                continue;
            }
            if (a == "--device" || a.StartsWith("--device=", StringComparison.Ordinal))
            {
                device = Value("--device")!.Trim().ToLowerInvariant();
                if (device is not ("cpu" or "cuda" or "auto"))
                    throw new UsageException($"--device '{device}': use cpu, cuda or auto");
                continue;
            }
            if (a == "--cell-timeout" || a.StartsWith("--cell-timeout=", StringComparison.Ordinal))
            {
                cellTimeout = ParseTimeout(Value("--cell-timeout")!);
                continue;
            }
            if (a == "--param" || a.StartsWith("--param=", StringComparison.Ordinal))
            {
                string p = Value("--param")!;
                int eq = p.IndexOf('=');
                if (eq <= 0) throw new UsageException($"--param '{p}' is not name=value");
                string name = p[..eq].Trim();
                if (!IsIdentifier(name)) throw new UsageException($"--param '{p}': '{name}' is not a C# identifier");
                parameters.RemoveAll(kv => kv.Key == name);
                parameters.Add(KeyValuePair.Create(name, p[(eq + 1)..]));
                continue;
            }
            throw new UsageException($"unknown option '{a}' (see --help)");
        }
        return new CliOptions(inputs, outDir ?? "artifacts", parameters, help, quick, device, prepare) { CellTimeout = cellTimeout };
    }

    static readonly System.Text.RegularExpressions.Regex TimeoutPattern =
        new(@"^(?<n>\d+(\.\d+)?)\s*(?<unit>ms|s|m|min|h)?$", System.Text.RegularExpressions.RegexOptions.CultureInvariant);

    /// <summary>A --cell-timeout value: seconds, or a number with ms, s, m (min) or h; 0 means no limit (null).</summary>
    internal static TimeSpan? ParseTimeout(string text)
    {
        var m = TimeoutPattern.Match(text.Trim());
        if (!m.Success)
            throw new UsageException($"--cell-timeout '{text}': give seconds (90), a number with a unit (90s, 10m, 2h), or 0 for no limit");
        double n = double.Parse(m.Groups["n"].Value, CultureInfo.InvariantCulture);
        double ms = n * (m.Groups["unit"].Value switch { "ms" => 1, "m" or "min" => 60_000, "h" => 3_600_000, _ => 1000 });
        if (ms == 0) return null;
        // the wait takes whole milliseconds up to int.MaxValue (24.8 days); a limit beyond that is no limit in practice
        if (ms < 1 || ms >= int.MaxValue)
            throw new UsageException($"--cell-timeout '{text}': give at least 1 ms and under 24 days, or 0 for no limit");
        return TimeSpan.FromMilliseconds(ms);
    }

    static bool IsIdentifier(string s) =>
        s.Length > 0 && (char.IsLetter(s[0]) || s[0] == '_') && s.All(c => char.IsLetterOrDigit(c) || c == '_');

    /// <summary>The notebooks the inputs name: files as given, folders' *.ipynb sorted by name (ordinal).</summary>
    public static IReadOnlyList<string> ResolveInputs(IReadOnlyList<string> inputs)
    {
        var files = new List<string>();
        var given = inputs.Count > 0 ? inputs : ["notebooks"];
        foreach (var input in given)
        {
            if (Directory.Exists(input))
            {
                var found = Directory.GetFiles(input, "*.ipynb", SearchOption.TopDirectoryOnly)
                    .Where(f => !Path.GetFileName(f).StartsWith('.'))
                    .OrderBy(f => Path.GetFileName(f), StringComparer.Ordinal).ToList();
                if (found.Count == 0) throw new UsageException($"no *.ipynb notebooks in folder '{input}'");
                files.AddRange(found);
            }
            else if (File.Exists(input))
            {
                if (!input.EndsWith(".ipynb", StringComparison.OrdinalIgnoreCase))
                    throw new UsageException($"'{input}' is not a notebook (.ipynb)");
                files.Add(input);
            }
            else
                throw new UsageException(inputs.Count == 0
                    ? $"no notebook given and no folder 'notebooks' in {Directory.GetCurrentDirectory()}"
                    : $"no such notebook or folder: '{input}'");
        }
        var full = files.Select(Path.GetFullPath).Distinct(StringComparer.Ordinal).ToList();
        var clash = full.GroupBy(f => Path.GetFileNameWithoutExtension(f), StringComparer.OrdinalIgnoreCase).FirstOrDefault(g => g.Count() > 1);
        if (clash != null)
            throw new UsageException($"two notebooks would write the same outputs '{clash.Key}': {string.Join(", ", clash)}");
        return full;
    }

    /// <summary>Runs tf-run in this process: parses, checks every notebook, runs them, writes outputs and the summary.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr, Interruption? interruption = null)
    {
        List<PreparedNotebook> prepared;
        string outDir;
        string device;
        CliOptions options;
        try
        {
            options = Parse(args);
            if (options.Help) { stdout.WriteLine(Usage); return Ok; }
            var files = ResolveInputs(options.Inputs);
            outDir = Path.GetFullPath(options.OutDir);
            var notebooks = files.Select(f => (Path: f, Notebook: Notebook.Load(f))).ToList();
            prepared = PrepareAll(notebooks, options.Parameters, options.Quick);
            device = DeviceFor(options.Device, Environment.GetEnvironmentVariable(DeviceVariable));
            if (options.Prepare)
            {
                if (options.Device != null) throw new UsageException("--device applies to a run; with --prepare, set TF_DEVICE for the client that runs the copies");
                foreach (var p in prepared)
                {
                    string target = Path.Combine(outDir, p.Name + ".ipynb");
                    if (string.Equals(Path.GetFullPath(target), Path.GetFullPath(p.SourcePath), StringComparison.Ordinal))
                        throw new UsageException($"--prepare would overwrite the source notebook '{p.SourcePath}': choose another --out");
                }
                RunOutputs.CheckOutDir(outDir, []);
                foreach (var p in prepared)
                {
                    string target = Path.Combine(outDir, p.Name + ".ipynb");
                    NotebookExecutor.RebaseReferences(p.Executed, Path.GetDirectoryName(Path.GetFullPath(p.SourcePath))!, outDir);
                    p.Executed.Save(target);
                    stdout.WriteLine($"prepared {target}" + (p.AppliedParameters.Count == 0 ? "" :
                        $" ({string.Join(", ", p.AppliedParameters.Select(a => a.Key + "=" + a.Value))})"));
                }
                return Ok;
            }
            // an output folder that cannot take the outputs is found now, not after the whole run
            RunOutputs.CheckOutDir(outDir, prepared);
        }
        catch (Exception e) when (e is UsageException or NotebookFormatException or ParameterException)
        {
            stderr.WriteLine($"tf-run: error: {OneLine(e.Message)}");
            return UsageError;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"tf-run: error: cannot write the prepared notebooks: {OneLine(e.Message)}");
            return UsageError;
        }

        // TorchEnvironment.Setup reads TF_DEVICE; the notebooks run in this process, so set it for the run and restore it after
        string? previousDevice = Environment.GetEnvironmentVariable(DeviceVariable);
        Environment.SetEnvironmentVariable(DeviceVariable, device);
        try { return RunPrepared(prepared, outDir, options.CellTimeout, interruption, stdout, stderr); }
        finally { Environment.SetEnvironmentVariable(DeviceVariable, previousDevice); }
    }

    /// <summary>The environment variable TorchEnvironment.Setup reads for its device when the notebook passes none.</summary>
    public const string DeviceVariable = "TF_DEVICE";

    /// <summary>The device a run uses: --device if given, else TF_DEVICE if set, else auto: the default of TorchEnvironment.Setup, so tf-run and the kernel pick the same device.</summary>
    public static string DeviceFor(string? option, string? environment) =>
        option ?? (string.IsNullOrWhiteSpace(environment) ? "auto" : environment.Trim());

    static int RunPrepared(List<PreparedNotebook> prepared, string outDir, TimeSpan? cellTimeout, Interruption? interruption,
                           TextWriter stdout, TextWriter stderr)
    {
        var executor = new NotebookExecutor(stderr) { CellTimeout = cellTimeout, Interruption = interruption };
        var results = new List<NotebookRunResult>();
        string? notRunBecause = null;
        foreach (var p in prepared)
        {
            if (interruption?.IsRequested == true) notRunBecause ??= $"interrupted by {interruption.SignalName}";
            if (notRunBecause != null)
            {
                results.Add(NotRun(p, outDir, notRunBecause));
                continue;
            }
            var r = executor.Run(p, outDir);
            results.Add(r);
            if (r.CellStillRunning && r.Status == RunStatus.TimedOut)
                // the cell computes on and shares this process (console, figures, libtorch): running the next notebook beside it is unsafe
                notRunBecause = $"{r.Name}'s cell still running after its timeout";
        }

        string? stoppedBy = interruption?.IsRequested == true ? $"interrupted by {interruption.SignalName}" : null;
        bool indexWritten = true;
        try
        {
            var history = RunHistory.Load(outDir, stderr);
            RunHistory.Record(history, results, outDir);
            AtomicFile.WriteAllText(Path.Combine(outDir, "index.html"), HtmlReport.RenderIndex(history, results, DateTime.UtcNow, stoppedBy));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            indexWritten = false;
            stderr.WriteLine($"tf-run: error: cannot write {RunHistory.FileName} and index.html in '{outDir}': {OneLine(e.Message)}");
        }
        stdout.Write(Summary(results));
        stdout.WriteLine($"outputs: {outDir}");
        stdout.Flush();
        if (stoppedBy != null)
        {
            var cut = results.FirstOrDefault(r => r.Status == RunStatus.Interrupted);
            stderr.WriteLine($"tf-run: {stoppedBy}: " + (cut == null ? "no notebook was running" :
                $"{cut.Name} is written as far as it ran to {cut.NotebookPath} (status \"interrupted\")") +
                (results.Any(r => r.Status == RunStatus.NotRun) ? "; the notebooks after it were not run" : ""));
            return interruption!.ExitCode;
        }
        return results.All(r => r.Succeeded) && indexWritten ? Ok : NotebookFailed;
    }

    static NotebookRunResult NotRun(PreparedNotebook p, string outDir, string why) =>
        new(p.Name, p.SourcePath, 0, 0, TimeSpan.Zero, RunStatus.NotRun, $"not run: {why}",
            Path.Combine(outDir, p.Name + ".ipynb"), Path.Combine(outDir, p.Name + ".html"), Path.Combine(outDir, p.Name + ".figures.json"));


    /// <summary>
    /// Injects the parameters into each notebook. One notebook: every --param must be one of its parameters.
    /// Several: each notebook takes the ones it declares; a --param no notebook declares is an error.
    /// </summary>
    internal static List<PreparedNotebook> PrepareAll(IReadOnlyList<(string Path, Notebook Notebook)> notebooks,
                                                      IReadOnlyList<KeyValuePair<string, string>> parameters, bool quick = false)
    {
        bool strict = notebooks.Count == 1;
        // With --quick, each notebook gets its own quick parameters (always its own names) plus the explicit ones it declares.
        var result = notebooks.Select(n => NotebookExecutor.Prepare(n.Notebook, Path.GetFileNameWithoutExtension(n.Path),
            quick ? WithQuick(n.Notebook, strict ? parameters : parameters.Where(p => DeclaredIn(n.Notebook).Contains(p.Key)).ToList()) : parameters,
            strict || quick)).ToList();
        if (!strict)
            foreach (var (name, _) in parameters)
                if (!result.Any(r => r.AppliedParameters.Any(a => a.Key == name)))
                {
                    var known = notebooks.SelectMany(n => DeclaredIn(n.Notebook)).Distinct().OrderBy(x => x, StringComparer.Ordinal).ToList();
                    throw new ParameterException($"unknown parameter '{name}': no selected notebook declares it; parameters declared: " +
                                                 (known.Count == 0 ? "(none — no notebook has a parameters cell)" : string.Join(", ", known)));
                }
        return result;
    }

    /// <summary>The notebook's quick parameters (metadata trainingforensics.quick_parameters) overridden by explicit ones.</summary>
    internal static IReadOnlyList<KeyValuePair<string, string>> WithQuick(Notebook nb, IReadOnlyList<KeyValuePair<string, string>> explicitParameters)
    {
        var merged = new List<KeyValuePair<string, string>>();
        if (nb.Root["metadata"]?["trainingforensics"]?["quick_parameters"] is System.Text.Json.Nodes.JsonObject quick)
            foreach (var (name, value) in quick)
            {
                string text = value is System.Text.Json.Nodes.JsonValue v && v.TryGetValue<string>(out var str) ? str : value?.ToJsonString() ?? "";
                merged.Add(KeyValuePair.Create(name, text));
            }
        else
            throw new ParameterException($"{nb.SourcePath}: --quick needs metadata.trainingforensics.quick_parameters in the notebook");
        foreach (var p in explicitParameters)
        {
            merged.RemoveAll(m => m.Key == p.Key);
            merged.Add(p);
        }
        return merged;
    }

    static IEnumerable<string> DeclaredIn(Notebook nb)
    {
        var cell = nb.Cells.OfType<System.Text.Json.Nodes.JsonObject>()
            .FirstOrDefault(c => Notebook.CellType(c) == "code" && Notebook.Tags(c).Contains(Parameters.ParametersTag));
        return cell == null ? [] : Parameters.Parse(Notebook.Source(cell)).Select(p => p.Name);
    }

    static string OneLine(string s) => s.Replace("\r", " ").Replace("\n", " ");

    /// <summary>The end-of-run table: notebook, cells run / code cells, seconds, status.</summary>
    public static string Summary(IReadOnlyList<NotebookRunResult> results)
    {
        int w = Math.Max("notebook".Length, results.Count == 0 ? 0 : results.Max(r => r.Name.Length));
        var sb = new StringBuilder();
        sb.AppendLine($"{"notebook".PadRight(w)}  {"cells",7}  {"claims",6}  {"seconds",8}  status");
        sb.AppendLine($"{new string('-', w)}  {new string('-', 7)}  {new string('-', 6)}  {new string('-', 8)}  ------");
        foreach (var r in results)
            sb.AppendLine($"{r.Name.PadRight(w)}  {$"{r.ExecutedCells}/{r.CodeCells}",7}  {r.Claims.Count,6}  {r.Elapsed.TotalSeconds.ToString("F1", CultureInfo.InvariantCulture),8}  " +
                          r.Status switch
                          {
                              RunStatus.Ok => "ok",
                              RunStatus.NotRun => OneLine(r.Error ?? "not run"),
                              RunStatus.TimedOut => "TIMED OUT: " + OneLine(r.Error ?? ""),
                              RunStatus.Interrupted => "INTERRUPTED: " + OneLine(r.Error ?? ""),
                              _ => "FAILED: " + OneLine(r.Error ?? ""),
                          } + (r.KeptGoodRun != null ? $" (written as {Path.GetFileName(r.NotebookPath)}; the good run of {r.KeptGoodRun} is kept)" : ""));
        return sb.ToString();
    }
}
