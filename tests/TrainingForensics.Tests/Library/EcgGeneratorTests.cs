using TorchSharp;
using TrainingForensics.Data;
using TrainingForensics.Models;
using TrainingForensics.Setup;
using static TorchSharp.torch;

namespace TrainingForensics.Tests.Library;

public class CaseStudy1EcgGeneratorTests
{
    static EcgOptions Small => new() { Records = 12, Length = 2_000, Seed = 5 };

    [Fact]
    public void The_same_options_give_the_same_records_bit_for_bit_and_another_seed_does_not()
    {
        TorchEnvironment.Reseed(1);
        using var a = EcgGenerator.Generate(Small);
        TorchEnvironment.Reseed(999); // the global torch seed must not matter
        using var b = EcgGenerator.Generate(Small);
        using var c = EcgGenerator.Generate(Small with { Seed = 6 });
        Assert.True(a.Signals.eq(b.Signals).all().item<bool>());
        Assert.True(a.Labels.eq(b.Labels).all().item<bool>());
        Assert.False(a.Signals.eq(c.Signals).all().item<bool>());
    }

    [Fact]
    public void Records_rendered_side_by_side_are_those_rendered_one_at_a_time()
    {
        // the random numbers are drawn in one sequence before any record is rendered: the worker count cannot change a bit
        var options = Small with { Records = 40, AfCount = 17, Seed = 8 };
        using var alone = EcgGenerator.Generate(options, workers: 1);
        using var together = EcgGenerator.Generate(options, workers: 3);
        Assert.True(alone.Signals.eq(together.Signals).all().item<bool>());
        Assert.True(alone.Labels.eq(together.Labels).all().item<bool>());
        Assert.Throws<ArgumentOutOfRangeException>(() => EcgGenerator.Generate(options, workers: 0));
    }

    [Fact]
    public void Shapes_class_counts_and_offset_are_as_asked()
    {
        using var set = EcgGenerator.Generate(Small with { Records = 100, AfCount = 52 });
        Assert.Equal(new long[] { 100, 2_000 }, set.Signals.shape);
        Assert.Equal(ScalarType.Float32, set.Signals.dtype);
        Assert.Equal(ScalarType.Int64, set.Labels.dtype);
        Assert.Equal(52, set.AfCount);
        using var half = EcgGenerator.Generate(Small with { Records = 9, AfFraction = 1.0 / 3 });
        Assert.Equal(3, half.AfCount);
        // The offset is added to every sample: same seed, offset 0 vs 1.5 differ by exactly 1.5 everywhere.
        using var zero = EcgGenerator.Generate(Small with { OffsetMv = 0 });
        using var shifted = EcgGenerator.Generate(Small with { OffsetMv = 1.5 });
        using var diff = shifted.Signals - zero.Signals;
        Assert.Equal(1.5, diff.min().item<float>(), 4);
        Assert.Equal(1.5, diff.max().item<float>(), 4);
        Assert.InRange(zero.MeanMv, -0.2, 0.3);
    }

    [Fact]
    public void Normal_beats_have_a_P_wave_and_AF_beats_have_none()
    {
        // Beat-aligned, noise-free records: R peak at 0.25 s, so the P wave (0.19 s earlier) peaks at 0.06 s.
        var o = new EcgOptions { Records = 40, Length = 130, FirstBeatAt = 0.25, NoiseMv = 0, WanderMv = 0, OffsetMv = 0, Seed = 3 };
        using var set = EcgGenerator.Generate(o);
        int p = (int)Math.Round(0.06 * o.SampleRate), r = (int)Math.Round(0.25 * o.SampleRate);
        var x = set.Signals; var y = set.Labels.data<long>().ToArray();
        for (int i = 0; i < y.Length; i++)
        {
            float pWave = x[i, p].item<float>(), rPeak = x[i, r].item<float>();
            Assert.True(rPeak > 0.7, $"record {i}: R peak {rPeak} missing");
            if (y[i] == 0) Assert.True(pWave > 0.09, $"normal record {i}: P wave {pWave} too small");
            else Assert.True(Math.Abs(pWave) < 0.06, $"AF record {i}: unexpected P wave {pWave}");
        }
    }

    [Fact]
    public void Bad_options_are_refused_with_the_cause()
    {
        Assert.Contains("at least one record", Assert.Throws<ArgumentOutOfRangeException>(() => EcgGenerator.Generate(Small with { Records = 0 })).Message);
        Assert.Contains("AF count", Assert.Throws<ArgumentOutOfRangeException>(() => EcgGenerator.Generate(Small with { AfCount = 13 })).Message);
        Assert.Contains("first beat", Assert.Throws<ArgumentOutOfRangeException>(() => EcgGenerator.Generate(Small with { FirstBeatAt = 100 })).Message);
        Assert.Contains("200 million", Assert.Throws<ArgumentOutOfRangeException>(() => EcgGenerator.Generate(Small with { Records = 5_000, Length = 60_000 })).Message);
        Assert.Contains("sample rate", Assert.Throws<ArgumentOutOfRangeException>(() => EcgGenerator.Generate(Small with { SampleRate = 5 })).Message);
    }

    [Fact]
    public void Standardize_gives_each_record_mean_zero_and_unit_std_and_batches_cover_the_set_once()
    {
        using var set = EcgGenerator.Generate(Small);
        using var z = EcgSet.Standardize(set.Signals);
        Assert.True(z.mean(new long[] { 1 }).abs().max().item<float>() < 1e-4);
        Assert.True((z.std(1) - 1).abs().max().item<float>() < 1e-4);
        Assert.Throws<ArgumentException>(() => EcgSet.Standardize(set.Signals.unsqueeze(1)));
        var seen = new List<long>();
        long labelSum = 0;
        foreach (var (x, y) in set.Batches(5, shuffle: true, new Generator(1)))
        {
            Assert.Equal(2_000, x.shape[1]);
            seen.Add(x.shape[0]);
            labelSum += y.sum().item<long>();
        }
        Assert.Equal(new long[] { 5, 5, 2 }, seen);
        Assert.Equal(set.AfCount, labelSum);
    }

    [Fact]
    public void The_strided_CNN_takes_flat_or_channel_records_and_names_its_layers()
    {
        TorchEnvironment.Reseed(2);
        var net = new StridedConvNet(2);
        using var x = randn(3, 4_096);
        using var a = net.call(x);
        using var b = net.call(x.unsqueeze(1));
        Assert.Equal(new long[] { 3, 2 }, a.shape);
        Assert.True(a.allclose(b));
        Assert.Contains("conv1.weight", net.named_parameters().Select(p => p.name));
        Assert.Contains("fc.weight", net.named_parameters().Select(p => p.name));
        Assert.Throws<ArgumentException>(() => net.call(randn(3, 2, 100)));
        using var s = new StridedConvNet(1, output: "sigmoid").call(x);
        Assert.True(s.min().item<float>() >= 0 && s.max().item<float>() <= 1);
        Assert.Throws<ArgumentException>(() => new StridedConvNet(2, output: "tanh"));
    }
}
