using TorchSharp;
using TorchSharp.Modules;
using TrainingForensics.Training;
using static TorchSharp.torch;

namespace TrainingForensics.Probes;

/// <summary>
/// The per-weight numbers of training dynamics — ‖∇W‖₂, ‖W‖₂ and the update ‖W − W_before‖₂ (see
/// <see cref="WeightSnapshot"/>) — as scalars on each weight's device, read to the host together. The one
/// implementation behind <see cref="GradientNorms"/>, <see cref="UpdateRatios"/> and the training doctor, so all three
/// give the same numbers for the same weights.
/// </summary>
internal static class ParameterMeasurement
{
    /// <summary>‖<paramref name="t"/>‖₂ over all its entries: a scalar on its device, not yet read back.</summary>
    public static Tensor Norm(Tensor t) => linalg.vector_norm(t);

    /// <summary>
    /// ‖∇W‖₂ of each parameter that has a gradient, in the order given (those without one are left out): their names
    /// and the norms as scalars, not yet read back.
    /// </summary>
    public static (List<string> Names, List<Tensor> Norms) GradientNorms(IEnumerable<(string Name, Parameter Parameter)> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var names = new List<string>();
        var norms = new List<Tensor>();
        foreach (var (name, p) in parameters)
            if (p.grad is { } g) { names.Add(name); norms.Add(Norm(g)); }
        return (names, norms);
    }

    /// <summary>
    /// Scalars as one float64 vector on their device, for a single transfer. They are stacked in the first one's
    /// precision (any other converted to it first), then widened: float32 widens to float64 exactly.
    /// </summary>
    public static Tensor Stack(IReadOnlyList<Tensor> scalars)
    {
        ArgumentNullException.ThrowIfNull(scalars);
        if (scalars.Count == 0) throw new ArgumentException("nothing to stack: no scalars given", nameof(scalars));
        var dtype = scalars[0].dtype;
        return stack(scalars.Select(v => v.dtype == dtype ? v : v.to_type(dtype)).ToArray()).to_type(ScalarType.Float64);
    }

    /// <summary>A float64 vector's values on the host (one transfer; from a GPU through host memory).</summary>
    public static double[] ToHost(Tensor vector) => vector.cpu().data<double>().ToArray();

    /// <summary>Scalars read to the host in one transfer (see <see cref="Stack"/>).</summary>
    public static double[] Read(IReadOnlyList<Tensor> scalars) => scalars.Count == 0 ? Array.Empty<double>() : ToHost(Stack(scalars));

    /// <summary>The effective step size ‖ΔW‖/‖W_before‖; NaN when ‖W_before‖ is not positive (nothing to compare with).</summary>
    public static double UpdateRatio(double distance, double normBefore) => normBefore > 0 ? distance / normBefore : double.NaN;
}

/// <summary>
/// Weights as they were before an optimiser step, kept in buffers reused from one step to the next, so that after
/// the step the update ‖W − W_before‖ and its ratio to ‖W_before‖ can be measured. A weight with more entries than the
/// sample limit is measured on a fixed, evenly spread subset of them (see <see cref="MeasuredEntries"/>): cheaper to copy
/// and difference every step, and close enough for a ratio compared with a band of orders of magnitude.
/// </summary>
internal sealed class WeightSnapshot : IDisposable
{
    /// <summary>Sample limit that measures every weight whole.</summary>
    public const long Whole = long.MaxValue;

    readonly List<Tensor> _entries = new();  // views into the weights: the optimiser updates them in place
    readonly List<Tensor> _buffers = new();  // the entries as they were at Take
    readonly List<Tensor> _captured = new(); // the entries at the last Capture (made at the first)
    readonly double[] _normsBefore;
    bool _disposed;

    public WeightSnapshot(IEnumerable<Parameter> weights, long sampleLimit = Whole)
    {
        ArgumentNullException.ThrowIfNull(weights);
        if (sampleLimit < 1) throw new ArgumentOutOfRangeException(nameof(sampleLimit), sampleLimit, "the sample limit must be at least 1 entry");
        foreach (var w in weights)
        {
            var view = MeasuredEntries(w, sampleLimit); view.DetachFromDisposeScope(); _entries.Add(view);
            var buffer = empty_like(view); buffer.DetachFromDisposeScope(); _buffers.Add(buffer);
        }
        _normsBefore = new double[_entries.Count];
    }

    /// <summary>Number of weights.</summary>
    public int Count => _entries.Count;

    /// <summary>The step the snapshot was taken at; null while none is held.</summary>
    public long? Step { get; private set; }

