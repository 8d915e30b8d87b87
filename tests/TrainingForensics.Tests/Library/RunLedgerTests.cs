using TorchSharp;
using TrainingForensics.Models;
using TrainingForensics.Results;
using TrainingForensics.Setup;
using TrainingForensics.Training;
using static TorchSharp.torch;

namespace TrainingForensics.Tests.Library;

public class RunLedgerTests
{
    [Fact]
    public void The_ledger_counts_exactly_the_steps_a_loop_runs_per_model_and_batch_shape()
    {
        RunLedger.Reset();
        TorchEnvironment.Reseed(3);
        var model = Mlp.Create(new[] { 5, 7, 3 });
        var loop = new TrainingLoop(model, optim.SGD(model.parameters(), 0.1), (o, t) => nn.functional.cross_entropy(o, t));
        int hookCalls = 0;
        loop.AfterBackward += _ => hookCalls++;
        var g = new Generator(3);
        var x = randn(new long[] { 40, 5 }, generator: g);
        var y = randint(0, 3, new long[] { 40 }, generator: g);
        IEnumerable<(Tensor, Tensor)> Batches()
        {
            for (long i = 0; i < 40; i += 16) yield return (x.narrow(0, i, Math.Min(16, 40 - i)), y.narrow(0, i, Math.Min(16, 40 - i)));
        }
        loop.Run(_ => Batches(), epochs: 2, evaluate: () => new Dictionary<string, double> { ["acc"] = Evaluation.Run(model, Batches()).Accuracy });

        string full = "Sequential, 66 parameters, SGD · batch [16×5]", last = "Sequential, 66 parameters, SGD · batch [8×5]"; // 5·7+7 + 7·3+3 parameters
        Assert.Equal(4, RunLedger.StepsOf(full));  // 2 epochs × 2 full batches
        Assert.Equal(2, RunLedger.StepsOf(last));  // 2 epochs × the 8-example rest
        Assert.Equal(6, RunLedger.TotalSteps);
        Assert.Equal(loop.StepCount, RunLedger.TotalSteps);
        Assert.Equal(6, hookCalls);
        var snapshot = RunLedger.Snapshot();
        Assert.Equal(new[] { full, last }, snapshot.Workloads.Select(w => w.Workload));
        foreach (WorkloadSteps w in snapshot.Workloads) Assert.Equal(w.Steps * w.MedianStepSeconds, w.PureTrainingSeconds, 12);
        foreach (var category in new[] { RunLedger.Training, RunLedger.Probes, RunLedger.HostReads, RunLedger.Evaluation })
            Assert.True(snapshot.Seconds.ContainsKey(category), $"no {category} recorded");

        // the JSON tf-run writes reads back to the same tallies
        var back = LedgerSnapshot.FromJson(snapshot.ToJson("test"));
        Assert.Equal(snapshot.Workloads, back.Workloads);
        Assert.Equal(snapshot.Seconds.OrderBy(kv => kv.Key), back.Seconds.OrderBy(kv => kv.Key));
        RunLedger.Reset();
        Assert.Equal(0, RunLedger.TotalSteps);
    }

    [Fact]
    public void BatchNorm_shadow_statistics_count_as_probes_not_as_the_steps_own_time()
    {
        double ProbeSecondsOf(bool shadowed)
        {
            RunLedger.Reset();
            TorchEnvironment.Reseed(4);
            var model = nn.Sequential(("fc", nn.Linear(6, 8)), ("bn", nn.BatchNorm1d(8)), ("out", nn.Linear(8, 2)));
            using var shadow = shadowed ? new TrainingForensics.Probes.BatchNormShadow(model, 0.1, 0.5) : null;
            var loop = new TrainingLoop(model, optim.SGD(model.parameters(), 0.1), (o, t) => nn.functional.cross_entropy(o, t));
            var g = new Generator(4);
            for (int i = 0; i < 5; i++) loop.Step(randn(new long[] { 16, 6 }, generator: g), randint(0, 2, new long[] { 16 }, generator: g));
            Assert.Equal(5, RunLedger.TotalSteps);
            return RunLedger.Snapshot().SecondsOf(RunLedger.Probes);
        }
        Assert.Equal(0, ProbeSecondsOf(shadowed: false));   // a loop without probes records none
        Assert.True(ProbeSecondsOf(shadowed: true) > 0, "the shadow's forward hook is not timed as a probe");
        RunLedger.Reset();
    }

