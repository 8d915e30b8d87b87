using TorchSharp;
using TrainingForensics.Probes;
using static TorchSharp.torch;

namespace TrainingForensics.Diagnostics.Doctor;

/// <summary>
/// The doctor's detectors, built from its options for one model, and its vitals (the extremes of the quantities they
/// are fed). The doctor's other parts measure; the methods here hand those numbers to the detectors concerned.
/// </summary>
internal sealed class DoctorDetectors
{
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
    readonly BatchNormDriftCheck? _batchNorm;

    readonly Dictionary<string, double> _vitals = new();
    readonly List<(long Step, double Loss)> _probeLosses = new();
    double _bestProbeLoss;
    int _lossScaleReads;

    /// <param name="options">Thresholds and cadence.</param>
    /// <param name="modeDependentLayers">The model's BatchNorm and dropout layers in words (null: none, the eval-mode check is off).</param>
    /// <param name="watchesZeroGrad">Whether a layer for the zero_grad check was found.</param>
    /// <param name="hasBatchNorm">Whether the model has BatchNorm layers.</param>
    public DoctorDetectors(DoctorOptions options, string? modeDependentLayers, bool watchesZeroGrad, bool hasBatchNorm)
    {
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
        if (hasBatchNorm) _batchNorm = new BatchNormDriftCheck { RelativeGapThreshold = options.RelativeGapThreshold, Patience = Math.Max(2, p - 1) };

        // the order the report lists them in
        var list = new List<Check> { _nonFinite, _squashingLayer, _intoLogits, _saturated, _frozen, _floor, _vanishing, _exploding, _dying, _updates, _diverging };
        if (_lossScale != null) list.Add(_lossScale);
        list.Add(_validationScale);
        list.Add(_metricShapes);
        if (modeDependentLayers != null) list.Add(_evalInTrainMode);
        if (watchesZeroGrad) list.Add(_notZeroed);
        if (_batchNorm != null) list.Add(_batchNorm);
        Checks = list;
    }

    /// <summary>Every detector that applies to this model, in report order.</summary>
    public IReadOnlyList<Check> Checks { get; }

    /// <summary>Extremes of the measured quantities so far (e.g. max_update_ratio).</summary>
    public IReadOnlyDictionary<string, double> Vitals => _vitals;

    /// <summary>(step, eval-mode loss on the probe batch) at each measurement.</summary>
    public IReadOnlyList<(long Step, double Loss)> ProbeLosses => _probeLosses;

    /// <summary>How close to 0 or 1 an output counts as saturated.</summary>
    public double SaturationEpsilon => _saturated.Epsilon;

    void Vital(string name, double value, bool max = true)
    {
        if (!double.IsFinite(value)) return;
        _vitals[name] = _vitals.TryGetValue(name, out var v) ? (max ? Math.Max(v, value) : Math.Min(v, value)) : value;
    }

    /// <summary>Every step's training loss value.</summary>
    public void ObserveLoss(long step, double loss) => _nonFinite.ObserveLoss(step, loss);

    /// <summary>
    /// The first observed step: a squashing last layer (<paramref name="squashingLastLayer"/>, given when the loss is
    /// a logits loss) and the shapes of the loss's targets and outputs.
    /// </summary>
    public void ObserveFirst(long step, (string Name, string Type)? squashingLastLayer, Tensor outputs, Tensor targets)
    {
        if (squashingLastLayer is { } last) _squashingLayer.Observe(step, last.Name, last.Type);
        _metricShapes.Observe(step, targets, outputs, "loss targets vs outputs");
    }

    /// <summary>A metric's (labels, predictions).</summary>
    public void ObserveMetricInputs(long step, Tensor labels, Tensor predictions) => _metricShapes.Observe(step, labels, predictions, "metric");

    /// <summary>A validation loss compared with the training loss on the same outputs and targets.</summary>
    public void InspectValidationLoss(long step, Func<Tensor, Tensor, Tensor> trainingLoss, Func<Tensor, Tensor, Tensor> validationLoss, Tensor outputs, Tensor targets)
    {
        try { _validationScale.Inspect(trainingLoss, validationLoss, outputs, targets, step); }
        catch (ArgumentException) { } // shapes a squared-error reading cannot take: nothing to compare
    }

    /// <summary>A forward pass without gradients in training mode through <paramref name="layers"/>.</summary>
    public void ObserveEvaluationInTrainingMode(long step, string layers) => _evalInTrainMode.Observe(step, layers);

    /// <summary>The median update ratio of the update made at <paramref name="step"/>.</summary>
    public void ObserveUpdateRatio(long step, double median)
    {
        _updates.Observe(step, median);
        Vital("max_update_ratio", median);
        Vital("min_update_ratio", median, max: false);
    }

