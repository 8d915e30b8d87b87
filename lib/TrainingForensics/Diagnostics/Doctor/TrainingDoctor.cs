using TorchSharp;
using TorchSharp.Modules;
using TrainingForensics.Results;
using TrainingForensics.Training;
using static TorchSharp.torch;
using TrainingForensics.Native;

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
/// The doctor orchestrates its parts: the measurement batch (<see cref="MeasurementBatch"/>), the probe pass
/// (<see cref="ProbePass"/>), the dead-unit count (<see cref="DeadUnitCount"/>), the zero_grad watch
/// (<see cref="ZeroGradWatch"/>) and the detectors they feed (<see cref="DoctorDetectors"/>).
/// </summary>
public sealed class TrainingDoctor : IDisposable
{
    readonly nn.Module<Tensor, Tensor> _model;
    readonly optim.Optimizer _optimizer;
    readonly MeasurementBatch _measurement;
    readonly ProbePass _probe;
    readonly DeadUnitCount _deadUnits;
    readonly ZeroGradWatch? _zeroGrad;
    readonly DoctorDetectors _detectors;
    readonly List<Action> _removers = new();
    readonly (string Name, string Type)? _lastLayer; // a Sigmoid or Softmax as the model's last layer
    readonly string? _modeDependentLayers;           // e.g. "2 BatchNorm, 1 dropout"; null when the model has none
    readonly List<(long Step, double Loss)> _losses = new();
    TrainingLoop? _loop;
    Func<Tensor, Tensor, Tensor>? _lossFn;
    bool? _logitsLoss;
    (Tensor O, Tensor Y, Tensor L)? _pending; // the last call of the wrapped loss, for Observe(step)
    int _validationInspections;
    long _lastStep = -1, _nextStep;
    bool _detached, _firstDone;
    bool _inOwnPass; // a forward pass of the doctor's own (probe pass, logits-loss test, recalibration): its hooks stay out
    // a loop of the reader's own (not a TrainingLoop, which records its steps itself): each training-mode forward pass
    // starts a step, recorded in the RunLedger when the next one starts (or at Detach) under the model's workload key
    RunLedger.StepMark? _ownLoopStep;
    string? _ownLoopWorkload;
    RunLedger.WorkloadKeys? _ownLoopKeys;

    TrainingDoctor(nn.Module<Tensor, Tensor> model, optim.Optimizer optimizer, DoctorOptions options)
    {
        _model = model;
        _optimizer = optimizer;
        Options = options;
        _lossFn = options.LossFunction;
        _logitsLoss = options.LogitsLoss;
        var weights = MeasurementBatch.WatchedWeights(model);
        _probe = new ProbePass(model, options, weights[0].Parameter.device); // the doctor's tensors live where the model does
        _deadUnits = new DeadUnitCount(model);
        _zeroGrad = ZeroGradWatch.Find(model, options.Every);
        _modeDependentLayers = ModeDependentLayers(model, _probe.BatchNorms.Count);
        _lastLayer = SquashingLastLayer(model);
        _detectors = new DoctorDetectors(options, _modeDependentLayers, _zeroGrad != null, _probe.BatchNorms.Count > 0);
        _measurement = new MeasurementBatch(weights, _detectors.SaturationEpsilon);
        Hook();
    }

    /// <summary>The model's BatchNorm and dropout layers in words, e.g. "2 BatchNorm, 1 dropout" (null: none).</summary>
    static string? ModeDependentLayers(nn.Module<Tensor, Tensor> model, int batchNorms)
    {
        int dropouts = model.named_modules().Count(m => m.module.GetType().Name.Contains("Dropout", StringComparison.Ordinal));
        if (batchNorms + dropouts == 0) return null;
        return string.Join(", ", new[] { batchNorms > 0 ? $"{batchNorms} BatchNorm" : null, dropouts > 0 ? $"{dropouts} dropout" : null }.Where(t => t != null));
    }

    /// <summary>The model's last leaf module when it is a Sigmoid or Softmax (null otherwise).</summary>
    static (string Name, string Type)? SquashingLastLayer(nn.Module<Tensor, Tensor> model)
    {
        var leaves = model.named_modules().Where(m => !m.module.children().Any()).ToList();
        return leaves.Count > 0 && leaves[^1].module is Sigmoid or Softmax ? (leaves[^1].name, leaves[^1].module.GetType().Name) : null;
    }

