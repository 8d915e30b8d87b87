using System.Diagnostics;
using System.Text;
using Microsoft.Data.Analysis;
using TorchSharp;
using TrainingForensics.Setup;
using TrainingForensics.Training;
using static TorchSharp.torch;

using TrainingForensics.Diagnostics;
using TrainingForensics.Diagnostics.Doctor;

namespace TrainingForensics.Clinic;

/// <summary>What a clinic case is: a bug the doctor was built for, a healthy baseline, or a bug it was not built around.</summary>
public enum ClinicGroup { DesignedBug, Healthy, HeldOutBug }

/// <summary>
/// What a case hands the training: the model, optimiser, loss, data, and optional evaluation. Everything is built
/// from the seed, so an instrumented and an uninstrumented run see the same numbers.
/// </summary>
public sealed record ClinicSetup
{
    public required nn.Module<Tensor, Tensor> Model { get; init; }
    public required optim.Optimizer Optimizer { get; init; }
    public required Func<Tensor, Tensor, Tensor> Loss { get; init; }
    /// <summary>Endless training batches (x, y); created inside the step's dispose scope.</summary>
    public required IEnumerable<(Tensor X, Tensor Y)> Batches { get; init; }
    /// <summary>Call optimizer.zero_grad() every step (false: the forgotten-zero_grad bug).</summary>
    public bool ZeroGrad { get; init; } = true;
    /// <summary>Evaluate every this many steps (0 = never).</summary>
    public int EvaluateEvery { get; init; }
    /// <summary>The evaluation: gets the model, the (possibly wrapped) metric and validation-loss wrappers.</summary>
    public Action<ClinicEvaluation>? Evaluate { get; init; }
    /// <summary>How the doctor is hooked up: "wrap" (doctor.Loss + Observe(step)), "observe" (Observe with tensors) or "loop" (AttachTo(TrainingLoop)).</summary>
    public string Hookup { get; init; } = "wrap";
    /// <summary>Disposed after the run (data sets).</summary>
    public IDisposable? Owned { get; init; }
}

/// <summary>What an evaluation callback sees.</summary>
public sealed class ClinicEvaluation
{
    public required nn.Module<Tensor, Tensor> Model { get; init; }
    public required long Step { get; init; }
    /// <summary>Wraps a metric so the doctor sees its inputs (identity when uninstrumented).</summary>
    public required Func<Func<Tensor, Tensor, double>, Func<Tensor, Tensor, double>> Metric { get; init; }
    /// <summary>Wraps a validation loss so the doctor compares it with the training loss (identity when uninstrumented).</summary>
    public required Func<Func<Tensor, Tensor, Tensor>, Func<Tensor, Tensor, Tensor>> ValidationLoss { get; init; }
}

/// <summary>One training configuration of the clinic.</summary>
/// <param name="Expected">Checks that count as finding the bug (empty for healthy cases and held-out bugs: any finding counts).</param>
public sealed record ClinicCase(string Name, ClinicGroup Group, string Source, string Description, int Steps,
    IReadOnlyList<string> Expected, Func<int, ClinicSetup> Setup, bool Quick = false);

/// <summary>One case's result.</summary>
public sealed record ClinicResult(ClinicCase Case, DoctorReport Report, string Verdict, long? StepsToDetection, double Seconds, double FinalLoss)
{
    public string Group => Case.Group switch { ClinicGroup.DesignedBug => "designed-for bug", ClinicGroup.Healthy => "healthy", _ => "held-out bug" };
}

/// <summary>Instrumented / uninstrumented step time, medians over interleaved rounds.</summary>
public sealed record OverheadResult(string Workload, int Rounds, int StepsPerRound, double BaselineStepMs, double DefaultRatio, double EveryStepRatio,
    double[] DefaultRatios, double[] EveryStepRatios);

