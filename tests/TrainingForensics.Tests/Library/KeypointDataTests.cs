using TorchSharp;
using TrainingForensics.Data;
using TrainingForensics.Setup;
using static TorchSharp.torch;

namespace TrainingForensics.Tests.Library;

public class KeypointDataTests
{
    [Fact]
    public void Samples_depend_only_on_seed_and_index()
    {
        TorchEnvironment.Setup(1);
        var g = new KeypointGenerator(5);
        using var a = g.Generate(6);
        using var b = g.Generate(3, firstIndex: 3);
        using var other = new KeypointGenerator(6).Generate(6);
        Assert.Equal(new long[] { 6, 1, 32, 32 }, a.Images.shape);
        Assert.Equal(new long[] { 6, 2, 16, 16 }, a.Heatmaps.shape);
        Assert.Equal(new long[] { 6, 2, 2 }, a.Keypoints.shape);
        Assert.True(a.Images.narrow(0, 3, 3).allclose(b.Images, 0, 0));
        Assert.True(a.Heatmaps.narrow(0, 3, 3).allclose(b.Heatmaps, 0, 0));
        Assert.False(a.Images.allclose(other.Images, 0, 0));
        var (x, y) = g.Batch(1, 3); // batch 1 of size 3 = samples 3..5
        Assert.True(x.allclose(b.Images, 0, 0));
        Assert.True(y.allclose(b.Heatmaps, 0, 0));
    }

    [Fact]
    public void Heatmaps_peak_at_the_keypoints_and_argmax_finds_them()
    {
        TorchEnvironment.Setup(1);
        using var set = new KeypointGenerator(1).Generate(64);
        Assert.False(set.Images.isnan().any().item<bool>());
        // peak 1 Gaussians of sigma 1 px: the mean squared target is close to pi / 256 per map (all-zero-output loss)
        double meanSquare = set.Heatmaps.pow(2).mean().item<float>();
        Assert.InRange(meanSquare, 0.0115, 0.0125);
        Assert.InRange(set.Heatmaps.max().item<float>(), 0.95f, 1.0f);
        // the targets themselves locate every keypoint to the nearest heatmap pixel (grid spacing 2 image px, so at
        // most 1 px off per axis, √2 in all); a flat map does not
        var d = KeypointMetrics.Distances(set.Heatmaps, set.Keypoints, 2);
        Assert.True(d.max().item<float>() <= Math.Sqrt(2) + 1e-4, $"max distance {d.max().item<float>()}");
        Assert.Equal(1.0, KeypointMetrics.Accuracy(set.Heatmaps, set.Keypoints, 2));
        Assert.True(KeypointMetrics.Accuracy(zeros_like(set.Heatmaps), set.Keypoints, 2) < 0.1);
        // the two shapes are far apart and inside the image
        var k = set.Keypoints;
        Assert.True(k.min().item<float>() > 4 && k.max().item<float>() < 27);
        var sep = (k.select(1, 0) - k.select(1, 1)).abs().amax(new long[] { 1 });
        Assert.True(sep.min().item<float>() > 6);
        // the disc pixel at its centre is brighter than the background level on average
        var imgs = set.Images.squeeze(1);
        double atCentre = 0;
        for (int i = 0; i < 64; i++)
            atCentre += imgs[i, (long)Math.Round(k[i, 0, 1].item<float>()), (long)Math.Round(k[i, 0, 0].item<float>())].item<float>();
        Assert.True(atCentre / 64 > imgs.mean().item<float>() + 0.2);
    }

    [Fact]
    public void Locate_maps_heatmap_pixels_to_image_pixels()
    {
        var hm = zeros(1, 2, 16, 16);
        hm[0, 0, 3, 5] = tensor(1f); // row 3, column 5 → x = 5·2+0.5, y = 3·2+0.5
        hm[0, 1, 15, 0] = tensor(1f);
        var p = KeypointMetrics.Locate(hm, 2);
        Assert.Equal(new[] { 10.5f, 6.5f, 0.5f, 30.5f }, p.flatten().data<float>().ToArray());
        var truth = tensor(new float[] { 12f, 6.5f, 0.5f, 27f }, new long[] { 1, 2, 2 });
        Assert.Equal(1, KeypointMetrics.Correct(hm, truth, 2)); // 1.5 px and 3.5 px away
        Assert.Throws<ArgumentException>(() => KeypointMetrics.Accuracy(hm, zeros(2, 2, 2), 2));
        Assert.Throws<ArgumentException>(() => KeypointMetrics.Locate(zeros(2, 16, 16), 2));
    }

    [Fact]
    public void Finite_set_batches_cover_every_sample_once_per_epoch()
    {
        TorchEnvironment.Setup(1);
        using var set = new KeypointGenerator(2).Generate(24);
        var g = new Generator().manual_seed(3);
        var sums = set.Batches(8, g).Select(b => b.X.sum(new long[] { 1, 2, 3 })).ToList();
        Assert.Equal(3, sums.Count);
        var seen = cat(sums.ToArray()).sort().Values;
        var all = set.Images.sum(new long[] { 1, 2, 3 }).sort().Values;
        Assert.True(seen.allclose(all));
        Assert.Throws<ArgumentOutOfRangeException>(() => set.Batches(0).ToList());
        Assert.Throws<ArgumentOutOfRangeException>(() => new KeypointGenerator(1, new KeypointOptions { HeatmapSize = 15 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new KeypointGenerator(1).Generate(0));
    }
}
