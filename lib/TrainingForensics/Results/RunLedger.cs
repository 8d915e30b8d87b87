using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace TrainingForensics.Results;

/// <summary>
/// Where a run's time goes: a process-wide tally of the training steps taken per workload (model, optimiser and batch shape)
/// with each step's own time, and of the seconds spent per category (evaluation, probes, host reads, chart building,
/// compiling, data loading). The training loops, evaluations, probes, charts and data loaders record into it; the
/// headless runner writes it beside the figures (NAME.ledger.json) and the benchmark's notebook-efficiency table
/// reads it. Timers nest: each records only its own time, without the timers opened inside it (a probe running
/// inside a training step counts as probe time, not step time). Thread-safe; runs trained side by side record
/// from their own threads.
/// </summary>
/// <remarks>
/// Each timer records two numbers: its thread's own seconds, and its share of the wall clock. While k runs train
/// side by side (<see cref="Worker"/>), a second of one thread's time is 1/k of a wall second, so the shares of
/// all categories add up to the wall time they cover, however many threads ran; thread seconds of two runs side by
/// side add up to twice that.
/// </remarks>
public static class RunLedger
{
    public const string Training = "training";
    public const string Evaluation = "evaluation";
    public const string Probes = "probes";
    public const string HostReads = "host reads";
    public const string Charts = "charts";
    public const string Compile = "compile";
    public const string DataLoading = "data loading";

    /// <summary>Step times kept per workload for its median (enough for a steady median; memory stays small).</summary>
    const int StepSamples = 20_000;

    static readonly object Gate = new();
    static readonly Dictionary<string, double> Seconds = new();
    static readonly Dictionary<string, double> WallShares = new();
    static readonly Dictionary<string, Workload> Workloads = new();
    [ThreadStatic] static Timer? _open; // innermost open timer of this thread
    [ThreadStatic] static double _closedAtTop, _closedAtTopShare; // whole seconds and shares of this thread's outermost timers closed so far

    // the share clock: ∫ dt / max(1, workers running); it advances at wall speed with none or one worker, at half speed with two
    static readonly object ClockGate = new();
    static long _clockTicks = Stopwatch.GetTimestamp();
    static double _clockShare;
    static int _workers;

    sealed class Workload
    {
        public long Steps;
        public double Seconds;
        public double WallShare;
        public readonly List<double> Samples = new();
    }

    // timestamps to seconds without TimeSpan's 100 ns rounding (a step's time and its share then agree to the last digits)
    static double Elapsed(long from, long to) => (to - from) / (double)Stopwatch.Frequency;

    /// <summary>The share clock at the timestamp <paramref name="ticks"/> (seconds); with no runs side by side it advances as the timestamps do.</summary>
    static double ShareAt(long ticks)
    {
        lock (ClockGate) return _clockShare + Elapsed(_clockTicks, ticks) / Math.Max(1, _workers);
    }

    static void ChangeWorkers(int delta)
    {
        lock (ClockGate)
        {
            long now = Stopwatch.GetTimestamp();
            _clockShare += Elapsed(_clockTicks, now) / Math.Max(1, _workers);
            _clockTicks = now;
            _workers += delta;
        }
    }

    /// <summary>
    /// Marks the calling thread as one of the runs trained side by side until disposed (<see cref="Training.ConcurrentRuns"/>
    /// does it for each of its workers): while k are marked, the timers of each count 1/k of their time as wall share.
    /// </summary>
    public static IDisposable Worker()
    {
        ChangeWorkers(+1);
        return new WorkerMark();
    }

    sealed class WorkerMark : IDisposable
    {
        int _done;
        public void Dispose() { if (Interlocked.Exchange(ref _done, 1) == 0) ChangeWorkers(-1); }
    }

    /// <summary>
    /// Starts timing <paramref name="category"/> until the returned timer is disposed:
    /// <c>using var _ = RunLedger.Time(RunLedger.Evaluation);</c>.
    /// </summary>
    public static Timer Time(string category) => new(category, null);

    /// <summary>Starts timing one training step of <paramref name="workload"/> (e.g. "Sequential, 235,146 parameters, SGD · batch [32×784]", see <see cref="WorkloadKey"/>).</summary>
    public static Timer Step(string workload) => new(Training, workload);

    /// <summary>The workload key of a step: the model in words and the batch's shape, e.g. "Sequential, 235,146 parameters, SGD · batch [32×784]".</summary>
    public static string WorkloadKey(string model, IEnumerable<long> batchShape) => $"{model} · batch [{string.Join("×", batchShape)}]";

    /// <summary>
    /// The workload keys of one model's steps (<see cref="WorkloadKey"/>), made once per batch shape: a training loop
    /// asks every step, and the shape rarely changes (the last, smaller batch of an epoch).
    /// </summary>
    public sealed class WorkloadKeys(string model)
    {
        long[]? _shape;
        string _key = "";

