using TorchSharp;
using static TorchSharp.torch;

namespace TrainingForensics.Data;

/// <summary>Where a tensor lives, compared by value (TorchSharp's Device is a class compared by reference).</summary>
public static class DevicePlacement
{
    /// <summary>
    /// Whether <paramref name="t"/> is on <paramref name="device"/>: the same type, and the same index unless the
    /// device names none ("cuda" matches cuda:0; "cpu" and "meta" have no index).
    /// </summary>
    public static bool IsOn(this Tensor t, Device device) =>
        t.device_type == device.type && (device.index < 0 || t.device_index == device.index);
}
