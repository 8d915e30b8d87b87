using System.Runtime.InteropServices;
using TorchSharp;

namespace TrainingForensics.Native;

/// <summary>Raised when TorchSharp's native libraries cannot be loaded; the message says why and what to do.</summary>
public sealed class TorchNativeLoadException : Exception
{
    public TorchNativeLoadException(string message, Exception? inner) : base(message, inner) { }
}

/// <summary>
/// Loads TorchSharp's native backend once and turns a failure into a diagnosis. TorchSharp's own message on
/// such a failure blames a missing libtorch package even when the package is there and the real cause is,
/// for instance, a libstdc++ that is too old; this class asks the dynamic loader directly and compares the
/// versions libLibTorchSharp needs with the ones the host's libstdc++ defines.
/// </summary>
public static class TorchNative
{
    static readonly object Gate = new();
    static bool _loaded;

    /// <summary>Makes sure libtorch is usable; throws <see cref="TorchNativeLoadException"/> with a diagnosis otherwise.</summary>
    public static void EnsureLoaded()
    {
        lock (Gate)
        {
            if (_loaded) return;
            try
            {
                using var probe = torch.ones(1);
                _loaded = true;
            }
            catch (Exception e) when (e is TypeInitializationException or DllNotFoundException or EntryPointNotFoundException or BadImageFormatException or NotSupportedException)
            {
                throw new TorchNativeLoadException(Diagnose(e), e);
            }
        }
    }

    /// <summary>Where TorchSharp looks for libLibTorchSharp in this process (first match wins), or null.</summary>
    public static string? FindLibTorchSharp()
    {
        string file = OperatingSystem.IsWindows() ? "LibTorchSharp.dll" : OperatingSystem.IsMacOS() ? "libLibTorchSharp.dylib" : "libLibTorchSharp.so";
        string torchDir = Path.GetDirectoryName(typeof(torch).Assembly.Location) ?? AppContext.BaseDirectory;
        foreach (var dir in new[] { AppContext.BaseDirectory, torchDir }.Distinct())
        {
            foreach (var candidate in new[] { Path.Combine(dir, file), Path.Combine(dir, "runtimes", RuntimeInformation.RuntimeIdentifier, "native", file) }
                         .Concat(Directory.Exists(Path.Combine(dir, "runtimes"))
                             ? Directory.EnumerateFiles(Path.Combine(dir, "runtimes"), file, SearchOption.AllDirectories)
                             : Enumerable.Empty<string>()))
                if (File.Exists(candidate)) return candidate;
        }
        // NuGet-cache layout (notebook kernels load packages from there): …/torchsharp/<v>/lib/<tfm>/TorchSharp.dll
        var packageRoot = Path.GetFullPath(Path.Combine(torchDir, "..", ".."));
        var native = Path.Combine(packageRoot, "runtimes", RuntimeInformation.RuntimeIdentifier, "native", file);
        return File.Exists(native) ? native : null;
    }