    /// <summary>
    /// A loop written by hand (as notebook 04's worked example) runs no library step, but the doctor attached to it
    /// sees each training-mode forward pass: the ledger gets one step per iteration under the model's workload key,
    /// timed without the doctor's own probes. A loop whose steps the library already times (RunLedger.Step around them,
    /// as the clinic's loops) must not count twice, and a detached doctor counts nothing more.
    /// </summary>
    [Fact]
    public void A_loop_of_ones_own_watched_by_the_doctor_counts_its_steps_once()
    {
        (nn.Module<Tensor, Tensor>, optim.Optimizer) Model()
        {
            TorchEnvironment.Reseed(6);
            var m = Mlp.Create(new[] { 6, 8, 2 });
            return (m, optim.SGD(m.parameters(), 0.1));
        }
        void Train(nn.Module<Tensor, Tensor> model, optim.Optimizer opt, TrainingForensics.Diagnostics.Doctor.TrainingDoctor doctor, int steps, bool libraryTimesSteps)
        {
            var lossFn = doctor.Loss((o, t) => nn.functional.cross_entropy(o, t));
            var g = new Generator(6);
            for (int step = 0; step < steps; step++)
            {
                using var scope = NewDisposeScope();
                using var timed = libraryTimesSteps ? RunLedger.Step("timed by the library · batch [16×6]") : null;
                opt.zero_grad();
                var loss = lossFn(model.call(randn(new long[] { 16, 6 }, generator: g)), randint(0, 2, new long[] { 16 }, generator: g));
                loss.backward();
                doctor.Observe(step);
                opt.step();
            }
        }
        var options = TrainingForensics.Diagnostics.Doctor.DoctorOptions.EveryStep;
        RunLedger.Reset();
        var (model, opt) = Model();
        var doctor = TrainingForensics.Diagnostics.Doctor.TrainingDoctor.Attach(model, opt, options);
        Train(model, opt, doctor, 7, libraryTimesSteps: false);
        doctor.Detach();
        string key = RunLedger.WorkloadKey(TrainingLoop.ModelText(model, opt), new long[] { 16, 6 });
        Assert.Equal(7, RunLedger.StepsOf(key));   // six closed by the next forward pass, the last by Detach
        Assert.Equal(7, RunLedger.TotalSteps);
        var s = RunLedger.Snapshot();
        Assert.True(s.SecondsOf(RunLedger.Probes) > 0, "the doctor's own time is not counted as probes");
        model.call(randn(16, 6)).sum().backward();   // after Detach: nothing more is counted
        Assert.Equal(7, RunLedger.TotalSteps);

        RunLedger.Reset();
        (model, opt) = Model();
        doctor = TrainingForensics.Diagnostics.Doctor.TrainingDoctor.Attach(model, opt, options);
        Train(model, opt, doctor, 5, libraryTimesSteps: true);
        doctor.Detach();
        Assert.Equal(5, RunLedger.TotalSteps);   // the library's 5, not 5 more from the doctor
        Assert.Equal(5, RunLedger.StepsOf("timed by the library · batch [16×6]"));
        RunLedger.Reset();
    }

    [Fact]
    public void A_timer_opened_inside_another_is_not_counted_twice()
    {
        RunLedger.Reset();
        using (RunLedger.Timer outer = RunLedger.Time("outer"))
        {
            using (RunLedger.Timer inner = RunLedger.Time("inner")) Thread.Sleep(200);
        }
        var s = RunLedger.Snapshot();
        // the inner 200 ms belong to "inner" only: the outer timer's own time is what is left (far less than 200 ms)
        Assert.True(s.SecondsOf("inner") >= 0.19, $"inner {s.SecondsOf("inner")}");
        Assert.True(s.SecondsOf("outer") < s.SecondsOf("inner"), $"outer {s.SecondsOf("outer")} counts the inner timer's time");
        RunLedger.Reset();
    }

