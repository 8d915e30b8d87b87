using TrainingForensics.Results;
using TrainingForensics.Training;

namespace TrainingForensics.CaseStudies.LossScale;

/// <summary>
/// Section 5's variation: one optimiser with the reference reduction, with the quiet reduction at the same learning
/// rate, and with the quiet reduction at the learning rate × <see cref="Compensation"/> (the SGD fix). Under a
/// scale-invariant optimiser the first two coincide and the third does not.
/// </summary>
public sealed class OptimizerVariation
{
    /// <param name="optimizer">The optimiser the three runs used.</param>
    /// <param name="seed">Their seed.</param>
    /// <param name="reference">The run with the reference reduction.</param>
    /// <param name="quiet">The run with the quiet reduction, same learning rate.</param>
    /// <param name="compensated">The run with the quiet reduction and the learning rate × <paramref name="compensation"/>.</param>
    /// <param name="compensation">loss(reference) / loss(quiet): what rescales the quiet run's losses into the reference's units.</param>
    public OptimizerVariation(string optimizer, int seed, TrainingHistory reference, TrainingHistory quiet, TrainingHistory compensated, double compensation)
    {
        Optimizer = optimizer; Seed = seed; Reference = reference; Quiet = quiet; Compensated = compensated; Compensation = compensation;
    }

    public string Optimizer { get; }
    public int Seed { get; }
    public TrainingHistory Reference { get; }
    public TrainingHistory Quiet { get; }
    public TrainingHistory Compensated { get; }
    public double Compensation { get; }

    public double ReferenceAccuracy => RunComparison.Final(Reference, "test_accuracy");
    public double QuietAccuracy => RunComparison.Final(Quiet, "test_accuracy");

    /// <summary>
    /// How far the quiet runs, rescaled into the reference's units, drift from the reference over the first
    /// <paramref name="steps"/> steps (<see cref="LossScaleExperiment.Drift"/>): at the same learning rate and at the compensated one.
    /// </summary>
    public (double SameLr, double ScaledLr) Drift(int steps) =>
        (LossScaleExperiment.Drift(Reference, Quiet, Compensation, steps), LossScaleExperiment.Drift(Reference, Compensated, Compensation, steps));

    /// <summary>Records both runs' test accuracies and their drifts over the first <paramref name="window"/> steps.</summary>
    public void Record(int window)
    {
        var (sameLr, scaledLr) = Drift(window);
        Figures.Record("variation_test_accuracy_reference", ReferenceAccuracy, "fraction", $"{Optimizer}, Σ/B, seed {Seed}");
        Figures.Record("variation_test_accuracy_quiet", QuietAccuracy, "fraction", $"{Optimizer}, quiet reduction, seed {Seed}");
        Figures.Record("variation_drift_same_lr", sameLr, "relative", "mean relative loss difference to the Σ/B run over the first steps, same lr");
        Figures.Record("variation_drift_scaled_lr", scaledLr, "relative", "the same with lr × k");
    }
}
