using TorchSharp;
using static TorchSharp.torch;
using TrainingForensics.Native;

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
    /// <summary>
    /// Time (s) of the first R peak: null starts each record at a random point of the rhythm (a rhythm strip);
    /// a value aligns every record to a beat (a heartbeat segment, as short-record data sets are cut).
    /// </summary>
    public double? FirstBeatAt { get; init; }
    /// <summary>Seed: the same options give the same records, bit for bit.</summary>
    public int Seed { get; init; } = 0;
}

/// <summary>ECG records (N×L float32, mV) with their labels (N int64: 0 normal, 1 AF), on one device (<see cref="To"/>).</summary>
public sealed class EcgSet : IDisposable
{
    public static readonly IReadOnlyList<string> ClassNames = new[] { "normal", "AF" };

    public EcgSet(Tensor signals, Tensor labels, EcgOptions options)
    {
        if (signals.dim() != 2) throw new ArgumentException($"signals must be N×L, got [{string.Join(",", signals.shape)}]");
        if (labels.dim() != 1 || labels.shape[0] != signals.shape[0])
            throw new ArgumentException($"labels must be one per record, got [{string.Join(",", labels.shape)}] for {signals.shape[0]} records");
        if (!labels.IsOn(signals.device))
            throw new ArgumentException($"signals on {signals.device}, labels on {labels.device}: one set lives on one device");
        Signals = signals; Labels = labels; Options = options;
    }

    /// <summary>Where the records live, and so where every batch is cut.</summary>
    public Device Device => Signals.device;

