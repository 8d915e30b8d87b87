using TorchSharp;
using static TorchSharp.torch;

namespace TrainingForensics.Data;

/// <summary>Device comparison by value: TorchSharp's Device is a class compared by reference.</summary>
internal static class DevicePlacement
{
    public static bool Same(Device a, Device b) => a.type == b.type && (a.index == b.index || a.type == DeviceType.CPU);
}
