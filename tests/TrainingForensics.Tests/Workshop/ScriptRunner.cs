using System.Diagnostics;

namespace TrainingForensics.Tests.Workshop;

/// <summary>Runs the repository's scripts/ (python3) and finds the tools they need on PATH.</summary>
internal static class ScriptRunner
{
    public static string Scripts => Path.Combine(TestPaths.RepositoryRoot, "scripts");

    /// <summary>The first executable with this name on PATH, or null.</summary>
    public static string? OnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);

    public static bool HasChromium => OnPath("chromium") != null || OnPath("chromium-browser") != null;

    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public override string ToString() => $"exit {ExitCode}\n{Stdout}\n{Stderr}";
    }

    /// <summary>python3 scripts/NAME args… (300 s at most).</summary>
    public static Result Python(string script, params string[] args)
    {
        var psi = new ProcessStartInfo("python3") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = TestPaths.RepositoryRoot };
        psi.ArgumentList.Add(Path.Combine(Scripts, script));
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(300_000))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{script} did not finish in 300 s");
        }
        return new Result(p.ExitCode, stdout.Result, stderr.Result);
    }
}