    /// <summary>The set on <paramref name="device"/>, copied there once (a new set owning its copies); this set if already there.</summary>
    public EcgSet To(Device device) => Signals.IsOn(device) ? this : new EcgSet(Signals.to(device), Labels.to(device), Options);

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
        var std = x.std(1, keepdim: true).AtLeastOf(1e-6);
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
        foreach (var idx in BatchOrder.Indices(Count, batchSize, shuffle, generator, dropLast, Device))
        {
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
/// a DC offset. Beats are placed as precomputed templates, sinusoids use a rotation recurrence (no per-sample
/// sin call), and the noise is one vectorised torch draw. Determinism: .NET Random and a torch Generator, both seeded from <see cref="EcgOptions.Seed"/>
/// (the global torch seed is not touched).
/// </summary>
public static class EcgGenerator
{
    /// <summary>
    /// The records of <paramref name="options"/> (on <paramref name="device"/>; default the CPU), rendered
    /// <paramref name="workers"/> at a time (default <see cref="Training.ConcurrentRuns.DefaultWorkers"/>): the same
    /// records bit for bit whatever the count.
    /// </summary>
    public static EcgSet Generate(EcgOptions options, Device? device = null, int? workers = null)
    {
        using var ledger = Results.RunLedger.Time(Results.RunLedger.DataLoading);
        Validate(options);
        if (workers < 1) throw new ArgumentOutOfRangeException(nameof(workers), workers, "need at least one worker");
        int n = options.Records, length = options.Length;
        double fs = options.SampleRate;
        var rng = new Random(options.Seed);
        int af = options.AfCount ?? (int)Math.Round(n * options.AfFraction);
        var labels = new long[n];
        for (int i = 0; i < af; i++) labels[i] = 1;
        for (int i = n - 1; i > 0; i--) { int j = rng.Next(i + 1); (labels[i], labels[j]) = (labels[j], labels[i]); }

        // Every random number is drawn first, record by record in one sequence (the records depend on the seed alone);
        // the records are then rendered from those draws side by side, each into a buffer of its worker and copied
        // into its row of the tensor, so a 512 × 60,000 set needs no second 100 MB array.
        var plans = new RecordPlan[n];
        for (int r = 0; r < n; r++) plans[r] = Plan(labels[r] == 1, fs, options.FirstBeatAt, length, options.WanderMv, rng);
        var x = empty(n, length, ScalarType.Float32);  // host: records are generated on the host and copied to the device once
        try
        {
            float offset = (float)options.OffsetMv;
            Parallel.For(0, n, new ParallelOptions { MaxDegreeOfParallelism = workers ?? Training.ConcurrentRuns.DefaultWorkers }, () => new float[length],
                (r, _, buffer) =>
                {
                    Array.Clear(buffer);
                    Render(buffer, plans[r], fs, offset);
                    using var row = tensor(buffer);  // host: the records are generated on the host
                    using var target = x.select(0, r);
                    target.copy_(row);
                    return buffer;
                }, _ => { });
            if (options.NoiseMv > 0)
            {
                using var scope = NewDisposeScope();
                var gen = new Generator((ulong)options.Seed + 0x9E3779B9UL);
                x.AddScaledInPlace(randn(new long[] { n, length }, generator: gen), options.NoiseMv);  // host: seeded on the host generator, as the records
            }
        }
        catch
        {
            x.Dispose();
            throw;
        }
        var y = tensor(labels);  // host: with the records
        var set = new EcgSet(x, y, options);
        if (device == null || device.type == DeviceType.CPU) return set;
        using (set) return set.To(device); // generated on the host (seeded there), copied once
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
        if (o.FirstBeatAt is { } fb && !(fb >= 0 && fb < o.Length / o.SampleRate))
            throw new ArgumentOutOfRangeException(nameof(o.FirstBeatAt), fb, $"the first beat must lie inside the record (0 to {o.Length / o.SampleRate:G4} s)");
        if (!(o.AfFraction >= 0 && o.AfFraction <= 1)) throw new ArgumentOutOfRangeException(nameof(o.AfFraction), o.AfFraction, "AF fraction must be in [0, 1]");
    }

    // amplitude·sin(2π·freq·t + phase) added sample by sample with a rotation recurrence (no per-sample sin call).
    static void AddSine(Span<float> record, double fs, double freq, double phase, double amplitude)
    {
        if (amplitude == 0) return;
        double step = 2 * Math.PI * freq / fs, c = Math.Cos(step), s = Math.Sin(step);
        double sin = Math.Sin(phase), cos = Math.Cos(phase);
        for (int i = 0; i < record.Length; i++)
        {
            record[i] += (float)(amplitude * sin);
            (sin, cos) = (sin * c + cos * s, cos * c - sin * s);
            if ((i & 4095) == 4095) { double norm = Math.Sqrt(sin * sin + cos * cos); sin /= norm; cos /= norm; } // keep on the unit circle
        }
    }

    // A wave: amplitude (mV), centre and width (s) relative to the R peak.
    readonly record struct Wave(double Amp, double Centre, double Sigma);

    // A sinusoid added to a record: amplitude·sin(2π·freq·t + phase).
    readonly record struct Sine(double Freq, double Phase, double Amplitude);

    // Everything random about one record, drawn in the generator's fixed order.
    sealed record RecordPlan(bool Af, double Scale, List<double> BeatTimes, Sine[] Sines);

    static RecordPlan Plan(bool af, double fs, double? firstBeat, int length, double wanderMv, Random rng)
    {
        double scale = 0.8 + 0.4 * rng.NextDouble();
        double meanRr = 60.0 / (af ? 85 + 40 * rng.NextDouble() : 60 + 30 * rng.NextDouble());
        double start = -rng.NextDouble() * meanRr;  // first beat before or at the start: records begin mid-rhythm
        double time = firstBeat ?? start;
        double duration = length / fs;
        double respPhase = 2 * Math.PI * rng.NextDouble();
        var beats = new List<double>();
        while (time < duration + 0.3)
        {
            beats.Add(time);
            double rr = af
                ? meanRr * (0.55 + 0.9 * rng.NextDouble())                                  // irregularly irregular
                : meanRr * (1 + 0.04 * Math.Sin(2 * Math.PI * 0.25 * time + respPhase) + 0.01 * (rng.NextDouble() - 0.5));
            time += rr;
        }
        var sines = new List<Sine>();
        double f = 0.1 + 0.3 * rng.NextDouble(); sines.Add(new(f, 2 * Math.PI * rng.NextDouble(), wanderMv));            // baseline wander
        f = 0.3 + 0.3 * rng.NextDouble(); sines.Add(new(f, 2 * Math.PI * rng.NextDouble(), 0.5 * wanderMv));             // (respiration)
        if (af) { f = 5 + 3 * rng.NextDouble(); sines.Add(new(f, 2 * Math.PI * rng.NextDouble(), 0.05)); }               // f waves
        return new RecordPlan(af, scale, beats, sines.ToArray());
    }

    static void Render(Span<float> record, RecordPlan plan, double fs, float offset)
    {
        bool af = plan.Af;
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
            template[k] = (float)(plan.Scale * v);
        }
        foreach (double time in plan.BeatTimes)
        {
            int centre = (int)Math.Round(time * fs);
            int from = Math.Max(0, centre - before), to = Math.Min(record.Length - 1, centre + after);
            for (int i = from; i <= to; i++) record[i] += template[i - centre + before];
        }
        foreach (var sine in plan.Sines) AddSine(record, fs, sine.Freq, sine.Phase, sine.Amplitude);
        for (int i = 0; i < record.Length; i++) record[i] += offset;
    }
}
