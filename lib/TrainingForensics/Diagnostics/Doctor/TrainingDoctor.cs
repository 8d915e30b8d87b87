using System.Diagnostics;
using TorchSharp;
using TorchSharp.Modules;
using TrainingForensics.Probes;
using TrainingForensics.Training;
using static TorchSharp.torch;

namespace TrainingForensics.Diagnostics.Doctor;

/// <summary>
/// Watches any TorchSharp training for the bug classes of the case studies and a few generic ones, without
/// changing it: no random numbers drawn, no running statistics touched (the probe pass runs in eval mode without
/// gradients; its training-mode BatchNorm copy is normalised by the doctor's hooks, not by the layers' training
/// mode), gradients only read (on checked steps one layer's output gets a zero added through a leaf of the doctor's
/// own, whose gradient tells this step's bias gradient from one left in <c>.grad</c>; no value changes).
/// <code>
/// var doctor = TrainingDoctor.Attach(model, optimizer);        // + doctor.AttachTo(loop) for a TrainingLoop
/// var lossFn = doctor.Loss((o, y) => nn.functional.cross_entropy(o, y));
/// ... loss = lossFn(model.call(x), y); loss.backward(); doctor.Observe(step); optimizer.step(); ...
/// Console.WriteLine(doctor.Report());
/// </code>
/// Cheap work (the loss value) happens every step; detectors on gradients, weights, outputs and a fixed probe batch
/// every <see cref="DoctorOptions.Every"/> steps; BatchNorm statistics every <see cref="DoctorOptions.BatchNormEvery"/>.
/// </summary>
public sealed class TrainingDoctor : IDisposable
{
    readonly nn.Module<Tensor, Tensor> _model;
    readonly optim.Optimizer _optimizer;
    readonly List<Action> _removers = new();
    readonly List<(string Name, Parameter P)> _weights;
    readonly List<(string Name, BatchNorm Layer)> _batchNorms;
    readonly List<nn.Module> _modules;
    readonly bool[] _modes;
    readonly Tensor?[] _bnCollected;
    long _trainCopyAt = -1; // first row of the training-mode copy in a probe pass (-1: none)
    long[]? _probeClassCounts;
    int _lossScaleReads;
    readonly List<Tensor> _deadCounts = new(); // per-unit sums of each armed ReLU output (0 = dead unit)
    readonly (string Name, string Type)? _lastLayer;
    readonly bool _hasRelu;
    readonly Stopwatch _own = new();
    readonly List<(long Step, double Loss)> _losses = new();
    readonly List<(long Step, double Loss)> _probeLosses = new();
    TrainingLoop? _loop;
    Func<Tensor, Tensor, Tensor>? _lossFn;
    Tensor? _probeX, _probeY;
    List<Tensor>? _snapshot;
    long _snapshotStep = long.MinValue, _lastStep = -1, _nextStep;
    long _observations;
    bool _detached, _inProbe, _armed, _firstDone;
    bool? _logitsLoss;
    long _deadUnits, _reluUnits;
    (Tensor O, Tensor Y, Tensor L)? _pending;
    int _validationInspections;
    readonly Dictionary<string, double> _vitals = new();

    // the zero_grad check: one layer with a bias (the last Linear, convolution or BatchNorm), the bias as it was at the
    // previous checked forward pass, its .grad at the previous step, and this pass's own bias gradient (a zero leaf's)
    readonly (nn.Module<Tensor, Tensor> Layer, string Name, Parameter Bias, bool ChannelsLast)? _gradLayer;
    readonly Tensor?[] _biasAt = new Tensor?[2];
    readonly long[] _biasSteps = { -1, -1 };
    Tensor? _gradBefore, _ownGrad;
    long _gradBeforeStep = -1;
    bool _gradArmed;

    void Vital(string name, double value, bool max = true)
    {
        if (!double.IsFinite(value)) return;
        _vitals[name] = _vitals.TryGetValue(name, out var v) ? (max ? Math.Max(v, value) : Math.Min(v, value)) : value;
    }

    // detectors
    readonly NonFiniteValues _nonFinite = new();
    readonly SquashingLayerBeforeLogitsLoss _squashingLayer = new();
    readonly ProbabilitiesIntoLogitsLoss _intoLogits;
    readonly SaturatedOutputs _saturated;
    readonly FrozenLoss _frozen;
    readonly LossAtAnalyticFloor _floor;
    readonly VanishingGradients _vanishing;
    readonly ExplodingGradients _exploding;
    readonly DyingRelu _dying;
    readonly UpdateRatioBand _updates;
    readonly LossDiverging _diverging;
    readonly LossScaleCheck? _lossScale;
    readonly LossScaleReportingCheck _validationScale = new();
    readonly MetricInputShapes _metricShapes = new();
    readonly EvaluationInTrainingMode _evalInTrainMode = new();
    readonly GradientsNotZeroed _notZeroed = new();
    readonly string? _modeDependentLayers; // e.g. "2 BatchNorm, 1 dropout"; null when the model has none
    readonly BatchNormDriftCheck? _bn;

