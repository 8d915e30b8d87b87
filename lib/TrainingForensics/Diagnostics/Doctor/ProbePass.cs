using TorchSharp;
using TorchSharp.Modules;
using TrainingForensics.Probes;
using static TorchSharp.torch;

namespace TrainingForensics.Diagnostics.Doctor;

/// <summary>What one probe pass read.</summary>
/// <param name="HasLoss">Whether the losses were computed (a loss function and probe targets are known).</param>
/// <param name="EvalLoss">The eval-mode loss on the probe batch.</param>
/// <param name="TrainLoss">The training-mode loss on the same examples (NaN unless BatchNorm statistics were due).</param>
/// <param name="BatchNorm">Each BatchNorm layer's batch and running statistics (null when not read).</param>
internal sealed record ProbeReading(bool HasLoss, double EvalLoss, double TrainLoss, BatchNormLayerStats[]? BatchNorm);

/// <summary>
/// The doctor's fixed probe batch and its forward pass: every mode-dependent module in eval mode, so no random numbers are drawn and
/// no BatchNorm buffer is written. With BatchNorm statistics due the batch goes in twice, and each BatchNorm layer's
/// hook normalises the second copy with that copy's own batch statistics — exactly what training mode computes,
/// without training mode's update of the running statistics — and reads those statistics on the way. So the eval-mode
/// loss, the train-mode loss on the same images and every layer's statistics come from one pass and one transfer.
/// </summary>
internal sealed class ProbePass : IDisposable
{
    readonly nn.Module<Tensor, Tensor> _model;
    readonly List<nn.Module> _modules; // the model and every submodule: their modes are put back after a pass
    readonly bool[] _modes;
    // the modules whose output depends on the mode (BatchNorm, dropout, …), when all of them are leaves: a pass switches
    // only these to eval mode and back (none for a plain MLP). Null: one of them has submodules, the whole model is switched.
    readonly List<nn.Module>? _switched;
    readonly List<(string Name, BatchNorm Layer)> _batchNorms;
    readonly Tensor?[] _collected; // per BatchNorm layer, during a pass: batch mean, batch var, running mean, running var, batches tracked
    long _trainCopyAt = -1;        // first row of the training-mode copy during a pass (-1: none)
    long[]? _classCounts;

    public ProbePass(nn.Module<Tensor, Tensor> model, DoctorOptions options, Device device)
    {
        _model = model;
        _modules = new[] { (nn.Module)model }.Concat(model.named_modules().Select(m => m.module)).Distinct().ToList();
        _modes = new bool[_modules.Count];
        var dependent = _modules.Where(m => !(ModeFreeTypes.Contains(m.GetType().Name) && m.GetType().Namespace == typeof(Linear).Namespace)).ToList();
        _switched = dependent.All(m => !m.children().Any()) ? dependent : null;
        _batchNorms = model.named_modules().Where(m => m.module is BatchNorm).Select(m => (m.name, (BatchNorm)m.module)).ToList();
        _collected = new Tensor?[_batchNorms.Count];
        if (options.ProbeInputs is { } px)
        {
            Inputs = KeptCopy(px, device);
            Targets = KeptCopy(options.ProbeTargets!, device);
        }
    }

    /// <summary>
    /// TorchSharp's modules whose forward pass does not depend on the training mode: their mode does not matter to the
    /// eval-mode loss, so a pass leaves them as they are and switches only the others — BatchNorm, dropout, a module of
    /// one's own — (reading and setting a mode is a native call per module, twice every measured step).
    /// </summary>
    static readonly HashSet<string> ModeFreeTypes = new(StringComparer.Ordinal)
    {
        "Sequential", "Linear", "Bilinear", "Identity", "Flatten", "Unflatten", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d",
        "ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Softplus",
        "Hardtanh", "Hardsigmoid", "Hardswish", "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
        "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "LayerNorm", "Embedding",
    };

    /// <summary>The model's BatchNorm layers, in module order.</summary>
    public IReadOnlyList<(string Name, BatchNorm Layer)> BatchNorms => _batchNorms;

    /// <summary>The probe batch's inputs (null until a training batch gave them).</summary>
    public Tensor? Inputs { get; private set; }

