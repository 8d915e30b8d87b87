using TorchSharp;
using static TorchSharp.torch;

namespace TrainingForensics.Native;

/// <summary>
/// Tensor arithmetic with a number, holding the number's <see cref="Scalar"/> until libtorch has finished with it.
/// Why: TorchSharp 0.107 frees a Scalar only in its finaliser and does not keep it alive across the native call that
/// reads it. A Scalar made on the fly — <c>t * 2.0</c>, <c>t.gt(0)</c>, <c>square()</c> (a pow(2)), the hidden alpha
/// of 1 in <c>a + b</c> — can be collected by a GC that runs while the call is inside libtorch, and its finaliser then
/// frees memory libtorch is about to read (CI: "Expected false to be true … toFloat" in 03's broken regime while other
/// runs trained beside it). Each helper here makes the Scalar, calls, and disposes it afterwards: alive through the
/// call, freed at once. Same Scalar types as TorchSharp's operators (a whole number stays integral), so results are
/// bit-identical to the operator they replace. Library code uses only these (HygieneScalarLifetimeTests).
/// </summary>
public static class HeldScalars
{
    /// <summary>t + value (as <c>t + value</c>).</summary>
    public static Tensor Plus(this Tensor t, double value) { using var s = value.ToScalar(); using var one = 1.ToScalar(); return t.add(s, one); }

    /// <summary>a + b (as <c>a + b</c>, whose alpha of 1 TorchSharp makes on the fly).</summary>
    public static Tensor Plus(this Tensor a, Tensor b) { using var one = 1.ToScalar(); return a.add(b, one); }

    /// <summary>t − value.</summary>
    public static Tensor Minus(this Tensor t, double value) { using var s = value.ToScalar(); return t.sub(s); }

    /// <summary>t − value, value whole (an integer tensor stays integer).</summary>
    public static Tensor Minus(this Tensor t, long value) { using var s = value.ToScalar(); return t.sub(s); }

    /// <summary>t × value.</summary>
    public static Tensor Times(this Tensor t, double value) { using var s = value.ToScalar(); return t.mul(s); }

    /// <summary>t × value, value whole (an integer tensor stays integer).</summary>
    public static Tensor Times(this Tensor t, long value) { using var s = value.ToScalar(); return t.mul(s); }

    /// <summary>t ÷ value (true division).</summary>
    public static Tensor DividedBy(this Tensor t, double value) { using var s = value.ToScalar(); return t.div(s); }

    /// <summary>t ÷ value (true division), value whole.</summary>
    public static Tensor DividedBy(this Tensor t, long value) { using var s = value.ToScalar(); return t.div(s); }

    /// <summary>⌊t ÷ value⌋, value whole (an integer tensor stays integer).</summary>
    public static Tensor FloorDividedBy(this Tensor t, long value) { using var s = value.ToScalar(); return t.div(s, RoundingMode.floor); }

    /// <summary>t mod value, value whole.</summary>
    public static Tensor Remainder(this Tensor t, long value) { using var s = value.ToScalar(); return t.remainder(s); }

    /// <summary>In place: t ÷= value.</summary>
    public static Tensor DivideInPlace(this Tensor t, double value) { using var s = value.ToScalar(); return t.div_(s); }

    /// <summary>t² (as <c>square()</c>, which is pow(2) with an integral 2).</summary>
    public static Tensor Squared(this Tensor t) { using var two = 2.ToScalar(); return t.pow(two); }

    /// <summary>t &gt; value, elementwise.</summary>
    public static Tensor GreaterThan(this Tensor t, double value) { using var s = value.ToScalar(); return t.gt(s); }

    /// <summary>t ≥ value, elementwise.</summary>
    public static Tensor AtLeast(this Tensor t, double value) { using var s = value.ToScalar(); return t.ge(s); }

    /// <summary>t ≤ value, elementwise.</summary>
    public static Tensor AtMost(this Tensor t, double value) { using var s = value.ToScalar(); return t.le(s); }

    /// <summary>t == value, elementwise (value whole: compared as an integer).</summary>
    public static Tensor EqualTo(this Tensor t, long value) { using var s = value.ToScalar(); return t.eq(s); }

    /// <summary>t clamped to [low, high] (whole bounds, as <c>clamp(0, 1)</c>).</summary>
    public static Tensor Clamped(this Tensor t, long low, long high) { using var lo = low.ToScalar(); using var hi = high.ToScalar(); return t.clamp(lo, hi); }

    /// <summary>max(t, low), elementwise.</summary>
    public static Tensor AtLeastOf(this Tensor t, double low) { using var s = low.ToScalar(); return t.clamp_min(s); }

    /// <summary>In place: t = t × keep + other × alpha (an exponential moving average step).</summary>
    public static Tensor ScaleAndAddInPlace(this Tensor t, double keep, Tensor other, double alpha)
    {
        using var k = keep.ToScalar(); using var a = alpha.ToScalar();
        return t.mul_(k).add_(other, a);
    }

    /// <summary>In place: t += other × alpha.</summary>
    public static Tensor AddScaledInPlace(this Tensor t, Tensor other, double alpha) { using var a = alpha.ToScalar(); return t.add_(other, a); }

    /// <summary>0, 1, …, count − 1 as int64 on <paramref name="device"/> (as <c>arange(count)</c>).</summary>
    public static Tensor Range(long count, Device? device = null)
    {
        // arange(stop) would make its start 0 and step 1 on the fly
        using var start = 0.ToScalar(); using var stop = count.ToScalar(); using var step = 1.ToScalar();
        return arange(start, stop, step, ScalarType.Int64, device);
    }

    /// <summary>A tensor of <paramref name="length"/> copies of a whole number.</summary>
    public static Tensor Filled(long length, long value, ScalarType dtype, Device? device = null)
    {
        using var s = value.ToScalar();
        return full(new[] { length }, s, dtype, device);
    }
}
