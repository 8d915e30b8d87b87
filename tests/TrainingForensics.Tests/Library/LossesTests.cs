using TorchSharp;
using TrainingForensics.Training;
using static TorchSharp.torch;

namespace TrainingForensics.Tests.Library;

public class LossesTests
{
    // outputs 2×3 and labels [2, 0]: squared errors per element, sum = 0.25+0.01+0.36 + 0.04+0.81+0.09 = 1.56
    static Tensor Outputs() => tensor(new float[,] { { 0.5f, 0.1f, 0.4f }, { 0.8f, 0.9f, 0.3f } });
    static Tensor Labels() => tensor(new long[] { 2, 0 });

    [Fact]
    public void Each_reduction_divides_the_element_sum_by_its_named_divisor()
    {
        const double sum = 1.56;
        Assert.Equal(sum, Losses.SquaredError(Outputs(), Labels(), Reduction.Sum).item<float>(), 5);
        Assert.Equal(sum / 2, Losses.SquaredError(Outputs(), Labels(), Reduction.SumOverBatch).item<float>(), 5);
        Assert.Equal(sum / 3, Losses.SquaredError(Outputs(), Labels(), Reduction.SumOverOutputs).item<float>(), 5);
        Assert.Equal(sum / 6, Losses.SquaredError(Outputs(), Labels(), Reduction.Mean).item<float>(), 5);
        var none = Losses.SquaredError(Outputs(), Labels(), Reduction.None);
        Assert.Equal(new long[] { 2, 3 }, none.shape);
        Assert.Equal(0.81, none[1, 1].item<float>(), 5);
    }

    [Fact]
    public void Mean_matches_torch_mse_and_sum_over_batch_is_C_times_larger()
    {
        var oneHot = Losses.OneHot(Labels(), 3);
        double torchMse = nn.functional.mse_loss(Outputs(), oneHot).item<float>();
        Assert.Equal(torchMse, Losses.SquaredError(Outputs(), oneHot, Reduction.Mean).item<float>(), 6);
        Assert.Equal(3 * torchMse, Losses.Mse(Reduction.SumOverBatch)(Outputs(), Labels()).item<float>(), 5);
        Assert.Equal(1.0 / 3, Losses.Factor(Reduction.Mean, Reduction.SumOverBatch, batch: 2, outputs: 3), 12);
        Assert.Equal(0.1, Losses.Factor(Reduction.Mean, Reduction.SumOverBatch, batch: 32, outputs: 10), 12);
        Assert.Equal(32, Losses.Factor(Reduction.Sum, Reduction.SumOverBatch, batch: 32, outputs: 10), 12);
        Assert.Equal(320, Reduction.Mean.Divisor(32, 10));
    }

    [Fact]
    public void Names_round_trip_and_unknown_names_are_refused()
    {
        foreach (var r in Enum.GetValues<Reduction>())
        {
            Assert.Equal(r, Losses.Parse(r.Label()));
            Assert.Equal(r, Losses.Parse(r.ToString().ToUpperInvariant()));
            Assert.False(string.IsNullOrWhiteSpace(r.Describe()));
        }
        Assert.Equal("sum/B", Reduction.SumOverBatch.Label());
        var e = Assert.Throws<ArgumentException>(() => Losses.Parse("average"));
        Assert.Contains("sum/B", e.Message);
        Assert.Throws<ArgumentException>(() => Losses.Factor(Reduction.None, Reduction.Mean, 2, 3));
    }

    [Fact]
    public void Targets_must_fit_the_outputs()
    {
        var oh = Losses.OneHot(tensor(new long[] { 1, 0, 2 }), 3);
        Assert.Equal(ScalarType.Float32, oh.dtype);
        Assert.Equal(new float[] { 0, 1, 0, 1, 0, 0, 0, 0, 1 }, oh.data<float>().ToArray());
        Assert.Contains("outside the 3 classes", Assert.Throws<ArgumentException>(() => Losses.OneHot(tensor(new long[] { 3 }), 3)).Message);
        Assert.Contains("integer", Assert.Throws<ArgumentException>(() => Losses.OneHot(tensor(new float[] { 1 }), 3)).Message);
        var e = Assert.Throws<ArgumentException>(() => Losses.SquaredError(Outputs(), tensor(new long[] { 0, 1, 2 }), Reduction.Mean));
        Assert.Contains("[3]", e.Message);
        Assert.Contains("[2,3]", e.Message);
        Assert.Throws<ArgumentException>(() => Losses.Reduce(tensor(1f), Reduction.Sum));
    }

    [Fact]
    public void Gradients_scale_with_the_reduction()
    {
        var w = tensor(new float[,] { { 0.5f, 0.1f, 0.4f }, { 0.8f, 0.9f, 0.3f } }).requires_grad_();
        Losses.SquaredError(w, Labels(), Reduction.SumOverBatch).backward();
        var gSumB = w.grad!.clone();
        w.grad!.zero_();
        Losses.SquaredError(w, Labels(), Reduction.Mean).backward();
        // d/dw of Σ(w−t)²/B is 2(w−t)/B; of the mean it is 2(w−t)/(B·C): ratio C = 3 in every element
        Assert.True((gSumB - 3 * w.grad!).abs().max().item<float>() < 1e-6);
        Assert.Equal(2 * (0.5 - 0) / 2, gSumB[0, 0].item<float>(), 6);
    }
}
