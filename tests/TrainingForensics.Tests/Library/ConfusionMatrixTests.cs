using TorchSharp;
using TrainingForensics.Charts;
using TrainingForensics.Metrics;
using static TorchSharp.torch;

namespace TrainingForensics.Tests.Library;

public class CaseStudy1ConfusionMatrixTests
{
    [Fact]
    public void Counts_true_and_predicted_classes_from_scores()
    {
        using var scores = tensor(new float[] { 2, 1, 0, 3, 5, 1, 0, 1, 1, 0 }, new long[] { 5, 2 });   // predicted 0,1,0,1,0
        using var labels = tensor(new long[] { 0, 1, 1, 1, 0 });
        var cm = ConfusionMatrix.Compute(scores, labels, 2, new[] { "normal", "AF" });
        Assert.Equal((2L, 0L, 1L, 2L), (cm.TN, cm.FP, cm.FN, cm.TP));
        Assert.Equal(0.8, cm.Accuracy, 12);
        Assert.Equal(new long[] { 3, 2 }, cm.PredictedCounts);
        Assert.Equal(new long[] { 2, 3 }, cm.TrueCounts);
        Assert.False(cm.SingleClassPredicted);
        Assert.Equal("TN 2, FP 0, FN 1, TP 2", cm.ToString());
        var df = cm.ToDataFrame();
        Assert.Equal(2, df.Rows.Count);
        Assert.Equal(3, df.Columns.Count);
    }

    [Fact]
    public void The_collapsed_model_of_the_report_gives_its_matrix()
    {
        // 48 normal, 52 AF, everything predicted AF: TN 0, FP 48, TP 52, FN 0.
        using var labels = cat(new[] { zeros(48, ScalarType.Int64), ones(52, ScalarType.Int64) });
        using var predicted = ones(100, ScalarType.Int64);
        var cm = ConfusionMatrix.Compute(predicted, labels, 2);
        Assert.Equal((0L, 48L, 0L, 52L), (cm.TN, cm.FP, cm.FN, cm.TP));
        Assert.True(cm.SingleClassPredicted);
        Assert.Equal(0.52, cm.Accuracy, 12);
        var json = Plots.ToJson(ConfusionMatrixChart.Create(cm));
        Assert.Contains("heatmap", json);
        Assert.Contains("52", json);
        Assert.Contains("\"reversescale\":true", json.Replace(" ", "")); // an empty cell is the lightest, not the darkest
    }

    [Fact]
    public void A_logit_column_predicts_class_one_above_zero()
    {
        using var logits = tensor(new float[] { -1f, 0.5f, 2f }).unsqueeze(1);
        using var labels = tensor(new long[] { 0, 0, 1 });
        var cm = ConfusionMatrix.Compute(logits, labels, 2);
        Assert.Equal((1L, 1L, 0L, 1L), (cm.TN, cm.FP, cm.FN, cm.TP));
    }

    [Fact]
    public void Ambiguous_or_inconsistent_inputs_are_refused()
    {
        using var labels = tensor(new long[] { 0, 1, 2 });
        Assert.Throws<MetricInputException>(() => ConfusionMatrix.Compute(tensor(new float[] { 0.2f, 0.7f, 0.9f }), labels, 3));   // float classes
        Assert.Throws<MetricInputException>(() => ConfusionMatrix.Compute(tensor(new long[] { 0, 1 }), labels, 3));                 // length
        Assert.Contains("not a class", Assert.Throws<MetricInputException>(() => ConfusionMatrix.Compute(tensor(new long[] { 0, 1, 2 }), labels, 2)).Message);
        Assert.Throws<MetricInputException>(() => ConfusionMatrix.Compute(tensor(new long[] { 0, 1, 2 }), tensor(new float[] { 0, 1, 2 }), 3));
        var three = ConfusionMatrix.Compute(tensor(new long[] { 0, 1, 2 }), labels, 3);
        Assert.Equal(1.0, three.Accuracy);
        Assert.Throws<InvalidOperationException>(() => three.TP);
    }
}