/// <summary>Everything a clinic run produced.</summary>
public sealed class ClinicReport
{
    public required IReadOnlyList<ClinicResult> Results { get; init; }
    public required IReadOnlyList<OverheadResult> Overhead { get; init; }
    public required double Seconds { get; init; }
    /// <summary>ToString adds each case's final loss and vitals.</summary>
    public bool Verbose { get; set; }

    public int Count(ClinicGroup g, params string[] verdicts) => Results.Count(r => r.Case.Group == g && verdicts.Contains(r.Verdict));

    /// <summary>One row per case: group, case, source, verdict, steps to detection, checks fired, seconds.</summary>
    public DataFrame ToDataFrame() => new(
        new StringDataFrameColumn("group", Results.Select(r => r.Group)),
        new StringDataFrameColumn("case", Results.Select(r => r.Case.Name)),
        new StringDataFrameColumn("source", Results.Select(r => r.Case.Source)),
        new StringDataFrameColumn("verdict", Results.Select(r => r.Verdict)),
        new Int64DataFrameColumn("steps_to_detection", Results.Select(r => r.StepsToDetection)),
        new Int32DataFrameColumn("steps_run", Results.Select(r => r.Case.Steps)),
        new StringDataFrameColumn("checks_fired", Results.Select(r => string.Join(", ", r.Report.Findings.Select(f => $"{f.Check}@{f.FirstStep}")))),
        new DoubleDataFrameColumn("seconds", Results.Select(r => Math.Round(r.Seconds, 2))));

    /// <summary>The confusion table: per group, how many cases were found / missed / falsely flagged / quiet.</summary>
    public DataFrame Confusion()
    {
        var groups = new[] { ClinicGroup.DesignedBug, ClinicGroup.HeldOutBug, ClinicGroup.Healthy };
        string Label(ClinicGroup g) => g switch { ClinicGroup.DesignedBug => "designed-for bug", ClinicGroup.Healthy => "healthy", _ => "held-out bug" };
        double? MedianSteps(ClinicGroup g)
        {
            var s = Results.Where(r => r.Case.Group == g && r.StepsToDetection is not null).Select(r => (double)r.StepsToDetection!.Value).OrderBy(x => x).ToArray();
            return s.Length == 0 ? null : s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
        }
        return new DataFrame(
            new StringDataFrameColumn("group", groups.Select(Label)),
            new Int32DataFrameColumn("cases", groups.Select(g => Results.Count(r => r.Case.Group == g))),
            new Int32DataFrameColumn("found", groups.Select(g => Count(g, "found"))),
            new Int32DataFrameColumn("found by another check", groups.Select(g => Count(g, "found (other check)"))),
            new Int32DataFrameColumn("missed", groups.Select(g => Count(g, "missed"))),
            new Int32DataFrameColumn("false alarm", groups.Select(g => Count(g, "false alarm"))),
            new Int32DataFrameColumn("quiet", groups.Select(g => Count(g, "quiet"))),
            new DoubleDataFrameColumn("median steps to detection", groups.Select(MedianSteps)));
    }