    /// <summary>The probe batch's targets (null until the first observed step gave them).</summary>
    public Tensor? Targets { get; private set; }

    /// <summary>A copy on the model's device that outlives the caller's dispose scope.</summary>
    static Tensor KeptCopy(Tensor t, Device device)
    {
        var d = t.detach();
        bool there = d.device_type == device.type && (device.type == DeviceType.CPU || d.device_index == device.index);
        var copy = there ? d.clone() : d.to(device);
        copy.DetachFromDisposeScope();
        return copy;
    }

    /// <summary>The first <paramref name="probeSize"/> examples of a training batch become the probe inputs (a copy).</summary>
    public void CaptureInputs(Tensor x, int probeSize)
    {
        if (x.dim() < 1 || x.shape[0] < 2) return;
        long n = Math.Min(probeSize, x.shape[0]);
        Inputs = x.detach().narrow(0, 0, n).clone();
        Inputs.DetachFromDisposeScope();
    }

    /// <summary>The targets of the probe inputs, from the first observed batch (they were its first examples).</summary>
    public void CaptureTargets(Tensor targets)
    {
        if (Targets is not null || Inputs is null) return;
        long n = Math.Min(Inputs.shape[0], targets.shape[0]);
        Targets = targets.detach().narrow(0, 0, n).clone();
        Targets.DetachFromDisposeScope();
    }

    /// <summary>Hooks every BatchNorm layer (active only during a pass); returns what removes the hooks.</summary>
    public IEnumerable<Action> Hook()
    {
        var removers = new List<Action>();
        for (int i = 0; i < _batchNorms.Count; i++)
        {
            int index = i;
            var h = _batchNorms[i].Layer.register_forward_hook((m, input, output) => OnBatchNorm(index, input, output));
            removers.Add(h.remove);
        }
        return removers;
    }

    /// <summary>
    /// One pass over the probe batch (see the class summary): the losses when <paramref name="lossFunction"/> and the
    /// targets are known, the BatchNorm statistics when <paramref name="batchNorm"/>. Null when there is nothing to read.
    /// </summary>
    public ProbeReading? Run(long step, Func<Tensor, Tensor, Tensor>? lossFunction, bool batchNorm)
    {
        bool withLoss = lossFunction != null && Targets is not null;
        if (!withLoss && !batchNorm) return null;
        var modules = _switched ?? _modules;
        // modes are put back from these (one call when all modules share a mode); no per-call allocation otherwise
        bool first = modules.Count > 0 && modules[0].training, uniform = true;
        for (int i = 0; i < modules.Count; i++) { _modes[i] = modules[i].training; uniform &= _modes[i] == first; }
        double[]? v;
        bool stats;
        try { (v, stats) = Forward(withLoss ? lossFunction : null, batchNorm); }
        finally
        {
            Array.Clear(_collected);
            // train(bool) is recursive: one call when every module had the same mode, else module by module (parents first);
            // switched leaves one by one
            if (_switched != null) for (int i = 0; i < _switched.Count; i++) _switched[i].train(_modes[i]);
            else if (uniform) _model.train(first);
            else for (int i = 0; i < _modules.Count; i++) _modules[i].train(_modes[i]);
        }
        return v is null ? null : Reading(step, v, withLoss, batchNorm, stats);
    }

