using TorchSharp;
using static TorchSharp.torch;
using TrainingForensics.Native;

namespace TrainingForensics.Data;

/// <summary>Images (N×1×H×W float32 in [0,1]) with their class labels (N, int64), on one device (<see cref="To"/>).</summary>
public sealed class ImageSet : IDisposable
{
    public Tensor Images { get; }
    public Tensor Labels { get; }
    public string Name { get; }
    public long Count => Labels.shape[0];
    /// <summary>Where the images and labels live, and so where every batch is cut.</summary>
    public Device Device => Images.device;

    public ImageSet(string name, Tensor images, Tensor labels)
    {
        if (images.dim() != 4) throw new ArgumentException($"{name}: images must be N×C×H×W, got [{string.Join(",", images.shape)}]");
        if (labels.dim() != 1 || labels.shape[0] != images.shape[0])
            throw new ArgumentException($"{name}: labels must be one per image, got [{string.Join(",", labels.shape)}] for {images.shape[0]} images");
        if (!labels.IsOn(images.device))
            throw new ArgumentException($"{name}: images on {images.device}, labels on {labels.device}: one set lives on one device");
        Name = name; Images = images; Labels = labels;
    }

    /// <summary>
    /// The set on <paramref name="device"/>: copied there once (a new set that owns its copies), so training cuts its
    /// batches on the device instead of copying every batch. This set itself when it is already there.
    /// </summary>
    public ImageSet To(Device device) =>
        Images.IsOn(device) ? this : new ImageSet(Name, Images.to(device), Labels.to(device));

    /// <summary>The first <paramref name="n"/> examples (a view, no copy): quick configurations use it.</summary>
    public ImageSet Take(long n)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), n, "must take at least one example");
        n = Math.Min(n, Count);
        return new ImageSet($"{Name}[:{n}]", Images.narrow(0, 0, n), Labels.narrow(0, 0, n));
    }

    /// <summary>Images flattened to N×(C·H·W), as an MLP takes them.</summary>
    public Tensor Flat() => Images.reshape(Count, -1);

    /// <summary>
    /// Mini-batches in a random order drawn from <paramref name="generator"/> (or in file order), cut on the set's
    /// <see cref="Device"/> (move the set once with <see cref="To"/>). Each batch's tensors are created in the
    /// caller's dispose scope.
    /// </summary>
    public IEnumerable<(Tensor X, Tensor Y)> Batches(int batchSize, bool shuffle = true, Generator? generator = null,
        bool flatten = false, bool dropLast = false)
    {
        foreach (var idx in BatchOrder.Indices(Count, batchSize, shuffle, generator, dropLast, Device))
        {
            long n = idx.shape[0];
            var x = Images.index_select(0, idx);
            if (flatten) x = x.reshape(n, -1);
            yield return (x, Labels.index_select(0, idx));
        }
    }

    public void Dispose()
    {
        Images.Dispose();
        Labels.Dispose();
    }
}

/// <summary>The MNIST training and test sets.</summary>
public sealed class MnistData : IDisposable
{
    public ImageSet Train { get; }
    public ImageSet Test { get; }
    public string Directory { get; }
    internal MnistData(string directory, ImageSet train, ImageSet test) { Directory = directory; Train = train; Test = test; }
    public void Dispose() { Train.Dispose(); Test.Dispose(); }
}

/// <summary>
/// Loads MNIST (or a data set in the same format, such as Fashion-MNIST) from the four original IDX .gz files,
/// after checking each file's md5 (from MD5SUMS beside them, when present), IDX header, sizes and labels.
/// </summary>
public static class Mnist
{
    public const string TrainImages = "train-images-idx3-ubyte.gz";
    public const string TrainLabels = "train-labels-idx1-ubyte.gz";
    public const string TestImages = "t10k-images-idx3-ubyte.gz";
    public const string TestLabels = "t10k-labels-idx1-ubyte.gz";

