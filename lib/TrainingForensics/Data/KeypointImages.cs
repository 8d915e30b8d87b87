using TorchSharp;
using static TorchSharp.torch;

namespace TrainingForensics.Data;

/// <summary>
/// How the synthetic keypoint pictures look. The defaults give 1×32×32 images (gradient background, pixel noise,
/// two bright distractor bars, a disc and a square) and 2×16×16 target heatmaps: channel 0 peaks at the disc's
/// centre, channel 1 at the square's, as unnormalised Gaussians (peak 1) of <see cref="Sigma"/> heatmap pixels.
/// </summary>
public sealed record KeypointOptions
{
    public int ImageSize { get; init; } = 32;
    /// <summary>Heatmap side; the image side must be a whole multiple of it.</summary>
    public int HeatmapSize { get; init; } = 16;
    /// <summary>Gaussian width of the target peaks, in heatmap pixels.</summary>
    public double Sigma { get; init; } = 1.0;
    /// <summary>Standard deviation of the additive pixel noise.</summary>
    public double Noise { get; init; } = 0.05;
    /// <summary>Number of distractor bars per image.</summary>
    public int Distractors { get; init; } = 2;

    /// <summary>Throws naming the bad setting.</summary>
    public void Validate()
    {
        if (ImageSize < 16) throw new ArgumentOutOfRangeException(nameof(ImageSize), ImageSize, "images must be at least 16 px wide to hold a disc and a square");
        if (HeatmapSize < 1 || ImageSize % HeatmapSize != 0)
            throw new ArgumentOutOfRangeException(nameof(HeatmapSize), HeatmapSize, $"the heatmap side must divide the image side ({ImageSize})");
        if (!(Sigma > 0) || !double.IsFinite(Sigma)) throw new ArgumentOutOfRangeException(nameof(Sigma), Sigma, "sigma must be positive");
        if (!(Noise >= 0) || !double.IsFinite(Noise)) throw new ArgumentOutOfRangeException(nameof(Noise), Noise, "noise must be zero or positive");
        if (Distractors < 0) throw new ArgumentOutOfRangeException(nameof(Distractors), Distractors, "the number of distractors cannot be negative");
    }

    /// <summary>Image pixels per heatmap pixel.</summary>
    public int Stride => ImageSize / HeatmapSize;
}

/// <summary>
/// Images, target heatmaps and the true keypoints (N×2×2: keypoint k = 0 disc, 1 square; (x, y) in image pixels,
/// pixel centres at whole numbers). Owns its tensors.
/// </summary>
public sealed class KeypointSet : IDisposable
{
    public KeypointSet(Tensor images, Tensor heatmaps, Tensor keypoints, KeypointOptions options)
    {
        if (images.dim() != 4 || heatmaps.dim() != 4 || keypoints.dim() != 3 || images.shape[0] != heatmaps.shape[0] || images.shape[0] != keypoints.shape[0])
            throw new ArgumentException($"inconsistent keypoint set: images [{string.Join(",", images.shape)}], heatmaps [{string.Join(",", heatmaps.shape)}], keypoints [{string.Join(",", keypoints.shape)}]");
        if (!heatmaps.IsOn(images.device) || !keypoints.IsOn(images.device))
            throw new ArgumentException($"images on {images.device}, heatmaps on {heatmaps.device}, keypoints on {keypoints.device}: one set lives on one device");
        Images = images; Heatmaps = heatmaps; Keypoints = keypoints; Options = options;
    }

    /// <summary>Where the samples live, and so where every batch is cut.</summary>
    public Device Device => Images.device;

    /// <summary>The set on <paramref name="device"/>, copied there once (a new set owning its copies); this set if already there.</summary>
    public KeypointSet To(Device device) =>
        Images.IsOn(device) ? this : new KeypointSet(Images.to(device), Heatmaps.to(device), Keypoints.to(device), Options);

    /// <summary>N×1×S×S, float32.</summary>
    public Tensor Images { get; }
    /// <summary>N×2×H×H, float32 in [0, 1].</summary>
    public Tensor Heatmaps { get; }
    /// <summary>N×2×2 (keypoint, x/y) in image pixels, float32.</summary>
    public Tensor Keypoints { get; }
    public KeypointOptions Options { get; }
    public long Count => Images.shape[0];

    /// <summary>The first <paramref name="n"/> samples (views that share memory with this set).</summary>
    public KeypointSet Take(long n)
    {
        if (n < 1 || n > Count) throw new ArgumentOutOfRangeException(nameof(n), n, $"can take 1..{Count} samples");
        return new KeypointSet(Images.narrow(0, 0, n), Heatmaps.narrow(0, 0, n), Keypoints.narrow(0, 0, n), Options);
    }

