using System.Runtime.InteropServices;

namespace TrainingForensics.Native;

/// <summary>
/// Keeps libtorch's freed tensor memory from piling up in the process (glibc on Linux). glibc serves a large
/// allocation with its own mmap and unmaps it when freed, but it raises that size threshold to the largest block
/// freed so far (up to 32 MiB): after the first few big tensors are freed, later ones of that size come from the
/// heap arenas, whose freed space the process keeps. Notebook 01 — a sequence of runs on 60,000-sample records
/// (batches of 7 MB, an MLP of 15 MB per weight copy) — grew to 2.5 GiB that way while holding 0.7 GiB. A fixed
/// threshold (<c>mallopt(M_MMAP_THRESHOLD)</c>) turns the raising off: every block from 4 MiB up goes back to the
/// system when freed (01's peak: 1.1 GiB). The threshold is not lower because mapping and unmapping each
/// activation costs speed: at 128 KiB the MLP and conv training steps were 28–37 % slower, at 4 MiB they are not
/// (docs/benchmarks.md). Numbers are not affected, only where memory comes from. Elsewhere (macOS, Windows, musl)
/// nothing changes; TF_MALLOC=default leaves glibc as it is.
/// </summary>
internal static class NativeHeap
{
    const int MmapThreshold = -3; // M_MMAP_THRESHOLD in glibc's malloc.h
    const int TrimThreshold = -1; // M_TRIM_THRESHOLD

    /// <summary>
    /// Free space kept at the top of a heap before it is given back. Fixing the mmap threshold also stops glibc from
    /// raising this one (to twice the mmap threshold), and at its 128 KiB default every training step shrinks and
    /// regrows the heap: 25–35 % slower steps, measured. Twice the mmap threshold is what glibc's own rule would set.
    /// </summary>
    public const int TrimBytes = 2 * ThresholdBytes;

    /// <summary>The fixed threshold: large tensors (and batch copies) are mapped and unmapped on their own.</summary>
    public const int ThresholdBytes = 4 * 1024 * 1024;

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
            Setting = Mallopt(MmapThreshold, ThresholdBytes) == 1 && Mallopt(TrimThreshold, TrimBytes) == 1
                ? $"mmap threshold fixed at {ThresholdBytes / 1024} KiB, trim threshold {TrimBytes / 1024} KiB" : "not changed (mallopt refused)";
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            Setting = "not changed (not glibc)";
        }
    }
}
