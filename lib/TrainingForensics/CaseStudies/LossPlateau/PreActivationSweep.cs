using System.Collections;
using Microsoft.Data.Analysis;
using Plotly.NET;
using TrainingForensics.Charts;
using TrainingForensics.Results;

namespace TrainingForensics.CaseStudies.LossPlateau;

/// <summary>
/// One row of the pre-activation sweep: after a single optimizer step, how large the first layer's and the
/// output layer's pre-activations are, next to the prediction lr·L·mean(x) (Adam moves every weight by ~lr,
/// and with a DC offset the inputs share one sign, so a first-layer unit shifts by ~lr·Σx).
/// </summary>
/// <param name="Length">Samples per record.</param>
/// <param name="MeanInput">Mean of the batch's samples (mV).</param>
/// <param name="PredictedShift">lr·L·mean(x).</param>
/// <param name="Fc1Shift">Largest change of a first-layer pre-activation caused by the step, max |fc1(x)after − fc1(x)before|.</param>
/// <param name="OutputBefore">Largest |output-layer pre-activation| before the step.</param>
/// <param name="OutputAfter">Largest |output-layer pre-activation| (the value the sigmoid/softmax squashes) after the step.</param>
/// <param name="SaturatedAfter">Fraction of saturated outputs after the step.</param>
public sealed record PreActivationRow(int Length, double MeanInput, double PredictedShift, double Fc1Shift,
    double OutputBefore, double OutputAfter, double SaturatedAfter);

/// <summary>The rows of <see cref="EcgExperiment.FirstStepSweep"/>, shortest records first, with their table, chart and figures.</summary>
public sealed class PreActivationSweep : IReadOnlyList<PreActivationRow>
{
    readonly IReadOnlyList<PreActivationRow> _rows;

    internal PreActivationSweep(IReadOnlyList<PreActivationRow> rows) => _rows = rows;

    public PreActivationRow this[int index] => _rows[index];
    public int Count => _rows.Count;
    public IEnumerator<PreActivationRow> GetEnumerator() => _rows.GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>One row per length: mean input, prediction, measured shift, output pre-activation and saturation after the step.</summary>
    public DataFrame ToDataFrame() => new(
        new Int32DataFrameColumn("L", _rows.Select(r => r.Length)),
        new DoubleDataFrameColumn("mean x (mV)", _rows.Select(r => Math.Round(r.MeanInput, 3))),
        new DoubleDataFrameColumn("lr·L·mean(x)", _rows.Select(r => Math.Round(r.PredictedShift, 3))),
        new DoubleDataFrameColumn("max |Δ fc1|", _rows.Select(r => Math.Round(r.Fc1Shift, 3))),
        new DoubleDataFrameColumn("max |fc2| after", _rows.Select(r => Math.Round(r.OutputAfter, 3))),
        new DoubleDataFrameColumn("saturated after", _rows.Select(r => r.SaturatedAfter)));

    /// <summary>Measured shift, prediction and output pre-activation against the record length (log–log).</summary>
    public GenericChart Chart()
    {
        var xs = _rows.Select(r => (double)r.Length).ToArray();
        return Plots.Lines("pre-activations after one Adam step vs record length", "record length L", "value", new[] {
            new Series("measured max |Δ fc1|", xs, _rows.Select(r => r.Fc1Shift).ToArray()),
            new Series("lr·L·mean(x)", xs, _rows.Select(r => r.PredictedShift).ToArray(), Dash: "dash"),
            new Series("max |output pre-activation|", xs, _rows.Select(r => r.OutputAfter).ToArray()) }, logY: true, logX: true);
    }

    /// <summary>Records the longest records' measured shift and its prediction (fc1_shift_long, predicted_shift_long).</summary>
    public void Record()
    {
        Figures.Record("fc1_shift_long", _rows[^1].Fc1Shift, description: "max first-layer pre-activation shift after one step, long records");
        Figures.Record("predicted_shift_long", _rows[^1].PredictedShift, description: "lr·L·mean(x) for the long records");
    }
}
