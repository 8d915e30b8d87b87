using System.Reflection;

// libtorch's seed, thread count and the Figures store are process-wide: tests that touch them must not interleave.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace TrainingForensics.Tests;

internal static class TestPaths
{
    static string Meta(string key) =>
        typeof(TestPaths).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;

    public static string RepositoryRoot => Meta("RepositoryRoot");
    public static string NuGetPackageRoot => Meta("NuGetPackageRoot");
    public static string MnistDir => Path.Combine(RepositoryRoot, "data", "mnist");

    /// <summary>Every C# source under <paramref name="root"/> but build outputs: its path relative to the root ('/'), and its text.</summary>
    public static IEnumerable<(string Relative, string Text)> Sources(string root) =>
        Directory.EnumerateFiles(root, "*.cs", SearchOption.AllDirectories)
            .Select(f => (Relative: Path.GetRelativePath(root, f).Replace('\\', '/'), File: f))
            .Where(x => !x.Relative.Split('/').Any(part => part is "bin" or "obj"))
            .Select(x => (x.Relative, File.ReadAllText(x.File)));
}

/// <summary>A temporary directory removed after the test.</summary>
internal sealed class TempDir : IDisposable
{
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "tf-tests-" + Guid.NewGuid().ToString("N")[..8]);
    public TempDir() => Directory.CreateDirectory(Path);
    public string File(string name) => System.IO.Path.Combine(Path, name);
    public void Dispose()
    {
        try { Directory.Delete(Path, true); } catch (IOException) { }
    }
}