    [Fact]
    public void Runs_side_by_side_share_the_wall_clock_so_their_shares_add_up_to_the_wall_time()
    {
        RunLedger.Reset();
        var wall = System.Diagnostics.Stopwatch.StartNew();
        // two workers, each timing 300 ms of "training" at the same time (sleeping: no core is needed)
        ConcurrentRuns.Map(new[] { 0, 1 }, i => i, _ =>
        {
            using (RunLedger.Time(RunLedger.Training)) Thread.Sleep(300);
            return 0;
        }, workers: 2);
        double elapsed = wall.Elapsed.TotalSeconds;
        using (RunLedger.Time(RunLedger.Evaluation)) Thread.Sleep(100); // one thread alone: its share is its time
        var s = RunLedger.Snapshot();
        Assert.InRange(s.SecondsOf(RunLedger.Training), 0.59, 2 * elapsed);                   // thread seconds: both threads' 300 ms
        Assert.InRange(s.WallSecondsOf(RunLedger.Training), 0.29, elapsed);                // wall share: the 300 ms they overlapped
        Assert.InRange(s.WallSecondsOf(RunLedger.Evaluation), 0.099, s.SecondsOf(RunLedger.Evaluation) + 1e-9);
        Assert.InRange(s.WallSecondsOf(RunLedger.Evaluation), s.SecondsOf(RunLedger.Evaluation) - 1e-3, s.SecondsOf(RunLedger.Evaluation) + 1e-9);

        // the same through the JSON tf-run writes
        var back = LedgerSnapshot.FromJson(s.ToJson("test"));
        Assert.Equal(s.WallSecondsOf(RunLedger.Training), back.WallSecondsOf(RunLedger.Training), 12);
        RunLedger.Reset();
    }

    [Fact]
    public void Pure_training_of_runs_side_by_side_is_divided_by_how_many_ran_at_once()
    {
        // 1,000 steps of 2 ms each (thread time), of which the wall saw half: two runs at once
        var w = new WorkloadSteps("m · batch [1]", 1000, 2.4, 0.002) { WallShareSeconds = 1.2 };
        Assert.Equal(2, w.Concurrency, 12);
        Assert.Equal(2.0, w.PureTrainingThreadSeconds, 12);
        Assert.Equal(1.0, w.PureTrainingSeconds, 12);
        // one run at a time: nothing divided
        var alone = new WorkloadSteps("m · batch [1]", 1000, 2.4, 0.002) { WallShareSeconds = 2.4 };
        Assert.Equal(2.0, alone.PureTrainingSeconds, 12);
    }

    [Fact]
    public void Workload_keys_are_made_once_per_batch_shape()
    {
        var keys = new RunLedger.WorkloadKeys("Sequential, 66 parameters, SGD");
        string full = keys.For(new long[] { 16, 5 });
        Assert.Equal(RunLedger.WorkloadKey("Sequential, 66 parameters, SGD", new long[] { 16, 5 }), full);
        Assert.Same(full, keys.For(new long[] { 16, 5 }));            // the same shape again: the same string, none built
        Assert.Equal("Sequential, 66 parameters, SGD · batch [8×5]", keys.For(new long[] { 8, 5 }));
        Assert.Equal(full, keys.For(new long[] { 16, 5 }));           // and back
    }

    [Fact]
    public void The_workload_key_tells_sgd_with_momentum_from_plain_sgd()
    {
        // momentum keeps a buffer per parameter (a pass more per step): its steps are another workload
        var model = Mlp.Create(new[] { 5, 7, 3 });
        string Text(optim.Optimizer o) => TrainingLoop.ModelText(model, o);
        Assert.Equal("Sequential, 66 parameters, SGD", Text(Optimizers.Create("sgd", model.parameters(), 0.1)));
        Assert.Equal("Sequential, 66 parameters, SGD-momentum", Text(Optimizers.Create("sgd-momentum", model.parameters(), 0.1)));   // momentum in a group's options
        Assert.Equal("Sequential, 66 parameters, SGD-momentum", Text(optim.SGD(model.parameters(), 0.1, momentum: 0.9)));           // in the optimiser's defaults
        Assert.Equal("Sequential, 66 parameters, SGD", Text(optim.SGD(model.parameters(), 0.1)));
        Assert.Equal("Sequential, 66 parameters, Adam", Text(Optimizers.Create("adam", model.parameters(), 0.1)));
    }
}
