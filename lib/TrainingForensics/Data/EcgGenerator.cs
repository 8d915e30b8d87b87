using TorchSharp;
using static TorchSharp.torch;

namespace TrainingForensics.Data;

/// <summary>
/// Settings of the synthetic ECG generator. Units are millivolts and seconds. Two classes: 0 = normal sinus
/// rhythm, 1 = an AF-like rhythm (irregular RR intervals, no P wave, fibrillatory baseline, wider QRS, ST elevation).
/// </summary>
public sealed record EcgOptions
{
    /// <summary>Number of records.</summary>
    public int Records { get; init; } = 512;
    /// <summary>Samples per record (the report's data sets: 130 and 60,000).</summary>
    public int Length { get; init; } = 60_000;
    /// <summary>Samples per second.</summary>
    public double SampleRate { get; init; } = 250;
    /// <summary>Constant added to every sample (mV): an electrode's DC offset. Zero-mean records do not freeze the buggy model.</summary>
    public double OffsetMv { get; init; } = 1.0;
    /// <summary>Standard deviation of white measurement noise (mV).</summary>
    public double NoiseMv { get; init; } = 0.05;
    /// <summary>Amplitude of the slow baseline wander (mV).</summary>
    public double WanderMv { get; init; } = 0.1;
    /// <summary>Fraction of AF records when <see cref="AfCount"/> is not given (rounded to the nearest count).</summary>
    public double AfFraction { get; init; } = 0.5;
    /// <summary>Exact number of AF records (e.g. 52 of 100, the report's evaluation split); overrides <see cref="AfFraction"/>.</summary>
    public int? AfCount { get; init; }
    /// <summary>Seed: the same options give the same records, bit for bit.</summary>
    public int Seed { get; init; } = 0;
}

/// <summary>ECG records (N×L float32, mV) with their labels (N int64: 0 normal, 1 AF), kept on the CPU.</summary>
public sealed class EcgSet : IDisposable
{
    public static readonly IReadOnlyList<string> ClassNames = new[] { "normal", "AF" };

    public EcgSet(Tensor signals, Tensor labels, EcgOptions options)
    {
        if (signals.dim() != 2) throw new ArgumentException($"signals must be N×L, got [{string.Join(",", signals.shape)}]");
        if (labels.dim() != 1 || labels.shape[0] != signals.shape[0])
            throw new ArgumentException($"labels must be one per record, got [{string.Join(",", labels.shape)}] for {signals.shape[0]} records");
        Signals = signals; Labels = labels; Options = options;
    }

    public Tensor Signals { get; }
    public Tensor Labels { get; }
    public EcgOptions Options { get; }
    public long Count => Labels.shape[0];
    public long Length => Signals.shape[1];
    /// <summary>Number of AF (class 1) records.</summary>
    public long AfCount { get { using var s = Labels.sum(); return s.item<long>(); } }
    /// <summary>Mean of every sample of every record (mV): the DC level the first layer sees.</summary>
    public double MeanMv { get { using var m = Signals.mean(); return m.item<float>(); } }

    /// <summary>
    /// Each record shifted to mean 0 and scaled to standard deviation 1 (one record at a time, so a record's class
    /// does not leak through another's statistics). This is the input-normalisation fix.
    /// </summary>
    public static Tensor Standardize(Tensor x)
    {
        if (x.dim() != 2) throw new ArgumentException($"standardize expects N×L records, got [{string.Join(",", x.shape)}]");
        using var scope = NewDisposeScope();
        var mean = x.mean(new long[] { 1 }, keepdim: true);
        var std = x.std(1, keepdim: true).clamp_min(1e-6);
        return ((x - mean) / std).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Mini-batches (X: B×L, Y: B) in a random order drawn from <paramref name="generator"/> (or in order);
    /// <paramref name="standardize"/> applies <see cref="Standardize"/> to each batch.
    /// Tensors are created in the caller's dispose scope.
    /// </summary>
    public IEnumerable<(Tensor X, Tensor Y)> Batches(int batchSize, bool shuffle = true, Generator? generator = null,
        bool standardize = false, bool dropLast = false)
    {
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be positive");
        long[] index;
        using (NewDisposeScope())
            index = (shuffle ? randperm(Count, generator: generator) : arange(Count)).data<long>().ToArray();
        for (long start = 0; start < Count; start += batchSize)
        {
            long n = Math.Min(batchSize, Count - start);
            if (dropLast && n < batchSize) yield break;
            var idx = tensor(index.AsSpan((int)start, (int)n).ToArray());
            var x = Signals.index_select(0, idx);
            if (standardize) x = Standardize(x);
            yield return (x, Labels.index_select(0, idx));
        }
    }

    /// <summary>The first <paramref name="n"/> records (a view).</summary>
    public EcgSet Take(long n)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), n, "must take at least one record");
        n = Math.Min(n, Count);
        return new EcgSet(Signals.narrow(0, 0, n), Labels.narrow(0, 0, n), Options with { Records = (int)n, AfCount = null });
    }

    public void Dispose() { Signals.Dispose(); Labels.Dispose(); }
}

