using System.Diagnostics;
using TorchSharp;
using TrainingForensics.Clinic;
using TrainingForensics.Models;
using TrainingForensics.Results;
using TrainingForensics.Runner;
using TrainingForensics.Training;
using static TorchSharp.torch;

namespace TrainingForensics.Benchmarks;

/// <summary>
/// The notebooks' training workloads re-timed bare (issue 17): each workload key of their ledgers ("Sequential, 235,146
/// parameters, SGD · batch [32×784]") is rebuilt from the library's model factories — a model whose description is
/// the key's, with a fresh optimiser of the key's type; else from the clinic case that trains it, with its first batch —
/// and stepped on random data of the key's batch shape in a loop of its own: zero the gradients, forward, loss, backward, optimiser step, as the ledger times a step. The loss is a
/// stand-in (mean of the squared outputs; a real loss on [B×C] outputs costs microseconds), there is no weight decay
/// and no hook. Timed alone, then as two copies side by side on two threads, as the notebooks train their runs.
/// </summary>
internal static class BareSteps
{
    /// <summary>Models the notebooks train, by the batch shape they take (their descriptions must still match the key's).</summary>
    static IEnumerable<Func<nn.Module<Tensor, Tensor>>> ModelsFor(long[] batch) => batch.Length switch
    {
        2 => new Func<nn.Module<Tensor, Tensor>>[]
        {
            () => Mlp.Create(new[] { 784, 128, 10 }),                    // 00
            () => Mlp.Create(new[] { 784, 256, 128, 10 }),               // 02, the clinic's MNIST MLPs
            () => Mlp.Create(new[] { (int)batch[1], 32, 2 }),            // 01's ECG MLP (cross-entropy), the clinic's ECG MLPs
            () => Mlp.Create(new[] { (int)batch[1], 32, 1 }),            // …with one output (BCE)
            () => new StridedConvNet(2), () => new StridedConvNet(1),    // 01's ECG CNN
        },
        4 when batch[1..].SequenceEqual(new long[] { 1, 32, 32 }) => new Func<nn.Module<Tensor, Tensor>>[] { () => ConvBnNet.Create() },   // 03, the clinic's keypoints
        _ => Array.Empty<Func<nn.Module<Tensor, Tensor>>>(),
    };

    static readonly Dictionary<string, string> OptimizerNames = new()
    {
        ["SGD"] = "sgd", ["SGD-momentum"] = "sgd-momentum", ["Adam"] = "adam", ["AdamW"] = "adamw", ["RMSProp"] = "rmsprop",
    };

    sealed record Workload(nn.Module<Tensor, Tensor> Model, optim.Optimizer Optimizer, Tensor X, IDisposable? Owned = null) : IDisposable
    {
        public void Dispose() { Model.Dispose(); X.Dispose(); Owned?.Dispose(); }
    }

    /// <summary>The clinic case whose model, optimiser and first batch make <paramref name="key"/> (its own models, e.g. its small CNN), if any.</summary>
    static Workload? FromClinic(string key)
    {
        foreach (var c in ClinicCases.All())
        {
            var setup = c.Setup(1, CPU);
            var (x, _) = setup.Batches.First();
            if (RunLedger.WorkloadKey(TrainingLoop.ModelText(setup.Model, setup.Optimizer), x.shape) == key)
            {
                setup.Model.train();
                return new Workload(setup.Model, setup.Optimizer, x, setup.Owned);
            }
            setup.Model.Dispose();
            setup.Owned?.Dispose();
        }
        return null;
    }

    /// <summary>The key's model part, optimiser and batch shape; null if it is not of the ledger's form.</summary>
    static (string Model, string Optimizer, long[] Batch)? Parse(string key)
    {
        int at = key.LastIndexOf(" · batch [", StringComparison.Ordinal);
        int comma = at < 0 ? -1 : key.LastIndexOf(", ", at, StringComparison.Ordinal);
        if (at < 0 || comma < 0 || !key.EndsWith(']')) return null;
        string shape = key[(at + " · batch [".Length)..^1];
        var dims = shape.Split('×').Select(d => long.TryParse(d, out long v) ? v : -1).ToArray();
        return dims.All(d => d > 0) ? (key[..comma], key[(comma + 2)..at], dims) : null;
    }

