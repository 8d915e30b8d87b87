using System.IO.Compression;
using TorchSharp;
using TrainingForensics.Data;
using static TorchSharp.torch;

namespace TrainingForensics.Tests.Library;

public class DataTests
{
    [Fact]
    public void Real_mnist_loads_with_the_published_shapes_and_class_counts()
    {
        using var mnist = Mnist.Load(TestPaths.MnistDir);
        Assert.Equal(new long[] { 60000, 1, 28, 28 }, mnist.Train.Images.shape);
        Assert.Equal(new long[] { 10000, 1, 28, 28 }, mnist.Test.Images.shape);
        Assert.Equal(ScalarType.Int64, mnist.Train.Labels.dtype);
        using var counts = mnist.Train.Labels.bincount(null);
        Assert.Equal(6742, counts[1].item<long>()); // the well-known class sizes of MNIST's training set
        Assert.Equal(5421, counts[5].item<long>());
        using var testCounts = mnist.Test.Labels.bincount(null);
        Assert.Equal(1135, testCounts[1].item<long>());
        double mean = mnist.Train.Images.mean().item<float>();
        Assert.InRange(mean, 0.1306, 0.1308); // the usual normalisation constant 0.1307
        Assert.Equal(5, mnist.Train.Labels[0].item<long>()); // first training digit is a 5
    }

    [Fact]
    public void Default_directory_is_found_from_the_repository()
    {
        Assert.EndsWith(Path.Combine("data", "mnist"), DataPaths.Find("mnist"));
    }

    [Fact]
    public void A_data_set_beside_the_repository_in_shared_data_is_found_and_a_missing_one_names_the_places_searched()
    {
        string root = Path.Combine(Path.GetTempPath(), "tf-datapaths-" + Guid.NewGuid().ToString("N"));
        try
        {
            string repo = Path.Combine(root, "repo"), nested = Path.Combine(repo, "notebooks");
            Directory.CreateDirectory(Path.Combine(repo, "data", "mnist"));
            Directory.CreateDirectory(Path.Combine(root, "shared", "data", "fashion-mnist"));
            Directory.CreateDirectory(Path.Combine(root, "shared", "data", "mnist"));
            Directory.CreateDirectory(nested);
            // the repository's own data/ first, then ../shared/data
            Assert.Equal(Path.Combine(repo, "data", "mnist"), DataPaths.Find("mnist", new[] { nested }));
            Assert.Equal(Path.Combine(root, "shared", "data", "fashion-mnist"), DataPaths.Find("fashion-mnist", new[] { nested }));
            var e = Assert.Throws<DataFileException>(() => DataPaths.Find("kmnist", new[] { nested }));
            Assert.Contains(Path.Combine("data", "kmnist"), e.Message);
            Assert.Contains(Path.Combine("shared", "data", "kmnist"), e.Message);
            Assert.Contains(nested, e.Message);
            Assert.Contains("TF_DATA", e.Message);
            Assert.Throws<ArgumentException>(() => DataPaths.Find("../mnist", new[] { nested }));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void Batches_cover_every_example_once_in_a_seeded_order()
    {
        using var images = arange(10 * 4, dtype: float32).reshape(10, 1, 2, 2);
        using var labels = arange(10);
        var set = new ImageSet("t", images, labels);
        List<long> Order(int seed) => set.Batches(3, shuffle: true, generator: new Generator((ulong)seed))
            .SelectMany(b => b.Y.data<long>().ToArray()).ToList();
        var a = Order(1);
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), a.OrderBy(x => x));
        Assert.Equal(a, Order(1));
        Assert.NotEqual(a, Order(2));
        var sizes = set.Batches(3, shuffle: false).Select(b => b.X.shape[0]).ToList();
        Assert.Equal(new long[] { 3, 3, 3, 1 }, sizes);
        Assert.Equal(3, set.Batches(3, shuffle: false, dropLast: true).Count());
        var flat = set.Batches(4, shuffle: false, flatten: true).First().X;
        Assert.Equal(new long[] { 4, 4 }, flat.shape);
        Assert.Equal(new long[] { 4, 1, 2, 2 }, set.Take(4).Images.shape);
    }

    static void WriteIdx(string path, byte[] header, byte[] data, bool gzip = true)
    {
        using var file = File.Create(path);
        using Stream s = gzip ? new GZipStream(file, CompressionLevel.Fastest) : file;
        s.Write(header);
        s.Write(data);
    }

    static byte[] Header(int type, params int[] dims)
    {
        var h = new List<byte> { 0, 0, (byte)type, (byte)dims.Length };
        foreach (var d in dims) h.AddRange(new[] { (byte)(d >> 24), (byte)(d >> 16), (byte)(d >> 8), (byte)d });
        return h.ToArray();
    }

    /// <summary>A tiny valid data set in MNIST's file layout: 4 train and 2 test images of 3×3.</summary>
    static void WriteTinySet(string dir, byte label = 1)
    {
        WriteIdx(Path.Combine(dir, Mnist.TrainImages), Header(8, 4, 3, 3), new byte[36]);
        WriteIdx(Path.Combine(dir, Mnist.TrainLabels), Header(8, 4), new byte[] { 0, label, 2, 3 });
        WriteIdx(Path.Combine(dir, Mnist.TestImages), Header(8, 2, 3, 3), Enumerable.Repeat((byte)255, 18).ToArray());
        WriteIdx(Path.Combine(dir, Mnist.TestLabels), Header(8, 2), new byte[] { 4, 5 });
    }

