using Microsoft.Data.Analysis;
using Plotly.NET;
using TrainingForensics.Charts;
using TrainingForensics.Data;
using TrainingForensics.Results;
using TrainingForensics.Training;

namespace TrainingForensics.CaseStudies.LossPlateau;

/// <summary>
/// The fix comparison of case study 1: model (MLP, CNN) × output (the buggy squashing, logits) × input
/// normalisation (raw, standardised) on the long records, plus the CNN with a single logit and BCE.
/// </summary>
public sealed class EcgFixComparison
{
    /// <summary>The fixed model: CNN, logits into the cross-entropy, standardised records.</summary>
    public const string FixedName = "cnn, logits, standardised";
    /// <summary>The single-logit variant: one output, BCE with logits.</summary>
    public const string SingleLogitName = "cnn, single logit + BCE, standardised";
    /// <summary>Both fixes on the MLP (present when the MLP variants ran).</summary>
    public const string MlpBothFixesName = "mlp, logits, standardised";

    EcgFixComparison(IReadOnlyList<EcgRun> runs, bool includesMlp) { Runs = runs; IncludesMlp = includesMlp; }

    /// <summary>The runs, in the order of <see cref="Variants"/>.</summary>
    public IReadOnlyList<EcgRun> Runs { get; }
    public bool IncludesMlp { get; }

    /// <summary>
    /// The configurations compared: <paramref name="buggy"/> varied in model, final activation (its own or none) and
    /// standardisation, each for <paramref name="steps"/> steps evaluated every 10, then the single-logit BCE CNN.
    /// </summary>
    public static IReadOnlyList<EcgRunConfig> Variants(EcgRunConfig buggy, int steps, bool includeMlp)
    {
        var variants = new List<EcgRunConfig>();
        foreach (var model in includeMlp ? new[] { "mlp", "cnn" } : new[] { "cnn" })
            foreach (var norm in new[] { false, true })
                foreach (var act in new[] { buggy.Activation, "none" }.Distinct())
                    variants.Add(buggy with { Name = $"{model}, {(act == "none" ? "logits" : act)}, {(norm ? "standardised" : "raw")}",
                                              Model = model, Activation = act, Standardize = norm, Steps = steps, EvaluateEvery = 10 });
        variants.Add(buggy with { Name = SingleLogitName, Model = "cnn", Activation = "none", Loss = "bce", Standardize = true, Steps = steps, EvaluateEvery = 10 });
        return variants;
    }

    /// <summary>
    /// Trains every variant on the long records, side by side (<see cref="ConcurrentRuns"/>, at most
    /// <paramref name="workers"/> at once: each run gives the numbers it gives alone). The buggy configuration itself
    /// (MLP, its activation, raw records) already ran as <paramref name="buggyRun"/> with the same settings: it is
    /// reused, not run again. <paramref name="progress"/> gets a line as each run starts and a summary at the end.
    /// </summary>
    public static EcgFixComparison Run(EcgRunConfig buggy, EcgRun buggyRun, EcgSet train, EcgSet eval, int steps, bool includeMlp,
        Action<string>? progress = null, int? workers = null)
    {
        var variants = Variants(buggy, steps, includeMlp);
        // the CNNs (several times an MLP's step time here) start first, so that the short runs fill in at the end
        var order = Enumerable.Range(0, variants.Count).OrderBy(i => variants[i].Model == "cnn" ? 0 : 1).ToList();
        var trained = ConcurrentRuns.Map(order,
            i => variants[i].Model == "mlp" && variants[i].Activation == buggy.Activation && !variants[i].Standardize
                ? () => buggyRun
                : EcgExperiment.Prepare(variants[i], train, eval),
            run => run(), workers, started: k => progress?.Invoke($"running {variants[order[k]].Name} …"));
        var runs = new EcgRun[variants.Count];
        for (int k = 0; k < order.Count; k++) runs[order[k]] = trained[k];
        progress?.Invoke($"{runs.Length} runs, {runs.Sum(r => r.Seconds):F1} s of training");
        return new EcgFixComparison(runs, includeMlp);
    }

    /// <summary>The run of the configuration named <paramref name="name"/>.</summary>
    public EcgRun Find(string name) =>
        Runs.SingleOrDefault(r => r.Config.Name == name) ?? throw new KeyNotFoundException($"no run named '{name}' (have: {string.Join("; ", Runs.Select(r => r.Config.Name))})");

