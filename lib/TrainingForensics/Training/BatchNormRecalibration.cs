using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TrainingForensics.Training;

/// <summary>
/// Re-estimates BatchNorm running statistics after training (what PyTorch's torch.optim.swa_utils.update_bn and
/// PreciseBN do; TorchSharp has neither): reset each layer's running mean/variance, switch it to a cumulative
/// average (momentum 1/k for the k-th batch, what PyTorch's momentum=None does), run training batches through the model in
/// training mode without gradients, then restore the momenta and the model's mode. The weights are not touched.
/// </summary>
public static class BatchNormRecalibration
{
    /// <summary>
    /// Recalibrates the BatchNorm layers of <paramref name="model"/> (all, or those whose name
    /// <paramref name="layers"/> accepts) on up to <paramref name="maxBatches"/> input batches; returns the number of batches used.
    /// </summary>
    public static int Run(nn.Module<Tensor, Tensor> model, IEnumerable<Tensor> batches, int maxBatches = 100, Func<string, bool>? layers = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(batches);
        if (maxBatches < 1) throw new ArgumentOutOfRangeException(nameof(maxBatches), maxBatches, "need at least one batch");
        var selected = model.named_modules().Where(m => m.module is BatchNorm && (layers?.Invoke(m.name) ?? true))
            .Select(m => (BatchNorm)m.module).ToList();
        if (selected.Count == 0) throw new ArgumentException("no BatchNorm layer to recalibrate (the model has none, or the filter excluded all)");
        var all = model.named_modules().Where(m => m.module is BatchNorm).Select(m => (BatchNorm)m.module).ToList();
        var momenta = all.Select(b => b.momentum).ToList();
        bool wasTraining = model.training;
        // layers not selected keep their statistics: a 0 momentum would still touch them, so save and restore instead
        var keep = all.Where(b => !selected.Contains(b)).Select(b => (b, b.running_mean!.clone(), b.running_var!.clone(), b.num_batches_tracked?.clone())).ToList();
        int used = 0;
        try
        {
            foreach (var bn in selected) bn.reset_running_stats();
            model.train();
            using var noGrad = no_grad();
            foreach (var x in batches)
            {
                using var scope = NewDisposeScope();
                if (x.dim() < 2 || x.shape[0] < 2)
                    throw new ArgumentException($"recalibration batches need at least 2 samples (batch statistics), got shape [{string.Join(",", x.shape)}]");
                // the k-th batch (k = 1, 2, …) gets weight 1/k: after n batches each has weight 1/n (a plain mean)
                foreach (var bn in selected) bn.momentum = 1.0 / (used + 1);
                model.call(x);
                if (++used >= maxBatches) break;
            }
            if (used == 0) throw new ArgumentException("recalibration got no batches");
        }
        finally
        {
            using (no_grad())
                foreach (var (b, mean, var_, tracked) in keep)
                {
                    b.running_mean!.copy_(mean); b.running_var!.copy_(var_);
                    if (tracked is not null) b.num_batches_tracked!.copy_(tracked);
                    mean.Dispose(); var_.Dispose(); tracked?.Dispose();
                }
            for (int i = 0; i < all.Count; i++) all[i].momentum = momenta[i];
            model.train(wasTraining);
        }
        return used;
    }

    /// <summary>Steps for a running average with <paramref name="momentum"/> to give an old value only <paramref name="remaining"/> of its weight: ln(remaining)/ln(1 − momentum).</summary>
    public static double StepsToForget(double momentum, double remaining = 0.01)
    {
        if (!(momentum > 0 && momentum < 1)) throw new ArgumentOutOfRangeException(nameof(momentum), momentum, "momentum must be in (0, 1)");
        if (!(remaining > 0 && remaining < 1)) throw new ArgumentOutOfRangeException(nameof(remaining), remaining, "remaining weight must be in (0, 1)");
        return Math.Log(remaining) / Math.Log(1 - momentum);
    }
}
