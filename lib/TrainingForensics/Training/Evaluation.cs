using TorchSharp;
using TrainingForensics.Results;
using static TorchSharp.torch;

namespace TrainingForensics.Training;

/// <summary>Evaluation passes: model in eval mode, no gradients, mode restored afterwards.</summary>
public static class Evaluation
{
    /// <summary>Mean loss and accuracy of <paramref name="model"/> over <paramref name="batches"/> (class-index targets).</summary>
    public static (double Loss, double Accuracy) Run(nn.Module<Tensor, Tensor> model, IEnumerable<(Tensor X, Tensor Y)> batches,
        Func<Tensor, Tensor, Tensor>? loss = null)
    {
        using var ledger = RunLedger.Time(RunLedger.Evaluation);
        bool wasTraining = model.training;
        model.eval();
        try
        {
            using var noGrad = inference_mode(); // no autograd record at all (cheaper per operation than no_grad)
            double lossSum = 0;
            long correct = 0, count = 0;
            using var e = batches.GetEnumerator();
            while (true)
            {
                using var scope = NewDisposeScope();
                if (!e.MoveNext()) break;
                var (x, y) = e.Current;
                var outputs = model.call(x);
                long n = y.shape[0];
                if (loss != null) lossSum += loss(outputs, y).item<float>() * n;
                correct += Metrics.Accuracy.Correct(outputs, y);
                count += n;
            }
            if (count == 0) throw new ArgumentException("evaluation got no batches");
            return (loss != null ? lossSum / count : double.NaN, (double)correct / count);
        }
        finally
        {
            model.train(wasTraining);
        }
    }
}