    /// <summary>Loads the data set in <paramref name="directory"/> (default: <c>data/mnist</c> of this repository).</summary>
    /// <param name="directory">The folder of the four IDX .gz files (and MD5SUMS); null: <c>DataPaths.Find("mnist")</c>.</param>
    /// <param name="expectedTrain">Training examples the files must hold (MNIST: 60,000); null skips the check.</param>
    /// <param name="expectedTest">Test examples the files must hold (MNIST: 10,000); null skips the check.</param>
    /// <param name="classes">Labels must be below this (MNIST: 10 classes).</param>
    /// <param name="device">Where the sets live (a notebook passes its environment's device); null: the CPU.</param>
    public static MnistData Load(string? directory = null, int? expectedTrain = 60_000, int? expectedTest = 10_000, int classes = 10,
        Device? device = null)
    {
        using var ledger = Results.RunLedger.Time(Results.RunLedger.DataLoading);
        string dir = directory ?? DataPaths.Find("mnist");
        if (!System.IO.Directory.Exists(dir)) throw new DataFileException(dir, "data directory not found");
        VerifyChecksums(dir);
        var train = LoadSet(dir, "train", TrainImages, TrainLabels, expectedTrain, classes);
        try
        {
            var test = LoadSet(dir, "test", TestImages, TestLabels, expectedTest, classes);
            if (device == null || device.type == DeviceType.CPU) return new MnistData(dir, train, test);
            using (train) using (test) return new MnistData(dir, train.To(device), test.To(device));
        }
        catch
        {
            train.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Checks each file listed in the directory's MD5SUMS that belongs to the data set. Without MD5SUMS the files
    /// load unchecked, with a warning (printed, and in the environment report through <see cref="DataIntegrity"/>).
    /// </summary>
    public static void VerifyChecksums(string directory)
    {
        string sumsPath = Path.Combine(directory, "MD5SUMS");
        if (!File.Exists(sumsPath))
        {
            DataIntegrity.RecordUnchecked(directory, "no MD5SUMS beside the data files: their integrity is unchecked (a corrupt or altered file would load)");
            return;
        }
        var sums = IdxFile.ReadMd5Sums(sumsPath);
        var unlisted = new List<string>();
        foreach (var name in new[] { TrainImages, TrainLabels, TestImages, TestLabels })
        {
            string path = Path.Combine(directory, name);
            if (!File.Exists(path)) throw new DataFileException(path, "file not found");
            if (!sums.TryGetValue(name, out var expected)) { unlisted.Add(name); continue; }
            string actual = IdxFile.Md5(path);
            if (actual != expected)
                throw new DataFileException(path, $"md5 {actual} differs from {expected} in {sumsPath}: the file is corrupt or not the original");
        }
        if (unlisted.Count > 0)
            DataIntegrity.RecordUnchecked(directory, $"MD5SUMS lists no sum for {string.Join(", ", unlisted)}: their integrity is unchecked");
        else
            DataIntegrity.RecordVerified(directory);
    }

    static ImageSet LoadSet(string dir, string name, string imagesFile, string labelsFile, int? expected, int classes)
    {
        var images = IdxFile.Read(Path.Combine(dir, imagesFile), 3);
        var labels = IdxFile.Read(Path.Combine(dir, labelsFile), 1);
        int n = images.Shape[0];
        if (expected is { } e && n != e) throw new DataFileException(images.Path, $"holds {n:N0} images, expected {e:N0}");
        if (labels.Shape[0] != n)
            throw new DataFileException(labels.Path, $"holds {labels.Shape[0]:N0} labels but {Path.GetFileName(images.Path)} holds {n:N0} images");
        for (int i = 0; i < labels.Data.Length; i++)
            if (labels.Data[i] >= classes)
                throw new DataFileException(labels.Path, $"label {labels.Data[i]} at index {i} is not a class 0–{classes - 1}");
        int h = images.Shape[1], w = images.Shape[2];
        using var bytes = tensor(images.Data, new long[] { n, 1, h, w }, ScalarType.Byte);  // host: decoded on the host; Load copies the sets to the device once
        var x = bytes.to_type(ScalarType.Float32).DivideInPlace(255f);
        var y = tensor(labels.Data, ScalarType.Byte).to_type(ScalarType.Int64);  // host: with the images
        return new ImageSet(name, x, y);
    }
}