    /// <summary>Horizontal bars: steps to detection per bug case (missed cases drawn at their full length, grey), healthy cases as false alarms if any.</summary>
    public Plotly.NET.GenericChart DetectionChart(string title = "Clinic: steps until the doctor's first relevant finding")
    {
        var rows = Results.Where(r => r.Case.Group != ClinicGroup.Healthy || r.Verdict == "false alarm").Reverse().ToList();
        string Colour(ClinicResult r) => r.Verdict switch { "found" => "#2ca02c", "found (other check)" => "#bcbd22", "missed" => "#7f7f7f", _ => "#d62728" };
        var traces = new List<Dictionary<string, object>>
        {
            new()
            {
                ["type"] = "bar", ["orientation"] = "h", ["name"] = "steps to detection",
                ["y"] = rows.Select(r => r.Case.Name).ToArray(),
                ["x"] = rows.Select(r => (double)(r.StepsToDetection ?? r.Case.Steps)).ToArray(),
                ["text"] = rows.Select(r => r.Verdict == "missed" ? $"missed ({r.Case.Steps} steps run)" : $"{r.Verdict} at step {r.StepsToDetection}").ToArray(),
                ["textposition"] = "outside",
                ["marker"] = new Dictionary<string, object> { ["color"] = rows.Select(Colour).ToArray() },
            },
        };
        var layout = new Dictionary<string, object>
        {
            ["title"] = new Dictionary<string, object> { ["text"] = title },
            ["height"] = 140 + 26 * rows.Count, ["width"] = 1000,
            ["margin"] = new Dictionary<string, object> { ["l"] = 300, ["r"] = 40, ["t"] = 50, ["b"] = 50 },
            ["xaxis"] = new Dictionary<string, object> { ["title"] = new Dictionary<string, object> { ["text"] = "training step" }, ["range"] = new[] { 0.0, 1.35 * Results.Max(r => r.Case.Steps) } },
            ["showlegend"] = false,
        };
        return TrainingForensics.Charts.PlotlyFigure.Build(traces, layout);
    }

    /// <summary>Grouped bars: instrumented / uninstrumented step time per workload, default cadence and every step, with the targets.</summary>
    public Plotly.NET.GenericChart OverheadChart(string title = "Overhead: instrumented / uninstrumented step time (median)")
    {
        if (Overhead.Count == 0) throw new InvalidOperationException("the clinic ran without measuring the overhead");
        var names = Overhead.Select(o => o.Workload).ToArray();
        var traces = new List<Dictionary<string, object>>
        {
            new() { ["type"] = "bar", ["name"] = "default cadence", ["x"] = names, ["y"] = Overhead.Select(o => o.DefaultRatio).ToArray(), ["marker"] = new Dictionary<string, object> { ["color"] = "#1f77b4" } },
            new() { ["type"] = "bar", ["name"] = "every detector every step", ["x"] = names, ["y"] = Overhead.Select(o => o.EveryStepRatio).ToArray(), ["marker"] = new Dictionary<string, object> { ["color"] = "#ff7f0e" } },
            new() { ["type"] = "scatter", ["mode"] = "lines", ["name"] = "target 1.05×", ["x"] = names, ["y"] = names.Select(_ => 1.05).ToArray(), ["line"] = new Dictionary<string, object> { ["color"] = "#1f77b4", ["dash"] = "dash" } },
            new() { ["type"] = "scatter", ["mode"] = "lines", ["name"] = "target 1.3×", ["x"] = names, ["y"] = names.Select(_ => 1.3).ToArray(), ["line"] = new Dictionary<string, object> { ["color"] = "#ff7f0e", ["dash"] = "dash" } },
        };
        var layout = new Dictionary<string, object>
        {
            ["title"] = new Dictionary<string, object> { ["text"] = title }, ["barmode"] = "group", ["height"] = 420, ["width"] = 800,
            ["yaxis"] = new Dictionary<string, object> { ["title"] = new Dictionary<string, object> { ["text"] = "× uninstrumented step time" } },
        };
        return TrainingForensics.Charts.PlotlyFigure.Build(traces, layout);
    }

    public DataFrame OverheadFrame() => new(
        new StringDataFrameColumn("workload", Overhead.Select(o => o.Workload)),
        new DoubleDataFrameColumn("baseline ms/step", Overhead.Select(o => Math.Round(o.BaselineStepMs, 3))),
        new DoubleDataFrameColumn("default cadence ×", Overhead.Select(o => Math.Round(o.DefaultRatio, 3))),
        new DoubleDataFrameColumn("every step ×", Overhead.Select(o => Math.Round(o.EveryStepRatio, 3))),
        new Int32DataFrameColumn("rounds", Overhead.Select(o => o.Rounds)),
        new Int32DataFrameColumn("steps per round", Overhead.Select(o => o.StepsPerRound)));

