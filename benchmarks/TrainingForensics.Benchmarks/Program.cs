using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using TorchSharp;
using TrainingForensics.Benchmarks;
using TrainingForensics.Clinic;
using TrainingForensics.Diagnostics;
using TrainingForensics.Diagnostics.Doctor;
using TrainingForensics.Models;
using TrainingForensics.Probes;
using TrainingForensics.Runner;
using TrainingForensics.Setup;
using TrainingForensics.Training;
using static TorchSharp.torch;
using static TrainingForensics.Benchmarks.Measure;

// usage: dotnet run -c Release --project benchmarks/TrainingForensics.Benchmarks -- [--quick] [--notebooks] [--out FILE]
//   --quick      short timings (a smoke test of the program, numbers not for the record)
//   --notebooks  also each notebook's end-to-end time at its default parameters (minutes)
//   --out FILE   also write the report as Markdown (docs/benchmarks.md is the committed one)
//   --notebooks-out DIR   keep the executed notebooks of --notebooks there (e.g. for scripts/render_pictures.py)
//   --notebook PREFIX  with --notebooks: only the notebooks whose name starts with PREFIX (e.g. 00)
//   --doctor N   only the clinic's doctor overhead, measured N times in a row (its spread under the current load)
var argv = args.ToList();
bool quick = argv.Remove("--quick"), notebooks = argv.Remove("--notebooks");
string? Option(string name)
{
    int i = argv.IndexOf(name);
    if (i < 0 || i + 1 >= argv.Count) return null;
    string v = argv[i + 1];
    argv.RemoveRange(i, 2);
    return v;
}
string? outFile = Option("--out"), notebooksOut = Option("--notebooks-out"), doctorRepeats = Option("--doctor"), notebookPrefix = Option("--notebook");
if (argv.Count > 0)
{
    Console.Error.WriteLine($"unknown argument(s): {string.Join(" ", argv)}\nusage: TrainingForensics.Benchmarks [--quick] [--notebooks [--notebook PREFIX] [--notebooks-out DIR]] [--doctor N] [--out FILE]");
    return 2;
}

double seconds = quick ? 0.3 : 2.5;
var env = TorchEnvironment.Setup(seed: 1, threads: 1, device: "cpu");
if (doctorRepeats != null)
{
    if (!int.TryParse(doctorRepeats, out int repeats) || repeats < 1) { Console.Error.WriteLine($"--doctor needs a positive count, got '{doctorRepeats}'"); return 2; }
    DoctorOverhead.Repeated(repeats, quick ? 2 : 9, Console.WriteLine);
    DoctorOverhead.Detection(quick, Console.WriteLine);
    return 0;
}
var report = new StringBuilder();
void Line(string s = "") { Console.WriteLine(s); report.AppendLine(s); }
var total = Stopwatch.StartNew();

string loadBefore = Machine.LoadAverage();
Line("# TrainingForensics benchmarks");
Line();
Line($"Measured {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC{(quick ? " with --quick (short timings: not for the record)" : "")}.");
Line();
Line("| machine | |");
Line("|---|---|");
Line($"| CPU | {Machine.CpuModel()} |");
Line($"| cores (logical) | {Environment.ProcessorCount} |");
Line($"| OS | {Machine.Os()} |");
Line($"| .NET | {env.DotnetVersion} |");
Line($"| TorchSharp / libtorch | {env.TorchSharpVersion} / {env.LibTorchVersion} (CPU) |");
Line($"| load average (1, 5, 15 min) at start | {loadBefore} |");
Line();

// ---- 1. memory (first: a process that has run nothing else yet) ----------------------------------------
Line("## Memory");
Line();
{
    torch.set_num_threads(1);
    TorchEnvironment.Reseed(1);
    int epochs = quick ? 3 : 10;
    using var mnist = TrainingForensics.Data.Mnist.Load();
    var model = Mlp.Create([784, 256, 128, 10]);
    var loop = new TrainingLoop(model, optim.SGD(model.parameters(), 0.1), (yy, t) => nn.functional.cross_entropy(yy, t), "memory");
    var rss = new List<double> { Machine.RssMiB() }; // data loaded, model built, nothing trained
    loop.EpochEnded += _ => rss.Add(Machine.RssMiB());
    var gen = new Generator(1);
    var sw = Stopwatch.StartNew();
    loop.Run(_ => mnist.Train.Batches(512, shuffle: true, generator: gen, flatten: true), epochs);
    Line($"RSS of this process while the MNIST MLP trains {epochs} epochs at batch 512 on the 60,000 training images " +
         $"({loop.StepCount} steps, {F(sw.Elapsed.TotalSeconds, "N1")} s), measured after a full .NET GC at each epoch end:");
    Line();
    Line("| before training | after epoch 1 | after epoch " + epochs + " | growth epoch 1 → " + epochs + " | per epoch |");
    Line("|---:|---:|---:|---:|---:|");
    double growth = rss[^1] - rss[1];
    Line($"| {F(rss[0])} MiB | {F(rss[1])} MiB | {F(rss[^1])} MiB | {F(growth)} MiB | {F(growth / Math.Max(1, epochs - 1), "N2")} MiB |");
    Line();
    Line("Per epoch end (MiB): " + string.Join(", ", rss.Skip(1).Select(v => F(v))) + ".");
    Line();
}