    public EcgRun Fixed => Find(FixedName);
    public EcgRun SingleLogit => Find(SingleLogitName);

    /// <summary>The runs that hand logits to the loss (the healthy ones).</summary>
    public IReadOnlyList<EcgRun> Healthy => Runs.Where(r => r.Config.Activation == "none").ToList();

    /// <summary>One row per run: configuration, the two fixes, steps, final evaluation accuracy and loss, checks fired, seconds.</summary>
    public DataFrame ToDataFrame() => new(
        new StringDataFrameColumn("configuration", Runs.Select(r => r.Config.Name)),
        new StringDataFrameColumn("logits into loss", Runs.Select(r => r.Config.Activation == "none" ? "yes" : "no")),
        new StringDataFrameColumn("standardised", Runs.Select(r => r.Config.Standardize ? "yes" : "no")),
        new Int32DataFrameColumn("steps", Runs.Select(r => r.Config.Steps)),
        new DoubleDataFrameColumn("eval accuracy", Runs.Select(r => r.FinalAccuracy)),
        new DoubleDataFrameColumn("eval loss", Runs.Select(r => Math.Round((double)r.FinalLoss, 5))),
        new StringDataFrameColumn("checks fired", Runs.Select(r => string.Join(", ", r.Checks.Where(c => c.Fired).Select(c => c.Name)))),
        new DoubleDataFrameColumn("seconds", Runs.Select(r => Math.Round(r.Seconds, 1))));

    /// <summary>
    /// Runs whose accuracy curve is identical to an earlier run's (drawn on top of it): each with the first earlier run
    /// it coincides with.
    /// </summary>
    public IReadOnlyList<(EcgRun Run, EcgRun SameAs)> Coinciding() =>
        Runs.Select((r, i) => (Run: r, SameAs: Runs.Take(i).FirstOrDefault(e => e.EvalSteps.SequenceEqual(r.EvalSteps) && e.EvalAccuracies.SequenceEqual(r.EvalAccuracies))))
            .Where(p => p.SameAs != null).Select(p => (p.Run, p.SameAs!)).ToList();

    /// <summary>
    /// Evaluation accuracy over steps for every configuration (dashed: MLP). A curve identical to an earlier one is
    /// dotted and says so in its name, so that the line it hides is not taken for missing.
    /// </summary>
    public GenericChart AccuracyChart()
    {
        var same = Coinciding().ToDictionary(p => p.Run, p => p.SameAs);
        return Plots.Lines("fix comparison: evaluation accuracy on the long records", "step", "evaluation accuracy (fraction of the records)",
            Runs.Select(r => new Series(same.TryGetValue(r, out var e) ? $"{r.Config.Name} (same as {e.Config.Name})" : r.Config.Name,
                                        r.EvalSteps.Select(s => (double)s).ToArray(), r.EvalAccuracies.ToArray(),
                                        same.ContainsKey(r) ? "dot" : r.Config.Model == "mlp" ? "dash" : null)));
    }

    /// <summary>Which checks fired (and at which step) on the healthy runs and on <paramref name="others"/>.</summary>
    public DataFrame FiredTable(params EcgRun[] others)
    {
        var rows = Healthy.Concat(others).ToList();
        return new DataFrame(
            new StringDataFrameColumn("run", rows.Select(r => r.Config.Name)),
            new StringDataFrameColumn("fired", rows.Select(r => string.Join(", ", r.Checks.Where(c => c.Fired).Select(c => $"{c.Name} @ {c.Finding!.FirstStep}")))));
    }

    /// <summary>Records the final evaluation accuracies of the fixes (mlp_both_fixes_accuracy only when the MLP ran).</summary>
    public void Record()
    {
        if (IncludesMlp) Figures.Record("mlp_both_fixes_accuracy", Find(MlpBothFixesName).FinalAccuracy, description: "evaluation accuracy, MLP + logits + standardised");
        Figures.Record("fixed_accuracy", Fixed.FinalAccuracy, description: "evaluation accuracy, CNN + logits + standardised, long records");
        Figures.Record("bce_fixed_accuracy", SingleLogit.FinalAccuracy, description: "evaluation accuracy, CNN + single logit BCE + standardised");
    }
}
