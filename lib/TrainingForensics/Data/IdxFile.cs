using System.IO.Compression;
using System.Security.Cryptography;

namespace TrainingForensics.Data;

/// <summary>
/// The IDX format of the original MNIST files (big-endian header: 0, 0, type 0x08 = unsigned byte, rank; then one
/// 32-bit size per dimension; then the data). TorchSharp's MNIST dataset reads only decompressed copies it
/// downloads itself and checks nothing, so this reads the shipped .gz files directly and verifies them.
/// </summary>
public sealed record IdxFile(string Path, int[] Shape, byte[] Data)
{
    /// <summary>Reads a (gzipped or plain) IDX file of unsigned bytes; every defect is reported with the file's path.</summary>
    public static IdxFile Read(string path, int expectedRank)
    {
        if (!File.Exists(path)) throw new DataFileException(path, "file not found");
        byte[] raw;
        try
        {
            raw = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? Gunzip(path) : File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or IOException)
        {
            throw new DataFileException(path, $"not a readable gzip file ({e.Message}); the download or copy is probably corrupt", e);
        }
        if (raw.Length < 4) throw new DataFileException(path, $"only {raw.Length} bytes: too short for an IDX header");
        if (raw[0] != 0 || raw[1] != 0)
            throw new DataFileException(path, $"bad IDX magic 0x{raw[0]:x2}{raw[1]:x2}{raw[2]:x2}{raw[3]:x2} (expected 0x0000 then type and rank)");
        if (raw[2] != 0x08) throw new DataFileException(path, $"IDX element type 0x{raw[2]:x2} is not 0x08 (unsigned byte)");
        int rank = raw[3];
        if (rank != expectedRank)
            throw new DataFileException(path, $"IDX rank {rank}, expected {expectedRank} (magic 0x{0x800 + rank:x8}; is this the right file?)");
        int header = 4 + 4 * rank;
        if (raw.Length < header) throw new DataFileException(path, $"truncated IDX header ({raw.Length} bytes, need {header})");
        var shape = new int[rank];
        long count = 1;
        for (int i = 0; i < rank; i++)
        {
            int o = 4 + 4 * i;
            shape[i] = raw[o] << 24 | raw[o + 1] << 16 | raw[o + 2] << 8 | raw[o + 3];
            if (shape[i] <= 0) throw new DataFileException(path, $"IDX dimension {i} has size {shape[i]}");
            count *= shape[i];
        }
        long have = raw.Length - header;
        if (have < count)
            throw new DataFileException(path, $"truncated: header promises {string.Join("×", shape)} = {count:N0} bytes of data, file holds {have:N0}");
        if (have > count)
            throw new DataFileException(path, $"{have - count:N0} unexpected trailing bytes after {string.Join("×", shape)} values");
        return new IdxFile(path, shape, raw.AsSpan(header).ToArray());
    }

    static byte[] Gunzip(string path)
    {
        using var file = File.OpenRead(path);
        using var gz = new GZipStream(file, CompressionMode.Decompress);
        using var buffer = new MemoryStream();
        gz.CopyTo(buffer);
        return buffer.ToArray();
    }

    /// <summary>MD5 of a file as lower-case hex (the checksum MNIST's distributors publish).</summary>
    public static string Md5(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexString(MD5.HashData(stream)).ToLowerInvariant();
    }

    /// <summary>Reads an MD5SUMS file ("hash  name" per line) into name → hash.</summary>
    public static IReadOnlyDictionary<string, string> ReadMd5Sums(string path)
    {
        var sums = new Dictionary<string, string>();
        int lineNo = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            var parts = line.Split((char[]?)null, 2, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 2 || parts[0].Length != 32)
                throw new DataFileException(path, $"line {lineNo} is not '<32 hex digits>  <file name>': '{line}'");
            sums[parts[1].TrimStart('*').Trim()] = parts[0].ToLowerInvariant();
        }
        return sums;
    }
}
