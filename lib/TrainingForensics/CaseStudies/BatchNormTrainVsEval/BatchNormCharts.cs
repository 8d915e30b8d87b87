using System.Globalization;
using Plotly.NET;
using TrainingForensics.Charts;
using TrainingForensics.Diagnostics;
using TrainingForensics.Probes;

namespace TrainingForensics.CaseStudies.BatchNormTrainVsEval;

/// <summary>The charts of case study 3 that need more than a line chart: the variance-ratio map and the step-size picture.</summary>
public static class BatchNormCharts
{
    /// <summary>
    /// Per BN layer over steps, ln(σ²_run/σ²_B) with the running variance's initial value discounted — exactly the per-layer
    /// value whose median over layers <see cref="BatchNormDriftCheck"/> compares with ln(threshold) — and that median as
    /// the last row. Diverging colours centred at 0 (pale: eval mode normalises like training mode; red: the running
    /// variance is too large, eval mode squashes; blue: too small, eval mode inflates), one symmetric range, a titled colour bar.
    /// </summary>
    public static GenericChart VarianceRatioMap(string title, BatchNormProbe probe, double threshold = 3.0)
    {
        ArgumentNullException.ThrowIfNull(probe);
        if (probe.History.Count == 0) throw new ArgumentException("the probe measured nothing yet");
        var layers = probe.Layers;
        var z = new List<double?[]>();
        foreach (var layer in Enumerable.Range(0, layers.Count))
            z.Add(probe.History.Select(h => Finite(h[layer].CorrectedLogVarRatio)).ToArray());
        z.Add(probe.History.Select(h => Finite(Median(h.Select(l => l.CorrectedLogVarRatio)))).ToArray());
        double extent = Math.Max(Math.Log(threshold), z.SelectMany(r => r).Where(v => v.HasValue).Select(v => Math.Abs(v!.Value)).DefaultIfEmpty(1).Max());
        string thresholdText = Math.Log(threshold).ToString("F2", CultureInfo.InvariantCulture);
        var rows = layers.Select(l => l.Replace(".bn", "")).Append($"median (check fires > {thresholdText})").ToArray();
        var trace = new Dictionary<string, object>
        {
            ["type"] = "heatmap", ["z"] = z.ToArray(), ["x"] = probe.Steps.Select(s => (double)s).ToArray(), ["y"] = rows,
            ["colorscale"] = "RdBu", ["zmid"] = 0.0, ["zmin"] = -extent, ["zmax"] = extent,
            ["colorbar"] = new Dictionary<string, object> { ["title"] = PlotlyFigure.Text("ln(σ²_run / σ²_B)<br>(initial value<br>discounted)") },
        };
        var layout = new Dictionary<string, object>
        {
            ["title"] = PlotlyFigure.Text(title),
            ["xaxis"] = new Dictionary<string, object> { ["title"] = PlotlyFigure.Text("training step") },
            ["yaxis"] = new Dictionary<string, object> { ["title"] = PlotlyFigure.Text("BatchNorm layer"), ["autorange"] = "reversed" },
            ["width"] = 900, ["height"] = 420,
            ["margin"] = new Dictionary<string, object> { ["t"] = 60, ["l"] = 200 },
        };
        return PlotlyFigure.Build(new[] { trace }, layout);
    }

    /// <summary>The median over layers of the discounted ln-variance ratio at each measurement (what the check compares with ln 3).</summary>
    public static IReadOnlyList<double> MedianCorrectedLogVarRatio(BatchNormProbe probe) =>
        probe.History.Select(h => Median(h.Select(l => l.CorrectedLogVarRatio))).ToList();

    /// <summary>
    /// The conv-weight norm ‖W‖ and the relative step ‖ΔW‖/‖W‖ of the step before each measurement, over steps (two panels,
    /// log scale): as the decay shrinks ‖W‖ while Adam keeps ‖ΔW‖ about the same, each step turns the weights further.
    /// </summary>
    public static GenericChart StepSizes(string title, IReadOnlyList<WeightStep> steps)
    {
        ArgumentNullException.ThrowIfNull(steps);
        var x = steps.Select(s => (double)s.Step).ToArray();
        return PlotlyFigure.Panels(title, new[]
        {
            new Panel("conv-weight norm ‖W‖", "training step", "‖W‖ = √(Σ‖W_l‖²)", new[] { new Series("‖W‖", x, steps.Select(s => s.Norm).ToArray()) }, LogY: true),
            new Panel("one step: ‖ΔW‖/‖W‖ and ‖ΔW‖ (dotted)", "training step", "step size (log scale)", new[]
            {
                new Series("‖ΔW‖/‖W‖", x, steps.Select(s => s.RelativeStep).ToArray()),
                new Series("‖ΔW‖", x, steps.Select(s => s.StepNorm).ToArray(), Dash: "dot"),
            }, LogY: true),
        });
    }

    /// <summary>
    /// The least-squares slope of ln(‖ΔW‖/‖W‖) against ln ‖W‖: −1 when the step's size does not depend on the weights' size
    /// (the relative step grows as 1/‖W‖); 0 when the step shrinks with the weights.
    /// </summary>
    public static double RelativeStepSlope(IReadOnlyList<WeightStep> steps)
    {
        ArgumentNullException.ThrowIfNull(steps);
        var points = steps.Where(s => s.Norm > 0 && s.StepNorm > 0).Select(s => (X: Math.Log(s.Norm), Y: Math.Log(s.RelativeStep))).ToList();
        if (points.Count < 3) throw new ArgumentException("need at least three steps with a non-zero size", nameof(steps));
        double mx = points.Average(p => p.X), my = points.Average(p => p.Y);
        double sxx = points.Sum(p => (p.X - mx) * (p.X - mx));
        if (sxx == 0) throw new ArgumentException("the weight norm never changed: no slope", nameof(steps));
        return points.Sum(p => (p.X - mx) * (p.Y - my)) / sxx;
    }

    static double? Finite(double v) => double.IsFinite(v) ? v : null;

    static double Median(IEnumerable<double> values)
    {
        var v = values.OrderBy(x => x).ToArray();
        return v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }
}