    [Fact]
    public void A_valid_small_set_in_the_same_format_loads()
    {
        using var dir = new TempDir();
        WriteTinySet(dir.Path);
        using var d = Mnist.Load(dir.Path, expectedTrain: 4, expectedTest: 2);
        Assert.Equal(new long[] { 4, 1, 3, 3 }, d.Train.Images.shape);
        Assert.Equal(1f, d.Test.Images.max().item<float>());
    }

    [Fact]
    public void Missing_file_is_named()
    {
        using var dir = new TempDir();
        WriteTinySet(dir.Path);
        File.Delete(Path.Combine(dir.Path, Mnist.TestLabels));
        var e = Assert.Throws<DataFileException>(() => Mnist.Load(dir.Path, 4, 2));
        Assert.EndsWith(Mnist.TestLabels, e.FilePath);
        Assert.Contains("not found", e.Message);
    }

    [Fact]
    public void Truncated_data_is_reported_with_sizes()
    {
        using var dir = new TempDir();
        WriteTinySet(dir.Path);
        WriteIdx(Path.Combine(dir.Path, Mnist.TrainImages), Header(8, 4, 3, 3), new byte[30]);
        var e = Assert.Throws<DataFileException>(() => Mnist.Load(dir.Path, 4, 2));
        Assert.EndsWith(Mnist.TrainImages, e.FilePath);
        Assert.Contains("truncated", e.Message);
        Assert.Contains("36", e.Message);
    }

    [Fact]
    public void Truncated_gzip_stream_is_reported_as_corrupt()
    {
        using var dir = new TempDir();
        WriteTinySet(dir.Path);
        string path = Path.Combine(dir.Path, Mnist.TrainImages);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<DataFileException>(() => Mnist.Load(dir.Path, 4, 2));
        Assert.Equal(path, e.FilePath);
    }

    [Fact]
    public void Wrong_magic_and_wrong_rank_are_reported()
    {
        using var dir = new TempDir();
        WriteTinySet(dir.Path);
        WriteIdx(Path.Combine(dir.Path, Mnist.TrainLabels), Header(8, 4, 3, 3), new byte[36]); // an image file where labels belong
        var e = Assert.Throws<DataFileException>(() => Mnist.Load(dir.Path, 4, 2));
        Assert.Contains("rank 3, expected 1", e.Message);
        WriteIdx(Path.Combine(dir.Path, Mnist.TrainLabels), Header(0x0D, 4), new byte[16]); // float elements
        Assert.Contains("0x0d", Assert.Throws<DataFileException>(() => Mnist.Load(dir.Path, 4, 2)).Message);
        File.WriteAllBytes(Path.Combine(dir.Path, Mnist.TrainLabels), new byte[] { 0x1f, 0x8b, 1, 2, 3 }); // not plain, not valid gzip
        Assert.Throws<DataFileException>(() => Mnist.Load(dir.Path, 4, 2));
    }

    [Fact]
    public void Counts_that_disagree_are_reported()
    {
        using var dir = new TempDir();
        WriteTinySet(dir.Path);
        Assert.Contains("expected 60,000", Assert.Throws<DataFileException>(() => Mnist.Load(dir.Path)).Message.Replace("\u202f", ","));
        WriteIdx(Path.Combine(dir.Path, Mnist.TrainLabels), Header(8, 3), new byte[] { 0, 1, 2 });
        Assert.Contains("3 labels", Assert.Throws<DataFileException>(() => Mnist.Load(dir.Path, 4, 2)).Message);
    }

    [Fact]
    public void Label_outside_the_classes_is_reported_with_its_index()
    {
        using var dir = new TempDir();
        WriteTinySet(dir.Path, label: 12);
        var e = Assert.Throws<DataFileException>(() => Mnist.Load(dir.Path, 4, 2));
        Assert.Contains("label 12 at index 1", e.Message);
    }

    [Fact]
    public void Md5_mismatch_names_the_file_and_both_sums()
    {
        using var dir = new TempDir();
        foreach (var f in Directory.GetFiles(TestPaths.MnistDir)) File.Copy(f, Path.Combine(dir.Path, Path.GetFileName(f)));
        string target = Path.Combine(dir.Path, Mnist.TestLabels);
        File.SetAttributes(target, FileAttributes.Normal);
        var bytes = File.ReadAllBytes(target);
        bytes[^9] ^= 0xFF; // inside the gzip trailer region: still the same size
        File.WriteAllBytes(target, bytes);
        var e = Assert.Throws<DataFileException>(() => Mnist.VerifyChecksums(dir.Path));
        Assert.Equal(target, e.FilePath);
        Assert.Contains("ec29112dd5afa0611ce80d1b7f02629c", e.Message);
    }

    [Fact]
    public void Malformed_md5sums_line_is_reported()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("MD5SUMS"), "abc  file\n");
        var e = Assert.Throws<DataFileException>(() => IdxFile.ReadMd5Sums(dir.File("MD5SUMS")));
        Assert.Contains("line 1", e.Message);
    }
}
