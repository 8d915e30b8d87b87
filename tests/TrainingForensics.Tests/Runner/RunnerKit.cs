using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using TrainingForensics.Runner;

namespace TrainingForensics.Tests.Runner;

/// <summary>Builds small notebooks in a temporary folder and runs tf-run on them in-process.</summary>
internal sealed class RunnerKit : IDisposable
{
    public string Dir { get; } = Path.Combine(Path.GetTempPath(), "tf-run-tests-" + Guid.NewGuid().ToString("N")[..8]);
    public string OutDir => Path.Combine(Dir, "out");

    public RunnerKit() => Directory.CreateDirectory(Dir);

    public void Dispose()
    {
        try { Directory.Delete(Dir, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    public static JsonObject Code(string source, string? kernel = null, params string[] tags)
    {
        var md = new JsonObject();
        if (kernel != null) md["polyglot_notebook"] = new JsonObject { ["kernelName"] = kernel };
        if (tags.Length > 0) md["tags"] = new JsonArray(tags.Select(t => (JsonNode?)JsonValue.Create(t)).ToArray());
        return new JsonObject
        {
            ["cell_type"] = "code", ["execution_count"] = null, ["metadata"] = md, ["outputs"] = new JsonArray(),
            ["source"] = Notebook.ToLines(source),
        };
    }

    public static JsonObject Markdown(string source) =>
        new() { ["cell_type"] = "markdown", ["metadata"] = new JsonObject(), ["source"] = source };

    /// <summary>Writes NAME.ipynb (nbformat 4.5, polyglot default kernel C#) and returns its path.</summary>
    public string Write(string name, params JsonObject[] cells)
    {
        int i = 0;
        foreach (var c in cells) c["id"] = $"c{++i}";
        var nb = new JsonObject
        {
            ["cells"] = new JsonArray(cells.Select(c => (JsonNode?)c).ToArray()),
            ["metadata"] = new JsonObject
            {
                ["kernelspec"] = new JsonObject { ["display_name"] = ".NET (C#)", ["language"] = "C#", ["name"] = ".net-csharp" },
                ["language_info"] = new JsonObject { ["name"] = "polyglot-notebook" },
                ["polyglot_notebook"] = new JsonObject { ["kernelInfo"] = new JsonObject { ["defaultKernelName"] = "csharp", ["items"] = new JsonArray() } },
            },
            ["nbformat"] = 4,
            ["nbformat_minor"] = 5,
        };
        string path = Path.Combine(Dir, name + ".ipynb");
        File.WriteAllText(path, nb.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return path;
    }

    public sealed record RunResult(int ExitCode, string Stdout, string Stderr);

    public RunResult Run(params string[] args) => Run(null, args);

    /// <summary>Runs tf-run in-process with an interruption the test can request (as SIGINT/SIGTERM would).</summary>
    public RunResult Run(Interruption? interruption, params string[] args)
    {
        // the progress lines come from the runner's thread and its "still running" timer: a synchronized writer
        var o = new StringWriter();
        var e = new StringWriter();
        var all = args.Contains("--out") ? args : [.. args, "--out", OutDir];
        int rc = RunnerCli.Run(all, TextWriter.Synchronized(o), TextWriter.Synchronized(e), interruption);
        return new RunResult(rc, o.ToString(), e.ToString());
    }

    public JsonObject Executed(string name) => (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(OutDir, name + ".ipynb")))!;

    public string Html(string name) => File.ReadAllText(Path.Combine(OutDir, name + ".html"));

    public static JsonObject Cell(JsonObject nb, int index) => (JsonObject)nb["cells"]![index]!;

    public static List<JsonObject> Outputs(JsonObject nb, int index) => ((JsonArray)Cell(nb, index)["outputs"]!).Cast<JsonObject>().ToList();

    public static string Text(JsonNode? multiline) => Notebook.MultilineText(multiline);

    public static string Plain(JsonObject output) => Text(output["data"]![MimeBundle.Plain]);

    /// <summary>Every output's text (streams, plain/html data, error fields) of one cell, joined.</summary>
    public static string AllText(JsonObject nb, int index) =>
        string.Join("\n", Outputs(nb, index).Select(o => o["output_type"]!.GetValue<string>() switch
        {
            "stream" => Text(o["text"]),
            "error" => o["ename"] + ": " + o["evalue"] + "\n" + string.Join("\n", ((JsonArray)o["traceback"]!).Select(t => t!.GetValue<string>())),
            _ => string.Join("\n", ((JsonObject)o["data"]!).Select(kv => Text(kv.Value))),
        }));

    public static JsonObject SingleError(JsonObject nb, int index) =>
        Assert.Single(Outputs(nb, index), o => o["output_type"]!.GetValue<string>() == "error");

    /// <summary>The built tf-run.dll of the runner project (same configuration as the tests).</summary>
    public static string TfRunDll()
    {
        string testBin = AppContext.BaseDirectory; // …/tests/TrainingForensics.Tests/bin/<cfg>/net10.0/
        var dir = new DirectoryInfo(testBin);
        string tfm = dir.Name, cfg = dir.Parent!.Name;
        var root = dir;
        while (root != null && !File.Exists(Path.Combine(root.FullName, "Directory.Packages.props"))) root = root.Parent;
        Assert.NotNull(root);
        string dll = Path.Combine(root!.FullName, "lib", "TrainingForensics.Runner", "bin", cfg, tfm, "tf-run.dll");
        Assert.True(File.Exists(dll), $"built runner not found at {dll}");
        return dll;
    }

    public static (int ExitCode, string Stdout, string Stderr) Spawn(string workDir, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = workDir, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(TfRunDll());
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(120_000), "tf-run did not finish in 120 s");
        return (p.ExitCode, stdout.Result, stderr.Result);
    }
}
