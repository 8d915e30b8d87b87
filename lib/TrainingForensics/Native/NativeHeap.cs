using System.Runtime.InteropServices;

namespace TrainingForensics.Native;

/// <summary>
/// Keeps libtorch's freed tensor memory from piling up in the process (glibc on Linux). glibc serves a large
/// allocation with its own mmap and unmaps it when freed, but it raises that size threshold to the largest block
/// freed so far (up to 32 MiB): after the first few big tensors are freed, later ones of that size come from the
/// heap arenas, whose freed space the process keeps. Notebook 01 — a sequence of runs on 60,000-sample records
/// (batches of 7 MB, an MLP of 15 MB per weight copy) — grew to 2.3–2.6 GiB that way while holding 0.7 GiB. A fixed
/// threshold (<c>mallopt(M_MMAP_THRESHOLD)</c>, as the environment variable MALLOC_MMAP_THRESHOLD_ would set at
/// start) turns the raising off: every block from 128 KiB up goes back to the system when freed. Numbers are not
/// affected, only where memory comes from. Elsewhere (macOS, Windows, musl) nothing changes; TF_MALLOC=default
/// leaves glibc as it is.
/// </summary>
internal static class NativeHeap
{
    const int MmapThreshold = -3; // M_MMAP_THRESHOLD in glibc's malloc.h

    /// <summary>The fixed threshold: large tensors (and batch copies) are mapped and unmapped on their own.</summary>
    public const int ThresholdBytes = 128 * 1024;

    [DllImport("libc", EntryPoint = "mallopt")]
    static extern int Mallopt(int param, int value);

    [DllImport("libc", EntryPoint = "gnu_get_libc_version")]
    static extern IntPtr GnuLibcVersion();

    /// <summary>What was done, for the environment summary.</summary>
    public static string Setting { get; private set; } = "not changed";

    /// <summary>Sets the fixed mmap threshold once (idempotent); never throws.</summary>
    public static void Apply()
    {
        if (string.Equals(System.Environment.GetEnvironmentVariable("TF_MALLOC"), "default", StringComparison.OrdinalIgnoreCase))
        {
            Setting = "left to glibc (TF_MALLOC=default)";
            return;
        }
        if (!OperatingSystem.IsLinux() || Setting.StartsWith("mmap", StringComparison.Ordinal)) return;
        try
        {
            _ = GnuLibcVersion(); // glibc only: musl has no such call (and its mallopt does nothing)
            Setting = Mallopt(MmapThreshold, ThresholdBytes) == 1 ? $"mmap threshold fixed at {ThresholdBytes / 1024} KiB" : "not changed (mallopt refused)";
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            Setting = "not changed (not glibc)";
        }
    }
}
