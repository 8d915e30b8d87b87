namespace TrainingForensics.Clinic;

/// <summary>Instrumented / uninstrumented step time, medians over interleaved rounds.</summary>
public sealed record OverheadResult(string Workload, int Rounds, int StepsPerRound, double BaselineStepMs, double DefaultRatio, double EveryStepRatio,
    double[] DefaultRatios, double[] EveryStepRatios);
