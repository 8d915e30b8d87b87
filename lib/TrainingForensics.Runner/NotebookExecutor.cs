using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text.Json.Nodes;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Scripting;
using Microsoft.CodeAnalysis.Scripting;
using TrainingForensics.Charts;
using TrainingForensics.Results;
using TrainingForensics.Runner.Scripting;

namespace TrainingForensics.Runner;

/// <summary>A code cell in a kernel other than C#.</summary>
public sealed class UnsupportedKernelException(string message) : Exception(message);

/// <summary>A notebook ready to run: the executed copy (parameters injected) and the label of each cell.</summary>
public sealed class PreparedNotebook
{
    public required string Name { get; init; }
    public required string SourcePath { get; init; }
    public required Notebook Executed { get; init; }
    /// <summary>Per cell of <see cref="Executed"/>: "cell N" (N = position in the source notebook) or "injected parameters cell".</summary>
    public required IReadOnlyList<string> Labels { get; init; }
    public IReadOnlyList<KeyValuePair<string, string>> AppliedParameters { get; init; } = [];
}

public sealed record NotebookRunResult(
    string Name, string SourcePath, int CodeCells, int ExecutedCells, TimeSpan Elapsed, RunStatus Status,
    string? Error, string NotebookPath, string HtmlPath, string FiguresPath)
{
    public bool Succeeded => Status == RunStatus.Ok;
    public DateTime FinishedUtc { get; init; } = DateTime.UtcNow;
    /// <summary>The finish time of the good run kept in place when this run's outputs went beside it; null otherwise.</summary>
    public string? KeptGoodRun { get; init; }
    /// <summary>A cell that was asked to stop (time limit, interruption) and still runs on its thread.</summary>
    public bool CellStillRunning { get; init; }
    /// <summary>The claims the notebook checked and that held (Claim.Passed), in order.</summary>
    public IReadOnlyList<string> Claims { get; init; } = Array.Empty<string>();
}

/// <summary>
/// Runs a notebook's C# cells in order in one Roslyn scripting state (each cell a continuation of the previous, like
/// the .NET Interactive C# kernel), collects the outputs in nbformat 4 shape and writes the executed notebook, its
/// HTML page and its figures. One executor per run: it shares one <see cref="ScriptOptions"/> between notebooks.
/// </summary>
public sealed class NotebookExecutor
{
    readonly Formatters _formatters;
    readonly TextWriter _progress;
    readonly ScriptOptions _options;
    readonly object _progressGate = new();

