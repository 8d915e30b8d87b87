using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.Data.Analysis;
using Plotly.NET;
using TrainingForensics.Charts;

namespace TrainingForensics.Diagnostics.Doctor;

/// <summary>
/// What the <see cref="TrainingDoctor"/> found: a table of findings (check, first step, evidence, explanation,
/// fix, notebook), a timeline chart, text for a terminal and JSON.
/// </summary>
public sealed class DoctorReport
{
    readonly IReadOnlyList<(long Step, double Loss)> _losses;
    readonly IReadOnlyList<(long Step, double Loss)> _probeLosses;

    internal DoctorReport(IEnumerable<Check> checks, IEnumerable<(long, double)> losses, IEnumerable<(long, double)> probeLosses, long steps, DoctorOptions options, IReadOnlyDictionary<string, double>? vitals = null)
    {
        Diagnosis = new DiagnosisReport(checks);
        _losses = losses.ToList();
        _probeLosses = probeLosses.ToList();
        StepsObserved = steps;
        Options = options;
        Vitals = new Dictionary<string, double>(vitals ?? new Dictionary<string, double>());
    }

    /// <summary>Extremes of the measured quantities (max_update_ratio, max_grad_growth, max_dead_relu_fraction, …).</summary>
    public IReadOnlyDictionary<string, double> Vitals { get; }

    /// <summary>The findings as the shared <see cref="DiagnosisReport"/>.</summary>
    public DiagnosisReport Diagnosis { get; }
    public IReadOnlyList<Finding> Findings => Diagnosis.Findings;
    public IReadOnlyList<string> ChecksRun => Diagnosis.ChecksRun;
    public bool Healthy => Diagnosis.Healthy;
    public long StepsObserved { get; }
    public DoctorOptions Options { get; }

    /// <summary>The finding of the named check, or null.</summary>
    public Finding? Get(string check) => Findings.FirstOrDefault(f => f.Check == check);

    /// <summary>Whether the named check fired.</summary>
    public bool Has(string check) => Get(check) != null;

    /// <summary>Step of the first finding (null when healthy).</summary>
    public long? FirstFindingStep => Findings.Count == 0 ? null : Findings.Min(f => f.FirstStep);

