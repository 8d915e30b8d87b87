using TorchSharp;
using TrainingForensics.Native;
using static TorchSharp.torch;

namespace TrainingForensics.Tests.Library;

/// <summary>
/// The held-Scalar helpers replace TorchSharp's operators in the library: each must give the very tensor (values,
/// dtype) of the operator it replaces, or a notebook figure would move.
/// </summary>
public class HeldScalarsTests
{
    static void Same(Tensor expected, Tensor actual, string what)
    {
        Assert.True(expected.dtype == actual.dtype, $"{what}: dtype {actual.dtype}, operator gives {expected.dtype}");
        Assert.True(expected.shape.SequenceEqual(actual.shape), $"{what}: shape differs");
        Assert.True(expected.eq(actual).all().item<bool>(), $"{what}: values differ from the operator's");
    }

    [Fact]
    public void Each_helper_gives_the_operators_tensor_bit_for_bit()
    {
        TorchNative.EnsureLoaded();
        using var scope = NewDisposeScope();
        var g = new Generator(7);
        var x = randn(new long[] { 5, 7 }, generator: g);
        var y = randn(new long[] { 5, 7 }, generator: g);
        var k = randint(0, 50, new long[] { 5, 7 }, generator: g);  // int64
        var oneHot = nn.functional.one_hot(randint(0, 3, new long[] { 6 }, generator: g), 3);

        Same(x + 0.37, x.Plus(0.37), "x + 0.37");
        Same(x + y, x.Plus(y), "x + y");
        Same(x - 0.5, x.Minus(0.5), "x - 0.5");
        Same(k - 1, k.Minus(1L), "k - 1 (int64)");
        Same(x * 0.1, x.Times(0.1), "x * 0.1");
        Same(x * 4, x.Times(4L), "x * 4");
        Same(k * 4, k.Times(4L), "k * 4 (int64)");
        Same(x / 0.3, x.DividedBy(0.3), "x / 0.3");
        Same(x / 7L, x.DividedBy(7L), "x / 7");
        Same(k / 7L, k.DividedBy(7L), "k / 7 (true division)");
        Same(k.div(7, rounding_mode: RoundingMode.floor), k.FloorDividedBy(7), "k // 7");
        Same(k.remainder(7), k.Remainder(7), "k % 7");
        Same(x.square(), x.Squared(), "square()");
        Same(x.gt(0.2), x.GreaterThan(0.2), "gt");
        Same(x.ge(0), x.AtLeast(0), "ge");
        Same(x.le(1e-6), x.AtMost(1e-6), "le");
        Same(oneHot.eq(1), oneHot.EqualTo(1), "eq");
        Same(x.clamp(0, 1), x.Clamped(0, 1), "clamp(0, 1)");
        Same(x.clamp_min(1e-6), x.AtLeastOf(1e-6), "clamp_min");
        Same(arange(9), HeldScalars.Range(9), "arange(9)");
        Same(full(new long[] { 4 }, 2, ScalarType.Int64), HeldScalars.Filled(4, 2, ScalarType.Int64), "full");

        var a = x.clone(); var b = x.clone();
        a.mul_(1 - 0.003).add_(y, alpha: 0.003);
        b.ScaleAndAddInPlace(1 - 0.003, y, 0.003);
        Same(a, b, "running-average step");
        var c = x.clone(); var d = x.clone();
        c.add_(y, alpha: 0.02); d.AddScaledInPlace(y, 0.02);
        Same(c, d, "x += 0.02 y");
        var e = x.clone(); var f = x.clone();
        e.div_(255f); f.DivideInPlace(255f);
        Same(e, f, "x /= 255");
    }
}
