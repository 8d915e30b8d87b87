using System.Reflection;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Scripting;
using Microsoft.CodeAnalysis.CSharp.Scripting;

namespace TrainingForensics.Runner;

/// <summary>
/// The one <see cref="ScriptOptions"/> of a run: references to every assembly the runner carries (the framework,
/// TorchSharp, Plotly.NET, FSharp.Core, Microsoft.Data.Analysis, TrainingForensics), the kernel's usual usings.
/// Built once per process; Roslyn's first compile is the slow part, the references are shared after that.
/// </summary>
public static class ScriptReferences
{
    /// <summary>
    /// The namespaces a C# notebook cell sees without a using: exactly the .NET Interactive C# kernel's (1.0.712001,
    /// measured by compiling probes in it: System.IO and System.Threading are not among them), plus the runner's
    /// <c>display</c>, which the kernel also provides without a using.
    /// </summary>
    public static readonly string[] Imports =
    [
        "System", "System.Collections.Generic", "System.Linq", "System.Text", "System.Threading.Tasks",
        "TrainingForensics.Runner.Scripting",
    ];

    static readonly Lazy<(ScriptOptions Options, Dictionary<string, string> Paths)> Built = new(Build);

    public static ScriptOptions Options => Built.Value.Options;

    /// <summary>Whether the scripts already reference an assembly with this simple name.</summary>
    public static bool IsReferencedAssembly(string simpleName) => Built.Value.Paths.ContainsKey(simpleName);

    static (ScriptOptions, Dictionary<string, string>) Build()
    {
        // make sure the notebook packages are loaded, whatever the runner has touched so far
        Assembly[] anchors =
        [
            typeof(TorchSharp.torch).Assembly, typeof(Plotly.NET.GenericChart).Assembly,
            typeof(Microsoft.FSharp.Core.Unit).Assembly, typeof(Microsoft.Data.Analysis.DataFrame).Assembly,
            typeof(TrainingForensics.Results.Figures).Assembly, typeof(ScriptReferences).Assembly,
            typeof(System.Text.Json.JsonSerializer).Assembly, typeof(System.Net.Http.HttpClient).Assembly,
            typeof(System.Collections.Immutable.ImmutableArray).Assembly,
        ];
        var paths = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var a in anchors.Concat(AppDomain.CurrentDomain.GetAssemblies()))
        {
            if (a.IsDynamic || string.IsNullOrEmpty(a.Location)) continue;
            string? name = a.GetName().Name;
            if (name != null && !paths.ContainsKey(name) && IsReferenceable(name)) paths[name] = a.Location;
        }
        // the framework and the app's dependencies (what a notebook could load), not yet loaded ones included
        if (AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES") is string tpa)
            foreach (var p in tpa.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
            {
                if (!p.EndsWith(".dll", StringComparison.OrdinalIgnoreCase)) continue;
                string name = Path.GetFileNameWithoutExtension(p);
                if (!paths.ContainsKey(name) && IsReferenceable(name)) paths[name] = p;
            }
        var refs = paths.Values.Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToList();
        var options = ScriptOptions.Default
            .WithReferences(refs)
            .WithImports(Imports)
            .WithLanguageVersion(LanguageVersion.Latest)
            .WithEmitDebugInformation(true)
            .WithFileEncoding(Encoding.UTF8)
            .WithAllowUnsafe(true)
            .WithOptimizationLevel(OptimizationLevel.Release)
            .WithCheckOverflow(false);
        return (options, paths);
    }

    // test-host and tooling assemblies are in the test process's TPA list but are no business of a notebook
    static bool IsReferenceable(string name) =>
        !name.StartsWith("xunit", StringComparison.OrdinalIgnoreCase)
        && !name.StartsWith("testhost", StringComparison.OrdinalIgnoreCase)
        && !name.StartsWith("Microsoft.TestPlatform", StringComparison.OrdinalIgnoreCase)
        && !name.StartsWith("Microsoft.VisualStudio.", StringComparison.OrdinalIgnoreCase)
        && !name.StartsWith("Microsoft.CodeCoverage", StringComparison.OrdinalIgnoreCase)
        && !name.Equals("TrainingForensics.Tests", StringComparison.OrdinalIgnoreCase);
}