    /// <summary>Machine-readable: every case with its verdict and findings, the confusion counts and the overhead.</summary>
    public string ToJson() => System.Text.Json.JsonSerializer.Serialize(new
    {
        seconds = Seconds,
        cases = Results.Select(r => new
        {
            name = r.Case.Name, group = r.Group, source = r.Case.Source, verdict = r.Verdict, steps_to_detection = r.StepsToDetection,
            steps = r.Case.Steps, seconds = r.Seconds, findings = r.Report.Findings.Select(f => new { check = f.Check, first_step = f.FirstStep, summary = f.Summary }),
        }),
        overhead = Overhead.Select(o => new { workload = o.Workload, baseline_ms_per_step = o.BaselineStepMs, default_ratio = o.DefaultRatio, every_step_ratio = o.EveryStepRatio, rounds = o.Rounds, steps_per_round = o.StepsPerRound }),
    }, new System.Text.Json.JsonSerializerOptions { WriteIndented = true });

    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"{"group",-17} {"case",-34} {"verdict",-20} {"steps→det",9}  checks fired");
        foreach (var r in Results)
            sb.AppendLine($"{r.Group,-17} {r.Case.Name,-34} {r.Verdict,-20} {(r.StepsToDetection?.ToString() ?? "-"),9}  {string.Join(", ", r.Report.Findings.Select(f => $"{f.Check}@{f.FirstStep}"))}" +
                (Verbose ? $"\n    final loss {r.FinalLoss:G4}; " + string.Join(", ", r.Report.Vitals.Select(v => $"{v.Key}={v.Value:G3}")) : ""));
        sb.AppendLine();
        foreach (ClinicGroup g in new[] { ClinicGroup.DesignedBug, ClinicGroup.HeldOutBug, ClinicGroup.Healthy })
        {
            int n = Results.Count(r => r.Case.Group == g);
            if (n == 0) continue;
            sb.AppendLine(g == ClinicGroup.Healthy
                ? $"healthy baselines: {Count(g, "quiet")} quiet, {Count(g, "false alarm")} false alarm(s) of {n}"
                : $"{(g == ClinicGroup.DesignedBug ? "designed-for bugs" : "held-out bugs")}: {Count(g, "found")} found, {Count(g, "found (other check)")} found by another check, {Count(g, "missed")} missed of {n}");
        }
        foreach (var o in Overhead)
            sb.AppendLine($"overhead ({o.Workload}, {o.BaselineStepMs:F2} ms/step, median of {o.Rounds} interleaved rounds of {o.StepsPerRound} steps): default cadence {o.DefaultRatio:F3}×, every step {o.EveryStepRatio:F3}×");
        sb.AppendLine($"clinic time {Seconds:F1} s");
        return sb.ToString();
    }
}