/// <summary>
/// A seeded synthetic ECG generator. Each record is a rhythm strip: a beat template (sums of Gaussian P, Q, R, S,
/// T waves; class-specific) placed at the beat times, plus baseline wander, AF fibrillatory waves, white noise and
/// a DC offset. Beat placement runs in C# over beats (not samples); wander, fibrillation and noise are vectorised
/// torch operations. Determinism: .NET Random and a torch Generator, both seeded from <see cref="EcgOptions.Seed"/>
/// (the global torch seed is not touched).
/// </summary>
public static class EcgGenerator
{
    public static EcgSet Generate(EcgOptions options)
    {
        Validate(options);
        int n = options.Records, length = options.Length;
        double fs = options.SampleRate;
        var rng = new Random(options.Seed);
        int af = options.AfCount ?? (int)Math.Round(n * options.AfFraction);
        var labels = new long[n];
        for (int i = 0; i < af; i++) labels[i] = 1;
        for (int i = n - 1; i > 0; i--) { int j = rng.Next(i + 1); (labels[i], labels[j]) = (labels[j], labels[i]); }

        var beats = new float[(long)n * length];
        var wander = new float[n * 4];   // frequency (Hz) and phase of two wander sinusoids
        var fib = new float[n * 2];      // fibrillation frequency (Hz) and phase (AF only)
        for (int r = 0; r < n; r++)
        {
            bool isAf = labels[r] == 1;
            RenderBeats(beats.AsSpan(r * length, length), isAf, fs, rng);
            wander[r * 4] = (float)(0.1 + 0.3 * rng.NextDouble());
            wander[r * 4 + 1] = (float)(2 * Math.PI * rng.NextDouble());
            wander[r * 4 + 2] = (float)(0.3 + 0.3 * rng.NextDouble());
            wander[r * 4 + 3] = (float)(2 * Math.PI * rng.NextDouble());
            fib[r * 2] = isAf ? (float)(5 + 3 * rng.NextDouble()) : 0f;
            fib[r * 2 + 1] = (float)(2 * Math.PI * rng.NextDouble());
        }

        using var scope = NewDisposeScope();
        var gen = new Generator((ulong)options.Seed + 0x9E3779B9UL);
        var t = arange(length, ScalarType.Float32).div_(fs).unsqueeze(0);             // 1×L seconds
        var w = tensor(wander, new long[] { n, 4 });
        var f = tensor(fib, new long[] { n, 2 });
        var tau = 2 * Math.PI;
        var x = tensor(beats, new long[] { n, length });
        x.add_(((t * w[.., 0..1] * tau) + w[.., 1..2]).sin_().mul_(options.WanderMv));
        x.add_(((t * w[.., 2..3] * tau) + w[.., 3..4]).sin_().mul_(0.5 * options.WanderMv));
        x.add_(((t * f[.., 0..1] * tau) + f[.., 1..2]).sin_().mul_(f[.., 0..1].gt(0).to_type(ScalarType.Float32) * 0.05));
        if (options.NoiseMv > 0) x.add_(randn(new long[] { n, length }, generator: gen).mul_(options.NoiseMv));
        x.add_(options.OffsetMv);
        var y = tensor(labels);
        return new EcgSet(x.MoveToOuterDisposeScope(), y.MoveToOuterDisposeScope(), options);
    }

