using System.Globalization;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.Loader;
using Plotly.NET;
using TorchSharp;
using TrainingForensics.Charts;
using TrainingForensics.Native;

namespace TrainingForensics.Setup;

/// <summary>
/// What the library does for the .NET Interactive kernel (VS Code Polyglot Notebooks, Jupyter, Binder, dotnet-repl)
/// the moment it is first used, so that the committed notebooks run there unmodified:
/// TorchSharp's natives are preloaded from the NuGet cache (<see cref="TorchNative.PrepareNativeLoad"/>),
/// Plotly.NET's request for a newer FSharp.Core is answered with the kernel's own (<see cref="FSharpCoreBinding"/>),
/// and charts and tensors get formatters in the kernel (<see cref="RegisterFormatters"/>). Outside a kernel only the
/// first two apply, and they do nothing where the build's outputs already have what they provide.
/// </summary>
public static class NotebookKernel
{
    // CA2255 is about libraries doing work at load: here that work is the point — it must happen before any cell
    // touches TorchSharp or Plotly.NET, and a notebook has no Main to call it from.
#pragma warning disable CA2255
    [ModuleInitializer]
    internal static void OnLibraryLoad()
#pragma warning restore CA2255
    {
        TorchNative.PrepareNativeLoad();
        OneDnnGuard.Apply();
        NativeHeap.Apply(); // before the first tensor: freed tensor memory goes back to the system
        FSharpCoreBinding.Install();
        RegisterFormatters();
    }

    /// <summary>Whether this process hosts the .NET Interactive kernel (its formatting assembly is loaded).</summary>
    public static bool InKernel => FormatterType() != null;

    /// <summary>What <see cref="RegisterFormatters"/> did: "registered …", "not in a notebook kernel", or why it failed.</summary>
    public static string Formatters { get; private set; } = "not attempted";

    /// <summary>
    /// Registers, with the kernel's <c>Formatter</c> (found by reflection, so the library needs no reference to
    /// .NET Interactive): Plotly.NET charts as offline text/html — plotly.js inline with the first chart of the session,
    /// every chart's script waiting for it — and tensors as text/plain (shape, dtype, device, values). DataFrames are
    /// left to Microsoft.Data.Analysis's own kernel extension, which renders them as tables.
    /// </summary>
    public static void RegisterFormatters()
    {
        var formatter = FormatterType();
        if (formatter == null) { Formatters = "not in a notebook kernel"; return; }
        var register = formatter.GetMethod("Register", [typeof(Type), typeof(Action<object, TextWriter>), typeof(string)]);
        var preferred = formatter.GetMethod("SetPreferredMimeTypesFor", [typeof(Type), typeof(string[])]);
        if (register == null || preferred == null)
        {
            Formatters = $"failed: {formatter.Assembly.GetName()} has no Formatter.Register(Type, Action<object, TextWriter>, string)";
            return;
        }
        register.Invoke(null, [typeof(GenericChart), (Action<object, TextWriter>)((o, w) => w.Write(KernelChartHtml((GenericChart)o))), "text/html"]);
        preferred.Invoke(null, [typeof(GenericChart), new[] { "text/html" }]);
        register.Invoke(null, [typeof(torch.Tensor), (Action<object, TextWriter>)((o, w) => w.Write(TensorText((torch.Tensor)o))), "text/plain"]);
        preferred.Invoke(null, [typeof(torch.Tensor), new[] { "text/plain" }]);
        // the library's reports (environment, doctor) carry their own HTML, as tf-run shows them
        var reports = typeof(NotebookKernel).Assembly.GetExportedTypes()
            .Where(t => t.GetMethod("ToHtml", BindingFlags.Public | BindingFlags.Instance, Type.EmptyTypes)?.ReturnType == typeof(string))
            .ToList();
        foreach (var type in reports)
        {
            var toHtml = type.GetMethod("ToHtml", BindingFlags.Public | BindingFlags.Instance, Type.EmptyTypes)!;
            register.Invoke(null, [type, (Action<object, TextWriter>)((o, w) => w.Write((string?)toHtml.Invoke(o, null))), "text/html"]);
            preferred.Invoke(null, [type, new[] { "text/html" }]);
        }
        Formatters = $"registered: Plotly.NET charts (offline text/html), tensors (text/plain), {string.Join(", ", reports.Select(t => t.Name))} (text/html)";
    }