/// <summary>Runs the <see cref="TrainingDoctor"/> over a suite of training configurations and scores it.</summary>
public static class ClinicRunner
{
    /// <summary>Trains one case (instrumented when <paramref name="options"/> is given). Returns the doctor's report (null when uninstrumented), losses and time.</summary>
    public static (DoctorReport? Report, List<double> Losses, double Seconds) Train(ClinicCase c, int seed, DoctorOptions? options, int? steps = null)
    {
        TorchEnvironment.Reseed(seed);
        var s = c.Setup(seed);
        TrainingDoctor? doctor = null;
        var losses = new List<double>();
        var watch = Stopwatch.StartNew();
        try
        {
            if (options != null) doctor = TrainingDoctor.Attach(s.Model, s.Optimizer, options);
            int n = steps ?? c.Steps;
            if (s.Hookup == "loop")
            {
                if (!s.ZeroGrad) throw new ArgumentException($"case '{c.Name}': the TrainingLoop always zeroes gradients; use the 'wrap' hook-up");
                var loop = new TrainingLoop(s.Model, s.Optimizer, s.Loss, c.Name);
                doctor?.AttachTo(loop);
                using var e = s.Batches.GetEnumerator();
                for (long step = 0; step < n; step++)
                {
                    using var scope = NewDisposeScope();
                    if (!e.MoveNext()) throw new InvalidOperationException($"case '{c.Name}': the batches ran out");
                    losses.Add(loop.Step(e.Current.X, e.Current.Y).Loss);
                    Evaluate(s, doctor, step);
                }
            }
            else
            {
                var lossFn = doctor != null && s.Hookup == "wrap" ? doctor.Loss(s.Loss) : s.Loss;
                using var e = s.Batches.GetEnumerator();
                for (long step = 0; step < n; step++)
                {
                    using var scope = NewDisposeScope();
                    if (!e.MoveNext()) throw new InvalidOperationException($"case '{c.Name}': the batches ran out");
                    var (x, y) = e.Current;
                    s.Model.train();
                    if (s.ZeroGrad || step == 0) s.Optimizer.zero_grad();
                    var outputs = s.Model.call(x);
                    var loss = lossFn(outputs, y);
                    loss.backward();
                    if (doctor != null)
                    {
                        if (s.Hookup == "wrap") doctor.Observe(step);
                        else doctor.Observe(step, outputs, y, loss);
                    }
                    s.Optimizer.step();
                    losses.Add(loss.item<float>());
                    Evaluate(s, doctor, step);
                }
            }
            var report = doctor?.Report();
            return (report, losses, watch.Elapsed.TotalSeconds);
        }
        finally
        {
            doctor?.Detach();
            s.Owned?.Dispose();
            s.Model.Dispose();
        }
    }

    static void Evaluate(ClinicSetup s, TrainingDoctor? doctor, long step)
    {
        if (s.Evaluate is null || s.EvaluateEvery <= 0 || (step + 1) % s.EvaluateEvery != 0) return;
        using var scope = NewDisposeScope();
        s.Evaluate(new ClinicEvaluation
        {
            Model = s.Model, Step = step,
            Metric = m => doctor?.Metric(m) ?? m,
            ValidationLoss = l => doctor?.ValidationLoss(l) ?? l,
        });
        s.Model.train();
    }

    /// <summary>Runs every case with the doctor attached and scores it; then measures the overhead.</summary>
    public static ClinicReport Run(IEnumerable<ClinicCase> cases, DoctorOptions? options = null, int seed = 1,
        bool measureOverhead = true, int overheadRounds = 9, Action<string>? progress = null)
    {
        var watch = Stopwatch.StartNew();
        var results = new List<ClinicResult>();
        foreach (var c in cases)
        {
            var (report, losses, seconds) = Train(c, seed, options ?? new DoctorOptions());
            var r = Score(c, report!, seconds, losses.Count > 0 ? losses[^1] : double.NaN);
            results.Add(r);
            progress?.Invoke($"{r.Case.Name}: {r.Verdict} ({seconds:F1} s)");
        }
        var overhead = new List<OverheadResult>();
        if (measureOverhead)
            foreach (var w in ClinicCases.OverheadWorkloads())
            {
                overhead.Add(MeasureOverhead(w.Case, w.StepsPerRound, overheadRounds, seed, options ?? new DoctorOptions()));
                progress?.Invoke($"overhead {w.Case.Name}: done");
            }
        return new ClinicReport { Results = results, Overhead = overhead, Seconds = watch.Elapsed.TotalSeconds };
    }

    /// <summary>found / found (other check) / missed for bugs; quiet / false alarm for healthy cases.</summary>
    public static ClinicResult Score(ClinicCase c, DoctorReport report, double seconds, double finalLoss)
    {
        string verdict;
        long? detection = null;
        if (c.Group == ClinicGroup.Healthy)
        {
            verdict = report.Healthy ? "quiet" : "false alarm";
            detection = report.FirstFindingStep;
        }
        else
        {
            var expected = report.Findings.Where(f => c.Expected.Count == 0 || c.Expected.Contains(f.Check)).ToList();
            if (expected.Count > 0) { verdict = "found"; detection = expected.Min(f => f.FirstStep); }
            else if (!report.Healthy) { verdict = "found (other check)"; detection = report.FirstFindingStep; }
            else verdict = "missed";
        }
        return new ClinicResult(c, report, verdict, detection, seconds, finalLoss);
    }