// ---- 2. roofline ------------------------------------------------------------------------------------------
var roofline = new Dictionary<int, double>();
foreach (int t in new[] { 1, 2 })
{
    torch.set_num_threads(t);
    roofline[t] = MatmulGflops(512, seconds);
}
torch.set_num_threads(1);
double roof = roofline[1];

// ---- 3. training step rates ---------------------------------------------------------------------------------
Line("## Training step rate");
Line();
Line("Steps per second of `TrainingLoop.Step` (forward, loss, backward, SGD step, loss read back) on a fixed batch of " +
     "random data. GFLOP/s counts only the matmul/convolution multiply-adds of forward and backward, from the shapes " +
     "(biases, activations, BatchNorm, loss and optimiser not counted: a lower bound). The roofline is the float32 " +
     $"512×512 matmul rate measured in this run: {F(roofline[1])} GFLOP/s with 1 thread, {F(roofline[2])} with 2.");
Line();
Line("| model | batch | MFLOP/step | threads | steps/s | GFLOP/s | of 1-thread matmul | of matmul, same threads |");
Line("|---|---:|---:|---:|---:|---:|---:|---:|");

(Func<nn.Module<Tensor, Tensor>> Create, Func<int, (Tensor, Tensor)> Batch, Func<Tensor, Tensor, Tensor> Loss) MlpWorkload() =>
    (() => Mlp.Create([784, 256, 128, 10]),
     b => (randn(b, 784), randint(0, 10, b, dtype: int64)),
     (y, t) => nn.functional.cross_entropy(y, t));
(Func<nn.Module<Tensor, Tensor>> Create, Func<int, (Tensor, Tensor)> Batch, Func<Tensor, Tensor, Tensor> Loss) ConvWorkload() =>
    (() => ConvBnNet.Create(),
     b => (randn(b, 1, 32, 32), rand(b, 2, 16, 16)),
     (y, t) => nn.functional.binary_cross_entropy_with_logits(y, t));

var workloads = new List<(string Name, int Batch, (Func<nn.Module<Tensor, Tensor>> Create, Func<int, (Tensor, Tensor)> Batch, Func<Tensor, Tensor, Tensor> Loss) W)>
{
    ("MLP 784-256-128-10", 32, MlpWorkload()), ("MLP 784-256-128-10", 128, MlpWorkload()), ("MLP 784-256-128-10", 512, MlpWorkload()),
    ("conv+BN net (ConvBnNet, 1×32×32)", 8, ConvWorkload()),
};
foreach (var (name, batch, w) in workloads)
{
    foreach (int t in new[] { 1, 2 })
    {
        torch.set_num_threads(t);
        TorchEnvironment.Reseed(1);
        using var scope = NewDisposeScope();
        var model = w.Create();
        var (x, y) = w.Batch(batch);
        var flops = Flops.OfStep(model, x);
        var loop = new TrainingLoop(model, optim.SGD(model.parameters(), 0.01), w.Loss, "bench");
        double rate = Rate(() => loop.Step(x, y), warmup: 5, seconds);
        double gflops = rate * flops.Step / 1e9;
        Line($"| {name} | {batch} | {F(flops.Step / 1e6, "N2")} | {t} | {F(rate, "N0")} | {F(gflops, "N2")} | {F(gflops / roof, "P0")} | {F(gflops / roofline[t], "P0")} |");
    }
}
torch.set_num_threads(1);
Line();