    static Type? FormatterType() =>
        AppDomain.CurrentDomain.GetAssemblies()
            .FirstOrDefault(a => a.GetName().Name == "Microsoft.DotNet.Interactive.Formatting")
            ?.GetType("Microsoft.DotNet.Interactive.Formatting.Formatter");

    /// <summary>The chart's HTML, with plotly.js before it the first time in this process.</summary>
    internal static string KernelChartHtml(GenericChart chart) => ChartSession.Process.Html(chart);

    /// <summary>Charts shown in one front-end page: plotly.js goes with the first, the others rely on it.</summary>
    internal sealed class ChartSession
    {
        public static readonly ChartSession Process = new();
        int _sent;

        public string Html(GenericChart chart)
        {
            string html = ChartHtml.Format(chart);
            return Interlocked.Exchange(ref _sent, 1) == 0 ? PlotlyJs.ScriptTag() + "\n" + html : html;
        }
    }

    /// <summary>The folder under lib/PROJECT/bin/ the notebooks load the library (and the clinic) from, named for what makes it.</summary>
    public const string BuildFolder = "made-by-dotnet-build";

    /// <summary>
    /// The notebooks load the library (and 04 the clinic) from lib/PROJECT/bin/made-by-dotnet-build/, which only a
    /// build updates. When a project's sources are newer than its assembly there, a notebook would silently run old
    /// code: this throws, naming the changed file and the command that fixes it. Every such assembly beside the loaded
    /// library is checked, loaded yet or not (the kernel loads the clinic only when a cell first uses it). Loaded from
    /// anywhere else (a program, tf-run, tests), the build system keeps it current and nothing is checked.
    /// </summary>
    public static void CheckLibraryIsCurrent() =>
        CheckLibraryIsCurrent(typeof(NotebookKernel).Assembly.Location);

    internal static void CheckLibraryIsCurrent(string assemblyPath)
    {
        foreach (var assembly in NotebookAssemblies(assemblyPath))
        {
            var stale = NewerSource(assembly);
            if (stale == null) continue;
            throw new InvalidOperationException(
                $"The {Path.GetFileNameWithoutExtension(assembly)} assembly this notebook uses ({assembly}, built {File.GetLastWriteTime(assembly):yyyy-MM-dd HH:mm:ss}) " +
                $"is older than its source {stale.Value.File} (changed {stale.Value.Changed:yyyy-MM-dd HH:mm:ss}). " +
                "Run `dotnet build` at the repository root, then restart the kernel and run the notebook from the top.");
        }
    }

    /// <summary>The loaded library first, then every lib/*/bin/made-by-dotnet-build/PROJECT.dll beside it; nothing outside that layout.</summary>
    internal static IEnumerable<string> NotebookAssemblies(string libraryPath)
    {
        if (ProjectOf(libraryPath) is not { } library) yield break;
        yield return libraryPath;
        foreach (var project in library.Parent!.EnumerateDirectories().Where(d => d.FullName != library.FullName).OrderBy(d => d.Name))
        {
            string dll = Path.Combine(project.FullName, "bin", BuildFolder, project.Name + ".dll");
            if (File.Exists(dll) && ProjectOf(dll) != null) yield return dll;
        }
    }

