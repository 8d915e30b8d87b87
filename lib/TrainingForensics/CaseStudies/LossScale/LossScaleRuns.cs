using System.Diagnostics;
using System.Globalization;
using Microsoft.Data.Analysis;
using TrainingForensics.Probes;
using TrainingForensics.Results;
using TrainingForensics.Training;

namespace TrainingForensics.CaseStudies.LossScale;

/// <summary>
/// One variant of the main table: a key ("a" … "d"), its label, the loss reduction, learning rate and initialisation.
/// The first seed's run of a <see cref="Probed"/> variant carries the gradient-norm and update-ratio probes, and, with
/// <see cref="AlsoValidateWith"/>, a test loss in a second reduction.
/// </summary>
public sealed record LossScaleVariant(string Key, string Label, Reduction Reduction, double LearningRate, string Init)
{
    /// <summary>Probes on the first seed's run: gradient norm of each weight and ‖ΔW‖/‖W‖ per layer, every 25 steps.</summary>
    public bool Probed { get; init; }
    /// <summary>The first seed's run also computes its test loss with this reduction each epoch.</summary>
    public Reduction? AlsoValidateWith { get; init; }
    /// <summary>Every run logs each step's batch accuracy in the last epoch (what a framework's fit reports as that epoch's training accuracy).</summary>
    public bool TrackAccuracy { get; init; }
}

/// <summary>The runs of the main table: every variant for every seed, with the probes of the first seed's runs.</summary>
public sealed class LossScaleRuns
{
    readonly Dictionary<(string Key, int Seed), TrainingHistory> _runs;

    LossScaleRuns(LossScaleExperiment experiment, IReadOnlyList<LossScaleVariant> variants, IReadOnlyList<int> seeds,
        Dictionary<(string, int), TrainingHistory> runs, Dictionary<string, GradientNorms> gradients, Dictionary<string, UpdateRatios> updates, double seconds)
    {
        Experiment = experiment; Variants = variants; Seeds = seeds; _runs = runs;
        GradientNorms = gradients; UpdateRatios = updates; Seconds = seconds;
    }

    /// <summary>
    /// Trains every variant for every seed: built seed by seed, trained side by side (<see cref="ConcurrentRuns"/>:
    /// each run gives the numbers it gives alone). <paramref name="progress"/> gets a line as each run starts and a
    /// summary at the end.
    /// </summary>
    public static LossScaleRuns Train(LossScaleExperiment experiment, IReadOnlyList<LossScaleVariant> variants, IReadOnlyList<int> seeds,
        Action<string>? progress = null, int? workers = null)
    {
        ArgumentNullException.ThrowIfNull(experiment);
        if (variants.Count == 0 || seeds.Count == 0) throw new ArgumentException("need at least one variant and one seed");
        if (variants.Select(v => v.Key).Distinct().Count() != variants.Count) throw new ArgumentException("variant keys must differ");
        var runs = new Dictionary<(string, int), TrainingHistory>();
        var gradients = new Dictionary<string, GradientNorms>();
        var updates = new Dictionary<string, UpdateRatios>();
        var clock = Stopwatch.StartNew();
        var plan = seeds.SelectMany(s => variants.Select(v => (Seed: s, Variant: v))).ToList();
        var histories = ConcurrentRuns.Map(plan, p =>
        {
            bool first = p.Seed == seeds[0];
            var v = p.Variant;
            return experiment.Prepare(v.Label, v.Reduction, v.LearningRate, v.Init, p.Seed,
                alsoValidateWith: first ? v.AlsoValidateWith : null, trackAccuracy: v.TrackAccuracy,
                instrument: !(first && v.Probed) ? null : loop =>
                {
                    gradients[v.Key] = new GradientNorms(every: 25, include: n => n.EndsWith("weight")).AttachTo(loop);
                    updates[v.Key] = new UpdateRatios(every: 25).AttachTo(loop);
                });
        }, train => train(), workers,
            started: i => progress?.Invoke($"training {plan[i].Variant.Label} · seed {plan[i].Seed} ({i + 1}/{plan.Count}, {clock.Elapsed.TotalSeconds:F0} s so far)"));
        for (int i = 0; i < plan.Count; i++) runs[(plan[i].Variant.Key, plan[i].Seed)] = histories[i];
        double seconds = clock.Elapsed.TotalSeconds;
        progress?.Invoke($"trained {runs.Count} runs in {seconds:F0} s ({runs.Values.Sum(r => r.Steps.Count) / seconds:F0} steps/s overall)");
        return new LossScaleRuns(experiment, variants, seeds, runs, gradients, updates, seconds);
    }

