using System.Text.RegularExpressions;
using TorchSharp;
using TrainingForensics.Data;
using static TorchSharp.torch;

namespace TrainingForensics.Tests.Library;

/// <summary>
/// The device is threaded, not assumed: every tensor the library creates names its device (or says why it belongs on
/// the host), data sets move to a device once and cut their batches there. Only a CPU libtorch is served here, so the
/// checks that need a second device use the "meta" device: tensors with shapes and no data, on which a forgotten
/// device shows up as a tensor left on the CPU.
/// </summary>
public class DeviceTests
{
    static readonly Regex Factory = new(@"(?<![\w.])(?:torch\.)?(tensor|zeros|ones|empty|full|arange|randn|rand|randint|randperm|eye|linspace|from_array)\(");

    /// <summary>Library calls that create a tensor without naming a device and without a "// host:" reason on their line.</summary>
    internal static IEnumerable<string> UnplacedCreations(string file, string text)
    {
        foreach (Match m in Factory.Matches(text))
        {
            int lineStart = text.LastIndexOf('\n', m.Index) + 1, lineEnd = text.IndexOf('\n', m.Index);
            string line = text[lineStart..(lineEnd < 0 ? text.Length : lineEnd)];
            if (line.TrimStart().StartsWith("//")) continue;
            int i = m.Index + m.Length, depth = 1;
            while (depth > 0 && i < text.Length) { depth += text[i] == '(' ? 1 : text[i] == ')' ? -1 : 0; i++; }
            string call = text[m.Index..i];
            if (Regex.IsMatch(call, @"\bdevice\b|\.device\b|Device\b") || line.Contains("// host:")) continue;
            yield return $"{file}:{text[..m.Index].Count(c => c == '\n') + 1}: {line.Trim()}";
        }
    }

    /// <summary>The library's and the clinic's sources, named from lib/.</summary>
    static IEnumerable<(string Relative, string Text)> LibrarySources() =>
        new[] { "TrainingForensics", "TrainingForensics.Clinic" }.SelectMany(project =>
            TestPaths.Sources(Path.Combine(TestPaths.RepositoryRoot, "lib", project)).Select(f => ($"{project}/{f.Relative}", f.Text)));

    [Fact]
    public void Library_code_names_the_device_of_every_tensor_it_creates()
    {
        var problems = LibrarySources().SelectMany(f => UnplacedCreations(f.Relative, f.Text)).ToList();
        Assert.True(problems.Count == 0, "tensors created without a device (pass the device of the data/model in reach, or add `// host: why`):\n" + string.Join("\n", problems));
    }

    /// <summary>Reads of a tensor's memory (<c>.data&lt;T&gt;()</c>, CPU tensors only) not preceded by <c>.cpu()</c> (or the case studies' <c>.On(CPU)</c>) in their statement.</summary>
    internal static IEnumerable<string> DeviceMemoryReads(string file, string text)
    {
        foreach (Match m in Regex.Matches(text, @"\.data<\w+>\("))
        {
            int statementStart = Math.Max(text.LastIndexOf(';', m.Index), text.LastIndexOf('{', m.Index)) + 1;
            int lineStart = text.LastIndexOf('\n', m.Index) + 1, lineEnd = text.IndexOf('\n', m.Index);
            string line = text[lineStart..(lineEnd < 0 ? text.Length : lineEnd)];
            if (line.TrimStart().StartsWith("//") || line.Contains("// host:") || text[statementStart..m.Index].Contains(".cpu()") || text[statementStart..m.Index].Contains(".On(CPU)")) continue;
            yield return $"{file}:{text[..m.Index].Count(c => c == '\n') + 1}: {line.Trim()}";
        }
    }

    [Fact]
    public void Library_code_copies_a_tensor_to_the_host_before_reading_its_memory()
    {
        var problems = LibrarySources().SelectMany(f => DeviceMemoryReads(f.Relative, f.Text)).ToList();
        Assert.True(problems.Count == 0, "data<T>() on a tensor that may live on a GPU (add .cpu() first, or `// host: why`):\n" + string.Join("\n", problems));
        Assert.Single(DeviceMemoryReads("a.cs", "var v = x.sum(1).data<float>();"));
        Assert.Empty(DeviceMemoryReads("a.cs", "var v = x.sum(1).cpu().data<float>();"));
    }

