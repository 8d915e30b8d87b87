using System.Collections.Concurrent;

namespace TrainingForensics.Runner;

/// <summary>How a cell's wait ended.</summary>
internal enum CellEnd { Finished, TimedOut, Interrupted }

/// <summary>
/// The thread a notebook's cells run on, one after another (so a cell's thread-local state, such as TorchSharp's
/// no-grad mode, reaches the next cell as it does in a kernel). The runner waits for each cell with a limit and
/// the interruption, which a cell running on the runner's own thread could not give it. A cell that does not stop
/// when asked keeps its thread; the thread is a background one, so it never holds the process open.
/// </summary>
internal sealed class CellThread : IDisposable
{
    readonly BlockingCollection<Action> _work = new();
    readonly Thread _thread;

    public CellThread(string name)
    {
        // the main thread's stack size: Roslyn and deep notebook code ran there until cells moved to this thread
        _thread = new Thread(Loop, 8 * 1024 * 1024) { IsBackground = true, Name = name };
        _thread.Start();
    }

    void Loop()
    {
        try
        {
            foreach (var work in _work.GetConsumingEnumerable()) work();
        }
        catch (ThreadInterruptedException)
        {
            // a stop request that reached the thread after its cell had ended: the notebook is over, so is the thread
        }
    }

    /// <summary>A cell's work started on the thread: <see cref="Wait"/> for it, read <see cref="Error"/> once finished.</summary>
    public sealed class Job
    {
        internal readonly ManualResetEvent Done = new(false);
        internal readonly ManualResetEvent Running = new(false);
        public Exception? Error { get; internal set; }
        public bool IsFinished => Done.WaitOne(0);

        /// <summary>Called by the work once the cell is compiled: its time limit counts from here.</summary>
        public void MarkRunning() => Running.Set();
    }

    public Job Start(Action<Job> work)
    {
        var job = new Job();
        _work.Add(() =>
        {
            try { work(job); }
            catch (Exception e) { job.Error = e; }
            finally { job.Done.Set(); }
        });
        return job;
    }

    /// <summary>
    /// Waits until the job finishes, the interruption is requested, or <paramref name="limit"/> (null: none) passes
    /// after the job <see cref="Job.MarkRunning">started running</see>: compiling a cell does not count against it,
    /// so the first cell of a cold process (Roslyn's own start-up takes seconds) is not cut short by a tight limit.
    /// </summary>
    public static CellEnd Wait(Job job, TimeSpan? limit, Interruption? interruption)
    {
        WaitHandle[] With(WaitHandle h) => interruption == null ? [h] : [h, interruption.WaitHandle];
        int which = WaitHandle.WaitAny(With(job.Running).Prepend(job.Done).ToArray());
        if (which == 2 && !job.IsFinished) return CellEnd.Interrupted; // [Done, Running, interruption]
        if (!job.IsFinished)
        {
            int ms = limit is { } l ? (int)Math.Clamp(l.TotalMilliseconds, 0, int.MaxValue - 1) : Timeout.Infinite;
            which = WaitHandle.WaitAny(With(job.Done), ms);
            if (!job.IsFinished) return which == 1 ? CellEnd.Interrupted : CellEnd.TimedOut;
        }
        return CellEnd.Finished; // it finished, even if the limit or a signal came at the same moment
    }

    /// <summary>
    /// Asks the running cell to stop: a cell blocked in Sleep, Wait or Join gets a ThreadInterruptedException at once
    /// (.NET cannot stop a thread that computes). True when the job ended within <paramref name="grace"/>.
    /// </summary>
    public bool Stop(Job job, TimeSpan grace)
    {
        _thread.Interrupt();
        return job.Done.WaitOne(grace);
    }

    /// <summary>No more cells; the thread ends when its cell does (never waited for: a runaway cell must not block the runner).</summary>
    public void Dispose() => _work.CompleteAdding();
}
