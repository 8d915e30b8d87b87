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

    static bool _prepared;
    static string? _preloadFailure;

    /// <summary>What <see cref="PrepareNativeLoad"/> did, for the environment report.</summary>
    public static string Preload { get; private set; } = "not attempted";

    /// <summary>Makes sure libtorch is usable; throws <see cref="TorchNativeLoadException"/> with a diagnosis otherwise.</summary>
    public static void EnsureLoaded()
    {
        PrepareNativeLoad();
        lock (Gate)
        {
            if (_loaded) return;
            try
            {
                using var probe = torch.ones(1);  // host: only proves that libtorch loads
                _loaded = true;
            }
            catch (Exception e) when (e is TypeInitializationException or DllNotFoundException or EntryPointNotFoundException or BadImageFormatException or NotSupportedException)
            {
                throw new TorchNativeLoadException(Diagnose(e), e);
            }
        }
    }

    /// <summary>
    /// Notebook kernels load TorchSharp straight from the NuGet cache, where the build's patched native library is never
    /// used and TorchSharp's own loader cannot see the libtorch package. On Linux this loads, by full path, libtorch
    /// from the libtorch-cpu-linux-x64 package beside TorchSharp's, then libLibTorchSharp.so — a copy with the unused
    /// GLIBCXX_3.4.32 requirement weakened when the host's libstdc++ lacks it. TorchSharp's loader then finds both
    /// already loaded (its own message says an explicit <c>NativeLibrary.Load</c> is honoured). Runs once; does
    /// nothing beside a build output (the build patched the copy there) or off Linux. Never throws: a failure is kept
    /// for <see cref="Diagnose"/>.
    /// </summary>
    public static void PrepareNativeLoad()
    {
        lock (Gate)
        {
            if (_prepared) return;
            _prepared = true;
            try { Preload = PreloadFromPackageCache(); }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException or IOException or UnauthorizedAccessException or InvalidDataException)
            {
                _preloadFailure = e.Message.Trim();
                Preload = "failed: " + FirstLine(_preloadFailure);
            }
        }
    }

    const string LibTorchSharpFile = "libLibTorchSharp.so";

    static string PreloadFromPackageCache()
    {
        if (!OperatingSystem.IsLinux()) return "not needed (TorchSharp's own loader is used off Linux)";
        string torchDir = Path.GetDirectoryName(typeof(torch).Assembly.Location) ?? AppContext.BaseDirectory;
        string rid = RuntimeInformation.RuntimeIdentifier;
        if (new[] { AppContext.BaseDirectory, torchDir }.Any(d => File.Exists(Path.Combine(d, LibTorchSharpFile)) ||
                                                              File.Exists(Path.Combine(d, "runtimes", rid, "native", LibTorchSharpFile))))
            return "not needed (libLibTorchSharp.so is in the application's folder: the build's copy)";
        var layout = PackageCacheLayout.Find(torchDir);
        if (layout == null) return "not attempted (TorchSharp is not in a NuGet package cache layout)";
        string library = layout.LibTorchSharp;
        bool patched = false;
        if (NeedsWeakenedCopy(library))
        {
            library = WeakenedCopy(library);
            patched = true;
        }
        LoadAfterLibTorch(layout.LibTorchDir, library);
        _preloadedLibrary = library;
        return $"preloaded {library}{(patched ? " (a copy with the unused GLIBCXX requirement marked weak: the host's libstdc++ is older)" : "")} and libtorch from {layout.LibTorchDir}";
    }

    static string? _preloadedLibrary;

    /// <summary>
    /// Loads <paramref name="library"/> after libtorch from <paramref name="libTorchDir"/> (whose RUNPATH finds libc10,
    /// libtorch_cpu and libgomp beside it), so the dynamic loader satisfies libLibTorchSharp's DT_NEEDED entries with the
    /// already-loaded libraries. Returns the library's handle.
    /// </summary>
    static IntPtr LoadAfterLibTorch(string? libTorchDir, string library)
    {
        if (libTorchDir != null) NativeLibrary.Load(Path.Combine(libTorchDir, "libtorch.so"));
        return NativeLibrary.Load(library);
    }

    /// <summary>Whether the host lacks a GLIBCXX version the library requires but never binds to (a weakened copy then loads).</summary>
    static bool NeedsWeakenedCopy(string library)
    {
        var (hostPath, provided, missing) = MissingLibStdCxxVersions(ElfVersionNeeds.Read(File.ReadAllBytes(library)));
        if (hostPath == null || provided.Count == 0) return false;
        var hard = missing.Where(n => !n.Weak).ToList();
        return hard.Count > 0 && hard.All(n => n.RelocationUses == 0);
    }

    /// <summary>The library's GLIBCXX requirements that the host's libstdc++ does not define (weak ones included).</summary>
    static (string? HostPath, IReadOnlyList<string> Provided, List<ElfVersionNeed> Missing) MissingLibStdCxxVersions(IEnumerable<ElfVersionNeed> needs)
    {
        var (hostPath, provided) = HostLibStdCxx();
        var missing = hostPath == null
            ? new List<ElfVersionNeed>()
            : needs.Where(n => n.Library == "libstdc++.so.6" && n.Version.StartsWith("GLIBCXX_") && !provided.Contains(n.Version)).ToList();
        return (hostPath, provided, missing);
    }

    /// <summary>
    /// The weakened copy of <paramref name="original"/> in a per-user cache folder named after the original's hash
    /// (written to a temporary file, then renamed, so concurrent kernels never see half a file).
    /// </summary>
    internal static string WeakenedCopy(string original, string? cacheRoot = null)
    {
        byte[] bytes = File.ReadAllBytes(original);
        string hash = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(bytes))[..16].ToLowerInvariant();
        string root = cacheRoot ?? NativeCacheRoot();
        string dir = Path.Combine(root, "libtorchsharp-" + hash);
        string target = Path.Combine(dir, Path.GetFileName(original));
        if (File.Exists(target) && new FileInfo(target).Length == bytes.Length) return target;
        ElfVersionNeeds.WeakenUnused(bytes, "libstdc++.so.6");
        Directory.CreateDirectory(dir);
        string temp = Path.Combine(dir, $".{Path.GetFileName(original)}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}");
        File.WriteAllBytes(temp, bytes);
        File.Move(temp, target, overwrite: true);
        return target;
    }

    /// <summary>TF_NATIVE_CACHE, else ~/.cache/trainingforensics/natives (XDG_CACHE_HOME honoured), else the temp folder.</summary>
    static string NativeCacheRoot()
    {
        string? chosen = System.Environment.GetEnvironmentVariable("TF_NATIVE_CACHE");
        if (!string.IsNullOrWhiteSpace(chosen)) return chosen;
        string? xdg = System.Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        string home = System.Environment.GetFolderPath(System.Environment.SpecialFolder.UserProfile);
        string? baseDir = !string.IsNullOrWhiteSpace(xdg) ? xdg : home.Length > 0 ? Path.Combine(home, ".cache") : null;
        if (baseDir != null)
        {
            string dir = Path.Combine(baseDir, "trainingforensics", "natives");
            try { Directory.CreateDirectory(dir); return dir; }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
        return Path.Combine(Path.GetTempPath(), "trainingforensics-natives");
    }

    /// <summary>TorchSharp and its libtorch package as NuGet lays them out: …/torchsharp/V/lib/TFM/TorchSharp.dll.</summary>
    internal sealed record PackageCacheLayout(string LibTorchSharp, string LibTorchDir)
    {
        /// <summary>The libtorch version TorchSharp 0.107.0 was built against.</summary>
        public const string LibTorchVersion = "2.10.0";

        public static PackageCacheLayout? Find(string torchSharpDir)
        {
            var packageDir = new DirectoryInfo(torchSharpDir).Parent?.Parent;             // torchsharp/<version>
            var packagesRoot = packageDir?.Parent?.Parent;                                  // the packages folder
            if (packageDir == null || packagesRoot == null) return null;
            string rid = "linux-" + RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant();
            string lib = Path.Combine(packageDir.FullName, "runtimes", rid, "native", LibTorchSharpFile);
            if (!File.Exists(lib)) return null;
            // the CPU package NuGet restored for TorchSharp-cpu (folder names are lower case in the cache)
            var candidates = new[] { $"libtorch-cpu-{rid}" }
                .Select(name => Path.Combine(packagesRoot.FullName, name))
                .Where(Directory.Exists)
                .SelectMany(Directory.EnumerateDirectories)
                .Select(v => Path.Combine(v, "runtimes", rid, "native"))
                .Where(d => File.Exists(Path.Combine(d, "libtorch.so")))
                .OrderByDescending(d => d.Contains(Path.DirectorySeparatorChar + LibTorchVersion + Path.DirectorySeparatorChar))
                .ThenByDescending(d => d, StringComparer.Ordinal)
                .ToList();
            return candidates.Count == 0 ? null : new PackageCacheLayout(lib, candidates[0]);
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
            lines.Add($"Native library: {_preloadedLibrary ?? lib}");
            lines.Add($"Preload from the NuGet cache: {Preload}");
            string? loaderError = _preloadFailure;
            if (loaderError == null)
            {
                // load the way the process would: libtorch's folder first, so the error is about this library, not a sibling
                var layout = OperatingSystem.IsLinux() ? PackageCacheLayout.Find(Path.GetDirectoryName(typeof(torch).Assembly.Location) ?? "") : null;
                try { NativeLibrary.Free(LoadAfterLibTorch(layout?.LibTorchDir, _preloadedLibrary ?? lib)); }
                catch (Exception e) { loaderError = e.Message; }
            }
            if (loaderError != null) lines.Add($"The dynamic loader says: {loaderError.Trim()}");
            if (OperatingSystem.IsLinux())
                lines.AddRange(LibStdCxxAdvice(lib));
            lines.Add(Remedy());
        }
        var inner = Innermost(failure);
        string chain = inner == failure ? failure.GetType().Name : $"{failure.GetType().Name} <- {inner.GetType().Name}";
        lines.Add($"Original error: {chain}: {FirstLine(inner.Message)}");
        return string.Join(Environment.NewLine, lines);
    }

    internal static IEnumerable<string> LibStdCxxAdvice(string lib)
    {
        List<ElfVersionNeed> needs;
        try { needs = ElfVersionNeeds.Read(File.ReadAllBytes(lib)); }
        catch (Exception e) when (e is IOException or InvalidDataException) { yield break; }
        var (hostPath, provided, missing) = MissingLibStdCxxVersions(needs);
        if (hostPath == null || missing.Count == 0) yield break;
        string newest = provided.OrderBy(v => v, VersionNameComparer.Instance).LastOrDefault() ?? "none";
        var hard = missing.Where(n => !n.Weak).ToList();
        yield return $"It requires {string.Join(", ", missing.Select(n => n.Version + (n.Weak ? " (weak)" : "")))}; the host's libstdc++ ({hostPath}) provides up to {newest}.";
        if (hard.Count == 0) yield break;
        if (hard.All(n => n.RelocationUses == 0))
            yield return "Those requirements are never used by the code (no relocation binds to them), so a copy with them marked weak loads: " +
                         "the build makes one in each output folder, and TrainingForensics makes one in its native cache for a notebook kernel " +
                         $"({Preload}).";
        else
            yield return "Install a newer libstdc++ (GCC 13 or later: Debian 13, Ubuntu 24.04) or use the devcontainer.";
    }

    /// <summary>What to do, for where the reader is: a notebook kernel (packages from the NuGet cache) or a build output.</summary>
    static string Remedy()
    {
        return Setup.NotebookKernel.InKernel
            ? "In a notebook kernel: restart the kernel and run the cells from the top (TrainingForensics must load TorchSharp's natives " +
              "before any other TorchSharp call); if it still fails, install a newer libstdc++ (GCC 13+: Debian 13, Ubuntu 24.04) or use the devcontainer."
            : "In a program or tf-run: run `dotnet build` at the repository root (the build copies a loadable libLibTorchSharp.so into each output folder); " +
              "if it still fails, install a newer libstdc++ (GCC 13+: Debian 13, Ubuntu 24.04) or use the devcontainer.";
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
