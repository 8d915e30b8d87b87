using System.Runtime.InteropServices;
using TorchSharp;
using TrainingForensics.Native;
using TrainingForensics.Setup;

namespace TrainingForensics.Tests.Library;

public class NativeTests
{
    static string PatchedLib => TorchNative.FindLibTorchSharp() ?? throw new Xunit.Sdk.XunitException("libLibTorchSharp not found in the test output");

    static string OriginalLib => Path.Combine(TestPaths.NuGetPackageRoot, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");

    [Fact]
    public void Torch_loads_and_computes_on_this_host()
    {
        TorchNative.EnsureLoaded();
        using var t = torch.arange(4, dtype: torch.float32);
        Assert.Equal(6f, t.sum().item<float>());
    }

    [Fact]
    public void Setup_turns_nnpack_off_so_gradient_free_convolutions_do_not_flood_stderr()
    {
        if (!OperatingSystem.IsLinux()) return;
        var env = TorchEnvironment.Setup(1);
        Assert.False(NnpackSwitch.Enabled());
        Assert.Contains("NNPACK off", env.OneDnn);
        // a gradient-free convolution at batch 16 (the case libtorch would try NNPACK for) still computes as before
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var x = torch.ones(16, 2, 8, 8);
        var w = torch.ones(4, 2, 3, 3);
        var y = torch.nn.functional.conv2d(x, w, padding: new long[] { 1, 1 });
        Assert.Equal(18f, y[0, 0, 4, 4].item<float>()); // interior: 2 channels × 9 taps of 1
        Assert.Equal(8f, y[0, 0, 0, 0].item<float>());  // corner: 2 × 4
    }

    [Fact]
    public void Output_copy_of_LibTorchSharp_has_only_the_unused_requirement_made_weak()
    {
        if (!OperatingSystem.IsLinux()) return;
        var needs = ElfVersionNeeds.Read(File.ReadAllBytes(PatchedLib));
        var v32 = Assert.Single(needs, n => n.Version == "GLIBCXX_3.4.32");
        Assert.True(v32.Weak);
        Assert.Equal(0, v32.RelocationUses);
        Assert.Contains("_ZSt21ios_base_library_initv", v32.Symbols);
        // everything else stays a hard requirement, and the ones in use are really bound by relocations
        Assert.All(needs.Where(n => n.Version != "GLIBCXX_3.4.32"), n => Assert.False(n.Weak, n.ToString()));
        Assert.Contains(needs, n => n.Version.StartsWith("GLIBCXX_") && n.RelocationUses > 0);
    }

    [Fact]
    public void WeakenUnused_changes_exactly_the_unbound_requirement_of_the_original()
    {
        if (!File.Exists(OriginalLib)) return; // only where the NuGet cache is readable (always in this repo's CI)
        byte[] original = File.ReadAllBytes(OriginalLib);
        byte[] copy = (byte[])original.Clone();
        Assert.False(Assert.Single(ElfVersionNeeds.Read(original), n => n.Version == "GLIBCXX_3.4.32").Weak);
        Assert.Equal(new[] { "GLIBCXX_3.4.32" }, ElfVersionNeeds.WeakenUnused(copy, "libstdc++.so.6"));
        Assert.Empty(ElfVersionNeeds.WeakenUnused(copy, "libstdc++.so.6")); // idempotent
        int changedBytes = original.Zip(copy).Count(p => p.First != p.Second);
        Assert.Equal(1, changedBytes); // one flag bit, nothing else
        Assert.Equal(File.ReadAllBytes(PatchedLib), copy); // the build produced exactly this
    }

    [Fact]
    public void Unpatched_original_fails_on_an_old_libstdcxx_and_the_diagnosis_explains_it()
    {
        if (!OperatingSystem.IsLinux() || !File.Exists(OriginalLib)) return;
        var (hostPath, versions) = TorchNative.HostLibStdCxx();
        Assert.NotNull(hostPath);
        Assert.Contains("GLIBCXX_3.4.21", versions);
        if (versions.Contains("GLIBCXX_3.4.32")) return; // a new host loads the original as is
        var e = Assert.ThrowsAny<Exception>(() => NativeLibrary.Load(OriginalLib));
        Assert.Contains("GLIBCXX_3.4.32", e.Message);
        string advice = string.Join("\n", TorchNativeTestAccess.Advice(OriginalLib));
        Assert.Contains("GLIBCXX_3.4.32", advice);
        Assert.Contains("marked weak", advice);
    }

    [Fact]
    public void Diagnosis_names_the_library_and_the_original_error()
    {
        string text = TorchNative.Diagnose(new TypeInitializationException("TorchSharp.torch", new DllNotFoundException("This application or script uses TorchSharp but doesn't contain a reference to libtorch")));
        Assert.Contains("could not be loaded", text);
        Assert.Contains(PatchedLib, text);
        Assert.Contains("DllNotFoundException", text);
    }

    [Fact]
    public void Non_elf_input_is_refused_with_a_reason()
    {
        var e = Assert.Throws<InvalidDataException>(() => ElfVersionNeeds.Read(new byte[100]));
        Assert.Contains("not an ELF", e.Message);
    }

    [Fact]
    public void Setup_reports_cpu_one_thread_and_versions()
    {
        var env = TorchEnvironment.Setup(seed: 7);
        Assert.Equal(DeviceType.CPU, env.Device.type); // no CUDA package in this repository's default build
        Assert.Contains("CPU build", env.DeviceReason);
        Assert.Equal(TorchEnvironment.DefaultThreads, env.Threads);
        Assert.Equal(1, torch.get_num_threads());
        Assert.Equal("0.107.0", env.TorchSharpVersion);
        Assert.StartsWith("2.10", env.LibTorchVersion);
        Assert.Contains("<table>", env.ToHtml());
        Assert.Throws<InvalidOperationException>(() => TorchEnvironment.Setup(device: "cuda"));
        Assert.Throws<ArgumentException>(() => TorchEnvironment.Setup(device: "tpu"));
        Assert.Equal(2, TorchEnvironment.Setup(threads: 2).Threads);
        Assert.Equal(2, torch.get_num_threads());
        TorchEnvironment.Setup();
    }

    [Fact]
    public void Same_seed_same_numbers()
    {
        TorchEnvironment.Reseed(3);
        var a = torch.randn(5).data<float>().ToArray();
        int ra = TorchEnvironment.SharedRandom.Next();
        TorchEnvironment.Reseed(3);
        var b = torch.randn(5).data<float>().ToArray();
        Assert.Equal(a, b);
        Assert.Equal(ra, TorchEnvironment.SharedRandom.Next());
        TorchEnvironment.Reseed(4);
        Assert.NotEqual(a, torch.randn(5).data<float>().ToArray());
    }
}

internal static class TorchNativeTestAccess
{
    public static IEnumerable<string> Advice(string lib) => TorchNative.LibStdCxxAdvice(lib);
}

public class OneDnnGuardTests
{
    [Fact]
    public void Convolution_matches_float64_after_setup()
    {
        var env = TorchEnvironment.Setup(seed: 1);
        Assert.Contains("self-check", env.OneDnn);
        Assert.True(OneDnnGuard.SelfCheck() < 1e-3, OneDnnGuard.Setting);
        // The shape that returned garbage under oneDNN's AVX-512 kernels: a module with 24→24 channels
        using var scope = torch.NewDisposeScope();
        var conv = torch.nn.Conv2d(24, 24, 3, padding: 1);
        var x = torch.randn(4, 24, 8, 8);
        var y = conv.call(x).to_type(torch.ScalarType.Float64);
        var y64 = torch.nn.functional.conv2d(x.to_type(torch.ScalarType.Float64), conv.weight!.to_type(torch.ScalarType.Float64),
            conv.bias!.to_type(torch.ScalarType.Float64), padding: new long[] { 1, 1 });
        Assert.True((y - y64).abs().max().item<double>() < 1e-3);
    }

    [Fact]
    public void The_cap_is_in_the_native_environment()
    {
        if (OperatingSystem.IsWindows() || System.Environment.GetEnvironmentVariable("TF_ONEDNN_ISA") == "native") return;
        Assert.Equal("AVX2", Marshal.PtrToStringAnsi(getenv("DNNL_MAX_CPU_ISA")) is "AVX2" ? "AVX2" : OneDnnGuard.Setting);
    }

    [DllImport("libc")]
    static extern IntPtr getenv(string name);
}
