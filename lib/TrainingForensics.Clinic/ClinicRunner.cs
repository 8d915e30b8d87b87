using System.Diagnostics;
using TrainingForensics.Diagnostics.Doctor;
using TrainingForensics.Results;
using TrainingForensics.Setup;
using TrainingForensics.Training;
using static TorchSharp.torch;

namespace TrainingForensics.Clinic;

/// <summary>Runs the <see cref="TrainingDoctor"/> over a suite of training configurations and scores it.</summary>
public static class ClinicRunner
{
    /// <summary>
    /// Trains one case on <paramref name="device"/> (default: the CPU), instrumented when <paramref name="options"/> is
    /// given. Returns the doctor's report (null when uninstrumented), the losses and the time.
    /// </summary>
    public static (DoctorReport? Report, List<double> Losses, double Seconds) Train(ClinicCase c, int seed, DoctorOptions? options, int? steps = null, Device? device = null) =>
        Prepare(c, seed, options, steps, device).Train();

    /// <summary>
    /// <see cref="Train"/> in two halves: this reseeds, builds the case (weights drawn from the global seed) and attaches
    /// the doctor; the returned training draws no random number from the global generator unless
    /// <see cref="PreparedCase.DrawsGlobalRandomNumbers"/> (a dropout layer), so prepared cases without one can train side
    /// by side with the numbers they give alone.
    /// </summary>
    public static PreparedCase Prepare(ClinicCase c, int seed, DoctorOptions? options, int? steps = null, Device? device = null)
    {
        TorchEnvironment.Reseed(seed);
        var run = device ?? CPU;
        var s = c.Setup(seed, run);
        TrainingDoctor? doctor = null;
        try
        {
            if (options != null) doctor = TrainingDoctor.Attach(s.Model, s.Optimizer, options);
        }
        catch
        {
            s.Owned?.Dispose();
            s.Model.Dispose();
            throw;
        }
        int n = steps ?? c.Steps;
        // dropout draws its masks from libtorch's global generator: such a case must train alone, right after its reseed
        bool global = s.Model.modules().Any(m => m.GetType().Name.Contains("Dropout", StringComparison.Ordinal));
        return new PreparedCase(c, global, () =>
        {
            var watch = Stopwatch.StartNew();
            try
            {
                var losses = s.Hookup == ClinicHookup.Loop ? TrainInLoop(c, s, doctor, n, run) : TrainByHand(c, s, doctor, n, run);
                var report = doctor?.Report();
                return (report, losses, watch.Elapsed.TotalSeconds);
            }
            finally
            {
                doctor?.Detach();
                s.Owned?.Dispose();
                s.Model.Dispose();
            }
        });
    }

    /// <summary>A <see cref="TrainingLoop"/> with the doctor attached to it (which always zeroes gradients).</summary>
    static List<double> TrainInLoop(ClinicCase c, ClinicSetup s, TrainingDoctor? doctor, int steps, Device device)
    {
        if (!s.ZeroGrad) throw new ArgumentException($"case '{c.Name}': the TrainingLoop always zeroes gradients; use the hook-up ClinicHookup.{nameof(ClinicHookup.Wrap)}");
        var losses = new List<double>();
        // a diverging case is data for the doctor (its NaN check must see it), not an error of the clinic
        var loop = new TrainingLoop(s.Model, s.Optimizer, s.Loss, c.Name) { StopOnNonFiniteLoss = false };
        doctor?.AttachTo(loop);
        using var e = s.Batches.GetEnumerator();
        for (long step = 0; step < steps; step++)
        {
            using var scope = NewDisposeScope();
            if (!e.MoveNext()) throw new InvalidOperationException($"case '{c.Name}': the batches ran out");
            losses.Add(loop.Step(e.Current.X, e.Current.Y).Loss);
            Evaluate(s, doctor, step, device);
        }
        return losses;
    }