    /// <summary>The samples at <paramref name="index"/> (int64 indices).</summary>
    public KeypointSet Select(Tensor index) => new(Images.index_select(0, index), Heatmaps.index_select(0, index), Keypoints.index_select(0, index), Options);

    /// <summary>
    /// One pass over the set in batches of (images, heatmaps); shuffled with <paramref name="generator"/> when given
    /// (a seeded generator makes the order reproducible). A short last batch is dropped when <paramref name="dropLast"/>.
    /// </summary>
    public IEnumerable<(Tensor X, Tensor Y)> Batches(int batchSize, Generator? generator = null, bool dropLast = true)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be at least 1");
        if (dropLast && batchSize > Count) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, $"batch size exceeds the {Count} samples of the set");
        // drawn on the CPU (the generator's device: the same order for a seed wherever the data lives), used where the data is
        Tensor order = generator is null ? Native.HeldScalars.Range(Count) : randperm(Count, generator: generator, dtype: int64);  // host: drawn with the CPU generator, moved to the data below
        if (Device.type != DeviceType.CPU) { var there = order.to(Device); order.Dispose(); order = there; }
        order.DetachFromDisposeScope(); // lives across the caller's per-step scopes; disposed below
        try
        {
            for (long start = 0; start < Count; start += batchSize)
            {
                long n = Math.Min(batchSize, Count - start);
                if (n < batchSize && dropLast) yield break;
                using var idx = order.narrow(0, start, n);
                yield return (Images.index_select(0, idx), Heatmaps.index_select(0, idx));
            }
        }
        finally { order.Dispose(); }
    }

    public void Dispose()
    {
        Images.Dispose(); Heatmaps.Dispose(); Keypoints.Dispose();
    }
}

/// <summary>
/// A seeded generator of keypoint pictures. Sample <c>i</c> depends only on (seed, i), so a stream of fresh
/// training batches (<see cref="Batch"/> with consecutive start indices) and a fixed finite set
/// (<see cref="Generate"/>) are reproducible and never depend on how many samples were drawn before.
/// </summary>
public sealed class KeypointGenerator
{
    public KeypointGenerator(int seed, KeypointOptions? options = null)
    {
        Options = options ?? new KeypointOptions();
        Options.Validate();
        Seed = seed;
    }

    public int Seed { get; }
    public KeypointOptions Options { get; }

