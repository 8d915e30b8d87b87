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

    /// <summary>The tensor on <paramref name="device"/>; the original is disposed when it was copied.</summary>
    public static Tensor MovedTo(this Tensor t, Device device)
    {
        var moved = t.On(device);
        if (!ReferenceEquals(moved, t)) t.Dispose();
        return moved;
    }
}
