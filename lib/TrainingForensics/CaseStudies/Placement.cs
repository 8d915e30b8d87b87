using TorchSharp;
using TrainingForensics.Data;
using TrainingForensics.Setup;
using static TorchSharp.torch;

namespace TrainingForensics.CaseStudies;

/// <summary>
/// Where a case study's model and data live: the device its config names, else the one the notebook's setup picked
/// (<see cref="TorchEnvironment.CurrentDevice"/>). Data sets are moved once (their own <c>To(device)</c>), before
/// training, not batch by batch; what is already there is returned as it is (on the CPU nothing is copied).
/// </summary>
internal static class Placement
{
    /// <summary>The device a config asks for, or the current one.</summary>
    public static Device Resolve(Device? requested) => requested ?? TorchEnvironment.CurrentDevice;

    public static Tensor On(this Tensor t, Device device) => t.IsOn(device) ? t : t.to(device);

    /// <summary>The module on <paramref name="device"/> (moved when its first parameter is elsewhere).</summary>
    public static T On<T>(this T module, Device device) where T : nn.Module
    {
        var first = module.parameters().FirstOrDefault();
        if (first is null || first.IsOn(device)) return module;
        module.to(device);
        return module;
    }

    /// <summary>The set on <paramref name="device"/>; a CPU original that was copied is disposed (for sets the caller made).</summary>
    public static KeypointSet MovedTo(this KeypointSet set, Device device)
    {
        var moved = set.To(device);
        if (!ReferenceEquals(moved, set)) set.Dispose();
        return moved;
    }

    /// <summary>The tensor on <paramref name="device"/>; the original is disposed when it was copied.</summary>
    public static Tensor MovedTo(this Tensor t, Device device)
    {
        var moved = t.On(device);
        if (!ReferenceEquals(moved, t)) t.Dispose();
        return moved;
    }
}
