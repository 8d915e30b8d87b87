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

    /// <summary>The tensor itself when it is on <paramref name="device"/>, else a copy there.</summary>
    public static Tensor On(this Tensor t, Device device) => t.IsOn(device) ? t : t.to(device);

    /// <summary>
    /// The module on <paramref name="device"/> (moved in place when its first parameter is elsewhere). Move a model
    /// before making its optimiser, so the optimiser holds the moved parameters.
    /// </summary>
    public static T On<T>(this T module, Device device) where T : nn.Module
    {
        var first = module.parameters().FirstOrDefault();
        if (first is null || first.IsOn(device)) return module;
        module.to(device);
        return module;
    }
}