    /// <summary>A hand-written loop, with the doctor given the wrapped loss or the tensors (see <see cref="ClinicHookup"/>).</summary>
    static List<double> TrainByHand(ClinicCase c, ClinicSetup s, TrainingDoctor? doctor, int steps, Device device)
    {
        var losses = new List<double>();
        bool wrap = s.Hookup == ClinicHookup.Wrap;
        var lossFn = doctor != null && wrap ? doctor.Loss(s.Loss) : s.Loss;
        var workloads = new RunLedger.WorkloadKeys(TrainingLoop.ModelText(s.Model, s.Optimizer));
        using var e = s.Batches.GetEnumerator();
        for (long step = 0; step < steps; step++)
        {
            using var scope = NewDisposeScope();
            if (!e.MoveNext()) throw new InvalidOperationException($"case '{c.Name}': the batches ran out");
            var (x, y) = e.Current;
            using var ledger = RunLedger.Step(workloads.For(x.shape));
            s.Model.train();
            if (s.ZeroGrad || step == 0) s.Optimizer.zero_grad();
            var outputs = s.Model.call(x);
            var loss = lossFn(outputs, y);
            loss.backward();
            if (doctor != null)
            {
                if (wrap) doctor.Observe(step);
                else doctor.Observe(step, outputs, y, loss);
            }
            s.Optimizer.step();
            using (RunLedger.Time(RunLedger.HostReads)) losses.Add(loss.item<float>());
            ledger.Dispose(); // the step ends here: the evaluation below is not training
            Evaluate(s, doctor, step, device);
        }
        return losses;
    }

    static void Evaluate(ClinicSetup s, TrainingDoctor? doctor, long step, Device device)
    {
        if (s.Evaluate is null || s.EvaluateEvery <= 0 || (step + 1) % s.EvaluateEvery != 0) return;
        using var ledger = RunLedger.Time(RunLedger.Evaluation);
        using var scope = NewDisposeScope();
        s.Evaluate(new ClinicEvaluation
        {
            Model = s.Model, Device = device, Step = step,
            Metric = m => doctor?.Metric(m) ?? m,
            ValidationLoss = l => doctor?.ValidationLoss(l) ?? l,
        });
        s.Model.train();
    }

    /// <summary>
    /// Runs every case with the doctor attached on <paramref name="device"/> (default: the CPU) and scores it; then
    /// measures the overhead there (one workload at a time: a timing). Cases train side by side,
    /// <paramref name="workers"/> at a time (default <see cref="ConcurrentRuns.DefaultWorkers"/>), each with the numbers it
    /// gives alone: they are prepared one by one in order, and a case whose model draws from the global generator
    /// (dropout) trains right after its own preparation, before the others start.
    /// </summary>
    public static ClinicReport Run(IEnumerable<ClinicCase> cases, DoctorOptions? options = null, int seed = 1, Device? device = null,
        bool measureOverhead = true, int overheadRounds = 9, Action<string>? progress = null, int? workers = null)
    {
        var watch = Stopwatch.StartNew();
        var list = cases.ToList();
        var alone = new bool[list.Count]; // trained while being prepared: its dropout draws from the global generator
        int done = 0;
        var outcomes = ConcurrentRuns.Map(Enumerable.Range(0, list.Count).ToList(), i =>
        {
            var prepared = Prepare(list[i], seed, options ?? new DoctorOptions(), device: device);
            if (!prepared.DrawsGlobalRandomNumbers) return (Prepared: prepared, Outcome: ((DoctorReport? Report, List<double> Losses, double Seconds)?)null);
            alone[i] = true;
            progress?.Invoke($"training {list[i].Name} ({++done}/{list.Count}, alone: its dropout draws from the global generator)");
            return (Prepared: prepared, Outcome: prepared.Train());
        }, run => run.Outcome ?? run.Prepared.Train(), workers,
            started: i => { if (!alone[i]) progress?.Invoke($"training {list[i].Name} ({++done}/{list.Count}, side by side)"); });
        var results = list.Select((c, i) => Score(c, outcomes[i].Report!, outcomes[i].Seconds, outcomes[i].Losses.Count > 0 ? outcomes[i].Losses[^1] : double.NaN)).ToList();
        progress?.Invoke($"{list.Count} cases trained in {watch.Elapsed.TotalSeconds:F0} s");
        var overhead = new List<OverheadResult>();
        if (measureOverhead)
            foreach (var w in ClinicCases.OverheadWorkloads())
            {
                overhead.Add(MeasureOverhead(w.Case, w.StepsPerRound, overheadRounds, seed, options ?? new DoctorOptions(), device));
                progress?.Invoke($"overhead {w.Case.Name}: done");
            }
        return new ClinicReport { Results = results, Overhead = overhead, Seconds = watch.Elapsed.TotalSeconds };
    }