    [Fact]
    public void The_scan_flags_a_creation_without_a_device_and_accepts_a_named_one()
    {
        Assert.Single(UnplacedCreations("a.cs", "var z = torch.zeros(3, 4);"));
        Assert.Single(UnplacedCreations("a.cs", "var z = tensor(new[] { 1L, 2L });"));
        Assert.Empty(UnplacedCreations("a.cs", "var z = torch.zeros(3, 4, device: x.device);"));
        Assert.Empty(UnplacedCreations("a.cs", "var z = zeros(n, x.dtype, x.device);"));
        Assert.Empty(UnplacedCreations("a.cs", "var z = zeros(n);  // host: a self-check"));
        Assert.Empty(UnplacedCreations("a.cs", "var z = x.new_zeros(3); var y = w.ones_like();"));
    }

    [Fact]
    public void Data_sets_move_to_a_device_once_and_index_their_batches_there()
    {
        // libtorch's C++ build has no meta kernel for index_select, so the batches themselves are cut on the CPU
        // below; on meta the test sees where the sets and their batch indices are created
        var meta = new Device(DeviceType.META);
        using var host = new ImageSet("tiny", zeros(8, 1, 2, 2), zeros(8, dtype: ScalarType.Int64));
        var onMeta = host.To(meta);
        Assert.Equal(DeviceType.META, onMeta.Device.type);
        Assert.Equal(DeviceType.META, onMeta.Labels.device_type);
        Assert.All(BatchOrder.Indices(8, 3, shuffle: true, new Generator(1), dropLast: false, meta), i => Assert.Equal(DeviceType.META, i.device_type));
        Assert.Equal(DeviceType.META, new EcgSet(zeros(6, 10), zeros(6, dtype: ScalarType.Int64), new EcgOptions()).To(meta).Labels.device_type);
        Assert.Equal(DeviceType.META, EcgGenerator.Generate(new EcgOptions { Records = 4, Length = 300 }, meta).Signals.device_type);
        var keypoints = new KeypointGenerator(1).Generate(4, device: meta);
        Assert.True(new[] { keypoints.Images, keypoints.Heatmaps, keypoints.Keypoints }.All(t => t.device_type == DeviceType.META));
        Assert.Equal(DeviceType.META, new KeypointGenerator(1).Batch(0, 2, meta).Y.device_type);

        // the same order for a seed wherever the set lives: drawn on the CPU generator
        var a = BatchOrder.Indices(8, 8, true, new Generator(7), false, CPU).Single().data<long>().ToArray();
        using var scope = NewDisposeScope();
        var (x, y) = host.Batches(8, shuffle: true, generator: new Generator(7), flatten: true).First();
        Assert.Equal(new long[] { 8, 4 }, x.shape);
        Assert.Equal(8, a.Distinct().Count());
    }

    [Fact]
    public void A_batch_on_another_device_than_the_model_is_refused_with_the_fix()
    {
        var model = TrainingForensics.Models.Mlp.Create(new[] { 4, 2 });
        var loop = new TrainingForensics.Training.TrainingLoop(model, optim.SGD(model.parameters(), 0.1),
            (o, y) => nn.functional.cross_entropy(o, y), "mixed");
        var meta = new Device(DeviceType.META);
        var e = Assert.Throws<InvalidOperationException>(() => loop.Step(zeros(3, 4, device: meta), zeros(3, dtype: ScalarType.Int64, device: meta)));
        Assert.Contains("model is on cpu", e.Message);
        Assert.Contains("inputs are on meta", e.Message);
        Assert.Contains("env.Device", e.Message);
        Assert.Equal(0, loop.StepCount);
    }