    TrainingDoctor(nn.Module<Tensor, Tensor> model, optim.Optimizer optimizer, DoctorOptions options)
    {
        _model = model;
        _optimizer = optimizer;
        Options = options;
        _lossFn = options.LossFunction;
        _logitsLoss = options.LogitsLoss;
        _weights = model.named_parameters().Where(p => p.parameter.requires_grad && p.parameter.dim() >= 2).Select(p => (p.name, p.parameter)).ToList();
        if (_weights.Count == 0) throw new ArgumentException("the model has no trainable weight matrices (parameters with 2 or more dimensions) to watch");
        _modules = new[] { (nn.Module)model }.Concat(model.named_modules().Select(m => m.module)).Distinct().ToList();
        _batchNorms = model.named_modules().Where(m => m.module is BatchNorm).Select(m => (m.name, (BatchNorm)m.module)).ToList();
        _modes = new bool[_modules.Count];
        _snapshotNorms = new double[_weights.Count];
        _bnCollected = new Tensor?[_batchNorms.Count];
        int dropouts = model.named_modules().Count(m => m.module.GetType().Name.Contains("Dropout", StringComparison.Ordinal));
        if (_batchNorms.Count + dropouts > 0)
            _modeDependentLayers = string.Join(", ", new[] { _batchNorms.Count > 0 ? $"{_batchNorms.Count} BatchNorm" : null, dropouts > 0 ? $"{dropouts} dropout" : null }.Where(t => t != null));
        var leaves = model.named_modules().Where(m => !m.module.children().Any()).ToList();
        if (leaves.Count > 0 && leaves[^1].module is Sigmoid or Softmax) _lastLayer = (leaves[^1].name, leaves[^1].module.GetType().Name);

        int p = options.Patience;
        _intoLogits = new ProbabilitiesIntoLogitsLoss(Math.Max(p, (int)Math.Ceiling(20.0 / options.Every)));
        _saturated = new SaturatedOutputs(options.SaturatedFraction);
        _frozen = new FrozenLoss(window: Math.Max(p, 5));
        _floor = new LossAtAnalyticFloor(patience: p);
        _vanishing = new VanishingGradients(options.VanishingRatio, options.VanishingFirstNorm, p);
        // a spike over two measurements 50 steps apart is an explosion; over two consecutive steps it can be one noisy
        // batch: at short cadences the evidence must span at least 10 steps (as for the value-range check's 20)
        _exploding = new ExplodingGradients(options.ExplodingFactor, Math.Max(Math.Max(1, p - 1), (int)Math.Ceiling(10.0 / options.Every)));
        _dying = new DyingRelu(options.DeadReluFraction, p);
        _updates = new UpdateRatioBand(options.UpdateRatioLow, options.UpdateRatioHigh, p);
        _diverging = new LossDiverging(options.DivergenceFactor, p);
        if (options.ExpectedReduction is { } r) _lossScale = new LossScaleCheck(r, every: 1);
        if (_batchNorms.Count > 0) _bn = new BatchNormDriftCheck { RelativeGapThreshold = options.RelativeGapThreshold, Patience = Math.Max(2, p - 1) };

        var list = new List<Check> { _nonFinite, _squashingLayer, _intoLogits, _saturated, _frozen, _floor, _vanishing, _exploding, _dying, _updates, _diverging };
        if (_lossScale != null) list.Add(_lossScale);
        list.Add(_validationScale);
        list.Add(_metricShapes);
        if (_modeDependentLayers != null) list.Add(_evalInTrainMode);
        _gradLayer = GradientLayer(model);
        if (_gradLayer != null) list.Add(_notZeroed);
        if (_bn != null) list.Add(_bn);
        Checks = list;

        if (options.ProbeInputs is { } px)
        {
            _probeX = px.detach().clone(); _probeX.DetachFromDisposeScope();
            _probeY = options.ProbeTargets!.detach().clone(); _probeY.DetachFromDisposeScope();
        }
        // the first training batch's inputs become the probe batch (a copy)
        var root = model.register_forward_pre_hook((m, x) => { OnForward(x); return x; });
        _removers.Add(root.remove);
        for (int i = 0; i < _batchNorms.Count; i++)
        {
            int index = i;
            var h = _batchNorms[i].Layer.register_forward_hook((m, input, output) => OnBatchNorm(index, input, output));
            _removers.Add(h.remove);
        }
        if (_gradLayer is { } gl)
        {
            var h = gl.Layer.register_forward_hook((m, input, output) => OnGradientLayer(output));
            _removers.Add(h.remove);
        }
        foreach (var (_, module) in model.named_modules())
            if (module is ReLU or ReLU6)
            {
                var relu = (nn.Module<Tensor, Tensor>)module;
                var h = relu.register_forward_hook((m, input, output) => { OnRelu(output); return output; });
                _removers.Add(h.remove);
                _hasRelu = true;
            }
    }

    /// <summary>Attaches the doctor to a model and its optimiser (hooks only; the model code is not changed).</summary>
    public static TrainingDoctor Attach(nn.Module<Tensor, Tensor> model, optim.Optimizer optimizer, DoctorOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(optimizer);
        var o = options ?? new DoctorOptions();
        o.Validate();
        return new TrainingDoctor(model, optimizer, o);
    }

    public DoctorOptions Options { get; }

    /// <summary>Every detector the doctor runs (those that apply to this model).</summary>
    public IReadOnlyList<Check> Checks { get; }

    /// <summary>Steps observed so far.</summary>
    public long Observations => _observations;

    /// <summary>Seconds spent inside the doctor (observations and measurement passes).</summary>
    public double OwnSeconds => _own.Elapsed.TotalSeconds;

    /// <summary>Whether the loss was recognised as a logits loss (null until known).</summary>
    public bool? LogitsLoss => _logitsLoss;

    /// <summary>(step, training loss) of every observed step.</summary>
    public IReadOnlyList<(long Step, double Loss)> Losses => _losses;

    /// <summary>(step, eval-mode loss on the probe batch) at each measurement.</summary>
    public IReadOnlyList<(long Step, double Loss)> ProbeLosses => _probeLosses;

