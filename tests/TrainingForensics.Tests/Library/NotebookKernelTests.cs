using System.Reflection;
using TrainingForensics.Charts;
using TrainingForensics.Native;
using TrainingForensics.Results;
using TrainingForensics.Setup;

namespace TrainingForensics.Tests.Library;

/// <summary>
/// The pieces that make the notebooks run in the .NET Interactive kernel: the native preload from the NuGet cache,
/// the FSharp.Core binding, offline chart HTML and the figures file. CI runs every notebook in the real kernel
/// (scripts/run-in-kernel.sh); these tests pin each piece down on its own.
/// </summary>
public class NotebookKernelTests
{
    static string TorchSharpPackageLib => Path.Combine(TestPaths.NuGetPackageRoot, "torchsharp", "0.107.0", "lib", "net8.0");

    [Fact]
    public void The_package_cache_layout_gives_TorchSharps_native_library_and_the_matching_libtorch()
    {
        if (!OperatingSystem.IsLinux()) return;
        var layout = TorchNative.PackageCacheLayout.Find(TorchSharpPackageLib);
        Assert.NotNull(layout);
        Assert.Equal(Path.Combine(TestPaths.NuGetPackageRoot, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so"), layout!.LibTorchSharp);
        Assert.True(File.Exists(Path.Combine(layout.LibTorchDir, "libtorch.so")));
        Assert.Contains(Path.Combine("libtorch-cpu-linux-x64", "2.10.0"), layout.LibTorchDir);
        // a build output is not a package layout: nothing to preload there
        Assert.Null(TorchNative.PackageCacheLayout.Find(AppContext.BaseDirectory));
    }

    [Fact]
    public void The_weakened_copy_equals_the_builds_copy_and_is_written_once()
    {
        string original = Path.Combine(TestPaths.NuGetPackageRoot, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        string? built = TorchNative.FindLibTorchSharp();
        if (!OperatingSystem.IsLinux() || !File.Exists(original) || built == null) return;
        using var cache = new TempDir();
        string copy = TorchNative.WeakenedCopy(original, cache.Path);
        Assert.StartsWith(cache.Path, copy);
        Assert.Equal(File.ReadAllBytes(built), File.ReadAllBytes(copy)); // the same single flag bit as the build's patch
        var written = File.GetLastWriteTimeUtc(copy);
        Assert.Equal(copy, TorchNative.WeakenedCopy(original, cache.Path));
        Assert.Equal(written, File.GetLastWriteTimeUtc(copy)); // reused, not rewritten
        Assert.Single(Directory.GetFiles(cache.Path, "*", SearchOption.AllDirectories)); // no temporary file left
        Assert.Empty(ElfVersionNeeds.WeakenUnused(File.ReadAllBytes(copy), "libstdc++.so.6")); // nothing left to weaken
    }

    [Fact]
    public void In_a_build_output_the_preload_stands_aside()
    {
        TorchNative.PrepareNativeLoad();
        if (OperatingSystem.IsLinux())
            Assert.StartsWith("not needed", TorchNative.Preload);
    }

    [Fact]
    public void A_request_for_a_newer_FSharp_Core_of_the_same_major_gets_the_loaded_one()
    {
        var loaded = typeof(Microsoft.FSharp.Core.Unit).Assembly;
        var v = loaded.GetName().Version!;
        Assert.Same(loaded, FSharpCoreBinding.Resolve(new AssemblyName($"FSharp.Core, Version={v.Major}.{v.Minor + 1}.0.0")));
        Assert.Null(FSharpCoreBinding.Resolve(new AssemblyName($"FSharp.Core, Version={v.Major + 1}.0.0.0"))); // another major: refused
        Assert.Null(FSharpCoreBinding.Resolve(new AssemblyName("Plotly.NET, Version=6.0.0.0"))); // other assemblies: not ours
        Assert.Contains(FSharpCoreBinding.Bound, b => b.StartsWith($"FSharp.Core {v.Major}.{v.Minor + 1}.0.0 → {v}", StringComparison.Ordinal));
    }

    [Fact]
    public void A_chart_draws_offline_and_waits_for_plotly_js()
    {
        var chart = TrainingForensics.Charts.Plots.Lines("t", "x", "y", [new Series("s", [0.0, 1.0], [1.0, 2.0])]);
        string html = ChartHtml.Format(chart);
        Assert.Contains(ChartHtml.ChartMarker, html);
        Assert.DoesNotContain("cdn.plot.ly", html);
        Assert.DoesNotContain("require", html);
        Assert.Contains("if (window.Plotly) renderPlotly_", html); // drawn once plotly.js is there, whichever output carries it
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(html, @"renderPlotly_\w+\(\);"));
    }

    [Fact]
    public void A_chart_formats_to_the_data_layout_and_config_of_plotly_nets_own_html()
    {
        // the template is serialised once and spliced into later charts: each must still say exactly what Plotly.NET says
        static System.Text.Json.Nodes.JsonNode Part(string html, string name)
        {
            string start = $"var {name} = ";
            int s = html.IndexOf(start, StringComparison.Ordinal) + start.Length;
            return System.Text.Json.Nodes.JsonNode.Parse(html[s..html.IndexOf(";\n", s, StringComparison.Ordinal)])!;
        }
        var lines = TrainingForensics.Charts.Plots.Lines("dark", "x", "y", [new Series("s", [0.0, 1.0], [1.0, 2.0])]);
        var darkLayout = new Plotly.NET.Layout();
        Plotly.NET.GenericChart.getLayout(lines).ShallowCopyDynamicPropertiesTo(darkLayout, true);
        darkLayout.SetProperty("template", Plotly.NET.ChartTemplates.dark);
        var dark = Plotly.NET.GenericChart.setLayout(darkLayout, lines);
        var charts = new[]
        {
            TrainingForensics.Charts.Plots.Lines("t", "x", "y", [new Series("a", [0.0, 1.0, 2.0], [1.0, 2.0, 4.0]), new Series("b", [0.0, 2.0], [3.0, 1.0], "dash")], logY: true),
            HeatmapPictures.Bars("bars", ["a", "b"], [0.5, 0.25], "value"),
            TrainingForensics.Charts.Plots.SideBySide("panels", new Panel("left", "x", "y", [new Series("a", [0.0, 1.0], [1.0, 0.0])]),
                new Panel("right", "x", "y", [new Series("a", [0.0, 1.0], [0.0, 1.0])])),
            dark,                                                                           // another template: serialised afresh
            TrainingForensics.Charts.Plots.Lines("again", "x", "y", [new Series("s", [0.0, 1.0], [2.0, 2.0])]), // and back
            Plotly.NET.GenericChart.ofTraceObject(false, new Plotly.NET.Trace2D("scatter")),                  // no template at all
        };
        foreach (var chart in charts)
        {
            string ours = ChartHtml.Format(chart), plotly = Plotly.NET.GenericChart.toChartHTML(chart);
            foreach (var name in new[] { "data", "layout", "config" })
                Assert.True(System.Text.Json.Nodes.JsonNode.DeepEquals(Part(plotly, name), Part(ours, name)), $"{name} of '{Plotly.NET.GenericChart.getLayout(chart)}' differs");
        }
        Assert.Contains("\"paper_bgcolor\":\"rgb(55, 55, 61)\"", ChartHtml.Format(dark)); // the dark template's own colours
    }

    [Fact]
    public void In_the_kernel_plotly_js_comes_with_the_first_chart_only()
    {
        var chart = TrainingForensics.Charts.Plots.Lines("t", "x", "y", [new Series("s", [0.0, 1.0], [1.0, 2.0])]);
        var session = new NotebookKernel.ChartSession();
        string first = session.Html(chart), second = session.Html(chart), third = session.Html(chart);
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(first, PlotlyJs.ScriptMarker));
        Assert.True(first.IndexOf(PlotlyJs.ScriptMarker, StringComparison.Ordinal) < first.IndexOf(ChartHtml.ChartMarker, StringComparison.Ordinal));
        Assert.DoesNotContain(PlotlyJs.ScriptMarker, second);
        Assert.DoesNotContain(PlotlyJs.ScriptMarker, third);
    }

    [Fact]
    public void Outside_a_kernel_no_formatter_is_registered()
    {
        Assert.False(NotebookKernel.InKernel);
        NotebookKernel.RegisterFormatters();
        Assert.Equal("not in a notebook kernel", NotebookKernel.Formatters);
    }

    [Fact]
    public void With_TF_FIGURES_set_every_record_rewrites_the_figures_file()
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "nb.figures.json");
        string name = "kernel_test_" + Guid.NewGuid().ToString("N")[..6];
        Environment.SetEnvironmentVariable(Figures.PathVariable, path);
        try
        {
            Figures.Record(name, 1.5, "units", "a test figure");
            Assert.Equal(1.5, Figures.ReadJson(path)[name]);
            Figures.Record(name, 2.5, "units", "a test figure");
            Assert.Equal(2.5, Figures.ReadJson(path)[name]);
        }
        finally { Environment.SetEnvironmentVariable(Figures.PathVariable, null); }
        Assert.Single(Directory.GetFiles(dir.Path)); // written through a temporary file, then renamed
    }

    [Fact]
    public void A_notebook_library_older_than_its_sources_is_refused_with_the_command_that_fixes_it()
    {
        using var repo = new TempDir();
        string project = Path.Combine(repo.Path, "lib", "TrainingForensics");
        string dll = Path.Combine(project, "bin", NotebookKernel.BuildFolder, "TrainingForensics.dll");
        Directory.CreateDirectory(Path.GetDirectoryName(dll)!);
        Directory.CreateDirectory(Path.Combine(project, "Setup"));
        File.WriteAllText(Path.Combine(project, "TrainingForensics.csproj"), "<Project />");
        string source = Path.Combine(project, "Setup", "A.cs");
        File.WriteAllText(source, "class A {}");
        File.WriteAllText(dll, "built");
        File.SetLastWriteTimeUtc(source, DateTime.UtcNow.AddMinutes(-10));
        File.SetLastWriteTimeUtc(Path.Combine(project, "TrainingForensics.csproj"), DateTime.UtcNow.AddMinutes(-10));
        File.SetLastWriteTimeUtc(dll, DateTime.UtcNow.AddMinutes(-5));
        NotebookKernel.CheckLibraryIsCurrent(dll); // current: no complaint

        File.SetLastWriteTimeUtc(source, DateTime.UtcNow);
        var e = Assert.Throws<InvalidOperationException>(() => NotebookKernel.CheckLibraryIsCurrent(dll));
        Assert.Contains(source, e.Message);
        Assert.Contains("dotnet build", e.Message);
        Assert.Contains("restart the kernel", e.Message);
        File.SetLastWriteTimeUtc(source, DateTime.UtcNow.AddMinutes(-10));
        NotebookKernel.CheckLibraryIsCurrent(dll);

        // the clinic beside it (notebook 04's second assembly) is checked too, even before anything loads it
        string clinic = Path.Combine(repo.Path, "lib", "TrainingForensics.Clinic");
        string clinicDll = Path.Combine(clinic, "bin", TrainingForensics.Setup.NotebookKernel.BuildFolder, "TrainingForensics.Clinic.dll");
        Directory.CreateDirectory(Path.GetDirectoryName(clinicDll)!);
        File.WriteAllText(Path.Combine(clinic, "TrainingForensics.Clinic.csproj"), "<Project />");
        string clinicSource = Path.Combine(clinic, "ClinicRunner.cs");
        File.WriteAllText(clinicSource, "class C {}");
        File.WriteAllText(clinicDll, "built");
        File.SetLastWriteTimeUtc(Path.Combine(clinic, "TrainingForensics.Clinic.csproj"), DateTime.UtcNow.AddMinutes(-10));
        File.SetLastWriteTimeUtc(clinicSource, DateTime.UtcNow.AddMinutes(-10));
        File.SetLastWriteTimeUtc(clinicDll, DateTime.UtcNow.AddMinutes(-5));
        Assert.Equal(new[] { dll, clinicDll }, NotebookKernel.NotebookAssemblies(dll));
        NotebookKernel.CheckLibraryIsCurrent(dll);
        File.SetLastWriteTimeUtc(clinicSource, DateTime.UtcNow);
        var c = Assert.Throws<InvalidOperationException>(() => NotebookKernel.CheckLibraryIsCurrent(dll));
        Assert.Contains("TrainingForensics.Clinic assembly", c.Message);
        Assert.Contains(clinicSource, c.Message);

        // a build output elsewhere (tf-run, tests, a program) is the build system's business
        Assert.Null(NotebookKernel.NewerSource(typeof(NotebookKernel).Assembly.Location));
    }
}
