using TorchSharp;
using TrainingForensics.Results;

namespace TrainingForensics.Training;

/// <summary>
/// Independent training runs (seeds, variants) side by side: each on a thread of its own, while libtorch keeps one
/// intra-op thread (so two runs on two cores do not fight over OpenMP's spinning threads). A run gives the same
/// numbers as when trained alone, provided everything random in it comes from its own seeded generators once it
/// starts (batch order, dropout masks) — so the runs are built one after another on the calling thread, where
/// models draw their initial weights from the global seed, and only their training runs concurrently.
/// </summary>
public static class ConcurrentRuns
{
    /// <summary>
    /// How many runs train at once by default: TF_RUN_WORKERS if set, else the processor count, at most 4 (each run
    /// keeps a batch and a model in memory; more workers than cores only adds switching).
    /// </summary>
    public static int DefaultWorkers
    {
        get
        {
            string? v = Environment.GetEnvironmentVariable("TF_RUN_WORKERS");
            if (!string.IsNullOrWhiteSpace(v))
                return int.TryParse(v, out int n) && n >= 1 ? n : throw new ArgumentException($"TF_RUN_WORKERS='{v}' is not a positive whole number");
            return Math.Clamp(Environment.ProcessorCount, 1, 4);
        }
    }

    /// <summary>
    /// Builds every run with <paramref name="build"/> on the calling thread, in order, then trains them with
    /// <paramref name="train"/>, at most <paramref name="workers"/> at a time; the results come back in input order.
    /// The first run that throws stops the rest from starting and its exception is rethrown (others already
    /// running finish first). <paramref name="started"/> is told each run's index as it starts (progress; calls
    /// never overlap).
    /// </summary>
    public static IReadOnlyList<TResult> Map<TItem, TRun, TResult>(IReadOnlyList<TItem> items, Func<TItem, TRun> build,
        Func<TRun, TResult> train, int? workers = null, Action<int>? started = null)
    {
        int n = workers ?? DefaultWorkers;
        if (n < 1) throw new ArgumentOutOfRangeException(nameof(workers), n, "need at least one worker");
        var runs = items.Select(build).ToList();
        var results = new TResult[runs.Count];
        if (n == 1 || runs.Count <= 1)
        {
            for (int i = 0; i < runs.Count; i++) { started?.Invoke(i); results[i] = train(runs[i]); }
            return results;
        }
        int next = -1;
        Exception? failure = null;
        var gate = new object();
        void Worker()
        {
            using var mark = RunLedger.Worker(); // the ledger divides this thread's time among the runs side by side
            while (true)
            {
                int i;
                lock (gate)
                {
                    if (failure != null || next + 1 >= runs.Count) return;
                    i = ++next;
                    started?.Invoke(i); // under the lock: a progress callback need not be thread-safe
                }
                try
                {
                    results[i] = train(runs[i]);
                }
                catch (Exception e)
                {
                    lock (gate) failure ??= e;
                    return;
                }
            }
        }
        // dedicated threads: TorchSharp's dispose scopes and no-grad state are per thread, and a run holds its
        // thread for its whole length (the thread pool would grow and shrink under it)
        var threads = Enumerable.Range(0, Math.Min(n, runs.Count)).Select(_ => new Thread(Worker, 16 * 1024 * 1024) { IsBackground = true }).ToList();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        if (failure != null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        return results;
    }
}