    /// <summary>
    /// The entries of a weight that are measured: all of them up to <paramref name="sampleLimit"/>, else every k-th
    /// (16,384 to 32,768 entries; every row of a matrix with rows of ≥ k entries is in it). A view: it follows the weight.
    /// </summary>
    public static Tensor MeasuredEntries(Parameter weight, long sampleLimit)
    {
        ArgumentNullException.ThrowIfNull(weight);
        var flat = weight.detach().reshape(-1);
        long n = flat.shape[0];
        if (n <= sampleLimit) return flat;
        long k = (n + (1 << 14) - 1) >> 14;
        return flat.slice(0, 0, n, k);
    }

    /// <summary>‖W‖₂ of each weight now, on its measured entries: scalars on the weights' devices, not yet read back.</summary>
    public IEnumerable<Tensor> Norms()
    {
        ThrowIfDisposed();
        return _entries.Select(ParameterMeasurement.Norm);
    }

    /// <summary>
    /// Copies the measured entries as they are now. <paramref name="norms"/>: what <see cref="Norms"/> read in this
    /// state, kept as the denominators of the update ratios.
    /// </summary>
    public void Take(long step, ReadOnlySpan<double> norms)
    {
        ThrowIfDisposed();
        if (norms.Length != Count) throw new ArgumentException($"{norms.Length} norms given for {Count} weights", nameof(norms));
        for (int i = 0; i < Count; i++) _buffers[i].copy_(_entries[i]);
        norms.CopyTo(_normsBefore);
        Step = step;
    }

    /// <summary>‖W − W_before‖₂ of each weight since <see cref="Take"/>: scalars, not yet read back.</summary>
    public IEnumerable<Tensor> Distances()
    {
        ThrowIfDisposed();
        if (Step is null) throw new InvalidOperationException("no snapshot held: call Take before measuring an update");
        return _buffers.Zip(_entries, (before, now) => before.dist(now));
    }

    /// <summary>
    /// Copies the measured entries as they are now into buffers of their own, contiguous: one pass over a sampled
    /// weight (its entries every k-th are spread over all of its memory), after which <see cref="CapturedNorms"/>,
    /// <see cref="CapturedDistances"/> and <see cref="TakeCaptured"/> work on the small copies instead of three more passes.
    /// </summary>
    public void Capture()
    {
        ThrowIfDisposed();
        for (int i = 0; i < Count; i++)
        {
            if (_captured.Count <= i) { var b = empty_like(_buffers[i]); b.DetachFromDisposeScope(); _captured.Add(b); }
            _captured[i].copy_(_entries[i]);
        }
    }

    /// <summary>‖W‖₂ of each weight at the last <see cref="Capture"/>, on its measured entries: scalars, not yet read back.</summary>
    public IEnumerable<Tensor> CapturedNorms() => _captured.Take(Count).Select(ParameterMeasurement.Norm);

    /// <summary>‖W − W_before‖₂ of each weight between <see cref="Take"/>/<see cref="TakeCaptured"/> and the last <see cref="Capture"/>.</summary>
    public IEnumerable<Tensor> CapturedDistances()
    {
        if (Step is null) throw new InvalidOperationException("no snapshot held: call Take before measuring an update");
        return _buffers.Zip(_captured, (before, now) => before.dist(now));
    }

    /// <summary><see cref="Take"/> with the entries of the last <see cref="Capture"/>: the buffers change places, nothing is copied.</summary>
    public void TakeCaptured(long step, ReadOnlySpan<double> norms)
    {
        ThrowIfDisposed();
        if (norms.Length != Count) throw new ArgumentException($"{norms.Length} norms given for {Count} weights", nameof(norms));
        for (int i = 0; i < Count; i++) (_buffers[i], _captured[i]) = (_captured[i], _buffers[i]);
        norms.CopyTo(_normsBefore);
        Step = step;
    }

    /// <summary>‖W_before‖₂ of weight <paramref name="index"/> at the last <see cref="Take"/>.</summary>
    public double NormBefore(int index) => _normsBefore[index];

    /// <summary>‖ΔW‖/‖W_before‖ of weight <paramref name="index"/>, given its distance from <see cref="Distances"/>.</summary>
    public double Ratio(int index, double distance) => ParameterMeasurement.UpdateRatio(distance, _normsBefore[index]);

    /// <summary>Drops the snapshot (the buffers stay for the next one).</summary>
    public void Forget() => Step = null;

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Step = null;
        foreach (var t in _buffers.Concat(_entries).Concat(_captured)) t.Dispose();
        _buffers.Clear();
        _captured.Clear();
        _entries.Clear();
    }

    void ThrowIfDisposed()
    {
        if (_disposed) throw new ObjectDisposedException(nameof(WeightSnapshot), "the snapshot's buffers were released");
    }
}