    /// <summary>Found / found by another check / missed for bugs; quiet / false alarm for healthy cases.</summary>
    public static ClinicResult Score(ClinicCase c, DoctorReport report, double seconds, double finalLoss)
    {
        if (c.Group == ClinicGroup.Healthy)
            return new ClinicResult(c, report, report.Healthy ? ClinicVerdict.Quiet : ClinicVerdict.FalseAlarm, report.FirstFindingStep, seconds, finalLoss);
        var expected = report.Findings.Where(f => c.Expected.Count == 0 || c.Expected.Contains(f.Check)).ToList();
        var (verdict, detection) =
            expected.Count > 0 ? (ClinicVerdict.Found, expected.Min(f => f.FirstStep))
            : !report.Healthy ? (ClinicVerdict.FoundByOtherCheck, report.FirstFindingStep)
            : (ClinicVerdict.Missed, (long?)null);
        return new ClinicResult(c, report, verdict, detection, seconds, finalLoss);
    }

    /// <summary>
    /// Step time with and without the doctor, interleaved: each round trains three identical copies (same seed)
    /// for <paramref name="stepsPerRound"/> steps — uninstrumented, default cadence, every step — in rotating order,
    /// and the ratios of each round are kept; the medians are reported (robust to a noisy shared machine).
    /// <paramref name="clock"/> gives seconds (default: wall time); the process's CPU time
    /// (<see cref="ProcessCpuSeconds"/>) leaves out the time spent waiting for a core on a loaded machine.
    /// </summary>
    public static OverheadResult MeasureOverhead(ClinicCase c, int stepsPerRound, int rounds, int seed, DoctorOptions defaults, Device? device = null,
        Func<double>? clock = null)
    {
        if (rounds < 1 || stepsPerRound < 1) throw new ArgumentOutOfRangeException(nameof(rounds), "need at least one round of one step");
        var variants = new[] { (Name: "none", Options: (DoctorOptions?)null), (Name: "default", Options: defaults), (Name: "every", Options: DoctorOptions.EveryStep) };
        var runners = variants.Select(v => new StepRunner(c, seed, v.Options, device ?? CPU)).ToList();
        try
        {
            foreach (var r in runners) r.Run(Math.Min(stepsPerRound, 10)); // warm-up (first allocations, probe capture)
            var times = runners.Select(_ => new List<double>()).ToList();
            for (int round = 0; round < rounds; round++)
                for (int k = 0; k < runners.Count; k++)
                {
                    int i = (k + round) % runners.Count;
                    times[i].Add(runners[i].Run(stepsPerRound, clock));
                }
            var d = times[0].Zip(times[1], (a, b) => b / a).ToArray();
            var e = times[0].Zip(times[2], (a, b) => b / a).ToArray();
            return new OverheadResult(c.Name, rounds, stepsPerRound, Median(times[0]) / stepsPerRound * 1000, Median(d), Median(e), d, e);
        }
        finally { foreach (var r in runners) r.Dispose(); }
    }

    /// <summary>CPU seconds this process has used (all its threads): a clock for <see cref="MeasureOverhead"/> on a busy machine.</summary>
    public static double ProcessCpuSeconds()
    {
        using var p = Process.GetCurrentProcess();
        return p.TotalProcessorTime.TotalSeconds;
    }

    static double Median(IEnumerable<double> values)
    {
        var v = values.OrderBy(x => x).ToArray();
        return v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }
}

/// <summary>A clinic case built and instrumented by <see cref="ClinicRunner.Prepare"/>, ready to train once.</summary>
public sealed class PreparedCase(ClinicCase @case, bool drawsGlobalRandomNumbers, Func<(DoctorReport? Report, List<double> Losses, double Seconds)> train)
{
    int _trained;

    public ClinicCase Case { get; } = @case;

    /// <summary>Whether training draws from libtorch's global generator (a dropout layer): then it cannot train side by side.</summary>
    public bool DrawsGlobalRandomNumbers { get; } = drawsGlobalRandomNumbers;

    /// <summary>Trains the case (once), then detaches the doctor and frees the model.</summary>
    public (DoctorReport? Report, List<double> Losses, double Seconds) Train() =>
        Interlocked.Exchange(ref _trained, 1) == 0 ? train() : throw new InvalidOperationException($"case '{Case.Name}' was already trained");
}
