using System.Text;

namespace TrainingForensics.Runner.Scripting;

/// <summary>
/// The globals a notebook cell sees: <c>display(x)</c>, as in the .NET Interactive C# kernel. Each call adds an
/// output to the running cell and returns a handle whose <c>Update(x)</c> replaces that output in place.
/// </summary>
public class NotebookGlobals
{
    /// <summary>Shows a value as a new output of the running cell; keep the handle to update it later.</summary>
    public DisplayHandle display(object? value) => OutputSink.Display(value);
}

/// <summary>One displayed output; <see cref="Update"/> replaces it (the kernel's live-progress pattern).</summary>
public sealed class DisplayHandle
{
    internal DisplayHandle(DisplayedOutput? output) => Output = output;

    internal DisplayedOutput? Output { get; }

    /// <summary>Replaces the displayed value with a new one, in the same place of the notebook.</summary>
    public void Update(object? value)
    {
        if (Output == null) return;
        OutputSink.Update(Output, value);
    }
}

/// <summary><c>x.Display()</c> — the same as <c>display(x)</c>.</summary>
public static class DisplayExtensions
{
    public static DisplayHandle Display(this object? value) => OutputSink.Display(value);
}

// ---- what a cell produced --------------------------------------------------------------------------------------

public abstract class CellOutput;

public sealed class StreamOutput(string name) : CellOutput
{
    public string Name { get; } = name;
    public StringBuilder Text { get; } = new();
}

public sealed class DisplayedOutput(MimeBundle data) : CellOutput
{
    public MimeBundle Data { get; set; } = data;
}

public sealed class ResultOutput(MimeBundle data, int executionCount) : CellOutput
{
    public MimeBundle Data { get; } = data;
    public int ExecutionCount { get; } = executionCount;
}

public sealed class ErrorOutput(string ename, string evalue, IReadOnlyList<string> traceback) : CellOutput
{
    public string Ename { get; } = ename;
    public string Evalue { get; } = evalue;
    public IReadOnlyList<string> Traceback { get; } = traceback;
}

/// <summary>
/// Where displays and console writes go while a notebook runs: the outputs of the running cell. Updates of a handle
/// from an earlier cell still reach that cell's output. Outside a run, writes go to the runner's own console.
/// </summary>
public static class OutputSink
{
    static readonly object Gate = new();
    static List<CellOutput>? _current;
    static Formatters _formatters = Formatters.Default;
    static bool _open;

    internal static void Begin(Formatters formatters)
    {
        lock (Gate) { _formatters = formatters; _open = true; _current = null; }
    }

    internal static void SetCell(List<CellOutput>? outputs)
    {
        lock (Gate) { _current = outputs; _progressText = null; }
    }

    static string? _progressText;

    /// <summary>
    /// The running cell's latest progress: the text of its last short text display (<c>display("training…")</c> and
    /// its <c>Update(…)</c>s, the kernel's live-progress pattern), one line; null when it showed none. The runner's
    /// console repeats it with each "still running" line, so a long cell says what it is doing.
    /// </summary>
    internal static string? ProgressText { get { lock (Gate) return _progressText; } }

    static void NoteProgress(object? value)
    {
        if (value is not string s || string.IsNullOrWhiteSpace(s)) return;
        string line = s.Trim().Split('\n')[0];
        _progressText = line.Length > 160 ? line[..157] + "…" : line;
    }

    internal static void End()
    {
        lock (Gate) { _open = false; _current = null; }
    }

    static MimeBundle FormatSafely(object? value)
    {
        try { return _formatters.Format(value); }
        catch (Exception e) { return MimeBundle.Text($"<{value?.GetType().Name} could not be formatted: {e.GetType().Name}: {e.Message}>"); }
    }

    internal static DisplayHandle Display(object? value)
    {
        var bundle = FormatSafely(value); // eagerly: a tensor may be disposed right after display
        lock (Gate)
        {
            if (_current == null) return new DisplayHandle(null);
            NoteProgress(value);
            var output = new DisplayedOutput(bundle);
            _current.Add(output);
            return new DisplayHandle(output);
        }
    }

    internal static void Update(DisplayedOutput output, object? value)
    {
        var bundle = FormatSafely(value);
        lock (Gate)
            if (_open)
            {
                output.Data = bundle;
                if (_current != null) NoteProgress(value);
            }
    }

    /// <summary>Appends console text to the running cell (consecutive writes to one stream merge into one output).</summary>
    internal static bool Write(string stream, string text)
    {
        lock (Gate)
        {
            if (_current == null) return false;
            if (_current.Count > 0 && _current[^1] is StreamOutput last && last.Name == stream)
                last.Text.Append(text);
            else
            {
                var s = new StreamOutput(stream);
                s.Text.Append(text);
                _current.Add(s);
            }
            return true;
        }
    }
}

/// <summary>Console.Out / Console.Error while a notebook runs: text goes to the running cell's stream outputs.</summary>
internal sealed class CaptureWriter : TextWriter
{
    readonly string stream;
    readonly TextWriter fallback;

    public CaptureWriter(string stream, TextWriter fallback)
    {
        this.stream = stream;
        this.fallback = fallback;
        CoreNewLine = ['\n'];
    }

    public override Encoding Encoding => Encoding.UTF8;

    void Put(string text)
    {
        if (text.Length == 0) return;
        if (!OutputSink.Write(stream, text)) fallback.Write(text);
    }

    public override void Write(char value) => Put(value.ToString());
    public override void Write(string? value) => Put(value ?? "");
    public override void Write(char[] buffer, int index, int count) => Put(new string(buffer, index, count));
    public override void Write(ReadOnlySpan<char> buffer) => Put(new string(buffer));
    public override void WriteLine() => Put("\n");
    public override void WriteLine(string? value) => Put((value ?? "") + "\n");
    public override void WriteLine(ReadOnlySpan<char> buffer) => Put(new string(buffer) + "\n");
}
