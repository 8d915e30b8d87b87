using TrainingForensics.Diagnostics;

namespace TrainingForensics.CaseStudies.BatchNormTrainVsEval;

/// <summary>
/// Every training run of case study 3, trained side by side (<see cref="KeypointTraining.TrainSideBySide"/>): the
/// finite-training-set run of the headline (regime B, optional, started first because it is the longest), regime A, and the
/// separate runs of the fix section (the no-decay control and the optional fix runs). Each run has its own BN-lag check.
/// </summary>
public sealed class CaseStudyRuns : IDisposable
{
    CaseStudyRuns(KeypointTrainingRun a, BatchNormDriftCheck checkA, KeypointTrainingRun? b, BatchNormDriftCheck? checkB,
        List<(string Name, KeypointTrainingRun Run, BatchNormDriftCheck Check)> separate, double seconds)
    {
        A = a; CheckA = checkA; B = b; CheckB = checkB; Separate = separate; Seconds = seconds;
    }

    /// <summary>Regime A: fresh images every step.</summary>
    public KeypointTrainingRun A { get; }
    public BatchNormDriftCheck CheckA { get; }
    /// <summary>Regime B: the finite training set (null when skipped).</summary>
    public KeypointTrainingRun? B { get; }
    public BatchNormDriftCheck? CheckB { get; }
    /// <summary>The separate runs, by the name of their row in the fix table; hand them to <see cref="BatchNormFixes.AddTrained"/>.</summary>
    public IReadOnlyList<(string Name, KeypointTrainingRun Run, BatchNormDriftCheck Check)> Separate { get; }
    /// <summary>Wall-clock seconds of the whole side-by-side training.</summary>
    public double Seconds { get; }

    /// <summary>
    /// Trains <paramref name="a"/>, <paramref name="b"/> (when given) and <paramref name="separate"/> side by side, each with
    /// a <see cref="BatchNormDriftCheck"/> whose variance-ratio threshold is <paramref name="varRatioThreshold"/>.
    /// </summary>
    public static CaseStudyRuns Train(KeypointTrainingConfig a, KeypointTrainingConfig? b,
        IReadOnlyList<(string Name, KeypointTrainingConfig Config)> separate, double varRatioThreshold = 3.0, Action<string>? progress = null,
        int? workers = null)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(separate);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var items = new List<(KeypointTrainingConfig Config, BatchNormDriftCheck? Check)>();
        if (b is not null) items.Add((b, new BatchNormDriftCheck { VarRatioThreshold = varRatioThreshold }));
        items.Add((a, new BatchNormDriftCheck { VarRatioThreshold = varRatioThreshold }));
        items.AddRange(separate.Select(s => (s.Config, (BatchNormDriftCheck?)new BatchNormDriftCheck { VarRatioThreshold = varRatioThreshold })));
        var runs = KeypointTraining.TrainSideBySide(items, progress, workers);
        int first = b is null ? 0 : 1;
        var rest = separate.Select((s, i) => (s.Name, runs[first + 1 + i], items[first + 1 + i].Check!)).ToList();
        return new CaseStudyRuns(runs[first], items[first].Check!, b is null ? null : runs[0], b is null ? null : items[0].Check, rest,
            watch.Elapsed.TotalSeconds);
    }

    /// <summary>Disposes regime A and B (the separate runs belong to the fix table once added there).</summary>
    public void Dispose()
    {
        A.Dispose();
        B?.Dispose();
    }
}
