using System.Diagnostics;
using System.Runtime.InteropServices;
using TorchSharp;
using TrainingForensics.Native;

namespace TrainingForensics.Setup;

/// <summary>
/// What a notebook runs on, fixed in one call: seeds, device, thread count, versions.
/// Why one thread by default: on a 2-core machine libtorch's OpenMP threads spin-wait, so with any other load
/// on the box 2 threads ran the MNIST MLP 2–5× slower than 1 (measured: batch 32, 1,500 vs 330 steps/s;
/// batch 512, 140 vs 70 steps/s), while on an idle box 2 threads gained at most 1.4× (benchmarks/ reproduces this).
/// </summary>
public sealed record TorchEnvironment(
    int Seed,
    torch.Device Device,
    string DeviceReason,
    int Threads,
    string ThreadsReason,
    string TorchSharpVersion,
    string LibTorchVersion,
    string DotnetVersion,
    string OperatingSystem,
    int ProcessorCount,
    string OneDnn)
{
    /// <summary>The default thread count (see the type's remarks); override with TF_THREADS or the argument.</summary>
    public const int DefaultThreads = 1;

    /// <summary>
    /// Loads libtorch (with a clear error if it cannot), seeds torch and .NET randomness, picks the device and
    /// sets the thread count. <paramref name="device"/>: null/"auto" (CUDA when usable, else CPU), "cpu", "cuda".
    /// </summary>
    public static TorchEnvironment Setup(int seed = 42, int? threads = null, string? device = null)
    {
        NotebookKernel.CheckLibraryIsCurrent(); // a notebook must not run a library build older than its sources
        OneDnnGuard.Apply(); // normally already done when the library loaded; harmless twice
        TorchNative.EnsureLoaded();
        NnpackSwitch.Apply();
        NativeHeap.Apply();
        double convError = OneDnnGuard.SelfCheck();
        if (!(convError < 1e-3))
            throw new InvalidOperationException(
                $"libtorch's CPU convolution gives wrong results on this machine (24-channel 3×3 conv differs from a float64 reference by {convError:G3}; " +
                $"oneDNN setting: {OneDnnGuard.Setting}). oneDNN reads DNNL_MAX_CPU_ISA at its first convolution: start the process with " +
                "DNNL_MAX_CPU_ISA=AVX2 set, or make sure no convolution runs before TrainingForensics is first used.");
        var (dev, reason) = PickDevice(device ?? System.Environment.GetEnvironmentVariable("TF_DEVICE"));
        var (n, threadReason) = PickThreads(threads);
        torch.set_num_threads(n);
        Reseed(seed);
        return Current = new TorchEnvironment(seed, dev, reason, n, threadReason,
            typeof(torch).Assembly.GetName().Version?.ToString(3) ?? "?",
            torch.__version__,
            RuntimeInformation.FrameworkDescription,
            RuntimeInformation.OSDescription,
            System.Environment.ProcessorCount,
            $"{OneDnnGuard.Setting}; convolution self-check error {convError:G2}; NNPACK {NnpackSwitch.Setting}; native heap: {NativeHeap.Setting}");
    }

    /// <summary>
    /// The environment of the last <see cref="Setup"/> in this process, or null before the first. The case studies
    /// and the clinic create their models and data on <c>Current.Device</c> unless told otherwise, so the device
    /// picked once in a notebook's setup cell is the one everything runs on.
    /// </summary>
    public static TorchEnvironment? Current { get; private set; }

    /// <summary>The device of the last <see cref="Setup"/>; the CPU before the first.</summary>
    public static torch.Device CurrentDevice => Current?.Device ?? torch.CPU;

    /// <summary>Re-seeds every random source a run uses (torch CPU and CUDA generators, .NET's shared Random).</summary>
    public static void Reseed(int seed)
    {
        torch.manual_seed(seed);
        if (torch.cuda.is_available()) torch.cuda.manual_seed_all(seed);
        SharedRandom = new Random(seed);
    }

    /// <summary>The .NET random source seeded by <see cref="Reseed"/>; library code that needs .NET randomness uses it.</summary>
    public static Random SharedRandom { get; private set; } = new(42);

    static (torch.Device, string) PickDevice(string? requested)
    {
        bool cudaBuild = CudaBuildPresent();
        bool cuda = torch.cuda.is_available();
        switch (requested?.Trim().ToLowerInvariant())
        {
            case null or "" or "auto":
                if (cuda) return (torch.CUDA, $"CUDA: a CUDA build of libtorch is loaded and {torch.cuda.device_count()} GPU(s) are visible");
                return (torch.CPU, cudaBuild
                    ? "CPU: a CUDA build of libtorch is present but no GPU is usable"
                    : "CPU: the CPU build of libtorch is in use (reference a CUDA libtorch package to use a GPU)");
            case "cpu":
                return (torch.CPU, "CPU: requested");
            case "cuda":
                if (!cuda) throw new InvalidOperationException(cudaBuild
                    ? "device 'cuda' was requested but no GPU is usable by the CUDA build of libtorch"
                    : "device 'cuda' was requested but the CPU build of libtorch is in use; build with -p:TorchNativePackage=<a libtorch-cuda package> (see README)");
                return (torch.CUDA, "CUDA: requested");
            default:
                throw new ArgumentException($"unknown device '{requested}': use auto, cpu or cuda", nameof(requested));
        }
    }

    static bool CudaBuildPresent()
    {
        string? lib = TorchNative.FindLibTorchSharp();
        if (lib == null) return false;
        string dir = Path.GetDirectoryName(lib)!;
        return Directory.EnumerateFiles(dir).Any(f => Path.GetFileName(f).Contains("torch_cuda", StringComparison.OrdinalIgnoreCase));
    }

    static (int, string) PickThreads(int? requested)
    {
        if (requested is { } r)
        {
            if (r < 1) throw new ArgumentOutOfRangeException(nameof(requested), r, "thread count must be at least 1");
            return (r, "requested");
        }
        string? env = System.Environment.GetEnvironmentVariable("TF_THREADS");
        if (!string.IsNullOrWhiteSpace(env))
        {
            if (!int.TryParse(env, out int t) || t < 1)
                throw new ArgumentException($"TF_THREADS='{env}' is not a positive whole number");
            return (t, "TF_THREADS");
        }
        return (DefaultThreads, "default (1 thread measured fastest on a shared 2-core machine)");
    }

    /// <summary>The report as name/value rows (for a notebook table or a log).</summary>
    public IReadOnlyList<(string Name, string Value)> Rows() => new[]
    {
        ("seed", Seed.ToString()),
        ("device", $"{Device.type} — {DeviceReason}"),
        ("threads", $"{Threads} ({ThreadsReason}; {ProcessorCount} cores)"),
        ("TorchSharp", TorchSharpVersion),
        ("libtorch", LibTorchVersion),
        (".NET", DotnetVersion),
        ("OS", OperatingSystem),
        ("oneDNN", OneDnn),
        ("natives", TorchNative.Preload),
        ("data", Data.DataIntegrity.Summary()),
        ("kernel", NotebookKernel.InKernel
            ? $".NET Interactive; formatters {NotebookKernel.Formatters}; FSharp.Core " +
              (FSharpCoreBinding.Bound.Count == 0 ? "binding ready (no request for a newer one yet)" : "bound " + string.Join(", ", FSharpCoreBinding.Bound.Distinct()))
            : "none (a program or tf-run)"),
    };

    public override string ToString() => string.Join(System.Environment.NewLine, Rows().Select(r => $"{r.Name,-10} {r.Value}"));

    /// <summary>HTML table for notebook display.</summary>
    public string ToHtml() =>
        "<table>" + string.Concat(Rows().Select(r => $"<tr><th style=\"text-align:left\">{Html.Escape(r.Name)}</th><td style=\"text-align:left\">{Html.Escape(r.Value)}</td></tr>")) + "</table>";
}
