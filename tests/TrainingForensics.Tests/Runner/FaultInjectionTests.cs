using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using System.Text.Json.Nodes;
using TrainingForensics.Runner;
using static TrainingForensics.Tests.Runner.RunnerKit;

namespace TrainingForensics.Tests.Runner;

/// <summary>
/// tf-run fed faults on purpose: bad notebooks, bad parameters, outputs it cannot write, a failing rerun over a good
/// run, a cell past its time limit, SIGINT and SIGTERM. Each test checks the exit code, the words of the message,
/// and that outputs already on disk were neither lost nor clobbered. docs/fault-injection.md tabulates them.
/// </summary>
[Trait("Category", "FaultInjection")]
public class FaultInjectionTests
{
    // ---- helpers ---------------------------------------------------------------------------------------------

    static void AssertUsageError(RunResult r, params string[] mentions)
    {
        Assert.Equal(2, r.ExitCode);
        string line = r.Stderr.TrimEnd('\n', '\r');
        Assert.StartsWith("tf-run: error: ", line);
        Assert.DoesNotContain('\n', line);
        foreach (var m in mentions) Assert.Contains(m, line);
    }

    /// <summary>Every file of a folder with its bytes, to show that a run changed nothing there.</summary>
    static Dictionary<string, byte[]> Snapshot(string dir) =>
        Directory.GetFiles(dir).ToDictionary(f => Path.GetFileName(f), f => File.ReadAllBytes(f));

    static void AssertUnchanged(Dictionary<string, byte[]> before, string dir)
    {
        var after = Snapshot(dir);
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        foreach (var (name, bytes) in before) Assert.True(bytes.AsSpan().SequenceEqual(after[name]), $"{name} was rewritten");
    }

    /// <summary>A cell that leaves a file behind when it runs: its absence proves that no cell ran.</summary>
    static string MarkerCell(string marker) => $"System.IO.File.WriteAllText(@\"{marker}\", \"ran\");";

    static string Figure(string name, double value) =>
        $"TrainingForensics.Results.Figures.Record(\"{name}\", {value.ToString(System.Globalization.CultureInfo.InvariantCulture)});";

    static JsonObject Json(string path) => JsonNode.Parse(File.ReadAllText(path))!.AsObject();

    static string Status(JsonObject executedNotebook) => executedNotebook["metadata"]!["tf_run"]!["status"]!.GetValue<string>();

    /// <summary>A notebook that records a figure, marks that it ran, and has a parameters cell declaring a double.</summary>
    static string GoodNotebook(RunnerKit kit, string name, string marker) =>
        kit.Write(name, Code("double lr = 0.1;\nfloat momentum = 0.9f;", null, "parameters"), Code(MarkerCell(marker) + "\n" + Figure("loss", 0.5)));

    /// <summary>
    /// The good notebook run once into the output folder, its marker removed again: returns it, the marker a later
    /// run would leave, and the folder's files as they are now (what a failing run must leave untouched).
    /// </summary>
    static (string Good, string Marker, Dictionary<string, byte[]> Before) AfterAGoodRun(RunnerKit kit)
    {
        string marker = Path.Combine(kit.Dir, "ran");
        string good = GoodNotebook(kit, "good", marker);
        Assert.Equal(0, kit.Run(good).ExitCode);
        File.Delete(marker);
        return (good, marker, Snapshot(kit.OutDir));
    }

    // ---- bad notebooks ---------------------------------------------------------------------------------------

    [Fact]
    public void A_missing_notebook_is_exit_2_naming_it_and_earlier_outputs_stay()
    {
        using var kit = new RunnerKit();
        var (good, marker, before) = AfterAGoodRun(kit);

        string missing = Path.Combine(kit.Dir, "missing.ipynb");
        AssertUsageError(kit.Run(good, missing), "no such notebook", missing);
        Assert.False(File.Exists(marker)); // the good notebook named beside it did not run either
        AssertUnchanged(before, kit.OutDir);
    }

    [Fact]
    public void A_malformed_notebook_is_exit_2_naming_it_and_earlier_outputs_stay()
    {
        using var kit = new RunnerKit();
        var (good, marker, before) = AfterAGoodRun(kit);

        string broken = Path.Combine(kit.Dir, "broken.ipynb");
        File.WriteAllText(broken, "{\"cells\": [ {\"cell_type\": \"code\", ");
        AssertUsageError(kit.Run(good, broken), "broken.ipynb", "not valid JSON");
        Assert.False(File.Exists(marker));
        AssertUnchanged(before, kit.OutDir);
    }