    /// <summary>The pass itself: [eval loss, train-mode loss | per-layer statistics] as one vector on the host (null: nothing read).</summary>
    (double[]? Values, bool Stats) Forward(Func<Tensor, Tensor, Tensor>? lossFunction, bool batchNorm)
    {
        using var scope = NewDisposeScope();
        using var noGrad = inference_mode();
        long n = Inputs!.shape[0];
        if (_switched == null) _model.eval();
        else foreach (var m in _switched) m.eval();
        Array.Clear(_collected);
        _trainCopyAt = batchNorm ? n : -1;
        Tensor o;
        try { o = _model.call(batchNorm ? cat(new[] { Inputs, Inputs }) : Inputs); }
        finally { _trainCopyAt = -1; }
        if (!batchNorm && lossFunction != null)
        {
            // the eval-mode loss alone (most measured steps): one read of the scalar, no stacking (float32 widens exactly)
            var loss = lossFunction(o, Targets!);
            return (new[] { loss.dtype == ScalarType.Float32 ? loss.item<float>() : loss.to_type(ScalarType.Float64).item<double>() }, false);
        }
        var parts = new List<Tensor>(_collected.Length + 2);
        if (lossFunction != null)
        {
            parts.Add(lossFunction(o.narrow(0, 0, n), Targets!).to_type(ScalarType.Float64).reshape(1));
            if (batchNorm) parts.Add(lossFunction(o.narrow(0, n, n), Targets!).to_type(ScalarType.Float64).reshape(1));
        }
        bool stats = batchNorm && Array.TrueForAll(_collected, c => c is not null);
        if (stats) foreach (var c in _collected) parts.Add(c!);
        return parts.Count == 0 ? (null, stats) : (ParameterMeasurement.ToHost(cat(parts.ToArray())), stats);
    }

    ProbeReading Reading(long step, double[] v, bool withLoss, bool batchNorm, bool stats)
    {
        int at = 0;
        double evalLoss = withLoss ? v[at++] : double.NaN;
        double trainLoss = withLoss && batchNorm ? v[at++] : double.NaN;
        if (!stats) return new ProbeReading(withLoss, evalLoss, trainLoss, null);
        var layers = new BatchNormLayerStats[_batchNorms.Count];
        for (int i = 0; i < layers.Length; i++)
        {
            var (name, bn) = _batchNorms[i];
            int c = (int)bn.running_mean!.shape[0];
            layers[i] = new BatchNormLayerStats(name, step, v[at..(at + c)], v[(at + c)..(at + 2 * c)], v[(at + 2 * c)..(at + 3 * c)], v[(at + 3 * c)..(at + 4 * c)],
                (long)v[at + 4 * c], bn.momentum);
            at += 4 * c + 1;
        }
        return new ProbeReading(withLoss, evalLoss, trainLoss, layers);
    }

    /// <summary>
    /// Forward hook of BatchNorm layer <paramref name="index"/>, active only during a pass: rows from
    /// <see cref="_trainCopyAt"/> on are the training-mode copy. Their output (eval mode: running statistics) is
    /// replaced by the training-mode normalisation with their own batch mean and biased variance; the mean, the
    /// unbiased variance (what the running average takes in) and the running statistics are kept as one float64 tensor.
    /// </summary>
    Tensor OnBatchNorm(int index, Tensor input, Tensor output)
    {
        long at = _trainCopyAt;
        if (at < 0) return output;
        var bn = _batchNorms[index].Layer;
        var x = input.detach().narrow(0, at, input.shape[0] - at);
        // training-mode batch norm into fresh buffers with momentum 1: the buffers come back holding exactly this
        // copy's batch mean and unbiased variance (the layer's own running statistics are not passed, so not touched)
        long channels = x.shape[1];
        var batchMean = zeros(channels, x.dtype, x.device);
        var batchVar = ones(channels, x.dtype, x.device);
        var y = nn.functional.batch_norm(x, batchMean, batchVar, bn.weight?.detach(), bn.bias?.detach(), training: true, momentum: 1.0, eps: bn.eps);
        var tracked = bn.num_batches_tracked is null ? zeros(1, x.dtype, x.device) : bn.num_batches_tracked.detach().to_type(x.dtype).reshape(1);
        _collected[index] = cat(new[] { batchMean, batchVar, bn.running_mean!.detach(), bn.running_var!.detach(), tracked }).to_type(ScalarType.Float64);
        return cat(new[] { output.narrow(0, 0, at), y });
    }

    /// <summary>How many probe targets fall in each class (counted once: the probe batch is fixed).</summary>
    public long[] ClassCounts(long classes)
    {
        if (_classCounts is null)
            using (var counts = Targets!.to_type(ScalarType.Int64).bincount(null, classes))
                _classCounts = counts.cpu().data<long>().ToArray();
        return _classCounts;
    }

    public void Dispose()
    {
        Inputs?.Dispose(); Targets?.Dispose();
        Inputs = Targets = null;
    }
}
