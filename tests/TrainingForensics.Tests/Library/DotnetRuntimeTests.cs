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

public class NativeLoadFailureTests
{
    /// <summary>
    /// End to end: a copy of the .NET 9 check whose libLibTorchSharp.so is the unpatched original. On a host whose
    /// libstdc++ lacks GLIBCXX_3.4.32 it must fail with TorchNativeLoadException naming the cause and the remedy.
    /// </summary>
    [Fact]
    public void Unpatched_native_library_fails_with_a_clear_message()
    {
        if (!OperatingSystem.IsLinux()) return;
        var (_, versions) = TrainingForensics.Native.TorchNative.HostLibStdCxx();
        if (versions.Contains("GLIBCXX_3.4.32")) return; // this host loads the original: nothing to diagnose
        string original = Path.Combine(TestPaths.NuGetPackageRoot, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        string built = Path.Combine(TestPaths.RepositoryRoot, "tests", "TrainingForensics.Net9Check", "bin", "Debug", "net9.0", RuntimeInformation.RuntimeIdentifier);
        Assert.True(File.Exists(original) && Directory.Exists(built), "needs the NuGet cache and the built .NET 9 check");
        using var dir = new TempDir();
        string copy = Path.Combine(dir.Path, "app");
        // hard-linked copy (libtorch is ~0.5 GB), then a real copy of the one file that differs
        using (var cp = Process.Start(new ProcessStartInfo("cp", new[] { "-al", built, copy }))!) cp.WaitForExit();
        string lib = Directory.GetFiles(copy, "libLibTorchSharp.so", SearchOption.AllDirectories).Single();
        File.Delete(lib);
        File.Copy(original, lib);
        var psi = new ProcessStartInfo(Path.Combine(copy, "TrainingForensics.Net9Check")) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        Assert.True(p.WaitForExit(120_000));
        Assert.NotEqual(0, p.ExitCode);
        Assert.Contains("TorchNativeLoadException", output);
        Assert.Contains("could not be loaded", output);
        Assert.Contains("GLIBCXX_3.4.32", output);
        Assert.Contains("dotnet build", output);
    }
}