// ---- 4. doctor and probe overhead -------------------------------------------------------------------------------
Line("## Doctor and probe overhead");
Line();
Line("Time per training step with the instrument attached ÷ without (1 thread; rounds of steps interleaved, medians). " +
     "The training doctor's default cadence is `new DoctorOptions()` (detectors every " + new DoctorOptions().Every +
     " steps, BatchNorm checks every " + new DoctorOptions().BatchNormEvery + "); every step is `DoctorOptions.EveryStep`. " +
     "The probes `GradientNorms` and `UpdateRatios` (both attached) run every step by default; shown also every 50.");
Line();
Line("| workload | baseline ms/step | doctor, default | doctor, every step | probes, every 50 | probes, every step |");
Line("|---|---:|---:|---:|---:|---:|");
foreach (var (name, batch, w) in new[] { workloads[1], workloads[3] })
{
    TorchEnvironment.Reseed(1);
    using var scope = NewDisposeScope();
    var (x, y) = w.Batch(batch);
    (TrainingLoop Loop, nn.Module<Tensor, Tensor> Model, optim.Optimizer Optimizer) Fresh()
    {
        var m = w.Create();
        var opt = optim.SGD(m.parameters(), 0.01);
        return (new TrainingLoop(m, opt, w.Loss, "bench"), m, opt);
    }
    var plain = Fresh().Loop;
    var d1 = Fresh();
    var doctor1 = TrainingDoctor.Attach(d1.Model, d1.Optimizer, new DoctorOptions()).AttachTo(d1.Loop);
    var d2 = Fresh();
    var doctor2 = TrainingDoctor.Attach(d2.Model, d2.Optimizer, DoctorOptions.EveryStep).AttachTo(d2.Loop);
    var probes50 = Fresh().Loop;
    new GradientNorms(every: 50).AttachTo(probes50);
    new UpdateRatios(every: 50).AttachTo(probes50);
    var probesEvery = Fresh().Loop;
    new GradientNorms().AttachTo(probesEvery);
    new UpdateRatios().AttachTo(probesEvery);
    // 100 steps a round: the default cadences (50, 100) fire in every round
    var loops = new[] { plain, d1.Loop, d2.Loop, probes50, probesEvery };
    var perStep = InterleavedSecondsPerCall(loops.Select(l => (Action)(() => l.Step(x, y))).ToList(),
        callsPerRound: 100, rounds: quick ? 2 : 7, warmup: 5);
    Line($"| {name}, batch {batch} | {F(perStep[0] * 1e3, "N3")} | " + string.Join(" | ", perStep.Skip(1).Select(s => F(s / perStep[0], "N2") + "×")) + " |");
    doctor1.Dispose();
    doctor2.Dispose();
}
Line();
Line("The clinic's own overhead workloads (`ClinicRunner.MeasureOverhead`: MNIST batches of 64 as in its suite, Adam or SGD-momentum, " +
     "three copies in rotating order, medians of per-round ratios; the issue's targets are ≤ 1.05× at the default cadence and ≤ 1.3× every step):");
Line();
Line("| workload | baseline ms/step | doctor, default | doctor, every step | rounds' range, default | rounds' range, every step | rounds × steps |");
Line("|---|---:|---:|---:|---:|---:|---:|");
foreach (var (c, stepsPerRound) in ClinicCases.OverheadWorkloads())
{
    var o = ClinicRunner.MeasureOverhead(c, stepsPerRound, quick ? 2 : 9, 1, new DoctorOptions());
    Line($"| {c.Name} | {F(o.BaselineStepMs, "N3")} | {F(o.DefaultRatio, "N3")}× | {F(o.EveryStepRatio, "N3")}× | " +
         $"{F(o.DefaultRatios.Min(), "N2")}–{F(o.DefaultRatios.Max(), "N2")} | {F(o.EveryStepRatios.Min(), "N2")}–{F(o.EveryStepRatios.Max(), "N2")} | {o.Rounds} × {o.StepsPerRound} |");
}
Line();
DoctorOverhead.Detection(quick, Line);