    public LossScaleExperiment Experiment { get; }
    public IReadOnlyList<LossScaleVariant> Variants { get; }
    public IReadOnlyList<int> Seeds { get; }
    /// <summary>Time to train all the runs.</summary>
    public double Seconds { get; }
    public int Count => _runs.Count;
    /// <summary>Gradient norm per weight of the first seed's probed runs, every 25 steps, by variant key.</summary>
    public IReadOnlyDictionary<string, GradientNorms> GradientNorms { get; }
    /// <summary>‖ΔW‖/‖W‖ per layer of the first seed's probed runs, every 25 steps, by variant key.</summary>
    public IReadOnlyDictionary<string, UpdateRatios> UpdateRatios { get; }

    /// <summary>The run of variant <paramref name="key"/> with seed <paramref name="seed"/>.</summary>
    public TrainingHistory this[string key, int seed] =>
        _runs.TryGetValue((key, seed), out var h) ? h : throw new KeyNotFoundException($"no run ({key}) with seed {seed}");

    /// <summary>Every run, by variant key, then seed.</summary>
    public IReadOnlyList<TrainingHistory> All => _runs.OrderBy(r => r.Key.Key).ThenBy(r => r.Key.Seed).Select(r => r.Value).ToList();

    /// <summary>The variant part of a run's name (the name without " · seed N"): how runs are grouped over seeds.</summary>
    public static string Group(TrainingHistory run) => run.Name.Split(" · ")[0];

    /// <summary>The runs that finished (none of their losses was NaN/∞), in table order.</summary>
    public IReadOnlyList<TrainingHistory> Completed => All.Where(r => r.Divergence == null).ToList();

    /// <summary>The runs that diverged (a NaN/∞ loss stopped them), in table order.</summary>
    public IReadOnlyList<TrainingHistory> Diverged => All.Where(r => r.Divergence != null).ToList();

    /// <summary>
    /// Which runs diverged, where and why, in words — or that none did. A loss scaled above the hand-written one at
    /// the same learning rate takes steps that many times larger, and a large enough factor blows the weights up.
    /// </summary>
    public string DivergenceReport()
    {
        var diverged = Diverged;
        if (diverged.Count == 0) return $"no run diverged: all {Count} losses stayed finite";
        return $"{diverged.Count} of {Count} runs diverged and stopped at their first non-finite loss; their accuracies are left out of the comparisons below:" +
               string.Concat(diverged.Select(r => $"{Environment.NewLine}  {r.Name}: loss {r.Divergence!.Loss} at step {r.Divergence.Step} (epoch {r.Divergence.Epoch}); {r.Divergence.Cause}"));
    }

    /// <summary>Records how many runs diverged (diverged_runs).</summary>
    public void RecordDivergence() =>
        Figures.Record("diverged_runs", (long)Diverged.Count, "runs", "runs of the main table stopped by a NaN/∞ loss");

    /// <summary>
    /// The final test accuracy of variant <paramref name="key"/> over the seeds whose run finished; a variant whose
    /// every run diverged has no accuracy (NaN, n = 0).
    /// </summary>
    public RunSummary TestAccuracy(string key) => Finished(key, "test_accuracy");

    /// <summary>
    /// The mean training loss of <paramref name="run"/>'s last epoch converted into the reference reduction's units
    /// (Σ/B): each step's loss divided by the factor of its reduction at that step's batch size (the last batch of an
    /// epoch may be smaller), so runs trained with different reductions can be compared. NaN for a run with no epoch.
    /// </summary>
    public double FinalTrainLossInReferenceUnits(TrainingHistory run, Reduction reduction)
    {
        ArgumentNullException.ThrowIfNull(run);
        if (run.Epochs.Count == 0) return double.NaN;
        int last = run.Epochs[^1].Epoch;
        var steps = run.Steps.Where(s => s.Epoch == last).ToList();
        if (steps.Count == 0) return double.NaN;
        long n = Experiment.TrainingSet.Count, b = Experiment.Config.BatchSize;
        long lastBatch = n - (steps.Count - 1) * b;
        return steps.Select((s, i) => s.Loss / Losses.Factor(reduction, Experiment.Config.Reference, i < steps.Count - 1 ? b : lastBatch, Experiment.Classes)).Average();
    }

