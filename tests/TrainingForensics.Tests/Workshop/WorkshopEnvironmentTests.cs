using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using TrainingForensics.Tests.Notebooks;

namespace TrainingForensics.Tests.Workshop;

/// <summary>
/// The devcontainer and Binder share one pinned image (binder/Dockerfile); these checks keep its versions in step
/// with the repository (we cannot build containers here, so the files are checked as text).
/// </summary>
public class WorkshopEnvironmentTests
{
    static string Root => TestPaths.RepositoryRoot;
    static string Dockerfile => File.ReadAllText(Path.Combine(Root, "binder", "Dockerfile"));

    static string Arg(string name)
    {
        var m = Regex.Match(Dockerfile, $@"^ARG {name}=(\S+)\s*$", RegexOptions.Multiline);
        Assert.True(m.Success, $"binder/Dockerfile has no ARG {name}=<pinned value>");
        return m.Groups[1].Value;
    }

    static JsonElement DevcontainerJson() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(Root, ".devcontainer", "devcontainer.json")),
            new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }).RootElement;

    [Fact]
    public void The_devcontainer_builds_the_binder_image_without_copying_the_repository()
    {
        var build = DevcontainerJson().GetProperty("build");
        Assert.Equal("../binder/Dockerfile", build.GetProperty("dockerfile").GetString());
        Assert.Equal("..", build.GetProperty("context").GetString());
        string target = build.GetProperty("target").GetString()!;
        Assert.Matches($@"(?m)^FROM \S+ AS {Regex.Escape(target)}$", Dockerfile);
        // the stage the devcontainer uses ends before the repository is copied in (Binder's last stage does that)
        string stage = Dockerfile[Dockerfile.IndexOf($" AS {target}", StringComparison.Ordinal)..];
        stage = stage[..stage.IndexOf("\nFROM ", StringComparison.Ordinal)];
        Assert.DoesNotContain("COPY --chown", stage);
        Assert.Contains("binder/postBuild", DevcontainerJson().GetProperty("postCreateCommand").GetString());
        Assert.True(File.Exists(Path.Combine(Root, "binder", "postBuild")));
    }

    [Fact]
    public void Every_image_and_tool_is_pinned()
    {
        foreach (var line in Dockerfile.Split('\n').Where(l => l.StartsWith("FROM ")))
            Assert.Matches(@"^FROM (\$\{[A-Z_]+\}|env) AS [a-z-]+$", line.Trim()); // images only through the pinned ARGs
        foreach (var image in new[] { Arg("JUPYTER_IMAGE"), Arg("DOTNET_SDK_IMAGE") })
            Assert.Matches(@":(\d{4}-\d{2}-\d{2}|\d+\.\d+\.\d+-noble)$", image); // a dated or full-version tag, never "latest"
        Assert.Matches(@"^1\.0\.\d{6}$", Arg("DOTNET_INTERACTIVE_VERSION"));
        Assert.Contains("--version ${DOTNET_INTERACTIVE_VERSION}", Dockerfile);
        var extensions = DevcontainerJson().GetProperty("customizations").GetProperty("vscode").GetProperty("extensions")
            .EnumerateArray().Select(e => e.GetString()!).ToList();
        Assert.Contains(extensions, e => e.StartsWith("ms-dotnettools.dotnet-interactive-vscode@", StringComparison.Ordinal));
        Assert.All(extensions, e => Assert.Matches(@"^[\w-]+\.[\w-]+@\d+(\.\d+)+$", e));
    }

    [Fact]
    public void The_versions_agree_with_the_repository()
    {
        // the SDK image is the SDK band global.json asks for (latestFeature: same major.minor, same or later feature band)
        var sdk = JsonDocument.Parse(File.ReadAllText(Path.Combine(Root, "global.json"))).RootElement.GetProperty("sdk").GetProperty("version").GetString()!;
        var image = Regex.Match(Arg("DOTNET_SDK_IMAGE"), @":(\d+)\.(\d+)\.(\d)(\d\d)-").Groups;
        var want = Regex.Match(sdk, @"^(\d+)\.(\d+)\.(\d)(\d\d)").Groups;
        Assert.Equal(want[1].Value + "." + want[2].Value, image[1].Value + "." + image[2].Value);
        Assert.True(int.Parse(image[3].Value) >= int.Parse(want[3].Value), $"SDK image {Arg("DOTNET_SDK_IMAGE")} is older than global.json's {sdk}");

        // the kernel the image installs is the one the tool manifest pins and CI runs the notebooks in
        var tools = JsonDocument.Parse(File.ReadAllText(Path.Combine(Root, ".config", "dotnet-tools.json"))).RootElement.GetProperty("tools");
        Assert.Equal(tools.GetProperty("microsoft.dotnet-interactive").GetProperty("version").GetString(), Arg("DOTNET_INTERACTIVE_VERSION"));
        Assert.True(tools.TryGetProperty("dotnet-repl", out _), ".config/dotnet-tools.json pins dotnet-repl (CI runs the notebooks through it)");

        // the kernel the image installs is the one the notebooks name
        foreach (var path in NotebookFiles.All())
            Assert.Equal(".net-csharp", NotebookFiles.Load(Path.GetFileName(path)).GetProperty("metadata").GetProperty("kernelspec").GetProperty("name").GetString());
        Assert.Contains("'\\.net-csharp'", Dockerfile);

        // the packages warmed into the NuGet cache are the notebook packages of Directory.Packages.props
        Assert.Contains("Notebook\") == \"true\"", File.ReadAllText(Path.Combine(Root, "binder", "postBuild")));
        Assert.NotEmpty(NotebookFiles.CentralNotebookPackages());
    }
}