    /// <summary>The zero_grad check's norms on the bias <paramref name="parameter"/>.</summary>
    public void ObserveZeroGrad(long step, string parameter, BiasGradientNorms n) =>
        _notZeroed.Observe(step, parameter, n.Accumulated, n.Leftover, n.LeftoverVsPrevious, n.Update);

    /// <summary>Gradient and weight norms: non-finite values, vanishing and exploding gradients.</summary>
    public void ObserveGradients(long step, Measurement m)
    {
        var norms = m.GradientNorms;
        if (norms.Length == 0) { _nonFinite.ObserveTensors(step, 0, m.WeightSquaredNorm); return; }
        double gradSq = norms.Sum(v => v * v);
        _nonFinite.ObserveTensors(step, gradSq, m.WeightSquaredNorm);
        _vanishing.Observe(step, norms[0], norms[^1], m.GradientNames[0], m.GradientNames[^1]);
        _exploding.Observe(step, Math.Sqrt(gradSq));
        if (double.IsFinite(_exploding.Baseline) && _exploding.Baseline > 0) Vital("max_grad_growth", Math.Sqrt(gradSq) / _exploding.Baseline);
        Vital("min_first_grad_norm", norms[0], max: false);
    }

    /// <summary>The outputs the loss was given: the saturated fraction, and whether they look like probabilities.</summary>
    public void ObserveOutputs(long step, Measurement m, Tensor outputs, bool? logitsLoss)
    {
        _saturated.Observe(step, m.SaturatedFraction);
        Vital("max_saturated_fraction", m.SaturatedFraction);
        if (logitsLoss != true) return;
        if (m.OutputMin >= 0 && m.OutputMax <= 1) _intoLogits.Observe(step, outputs);
        else if (!_intoLogits.Fired) _intoLogits.Reset();
    }

    /// <summary>Dead units among <paramref name="units"/>, from ReLU outputs ("activations") or zero gradient rows ("gradients").</summary>
    public void ObserveDeadUnits(long step, long dead, long units, string source)
    {
        double fraction = units > 0 ? (double)dead / units : double.NaN;
        _dying.Observe(step, fraction, units, source);
        if (source == "activations") Vital("max_dead_relu_fraction", fraction);
    }

    /// <summary>The loss scale, on the first three measured steps under a scale-sensitive optimiser (plain SGD).</summary>
    public void ObserveLossScale(long step, double loss, Tensor outputs, Tensor targets, bool scaleSensitiveOptimizer)
    {
        if (_lossScale == null || !double.IsFinite(loss) || !scaleSensitiveOptimizer || _lossScaleReads++ >= 3) return;
        try
        {
            var reading = LossScale.Read(loss, outputs, targets, _lossScale.Expected);
            if (reading.Matches.Count > 0 && !reading.AsExpected) _lossScale.Inspect(loss, outputs, targets, step);
        }
        catch (ArgumentException) { } // not a squared-error loss on these shapes
    }

    /// <summary>
    /// The eval-mode loss on the probe batch: frozen, diverging, and at an analytic floor (a logits loss on class
    /// indices: <paramref name="classCounts"/> gives the probe targets' counts for a number of classes).
    /// </summary>
    public void ObserveProbeLoss(long step, double loss, Tensor outputs, bool? logitsLoss, Tensor probeTargets, Func<long, long[]> classCounts)
    {
        _probeLosses.Add((step, loss));
        _bestProbeLoss = _probeLosses.Count == 1 ? loss : Math.Min(_bestProbeLoss, loss); // as Min over the list (NaN propagates)
        Vital("max_probe_loss_over_best", loss / Math.Max(1e-12, _bestProbeLoss));
        _frozen.Observe(step, loss);
        _diverging.Observe(step, loss);
        if (logitsLoss != true || probeTargets.dim() != 1 || probeTargets.is_floating_point() || !double.IsFinite(loss)) return;
        long classes = Math.Max(2, outputs.dim() == 2 ? outputs.shape[1] : 2);
        if (classes <= 1000) _floor.Observe(step, loss, classCounts(classes));
    }

    /// <summary>The BatchNorm statistics of a probe pass, and the train/eval gap of its two losses.</summary>
    public void ObserveBatchNorm(long step, ProbeReading reading)
    {
        var layers = reading.BatchNorm!;
        _batchNorm!.Observe(step, layers);
        Vital("max_bn_var_ratio", _batchNorm.LastVarRatio);
        Vital("max_bn_mean_shift", _batchNorm.LastMeanShift);
        double evalLoss = reading.EvalLoss, trainLoss = reading.TrainLoss;
        if (!double.IsFinite(evalLoss) || !double.IsFinite(trainLoss) || trainLoss <= 0) return;
        var gap = new TrainEvalGapResult(step, evalLoss, trainLoss, double.NaN, double.NaN, double.NaN, double.NaN);
        _batchNorm.ObserveGap(gap, layers[0].Momentum);
        Vital("max_relative_train_eval_gap", gap.RelativeGap);
    }
}
