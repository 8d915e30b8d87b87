using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace TrainingForensics.Native;

/// <summary>
/// Guards against a silent numerical bug found while building case study 3: libtorch 2.10's CPU convolution
/// (oneDNN 3.7.1, AVX-512 kernels) returns NaN or garbage for some channel counts (24→24, 3×3 reproduces it) on
/// AMD Zen 4 CPUs, with no error. Capping oneDNN at AVX2 (its documented DNNL_MAX_CPU_ISA variable) gives correct
/// results. oneDNN reads the variable once, at its first primitive, so the cap is set when this library is first
/// used (<see cref="Setup.NotebookKernel"/>); <see cref="SelfCheck"/> then verifies a convolution against a float64 reference.
/// Set TF_ONEDNN_ISA=native to keep oneDNN's own choice, or set DNNL_MAX_CPU_ISA yourself.
/// </summary>
public static class OneDnnGuard
{
    /// <summary>What was decided: the ISA cap in force and why.</summary>
    public static string Setting { get; private set; } = "not applied";

    /// <summary>Sets DNNL_MAX_CPU_ISA=AVX2 in the native environment unless the user chose otherwise.</summary>
    public static void Apply()
    {
        string? choice = System.Environment.GetEnvironmentVariable("TF_ONEDNN_ISA");
        string? user = System.Environment.GetEnvironmentVariable("DNNL_MAX_CPU_ISA");
        if (!string.IsNullOrEmpty(user)) { Setting = $"DNNL_MAX_CPU_ISA={user} (set by the user)"; return; }
        if (string.Equals(choice, "native", StringComparison.OrdinalIgnoreCase)) { Setting = "oneDNN's own choice (TF_ONEDNN_ISA=native)"; return; }
        if (OperatingSystem.IsWindows())
        {
            System.Environment.SetEnvironmentVariable("DNNL_MAX_CPU_ISA", "AVX2"); // the CRT environment is the process's on Windows
        }
        else if (setenv("DNNL_MAX_CPU_ISA", "AVX2", 0) != 0)
        {
            Setting = "could not set DNNL_MAX_CPU_ISA";
            return;
        }
        Setting = "DNNL_MAX_CPU_ISA=AVX2 (oneDNN's AVX-512 convolution is wrong for some shapes on some CPUs)";
    }

    /// <summary>
    /// Runs a 24-channel 3×3 convolution in float32 and float64 on fixed inputs and returns the largest difference.
    /// Leaves the global random generator untouched.
    /// </summary>
    public static double SelfCheck()
    {
        using var scope = NewDisposeScope();
        var g = new Generator(12345);
        var x = randn(new long[] { 8, 24, 16, 16 }, generator: g);  // host: a self-check of the CPU convolution
        var w = randn(new long[] { 24, 24, 3, 3 }, generator: g).Times(0.1);  // host: a self-check of the CPU convolution
        var b = randn(new long[] { 24 }, generator: g);  // host: a self-check of the CPU convolution
        var y32 = nn.functional.conv2d(x, w, b, padding: new long[] { 1, 1 });
        var y64 = nn.functional.conv2d(x.to_type(ScalarType.Float64), w.to_type(ScalarType.Float64), b.to_type(ScalarType.Float64), padding: new long[] { 1, 1 });
        double err = (y32.to_type(ScalarType.Float64) - y64).abs().max().item<double>();
        return double.IsNaN(err) ? double.PositiveInfinity : err;
    }

    [DllImport("libc", EntryPoint = "setenv")]
    static extern int setenv(string name, string value, int overwrite);
}
