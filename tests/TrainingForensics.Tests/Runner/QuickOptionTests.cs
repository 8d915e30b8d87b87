using System.Text.Json.Nodes;
using static TrainingForensics.Tests.Runner.RunnerKit;

namespace TrainingForensics.Tests.Runner;

public class QuickOptionTests
{
    static void SetQuick(string path, JsonObject quick)
    {
        var nb = (JsonObject)JsonNode.Parse(File.ReadAllText(path))!;
        nb["metadata"]!["trainingforensics"] = new JsonObject { ["quick_parameters"] = quick };
        File.WriteAllText(path, nb.ToJsonString());
    }

    [Fact]
    public void Quick_uses_the_metadata_parameters_and_explicit_ones_win()
    {
        using var kit = new RunnerKit();
        string path = kit.Write("nb", Code("int epochs = 10;\nstring mode = \"full\";\nbool fast = false;", null, "parameters"),
            Code("Console.Write($\"{epochs} {mode} {fast}\");"));
        SetQuick(path, new JsonObject { ["epochs"] = 1, ["mode"] = "tiny", ["fast"] = true });
        Assert.Equal(0, kit.Run(path, "--quick").ExitCode);
        Assert.Equal("1 tiny True", AllText(kit.Executed("nb"), 2).Trim());
        Assert.Equal(0, kit.Run(path, "--quick", "--param", "epochs=3").ExitCode);
        Assert.Equal("3 tiny True", AllText(kit.Executed("nb"), 2).Trim());
        Assert.Equal(0, kit.Run(path).ExitCode); // without --quick the defaults stand
        Assert.Equal("10 full False", AllText(kit.Executed("nb"), 1).Trim());
    }

    [Fact]
    public void Quick_without_metadata_is_a_usage_error()
    {
        using var kit = new RunnerKit();
        string path = kit.Write("nb", Code("int epochs = 10;", null, "parameters"), Code("epochs"));
        var r = kit.Run(path, "--quick");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("quick_parameters", r.Stderr);
    }

    [Fact]
    public void Quick_parameter_unknown_to_its_notebook_is_an_error()
    {
        using var kit = new RunnerKit();
        string path = kit.Write("nb", Code("int epochs = 10;", null, "parameters"), Code("epochs"));
        SetQuick(path, new JsonObject { ["epoch"] = 1 });
        var r = kit.Run(path, "--quick");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("epoch", r.Stderr);
    }
}
