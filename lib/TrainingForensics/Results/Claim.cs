using System.Globalization;

namespace TrainingForensics.Results;

/// <summary>A statement a notebook makes in prose that its own run did not bear out.</summary>
public sealed class ClaimFailedException : Exception
{
    public ClaimFailedException(string message) : base(message) { }
}

/// <summary>
/// Assertions for notebook cells: every number a notebook states is checked by one of these in the cell that
/// computes it, so a run that no longer supports the prose stops with the claim and the measured value.
/// Each check shows where it is made: a passing claim prints a "✓" line in the cell's output (in the kernel and in
/// tf-run alike), a failing one stops the run with "✗ claim failed: …". Passing claims are also kept in
/// <see cref="Passed"/> and go into the figures JSON, from which the runner's pages list them.
/// </summary>
public static class Claim
{
    static readonly List<string> _passed = new();
    static readonly object Gate = new();

    public static IReadOnlyList<string> Passed { get { lock (Gate) return _passed.ToList(); } }

    public static void Reset() { lock (Gate) _passed.Clear(); }

    /// <summary>Holds when <paramref name="condition"/> is true.</summary>
    public static void That(bool condition, string claim)
    {
        if (!condition) throw Failed(claim);
        Pass(claim);
    }

    /// <summary>|actual − expected| ≤ tolerance.</summary>
    public static void Near(double actual, double expected, double tolerance, string claim)
    {
        if (!(Math.Abs(actual - expected) <= tolerance))
            throw Failed($"{claim}: measured {F(actual)}, expected {F(expected)} ± {F(tolerance)}");
        Pass($"{claim} ({F(actual)} ≈ {F(expected)} ± {F(tolerance)})");
    }

    /// <summary>low ≤ actual ≤ high.</summary>
    public static void InRange(double actual, double low, double high, string claim)
    {
        if (!(actual >= low && actual <= high))
            throw Failed($"{claim}: measured {F(actual)}, outside [{F(low)}, {F(high)}]");
        Pass($"{claim} ({F(actual)} in [{F(low)}, {F(high)}])");
    }

    /// <summary>actual &gt; threshold.</summary>
    public static void Above(double actual, double threshold, string claim)
    {
        if (!(actual > threshold)) throw Failed($"{claim}: measured {F(actual)}, not above {F(threshold)}");
        Pass($"{claim} ({F(actual)} > {F(threshold)})");
    }

    /// <summary>actual &lt; threshold.</summary>
    public static void Below(double actual, double threshold, string claim)
    {
        if (!(actual < threshold)) throw Failed($"{claim}: measured {F(actual)}, not below {F(threshold)}");
        Pass($"{claim} ({F(actual)} < {F(threshold)})");
    }

    /// <summary>Exact equality (counts, classes, texts).</summary>
    public static void Equal<T>(T actual, T expected, string claim)
    {
        if (!EqualityComparer<T>.Default.Equals(actual, expected))
            throw Failed($"{claim}: measured {actual}, expected {expected}");
        Pass($"{claim} ({actual})");
    }

    static void Pass(string text)
    {
        lock (Gate) _passed.Add(text);
        Console.WriteLine($"✓ {text}");
        Figures.Rewrite(); // a kernel run's figures file (TF_FIGURES) lists the claims checked so far
    }

    static ClaimFailedException Failed(string text)
    {
        Console.WriteLine($"✗ claim failed: {text}");
        return new ClaimFailedException($"✗ claim failed: {text}");
    }

    static string F(double v) => v.ToString("G8", CultureInfo.InvariantCulture);
}