        /// <summary>The key of a step on a batch of <paramref name="batchShape"/>.</summary>
        public string For(long[] batchShape)
        {
            if (_shape is null || !_shape.AsSpan().SequenceEqual(batchShape)) (_shape, _key) = (batchShape, WorkloadKey(model, batchShape));
            return _key;
        }
    }

    /// <summary>
    /// A point in this thread's time for <see cref="StepSince"/>, or null while one of the ledger's timers is open here
    /// (a step inside a library loop, an evaluation, a probe: that code times itself).
    /// </summary>
    public static StepMark? MarkIfOutside()
    {
        if (_open != null) return null;
        long now = Stopwatch.GetTimestamp();
        return new StepMark(Environment.CurrentManagedThreadId, now, ShareAt(now), _closedAtTop, _closedAtTopShare);
    }

    /// <summary>
    /// Records one training step of <paramref name="workload"/> that ran from <paramref name="from"/> until now in a loop
    /// the library does not own (a notebook's own loop, seen by the doctor attached to it), less the ledger's timers that
    /// ran in between (the doctor's probes, an evaluation): the loop's whole iteration, batch and loss read-back included.
    /// Nothing is recorded on another thread than the mark's, or while a timer is open here.
    /// </summary>
    public static void StepSince(StepMark from, string workload)
    {
        if (_open != null || from.Thread != Environment.CurrentManagedThreadId) return;
        long now = Stopwatch.GetTimestamp();
        double seconds = Elapsed(from.Ticks, now) - (_closedAtTop - from.ClosedAtTop);
        double share = ShareAt(now) - from.Share - (_closedAtTopShare - from.ClosedAtTopShare);
        Add(Training, workload, Math.Max(0, seconds), Math.Max(0, share));
    }

    /// <summary>Where <see cref="MarkIfOutside"/> was called: thread, timestamp, share clock, the thread's timers closed by then.</summary>
    public readonly record struct StepMark(int Thread, long Ticks, double Share, double ClosedAtTop, double ClosedAtTopShare);

    /// <summary>A running timer (see <see cref="Time"/>); dispose it once.</summary>
    public sealed class Timer : IDisposable
    {
        readonly string _category;
        readonly string? _workload;
        readonly Timer? _parent;
        readonly long _start;
        readonly double _startShare;
        double _inner, _innerShare; // seconds and wall share of timers opened inside this one
        bool _done;

        internal Timer(string category, string? workload)
        {
            _category = category;
            _workload = workload;
            _parent = _open;
            _open = this;
            _start = Stopwatch.GetTimestamp();
            _startShare = ShareAt(_start);
        }

        public void Dispose()
        {
            if (_done) return;
            _done = true;
            long now = Stopwatch.GetTimestamp();
            double total = Elapsed(_start, now), share = ShareAt(now) - _startShare;
            if (_open == this) _open = _parent;
            if (_parent != null) { _parent._inner += total; _parent._innerShare += share; }
            else { _closedAtTop += total; _closedAtTopShare += share; }
            Add(_category, _workload, Math.Max(0, total - _inner), Math.Max(0, share - _innerShare));
        }
    }

    static void Add(string category, string? workload, double seconds, double wallShare)
    {
        lock (Gate)
        {
            Seconds[category] = Seconds.GetValueOrDefault(category) + seconds;
            WallShares[category] = WallShares.GetValueOrDefault(category) + wallShare;
            if (workload == null) return;
            if (!Workloads.TryGetValue(workload, out var w)) Workloads[workload] = w = new Workload();
            w.Steps++;
            w.Seconds += seconds;
            w.WallShare += wallShare;
            if (w.Samples.Count < StepSamples) w.Samples.Add(seconds);
        }
    }

    /// <summary>Forgets everything recorded (the runner calls it before each notebook).</summary>
    public static void Reset()
    {
        lock (Gate) { Seconds.Clear(); WallShares.Clear(); Workloads.Clear(); }
    }

    /// <summary>Training steps recorded for <paramref name="workload"/> (0 when none).</summary>
    public static long StepsOf(string workload)
    {
        lock (Gate) return Workloads.TryGetValue(workload, out var w) ? w.Steps : 0;
    }

    /// <summary>Training steps recorded over all workloads.</summary>
    public static long TotalSteps
    {
        get { lock (Gate) return Workloads.Values.Sum(w => w.Steps); }
    }

    /// <summary>Seconds recorded for <paramref name="category"/> (own time only).</summary>
    public static double SecondsOf(string category)
    {
        lock (Gate) return Seconds.GetValueOrDefault(category);
    }