    /// <summary>
    /// Runs a case study on the meta device. libtorch's C++ build lacks meta kernels for some operators and meta
    /// tensors hold no values, so the run stops somewhere: at such an operator or at a read of a value, which means
    /// every tensor met so far was on meta. A tensor left on the CPU fails earlier and differently: libtorch refuses
    /// the mix ("Expected all tensors to be on the same device", "cpu and meta"), or the loop names both devices.
    /// </summary>
    static string StopOnMeta(Action run)
    {
        var e = Record.Exception(run);
        Assert.NotNull(e); // a meta run cannot finish: it has no values to read
        string message = e is System.Reflection.TargetInvocationException { InnerException: { } inner } ? inner.Message : e.Message;
        Assert.DoesNotMatch("same device|cpu and meta|meta and cpu|model is on|are on cpu", message);
        // stopped because of meta itself (no kernel for it, no data to read), not something unrelated
        Assert.Matches("(?i)meta|convolution_overrideable not implemented", message);
        return message;
    }

    [Fact]
    public void Each_case_study_creates_its_model_and_data_on_the_device_it_is_given()
    {
        var meta = new Device(DeviceType.META);
        using var ecg = EcgGenerator.Generate(new EcgOptions { Records = 8, Length = 400, Seed = 1 });
        StopOnMeta(() => TrainingForensics.CaseStudies.LossPlateau.EcgExperiment.Run(
            new TrainingForensics.CaseStudies.LossPlateau.EcgRunConfig { Steps = 2, BatchSize = 4, Device = meta }, ecg, ecg));
        StopOnMeta(() => TrainingForensics.CaseStudies.BatchNormTrainVsEval.KeypointTraining.Train(
            new TrainingForensics.CaseStudies.BatchNormTrainVsEval.KeypointTrainingConfig { Steps = 2, EvalEvery = 1, Device = meta }));
        using var images = new ImageSet("tiny", rand(32, 1, 28, 28), randint(0, 10, 32));
        StopOnMeta(() => new TrainingForensics.CaseStudies.LossScale.LossScaleExperiment(
                new TrainingForensics.CaseStudies.LossScale.LossScaleConfig { TrainingSet = images, TestSet = images, Epochs = 1, BatchSize = 8, Device = meta })
            .Train("a", TrainingForensics.Training.Reduction.Mean, 0.01, "torch", 1, maxSteps: 2));
        // and on the CPU they run, with the model where the data is
        var cpuModel = TrainingForensics.CaseStudies.LossPlateau.EcgExperiment.CreateModel(new TrainingForensics.CaseStudies.LossPlateau.EcgRunConfig { Device = CPU }, 400);
        Assert.All(cpuModel.parameters(), p => Assert.Equal(DeviceType.CPU, p.device_type));
        var onMeta = TrainingForensics.CaseStudies.LossPlateau.EcgExperiment.CreateModel(new TrainingForensics.CaseStudies.LossPlateau.EcgRunConfig { Device = meta }, 400);
        Assert.All(onMeta.parameters(), p => Assert.Equal(DeviceType.META, p.device_type));
        var net = TrainingForensics.Models.ConvBnNet.Create().to(meta);
        Assert.All(net.buffers(), b => Assert.Equal(DeviceType.META, b.device_type));
    }

    [Fact]
    public void The_meta_check_fails_for_a_tensor_left_on_the_cpu()
    {
        // the check is not vacuous: a model on meta fed a CPU batch is the mistake it exists to catch
        var model = TrainingForensics.Models.Mlp.Create(new[] { 4, 2 }).to(new Device(DeviceType.META));
        var loop = new TrainingForensics.Training.TrainingLoop(model, optim.SGD(model.parameters(), 0.1), TrainingForensics.Training.Losses.CrossEntropy, "mixed");
        Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => StopOnMeta(() => loop.Step(zeros(3, 4), zeros(3, dtype: ScalarType.Int64))));
    }

    [Fact]
    public void A_set_is_on_one_device()
    {
        var meta = new Device(DeviceType.META);
        var e = Assert.Throws<ArgumentException>(() => new ImageSet("mixed", zeros(2, 1, 2, 2), zeros(2, dtype: ScalarType.Int64, device: meta)));
        Assert.Contains("one device", e.Message);
        using var set = new ImageSet("cpu", zeros(2, 1, 2, 2), zeros(2, dtype: ScalarType.Int64));
        Assert.Same(set, set.To(CPU)); // already there: no copy
        Assert.True(DevicePlacement.IsOn(set.Images, CPU));
        Assert.False(set.Images.IsOn(meta));
        Assert.False(set.Images.IsOn(new Device(DeviceType.CUDA, 0)));
    }

}
