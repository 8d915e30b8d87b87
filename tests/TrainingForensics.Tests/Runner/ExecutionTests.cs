using System.Text.Json.Nodes;
using TrainingForensics.Runner;
using static TrainingForensics.Tests.Runner.RunnerKit;

namespace TrainingForensics.Tests.Runner;

/// <summary>tf-run executing notebooks in-process: state, outputs, failures, magics, kernels.</summary>
public class ExecutionTests
{
    [Fact]
    public void Cells_share_state_and_the_trailing_expression_is_the_result()
    {
        using var kit = new RunnerKit();
        kit.Write("state", Markdown("# Title"), Code("var x = 40;\nint Twice(int v) => 2 * v;"), Code("x + Twice(1)"), Code("var y = x + 1;"), Code("   \n"));
        var r = kit.Run(Path.Combine(kit.Dir, "state.ipynb"));
        Assert.Equal(0, r.ExitCode);
        var nb = kit.Executed("state");
        Assert.Empty(Outputs(nb, 1));
        Assert.Equal(1, Cell(nb, 1)["execution_count"]!.GetValue<int>());
        var result = Assert.Single(Outputs(nb, 2));
        Assert.Equal("execute_result", result["output_type"]!.GetValue<string>());
        Assert.Equal(2, result["execution_count"]!.GetValue<int>());
        Assert.Equal("42", Plain(result));
        Assert.Empty(Outputs(nb, 3)); // ends with ';': a statement, no result
        Assert.Null(Cell(nb, 4)["execution_count"]); // empty cell: not run
        Assert.Contains("state", r.Stdout);
        Assert.Contains("ok", r.Stdout);
    }

    [Fact]
    public void Display_adds_outputs_and_Update_replaces_in_place()
    {
        using var kit = new RunnerKit();
        kit.Write("disp", Code("var d = display(\"step 0\");\ndisplay(\"second\");\nfor (int i = 1; i <= 3; i++) d.Update($\"step {i}\");\n\"third\".Display();"),
            Code("d.Update(\"final\");"));
        Assert.Equal(0, kit.Run(Path.Combine(kit.Dir, "disp.ipynb")).ExitCode);
        var outs = Outputs(kit.Executed("disp"), 0);
        Assert.Equal(3, outs.Count);
        Assert.All(outs, o => Assert.Equal("display_data", o["output_type"]!.GetValue<string>()));
        Assert.Equal("final", Plain(outs[0])); // updated from a later cell, like the kernel
        Assert.Equal("second", Plain(outs[1]));
        Assert.Equal("third", Plain(outs[2]));
    }

    [Fact]
    public void Console_output_is_captured_per_cell_and_progress_goes_to_stderr()
    {
        using var kit = new RunnerKit();
        kit.Write("console", Code("Console.WriteLine(\"hello out\");\nConsole.Error.WriteLine(\"hello err\");\nConsole.Write(\"a\"); Console.Write(\"b\\n\");"),
            Code("Console.WriteLine(\"second cell\");"));
        var r = kit.Run(Path.Combine(kit.Dir, "console.ipynb"));
        Assert.Equal(0, r.ExitCode);
        var nb = kit.Executed("console");
        var outs = Outputs(nb, 0);
        Assert.Equal(3, outs.Count);
        Assert.Equal(("stdout", "hello out\n"), (outs[0]["name"]!.GetValue<string>(), Text(outs[0]["text"])));
        Assert.Equal(("stderr", "hello err\n"), (outs[1]["name"]!.GetValue<string>(), Text(outs[1]["text"])));
        Assert.Equal("ab\n", Text(outs[2]["text"]));
        Assert.Equal("second cell\n", Text(Assert.Single(Outputs(nb, 1))["text"]));
        Assert.Contains("cell 1 (1/2)", r.Stderr);
        Assert.Contains("cell 2 (2/2) done", r.Stderr);
        Assert.DoesNotContain("hello", r.Stderr + r.Stdout);
    }