    /// <summary>
    /// One row per run (variant, then seed): its reduction and learning rate, the final training loss both in the
    /// run's own reduction and converted to Σ/B (the only column comparable across runs), the training accuracy
    /// after the last epoch and the final test accuracy.
    /// </summary>
    public DataFrame Table()
    {
        var rows = _runs.OrderBy(r => r.Key.Key).ThenBy(r => r.Key.Seed).Select(r => (Variant: Variants.First(v => v.Key == r.Key.Key), Run: r.Value)).ToList();
        string reference = Experiment.Config.Reference.Label();
        return new DataFrame(
            new StringDataFrameColumn("run", rows.Select(r => r.Run.Name)),
            new StringDataFrameColumn("reduction", rows.Select(r => r.Variant.Reduction.Label())),
            new DoubleDataFrameColumn("lr", rows.Select(r => r.Variant.LearningRate)),
            new Int64DataFrameColumn("steps", rows.Select(r => (long)r.Run.Steps.Count)),
            new DoubleDataFrameColumn("final train loss (its own reduction)", rows.Select(r => r.Run.Epochs.Count > 0 ? r.Run.Epochs[^1].TrainLoss : double.NaN)),
            new DoubleDataFrameColumn($"final train loss in {reference} units", rows.Select(r => FinalTrainLossInReferenceUnits(r.Run, r.Variant.Reduction))),
            new DoubleDataFrameColumn("final train_accuracy", rows.Select(r => RunComparison.Final(r.Run, "train_accuracy"))),
            new DoubleDataFrameColumn("final test_accuracy", rows.Select(r => RunComparison.Final(r.Run, "test_accuracy"))));
    }

    RunSummary Finished(string key, string value)
    {
        var finished = Seeds.Select(s => this[key, s]).Where(r => r.Divergence == null).ToList();
        return finished.Count > 0 ? RunComparison.Summarize(key, finished, value)
            : new RunSummary(key, 0, double.NaN, double.NaN, double.NaN, double.NaN, Array.Empty<double>());
    }

    /// <summary>The training accuracy after the last epoch of variant <paramref name="key"/> over the seeds.</summary>
    public RunSummary TrainAccuracy(string key) => Finished(key, "train_accuracy");

    /// <summary>(a)–(d)'s test accuracy over the seeds and the tolerances of the comparisons between them.</summary>
    public AccuracyGaps Gaps() => new(TestAccuracy("a"), TestAccuracy("b"), TestAccuracy("c"), TestAccuracy("d"), Seeds.Count);

    /// <summary>
    /// Training accuracy as a framework's fit reports it — the mean batch accuracy over the last epoch, not a pass
    /// after it — for variant <paramref name="key"/> (which must track accuracy): mean and sample standard deviation over the seeds.
    /// </summary>
    public (double Mean, double Std) FitStyleTrainAccuracy(string key)
    {
        int last = Experiment.Config.Epochs;
        var perSeed = Seeds.Select(s => this[key, s].Steps.Where(x => x.Epoch == last).Average(x => x.Values["accuracy"])).ToArray();
        double mean = perSeed.Average();
        return (mean, Math.Sqrt(perSeed.Sum(x => (x - mean) * (x - mean)) / (perSeed.Length - 1)));
    }

    /// <summary>Median ‖ΔW‖/‖W‖ of <paramref name="layer"/> in variant <paramref name="key"/>'s probed run over the steps before <paramref name="before"/>.</summary>
    public double MedianUpdateRatio(string key, string layer, long before)
    {
        var v = UpdateRatios[key].Series[layer].Where(p => p.Step < before).Select(p => p.Value).OrderBy(x => x).ToArray();
        if (v.Length == 0) throw new ArgumentException($"no update ratio of {layer} in ({key}) before step {before}");
        return v[v.Length / 2];
    }

    /// <summary>Per layer: the median update ratio of (a), (b), (c) before <paramref name="before"/>, and (a)/(b).</summary>
    public DataFrame UpdateRatioTable(long before)
    {
        var layers = UpdateRatios["a"].Series.Keys.ToList();
        return new DataFrame(
            new StringDataFrameColumn("layer", layers),
            new DoubleDataFrameColumn("(a) median", layers.Select(k => MedianUpdateRatio("a", k, before))),
            new DoubleDataFrameColumn("(b) median", layers.Select(k => MedianUpdateRatio("b", k, before))),
            new DoubleDataFrameColumn("(c) median", layers.Select(k => MedianUpdateRatio("c", k, before))),
            new DoubleDataFrameColumn("(a)/(b)", layers.Select(k => MedianUpdateRatio("a", k, before) / MedianUpdateRatio("b", k, before))));
    }

