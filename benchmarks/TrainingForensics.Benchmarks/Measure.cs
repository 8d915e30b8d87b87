using System.Diagnostics;
using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace TrainingForensics.Benchmarks;

/// <summary>Timing helpers: warm up, then repeat until a minimum time has passed; medians over rounds.</summary>
internal static class Measure
{
    /// <summary>Calls per second of <paramref name="action"/> after <paramref name="warmup"/> calls, over at least <paramref name="seconds"/>.</summary>
    public static double Rate(Action action, int warmup, double seconds)
    {
        for (int i = 0; i < warmup; i++) action();
        long n = 0;
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed.TotalSeconds < seconds || n < 3)
        {
            action();
            n++;
        }
        return n / watch.Elapsed.TotalSeconds;
    }

    /// <summary>Seconds per call of each variant, interleaved A, B, C, A, B, C… so that load drifts hit all alike; medians.</summary>
    public static double[] InterleavedSecondsPerCall(IReadOnlyList<Action> variants, int callsPerRound, int rounds, int warmup)
    {
        foreach (var v in variants)
            for (int i = 0; i < warmup; i++) v();
        var samples = variants.Select(_ => new List<double>()).ToArray();
        for (int r = 0; r < rounds; r++)
            for (int k = 0; k < variants.Count; k++)
            {
                var watch = Stopwatch.StartNew();
                for (int i = 0; i < callsPerRound; i++) variants[k]();
                samples[k].Add(watch.Elapsed.TotalSeconds / callsPerRound);
            }
        return samples.Select(Median).ToArray();
    }

    public static double Median(IEnumerable<double> values)
    {
        var s = values.OrderBy(x => x).ToArray();
        return s.Length == 0 ? double.NaN : s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    /// <summary>Float32 matmul rate (GFLOP/s, 2n³ per product) of n×n matrices at the current thread count.</summary>
    public static double MatmulGflops(int n, double seconds)
    {
        using var scope = NewDisposeScope();
        var a = randn(n, n);
        var b = randn(n, n);
        double rate = Rate(() => { using var s = NewDisposeScope(); a.matmul(b); }, warmup: 3, seconds);
        return rate * 2.0 * n * n * n / 1e9;
    }

    public static string F(double v, string format = "N1") => v.ToString(format, CultureInfo.InvariantCulture);
}
