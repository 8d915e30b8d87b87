using TorchSharp;
using TrainingForensics.Data;
using static TorchSharp.torch;

namespace TrainingForensics.Probes;

/// <summary>
/// The same model on the same images, once in eval mode (BatchNorm uses its running statistics — what inference
/// sees) and once in training mode (BatchNorm uses the batch's statistics — what the training loss sees).
/// <see cref="RelativeGap"/> = (eval loss − train-mode loss) / train-mode loss.
/// </summary>
public sealed record TrainEvalGapResult(long Step, double EvalLoss, double TrainModeLoss, double EvalAccuracy, double TrainModeAccuracy,
    double EvalMaxOutput, double TrainModeMaxOutput)
{
    public double RelativeGap => (EvalLoss - TrainModeLoss) / TrainModeLoss;
}

/// <summary>Measures the train-vs-eval gap of a heatmap model on a fixed keypoint set without changing its running statistics.</summary>
public static class TrainEvalGap
{
    /// <summary>
    /// Runs <paramref name="set"/> through the model in chunks of <paramref name="chunk"/> images in both modes
    /// (no gradients; BatchNorm buffers preserved bit for bit; the model's mode restored). Losses are the mean
    /// squared error of sigmoid(outputs) against the heatmaps; accuracy is the keypoint accuracy within 2 image px.
    /// In training mode each chunk is normalised with its own statistics, so the chunk plays the role of a batch.
    /// </summary>
    public static TrainEvalGapResult Measure(nn.Module<Tensor, Tensor> model, KeypointSet set, long step = 0, int chunk = 64)
    {
        using var ledger = Results.RunLedger.Time(Results.RunLedger.Evaluation);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(set);
        if (chunk < 2) throw new ArgumentOutOfRangeException(nameof(chunk), chunk, "chunks need at least 2 images for batch statistics");
        var eval = Pass(model, set, chunk, train: false);
        var train = Pass(model, set, chunk, train: true);
        return new TrainEvalGapResult(step, eval.Loss, train.Loss, eval.Accuracy, train.Accuracy, eval.Max, train.Max);
    }

    /// <summary>Sigmoid outputs of the model on <paramref name="images"/> in the chosen mode (no gradients, buffers preserved).</summary>
    public static Tensor Predict(nn.Module<Tensor, Tensor> model, Tensor images, bool trainMode)
    {
        bool was = model.training;
        try
        {
            using var noGrad = no_grad();
            using var keep = BatchNormBuffers.Preserve(model);
            model.train(trainMode);
            return model.call(images).sigmoid();
        }
        finally { model.train(was); }
    }

    static (double Loss, double Accuracy, double Max) Pass(nn.Module<Tensor, Tensor> model, KeypointSet set, int chunk, bool train)
    {
        double lossSum = 0, max = double.NegativeInfinity;
        long correct = 0, n = set.Count, seen = 0;
        for (long start = 0; start < n; start += chunk)
        {
            using var scope = NewDisposeScope();
            long size = Math.Min(chunk, n - start);
            if (train && size < 2) break;
            var x = set.Images.narrow(0, start, size);
            var p = Predict(model, x, train);
            var y = set.Heatmaps.narrow(0, start, size);
            lossSum += nn.functional.mse_loss(p, y, nn.Reduction.Sum).item<float>();
            max = Math.Max(max, p.max().item<float>());
            correct += KeypointMetrics.Correct(p, set.Keypoints.narrow(0, start, size), set.Options.Stride);
            seen += size;
        }
        long elements = seen * set.Heatmaps.shape[1] * set.Heatmaps.shape[2] * set.Heatmaps.shape[3];
        return (lossSum / elements, (double)correct / (seen * set.Keypoints.shape[1]), max);
    }
}