    /// <summary>Watches every step of <paramref name="loop"/> (after backward, before the optimiser step).</summary>
    public TrainingDoctor AttachTo(TrainingLoop loop)
    {
        ThrowIfDetached();
        ArgumentNullException.ThrowIfNull(loop);
        if (_loop != null) throw new InvalidOperationException("the doctor is already attached to a training loop");
        _loop = loop;
        _lossFn ??= loop.LossFunction;
        loop.AfterBackward += OnLoopStep;
        return this;
    }

    void OnLoopStep(StepContext ctx)
    {
        if (_probeX is null) SetProbeInputs(ctx.Inputs);
        Observe(ctx.Step, ctx.Outputs, ctx.Targets, ctx.Loss);
    }

    /// <summary>
    /// Wraps the training loss: the returned function computes the same loss and remembers its inputs and value,
    /// so <see cref="Observe(long)"/> needs only the step. The doctor also reuses the function on its probe batch.
    /// </summary>
    public Func<Tensor, Tensor, Tensor> Loss(Func<Tensor, Tensor, Tensor> lossFunction)
    {
        ArgumentNullException.ThrowIfNull(lossFunction);
        _lossFn = lossFunction;
        return (o, y) =>
        {
            var l = lossFunction(o, y);
            if (!_detached && !_inProbe && is_grad_enabled()) _pending = (o, y, l);
            return l;
        };
    }

    /// <summary>
    /// Wraps a metric (labels, predictions) → value: its inputs are checked for the shapes an automatic accuracy
    /// misreads. The metric itself is called unchanged.
    /// </summary>
    public Func<Tensor, Tensor, T> Metric<T>(Func<Tensor, Tensor, T> metric)
    {
        ArgumentNullException.ThrowIfNull(metric);
        return (yTrue, yPred) =>
        {
            if (!_detached) Timed(() => _metricShapes.Observe(Math.Max(_lastStep, 0), yTrue, yPred, "metric"));
            return metric(yTrue, yPred);
        };
    }

    /// <summary>
    /// Wraps a validation loss: on its first calls it is compared with the training loss on the same outputs and
    /// targets (a validation loss in other units reads as generalisation that is not there).
    /// </summary>
    public Func<Tensor, Tensor, Tensor> ValidationLoss(Func<Tensor, Tensor, Tensor> validationLoss)
    {
        ArgumentNullException.ThrowIfNull(validationLoss);
        return (o, y) =>
        {
            if (!_detached && _lossFn is { } train && _validationInspections < 3)
            {
                _validationInspections++;
                Timed(() =>
                {
                    try { _validationScale.Inspect(train, validationLoss, o.detach(), y, Math.Max(_lastStep, 0)); }
                    catch (ArgumentException) { } // shapes a squared-error reading cannot take: nothing to compare
                });
            }
            return validationLoss(o, y);
        };
    }

    /// <summary>Observes a step using the inputs and value of the last call of the function <see cref="Loss"/> returned.</summary>
    public void Observe(long step)
    {
        if (_pending is not { } p) throw new InvalidOperationException("no loss computed since the last observation: wrap the loss with doctor.Loss(…) or call Observe(step, outputs, targets, loss)");
        _pending = null;
        Observe(step, p.O, p.Y, p.L);
    }