    /// <summary>
    /// Step time with and without the doctor, interleaved: each round trains three identical copies (same seed)
    /// for <paramref name="stepsPerRound"/> steps — uninstrumented, default cadence, every step — in rotating order,
    /// and the ratios of each round are kept; the medians are reported (robust to a noisy shared machine).
    /// </summary>
    public static OverheadResult MeasureOverhead(ClinicCase c, int stepsPerRound, int rounds, int seed, DoctorOptions defaults)
    {
        if (rounds < 1 || stepsPerRound < 1) throw new ArgumentOutOfRangeException(nameof(rounds), "need at least one round of one step");
        var variants = new[] { (Name: "none", Options: (DoctorOptions?)null), (Name: "default", Options: defaults), (Name: "every", Options: DoctorOptions.EveryStep) };
        var runners = variants.Select(v => new StepRunner(c, seed, v.Options)).ToList();
        try
        {
            foreach (var r in runners) r.Run(Math.Min(stepsPerRound, 10)); // warm-up (first allocations, probe capture)
            var times = runners.Select(_ => new List<double>()).ToList();
            for (int round = 0; round < rounds; round++)
                for (int k = 0; k < runners.Count; k++)
                {
                    int i = (k + round) % runners.Count;
                    times[i].Add(runners[i].Run(stepsPerRound));
                }
            var d = times[0].Zip(times[1], (a, b) => b / a).ToArray();
            var e = times[0].Zip(times[2], (a, b) => b / a).ToArray();
            return new OverheadResult(c.Name, rounds, stepsPerRound, Median(times[0]) / stepsPerRound * 1000, Median(d), Median(e), d, e);
        }
        finally { foreach (var r in runners) r.Dispose(); }
    }

    static double Median(IEnumerable<double> values)
    {
        var v = values.OrderBy(x => x).ToArray();
        return v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }

    /// <summary>A training run that can be advanced a few steps at a time (for interleaved timing).</summary>
    sealed class StepRunner : IDisposable
    {
        readonly ClinicSetup _s;
        readonly TrainingDoctor? _doctor;
        readonly IEnumerator<(Tensor X, Tensor Y)> _batches;
        readonly Func<Tensor, Tensor, Tensor> _loss;
        long _step;

        public StepRunner(ClinicCase c, int seed, DoctorOptions? options)
        {
            TorchEnvironment.Reseed(seed);
            _s = c.Setup(seed);
            if (options != null) _doctor = TrainingDoctor.Attach(_s.Model, _s.Optimizer, options);
            _loss = _doctor?.Loss(_s.Loss) ?? _s.Loss;
            _batches = _s.Batches.GetEnumerator();
        }

        /// <summary>Runs <paramref name="steps"/> steps; returns the seconds they took.</summary>
        public double Run(int steps)
        {
            var w = Stopwatch.StartNew();
            for (int i = 0; i < steps; i++, _step++)
            {
                using var scope = NewDisposeScope();
                _batches.MoveNext();
                var (x, y) = _batches.Current;
                _s.Model.train();
                _s.Optimizer.zero_grad();
                var loss = _loss(_s.Model.call(x), y);
                loss.backward();
                _doctor?.Observe(_step);
                _s.Optimizer.step();
                _ = loss.item<float>();
            }
            return w.Elapsed.TotalSeconds;
        }

        public void Dispose()
        {
            _doctor?.Detach();
            _batches.Dispose();
            _s.Owned?.Dispose();
            _s.Model.Dispose();
        }
    }
}