    /// <summary>The hooks: the model's forward pre-hook, then the parts' (BatchNorm layers, the zero_grad layer, ReLUs).</summary>
    void Hook()
    {
        var root = _model.register_forward_pre_hook((m, x) => { OnForward(x); return x; });
        _removers.Add(root.remove);
        _removers.AddRange(_probe.Hook());
        Func<bool> watching = () => !_detached && !_inOwnPass && is_grad_enabled();
        if (_zeroGrad != null) _removers.Add(_zeroGrad.Hook(watching));
        _removers.AddRange(_deadUnits.Hook(watching));
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
    public IReadOnlyList<Check> Checks => _detectors.Checks;

    /// <summary>Steps observed so far.</summary>
    public long Observations { get; private set; }

    /// <summary>Whether the loss was recognised as a logits loss (null until known).</summary>
    public bool? LogitsLoss => _logitsLoss;

    /// <summary>(step, training loss) of every observed step.</summary>
    public IReadOnlyList<(long Step, double Loss)> Losses => _losses;

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
        if (_probe.Inputs is null) _probe.CaptureInputs(ctx.Inputs, Options.ProbeSize);
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
            if (!_detached && !_inOwnPass && is_grad_enabled()) _pending = (o, y, l);
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
            if (!_detached) _detectors.ObserveMetricInputs(Math.Max(_lastStep, 0), yTrue, yPred);
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
                _detectors.InspectValidationLoss(Math.Max(_lastStep, 0), train, validationLoss, o.detach(), y);
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
        bool wasInOwnPass = _inOwnPass;
        using var ledger = RunLedger.Time(RunLedger.Probes);
        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = inference_mode(); // cheaper than no_grad per operation: nothing here is ever differentiated
            Observations++;
            double lossValue = LossValue(loss);
            _losses.Add((step, lossValue));
            _detectors.ObserveLoss(step, lossValue);
            if (!_firstDone) First(step, outputs, targets);
            bool measure = step % Options.Every == 0, batchNorm = _probe.BatchNorms.Count > 0 && step % Options.BatchNormEvery == 0;
            // the update of the last step, when the snapshot before it was taken (with the measurement's numbers when both are due)
            bool updateDue = _measurement.UpdateDue(step);
            if (updateDue && !measure && _measurement.UpdateRatioAlone() is { } median) _detectors.ObserveUpdateRatio(step - 1, median);
            if (measure) Measure(step, outputs, targets, lossValue, updateDue);
            else _measurement.ForgetSnapshot();
            if ((measure || batchNorm) && _probe.Inputs is not null) Probe(step, measure, batchNorm, outputs);
            _zeroGrad?.Keep(step);
            _lastStep = step;
            _nextStep = step + 1;
        }
        finally { _inOwnPass = wasInOwnPass; }
    }

    static double LossValue(Tensor loss) => loss.numel() != 1 ? double.NaN
        : loss.dtype == ScalarType.Float32 ? loss.item<float>() : loss.detach().to_type(ScalarType.Float64).item<double>();

    void First(long step, Tensor outputs, Tensor targets)
    {
        _firstDone = true;
        _probe.CaptureTargets(targets);
        _logitsLoss ??= DetectLogitsLoss(outputs, targets);
        _detectors.ObserveFirst(step, _logitsLoss == true ? _lastLayer : null, outputs, targets);
    }

    /// <summary>Softmax cross-entropy is shift-invariant per row; BCE-with-logits is compared with the reference.</summary>
    bool? DetectLogitsLoss(Tensor outputs, Tensor targets)
    {
        var o = outputs.detach();
        // no loss function known: class indices next to class scores are the cross-entropy convention
        if (_lossFn is not { } fn) return targets.dim() == 1 && !targets.is_floating_point() && o.dim() == 2 && o.shape[1] > 1;
        _inOwnPass = true;
        try
        {
            double Value(Tensor output, Tensor target) => fn(output, target).to_type(ScalarType.Float64).item<double>();
            if (o.dim() == 2 && o.shape[1] > 1)
            {
                double a = Value(o, targets), b = Value(o.Plus(1.0), targets), c = Value(o.Times(2.0).Plus(0.5), targets);
                return Math.Abs(a - b) <= 1e-5 * Math.Max(1, Math.Abs(a)) && Math.Abs(a - c) > 1e-6;
            }
            if (targets.numel() != o.numel()) return false;
            double loss = Value(o, targets);
            double reference = nn.functional.binary_cross_entropy_with_logits(o.reshape(targets.shape), targets.to_type(o.dtype)).to_type(ScalarType.Float64).item<double>();
            return Math.Abs(loss - reference) <= 1e-5 * Math.Max(1, Math.Abs(loss));
        }
        catch (Exception) { return null; }
        finally { _inOwnPass = false; }
    }

    /// <summary>A measured step: the measurement batch's numbers handed to the detectors, in one transfer.</summary>
    void Measure(long step, Tensor outputs, Tensor targets, double lossValue, bool withUpdate)
    {
        var m = _measurement.Read(step, outputs, _deadUnits.DeadUnits(), _zeroGrad, withUpdate);
        if (m.MedianUpdateRatio is { } median) _detectors.ObserveUpdateRatio(step - 1, median);
        if (m.ZeroGrad is { } zeroGrad) _detectors.ObserveZeroGrad(step, _zeroGrad!.Parameter, zeroGrad);
        _detectors.ObserveGradients(step, m);
        if (m.HasOutputs) _detectors.ObserveOutputs(step, m, outputs, _logitsLoss);
        // dying ReLUs: counted by the hooks during this step's forward pass (armed for it), else zero-gradient rows
        if (_deadUnits.HasRelu)
        {
            if (m.DeadUnits is { } dead && _deadUnits.Units > 0) _detectors.ObserveDeadUnits(step, dead, _deadUnits.Units, "activations");
        }
        else if (m.GradientNorms.Length > 0)
        {
            var (rows, deadRows) = _measurement.ZeroGradientRows();
            _detectors.ObserveDeadUnits(step, deadRows, rows, "gradients");
        }
        _deadUnits.Clear();
        _detectors.ObserveLossScale(step, lossValue, outputs, targets, _optimizer is SGD);
    }

    /// <summary>A probe pass (see <see cref="ProbePass"/>): the probe-loss detectors when measuring, the BatchNorm statistics when due.</summary>
    void Probe(long step, bool lossDetectors, bool batchNorm, Tensor outputs)
    {
        ProbeReading? reading;
        _inOwnPass = true;
        try { reading = _probe.Run(step, _lossFn, batchNorm); }
        finally { _inOwnPass = false; }
        if (reading is null) return;
        if (reading.HasLoss && lossDetectors)
            _detectors.ObserveProbeLoss(step, reading.EvalLoss, outputs, _logitsLoss, _probe.Targets!, _probe.ClassCounts);
        if (reading.BatchNorm is not null) _detectors.ObserveBatchNorm(step, reading);
    }

    void OnForward(Tensor x)
    {
        if (_detached || _inOwnPass || !_model.training) return;
        if (!is_grad_enabled())
        {
            // an evaluation in training mode (the doctor's own passes set _inOwnPass and never get here)
            if (_modeDependentLayers != null) _detectors.ObserveEvaluationInTrainingMode(Math.Max(_lastStep, 0), _modeDependentLayers);
            return;
        }
        if (_probe.Inputs is null) _probe.CaptureInputs(x, Options.ProbeSize);
        if (_loop is null) StartOwnLoopStep(x);
        _zeroGrad?.Arm(_nextStep);
        _deadUnits.Arm(_nextStep % Options.Every == 0);
    }

    /// <summary>
    /// Closes the step the last training-mode forward pass began and opens the next: the reader's loop is timed
    /// for the RunLedger from forward pass to forward pass, without the doctor's own time (its timers are subtracted).
    /// Inside a step the library times itself (the clinic's loops) nothing is opened.
    /// </summary>
    void StartOwnLoopStep(Tensor x)
    {
        EndOwnLoopStep();
        _ownLoopStep = RunLedger.MarkIfOutside();
        if (_ownLoopStep is not null) _ownLoopWorkload = (_ownLoopKeys ??= new(TrainingLoop.ModelText(_model, _optimizer))).For(x.shape);
    }

    /// <summary>Records the open step of the reader's loop, if any, in the RunLedger.</summary>
    void EndOwnLoopStep()
    {
        if (_ownLoopStep is { } started && _ownLoopWorkload is { } workload) RunLedger.StepSince(started, workload);
        _ownLoopStep = null;
    }

    /// <summary>
    /// The BatchNorm fix one call away: re-estimates the running statistics on <paramref name="batches"/> (see
    /// <see cref="BatchNormRecalibration.Run"/>); returns the number of batches used.
    /// </summary>
    public int RecalibrateBatchNorm(IEnumerable<Tensor> batches, int maxBatches = 100)
    {
        bool was = _inOwnPass;
        _inOwnPass = true;
        try { return BatchNormRecalibration.Run(_model, batches, maxBatches); }
        finally { _inOwnPass = was; }
    }

    /// <summary>The findings so far: table, timeline chart, text and JSON.</summary>
    public DoctorReport Report() => new(Checks, _losses, _detectors.ProbeLosses, Observations, Options, _detectors.Vitals);

    /// <summary>Extremes of the measured quantities so far (e.g. max_update_ratio): how close a run came to each threshold.</summary>
    public IReadOnlyDictionary<string, double> Vitals => _detectors.Vitals;

    /// <summary>Removes every hook and event handler; the model, optimiser and loop are as before attaching.</summary>
    public void Detach()
    {
        if (_detached) return;
        EndOwnLoopStep(); // the last step of the reader's loop
        _detached = true;
        foreach (var r in _removers) r();
        _removers.Clear();
        if (_loop != null) { _loop.AfterBackward -= OnLoopStep; _loop = null; }
        _measurement.Dispose();
        _zeroGrad?.Dispose();
        _deadUnits.Clear();
        _probe.Dispose();
        _pending = null;
    }

    public bool Detached => _detached;

    public void Dispose() => Detach();

    void ThrowIfDetached()
    {
        if (_detached) throw new InvalidOperationException("the doctor was detached; attach a new one");
    }
}
