using System.Runtime.InteropServices;

namespace TrainingForensics.Native;

/// <summary>
/// Turns libtorch's NNPACK convolution path off (as <c>torch.backends.nnpack.set_flags(False)</c> would; TorchSharp
/// has no call for it). On CPUs NNPACK does not support, libtorch 2.10 tries it for every convolution without
/// gradients and logs "Could not initialize NNPACK! Reason: Unsupported hardware." each time — tens of thousands of
/// lines on stderr over the notebooks here — and where NNPACK does work it would pick a different convolution
/// algorithm than on other hosts. oneDNN (or the native kernels) computes those convolutions instead.
/// The calls are libtorch's exported C++ symbols (Itanium ABI: Linux, macOS); elsewhere, or if they are missing,
/// nothing changes. TF_NNPACK=on leaves NNPACK as libtorch sets it.
/// </summary>
internal static class NnpackSwitch
{
    const string Library = "libtorch_cpu";

    [DllImport(Library, EntryPoint = "_ZN2at13globalContextEv")]
    static extern IntPtr GlobalContext();

    [DllImport(Library, EntryPoint = "_ZN2at7Context20setUserEnabledNNPACKEb")]
    static extern void SetUserEnabledNnpack(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool enabled);

    [DllImport(Library, EntryPoint = "_ZNK2at7Context17userEnabledNNPACKEv")]
    [return: MarshalAs(UnmanagedType.U1)]
    static extern bool UserEnabledNnpack(IntPtr context);

    /// <summary>What was done, for the environment summary.</summary>
    public static string Setting { get; private set; } = "not changed";

    /// <summary>Disables NNPACK once libtorch is loaded (idempotent); never throws.</summary>
    public static void Apply()
    {
        if (string.Equals(System.Environment.GetEnvironmentVariable("TF_NNPACK"), "on", StringComparison.OrdinalIgnoreCase))
        {
            Setting = "left to libtorch (TF_NNPACK=on)";
            return;
        }
        if (!(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())) return;
        try
        {
            SetUserEnabledNnpack(GlobalContext(), false);
            Setting = "off";
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            Setting = "not changed (libtorch symbol not found)";
        }
    }

    /// <summary>libtorch's current NNPACK flag (null where it cannot be read).</summary>
    public static bool? Enabled()
    {
        try { return UserEnabledNnpack(GlobalContext()); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return null; }
    }
}