    // ---- bad parameters --------------------------------------------------------------------------------------

    [Theory]
    [InlineData("lr=1e400", "lr", "1e400", "double", "+∞")]
    [InlineData("lr=-1e400", "lr", "-1e400", "double", "-∞")]
    [InlineData("lr=NaN", "lr", "NaN", "double", "NaN")]
    [InlineData("lr=Infinity", "lr", "Infinity", "double", "+∞")]
    [InlineData("lr=-Infinity", "lr", "-Infinity", "double", "-∞")]
    [InlineData("momentum=1e39", "momentum", "1e39", "float", "+∞")]
    public void A_non_finite_number_parameter_is_exit_2_naming_parameter_and_value(string param, string name, string value, string type, string reads)
    {
        using var kit = new RunnerKit();
        var (good, marker, before) = AfterAGoodRun(kit);

        AssertUsageError(kit.Run(good, "--param", param), $"parameter '{name}'", $"'{value}'", $"not a finite {type}", reads);
        Assert.False(File.Exists(marker));
        AssertUnchanged(before, kit.OutDir);
    }

    [Fact]
    public void Large_finite_numbers_are_still_accepted()
    {
        Assert.Equal("1E+300d", Parameters.ToLiteral("lr", ParameterType.Double, "1e300"));
        Assert.Equal("-3E+38f", Parameters.ToLiteral("m", ParameterType.Float, "-3e38"));
        Assert.Equal("1E-300d", Parameters.ToLiteral("lr", ParameterType.Double, "1e-300"));
    }

    // ---- outputs that cannot be written ----------------------------------------------------------------------

    [Fact]
    public void Out_naming_an_existing_file_is_exit_2_before_any_cell_runs()
    {
        using var kit = new RunnerKit();
        string marker = Path.Combine(kit.Dir, "ran");
        string nb = GoodNotebook(kit, "good", marker);
        string file = Path.Combine(kit.Dir, "results.txt");
        File.WriteAllText(file, "an earlier result\n");

        AssertUsageError(kit.Run(nb, "--out", file), $"--out '{file}'", "is a file, not a folder");
        Assert.False(File.Exists(marker));
        Assert.Equal("an earlier result\n", File.ReadAllText(file));
    }

    [Fact]
    public void Out_below_a_file_is_exit_2_naming_the_file()
    {
        using var kit = new RunnerKit();
        string marker = Path.Combine(kit.Dir, "ran");
        string nb = GoodNotebook(kit, "good", marker);
        string file = Path.Combine(kit.Dir, "results.txt");
        File.WriteAllText(file, "an earlier result\n");

        string below = Path.Combine(file, "run1");
        AssertUsageError(kit.Run(nb, "--out", below), $"--out '{below}'", "cannot create the folder", $"'{file}' is a file");
        Assert.False(File.Exists(marker));
        Assert.Equal("an earlier result\n", File.ReadAllText(file));
    }

