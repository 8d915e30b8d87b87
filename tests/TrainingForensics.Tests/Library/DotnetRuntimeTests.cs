using System.Diagnostics;
using System.Runtime.InteropServices;

namespace TrainingForensics.Tests.Library;

public class DotnetRuntimeTests
{
    [Fact]
    public void Library_loads_and_trains_in_a_dotnet_9_process()
    {
        string exe = Path.Combine(TestPaths.RepositoryRoot, "tests", "TrainingForensics.Net9Check", "bin", "Debug", "net9.0",
            RuntimeInformation.RuntimeIdentifier, OperatingSystem.IsWindows() ? "TrainingForensics.Net9Check.exe" : "TrainingForensics.Net9Check");
        Assert.True(File.Exists(exe), $"{exe} not built: run `dotnet build` (or `dotnet test`) at the repository root");
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        string stdout = p.StandardOutput.ReadToEnd(), stderr = p.StandardError.ReadToEnd();
        Assert.True(p.WaitForExit(120_000), "the .NET 9 check did not finish in 2 minutes");
        Assert.True(p.ExitCode == 0, $"exit {p.ExitCode}\n{stdout}\n{stderr}");
        Assert.Contains("runtime: .NET 9.", stdout);
        Assert.Contains("device: CPU", stdout);
    }

    [Fact]
    public void Tests_themselves_run_on_dotnet_10_or_later()
    {
        Assert.True(Environment.Version.Major >= 10, RuntimeInformation.FrameworkDescription);
    }
}