// ---- 5. runner ------------------------------------------------------------------------------------------------
Line("## Runner");
Line();
string scratch = Path.Combine(Path.GetTempPath(), "tf-bench-" + Guid.NewGuid().ToString("N")[..8]);
Directory.CreateDirectory(scratch);
try
{
    string one = WriteNotebook(scratch, "one", ["int n = 1;"]);
    string many = WriteNotebook(scratch, "many", ["int n = 0;", .. Enumerable.Range(0, 200).Select(_ => "n++;")]);
    string outDir = Path.Combine(scratch, "out");
    double Time(string nb) { var sw = Stopwatch.StartNew(); Check(RunnerCli.Run([nb, "--out", outDir], TextWriter.Null, TextWriter.Null), nb); return sw.Elapsed.TotalSeconds; }
    double first = Time(one);
    var oneAgain = Enumerable.Range(0, 3).Select(_ => Time(one)).ToList();
    var manyTimes = Enumerable.Range(0, 3).Select(_ => Time(many)).ToList();
    double perCell = (Median(manyTimes) - Median(oneAgain)) / 200;
    Line("In-process `RunnerCli.Run` on generated notebooks (outputs written: .ipynb, .html, figures, index).");
    Line();
    Line("| what | seconds |");
    Line("|---|---:|");
    Line($"| first 1-cell notebook in a fresh process (Roslyn and reference warm-up included) | {F(first, "N2")} |");
    Line($"| the same notebook again (median of 3) | {F(Median(oneAgain), "N3")} |");
    Line($"| per extra cell: (201-cell − 1-cell notebook) ÷ 200, medians of 3 | {F(perCell, "N4")} |");
    Line();
}
finally
{
    try { Directory.Delete(scratch, true); } catch (IOException) { }
}

if (notebooks)
{
    string root = RepositoryRoot();
    Line("Each notebook end to end at its default parameters, each in its own tf-run process as a reader runs it " +
         "(start-up and Roslyn's first compile included; outputs written), with that process's peak resident memory:");
    Line();
    Line("| notebook | seconds | peak RSS | status |");
    Line("|---|---:|---:|---|");
    // tf-run as built with this benchmark (same configuration and framework: bin/<configuration>/<framework>/)
    var self = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
    string tfRun = Path.Combine(root, "lib", "TrainingForensics.Runner", "bin", self.Parent!.Name, self.Name, "tf-run.dll");
    if (!File.Exists(tfRun)) throw new FileNotFoundException($"tf-run is not built at {tfRun}: build the benchmark (it builds tf-run with it)");
    string outDir = notebooksOut ?? Path.Combine(Path.GetTempPath(), "tf-bench-nb-" + Guid.NewGuid().ToString("N")[..8]);
    var efficiency = new List<EfficiencyRow>();
    try
    {
        foreach (var nb in Directory.GetFiles(Path.Combine(root, "notebooks"), "*.ipynb").OrderBy(p => p, StringComparer.Ordinal)
                     .Where(p => notebookPrefix == null || Path.GetFileName(p).StartsWith(notebookPrefix, StringComparison.Ordinal)))
        {
            var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = false, UseShellExecute = false, WorkingDirectory = root };
            foreach (var a in new[] { tfRun, nb, "--out", outDir, "--device", "cpu" }) start.ArgumentList.Add(a);
            var (rc, wall, peak) = Machine.RunMeasured(start);
            string name = Path.GetFileNameWithoutExtension(nb);
            Line($"| {name} | {F(wall, "N0")} | {F(peak)} MiB | {(rc == 0 ? "ok" : $"FAILED (exit {rc})")} |");
            if (rc == 0) efficiency.Add(NotebookEfficiency.Read(name, wall, outDir));
        }
    }
    finally
    {
        if (notebooksOut == null)
            try { Directory.Delete(outDir, true); } catch (IOException) { }
    }
    Line();
    // every workload re-timed bare in this process, after the notebooks (nothing else runs meanwhile)
    var notTimed = new List<string>();
    var bare = BareSteps.Time(efficiency.SelectMany(r => r.Ledger.Workloads.Select(w => w.Workload)), quick ? 0.2 : 1.0, notTimed.Add);
    EfficiencySection(efficiency.Select(r => r with { Bare = bare }).ToList(), notTimed, Line);
}
else
{
    Line("Notebooks end to end: not measured in this run (`--notebooks` adds them; minutes).");
    Line();
}

Line($"Load average at the end: {Machine.LoadAverage()}. Total time {F(total.Elapsed.TotalSeconds, "N0")} s.");
Line();
Line("Rerun: `dotnet run -c Release --project benchmarks/TrainingForensics.Benchmarks -- --notebooks --out docs/benchmarks.md` " +
     "(on a quiet machine; without `--notebooks` it takes a few minutes, most of them the clinic run at both cadences).");

if (outFile != null)
{
    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(outFile))!);
    File.WriteAllText(outFile, report.ToString());
    Console.Error.WriteLine($"written: {outFile}");
}
return 0;

