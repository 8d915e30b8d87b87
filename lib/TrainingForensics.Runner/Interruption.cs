using System.Runtime.InteropServices;

namespace TrainingForensics.Runner;

/// <summary>
/// A request to stop the run, from SIGINT or SIGTERM (<see cref="InstallSignalHandlers"/>) or from a test. The
/// running cell is abandoned, what ran so far is written, and the process exits 130 (SIGINT) or 143 (SIGTERM).
/// Only the first signal is handled: a second one gets the default action, so a stuck write can still be killed.
/// </summary>
public sealed class Interruption : IDisposable
{
    readonly ManualResetEvent _requested = new(false);
    readonly List<PosixSignalRegistration> _registrations = [];
    int _signal; // 0 until requested, then the signal's number (2 SIGINT, 15 SIGTERM)

    public bool IsRequested => Volatile.Read(ref _signal) != 0;

    /// <summary>"SIGINT" or "SIGTERM" (the request's signal).</summary>
    public string SignalName => Volatile.Read(ref _signal) == 15 ? "SIGTERM" : "SIGINT";

    /// <summary>The shell's convention for a process ended by a signal: 128 + its number.</summary>
    public int ExitCode => 128 + (IsRequested ? Volatile.Read(ref _signal) : 2);

    internal WaitHandle WaitHandle => _requested;

    /// <summary>Asks the run to stop; false when a stop was already requested (the caller then leaves the signal to its default action).</summary>
    public bool Request(PosixSignal signal)
    {
        int number = signal == PosixSignal.SIGTERM ? 15 : 2;
        if (Interlocked.CompareExchange(ref _signal, number, 0) != 0) return false;
        _requested.Set();
        return true;
    }

    /// <summary>An interruption that SIGINT and SIGTERM request (the process's own handlers, until disposed).</summary>
    public static Interruption InstallSignalHandlers()
    {
        var interruption = new Interruption();
        foreach (var signal in new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM })
            interruption._registrations.Add(PosixSignalRegistration.Create(signal, context =>
            {
                // Cancel: the runtime does not end the process; the run stops at its running cell and writes what it has
                if (interruption.Request(context.Signal)) context.Cancel = true;
            }));
        return interruption;
    }

    public void Dispose()
    {
        foreach (var r in _registrations) r.Dispose();
        _registrations.Clear();
    }
}
