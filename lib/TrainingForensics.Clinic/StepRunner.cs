using System.Diagnostics;
using TrainingForensics.Diagnostics.Doctor;
using TrainingForensics.Results;
using TrainingForensics.Setup;
using TrainingForensics.Training;
using static TorchSharp.torch;

namespace TrainingForensics.Clinic;

/// <summary>A clinic case's training that can be advanced a few steps at a time (for the interleaved timing of <see cref="ClinicRunner.MeasureOverhead"/>).</summary>
internal sealed class StepRunner : IDisposable
{
    readonly ClinicSetup _s;
    readonly TrainingDoctor? _doctor;
    readonly IEnumerator<(Tensor X, Tensor Y)> _batches;
    readonly Func<Tensor, Tensor, Tensor> _loss;
    readonly RunLedger.WorkloadKeys _workloads; // the ledger's keys of this model's steps
    long _step;

    /// <param name="options">The doctor's options; null: uninstrumented.</param>
    public StepRunner(ClinicCase c, int seed, DoctorOptions? options, Device device)
    {
        TorchEnvironment.Reseed(seed);
        _s = c.Setup(seed, device);
        if (options != null) _doctor = TrainingDoctor.Attach(_s.Model, _s.Optimizer, options);
        _loss = _doctor?.Loss(_s.Loss) ?? _s.Loss;
        _batches = _s.Batches.GetEnumerator();
        _workloads = new RunLedger.WorkloadKeys(TrainingLoop.ModelText(_s.Model, _s.Optimizer));
    }

    /// <summary>Runs <paramref name="steps"/> steps; returns the seconds they took on <paramref name="clock"/> (default: wall time).</summary>
    public double Run(int steps, Func<double>? clock = null)
    {
        clock ??= WallSeconds;
        double start = clock();
        for (int i = 0; i < steps; i++, _step++)
        {
            using var scope = NewDisposeScope();
            _batches.MoveNext();
            var (x, y) = _batches.Current;
            using var ledger = RunLedger.Step(_workloads.For(x.shape));
            _s.Model.train();
            _s.Optimizer.zero_grad();
            var loss = _loss(_s.Model.call(x), y);
            loss.backward();
            _doctor?.Observe(_step);
            _s.Optimizer.step();
            _ = loss.item<float>();
        }
        return clock() - start;
    }

    static double WallSeconds() => Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency;

    public void Dispose()
    {
        _doctor?.Detach();
        _batches.Dispose();
        _s.Owned?.Dispose();
        _s.Model.Dispose();
    }
}