/// <summary>
/// Per-layer gradient norms ‖∇W‖₂ after each backward pass, logged into the step record as "grad_norm/&lt;param&gt;"
/// (e.g. grad_norm/fc1.weight) and kept as series. Attach with <see cref="AttachTo"/>; the constructor's
/// <c>every</c> thins the cadence when steps are many.
/// </summary>
public sealed class GradientNorms
{
    readonly int _every;
    readonly Dictionary<string, List<(long Step, double Value)>> _series = new();
    readonly Func<string, bool> _include;

    public GradientNorms(int every = 1, Func<string, bool>? include = null)
    {
        if (every < 1) throw new ArgumentOutOfRangeException(nameof(every), every, "cadence must be at least 1");
        _every = every;
        _include = include ?? (name => name.EndsWith("weight"));
    }

    /// <summary>Parameter name → (step, norm) in step order.</summary>
    public IReadOnlyDictionary<string, List<(long Step, double Value)>> Series => _series;

    public GradientNorms AttachTo(TrainingLoop loop)
    {
        loop.AfterBackward += Observe;
        return this;
    }

    public void DetachFrom(TrainingLoop loop) => loop.AfterBackward -= Observe;

    /// <summary>Measures now (gradients must be present); a parameter without a gradient counts as 0.</summary>
    public void Observe(StepContext ctx)
    {
        if (ctx.Step % _every != 0) return;
        using var scope = NewDisposeScope();
        var included = ctx.Model.named_parameters().Where(p => _include(p.name)).ToList();
        var (names, norms) = ParameterMeasurement.GradientNorms(included);
        var values = ParameterMeasurement.Read(norms);
        int next = 0;
        foreach (var (name, _) in included)
        {
            double norm = next < names.Count && names[next] == name ? values[next++] : 0.0;
            ctx.Log("grad_norm/" + name, norm);
            if (!_series.TryGetValue(name, out var list)) _series[name] = list = new();
            list.Add((ctx.Step, norm));
        }
    }
}

/// <summary>
/// The effective step size per layer, ‖ΔW‖/‖W‖ of each optimizer step (logged as "update_ratio/&lt;param&gt;"),
/// on whole weights. A healthy SGD run sits around 1e-3; far below means the optimiser barely moves (e.g. a loss 10× too small).
/// </summary>
public sealed class UpdateRatios
{
    readonly int _every;
    readonly Func<string, bool> _include;
    readonly Dictionary<string, List<(long Step, double Value)>> _series = new();
    List<string>? _names;
    WeightSnapshot? _snapshot; // made at the first measured step, for the included weights of the loop's model

    public UpdateRatios(int every = 1, Func<string, bool>? include = null)
    {
        if (every < 1) throw new ArgumentOutOfRangeException(nameof(every), every, "cadence must be at least 1");
        _every = every;
        _include = include ?? (name => name.EndsWith("weight"));
    }

    public IReadOnlyDictionary<string, List<(long Step, double Value)>> Series => _series;

    public UpdateRatios AttachTo(TrainingLoop loop)
    {
        loop.AfterBackward += Before;
        loop.AfterStep += After;
        return this;
    }

    public void DetachFrom(TrainingLoop loop)
    {
        loop.AfterBackward -= Before;
        loop.AfterStep -= After;
        _snapshot?.Dispose();
        _snapshot = null;
        _names = null;
    }

    void Before(StepContext ctx)
    {
        if (ctx.Step % _every != 0) return;
        if (_snapshot is null)
        {
            var included = ctx.Model.named_parameters().Where(p => _include(p.name)).ToList();
            _names = included.Select(p => p.name).ToList();
            using (NewDisposeScope()) _snapshot = new WeightSnapshot(included.Select(p => p.parameter)); // lives across steps
        }
        using var scope = NewDisposeScope();
        _snapshot.Take(ctx.Step, ParameterMeasurement.Read(_snapshot.Norms().ToList()));
    }

    void After(StepContext ctx)
    {
        if (_snapshot?.Step != ctx.Step) return;
        using var scope = NewDisposeScope();
        var distances = ParameterMeasurement.Read(_snapshot.Distances().ToList());
        for (int i = 0; i < distances.Length; i++)
        {
            double ratio = _snapshot.Ratio(i, distances[i]);
            ctx.Log("update_ratio/" + _names![i], ratio);
            if (!_series.TryGetValue(_names[i], out var list)) _series[_names[i]] = list = new();
            list.Add((ctx.Step, ratio));
        }
        _snapshot.Forget();
    }
}
