using System.Globalization;
using System.Text;
using TrainingForensics.Data;
using TrainingForensics.Diagnostics;
using TrainingForensics.Metrics;
using TrainingForensics.Results;
using static TorchSharp.torch;

namespace TrainingForensics.CaseStudies.LossPlateau;

/// <summary>
/// The frozen loss of a run set against the value computed on paper for the state it froze in: the saturated
/// outputs it actually produced on the evaluation set and that set's class split
/// (<see cref="SquashedCrossEntropy.Expected"/>; for one output per row, BCE with logits of the squashed output), with
/// the float32 tolerance the comparison needs.
/// </summary>
public sealed class FrozenLossAnalysis
{
    FrozenLossAnalysis(EcgRun run, double analytic, double deviation)
    {
        Run = run;
        Confusion = run.Confusion ?? throw new ArgumentException("the run has no final confusion matrix");
        Analytic = analytic;
        Analytic32 = (float)analytic;
        Ulp = MathF.BitIncrement(Analytic32) - Analytic32;
        Deviation = deviation;
        // libtorch computes each row as log(e^u0 + e^u1) − u_true through an intermediate between 1 and 2, where
        // float32 numbers are 2^-23 ≈ 1.2e-7 apart, then a float32 mean of the rows: a few of those spacings bound the
        // rounding. An output's distance from exact 0/1 moves the loss by at most that much.
        Tolerance = 4 * RowUlp + 2 * deviation;
    }

    /// <summary>The float32 spacing between 1 and 2, where the per-row intermediate of libtorch's cross-entropy lies.</summary>
    public static double RowUlp => MathF.BitIncrement(1.5f) - 1.5f;

    /// <summary>The analysis of <paramref name="run"/>'s final state on <paramref name="eval"/> (the set it was evaluated on).</summary>
    public static FrozenLossAnalysis Of(EcgRun run, EcgSet eval)
    {
        ArgumentNullException.ThrowIfNull(run);
        ArgumentNullException.ThrowIfNull(eval);
        long[] labels;
        using (var onCpu = eval.Labels.On(CPU).contiguous()) labels = onCpu.data<long>().ToArray();
        if (labels.Length != run.FinalOutputs.Length)
            throw new ArgumentException($"the run evaluated {run.FinalOutputs.Length} records, the set has {labels.Length}");
        // one output per row (loss "bce"): the squashed output u goes into BCE with logits, log(1+e^u) − y·u per row
        double analytic = run.FinalOutputs.Length > 0 && run.FinalOutputs[0].Length == 1
            ? run.FinalOutputs.Select((r, i) => Math.Log(1 + Math.Exp(r[0])) - labels[i] * r[0]).Average()
            : SquashedCrossEntropy.Expected(run.FinalOutputs, labels);
        // Outputs within 1e-6 of 0/1 count as saturated; how far they are from exact 0/1 enters the tolerance.
        double deviation = run.FinalOutputs.SelectMany(r => r).Max(v => Math.Abs(v - Math.Round(v)));
        return new FrozenLossAnalysis(run, analytic, deviation);
    }

    public EcgRun Run { get; }
    public ConfusionMatrix Confusion { get; }
    /// <summary>The exact loss of the observed outputs and class split.</summary>
    public double Analytic { get; }
    /// <summary>The nearest float32 to <see cref="Analytic"/>.</summary>
    public float Analytic32 { get; }
    /// <summary>The float32 spacing at <see cref="Analytic32"/>.</summary>
    public double Ulp { get; }
    /// <summary>Largest distance of an output from exact 0 or 1.</summary>
    public double Deviation { get; }
    /// <summary>4·2^-23 + 2·<see cref="Deviation"/>: how far the measured float32 loss may lie from the analytic value.</summary>
    public double Tolerance { get; }

    /// <summary>The class every record is predicted as (−1 when predictions are split).</summary>
    public int PredictedClass => Array.IndexOf(Confusion.PredictedCounts, Confusion.Total);

    /// <summary>The share of the predicted class in the evaluation set (its prior); NaN when predictions are split.</summary>
    public double PredictedClassShare => PredictedClass < 0 ? double.NaN : (double)Confusion.TrueCounts[PredictedClass] / Confusion.Total;

    /// <summary>
    /// The state of the original report: 52 AF / 48 normal, every record predicted AF with one-hot outputs. There it
    /// printed 0.79326165; the exact value 0.3132617 + 0.48 lies between two float32 numbers one ulp apart.
    /// </summary>
    public bool IsReportState =>
        Confusion.TrueCounts[1] == 52 && Confusion.TrueCounts[0] == 48 && Math.Abs(Analytic - SquashedCrossEntropy.AllPredicted(1, Confusion.TrueCounts)) < 1e-12;

    /// <summary>Records analytic_frozen_loss and buggy_accuracy (the run's final evaluation accuracy).</summary>
    public void Record()
    {
        Figures.Record("analytic_frozen_loss", Analytic, description: "loss of the saturated outputs for the evaluation split, computed on paper");
        Figures.Record("buggy_accuracy", Run.FinalAccuracy, description: "evaluation accuracy of the buggy model, long records");
    }

    /// <summary>The class split, the reference values, measured against analytic, the first outputs and the tolerance.</summary>
    public override string ToString()
    {
        static string F(double v, string format) => v.ToString(format, CultureInfo.InvariantCulture);
        var cm = Confusion;
        var s = new StringBuilder();
        s.AppendLine($"class split of the evaluation set: {cm.TrueCounts[0]} normal / {cm.TrueCounts[1]} AF; predicted: {cm.PredictedCounts[0]} normal / {cm.PredictedCounts[1]} AF");
        s.AppendLine($"log(1+e^-1) = {F(SquashedCrossEntropy.Floor(), "F8")}, log 2 = {F(Math.Log(2), "F8")}, log(1+e) = {F(SquashedCrossEntropy.Ceiling(), "F8")}");
        s.AppendLine($"measured frozen loss     {F(Run.FinalLoss, "F8")}");
        s.AppendLine($"analytic (exact)         {F(Analytic, "F8")}   nearest float32 {F(Analytic32, "F8")}   float32 spacing here {F(Ulp, "G3")}");
        s.AppendLine("outputs of the first 4 evaluation records at the plateau: " +
                     string.Join("  ", Run.FinalOutputs.Take(4).Select(r => $"[{string.Join(", ", r.Select(v => F(v, "G3")))}]")));
        s.Append($"largest distance of an output from exact 0 or 1: {F(Deviation, "G3")}; tolerance 4·2^-23 + 2·distance = {F(Tolerance, "G3")}");
        return s.ToString();
    }
}