    /// <summary>Records the time the main table took (training_seconds).</summary>
    public void RecordTrainingTime() => Figures.Record("training_seconds", Seconds, "s", "time to train the runs of the main table");

    /// <summary>Records the figures compared with the report: (d)'s fit-style training accuracy and the gap (a) − (d).</summary>
    public void RecordReportComparison()
    {
        Figures.Record("fit_style_train_accuracy_d", FitStyleTrainAccuracy("d").Mean, "fraction", "(d): mean batch accuracy over the last epoch, mean over seeds");
        Figures.Record("gap_a_d", TestAccuracy("a").Mean - TestAccuracy("d").Mean, "fraction", "test accuracy (a) − (d); the report: 96.61% − ~93%");
    }
}

/// <summary>
/// The final test accuracy of (a)–(d) over the seeds, and the tolerance of each comparison: three standard deviations of
/// the quantity compared (√(σ₁²/n + σ₂²/n) for a difference of two means); with fewer than three seeds the spread is not
/// measured and the tolerance is a fixed accuracy point.
/// </summary>
public sealed class AccuracyGaps
{
    internal AccuracyGaps(RunSummary a, RunSummary b, RunSummary c, RunSummary d, int seeds)
    {
        A = a; B = b; C = c; D = d; Seeds = seeds;
    }

    public RunSummary A { get; }
    public RunSummary B { get; }
    public RunSummary C { get; }
    public RunSummary D { get; }
    public int Seeds { get; }
    /// <summary>Whether there are enough seeds (3) for the spread to set the tolerances.</summary>
    public bool SpreadMeasured => Seeds >= 3;

    /// <summary>Three times <paramref name="sigma"/> when the spread is measured, else one accuracy point.</summary>
    public double Tolerance(double sigma) => SpreadMeasured ? 3 * sigma : 0.01;

    /// <summary>Tolerance of (a) − (b) (and of (c) − (b)).</summary>
    public double ToleranceAB => Tolerance(Math.Sqrt((A.Std * A.Std + B.Std * B.Std) / Seeds));
    /// <summary>Tolerance of (a) − (c).</summary>
    public double ToleranceAC => Tolerance(Math.Sqrt((A.Std * A.Std + C.Std * C.Std) / Seeds));

    /// <summary>Records each variant's mean test accuracy, the spread of (a) and (b), and the gap (a) − (b).</summary>
    public void Record()
    {
        // a variant whose every run diverged has no accuracy: its figures are not recorded (DivergenceReport says why)
        void Put(string name, double value, string description) { if (double.IsFinite(value)) Figures.Record(name, value, "fraction", description); }
        Put("test_accuracy_a", A.Mean, "(a) Σ/B, mean over seeds");
        Put("test_accuracy_b", B.Mean, "(b) quiet reduction, mean over seeds");
        Put("test_accuracy_c", C.Mean, "(c) quiet reduction with compensated lr, mean over seeds");
        Put("test_accuracy_d", D.Mean, "(d) quiet reduction, Glorot init, mean over seeds");
        Put("test_accuracy_std_a", A.Std, "seed-to-seed standard deviation of (a)");
        Put("test_accuracy_std_b", B.Std, "seed-to-seed standard deviation of (b)");
        Put("gap_a_b", A.Mean - B.Mean, "test accuracy (a) − (b)");
    }

    /// <summary>One line per variant (mean ± std, runs, range), then the tolerances.</summary>
    public override string ToString()
    {
        static string P(double v) => v.ToString("P2", CultureInfo.CurrentCulture);
        var lines = new[] { A, B, C, D }.Select(x => x.Runs == 0 ? $"{x.Group}: every run diverged: no test accuracy"
            : $"{x.Group}: test accuracy {P(x.Mean)} ± {P(x.Std)} (n={x.Runs}, range {P(x.Min)}–{P(x.Max)})").ToList();
        lines.Add(SpreadMeasured ? $"tolerances from the spread: (a)−(b) {P(ToleranceAB)}, (a)−(c) {P(ToleranceAC)}" : "fewer than 3 seeds: spread not measured, fixed margin of 1 point");
        return string.Join(Environment.NewLine, lines);
    }
}