    /// <summary>One row per finding: check, first_step, finding, evidence, fix, notebook.</summary>
    public DataFrame ToDataFrame() => Diagnosis.ToDataFrame();

    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"Training doctor: {StepsObserved} steps observed, {ChecksRun.Count} detectors (every {Options.Every} steps; BatchNorm every {Options.BatchNormEvery}).");
        sb.Append(Diagnosis.ToString());
        return sb.ToString();
    }

    public string ToJson() => JsonSerializer.Serialize(new
    {
        steps_observed = StepsObserved,
        every = Options.Every,
        batchnorm_every = Options.BatchNormEvery,
        checks = ChecksRun,
        healthy = Healthy,
        findings = Findings.Select(f => new
        {
            check = f.Check, first_step = f.FirstStep, summary = f.Summary, fix = f.Fix, notebook = f.Notebook,
            evidence = f.Evidence.ToDictionary(e => e.Key, e => double.IsFinite(e.Value) ? (double?)e.Value : null),
        }),
    }, new JsonSerializerOptions { WriteIndented = true });

    /// <summary>
    /// Timeline: the training loss per step (and the probe-batch loss), with a marker at the step where each
    /// finding first fired; below, one row per check that fired.
    /// </summary>
    public GenericChart Timeline(string title = "Training doctor: findings over steps")
    {
        var traces = new List<Dictionary<string, object>>
        {
            new()
            {
                ["type"] = "scatter", ["mode"] = "lines", ["name"] = "training loss",
                ["x"] = _losses.Select(l => (double)l.Step).ToArray(), ["y"] = _losses.Select(l => Clean(l.Loss)).ToArray(),
                ["xaxis"] = "x", ["yaxis"] = "y", ["line"] = new Dictionary<string, object> { ["color"] = "#1f77b4", ["width"] = 1.5 },
            },
        };
        if (_probeLosses.Count > 0)
            traces.Add(new()
            {
                ["type"] = "scatter", ["mode"] = "lines+markers", ["name"] = "probe batch (eval mode)",
                ["x"] = _probeLosses.Select(l => (double)l.Step).ToArray(), ["y"] = _probeLosses.Select(l => Clean(l.Loss)).ToArray(),
                ["xaxis"] = "x", ["yaxis"] = "y", ["line"] = new Dictionary<string, object> { ["color"] = "#7f7f7f", ["dash"] = "dot" },
            });
        var fired = Findings.ToList();
        traces.Add(new()
        {
            ["type"] = "scatter", ["mode"] = "markers+text", ["name"] = "first fired",
            ["x"] = fired.Select(f => (double)f.FirstStep).ToArray(), ["y"] = fired.Select(f => f.Check).ToArray(),
            ["text"] = fired.Select(f => $"step {f.FirstStep}").ToArray(), ["textposition"] = "middle right",
            ["hovertext"] = fired.Select(f => f.Summary).ToArray(),
            ["xaxis"] = "x", ["yaxis"] = "y2", ["marker"] = new Dictionary<string, object> { ["color"] = "#d62728", ["size"] = 11, ["symbol"] = "diamond" },
        });
        double maxStep = Math.Max(1, _losses.Count > 0 ? _losses[^1].Step : 1);
        var layout = new Dictionary<string, object>
        {
            ["title"] = new Dictionary<string, object> { ["text"] = title },
            ["height"] = 300 + 28 * Math.Max(1, fired.Count),
            ["width"] = 900,
            ["margin"] = new Dictionary<string, object> { ["t"] = 60, ["b"] = 50, ["l"] = 230, ["r"] = 30 },
            ["xaxis"] = new Dictionary<string, object> { ["title"] = new Dictionary<string, object> { ["text"] = "step" }, ["range"] = new[] { -0.02 * maxStep, 1.15 * maxStep }, ["anchor"] = "y2" },
            ["yaxis"] = new Dictionary<string, object> { ["domain"] = new[] { 0.45, 1.0 }, ["title"] = new Dictionary<string, object> { ["text"] = "loss" }, ["type"] = "log", ["exponentformat"] = "e" },
            ["yaxis2"] = new Dictionary<string, object> { ["domain"] = new[] { 0.0, 0.38 }, ["type"] = "category", ["title"] = new Dictionary<string, object> { ["text"] = fired.Count == 0 ? "no findings" : "" } },
            ["legend"] = new Dictionary<string, object> { ["orientation"] = "h", ["y"] = 1.12 },
        };
        return TrainingForensics.Charts.PlotlyFigure.Build(traces, layout);
    }

    static object? Clean(double v) => double.IsFinite(v) && v > 0 ? v : null;

    /// <summary>Minimal HTML (a table) for notebook display.</summary>
    public string ToHtml()
    {
        var sb = new StringBuilder();
        sb.Append($"<p><b>Training doctor</b>: {StepsObserved} steps observed, {ChecksRun.Count} detectors. ");
        sb.Append(Healthy ? "No findings.</p>" : $"{Findings.Count} finding(s):</p><table><tr><th>check</th><th>first step</th><th>finding</th><th>fix</th><th>notebook</th></tr>");
        foreach (var f in Findings)
            sb.Append(CultureInfo.InvariantCulture, $"<tr><td>{Enc(f.Check)}</td><td>{f.FirstStep}</td><td>{Enc(f.Summary)}</td><td>{Enc(f.Fix)}</td><td>{Enc(f.Notebook)}</td></tr>");
        if (!Healthy) sb.Append("</table>");
        return sb.ToString();
    }

    static string Enc(string s) => System.Net.WebUtility.HtmlEncode(s);
}