    static void Validate(EcgOptions o)
    {
        if (o.Records < 1) throw new ArgumentOutOfRangeException(nameof(o.Records), o.Records, "need at least one record");
        if (o.Length < 8) throw new ArgumentOutOfRangeException(nameof(o.Length), o.Length, "records need at least 8 samples");
        if ((long)o.Records * o.Length > 200_000_000L)
            throw new ArgumentOutOfRangeException(nameof(o.Records), $"{o.Records:N0} records × {o.Length:N0} samples is over 200 million floats; generate fewer or shorter records");
        if (!(o.SampleRate >= 20 && o.SampleRate <= 10_000)) throw new ArgumentOutOfRangeException(nameof(o.SampleRate), o.SampleRate, "sample rate must be 20–10,000 Hz");
        if (!double.IsFinite(o.OffsetMv)) throw new ArgumentOutOfRangeException(nameof(o.OffsetMv), o.OffsetMv, "offset must be finite");
        if (!(o.NoiseMv >= 0) || !(o.WanderMv >= 0)) throw new ArgumentOutOfRangeException(nameof(o.NoiseMv), "noise and wander amplitudes must be ≥ 0");
        if (o.AfCount is { } c && (c < 0 || c > o.Records))
            throw new ArgumentOutOfRangeException(nameof(o.AfCount), c, $"AF count must be between 0 and the {o.Records} records");
        if (!(o.AfFraction >= 0 && o.AfFraction <= 1)) throw new ArgumentOutOfRangeException(nameof(o.AfFraction), o.AfFraction, "AF fraction must be in [0, 1]");
    }

    // A wave: amplitude (mV), centre and width (s) relative to the R peak.
    readonly record struct Wave(double Amp, double Centre, double Sigma);

    static void RenderBeats(Span<float> record, bool af, double fs, Random rng)
    {
        double scale = 0.8 + 0.4 * rng.NextDouble();
        double qrsWidth = af ? 1.7 : 1.0;
        var waves = new List<Wave>
        {
            new(-0.12, -0.035 * qrsWidth, 0.010 * qrsWidth),  // Q
            new(1.10, 0.0, 0.011 * qrsWidth),                 // R
            new(-0.25, 0.035 * qrsWidth, 0.011 * qrsWidth),   // S
            new(0.30, 0.30, 0.055),                           // T
        };
        if (!af) waves.Add(new(0.15, -0.19, 0.025));          // P (absent in AF)
        else waves.Add(new(0.18, 0.14, 0.05));                // ST elevation
        // Template from 0.30 s before to 0.50 s after the R peak.
        int before = (int)Math.Ceiling(0.30 * fs), after = (int)Math.Ceiling(0.50 * fs);
        var template = new float[before + after + 1];
        for (int k = 0; k < template.Length; k++)
        {
            double s = (k - before) / fs, v = 0;
            foreach (var wv in waves) { double d = (s - wv.Centre) / wv.Sigma; v += wv.Amp * Math.Exp(-0.5 * d * d); }
            template[k] = (float)(scale * v);
        }
        double meanRr = 60.0 / (af ? 85 + 40 * rng.NextDouble() : 60 + 30 * rng.NextDouble());
        double time = -rng.NextDouble() * meanRr;  // first beat before or at the start: records begin mid-rhythm
        double duration = record.Length / fs;
        double respPhase = 2 * Math.PI * rng.NextDouble();
        while (time < duration + 0.3)
        {
            int centre = (int)Math.Round(time * fs);
            int from = Math.Max(0, centre - before), to = Math.Min(record.Length - 1, centre + after);
            for (int i = from; i <= to; i++) record[i] += template[i - centre + before];
            double rr = af
                ? meanRr * (0.55 + 0.9 * rng.NextDouble())                                  // irregularly irregular
                : meanRr * (1 + 0.04 * Math.Sin(2 * Math.PI * 0.25 * time + respPhase) + 0.01 * (rng.NextDouble() - 0.5));
            time += rr;
        }
    }
}