    /// <summary>The GLIBCXX_* versions the host's libstdc++ defines (empty when it cannot be found or read).</summary>
    public static (string? Path, IReadOnlyList<string> Versions) HostLibStdCxx()
    {
        if (!OperatingSystem.IsLinux()) return (null, Array.Empty<string>());
        string? path = null;
        try
        {
            // The copy this process actually mapped, if any; else the usual multiarch locations.
            path = File.ReadLines("/proc/self/maps").Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries).LastOrDefault())
                .FirstOrDefault(p => p != null && p.Contains("libstdc++.so.6"));
        }
        catch (IOException) { }
        path ??= new[] { "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6" }
            .FirstOrDefault(File.Exists);
        if (path == null) return (null, Array.Empty<string>());
        try
        {
            return (path, ElfVersionNeeds.ReadDefinitions(File.ReadAllBytes(path)).Where(v => v.StartsWith("GLIBCXX_")).ToList());
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            return (path, Array.Empty<string>());
        }
    }

    /// <summary>Builds the explanation for a failed native load. Public so a notebook can print it on demand.</summary>
    public static string Diagnose(Exception failure)
    {
        var lines = new List<string> { "TorchSharp's native library (libtorch) could not be loaded." };
        string? lib = FindLibTorchSharp();
        if (lib == null)
        {
            lines.Add($"No {(OperatingSystem.IsLinux() ? "libLibTorchSharp.so" : "LibTorchSharp native library")} was found next to TorchSharp.dll or under runtimes/. " +
                      "Reference a libtorch package (this repository's projects do: run `dotnet build` from the repository root; " +
                      "a notebook kernel needs `#r \"nuget: TorchSharp-cpu, 0.107.0\"`).");
        }
        else
        {
            lines.Add($"Native library: {lib}");
            string? loaderError = null;
            try { NativeLibrary.Free(NativeLibrary.Load(lib)); }
            catch (Exception e) { loaderError = e.Message; }
            if (loaderError != null) lines.Add($"The dynamic loader says: {loaderError.Trim()}");
            if (OperatingSystem.IsLinux())
                lines.AddRange(LibStdCxxAdvice(lib));
        }
        var inner = Innermost(failure);
        string chain = inner == failure ? failure.GetType().Name : $"{failure.GetType().Name} <- {inner.GetType().Name}";
        lines.Add($"Original error: {chain}: {FirstLine(inner.Message)}");
        return string.Join(Environment.NewLine, lines);
    }

    internal static IEnumerable<string> LibStdCxxAdvice(string lib)
    {
        List<ElfVersionNeed> needs;
        try { needs = ElfVersionNeeds.Read(File.ReadAllBytes(lib)).Where(n => n.Library == "libstdc++.so.6").ToList(); }
        catch (Exception e) when (e is IOException or InvalidDataException) { yield break; }
        var (hostPath, provided) = HostLibStdCxx();
        if (hostPath == null) yield break;
        var missing = needs.Where(n => n.Version.StartsWith("GLIBCXX_") && !provided.Contains(n.Version)).ToList();
        if (missing.Count == 0) yield break;
        string newest = provided.OrderBy(v => v, VersionNameComparer.Instance).LastOrDefault() ?? "none";
        var hard = missing.Where(n => !n.Weak).ToList();
        yield return $"It requires {string.Join(", ", missing.Select(n => n.Version + (n.Weak ? " (weak)" : "")))}; the host's libstdc++ ({hostPath}) provides up to {newest}.";
        if (hard.Count == 0) yield break;
        if (hard.All(n => n.RelocationUses == 0))
            yield return "Those requirements are never used by the code (no relocation binds to them), so a patched copy loads fine: " +
                         "build through this repository (`dotnet build` patches the copy in each output folder), " +
                         "or install a newer libstdc++ (GCC 13+, e.g. Debian 13 or Ubuntu 24.04, which the devcontainer uses).";
        else
            yield return "Install a newer libstdc++ (GCC 13 or later: Debian 13, Ubuntu 24.04) or use the devcontainer.";
    }

    static Exception Innermost(Exception e)
    {
        while (e.InnerException != null) e = e.InnerException;
        return e;
    }

    static string FirstLine(string s) => s.Split('\n')[0].Trim();

    /// <summary>Orders GLIBCXX_3.4.9 before GLIBCXX_3.4.30 (numeric, not alphabetical).</summary>
    sealed class VersionNameComparer : IComparer<string>
    {
        public static readonly VersionNameComparer Instance = new();
        public int Compare(string? a, string? b)
        {
            var x = Parts(a); var y = Parts(b);
            for (int i = 0; i < Math.Max(x.Length, y.Length); i++)
            {
                int c = (i < x.Length ? x[i] : -1).CompareTo(i < y.Length ? y[i] : -1);
                if (c != 0) return c;
            }
            return 0;
        }
        static int[] Parts(string? s) =>
            (s ?? "").Split('_').LastOrDefault()?.Split('.').Select(p => int.TryParse(p, out var n) ? n : 0).ToArray() ?? Array.Empty<int>();
    }
}