    /// <summary>lib/PROJECT for lib/PROJECT/bin/made-by-dotnet-build/PROJECT.dll with lib/PROJECT/PROJECT.csproj beside; else null.</summary>
    static DirectoryInfo? ProjectOf(string assemblyPath)
    {
        var folder = Path.GetDirectoryName(assemblyPath);
        if (folder == null || Path.GetFileName(folder) != BuildFolder) return null;
        var project = Directory.GetParent(folder)?.Parent;
        string name = Path.GetFileNameWithoutExtension(assemblyPath);
        return project != null && File.Exists(Path.Combine(project.FullName, name + ".csproj")) ? project : null;
    }

    /// <summary>The newest source of the assembly's project newer than the assembly, or null (not that layout, or current).</summary>
    internal static (string File, DateTime Changed)? NewerSource(string assemblyPath)
    {
        if (ProjectOf(assemblyPath) is not { } project) return null;
        var built = File.GetLastWriteTimeUtc(assemblyPath);
        // the sources: the project's own files and its folders but bin/ and obj/ (build outputs, not walked at all)
        var folders = project.EnumerateDirectories().Where(d => d.Name is not ("bin" or "obj"))
            .SelectMany(d => d.EnumerateFiles("*", SearchOption.AllDirectories));
        var newest = project.EnumerateFiles().Concat(folders)
            .Where(f => f.Extension is ".cs" or ".csproj")
            .Select(f => (File: f.FullName, Changed: f.LastWriteTimeUtc))
            .OrderByDescending(x => x.Changed)
            .FirstOrDefault();
        return newest.File != null && newest.Changed > built ? (newest.File, newest.Changed.ToLocalTime()) : null;
    }

    /// <summary>A tensor as text: TorchSharp's Julia-style rendering (shape, dtype, device, values), invariant culture.</summary>
    public static string TensorText(torch.Tensor t) =>
        t.IsInvalid
            ? "<disposed tensor>"
            : t.ToString(TensorStringStyle.Julia, fltFormat: "g6", width: 100, cultureInfo: CultureInfo.InvariantCulture, newLine: "\n").TrimEnd();
}

/// <summary>
/// Plotly.NET 6.0.0 (the only version served) is built against FSharp.Core 10.1; the .NET Interactive kernel ships and
/// has already loaded FSharp.Core 10.0, and the runtime refuses to hand a 10.1 request an older assembly. This binds
/// such a request to the FSharp.Core already loaded, when the major versions agree. Where FSharp.Core 10.1 is present
/// (a build output) the runtime finds it first and this is never asked.
/// </summary>
public static class FSharpCoreBinding
{
    static int _installed;

    /// <summary>Requests answered so far ("FSharp.Core 10.1.0.0 → 10.0.0.0"), for the environment report and tests.</summary>
    public static IReadOnlyList<string> Bound => BoundList.ToArray();

    static readonly System.Collections.Concurrent.ConcurrentQueue<string> BoundList = new();

    /// <summary>Adds the resolver to the default load context, once.</summary>
    public static void Install()
    {
        if (Interlocked.Exchange(ref _installed, 1) == 1) return;
        AssemblyLoadContext.Default.Resolving += (_, name) => Resolve(name);
    }

    /// <summary>The loaded FSharp.Core of the same major version for a request of FSharp.Core, else null.</summary>
    public static Assembly? Resolve(AssemblyName requested)
    {
        if (!string.Equals(requested.Name, "FSharp.Core", StringComparison.Ordinal)) return null;
        var loaded = AppDomain.CurrentDomain.GetAssemblies()
            .Where(a => a.GetName().Name == "FSharp.Core" && AssemblyLoadContext.GetLoadContext(a) == AssemblyLoadContext.Default)
            .OrderByDescending(a => a.GetName().Version)
            .FirstOrDefault();
        var have = loaded?.GetName().Version;
        if (loaded == null || have == null) return null;
        if (requested.Version != null && requested.Version.Major != have.Major) return null;
        BoundList.Enqueue($"FSharp.Core {requested.Version} → {have}");
        return loaded;
    }
}