    [Fact]
    public void A_throwing_cell_stops_its_notebook_but_not_the_run()
    {
        using var kit = new RunnerKit();
        kit.Write("a_fails", Code("Console.WriteLine(\"before\");"), Code("int z = 1;\nthrow new InvalidOperationException(\"boom \" + z);"),
            Code("Console.WriteLine(\"never\");"), Markdown("after"));
        kit.Write("b_ok", Code("1 + 2"));
        var r = kit.Run(kit.Dir);
        Assert.Equal(1, r.ExitCode);
        var nb = kit.Executed("a_fails");
        Assert.Equal("before\n", Text(Outputs(nb, 0)[0]["text"]));
        var err = SingleError(nb, 1);
        Assert.Equal("System.InvalidOperationException", err["ename"]!.GetValue<string>());
        Assert.Equal("boom 1", err["evalue"]!.GetValue<string>());
        Assert.Contains(((JsonArray)err["traceback"]!).Select(t => t!.GetValue<string>()), l => l.Contains("cell 2, line 2"));
        Assert.Empty(Outputs(nb, 2));
        Assert.Null(Cell(nb, 2)["execution_count"]);
        Assert.Contains("boom 1", kit.Html("a_fails"));
        Assert.Equal("3", Plain(Assert.Single(Outputs(kit.Executed("b_ok"), 0))));
        Assert.Matches(@"a_fails\s+2/3\s+\d+\s+[\d.]+\s+FAILED: cell 2", r.Stdout);
        Assert.Matches(@"b_ok\s+1/1\s+\d+\s+[\d.]+\s+ok", r.Stdout);
        string index = File.ReadAllText(Path.Combine(kit.OutDir, "index.html"));
        Assert.Contains("href=\"a_fails.html\"", index);
        Assert.Contains("href=\"b_ok.html\"", index);
        Assert.Contains("failed", index);
    }

    [Fact]
    public void A_compile_error_names_cell_line_and_diagnostic()
    {
        using var kit = new RunnerKit();
        kit.Write("compile", Code("var ok = 1;"), Code("// comment\nint y = undefinedThing + 1;"), Code("Console.WriteLine(\"never\");"));
        var r = kit.Run(Path.Combine(kit.Dir, "compile.ipynb"));
        Assert.Equal(1, r.ExitCode);
        var nb = kit.Executed("compile");
        var err = SingleError(nb, 1);
        Assert.EndsWith("CompilationErrorException", err["ename"]!.GetValue<string>());
        string tb = string.Join("\n", ((JsonArray)err["traceback"]!).Select(t => t!.GetValue<string>()));
        Assert.Contains("cell 2, line 2", tb);
        Assert.Contains("CS0103", tb);
        Assert.Contains("undefinedThing", err["evalue"]!.GetValue<string>());
        Assert.Empty(Outputs(nb, 2));
    }

    [Fact]
    public void Magic_lines_keep_line_numbers_of_compile_errors()
    {
        using var kit = new RunnerKit();
        kit.Write("magic_lines", Code("#r \"nuget: TorchSharp-cpu, 0.107.0\"\n#i \"nuget: https://example.invalid/feed\"\nusing TorchSharp;\nint q = nope;"));
        Assert.Equal(1, kit.Run(Path.Combine(kit.Dir, "magic_lines.ipynb")).ExitCode);
        Assert.Contains("cell 1, line 4", AllText(kit.Executed("magic_lines"), 0));
    }

    [Theory]
    [InlineData("#r \"nuget: Newtonsoft.Json, 13.0.3\"", new[] { "Newtonsoft.Json", "13.0.3", "TorchSharp-cpu 0.107.0" })]
    [InlineData("#r \"nuget: TorchSharp-cpu, 0.106.0\"", new[] { "0.106.0", "0.107.0", "TorchSharp-cpu" })]
    [InlineData("#r \"nuget: Plotly.NET, 5.1.0\"", new[] { "5.1.0", "6.0.0" })]
    [InlineData("#r \"nuget: Plotly.NET\"", new[] { "pin a version", "6.0.0" })]
    [InlineData("#r \"missing/nothing.dll\"", new[] { "does not exist", "missing" })]
    [InlineData("#r \"lib/bin/made-by-dotnet-build/nothing.dll\"", new[] { "does not exist", "run `dotnet build` at the repository root" })]
    [InlineData("#!time", new[] { "#!time", "not supported" })]
    public void Bad_magics_fail_the_notebook_before_any_cell_runs(string magic, string[] expected)
    {
        using var kit = new RunnerKit();
        string path = kit.Write("magic", Code("Console.WriteLine(\"first\");"), Code("var a = 1;\n" + magic + "\nvar b = 2;"));
        var r = kit.Run(path);
        Assert.Equal(1, r.ExitCode);
        var nb = kit.Executed("magic");
        Assert.Empty(Outputs(nb, 0)); // checked before running anything
        string text = AllText(nb, 1);
        Assert.Contains("cell 2", text);
        Assert.Contains("line 2", text);
        foreach (var e in expected) Assert.Contains(e, text);
        if (magic.Contains("missing"))
            Assert.Contains(Path.Combine(kit.Dir, "missing", "nothing.dll"), text);
    }