    /// <summary>Seconds between "still running" lines for a long cell.</summary>
    public TimeSpan Heartbeat { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>The longest a cell may run (null: no limit); a cell still running then fails its notebook.</summary>
    public TimeSpan? CellTimeout { get; init; }

    /// <summary>A stop request (SIGINT/SIGTERM) that ends the notebook at its running cell.</summary>
    public Interruption? Interruption { get; init; }

    /// <summary>How long a cell asked to stop (time limit, interruption) gets before the runner writes without it.</summary>
    public TimeSpan StopGrace { get; init; } = TimeSpan.FromSeconds(2);

    public NotebookExecutor(TextWriter progress, Formatters? formatters = null)
    {
        _progress = progress;
        _formatters = formatters ?? Formatters.Default;
        _options = ScriptReferences.Options;
    }

    /// <summary>Copies the notebook and injects the --param values after its parameters cell (throws <see cref="ParameterException"/>).</summary>
    public static PreparedNotebook Prepare(Notebook source, string name, IReadOnlyList<KeyValuePair<string, string>> parameters, bool strictParameters)
    {
        var nb = source.Clone();
        var labels = Enumerable.Range(1, nb.Cells.Count).Select(i => $"cell {i}").ToList();
        var applied = new List<KeyValuePair<string, string>>();
        int paramIndex = -1;
        for (int i = 0; i < nb.Cells.Count; i++)
        {
            var c = (JsonObject)nb.Cells[i]!;
            if (Notebook.CellType(c) == "code" && Notebook.Tags(c).Contains(Parameters.ParametersTag)) { paramIndex = i; break; }
        }
        var declared = paramIndex < 0 ? null : Parameters.Parse(Notebook.Source((JsonObject)nb.Cells[paramIndex]!));
        string? injected = Parameters.InjectedSource(declared, parameters, strictParameters, name);
        if (injected != null)
        {
            var cell = new JsonObject
            {
                ["cell_type"] = "code",
                ["execution_count"] = null,
                ["metadata"] = new JsonObject
                {
                    ["polyglot_notebook"] = new JsonObject { ["kernelName"] = "csharp" },
                    ["tags"] = new JsonArray(Parameters.InjectedTag),
                },
                ["outputs"] = new JsonArray(),
                ["source"] = Notebook.ToLines(injected),
            };
            if (nb.NbformatMinor >= 5 || nb.Cells.OfType<JsonObject>().Any(c => c.ContainsKey("id")))
            {
                var ids = nb.Cells.OfType<JsonObject>().Select(c => c["id"]?.ToString()).ToHashSet();
                string id = "injected-parameters";
                for (int k = 2; ids.Contains(id); k++) id = $"injected-parameters-{k}";
                var ordered = new JsonObject { ["id"] = id };
                foreach (var kv in cell.ToList()) { cell.Remove(kv.Key); ordered[kv.Key] = kv.Value; }
                cell = ordered;
            }
            nb.Cells.Insert(paramIndex + 1, cell);
            labels.Insert(paramIndex + 1, $"injected parameters cell (after cell {paramIndex + 1})");
            applied.AddRange(parameters.Where(p => declared!.Any(d => d.Name == p.Key)));
        }
        return new PreparedNotebook { Name = name, SourcePath = source.SourcePath ?? name, Executed = nb, Labels = labels, AppliedParameters = applied };
    }

    static readonly System.Text.RegularExpressions.Regex FileReference =
        new(@"^(?<lead>\s*#r\s+"")(?<path>[^""]+)(?<tail>"".*)$", System.Text.RegularExpressions.RegexOptions.CultureInvariant);

    /// <summary>
    /// Rewrites each relative <c>#r "file.dll"</c> of the notebook's code cells so that it names the same file from
    /// <paramref name="toFolder"/> (the kernel resolves such paths against its working folder, the notebook's own in
    /// VS Code and Jupyter). Package references (<c>#r "nuget: …"</c>) and absolute paths are left as they are.
    /// </summary>
    public static void RebaseReferences(Notebook nb, string fromFolder, string toFolder)
    {
        foreach (var cell in nb.Cells.OfType<JsonObject>().Where(c => Notebook.CellType(c) == "code"))
        {
            var lines = Notebook.Source(cell).Split('\n');
            bool changed = false;
            for (int i = 0; i < lines.Length; i++)
            {
                var m = FileReference.Match(lines[i]);
                if (!m.Success) continue;
                string path = m.Groups["path"].Value;
                if (path.TrimStart().StartsWith("nuget", StringComparison.OrdinalIgnoreCase) || Path.IsPathRooted(path)) continue;
                string rebased = Path.GetRelativePath(toFolder, Path.GetFullPath(Path.Combine(fromFolder, path))).Replace('\\', '/');
                lines[i] = m.Groups["lead"].Value + rebased + m.Groups["tail"].Value;
                changed = true;
            }
            if (changed) cell["source"] = Notebook.ToLines(string.Join('\n', lines));
        }
    }

    sealed record CodeCell(int Index, JsonObject Cell, string Label, string Code, IReadOnlyList<string> ReferencePaths);

    /// <summary>
    /// Runs a prepared notebook and writes its executed copy, page and figures into <paramref name="outDir"/> (where
    /// <see cref="RunOutputs"/> says: beside a good run kept there when this one is not good). A cell that outlives
    /// <see cref="CellTimeout"/>, or a requested <see cref="Interruption"/>, stops the notebook at that cell; what ran
    /// is written all the same. Output files that cannot be written make the result failed (nothing is thrown).
    /// </summary>
    public NotebookRunResult Run(PreparedNotebook prepared, string outDir)
    {
        var nb = prepared.Executed;
        Figures.Reset(); // each notebook's figures file holds only what that notebook recorded
        RunLedger.Reset(); // and its ledger only where its own time went
        string folder = Path.GetDirectoryName(Path.GetFullPath(prepared.SourcePath)) ?? Directory.GetCurrentDirectory();
        var watch = Stopwatch.StartNew();
        var outputs = new Dictionary<int, List<CellOutput>>();
        var counts = new Dictionary<int, int>();
        int executed = 0;
        string? error = null;
        var status = RunStatus.Ok;
        bool stillRunning = false;

        // 1. check every code cell before running any: kernel and magics (a long notebook should not fail at cell 20 on a typo in a #r)
        var cells = new List<CodeCell>();
        var magics = new Magics();
        for (int i = 0; i < nb.Cells.Count && error == null; i++)
        {
            var cell = (JsonObject)nb.Cells[i]!;
            if (Notebook.CellType(cell) != "code") continue;
            string label = prepared.Labels[i];
            try
            {
                string kernel = nb.KernelOf(cell);
                if (!Notebook.IsCSharpKernel(kernel))
                    throw new UnsupportedKernelException($"{label} is a '{kernel}' cell; tf-run runs C# cells only (kernel \"csharp\")");
                var m = magics.Process(Notebook.Source(cell), folder);
                cells.Add(new CodeCell(i, cell, label, m.Code, m.ReferencePaths));
            }
            catch (Exception e) when (e is MagicException or UnsupportedKernelException)
            {
                string msg = e is MagicException ? $"{label}, {e.Message}" : e.Message;
                outputs[i] = [new ErrorOutput(e.GetType().FullName!, msg, [$"{e.GetType().FullName}: {msg}"])];
                error = $"{label}: {e.Message}";
                status = RunStatus.Failed;
            }
        }

        // 2. run, each cell on the notebook's cell thread while this thread watches the time limit and the interruption
        int total = cells.Count;
        Progress($"[{prepared.Name}] {total} code cell(s)" + (error != null ? " — not run: " + error : ""));
        if (error == null)
        {
            var stdout = Console.Out;
            var stderr = Console.Error;
            OutputSink.Begin(_formatters);
            Console.SetOut(new CaptureWriter("stdout", stdout));
            Console.SetError(new CaptureWriter("stderr", stderr));
            var cellThread = new CellThread($"tf-run {prepared.Name}");
            try
            {
                ScriptState<object>? state = null;
                var globals = new NotebookGlobals();
                var extraRefs = new List<MetadataReference>();
                int k = 0;
                foreach (var c in cells)
                {
                    k++;
                    var list = new List<CellOutput>();
                    outputs[c.Index] = list;
                    if (Interruption is { IsRequested: true } stop)
                    {
                        // the signal came between cells: this one never started
                        list.Add(InterruptedOutput(stop.SignalName, c.Label, null));
                        error = $"{c.Label}: not started, interrupted by {stop.SignalName}";
                        status = RunStatus.Interrupted;
                        break;
                    }
                    if (string.IsNullOrWhiteSpace(Notebook.Source(c.Cell))) continue; // an empty cell: nothing to run, no count
                    int count = ++executed;
                    counts[c.Index] = count;
                    OutputSink.SetCell(list);
                    var cellWatch = Stopwatch.StartNew();
                    Progress($"[{prepared.Name}] {c.Label} ({k}/{total}) running…");
                    using var heartbeat = new Timer(_ => Progress($"[{prepared.Name}] {c.Label} ({k}/{total}) still running, {cellWatch.Elapsed.TotalSeconds:F0} s" +
                                                                  (OutputSink.ProgressText is { } shown ? $": {shown}" : "")),
                        null, Heartbeat, Heartbeat);
                    ResultOutput? result = null;
                    bool magicsOnly = false;
                    var job = cellThread.Start(job =>
                    {
                        extraRefs.AddRange(c.ReferencePaths.Select(p => MetadataReference.CreateFromFile(p)));
                        if (string.IsNullOrWhiteSpace(c.Code)) { magicsOnly = true; return; } // magics only: applied, no C# to run
                        var options = _options.WithFilePath(c.Label).AddReferences(extraRefs);
                        var script = state == null
                            ? CSharpScript.Create<object>(c.Code, options, typeof(NotebookGlobals))
                            : state.Script.ContinueWith<object>(c.Code, options);
                        // compile first (the result is cached; errors are thrown by the run below as before): the time limit counts the run only
                        using (RunLedger.Time(RunLedger.Compile)) script.Compile();
                        job.MarkRunning();
                        state = state == null
                            ? script.RunAsync(globals).GetAwaiter().GetResult()
                            : script.RunFromAsync(state).GetAwaiter().GetResult();
                        if (state.ReturnValue is { } value && HasTrailingExpression(c.Code))
                            result = new ResultOutput(FormatSafely(value), count);
                        Console.Out.Flush();
                    });
                    var end = CellThread.Wait(job, CellTimeout, Interruption);
                    heartbeat.Change(Timeout.Infinite, Timeout.Infinite);
                    if (end == CellEnd.Finished && job.Error == null)
                    {
                        if (result != null) list.Add(result);
                        Progress($"[{prepared.Name}] {c.Label} ({k}/{total}) done" + (magicsOnly ? " (magics only)" : $" in {cellWatch.Elapsed.TotalSeconds:F1} s"));
                        continue;
                    }
                    if (end == CellEnd.Finished)
                    {
                        var err = ErrorFor(job.Error!, c.Label, prepared.Labels);
                        OutputSink.SetCell(null);
                        list.Add(err);
                        error = $"{c.Label}: {err.Ename}: {FirstLine(err.Evalue)}";
                        status = RunStatus.Failed;
                        Progress($"[{prepared.Name}] {c.Label} ({k}/{total}) FAILED after {cellWatch.Elapsed.TotalSeconds:F1} s: {err.Ename}: {FirstLine(err.Evalue)}");
                        break;
                    }

                    // timed out or interrupted: ask the cell to stop, give it a moment, then keep what it wrote and mark it
                    bool stopped = cellThread.Stop(job, StopGrace);
                    OutputSink.SetCell(null); // a cell still running writes nowhere from here on
                    stillRunning = !stopped;
                    double seconds = cellWatch.Elapsed.TotalSeconds;
                    if (end == CellEnd.TimedOut)
                    {
                        string limit = Describe(CellTimeout!.Value);
                        list.Add(TimeoutOutput(c.Label, limit, stopped));
                        error = $"{c.Label}: timed out: still running after {limit} (--cell-timeout {limit})";
                        status = RunStatus.TimedOut;
                        Progress($"[{prepared.Name}] {c.Label} ({k}/{total}) TIMED OUT after {seconds:F1} s (--cell-timeout {limit})" +
                                 (stopped ? "" : "; the cell did not stop"));
                    }
                    else
                    {
                        string signal = Interruption!.SignalName;
                        list.Add(InterruptedOutput(signal, c.Label, seconds));
                        error = $"{c.Label}: interrupted by {signal}";
                        status = RunStatus.Interrupted;
                        Progress($"[{prepared.Name}] {c.Label} ({k}/{total}) INTERRUPTED by {signal} after {seconds:F1} s");
                    }
                    break;
                }
            }
            finally
            {
                cellThread.Dispose();
                OutputSink.End();
                Console.SetOut(stdout);
                Console.SetError(stderr);
            }
        }
        watch.Stop();
        var finished = DateTime.UtcNow;

        // 3. outputs into the executed copy; cells after a failure keep no outputs
        foreach (var c in nb.Cells.OfType<JsonObject>().Select((cell, i) => (cell, i)).Where(x => Notebook.CellType(x.cell) == "code"))
        {
            c.cell["outputs"] = outputs.TryGetValue(c.i, out var list) ? ToJson(list) : new JsonArray();
            c.cell["execution_count"] = counts.TryGetValue(c.i, out int n) ? n : null;
        }
        EmbedPlotlyOnce(nb);
        nb.Root["metadata"]!["tf_run"] = new JsonObject
        {
            ["status"] = RunOutputs.StatusText(status),
            ["duration_s"] = Math.Round(watch.Elapsed.TotalSeconds, 3),
            ["finished_utc"] = RunOutputs.Utc(finished),
            ["source"] = prepared.SourcePath,
            ["parameters"] = new JsonObject(prepared.AppliedParameters.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)JsonValue.Create(p.Value)))),
            ["error"] = error,
        };

        RunFiles files;
        string? kept = null;
        try
        {
            (files, kept) = RunOutputs.Write(outDir, prepared.Name, status, nb, HtmlReport.Render(nb, prepared.Name, error, status, Claim.Passed),
                RunOutputs.FiguresJson(prepared.Name, status, finished, error));
            // where the time went (a good run's only: the benchmark's efficiency table reads it beside the figures)
            if (kept == null) AtomicFile.WriteAllText(Path.Combine(outDir, prepared.Name + ".ledger.json"), RunLedger.ToJson(prepared.Name));
            if (kept != null)
                Progress($"[{prepared.Name}] not a good run: its outputs are {files.Notebook}, {files.Html}, {files.Figures}; " +
                         $"the good run of {kept} is kept as {prepared.Name}.ipynb, .html, .figures.json");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // the notebook ran (or not) but its outputs could not be written: a failure of this notebook, the run goes on
            files = RunFiles.Good(prepared.Name);
            error = $"cannot write outputs to '{outDir}': {e.Message.Replace('\n', ' ')}" + (error == null ? "" : $" (the run itself: {error})");
            if (status == RunStatus.Ok) status = RunStatus.Failed;
            Progress($"[{prepared.Name}] {error}");
        }
        return new NotebookRunResult(prepared.Name, prepared.SourcePath, total, executed, watch.Elapsed, status, error,
            Path.Combine(outDir, files.Notebook), Path.Combine(outDir, files.Html), Path.Combine(outDir, files.Figures))
        {
            FinishedUtc = finished, KeptGoodRun = kept, CellStillRunning = stillRunning, Claims = Claim.Passed,
        };
    }

    static ErrorOutput TimeoutOutput(string label, string limit, bool stopped)
    {
        string message = $"{label} was still running after {limit}, the limit set by --cell-timeout; tf-run stopped the notebook here " +
                         (stopped ? "(the cell stopped when asked)" : "(the cell did not stop when asked: it computes without waiting)");
        return new ErrorOutput("CellTimeout", message, [$"CellTimeout: {message}", "   raise the limit with --cell-timeout <seconds|30s|10m|2h>, or 0 for none"]);
    }

    static ErrorOutput InterruptedOutput(string signal, string label, double? seconds)
    {
        string message = seconds is { } s
            ? $"interrupted by {signal} after {s.ToString("F1", CultureInfo.InvariantCulture)} s in {label}; tf-run wrote the notebook as far as it ran"
            : $"interrupted by {signal} before {label} started; tf-run wrote the notebook as far as it ran";
        return new ErrorOutput("Interrupted", message, [$"Interrupted: {message}"]);
    }

    /// <summary>A duration as the user would write it: "90 s", "1.5 s", "30 min", "2 h".</summary>
    public static string Describe(TimeSpan t) =>
        t.TotalHours >= 1 && t.TotalHours == Math.Floor(t.TotalHours) ? $"{t.TotalHours:0} h" :
        t.TotalMinutes >= 1 && t.TotalMinutes == Math.Floor(t.TotalMinutes) ? $"{t.TotalMinutes:0} min" :
        t.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture) + " s";

    MimeBundle FormatSafely(object value)
    {
        try { return _formatters.Format(value); }
        catch (Exception e) { return MimeBundle.Text($"<{value.GetType().Name} could not be formatted: {e.GetType().Name}: {e.Message}>"); }
    }

    /// <summary>Whether the cell ends in an expression without ';' (the cell's value), as opposed to statements.</summary>
    static bool HasTrailingExpression(string code)
    {
        var tree = Microsoft.CodeAnalysis.CSharp.CSharpSyntaxTree.ParseText(code,
            new Microsoft.CodeAnalysis.CSharp.CSharpParseOptions(Microsoft.CodeAnalysis.CSharp.LanguageVersion.Latest, kind: SourceCodeKind.Script));
        var root = (Microsoft.CodeAnalysis.CSharp.Syntax.CompilationUnitSyntax)tree.GetRoot();
        return root.Members.LastOrDefault() is Microsoft.CodeAnalysis.CSharp.Syntax.GlobalStatementSyntax
        {
            Statement: Microsoft.CodeAnalysis.CSharp.Syntax.ExpressionStatementSyntax { SemicolonToken.IsMissing: true }
        };
    }

    void Progress(string line)
    {
        lock (_progressGate)
        {
            _progress.WriteLine(line);
            _progress.Flush();
        }
    }

    static string FirstLine(string s) => s.Split('\n')[0].TrimEnd('\r');

    /// <summary>An nbformat error output for a failed cell: exception type, message, "cell N, line L" and the stack.</summary>
    internal static ErrorOutput ErrorFor(Exception e, string label, IReadOnlyList<string> labels)
    {
        while (e is TargetInvocationException { InnerException: { } inner }) e = inner;
        if (e is AggregateException { InnerExceptions.Count: 1 } agg) e = agg.InnerExceptions[0];

        if (e is CompilationErrorException ce)
        {
            var errors = ce.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
            if (errors.Count == 0) errors = ce.Diagnostics.ToList();
            var tb = new List<string> { $"{label}: compilation failed ({errors.Count} error{(errors.Count == 1 ? "" : "s")})" };
            foreach (var d in errors)
            {
                var span = d.Location.GetLineSpan();
                tb.Add(d.Location.IsInSource
                    ? $"{label}, line {span.StartLinePosition.Line + 1}, column {span.StartLinePosition.Character + 1}: error {d.Id}: {d.GetMessage(CultureInfo.InvariantCulture)}"
                    : $"{label}: error {d.Id}: {d.GetMessage(CultureInfo.InvariantCulture)}");
            }
            return new ErrorOutput(e.GetType().FullName!, string.Join("\n", tb.Skip(1)), tb);
        }

        var traceback = new List<string>();
        var frame = new StackTrace(e, true).GetFrames()
            .FirstOrDefault(f => f.GetFileName() is { } file && labels.Contains(file) && f.GetFileLineNumber() > 0);
        string where = frame != null ? $"{frame.GetFileName()}, line {frame.GetFileLineNumber()}" : label;
        traceback.Add($"{e.GetType().FullName}: {e.Message}");
        traceback.Add($"   at {where}" + (frame != null && frame.GetFileName() != label ? $" (called from {label})" : ""));
        foreach (var line in (e.StackTrace ?? "").Split('\n'))
        {
            string l = line.TrimEnd('\r');
            if (l.Contains("Microsoft.CodeAnalysis.Scripting", StringComparison.Ordinal)) break; // the runner's own frames
            if (l.Length > 0 && !l.StartsWith("--- End of stack trace", StringComparison.Ordinal)) traceback.Add(l);
        }
        for (var inner = e.InnerException; inner != null; inner = inner.InnerException)
            traceback.Add($" ---> {inner.GetType().FullName}: {inner.Message}");
        return new ErrorOutput(e.GetType().FullName!, e.Message, traceback);
    }

    static JsonArray ToJson(List<CellOutput> list)
    {
        var arr = new JsonArray();
        foreach (var o in list)
            arr.Add(o switch
            {
                StreamOutput s => new JsonObject { ["name"] = s.Name, ["output_type"] = "stream", ["text"] = Notebook.ToLines(s.Text.ToString()) },
                DisplayedOutput d => new JsonObject { ["data"] = Bundle(d.Data), ["metadata"] = new JsonObject(), ["output_type"] = "display_data" },
                ResultOutput r => new JsonObject
                {
                    ["data"] = Bundle(r.Data), ["execution_count"] = r.ExecutionCount, ["metadata"] = new JsonObject(), ["output_type"] = "execute_result",
                },
                ErrorOutput e => new JsonObject
                {
                    ["ename"] = e.Ename, ["evalue"] = e.Evalue, ["output_type"] = "error",
                    ["traceback"] = new JsonArray(e.Traceback.Select(t => (JsonNode?)JsonValue.Create(t)).ToArray()),
                },
                _ => throw new InvalidOperationException(o.GetType().Name),
            });
        return arr;
    }

    static JsonObject Bundle(MimeBundle b)
    {
        var data = new JsonObject();
        foreach (var (mime, text) in b) data[mime] = Notebook.ToLines(text);
        return data;
    }

    /// <summary>Puts plotly.js (inline) before the first chart of the notebook, so the .ipynb renders offline.</summary>
    internal static void EmbedPlotlyOnce(Notebook nb)
    {
        foreach (var cell in nb.Cells.OfType<JsonObject>())
        {
            if (cell["outputs"] is not JsonArray outs) continue;
            foreach (var o in outs.OfType<JsonObject>())
            {
                if (o["data"]?[MimeBundle.Html] is not { } htmlNode) continue;
                string html = Notebook.MultilineText(htmlNode);
                if (!html.Contains(Formatters.ChartMarker, StringComparison.Ordinal)) continue;
                o["data"]![MimeBundle.Html] = Notebook.ToLines(PlotlyJs.ScriptTag() + "\n" + html);
                return;
            }
        }
    }
}
