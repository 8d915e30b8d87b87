using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TrainingForensics.Training;

/// <summary>
/// Writes a run into a TensorBoard event log with TorchSharp's own SummaryWriter (torch.utils.tensorboard):
/// the loss and every value probes logged, per step, as scalars; optionally a histogram of the outputs every
/// <see cref="HistogramEvery"/> steps. Open the folder with <c>tensorboard --logdir</c>.
/// </summary>
public sealed class TensorBoardLog
{
    readonly SummaryWriter _writer;

    /// <param name="directory">Folder of the event file (created if missing).</param>
    /// <param name="histogramEvery">Steps between output histograms; 0: none.</param>
    public TensorBoardLog(string directory, int histogramEvery = 0)
    {
        if (string.IsNullOrWhiteSpace(directory)) throw new ArgumentException("a TensorBoard log needs a directory", nameof(directory));
        if (histogramEvery < 0) throw new ArgumentOutOfRangeException(nameof(histogramEvery), histogramEvery, "cadence cannot be negative");
        System.IO.Directory.CreateDirectory(directory);
        Directory = Path.GetFullPath(directory);
        HistogramEvery = histogramEvery;
        _writer = torch.utils.tensorboard.SummaryWriter(Directory, createRunName: false);
    }

    public string Directory { get; }
    public int HistogramEvery { get; }

    /// <summary>Event files written so far (TensorBoard reads files named events.out.tfevents.*).</summary>
    public IReadOnlyList<string> EventFiles =>
        System.IO.Directory.EnumerateFiles(Directory, "events.out.tfevents.*", SearchOption.AllDirectories).OrderBy(f => f).ToList();

    public TensorBoardLog AttachTo(TrainingLoop loop)
    {
        loop.AfterStep += Observe;
        return this;
    }

    public void DetachFrom(TrainingLoop loop) => loop.AfterStep -= Observe;

    void Observe(StepContext ctx)
    {
        int step = checked((int)ctx.Step);
        _writer.add_scalar("train/loss", ctx.Loss.item<float>(), step);
        foreach (var (name, value) in ctx.Logged)
            if (double.IsFinite(value)) _writer.add_scalar(name, (float)value, step);
        if (HistogramEvery > 0 && ctx.Step % HistogramEvery == 0)
            using (var o = ctx.Outputs.detach().cpu().to_type(ScalarType.Float32))
                _writer.add_histogram("outputs", o, step);
    }

    /// <summary>Adds one scalar (e.g. an evaluation loss).</summary>
    public void Scalar(string tag, double value, long step) => _writer.add_scalar(tag, (float)value, checked((int)step));

    /// <summary>Adds a text note (e.g. the run's configuration).</summary>
    public void Text(string tag, string text, long step = 0) => _writer.add_text(tag, text, checked((int)step));
}
