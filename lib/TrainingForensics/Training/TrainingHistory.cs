using Microsoft.Data.Analysis;

namespace TrainingForensics.Training;

/// <summary>One optimisation step: its loss, its time and whatever probes logged.</summary>
public sealed record StepRecord(int Epoch, long Step, double Loss, double Seconds, IReadOnlyDictionary<string, double> Values);

/// <summary>One epoch: mean training loss, time, and the evaluation values.</summary>
public sealed record EpochRecord(int Epoch, long Steps, double TrainLoss, double Seconds, IReadOnlyDictionary<string, double> Values);

/// <summary>The first step of a run whose loss was NaN or ±∞, and the likely cause the loop named.</summary>
public sealed record NonFiniteLoss(long Step, int Epoch, double Loss, string Cause);

/// <summary>Per-step and per-epoch records of a run, convertible to DataFrames for tables and charts.</summary>
public sealed class TrainingHistory
{
    readonly List<StepRecord> _steps = new();
    readonly List<EpochRecord> _epochs = new();

    public string Name { get; }
    public TrainingHistory(string name = "run") => Name = name;

    public IReadOnlyList<StepRecord> Steps => _steps;
    public IReadOnlyList<EpochRecord> Epochs => _epochs;

    /// <summary>The run's first non-finite loss (it diverged), or null: set by <see cref="TrainingLoop"/>.</summary>
    public NonFiniteLoss? Divergence { get; internal set; }

    internal void Add(StepRecord s) => _steps.Add(s);
    internal void Add(EpochRecord e) => _epochs.Add(e);

    /// <summary>The loss of every step, in order.</summary>
    public double[] Losses => _steps.Select(s => s.Loss).ToArray();

    /// <summary>A value probes logged per step (NaN where a step has none).</summary>
    public double[] StepValues(string name) => _steps.Select(s => s.Values.TryGetValue(name, out var v) ? v : double.NaN).ToArray();

    /// <summary>An evaluation value per epoch; throws naming the value when no epoch has it.</summary>
    public double[] EpochValues(string name)
    {
        if (_epochs.Count > 0 && !_epochs.Any(e => e.Values.ContainsKey(name)))
            throw new KeyNotFoundException($"no epoch of '{Name}' has a value named '{name}' (have: {string.Join(", ", _epochs.SelectMany(e => e.Values.Keys).Distinct())})");
        return _epochs.Select(e => e.Values.TryGetValue(name, out var v) ? v : double.NaN).ToArray();
    }

    /// <summary>Steps as a DataFrame: epoch, step, loss, seconds, then one column per logged value.</summary>
    public DataFrame StepsFrame()
    {
        var keys = _steps.SelectMany(s => s.Values.Keys).Distinct().ToList();
        var columns = new List<DataFrameColumn>
        {
            new Int32DataFrameColumn("epoch", _steps.Select(s => s.Epoch)),
            new Int64DataFrameColumn("step", _steps.Select(s => s.Step)),
            new DoubleDataFrameColumn("loss", _steps.Select(s => s.Loss)),
            new DoubleDataFrameColumn("seconds", _steps.Select(s => s.Seconds)),
        };
        columns.AddRange(keys.Select(k => (DataFrameColumn)new DoubleDataFrameColumn(k, _steps.Select(s => s.Values.TryGetValue(k, out var v) ? v : (double?)null))));
        return new DataFrame(columns);
    }

    /// <summary>Epochs as a DataFrame: epoch, steps, train_loss, seconds, then the evaluation values.</summary>
    public DataFrame EpochsFrame()
    {
        var keys = _epochs.SelectMany(e => e.Values.Keys).Distinct().ToList();
        var columns = new List<DataFrameColumn>
        {
            new Int32DataFrameColumn("epoch", _epochs.Select(e => e.Epoch)),
            new Int64DataFrameColumn("steps", _epochs.Select(e => e.Steps)),
            new DoubleDataFrameColumn("train_loss", _epochs.Select(e => e.TrainLoss)),
            new DoubleDataFrameColumn("seconds", _epochs.Select(e => e.Seconds)),
        };
        columns.AddRange(keys.Select(k => (DataFrameColumn)new DoubleDataFrameColumn(k, _epochs.Select(e => e.Values.TryGetValue(k, out var v) ? v : (double?)null))));
        return new DataFrame(columns);
    }
}