    [Fact]
    [UnsupportedOSPlatform("windows")] // file modes and /sys: the runner's CI is Linux
    public void Out_on_a_read_only_folder_is_exit_2_before_any_cell_runs()
    {
        using var kit = new RunnerKit();
        string marker = Path.Combine(kit.Dir, "ran");
        string nb = GoodNotebook(kit, "good", marker);
        string readOnly = Path.Combine(kit.Dir, "read-only");
        Directory.CreateDirectory(readOnly);
        File.WriteAllText(Path.Combine(readOnly, "keep.txt"), "kept\n");
        File.SetUnixFileMode(readOnly, UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute);
        try
        {
            // root writes through a folder's mode bits: there, a folder no user may create files in stands in (sysfs)
            string target = CanCreateFileIn(readOnly) ? "/sys" : readOnly;
            Assert.False(CanCreateFileIn(target), $"test setup: no read-only folder found ({target} is writable)");

            AssertUsageError(kit.Run(nb, "--out", target), $"--out '{target}'", "is not writable", "permission denied");
            Assert.False(File.Exists(marker));
            Assert.Equal(["keep.txt"], Directory.GetFiles(readOnly).Select(Path.GetFileName));
            Assert.Equal("kept\n", File.ReadAllText(Path.Combine(readOnly, "keep.txt")));
        }
        finally
        {
            File.SetUnixFileMode(readOnly, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    static bool CanCreateFileIn(string dir)
    {
        try
        {
            using (File.Create(Path.Combine(dir, ".probe-" + Guid.NewGuid().ToString("N")), 1, FileOptions.DeleteOnClose)) { }
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

    [Fact]
    public void Out_that_would_overwrite_the_source_notebook_is_exit_2()
    {
        using var kit = new RunnerKit();
        string marker = Path.Combine(kit.Dir, "ran");
        string nb = GoodNotebook(kit, "good", marker);
        byte[] source = File.ReadAllBytes(nb);

        AssertUsageError(kit.Run(nb, "--out", kit.Dir), "would overwrite the source notebook", nb);
        Assert.False(File.Exists(marker));
        Assert.Equal(source, File.ReadAllBytes(nb));
    }

    // ---- a failing rerun over a good run ---------------------------------------------------------------------

    static string FlakyNotebook(RunnerKit kit) => kit.Write("flaky",
        Code("bool fail = false;", null, "parameters"),
        Code(Figure("loss", 0.5) + "\nif (fail) TrainingForensics.Results.Figures.Record(\"loss\", 9.0);"),
        Code("if (fail) throw new InvalidOperationException(\"diverged at step 3\");"),
        Code(Figure("accuracy", 0.9)));

    [Fact]
    public void A_failing_rerun_is_written_beside_the_good_run_which_stays_as_it_was()
    {
        using var kit = new RunnerKit();
        string flaky = FlakyNotebook(kit);
        string other = kit.Write("other", Code(Figure("other", 1)));
        Assert.Equal(0, kit.Run(flaky, other).ExitCode);
        var good = Snapshot(kit.OutDir);
        string goodFinished = Json(Path.Combine(kit.OutDir, "flaky.ipynb"))["metadata"]!["tf_run"]!["finished_utc"]!.GetValue<string>();

        var r = kit.Run(flaky, "--param", "fail=true");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("FAILED: cell 3", r.Stdout);
        Assert.Contains("written as flaky.failed.ipynb", r.Stdout);
        Assert.Contains($"the good run of {goodFinished} is kept", r.Stdout);

        // the good run's three files are byte for byte what they were
        foreach (var f in new[] { "flaky.ipynb", "flaky.html", "flaky.figures.json", "other.ipynb", "other.html", "other.figures.json" })
            Assert.Equal(good[f], File.ReadAllBytes(Path.Combine(kit.OutDir, f)));
        Assert.Equal(0.5, (double)TrainingForensics.Results.Figures.ReadJson(Path.Combine(kit.OutDir, "flaky.figures.json"))["loss"]);

        // the failed run is beside it, marked failed: notebook, page and its partial figures
        var failed = Json(Path.Combine(kit.OutDir, "flaky.failed.ipynb"));
        Assert.Equal("failed", Status(failed));
        Assert.Contains("diverged at step 3", AllText(failed, 3));
        Assert.Contains("diverged at step 3", File.ReadAllText(Path.Combine(kit.OutDir, "flaky.failed.html")));
        var figures = Json(Path.Combine(kit.OutDir, "flaky.figures.failed.json"));
        Assert.Equal("failed", figures["status"]!.GetValue<string>());
        Assert.Contains("diverged", figures["error"]!.GetValue<string>());
        Assert.Equal(9.0, figures["figures"]!["loss"]!["value"]!.GetValue<double>());
        Assert.Null(figures["figures"]!["accuracy"]); // recorded after the failing cell: not there

        // runs.json and the index give each notebook's last status and time, and the good run kept
        var runs = Json(Path.Combine(kit.OutDir, "runs.json"))["notebooks"]!;
        Assert.Equal("failed", runs["flaky"]!["status"]!.GetValue<string>());
        Assert.Equal("flaky.failed.ipynb", runs["flaky"]!["files"]!["ipynb"]!.GetValue<string>());
        Assert.Equal(goodFinished, runs["flaky"]!["kept_ok"]!["finished_utc"]!.GetValue<string>());
        Assert.Equal("ok", runs["other"]!["status"]!.GetValue<string>()); // not rerun: still listed with its own run
        string index = File.ReadAllText(Path.Combine(kit.OutDir, "index.html"));
        Assert.Contains("href=\"flaky.failed.html\"", index);
        Assert.Contains("href=\"other.html\"", index);
        Assert.Contains("last good run, finished " + goodFinished.Replace('T', ' ').TrimEnd('Z'), index);
        Assert.Contains("href=\"flaky.html\"", index);
        Assert.Contains(runs["other"]!["finished_utc"]!.GetValue<string>().Replace('T', ' ').TrimEnd('Z'), index);

        // a second failure replaces the first one beside the good run, still not the good run
        Assert.Equal(1, kit.Run(flaky, "--param", "fail=true").ExitCode);
        Assert.Equal(good["flaky.figures.json"], File.ReadAllBytes(Path.Combine(kit.OutDir, "flaky.figures.json")));
        Assert.Equal(good["flaky.ipynb"], File.ReadAllBytes(Path.Combine(kit.OutDir, "flaky.ipynb")));

        // a good run replaces the good run and clears the failed files beside it
        Assert.Equal(0, kit.Run(flaky).ExitCode);
        Assert.Equal("ok", Status(Json(Path.Combine(kit.OutDir, "flaky.ipynb"))));
        Assert.False(File.Exists(Path.Combine(kit.OutDir, "flaky.failed.ipynb")));
        Assert.False(File.Exists(Path.Combine(kit.OutDir, "flaky.figures.failed.json")));
        Assert.False(File.Exists(Path.Combine(kit.OutDir, "flaky.failed.html")));
        Assert.Null(Json(Path.Combine(kit.OutDir, "runs.json"))["notebooks"]!["flaky"]!["kept_ok"]);
        Assert.Empty(Directory.GetFiles(kit.OutDir, ".*")); // no temporary file left behind
    }

    [Fact]
    public void A_failed_first_run_is_written_in_place_and_marked_failed()
    {
        using var kit = new RunnerKit();
        Assert.Equal(1, kit.Run(FlakyNotebook(kit), "--param", "fail=true").ExitCode);
        Assert.Equal("failed", Status(kit.Executed("flaky")));
        var figures = Json(Path.Combine(kit.OutDir, "flaky.figures.json"));
        Assert.Equal("failed", figures["status"]!.GetValue<string>());
        Assert.False(File.Exists(Path.Combine(kit.OutDir, "flaky.failed.ipynb")));
        Assert.Equal("failed", Json(Path.Combine(kit.OutDir, "runs.json"))["notebooks"]!["flaky"]!["status"]!.GetValue<string>());
    }

    [Fact]
    public void An_output_folder_from_before_runs_json_keeps_its_notebooks_in_the_index()
    {
        using var kit = new RunnerKit();
        Assert.Equal(0, kit.Run(kit.Write("old", Code(Figure("x", 1)))).ExitCode);
        File.Delete(Path.Combine(kit.OutDir, "runs.json")); // as an older tf-run left the folder
        Assert.Equal(0, kit.Run(kit.Write("new", Code(Figure("y", 2)))).ExitCode);
        var runs = Json(Path.Combine(kit.OutDir, "runs.json"))["notebooks"]!.AsObject();
        Assert.Equal(["new", "old"], runs.Select(kv => kv.Key).Order());
        Assert.Contains("href=\"old.html\"", File.ReadAllText(Path.Combine(kit.OutDir, "index.html")));
    }

    // ---- cell timeout ----------------------------------------------------------------------------------------

    [Fact]
    public void A_cell_past_its_timeout_fails_its_notebook_naming_the_cell_and_the_run_goes_on()
    {
        using var kit = new RunnerKit();
        string slow = kit.Write("slow", Code("Console.WriteLine(\"before\");\n" + Figure("early", 1)),
            Code("Console.WriteLine(\"waiting\");\nSystem.Threading.Thread.Sleep(120_000);"), Code("Console.WriteLine(\"never\");"));
        string after = kit.Write("after", Code("40 + 2"));
        var watch = Stopwatch.StartNew();
        var r = kit.Run(slow, after, "--cell-timeout", "1s");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(60), $"the run took {watch.Elapsed}");

        Assert.Equal(1, r.ExitCode);
        Assert.Matches(@"slow\s+2/3\s+\d+\s+[\d.]+\s+TIMED OUT: cell 2: timed out: still running after 1 s \(--cell-timeout 1 s\)", r.Stdout);
        Assert.Contains("cell 2 (2/3) TIMED OUT", r.Stderr);
        var nb = kit.Executed("slow");
        Assert.Equal("timed_out", Status(nb));
        Assert.Equal("before\n", Text(Outputs(nb, 0)[0]["text"])); // what ran before is kept
        Assert.Contains("waiting", AllText(nb, 1));                  // and what the cell wrote before its limit
        var err = SingleError(nb, 1);
        Assert.Equal("CellTimeout", err["ename"]!.GetValue<string>());
        Assert.Contains("cell 2 was still running after 1 s", err["evalue"]!.GetValue<string>());
        Assert.Contains("the cell stopped when asked", err["evalue"]!.GetValue<string>());
        Assert.Empty(Outputs(nb, 2));
        var figures = Json(Path.Combine(kit.OutDir, "slow.figures.json"));
        Assert.Equal("timed_out", figures["status"]!.GetValue<string>());
        Assert.NotNull(figures["figures"]!["early"]);
        Assert.Equal("42", Plain(Outputs(kit.Executed("after"), 0)[0])); // the cell stopped, so the next notebook ran
    }

    [Fact]
    public void A_cell_that_ignores_its_timeout_does_not_hold_the_process()
    {
        using var kit = new RunnerKit();
        kit.Write("busy", Code("Console.WriteLine(\"before\");"), Code("long spins = 0;\nwhile (true) { spins++; }"));
        kit.Write("next", Code("1"));
        var watch = Stopwatch.StartNew();
        var (rc, stdout, stderr) = Spawn(kit.Dir, "busy.ipynb", "next.ipynb", "--cell-timeout", "1", "--out", "out");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(60), $"tf-run took {watch.Elapsed}");

        Assert.Equal(1, rc);
        Assert.Contains("TIMED OUT: cell 2", stdout);
        Assert.Contains("the cell did not stop", stderr);
        Assert.Matches(@"next\s+0/0\s+\d+\s+[\d.]+\s+not run: busy's cell still running after its timeout", stdout);
        var nb = Json(Path.Combine(kit.Dir, "out", "busy.ipynb"));
        Assert.Equal("timed_out", Status(nb));
        Assert.Contains("did not stop when asked", SingleError(nb, 1)["evalue"]!.GetValue<string>());
        Assert.False(File.Exists(Path.Combine(kit.Dir, "out", "next.ipynb")));
    }

    [Theory]
    [InlineData("90", 90_000)]
    [InlineData("1.5", 1_500)]
    [InlineData("90s", 90_000)]
    [InlineData("250ms", 250)]
    [InlineData("10m", 600_000)]
    [InlineData("10min", 600_000)]
    [InlineData("2h", 7_200_000)]
    public void Cell_timeout_values_read_as_seconds_or_with_a_unit(string text, double ms) =>
        Assert.Equal(TimeSpan.FromMilliseconds(ms), RunnerCli.Parse(["--cell-timeout", text]).CellTimeout);

    [Fact]
    public void The_cell_timeout_is_30_minutes_unless_set_and_0_turns_it_off()
    {
        Assert.Equal(TimeSpan.FromMinutes(30), RunnerCli.Parse([]).CellTimeout);
        Assert.Null(RunnerCli.Parse(["--cell-timeout=0"]).CellTimeout);
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("soon")]
    [InlineData("NaN")]
    [InlineData("1e400")]
    [InlineData("30d")]
    [InlineData("100000h")]
    public void A_bad_cell_timeout_is_exit_2_naming_the_value(string value)
    {
        using var kit = new RunnerKit();
        string marker = Path.Combine(kit.Dir, "ran");
        AssertUsageError(kit.Run(GoodNotebook(kit, "good", marker), "--cell-timeout", value), $"--cell-timeout '{value}'");
        Assert.False(File.Exists(marker));
    }

    // ---- interruption ----------------------------------------------------------------------------------------

    static string SleepingCell(string marker) => MarkerCell(marker) + "\nConsole.WriteLine(\"sleeping\");\nSystem.Threading.Thread.Sleep(120_000);";

    static void WhenExists(string file, Action then, TimeSpan within)
    {
        var watch = Stopwatch.StartNew();
        while (!File.Exists(file))
        {
            Assert.True(watch.Elapsed < within, $"{file} did not appear within {within.TotalSeconds} s");
            Thread.Sleep(50);
        }
        then();
    }

    [Fact]
    public async Task An_interruption_writes_the_notebook_so_far_beside_a_good_run_and_exits_130()
    {
        using var kit = new RunnerKit();
        string marker = Path.Combine(kit.Dir, "sleeping");
        string path = kit.Write("long", Code("bool sleep = false;", null, "parameters"), Code("Console.WriteLine(\"first\");\n" + Figure("first", 1)),
            Code("if (sleep) {\n" + SleepingCell(marker) + "\n}"), Code("Console.WriteLine(\"third\");"));
        string later = kit.Write("later", Code("1"));
        Assert.Equal(0, kit.Run(path).ExitCode);
        var good = Snapshot(kit.OutDir);

        using var interruption = new Interruption();
        var requester = Task.Run(() => WhenExists(marker, () => interruption.Request(PosixSignal.SIGINT), TimeSpan.FromSeconds(60)));
        var r = kit.Run(interruption, path, later, "--param", "sleep=true");
        await requester;

        Assert.Equal(130, r.ExitCode);
        Assert.Contains("INTERRUPTED: cell 3: interrupted by SIGINT", r.Stdout);
        Assert.Matches(@"later\s+0/0\s+\d+\s+[\d.]+\s+not run: interrupted by SIGINT", r.Stdout);
        Assert.Contains("tf-run: interrupted by SIGINT", r.Stderr);
        foreach (var (name, bytes) in good) // the good run is untouched (runs.json and index.html are the run's record)
            if (name is not ("runs.json" or "index.html")) Assert.Equal(bytes, File.ReadAllBytes(Path.Combine(kit.OutDir, name)));

        var nb = Json(Path.Combine(kit.OutDir, "long.failed.ipynb"));
        Assert.Equal("interrupted", Status(nb));
        Assert.Equal("first\n", Text(Outputs(nb, 2)[0]["text"]));
        Assert.Contains("sleeping", AllText(nb, 3));
        var err = SingleError(nb, 3);
        Assert.Equal("Interrupted", err["ename"]!.GetValue<string>());
        Assert.Contains("interrupted by SIGINT", err["evalue"]!.GetValue<string>());
        Assert.Empty(Outputs(nb, 4));
        Assert.Null(Cell(nb, 4)["execution_count"]);
        Assert.Equal("interrupted", Json(Path.Combine(kit.OutDir, "long.figures.failed.json"))["status"]!.GetValue<string>());
        var runs = Json(Path.Combine(kit.OutDir, "runs.json"))["notebooks"]!.AsObject();
        Assert.Equal("interrupted", runs["long"]!["status"]!.GetValue<string>());
        Assert.False(runs.ContainsKey("later")); // never ran: no status to show
        Assert.False(File.Exists(Path.Combine(kit.OutDir, "later.ipynb")));
    }

    [DllImport("libc", SetLastError = true)]
    static extern int kill(int pid, int sig);

    const int SIGINT = 2, SIGTERM = 15;

    /// <summary>
    /// Starts the built tf-run as a child process. Through perl where there is one, to reset SIGINT and SIGTERM to
    /// their defaults: a shell that starts a test run in the background makes it ignore SIGINT, the child inherits
    /// that, and .NET then (rightly) leaves an ignored SIGINT ignored.
    /// </summary>
    static Process StartTfRun(string workDir, params string[] args)
    {
        bool perl = File.Exists("/usr/bin/perl");
        var psi = new ProcessStartInfo(perl ? "/usr/bin/perl" : "dotnet") { WorkingDirectory = workDir, RedirectStandardOutput = true, RedirectStandardError = true };
        if (perl)
        {
            psi.ArgumentList.Add("-e");
            psi.ArgumentList.Add("$SIG{INT} = $SIG{TERM} = 'DEFAULT'; exec { $ARGV[0] } @ARGV or die \"exec: $!\"");
            psi.ArgumentList.Add("dotnet");
        }
        psi.ArgumentList.Add(TfRunDll());
        foreach (var a in args) psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }

    static (int ExitCode, string Stdout, string Stderr, TimeSpan AfterSignal) SignalWhenRunning(string dir, string marker, int signal, params string[] args)
    {
        using var p = StartTfRun(dir, args);
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        try
        {
            WhenExists(marker, () => { }, TimeSpan.FromSeconds(90));
            Thread.Sleep(300); // past the marker line, into the loop or the sleep
            Assert.False(Ignores(p.Id, signal), $"test setup: tf-run was started ignoring signal {signal} (no perl to reset it?)");
            Assert.Equal(0, kill(p.Id, signal));
            var watch = Stopwatch.StartNew();
            Assert.True(p.WaitForExit(60_000), "tf-run did not exit within 60 s of the signal");
            return (p.ExitCode, stdout.Result, stderr.Result, watch.Elapsed);
        }
        finally
        {
            if (!p.HasExited) p.Kill();
        }
    }

    /// <summary>Whether the process ignores the signal (SigIgn in /proc/PID/status; false where there is no /proc).</summary>
    static bool Ignores(int pid, int signal)
    {
        string status = $"/proc/{pid}/status";
        if (!File.Exists(status)) return false;
        string? line = File.ReadLines(status).FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
        return line != null && (Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16) & (1UL << (signal - 1))) != 0;
    }

    [Fact]
    public void SIGINT_writes_the_executed_notebook_up_to_the_interrupted_cell_and_exits_130()
    {
        using var kit = new RunnerKit();
        string marker = Path.Combine(kit.Dir, "sleeping");
        kit.Write("nb", Code("Console.WriteLine(\"first\");\n" + Figure("first", 1)), Code(SleepingCell(marker)), Code("Console.WriteLine(\"third\");"));
        var (rc, stdout, stderr, _) = SignalWhenRunning(kit.Dir, marker, SIGINT, "nb.ipynb", "--out", "out");

        Assert.True(rc == 130, $"exit {rc}\n{stdout}\n{stderr}");
        Assert.Contains("INTERRUPTED: cell 2: interrupted by SIGINT", stdout);
        Assert.Contains("tf-run: interrupted by SIGINT", stderr);
        string outDir = Path.Combine(kit.Dir, "out");
        var nb = Json(Path.Combine(outDir, "nb.ipynb"));
        Assert.Equal("interrupted", Status(nb));
        Assert.Equal("first\n", Text(Outputs(nb, 0)[0]["text"]));
        Assert.Contains("interrupted by SIGINT", SingleError(nb, 1)["evalue"]!.GetValue<string>());
        Assert.Empty(Outputs(nb, 2));
        var figures = Json(Path.Combine(outDir, "nb.figures.json"));
        Assert.Equal("interrupted", figures["status"]!.GetValue<string>());
        Assert.NotNull(figures["figures"]!["first"]);
        Assert.Contains("interrupted", File.ReadAllText(Path.Combine(outDir, "nb.html")));
        Assert.Contains("interrupted", File.ReadAllText(Path.Combine(outDir, "index.html")));
        Assert.Empty(Directory.GetFiles(outDir, ".*"));
    }

    [Fact]
    public void SIGTERM_to_a_cell_that_ignores_it_still_writes_and_exits_143()
    {
        using var kit = new RunnerKit();
        string marker = Path.Combine(kit.Dir, "spinning");
        kit.Write("nb", Code("Console.WriteLine(\"first\");"),
            Code(MarkerCell(marker) + "\nlong spins = 0;\nwhile (true) { try { spins++; } catch { } }"), Code("Console.WriteLine(\"third\");"));
        var (rc, stdout, stderr, afterSignal) = SignalWhenRunning(kit.Dir, marker, SIGTERM, "nb.ipynb", "--out", "out");

        Assert.True(rc == 143, $"exit {rc}\n{stdout}\n{stderr}");
        Assert.True(afterSignal < TimeSpan.FromSeconds(30), $"exit took {afterSignal} after SIGTERM");
        Assert.Contains("INTERRUPTED: cell 2: interrupted by SIGTERM", stdout);
        var nb = Json(Path.Combine(kit.Dir, "out", "nb.ipynb"));
        Assert.Equal("interrupted", Status(nb));
        Assert.Equal("first\n", Text(Outputs(nb, 0)[0]["text"]));
        Assert.Contains("interrupted by SIGTERM", SingleError(nb, 1)["evalue"]!.GetValue<string>());
    }
}
