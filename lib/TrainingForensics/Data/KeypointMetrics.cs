using TorchSharp;
using static TorchSharp.torch;
using TrainingForensics.Native;

namespace TrainingForensics.Data;

/// <summary>Keypoint accuracy: the arg-max of each predicted heatmap, mapped back to image pixels, near the true keypoint.</summary>
public static class KeypointMetrics
{
    /// <summary>The default tolerance: within 2 image pixels of the keypoint.</summary>
    public const double DefaultTolerance = 2.0;

    /// <summary>
    /// Predicted keypoints (N×K×2, x/y in image pixels) from heatmaps N×K×H×W: the arg-max pixel of each map
    /// (first one on ties), mapped to image coordinates with <paramref name="stride"/> image pixels per heatmap pixel.
    /// Works on probabilities or logits alike (the arg-max is the same).
    /// </summary>
    public static Tensor Locate(Tensor heatmaps, int stride)
    {
        if (heatmaps.dim() != 4) throw new ArgumentException($"heatmaps must be N×K×H×W, got [{string.Join(",", heatmaps.shape)}]");
        if (stride < 1) throw new ArgumentOutOfRangeException(nameof(stride), stride, "stride must be at least 1");
        using var scope = NewDisposeScope();
        long w = heatmaps.shape[3];
        var flat = heatmaps.detach().flatten(2).argmax(2); // N×K
        var ys = flat.FloorDividedBy(w).to_type(ScalarType.Float32);
        var xs = flat.Remainder(w).to_type(ScalarType.Float32);
        double offset = (stride - 1) / 2.0;
        return stack(new[] { xs.Times(stride).Plus(offset), ys.Times(stride).Plus(offset) }, 2).MoveToOuterDisposeScope();
    }

    /// <summary>Distances (N×K, image pixels) between predicted and true keypoints.</summary>
    public static Tensor Distances(Tensor heatmaps, Tensor keypoints, int stride)
    {
        CheckShapes(heatmaps, keypoints);
        using var scope = NewDisposeScope();
        var predicted = Locate(heatmaps, stride);
        return (predicted - keypoints.to_type(ScalarType.Float32)).Squared().sum(2).sqrt().MoveToOuterDisposeScope();
    }

    /// <summary>Number of keypoints found within <paramref name="tolerance"/> image pixels (out of N·K).</summary>
    public static long Correct(Tensor heatmaps, Tensor keypoints, int stride, double tolerance = DefaultTolerance)
    {
        if (!(tolerance >= 0)) throw new ArgumentOutOfRangeException(nameof(tolerance), tolerance, "tolerance must be zero or positive");
        using var d = Distances(heatmaps, keypoints, stride);
        using var ok = d.AtMost(tolerance);
        return ok.sum().item<long>();
    }

    /// <summary>Fraction of keypoints found within <paramref name="tolerance"/> image pixels.</summary>
    public static double Accuracy(Tensor heatmaps, Tensor keypoints, int stride, double tolerance = DefaultTolerance) =>
        (double)Correct(heatmaps, keypoints, stride, tolerance) / (keypoints.shape[0] * keypoints.shape[1]);

    static void CheckShapes(Tensor heatmaps, Tensor keypoints)
    {
        if (heatmaps.dim() != 4) throw new ArgumentException($"heatmaps must be N×K×H×W, got [{string.Join(",", heatmaps.shape)}]");
        if (keypoints.dim() != 3 || keypoints.shape[2] != 2 || keypoints.shape[0] != heatmaps.shape[0] || keypoints.shape[1] != heatmaps.shape[1])
            throw new ArgumentException($"keypoints must be N×K×2 matching heatmaps [{string.Join(",", heatmaps.shape)}], got [{string.Join(",", keypoints.shape)}]");
    }
}
