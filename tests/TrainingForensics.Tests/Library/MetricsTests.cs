using TorchSharp;
using TrainingForensics.Metrics;
using static TorchSharp.torch;

namespace TrainingForensics.Tests.Library;

public class MetricsTests
{
    static Tensor Scores() => tensor(new float[,] { { 0.9f, 0.1f, 0f }, { 0.2f, 0.7f, 0.1f }, { 0.3f, 0.3f, 0.4f }, { 0.6f, 0.3f, 0.1f } });

    [Fact]
    public void Scores_with_index_labels()
    {
        Assert.Equal(0.75, Accuracy.Compute(Scores(), tensor(new long[] { 0, 1, 2, 1 })), 12);
        Assert.Equal(3, Accuracy.Correct(Scores(), tensor(new long[] { 0, 1, 2, 1 })));
    }

    [Fact]
    public void Scores_with_one_hot_labels()
    {
        var oneHot = nn.functional.one_hot(tensor(new long[] { 0, 1, 1, 0 }), 3).to_type(ScalarType.Float32);
        Assert.Equal(0.75, Accuracy.Compute(Scores(), oneHot), 12);
    }

    [Fact]
    public void Predicted_classes_with_labels()
    {
        Assert.Equal(2.0 / 3, Accuracy.Compute(tensor(new long[] { 1, 2, 2 }), tensor(new long[] { 1, 2, 3 })), 12);
    }

    [Fact]
    public void Column_of_labels_next_to_scores_is_refused_as_ambiguous()
    {
        var e = Assert.Throws<MetricInputException>(() => Accuracy.Compute(Scores(), tensor(new long[] { 0, 1, 2, 1 }).unsqueeze(1)));
        Assert.Contains("ambiguous", e.Message);
        Assert.Contains("[4,1]", e.Message);
        Assert.Contains("squeeze", e.Message);
    }

    [Fact]
    public void Refusals_name_the_shapes()
    {
        Assert.Contains("different numbers of examples", Assert.Throws<MetricInputException>(() => Accuracy.Compute(Scores(), tensor(new long[] { 0, 1 }))).Message);
        Assert.Contains("floating point", Assert.Throws<MetricInputException>(() => Accuracy.Compute(Scores(), tensor(new float[] { 0, 1, 2, 1 }))).Message);
        Assert.Contains("ambiguous", Assert.Throws<MetricInputException>(() => Accuracy.Compute(tensor(new float[] { 0.2f, 0.9f }), tensor(new long[] { 0, 1 }))).Message);
        Assert.Contains("not one-hot", Assert.Throws<MetricInputException>(() => Accuracy.Compute(Scores(), Scores())).Message);
        Assert.Contains("outside", Assert.Throws<MetricInputException>(() => Accuracy.Compute(Scores(), tensor(new long[] { 0, 1, 2, 3 }))).Message);
        Assert.Contains("binary metric", Assert.Throws<MetricInputException>(() => Accuracy.Compute(zeros(4, 1), tensor(new long[] { 0, 1, 0, 1 }))).Message);
        Assert.Contains("zero examples", Assert.Throws<MetricInputException>(() => Accuracy.Compute(zeros(0, 3), zeros(0, dtype: int64))).Message);
        Assert.Throws<MetricInputException>(() => Accuracy.Compute(tensor(1f), tensor(1L)));
    }
}