// The notebook-efficiency table of issue 17, from the ledgers (NAME.ledger.json) of the runs just timed.
static void EfficiencySection(IReadOnlyList<EfficiencyRow> rows, IReadOnlyList<string> notTimed, Action<string> line)
{
    line("### Notebook efficiency");
    line("");
    line("The same runs against their pure training cost. Each run's ledger (`NAME.ledger.json`, written by tf-run beside the figures) " +
         "counts the training steps per workload (model, optimiser and batch shape) with each step's own time (forward, loss, backward, " +
         "optimiser step; the loss read-back and hooks that time themselves as probes excluded: the loop's event handlers, the doctor, BatchNorm shadows), and the seconds of evaluation passes, probes and the doctor, " +
         "host reads, chart building, Roslyn compiling and data loading (timers nest: each counts its own time). Runs trained side " +
         "by side (one per core) each count their time as a share of the wall clock: while k run at once, a second of one run's " +
         "time is 1/k of a wall second, so every column is in wall seconds and the columns add up to the wall time. Runs at once = " +
         "the steps' thread seconds ÷ their wall seconds. Pure training = each workload's steps at its bare step time, measured by " +
         "this benchmark right after the notebooks: the same model, optimiser and batch shape rebuilt from the library's model " +
         "factories and stepped on random data in a loop of its own (zero the gradients, forward, a stand-in loss, backward, optimiser " +
         "step; no hooks, no weight decay), alone and as two copies side by side (each built on the thread that steps it); with k runs at once on average, a share k − 1 " +
         "of the wall time counts at the side-by-side rate (two steps at a time) and the rest at the alone rate. A workload the " +
         "benchmark cannot rebuild keeps its median step time in the run ÷ the runs at once (steps timed bare says how much of " +
         "the training that is). Steps as run = the steps' wall seconds as they ran (outliers, contention and hooks' effects on " +
         "caches included). A loop written in the notebook itself (04's worked example) is seen through the doctor attached to it: " +
         "each iteration, from one training-mode forward pass to the next, is a step (batch and loss read-back included, the doctor's " +
         "own time not). " +
         "Other = wall − every category (process start-up, cell code outside the timers, writing outputs; and training in a " +
         "loop of the notebook's own with no doctor attached, as 04's unwatched run, which the ledger does not see). Targets: wall ≤ 1.3 × pure training + 10 s, and on a quiet machine 00 ≤ 10 s, 01 and 04 ≤ 45 s, " +
         "02 ≤ 150 s, 03 ≤ 120 s.");
    line("");
    foreach (var l in NotebookEfficiency.Table(rows)) line(l);
    line("");
    line("Workloads per notebook:");
    line("");
    foreach (var l in NotebookEfficiency.Workloads(rows)) line(l);
    line("");
    foreach (var l in notTimed) line($"- {l}");
    if (notTimed.Count > 0) line("");
}

static void Check(int rc, string nb)
{
    if (rc != 0) throw new InvalidOperationException($"the runner failed on {nb} (exit {rc})");
}

static string WriteNotebook(string dir, string name, IEnumerable<string> cells)
{
    int i = 0;
    var nb = new JsonObject
    {
        ["cells"] = new JsonArray(cells.Select(src => (JsonNode?)new JsonObject
        {
            ["cell_type"] = "code", ["execution_count"] = null, ["id"] = $"c{++i}",
            ["metadata"] = new JsonObject { ["polyglot_notebook"] = new JsonObject { ["kernelName"] = "csharp" } },
            ["outputs"] = new JsonArray(), ["source"] = src,
        }).ToArray()),
        ["metadata"] = new JsonObject
        {
            ["kernelspec"] = new JsonObject { ["display_name"] = ".NET (C#)", ["language"] = "C#", ["name"] = ".net-csharp" },
            ["language_info"] = new JsonObject { ["name"] = "polyglot-notebook" },
        },
        ["nbformat"] = 4, ["nbformat_minor"] = 5,
    };
    string path = Path.Combine(dir, name + ".ipynb");
    File.WriteAllText(path, nb.ToJsonString());
    return path;
}

static string RepositoryRoot()
{
    foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        for (var d = new DirectoryInfo(start); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Directory.Packages.props")) && Directory.Exists(Path.Combine(d.FullName, "notebooks")))
                return d.FullName;
    throw new DirectoryNotFoundException("run from inside the repository (no notebooks/ next to Directory.Packages.props found)");
}