    /// <summary>
    /// Samples firstIndex … firstIndex+count−1 as a set (images, heatmaps, keypoints), on <paramref name="device"/>
    /// (null: the CPU; samples are drawn on the host, then copied once).
    /// </summary>
    public KeypointSet Generate(int count, long firstIndex = 0, Device? device = null)
    {
        using var ledger = Results.RunLedger.Time(Results.RunLedger.DataLoading);
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, "need at least one sample");
        if (firstIndex < 0) throw new ArgumentOutOfRangeException(nameof(firstIndex), firstIndex, "sample indices start at 0");
        int s = Options.ImageSize, h = Options.HeatmapSize;
        var img = new float[(long)count * s * s];
        var hm = new float[(long)count * 2 * h * h];
        var kp = new float[(long)count * 4];
        for (int n = 0; n < count; n++)
            Render(firstIndex + n, img.AsSpan(n * s * s, s * s), hm.AsSpan(n * 2 * h * h, 2 * h * h), kp.AsSpan(n * 4, 4));
        var set = new KeypointSet(Owned(img, new long[] { count, 1, s, s }), Owned(hm, new long[] { count, 2, h, h }), Owned(kp, new long[] { count, 2, 2 }), Options);
        if (device == null || device.type == DeviceType.CPU) return set;
        using (set) return set.To(device);
    }

    // copy into memory that libtorch allocates: a tensor built around a managed array can outlive the array's pin
    static Tensor Owned(float[] data, long[] shape)
    {
        var t = empty(shape, dtype: ScalarType.Float32);  // host: samples are rendered on the host; Generate copies them to the device once
        t.data<float>().CopyFrom(data);  // host: t was just made on the host
        return t;
    }

    /// <summary>A training batch of fresh samples: batch number <paramref name="batchIndex"/> of size <paramref name="batchSize"/>.</summary>
    public (Tensor X, Tensor Y) Batch(long batchIndex, int batchSize, Device? device = null)
    {
        var set = Generate(batchSize, batchIndex * batchSize, device);
        set.Keypoints.Dispose();
        return (set.Images, set.Heatmaps);
    }

    /// <summary>An endless stream of fresh batches (batch k = samples k·size …), for "infinite data" training.</summary>
    public IEnumerable<(Tensor X, Tensor Y)> Stream(int batchSize, long firstBatch = 0, Device? device = null)
    {
        for (long b = firstBatch; ; b++) yield return Batch(b, batchSize, device);
    }

    /// <summary>Maps a keypoint in image pixels to heatmap pixel coordinates (pixel centres at whole numbers).</summary>
    public static double ToHeatmap(double imageCoordinate, int stride) => (imageCoordinate - (stride - 1) / 2.0) / stride;

    void Render(long index, Span<float> image, Span<float> heatmaps, Span<float> keypoints)
    {
        var rng = new Random(Mix(Seed, index));
        int s = Options.ImageSize;
        // gradient background: a random level plus a linear ramp in a random direction
        double level = U(rng, 0.15, 0.45), slope = U(rng, -0.3, 0.3), angle = U(rng, 0, 2 * Math.PI);
        double ca = Math.Cos(angle), sa = Math.Sin(angle);
        for (int y = 0; y < s; y++)
            for (int x = 0; x < s; x++)
                image[y * s + x] = (float)(level + slope * ((x - s / 2.0) * ca + (y - s / 2.0) * sa) / s);
        // distractor bars first (the shapes are painted over them)
        for (int d = 0; d < Options.Distractors; d++)
        {
            bool horizontal = rng.Next(2) == 0;
            int length = rng.Next(s / 4, s / 2), thick = rng.Next(1, 3);
            int x0 = rng.Next(0, s - (horizontal ? length : thick)), y0 = rng.Next(0, s - (horizontal ? thick : length));
            float v = (float)U(rng, 0.6, 1.0);
            for (int y = y0; y < y0 + (horizontal ? thick : length); y++)
                for (int x = x0; x < x0 + (horizontal ? length : thick); x++)
                    image[y * s + x] = v;
        }
        // disc and square, centres far enough apart that the shapes do not touch
        double margin = s * 0.17, radius, half, dx, dy, sx, sy;
        do
        {
            radius = U(rng, s * 0.08, s * 0.12);
            half = U(rng, s * 0.08, s * 0.12);
            dx = U(rng, margin, s - 1 - margin); dy = U(rng, margin, s - 1 - margin);
            sx = U(rng, margin, s - 1 - margin); sy = U(rng, margin, s - 1 - margin);
        } while (Math.Max(Math.Abs(dx - sx), Math.Abs(dy - sy)) < radius + half + 2);
        float discValue = (float)U(rng, 0.6, 1.0), squareValue = (float)U(rng, 0.6, 1.0);
        for (int y = 0; y < s; y++)
            for (int x = 0; x < s; x++)
            {
                if ((x - dx) * (x - dx) + (y - dy) * (y - dy) <= radius * radius) image[y * s + x] = discValue;
                if (Math.Abs(x - sx) <= half && Math.Abs(y - sy) <= half) image[y * s + x] = squareValue;
            }
        if (Options.Noise > 0)
            for (int i = 0; i < image.Length; i++) image[i] += (float)(Options.Noise * Gaussian(rng));
        keypoints[0] = (float)dx; keypoints[1] = (float)dy; keypoints[2] = (float)sx; keypoints[3] = (float)sy;
        int h = Options.HeatmapSize, stride = Options.Stride;
        double twoSigma2 = 2 * Options.Sigma * Options.Sigma;
        for (int k = 0; k < 2; k++)
        {
            double u = ToHeatmap(keypoints[2 * k], stride), v = ToHeatmap(keypoints[2 * k + 1], stride);
            for (int y = 0; y < h; y++)
                for (int x = 0; x < h; x++)
                    heatmaps[k * h * h + y * h + x] = (float)Math.Exp(-((x - u) * (x - u) + (y - v) * (y - v)) / twoSigma2);
        }
    }

    static double U(Random r, double lo, double hi) => lo + (hi - lo) * r.NextDouble();

    static double Gaussian(Random r)
    {
        double u1 = 1.0 - r.NextDouble(), u2 = r.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    /// <summary>A well-mixed 32-bit seed from (seed, index) (SplitMix64 finaliser), stable across .NET versions.</summary>
    internal static int Mix(int seed, long index)
    {
        ulong z = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)index + 0x632BE59BD9B4E019UL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        z ^= z >> 31;
        return (int)(z & 0x7FFFFFFF);
    }
}