    [Fact]
    public void Pinned_notebook_packages_match_case_insensitively()
    {
        using var kit = new RunnerKit();
        string path = kit.Write("pinned", Code("#r \"nuget: torchsharp-cpu, 0.107.0\"\n#r \"nuget: Plotly.NET, 6.0.0\"\n#r \"nuget:Microsoft.Data.Analysis,0.23.1\"\n\"fine\""),
            Code("#r \"nuget: Plotly.NET, 6.0.0\""), Code("\"after\""));
        Assert.Equal(0, kit.Run(path).ExitCode);
        var nb = kit.Executed("pinned");
        Assert.Equal("fine", Plain(Outputs(nb, 0)[0]));
        Assert.Equal(2, Cell(nb, 1)["execution_count"]!.GetValue<int>()); // a cell of magics only still counts as run
        Assert.Empty(Outputs(nb, 1));
        Assert.Equal(3, Outputs(nb, 2)[0]["execution_count"]!.GetValue<int>());
    }

    [Fact]
    public void A_dll_the_runner_already_carries_is_not_loaded_twice()
    {
        using var kit = new RunnerKit();
        Directory.CreateDirectory(Path.Combine(kit.Dir, "lib"));
        File.Copy(typeof(TrainingForensics.Results.Figures).Assembly.Location, Path.Combine(kit.Dir, "lib", "TrainingForensics.dll"));
        string path = kit.Write("dll", Code("#r \"lib/TrainingForensics.dll\"\nTrainingForensics.Results.Figures.Record(\"from_dll\", 2L);\n" +
                                           "typeof(TrainingForensics.Results.Figures).Assembly.Location"));
        Assert.Equal(0, kit.Run(path).ExitCode);
        string location = Plain(Outputs(kit.Executed("dll"), 0)[0]);
        Assert.Equal(typeof(TrainingForensics.Results.Figures).Assembly.Location, location);
        Assert.Contains("from_dll", File.ReadAllText(Path.Combine(kit.OutDir, "dll.figures.json")));
    }

    [Fact]
    public void A_dll_beside_the_notebook_is_referenced_from_its_file()
    {
        using var kit = new RunnerKit();
        var compilation = Microsoft.CodeAnalysis.CSharp.CSharpCompilation.Create("TinyRef",
            [Microsoft.CodeAnalysis.CSharp.CSharpSyntaxTree.ParseText("namespace Tiny { public static class T { public static int V => 7; } }")],
            [Microsoft.CodeAnalysis.MetadataReference.CreateFromFile(typeof(object).Assembly.Location)],
            new Microsoft.CodeAnalysis.CSharp.CSharpCompilationOptions(Microsoft.CodeAnalysis.OutputKind.DynamicallyLinkedLibrary));
        using (var dll = File.Create(Path.Combine(kit.Dir, "tiny.dll")))
            Assert.True(compilation.Emit(dll).Success);
        string path = kit.Write("tiny", Code("#r \"tiny.dll\"\nTiny.T.V * 6"));
        Assert.Equal(0, kit.Run(path).ExitCode);
        Assert.Equal("42", Plain(Outputs(kit.Executed("tiny"), 0)[0]));
    }

    [Theory]
    [InlineData("fsharp", null)]
    [InlineData(null, "pwsh")]
    public void A_cell_in_another_kernel_is_an_error_naming_cell_and_kernel(string? polyglot, string? dotnetInteractive)
    {
        using var kit = new RunnerKit();
        var other = Code("printfn \"hi\"", polyglot);
        if (dotnetInteractive != null) other["metadata"]!["dotnet_interactive"] = new JsonObject { ["language"] = dotnetInteractive };
        string path = kit.Write("kernel", Code("Console.WriteLine(\"first\");"), Markdown("x"), other);
        Assert.Equal(1, kit.Run(path).ExitCode);
        var nb = kit.Executed("kernel");
        Assert.Empty(Outputs(nb, 0));
        string text = AllText(nb, 2);
        Assert.Contains("cell 3", text);
        Assert.Contains($"'{polyglot ?? dotnetInteractive}'", text);
    }