    /// <summary>A fresh copy of the workload <paramref name="key"/>, or null when no factory builds a model the key describes.</summary>
    static Workload? Build(string key)
    {
        if (Parse(key) is not { } k || !OptimizerNames.TryGetValue(k.Optimizer, out var optimizerName)) return null;
        foreach (var make in ModelsFor(k.Batch))
        {
            var model = make();
            if (TrainingLoop.ModelText(model) != k.Model) { model.Dispose(); continue; }
            var optimizer = Optimizers.Create(optimizerName, model.parameters(), 1e-4);
            if (RunLedger.WorkloadKey(TrainingLoop.ModelText(model, optimizer), k.Batch) != key) { model.Dispose(); continue; }
            model.train();
            return new Workload(model, optimizer, randn(k.Batch));
        }
        return FromClinic(key);
    }

    /// <summary>The own time of each of at least <paramref name="minSteps"/> steps, for at least <paramref name="seconds"/> (after 5 untimed).</summary>
    static List<double> StepTimes(Workload w, int minSteps, double seconds)
    {
        var parameters = w.Optimizer.parameters().Distinct().ToArray();
        double Step()
        {
            using var scope = NewDisposeScope();
            var watch = Stopwatch.StartNew();
            foreach (var p in parameters) p.grad = null;
            var loss = w.Model.call(w.X).square().mean();
            loss.backward();
            w.Optimizer.step();
            double t = watch.Elapsed.TotalSeconds;
            loss.item<float>();   // read back outside the step's own time, as the training loop does
            return t;
        }
        for (int i = 0; i < 5; i++) Step();
        var times = new List<double>();
        var total = Stopwatch.StartNew();
        while (times.Count < minSteps || total.Elapsed.TotalSeconds < seconds) times.Add(Step());
        return times;
    }

    /// <summary>
    /// Bare step times of every workload in <paramref name="keys"/> that can be rebuilt: alone (at least 20 steps and
    /// <paramref name="seconds"/>), then two copies side by side for as many steps each. Workloads that cannot be
    /// rebuilt are named through <paramref name="log"/> and keep their in-run median in the table.
    /// </summary>
    public static Dictionary<string, BareStepTime> Time(IEnumerable<string> keys, double seconds, Action<string> log)
    {
        var result = new Dictionary<string, BareStepTime>();
        // smallest batches first: the long-record workloads (tens of MB per step) leave the allocator slower for a while
        foreach (string key in keys.Distinct().OrderBy(k => Parse(k)?.Batch.Aggregate(1L, (a, b) => a * b) ?? long.MaxValue).ThenBy(k => k, StringComparer.Ordinal))
        {
            double alone;
            int steps;
            using (var w = Build(key))
            {
                if (w is null) { log($"not timed bare (no library model is described as {key}): its in-run median is used"); continue; }
                var times = StepTimes(w, 20, seconds);
                (alone, steps) = (Measure.Median(times), times.Count);
            }
            // each copy is built on the thread that steps it: two copies built here and stepped on two other threads ran the
            // fused Adam step (Training/FusedAdam.cs) about 3× slower, which the notebooks' runs, built the same way, do not
            // show (their Adam medians in the run are within 15 % of the alone rate); the cause was not found
            var pair = ConcurrentRuns.Map(new[] { 0, 1 }, _ => 0, _ => { using var w = Build(key)!; return StepTimes(w, steps, 0); }, workers: 2);
            result[key] = new BareStepTime(alone, Measure.Median(pair.SelectMany(t => t)));
        }
        return result;
    }
}
