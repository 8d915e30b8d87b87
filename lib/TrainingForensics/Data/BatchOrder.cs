using TorchSharp;
using static TorchSharp.torch;
using TrainingForensics.Native;

namespace TrainingForensics.Data;

/// <summary>The order in which a data set is cut into mini-batches: shared by every in-memory set of the library.</summary>
internal static class BatchOrder
{
    /// <summary>
    /// Index tensors of consecutive mini-batches over <paramref name="count"/> examples, in a random order drawn from
    /// <paramref name="generator"/> (or in order). Each index tensor is created in the caller's dispose scope.
    /// </summary>
    /// The order is drawn on the CPU (the generator's device, so a seed gives the same order whatever the data's device);
    /// each index tensor is created on <paramref name="device"/>, where the data lives, so a batch is cut there.
    public static IEnumerable<Tensor> Indices(long count, int batchSize, bool shuffle, Generator? generator, bool dropLast, Device device)
    {
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be positive");
        long[] index;
        // Own scope: this runs lazily inside whatever scope the caller opened for the first batch.
        using (NewDisposeScope())
            index = (shuffle ? randperm(count, generator: generator) : HeldScalars.Range(count)).data<long>().ToArray();  // host: the order is drawn with the CPU generator, the same for a seed whatever the data device
        for (long start = 0; start < count; start += batchSize)
        {
            long n = Math.Min(batchSize, count - start);
            if (dropLast && n < batchSize) yield break;
            yield return tensor(index.AsSpan((int)start, (int)n).ToArray(), device: device);
        }
    }
}