    [Fact]
    public void The_notebooks_default_kernel_applies_to_cells_without_their_own()
    {
        using var kit = new RunnerKit();
        string path = kit.Write("default_kernel", Code("1"));
        var json = JsonNode.Parse(File.ReadAllText(path))!;
        json["metadata"]!["polyglot_notebook"]!["kernelInfo"]!["defaultKernelName"] = "javascript";
        File.WriteAllText(path, json.ToJsonString());
        Assert.Equal(1, kit.Run(path).ExitCode);
        Assert.Contains("'javascript'", AllText(kit.Executed("default_kernel"), 0));
    }

    [Fact]
    public void Figures_are_reset_per_notebook_and_written_beside_it()
    {
        using var kit = new RunnerKit();
        kit.Write("f1", Code("TrainingForensics.Results.Figures.Record(\"x\", 1.5);\nTrainingForensics.Results.Figures.Record(\"verdict\", \"frozen\");"));
        kit.Write("f2", Code("TrainingForensics.Results.Figures.Record(\"y\", 3L);"));
        Assert.Equal(0, kit.Run(kit.Dir).ExitCode);
        var f1 = TrainingForensics.Results.Figures.ReadJson(Path.Combine(kit.OutDir, "f1.figures.json"));
        Assert.Equal(1.5, (double)f1["x"]);
        Assert.Equal("frozen", f1["verdict"]);
        var f2 = TrainingForensics.Results.Figures.ReadJson(Path.Combine(kit.OutDir, "f2.figures.json"));
        Assert.Equal(new[] { "y" }, f2.Keys);
    }

    [Fact]
    public void The_source_notebook_is_not_modified()
    {
        using var kit = new RunnerKit();
        string path = kit.Write("src", Code("int epochs = 1;", null, "parameters"), Code("Console.WriteLine(epochs);\nepochs"));
        byte[] before = File.ReadAllBytes(path);
        Assert.Equal(0, kit.Run(path, "--param", "epochs=9").ExitCode);
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal("9", Plain(Outputs(kit.Executed("src"), 2).Last()));
        Assert.Empty(Directory.GetFiles(kit.OutDir, "*.tmp*").Concat(Directory.GetFiles(kit.OutDir, ".*")));
    }
}

public class ProgressForwardingTests
{
    /// <summary>Progress lines, each also checked for a text: when it shows up, a marker file the cell waits for appears.</summary>
    sealed class SignallingWriter(params (string Text, string Marker)[] signals) : StringWriter
    {
        public override void WriteLine(string? value)
        {
            base.WriteLine(value);
            foreach (var (text, marker) in signals)
                if (value is not null && value.Contains("still running") && value.Contains(text) && !File.Exists(marker)) File.WriteAllText(marker, "");
        }
    }

    [Fact]
    public void A_long_cell_s_still_running_lines_carry_its_own_progress_text()
    {
        using var kit = new RunnerKit();
        string seen1 = Path.Combine(kit.Dir, "seen-step-1"), seen2 = Path.Combine(kit.Dir, "seen-step-2");
        // the cell moves on only once a still-running line has shown its current text (no race with the heartbeat on a busy machine)
        string wait(string marker) =>
            $"{{ var w = System.Diagnostics.Stopwatch.StartNew(); while (!System.IO.File.Exists(@\"{marker}\") && w.Elapsed.TotalSeconds < 60) System.Threading.Thread.Sleep(20); }}";
        string path = kit.Write("slow",
            RunnerKit.Code($"var p = display(\"training… step 1 of 3\");\n{wait(seen1)}\np.Update(\"training… step 2 of 3\");\n{wait(seen2)}"));
        var progress = new SignallingWriter(("training… step 1 of 3", seen1), ("training… step 2 of 3", seen2));
        var executor = new NotebookExecutor(TextWriter.Synchronized(progress)) { Heartbeat = TimeSpan.FromMilliseconds(250) };
        var prepared = NotebookExecutor.Prepare(Notebook.Load(path), "slow", Array.Empty<KeyValuePair<string, string>>(), strictParameters: true);
        var result = executor.Run(prepared, kit.OutDir);
        Assert.True(result.Succeeded, result.Error);
        string text = progress.ToString();
        Assert.Matches(@"still running, \d+ s: training… step 1 of 3", text);
        Assert.Matches(@"still running, \d+ s: training… step 2 of 3", text);
    }
}