    /// <summary>
    /// Observes one training step. Call it after <c>loss.backward()</c> (gradients present), before or after
    /// <c>optimizer.step()</c> — the same place every step.
    /// </summary>
    public void Observe(long step, Tensor outputs, Tensor targets, Tensor loss)
    {
        ThrowIfDetached();
        ArgumentNullException.ThrowIfNull(outputs); ArgumentNullException.ThrowIfNull(targets); ArgumentNullException.ThrowIfNull(loss);
        if (step <= _lastStep) throw new ArgumentException($"steps must increase: got {step} after {_lastStep}", nameof(step));
        _own.Start();
        bool wasInProbe = _inProbe;
        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = inference_mode(); // cheaper than no_grad per operation: nothing here is ever differentiated
            _observations++;
            double lossValue = loss.numel() != 1 ? double.NaN
                : loss.dtype == ScalarType.Float32 ? loss.item<float>() : loss.detach().to_type(ScalarType.Float64).item<double>();
            _losses.Add((step, lossValue));
            _nonFinite.ObserveLoss(step, lossValue);
            if (!_firstDone) First(step, outputs, targets);
            bool measure = step % Options.Every == 0, batchNorm = _bn != null && step % Options.BatchNormEvery == 0;
            // the update of the last step, when the snapshot before it was taken (with the measurement's numbers when both are due)
            bool ratioDue = _snapshot != null && step == _snapshotStep + 1;
            if (ratioDue && !measure) UpdateRatios(step);
            if (measure) Measure(step, outputs, targets, lossValue, ratioDue);
            else DisposeSnapshot();
            if ((measure || batchNorm) && _probeX is not null) Probe(step, measure, batchNorm, outputs);
            if (_gradLayer != null) KeepGradient(step);
            _lastStep = step;
            _nextStep = step + 1;
        }
        finally
        {
            _inProbe = wasInProbe;
            _own.Stop();
        }
    }

    void First(long step, Tensor outputs, Tensor targets)
    {
        _firstDone = true;
        if (_probeY is null && _probeX is not null)
        {
            long n = Math.Min(_probeX.shape[0], targets.shape[0]);
            _probeY = targets.detach().narrow(0, 0, n).clone(); _probeY.DetachFromDisposeScope();
        }
        _logitsLoss ??= DetectLogitsLoss(outputs, targets);
        if (_logitsLoss == true && _lastLayer is { } last) _squashingLayer.Observe(step, last.Name, last.Type);
        _metricShapes.Observe(step, targets, outputs, "loss targets vs outputs");
    }

    /// <summary>Softmax cross-entropy is shift-invariant per row; BCE-with-logits is compared with the reference.</summary>
    bool? DetectLogitsLoss(Tensor outputs, Tensor targets)
    {
        var o = outputs.detach();
        if (_lossFn is { } fn)
        {
            try
            {
                _inProbe = true;
                if (o.dim() == 2 && o.shape[1] > 1)
                {
                    double a = fn(o, targets).to_type(ScalarType.Float64).item<double>();
                    double b = fn(o + 1.0, targets).to_type(ScalarType.Float64).item<double>();
                    double c = fn(o * 2.0 + 0.5, targets).to_type(ScalarType.Float64).item<double>();
                    return Math.Abs(a - b) <= 1e-5 * Math.Max(1, Math.Abs(a)) && Math.Abs(a - c) > 1e-6;
                }
                if (targets.numel() == o.numel())
                {
                    double a = fn(o, targets).to_type(ScalarType.Float64).item<double>();
                    double r = nn.functional.binary_cross_entropy_with_logits(o.reshape(targets.shape), targets.to_type(o.dtype)).to_type(ScalarType.Float64).item<double>();
                    return Math.Abs(a - r) <= 1e-5 * Math.Max(1, Math.Abs(a));
                }
                return false;
            }
            catch (Exception) { return null; }
            finally { _inProbe = false; }
        }
        // no loss function known: class indices next to class scores are the cross-entropy convention
        return targets.dim() == 1 && !targets.is_floating_point() && o.dim() == 2 && o.shape[1] > 1;
    }

    void Measure(long step, Tensor outputs, Tensor targets, double lossValue, bool withRatios)
    {
        EnsureSnapshotBuffers();
        // every number of this measurement in one float64 tensor, one transfer to the host:
        // [grad norms…, weight norms…, output min, output max | dead ReLU units, outputs within ε of 0 or 1]
        // (values in the weights' precision and counts are stacked separately: two conversions instead of one per value)
        var values = new List<Tensor>(2 * _weights.Count + 2);
        var counts = new List<Tensor>(2);
        var present = new List<string>();
        foreach (var (name, p) in _weights)
            if (p.grad is { } g) { values.Add(linalg.vector_norm(g)); present.Add(name); }
        int nGrads = values.Count;
        // ‖W‖ on the entries the update ratio samples (all of a small weight): the ratio's denominator at the next
        // step, and the NaN/∞ check (a non-finite weight anywhere reaches the loss at the next step)
        foreach (var sample in _samples!) values.Add(linalg.vector_norm(sample));
        int ratiosAt = values.Count;
        if (withRatios) foreach (var t in UpdateDistances()) values.Add(t);
        bool haveOutputs = outputs.numel() > 0 && outputs.is_floating_point();
        // saturation is counted while the outputs were inside [0, 1] at the last measurement (a property of the model's
        // head, so the one-measurement lag costs nothing; logits skip the count)
        bool countSaturated = haveOutputs && _outputsInUnitInterval != false;
        if (haveOutputs)
        {
            var o = outputs.detach();
            var (min, max) = o.aminmax();
            values.Add(min); values.Add(max);
            if (countSaturated)
            {
                // |o − ½| ∈ [½ − ε, ½] ⇔ o ∈ [0, ε] ∪ [1 − ε, 1]
                var d = (o - 0.5).abs_();
                counts.Add(d.ge(0.5 - _saturated.Epsilon).logical_and_(d.le(0.5)).sum());
            }
        }
        var gradCheck = GradientCheckVectors(step);
        bool deadFromHooks = _hasRelu && _deadCounts.Count > 0;
        if (deadFromHooks) counts.Add(cat(_deadCounts).le(0).sum());
        var dtype = values[0].dtype; // mixed precisions (rare) are converted first
        var groups = new List<Tensor> { stack(values.Select(v => v.dtype == dtype ? v : v.to_type(dtype)).ToArray()).to_type(ScalarType.Float64) };
        if (counts.Count > 0) groups.Add(stack(counts.ToArray()).to_type(ScalarType.Float64));
        int gradCheckAt = values.Count + counts.Count;
        if (gradCheck is not null) groups.Add(gradCheck);
        var all = (groups.Count == 1 ? groups[0] : cat(groups.ToArray())).data<double>().ToArray();
        int at = values.Count;
        if (withRatios) ObserveRatios(step, all.AsSpan(ratiosAt, _weights.Count));
        if (gradCheck is not null) ObserveGradientCheck(step, all.AsSpan(gradCheckAt));
        double weightSq = 0;
        for (int i = nGrads; i < nGrads + _weights.Count; i++) weightSq += all[i] * all[i];
        var norms = all.AsSpan(0, nGrads).ToArray();
        if (nGrads > 0)
        {
            double gradSq = norms.Sum(v => v * v);
            _nonFinite.ObserveTensors(step, gradSq, weightSq);
            _vanishing.Observe(step, norms[0], norms[^1], present[0], present[^1]);
            _exploding.Observe(step, Math.Sqrt(gradSq));
            if (double.IsFinite(_exploding.Baseline) && _exploding.Baseline > 0) Vital("max_grad_growth", Math.Sqrt(gradSq) / _exploding.Baseline);
            Vital("min_first_grad_norm", norms[0], max: false);
        }
        else _nonFinite.ObserveTensors(step, 0, weightSq);

        // the outputs the loss was given: the saturated fraction, and whether they look like probabilities
        if (haveOutputs)
        {
            double min = all[at - 2], max = all[at - 1];
            _outputsInUnitInterval = min >= 0 && max <= 1;
            double fraction = countSaturated ? all[at++] / outputs.numel() : 0;
            _saturated.Observe(step, fraction);
            Vital("max_saturated_fraction", fraction);
            if (_logitsLoss == true)
            {
                if (min >= 0 && max <= 1) _intoLogits.Observe(step, outputs);
                else if (!_intoLogits.Fired) _intoLogits.Reset();
            }
        }

        // dying ReLUs: measured by the hooks during this step's forward pass (armed for it), else zero-gradient rows
        if (_hasRelu)
        {
            if (deadFromHooks) _deadUnits = (long)all[at++];
            if (_reluUnits > 0) { _dying.Observe(step, (double)_deadUnits / _reluUnits, _reluUnits, "activations"); Vital("max_dead_relu_fraction", (double)_deadUnits / _reluUnits); }
        }
        else if (nGrads > 0)
        {
            long rows = 0, dead = 0;
            foreach (var (_, p) in _weights)
                if (p.grad is { } g)
                {
                    var rowAbs = g.flatten(1).abs().sum(1);
                    rows += rowAbs.shape[0];
                    dead += rowAbs.eq(0).sum().item<long>();
                }
            _dying.Observe(step, rows > 0 ? (double)dead / rows : double.NaN, rows, "gradients");
        }
        _deadUnits = _reluUnits = 0;
        foreach (var t in _deadCounts) t.Dispose();
        _deadCounts.Clear();

        // a snapshot of the weights: the next observation measures one update
        // (copied into buffers kept from one measurement to the next: no large allocation per step)
        for (int i = 0; i < _weights.Count; i++) _snapshotBuffers![i].copy_(_samples![i]);
        _snapshot = _snapshotBuffers;
        Array.Copy(all, nGrads, _snapshotNorms, 0, _weights.Count);
        _snapshotStep = step;

        // the loss scale (squared-error losses under a scale-sensitive optimiser)
        if (_lossScale != null && double.IsFinite(lossValue) && _optimizer is SGD && _lossScaleReads++ < 3)
        {
            try
            {
                var reading = LossScale.Read(lossValue, outputs, targets, _lossScale.Expected);
                if (reading.Matches.Count > 0 && !reading.AsExpected) _lossScale.Inspect(lossValue, outputs, targets, step);
            }
            catch (ArgumentException) { } // not a squared-error loss on these shapes
        }
    }

    /// <summary>Weights up to this many entries are snapshot whole for the update ratio; larger ones are sampled.</summary>
    internal const long UpdateSampleLimit = 1 << 16;

    /// <summary>
    /// The entries of a weight the update ratio is measured on: all of them up to <see cref="UpdateSampleLimit"/>,
    /// else every k-th entry (a fixed, evenly spread subset of 16,384 to 32,768 entries; every row of a matrix with
    /// rows of ≥ k entries is in it). ‖ΔW_S‖/‖W_S‖ estimates ‖ΔW‖/‖W‖ to a few per cent for the band check, at a
    /// fraction of the cost of copying and differencing the whole weight every measurement.
    /// </summary>
    static Tensor UpdateSample(Parameter p)
    {
        var flat = p.detach().reshape(-1);
        long n = flat.shape[0];
        if (n <= UpdateSampleLimit) return flat;
        long k = (n + (1 << 14) - 1) >> 14;
        return flat.slice(0, 0, n, k);
    }

    void EnsureSnapshotBuffers()
    {
        if (_snapshotBuffers is not null) return;
        _snapshotBuffers = new List<Tensor>(_weights.Count);
        _samples = new List<Tensor>(_weights.Count);
        foreach (var (_, p) in _weights)
        {
            // views into the weights (kept: the optimiser updates weights in place), and buffers of their size
            var view = UpdateSample(p); view.DetachFromDisposeScope(); _samples.Add(view);
            var c = empty_like(view); c.DetachFromDisposeScope(); _snapshotBuffers.Add(c);
        }
    }

    /// <summary>‖ΔW‖ = dist(W_old, W) per weight, on the sampled entries (not yet read back).</summary>
    IEnumerable<Tensor> UpdateDistances()
    {
        for (int i = 0; i < _weights.Count; i++) yield return _snapshot![i].dist(_samples![i]);
    }

    void UpdateRatios(long step)
    {
        var v = stack(UpdateDistances().ToArray()).to_type(ScalarType.Float64).data<double>().ToArray();
        ObserveRatios(step, v);
        DisposeSnapshot();
    }

    /// <summary>‖ΔW‖/‖W_old‖ per weight (‖W_old‖ measured with the snapshot), median over the weights.</summary>
    void ObserveRatios(long step, ReadOnlySpan<double> distances)
    {
        var v = distances;
        var ratios = new List<double>(_weights.Count);
        for (int i = 0; i < _weights.Count; i++)
            if (_snapshotNorms[i] > 0) ratios.Add(v[i] / _snapshotNorms[i]);
        if (ratios.Count == 0) return;
        ratios.Sort();
        double median = ratios.Count % 2 == 1 ? ratios[ratios.Count / 2] : (ratios[ratios.Count / 2 - 1] + ratios[ratios.Count / 2]) / 2;
        _updates.Observe(step - 1, median);
        Vital("max_update_ratio", median);
        Vital("min_update_ratio", median, max: false);
    }

    void DisposeSnapshot() => _snapshot = null;

    void DisposeSnapshotBuffers()
    {
        _snapshot = null;
        if (_snapshotBuffers == null) return;
        foreach (var t in _snapshotBuffers) t.Dispose();
        foreach (var t in _samples!) t.Dispose();
        _snapshotBuffers = _samples = null;
    }

    List<Tensor>? _snapshotBuffers, _samples;
    bool? _outputsInUnitInterval;

    readonly double[] _snapshotNorms;
    double _bestProbeLoss;

    /// <summary>
    /// One forward pass over the probe batch with every module in eval mode (no random numbers drawn, BatchNorm
    /// buffers never written). With <paramref name="batchNorm"/> the batch goes in twice, and each BatchNorm layer's
    /// hook normalises the second copy with that copy's own batch statistics — exactly what training mode computes,
    /// without training mode's update of the running statistics — and reads those statistics on the way. So the
    /// eval-mode loss, the train-mode loss on the same images and every layer's statistics come from one pass and
    /// one transfer to the host.
    /// </summary>
    void Probe(long step, bool lossDetectors, bool batchNorm, Tensor outputs)
    {
        bool withLoss = _lossFn != null && _probeY is not null;
        if (!withLoss && !batchNorm) return;
        long n = _probeX!.shape[0];
        // modes are restored from this (one call when all modules share a mode); no per-call allocation otherwise
        bool first = _modules[0].training, uniform = true;
        for (int i = 0; i < _modules.Count; i++) { _modes[i] = _modules[i].training; uniform &= _modes[i] == first; }
        _inProbe = true;
        double[] v;
        bool stats = false;
        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = inference_mode();
            _model.eval();
            Array.Clear(_bnCollected);
            _trainCopyAt = batchNorm ? n : -1;
            Tensor o;
            try { o = _model.call(batchNorm ? cat(new[] { _probeX, _probeX }) : _probeX); }
            finally { _trainCopyAt = -1; }
            var parts = new List<Tensor>(_bnCollected.Length + 2);
            if (withLoss)
            {
                parts.Add(_lossFn!(o.narrow(0, 0, n), _probeY!).to_type(ScalarType.Float64).reshape(1));
                if (batchNorm) parts.Add(_lossFn!(o.narrow(0, n, n), _probeY!).to_type(ScalarType.Float64).reshape(1));
            }
            stats = batchNorm && Array.TrueForAll(_bnCollected, c => c is not null);
            if (stats) foreach (var c in _bnCollected) parts.Add(c!);
            if (parts.Count == 0) return;
            v = cat(parts.ToArray()).data<double>().ToArray();
        }
        finally
        {
            Array.Clear(_bnCollected);
            // train(bool) is recursive: one call when every module had the same mode, else module by module (parents first)
            if (uniform) _model.train(first);
            else for (int i = 0; i < _modules.Count; i++) _modules[i].train(_modes[i]);
            _inProbe = false;
        }

        int at = 0;
        double evalLoss = withLoss ? v[at++] : double.NaN;
        double trainLoss = withLoss && batchNorm ? v[at++] : double.NaN;
        if (withLoss && lossDetectors) ObserveProbeLoss(step, evalLoss, outputs);
        if (!stats) return;
        var list = new BatchNormLayerStats[_batchNorms.Count];
        for (int i = 0; i < list.Length; i++)
        {
            var (name, bn) = _batchNorms[i];
            int c = (int)bn.running_mean!.shape[0];
            list[i] = new BatchNormLayerStats(name, step, v[at..(at + c)], v[(at + c)..(at + 2 * c)], v[(at + 2 * c)..(at + 3 * c)], v[(at + 3 * c)..(at + 4 * c)],
                (long)v[at + 4 * c], bn.momentum);
            at += 4 * c + 1;
        }
        _bn!.Observe(step, list);
        Vital("max_bn_var_ratio", _bn.LastVarRatio);
        Vital("max_bn_mean_shift", _bn.LastMeanShift);
        if (double.IsFinite(evalLoss) && double.IsFinite(trainLoss) && trainLoss > 0)
        {
            var gap = new TrainEvalGapResult(step, evalLoss, trainLoss, double.NaN, double.NaN, double.NaN, double.NaN);
            _bn.ObserveGap(gap, _batchNorms[0].Layer.momentum);
            Vital("max_relative_train_eval_gap", gap.RelativeGap);
        }
    }

    void ObserveProbeLoss(long step, double probeLoss, Tensor outputs)
    {
        _probeLosses.Add((step, probeLoss));
        _bestProbeLoss = _probeLosses.Count == 1 ? probeLoss : Math.Min(_bestProbeLoss, probeLoss); // as Min over the list (NaN propagates)
        Vital("max_probe_loss_over_best", probeLoss / Math.Max(1e-12, _bestProbeLoss));
        _frozen.Observe(step, probeLoss);
        _diverging.Observe(step, probeLoss);
        if (_logitsLoss == true && _probeY!.dim() == 1 && !_probeY.is_floating_point() && double.IsFinite(probeLoss))
        {
            long classes = Math.Max(2, outputs.dim() == 2 ? outputs.shape[1] : 2);
            if (classes <= 1000)
            {
                if (_probeClassCounts is null)
                    using (var counts = _probeY.to_type(ScalarType.Int64).bincount(null, classes))
                        _probeClassCounts = counts.data<long>().ToArray();
                _floor.Observe(step, probeLoss, _probeClassCounts);
            }
        }
    }

    /// <summary>
    /// Forward hook of BatchNorm layer <paramref name="index"/>, active only in the probe pass: rows from
    /// <see cref="_trainCopyAt"/> on are the training-mode copy. Their output (eval mode: running statistics) is
    /// replaced by the training-mode normalisation with their own batch mean and biased variance; the mean, the
    /// unbiased variance (what the running average takes in) and the running statistics are kept as one float64 tensor.
    /// </summary>
    Tensor OnBatchNorm(int index, Tensor input, Tensor output)
    {
        long at = _trainCopyAt;
        if (at < 0 || !_inProbe) return output;
        var bn = _batchNorms[index].Layer;
        var x = input.detach().narrow(0, at, input.shape[0] - at);
        // training-mode batch norm into fresh buffers with momentum 1: the buffers come back holding exactly this
        // copy's batch mean and unbiased variance (the layer's own running statistics are not passed, so not touched)
        long channels = x.shape[1];
        var batchMean = zeros(channels, x.dtype, x.device);
        var batchVar = ones(channels, x.dtype, x.device);
        var y = nn.functional.batch_norm(x, batchMean, batchVar, bn.weight?.detach(), bn.bias?.detach(), training: true, momentum: 1.0, eps: bn.eps);
        var tracked = bn.num_batches_tracked is null ? zeros(1, x.dtype, x.device) : bn.num_batches_tracked.detach().to_type(x.dtype).reshape(1);
        _bnCollected[index] = cat(new[] { batchMean, batchVar, bn.running_mean!.detach(), bn.running_var!.detach(), tracked }).to_type(ScalarType.Float64);
        return cat(new[] { output.narrow(0, 0, at), y });
    }

    void OnForward(Tensor x)
    {
        if (_detached || _inProbe || !_model.training) return;
        if (!is_grad_enabled())
        {
            // an evaluation in training mode (the probe passes and recalibration set _inProbe and never get here)
            if (_modeDependentLayers != null) _evalInTrainMode.Observe(Math.Max(_lastStep, 0), _modeDependentLayers);
            return;
        }
        if (_probeX is null) SetProbeInputs(x);
        if (_gradLayer != null) ArmGradientCheck();
        _armed = _hasRelu && _nextStep % Options.Every == 0;
        _deadUnits = _reluUnits = 0;
        foreach (var t in _deadCounts) t.Dispose();
        _deadCounts.Clear();
    }

    void SetProbeInputs(Tensor x)
    {
        if (x.dim() < 1 || x.shape[0] < 2) return;
        long n = Math.Min(Options.ProbeSize, x.shape[0]);
        _probeX = x.detach().narrow(0, 0, n).clone();
        _probeX.DetachFromDisposeScope();
    }

    void OnRelu(Tensor output)
    {
        if (!_armed || _detached || _inProbe || !is_grad_enabled()) return;
        _own.Start();
        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var o = output.detach();
            if (o.dim() < 2) return;
            // per unit (dim 1) over the batch and positions: ReLU outputs are ≥ 0, so a zero sum means always zero (a sum is faster than a max here)
            var perUnit = o.sum(ReduceDims(o.dim()));
            _reluUnits += perUnit.shape[0];
            perUnit.DetachFromDisposeScope();
            _deadCounts.Add(perUnit); // counted with the other layers' at the measurement (one reduction, one read)
        }
        finally { _own.Stop(); }
    }

    static readonly long[][] _reduceDims = Enumerable.Range(0, 9).Select(d => Enumerable.Range(0, d).Where(i => i != 1).Select(i => (long)i).ToArray()).ToArray();
    static long[] ReduceDims(long dim) => dim < _reduceDims.Length ? _reduceDims[dim] : Enumerable.Range(0, (int)dim).Where(i => i != 1).Select(i => (long)i).ToArray();

    /// <summary>The last Linear, convolution or BatchNorm layer with a trainable bias (null: none, the check is off).</summary>
    static (nn.Module<Tensor, Tensor> Layer, string Name, Parameter Bias, bool ChannelsLast)? GradientLayer(nn.Module<Tensor, Tensor> model)
    {
        (nn.Module<Tensor, Tensor>, string, Parameter, bool)? found = null;
        foreach (var (name, module) in model.named_modules())
        {
            if (module is not (Linear or Convolution or BatchNorm)) continue;
            var bias = module.named_parameters(recurse: false).FirstOrDefault(p => p.name == "bias").parameter;
            if (bias is null || !bias.requires_grad || bias.dim() != 1) continue;
            found = ((nn.Module<Tensor, Tensor>)module, name + ".bias", bias, module is Linear);
        }
        return found;
    }

    /// <summary>
    /// At the first training forward pass of a checked step, or of the step before one: the bias is copied (two slots,
    /// because with a check every step both happen at each step). On a checked step every pass arms the layer's hook
    /// (the last pass of the step counts).
    /// </summary>
    void ArmGradientCheck()
    {
        long s = _nextStep;
        bool due = s % Options.Every == 0, beforeDue = (s + 1) % Options.Every == 0;
        if (!due && !beforeDue) return;
        _own.Start();
        try
        {
            _ownGrad?.Dispose(); _ownGrad = null;
            _gradArmed = due;
            if (_biasSteps[0] == s || _biasSteps[1] == s) return;
            using var noGrad = no_grad();
            var bias = _gradLayer!.Value.Bias;
            int slot = _biasSteps[0] == s - 1 ? 1 : 0; // keep the previous step's copy
            if (_biasAt[slot] is null) { _biasAt[slot] = empty_like(bias); _biasAt[slot]!.DetachFromDisposeScope(); }
            _biasAt[slot]!.copy_(bias.detach());
            _biasSteps[slot] = s;
        }
        finally { _own.Stop(); }
    }

    /// <summary>
    /// Forward hook of the watched layer on a checked step: its output plus a zero leaf shaped like the bias (broadcast
    /// over the batch and positions), so the leaf's gradient is exactly this pass's own bias gradient. Adding zero
    /// leaves every value as it was.
    /// </summary>
    Tensor OnGradientLayer(Tensor output)
    {
        if (!_gradArmed || _detached || _inProbe || !is_grad_enabled() || !output.is_floating_point()) return output;
        _gradArmed = false;
        var (_, _, bias, channelsLast) = _gradLayer!.Value;
        long c = bias.shape[0];
        if (output.dim() < (channelsLast ? 1 : 2) || output.shape[channelsLast ? output.dim() - 1 : 1] != c) return output;
        var shape = channelsLast ? new[] { c } : new[] { c }.Concat(Enumerable.Repeat(1L, (int)output.dim() - 2)).ToArray();
        _ownGrad = zeros(shape, output.dtype, output.device, requires_grad: true);
        _ownGrad.DetachFromDisposeScope();
        return output + _ownGrad;
    }

    /// <summary>
    /// On a checked step: [.grad, this pass's own gradient, .grad at the previous step, bias at the previous step's
    /// pass, bias at this step's pass] as one float64 vector for the measurement's transfer (null: nothing to check).
    /// </summary>
    Tensor? GradientCheckVectors(long step)
    {
        if (_gradLayer is null || _ownGrad is null || _gradBefore is null || _gradBeforeStep != step - 1) return null;
        int previous = Array.IndexOf(_biasSteps, step - 1), current = Array.IndexOf(_biasSteps, step);
        if (previous < 0 || current < 0 || _gradLayer.Value.Bias.grad is not { } g || _ownGrad.grad is not { } own) return null;
        return cat(new[] { g, own.reshape(-1), _gradBefore, _biasAt[previous]!, _biasAt[current]! }).to_type(ScalarType.Float64);
    }

    /// <summary>The norms of the check from the vectors of <see cref="GradientCheckVectors"/> (a bias is small: on the host).</summary>
    void ObserveGradientCheck(long step, ReadOnlySpan<double> v)
    {
        int c = (int)_gradLayer!.Value.Bias.shape[0];
        double accumulated = 0, leftover = 0, vsPrevious = 0, update = 0;
        for (int i = 0; i < c; i++)
        {
            double g = v[i], rest = g - v[c + i], d = rest - v[2 * c + i], u = v[4 * c + i] - v[3 * c + i];
            accumulated += g * g; leftover += rest * rest; vsPrevious += d * d; update += u * u;
        }
        _notZeroed.Observe(step, _gradLayer.Value.Name, Math.Sqrt(accumulated), Math.Sqrt(leftover), Math.Sqrt(vsPrevious), Math.Sqrt(update));
    }

    /// <summary>After a step: its bias gradient is kept when the next step is checked; this step's leaf is dropped.</summary>
    void KeepGradient(long step)
    {
        _ownGrad?.Dispose(); _ownGrad = null;
        if ((step + 1) % Options.Every != 0) return;
        if (_gradLayer!.Value.Bias.grad is not { } g) { _gradBeforeStep = -1; return; }
        if (_gradBefore is null) { _gradBefore = empty_like(g); _gradBefore.DetachFromDisposeScope(); }
        _gradBefore.copy_(g);
        _gradBeforeStep = step;
    }

    void Timed(Action a)
    {
        bool running = _own.IsRunning;
        if (!running) _own.Start();
        try { a(); } finally { if (!running) _own.Stop(); }
    }

    /// <summary>
    /// The BatchNorm fix one call away: re-estimates the running statistics on <paramref name="batches"/> (see
    /// <see cref="BatchNormRecalibration.Run"/>); returns the number of batches used.
    /// </summary>
    public int RecalibrateBatchNorm(IEnumerable<Tensor> batches, int maxBatches = 100)
    {
        bool was = _inProbe;
        _inProbe = true;
        try { return BatchNormRecalibration.Run(_model, batches, maxBatches); }
        finally { _inProbe = was; }
    }

    /// <summary>The findings so far: table, timeline chart, text and JSON.</summary>
    public DoctorReport Report() => new(Checks, _losses, _probeLosses, _observations, Options, _vitals);

    /// <summary>Extremes of the measured quantities so far (e.g. max_update_ratio): how close a run came to each threshold.</summary>
    public IReadOnlyDictionary<string, double> Vitals => _vitals;

    /// <summary>Removes every hook and event handler; the model, optimiser and loop are as before attaching.</summary>
    public void Detach()
    {
        if (_detached) return;
        _detached = true;
        foreach (var r in _removers) r();
        _removers.Clear();
        if (_loop != null) { _loop.AfterBackward -= OnLoopStep; _loop = null; }
        DisposeSnapshotBuffers();
        foreach (var t in new[] { _biasAt[0], _biasAt[1], _gradBefore, _ownGrad }) t?.Dispose();
        _biasAt[0] = _biasAt[1] = _gradBefore = _ownGrad = null;
        _probeX?.Dispose(); _probeY?.Dispose();
        _probeX = _probeY = null;
        _pending = null;
    }

    public bool Detached => _detached;

    public void Dispose() => Detach();

    void ThrowIfDetached()
    {
        if (_detached) throw new InvalidOperationException("the doctor was detached; attach a new one");
    }
}