    /// <summary>What was recorded, as a snapshot.</summary>
    public static LedgerSnapshot Snapshot()
    {
        lock (Gate)
            return new LedgerSnapshot(
                new Dictionary<string, double>(Seconds),
                Workloads.OrderBy(w => w.Key, StringComparer.Ordinal)
                    .Select(w => new WorkloadSteps(w.Key, w.Value.Steps, w.Value.Seconds, Median(w.Value.Samples)) { WallShareSeconds = w.Value.WallShare }).ToList())
            { WallShares = new Dictionary<string, double>(WallShares) };
    }

    static double Median(List<double> v)
    {
        if (v.Count == 0) return double.NaN;
        var s = v.ToArray();
        Array.Sort(s);
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    /// <summary>The snapshot as JSON (what tf-run writes as NAME.ledger.json).</summary>
    public static string ToJson(string notebook) => Snapshot().ToJson(notebook);
}

/// <summary>
/// One workload's training steps: how many, their total own time (thread seconds), the median time of one step, and
/// their share of the wall clock (<see cref="RunLedger"/>: thread seconds ÷ the runs side by side).
/// </summary>
public sealed record WorkloadSteps(string Workload, long Steps, double Seconds, double MedianStepSeconds)
{
    /// <summary>The steps' share of the wall clock: equal to <see cref="Seconds"/> when they ran one run at a time.</summary>
    public double WallShareSeconds { get; init; } = double.NaN;

    /// <summary>How many runs were training at once, on average, while these steps ran (1: one at a time).</summary>
    public double Concurrency => WallShareSeconds > 0 && Seconds > 0 ? Seconds / WallShareSeconds : 1;

    /// <summary>Steps × the median step time: the thread time of the run's training at its typical step rate, without the slow outliers.</summary>
    public double PureTrainingThreadSeconds => double.IsNaN(MedianStepSeconds) ? 0 : Steps * MedianStepSeconds;

    /// <summary>
    /// The wall time of the same steps at the median rate, with as many runs side by side as there were:
    /// <see cref="PureTrainingThreadSeconds"/> ÷ <see cref="Concurrency"/>.
    /// </summary>
    public double PureTrainingSeconds => PureTrainingThreadSeconds / Concurrency;
}

/// <summary>A copy of the <see cref="RunLedger"/>'s tallies.</summary>
public sealed record LedgerSnapshot(IReadOnlyDictionary<string, double> Seconds, IReadOnlyList<WorkloadSteps> Workloads)
{
    /// <summary>Each category's share of the wall clock (<see cref="RunLedger"/>); equal to <see cref="Seconds"/> where nothing ran side by side.</summary>
    public IReadOnlyDictionary<string, double> WallShares { get; init; } = new Dictionary<string, double>();

    /// <summary>Thread seconds of <paramref name="category"/> (two runs side by side count twice).</summary>
    public double SecondsOf(string category) => Seconds.GetValueOrDefault(category);
    /// <summary>Wall seconds of <paramref name="category"/>: its thread seconds divided among the runs that ran at once.</summary>
    public double WallSecondsOf(string category) => WallShares.TryGetValue(category, out var v) ? v : SecondsOf(category);
    public long TotalSteps => Workloads.Sum(w => w.Steps);
    public double PureTrainingSeconds => Workloads.Sum(w => w.PureTrainingSeconds);

    public string ToJson(string notebook) => JsonSerializer.Serialize(new
    {
        notebook,
        seconds = Seconds.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToDictionary(kv => kv.Key, kv => kv.Value),
        wall_seconds = WallShares.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToDictionary(kv => kv.Key, kv => kv.Value),
        workloads = Workloads.Select(w => new
        {
            workload = w.Workload, steps = w.Steps, seconds = w.Seconds, wall_seconds = double.IsNaN(w.WallShareSeconds) ? w.Seconds : w.WallShareSeconds,
            median_step_seconds = double.IsNaN(w.MedianStepSeconds) ? 0 : w.MedianStepSeconds,
        }),
    }, new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n"; // workload names as written (·, ×)

    /// <summary>Reads what <see cref="ToJson"/> wrote.</summary>
    public static LedgerSnapshot FromJson(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        var seconds = root.GetProperty("seconds").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetDouble());
        var wall = root.TryGetProperty("wall_seconds", out var ws) ? ws.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetDouble()) : seconds;
        var workloads = root.GetProperty("workloads").EnumerateArray()
            .Select(w => new WorkloadSteps(w.GetProperty("workload").GetString()!, w.GetProperty("steps").GetInt64(), w.GetProperty("seconds").GetDouble(), w.GetProperty("median_step_seconds").GetDouble())
            {
                WallShareSeconds = w.TryGetProperty("wall_seconds", out var s) ? s.GetDouble() : w.GetProperty("seconds").GetDouble(),
            })
            .ToList();
        return new LedgerSnapshot(seconds, workloads) { WallShares = wall };
    }

    public override string ToString() => string.Join(", ", Seconds.Select(kv => $"{kv.Key} {kv.Value.ToString("F2", CultureInfo.InvariantCulture)} s"));
}
