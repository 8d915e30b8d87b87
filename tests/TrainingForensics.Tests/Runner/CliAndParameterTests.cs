using System.Text.Json.Nodes;
using TrainingForensics.Runner;
using static TrainingForensics.Tests.Runner.RunnerKit;

namespace TrainingForensics.Tests.Runner;

/// <summary>Command line, exit codes and papermill-style parameters.</summary>
public class CliAndParameterTests
{
    static void AssertUsageError(RunnerKit.RunResult r, params string[] mentions)
    {
        Assert.Equal(2, r.ExitCode);
        string line = r.Stderr.TrimEnd('\n', '\r');
        Assert.StartsWith("tf-run: error: ", line);
        Assert.DoesNotContain('\n', line);
        foreach (var m in mentions) Assert.Contains(m, line);
    }

    [Fact]
    public void Malformed_json_is_exit_2_with_one_line_and_nothing_runs()
    {
        using var kit = new RunnerKit();
        kit.Write("good", Code("Console.WriteLine(1);"));
        File.WriteAllText(Path.Combine(kit.Dir, "bad.ipynb"), "{\"cells\": [ {\"cell_type\": ");
        var r = kit.Run(kit.Dir);
        AssertUsageError(r, "bad.ipynb", "not valid JSON");
        Assert.False(Directory.Exists(kit.OutDir)); // checked before executing anything
    }

    [Fact]
    public void Missing_file_unknown_option_and_bad_param_are_exit_2()
    {
        using var kit = new RunnerKit();
        string nb = kit.Write("nb", Code("1"));
        AssertUsageError(kit.Run(Path.Combine(kit.Dir, "nope.ipynb")), "nope.ipynb");
        AssertUsageError(kit.Run(Path.Combine(kit.Dir, "no-folder")), "no-folder");
        AssertUsageError(kit.Run(nb, "--fast"), "--fast");
        AssertUsageError(kit.Run(nb, "--param", "epochs"), "epochs", "name=value");
        AssertUsageError(kit.Run(nb, "--param"), "--param");
        AssertUsageError(kit.Run(nb, "--param", "x=1"), "no parameters cell");
        File.WriteAllText(Path.Combine(kit.Dir, "v3.ipynb"), "{\"nbformat\": 3, \"cells\": []}");
        AssertUsageError(kit.Run(Path.Combine(kit.Dir, "v3.ipynb")), "nbformat 4");
        Assert.False(Directory.Exists(kit.OutDir));
    }

    [Fact]
    public void Help_prints_usage_and_exits_0()
    {
        var o = new StringWriter();
        Assert.Equal(0, RunnerCli.Run(["--help"], o, new StringWriter()));
        Assert.Contains("Usage: tf-run", o.ToString());
        Assert.Contains("--param name=value", o.ToString());
    }

    [Fact]
    public void Parse_reads_inputs_out_and_params()
    {
        var o = RunnerCli.Parse(["a.ipynb", "--out=x", "nbs", "--param", "lr=0.5", "--param=name=a=b", "--param", "lr=0.25"]);
        Assert.Equal(["a.ipynb", "nbs"], o.Inputs);
        Assert.Equal("x", o.OutDir);
        Assert.Equal([KeyValuePair.Create("name", "a=b"), KeyValuePair.Create("lr", "0.25")], o.Parameters);
        Assert.Equal("artifacts", RunnerCli.Parse([]).OutDir);
    }

    [Fact]
    public void Default_inputs_are_the_notebooks_folder_sorted_by_name()
    {
        using var kit = new RunnerKit();
        Directory.CreateDirectory(Path.Combine(kit.Dir, "notebooks"));
        foreach (var n in new[] { "b.ipynb", "a.ipynb", "c.txt" }) File.WriteAllText(Path.Combine(kit.Dir, "notebooks", n), "{}");
        string cwd = Directory.GetCurrentDirectory();
        try
        {
            Directory.SetCurrentDirectory(kit.Dir);
            var files = RunnerCli.ResolveInputs([]);
            Assert.Equal(["a.ipynb", "b.ipynb"], files.Select(Path.GetFileName));
        }
        finally { Directory.SetCurrentDirectory(cwd); }
    }

    const string ParamsCell = "int epochs = 5;\nvar lr = 0.1;\nstring device = \"cpu\";\nbool verbose = false;\nlong seed = 42;\nfloat momentum = 0.9f;";
    const string PrintCell = "Console.WriteLine($\"{epochs}|{lr.ToString(System.Globalization.CultureInfo.InvariantCulture)}|{device}|{verbose}|{seed}|{momentum.ToString(System.Globalization.CultureInfo.InvariantCulture)}\");";

    [Fact]
    public void Parameters_are_injected_after_the_parameters_cell_with_their_types()
    {
        using var kit = new RunnerKit();
        string path = kit.Write("params", Markdown("# p"), Code(ParamsCell, null, "parameters"), Code(PrintCell));
        string tricky = "a \"quoted\" \\path\\ {x}\nline2";
        var r = kit.Run(path, "--param", "epochs=7", "--param", "lr=1e-3", "--param", "device=" + tricky, "--param", "verbose=True",
            "--param", "seed=-3", "--param", "momentum=0.5");
        Assert.Equal(0, r.ExitCode);
        var nb = kit.Executed("params");
        var injected = Cell(nb, 2);
        Assert.Contains("injected-parameters", ((JsonArray)injected["metadata"]!["tags"]!).Select(t => t!.GetValue<string>()));
        Assert.False(string.IsNullOrEmpty(injected["id"]?.GetValue<string>())); // nbformat 4.5 cells need an id
        string src = Text(injected["source"]);
        Assert.Contains("epochs = 7;", src);
        Assert.Contains("lr = 0.001d;", src);
        Assert.Contains("verbose = true;", src);
        Assert.Contains("seed = -3L;", src);
        Assert.Equal($"7|0.001|{tricky}|True|-3|0.5\n", Text(Outputs(nb, 3)[0]["text"]));
        Assert.Contains("epochs", nb["metadata"]!["tf_run"]!["parameters"]!.ToJsonString());
    }

    [Fact]
    public void Without_params_the_defaults_run_and_no_cell_is_injected()
    {
        using var kit = new RunnerKit();
        string path = kit.Write("defaults", Code(ParamsCell, null, "parameters"), Code(PrintCell));
        Assert.Equal(0, kit.Run(path).ExitCode);
        var nb = kit.Executed("defaults");
        Assert.Equal(2, ((JsonArray)nb["cells"]!).Count);
        Assert.Equal("5|0.1|cpu|False|42|0.9\n", Text(Outputs(nb, 1)[0]["text"]));
    }

    [Fact]
    public void Unknown_parameter_lists_the_known_ones()
    {
        using var kit = new RunnerKit();
        string path = kit.Write("params", Code(ParamsCell, null, "parameters"));
        AssertUsageError(kit.Run(path, "--param", "epoch=3"), "'epoch'", "epochs (int)", "lr (double)", "device (string)");
    }

    [Theory]
    [InlineData("epochs=abc", "epochs", "abc", "int")]
    [InlineData("lr=fast", "lr", "fast", "double")]
    [InlineData("verbose=yes", "verbose", "yes", "bool")]
    [InlineData("epochs=1.5", "epochs", "1.5", "int")]
    public void A_value_not_of_the_declared_type_is_an_error(string param, string name, string value, string type)
    {
        using var kit = new RunnerKit();
        string path = kit.Write("params", Code(ParamsCell, null, "parameters"));
        AssertUsageError(kit.Run(path, "--param", param), $"'{name}'", $"'{value}'", type);
    }

    [Fact]
    public void With_several_notebooks_each_takes_the_parameters_it_declares()
    {
        using var kit = new RunnerKit();
        kit.Write("n1", Code("int epochs = 1;", null, "parameters"), Code("epochs"));
        kit.Write("n2", Code("string device = \"cpu\";", null, "parameters"), Code("device"));
        kit.Write("n3", Code("\"no params\""));
        var r = kit.Run(kit.Dir, "--param", "epochs=4", "--param", "device=cuda");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("4", Plain(Outputs(kit.Executed("n1"), 2)[0]));
        Assert.Equal("cuda", Plain(Outputs(kit.Executed("n2"), 2)[0]));
        Assert.Equal("no params", Plain(Outputs(kit.Executed("n3"), 0)[0]));

        var bad = kit.Run(kit.Dir, "--param", "batch=4");
        AssertUsageError(bad, "'batch'", "epochs", "device");
    }

    [Fact]
    public void Parse_finds_declared_and_literal_types()
    {
        var p = Parameters.Parse("int a = 1;\nvar b = -2.5;\nvar c = \"s\";\nvar d = true;\nvar e = 3L;\nvar f = 1f;\ndouble g = 2;\n" +
                                 "for (int i = 0; i < 2; i++) { var inner = 1; }\nvar h = Foo();");
        Assert.Equal(
            ["a:Int", "b:Double", "c:String", "d:Bool", "e:Long", "f:Float", "g:Double"],
            p.Select(x => $"{x.Name}:{x.Type}"));
    }

    [Theory]
    [InlineData(ParameterType.String, "a\"b\\c\nd", "\"a\\\"b\\\\c\\nd\"")]
    [InlineData(ParameterType.Double, "1e-3", "0.001d")]
    [InlineData(ParameterType.Int, "-12", "-12")]
    [InlineData(ParameterType.Bool, "FALSE", "false")]
    [InlineData(ParameterType.Float, "0.5", "0.5f")]
    [InlineData(ParameterType.Decimal, "2.50", "2.50m")]
    public void Values_become_csharp_literals(ParameterType type, string value, string literal) =>
        Assert.Equal(literal, Parameters.ToLiteral("p", type, value));

    [Fact]
    public void The_built_tf_run_exits_2_on_bad_input_and_1_on_a_failing_notebook()
    {
        using var kit = new RunnerKit();
        File.WriteAllText(Path.Combine(kit.Dir, "broken.ipynb"), "not json");
        var bad = Spawn(kit.Dir, "broken.ipynb");
        Assert.Equal(2, bad.ExitCode);
        Assert.StartsWith("tf-run: error: ", bad.Stderr);
        Assert.Single(bad.Stderr.Trim().Split('\n'));

        File.Delete(Path.Combine(kit.Dir, "broken.ipynb"));
        Directory.CreateDirectory(Path.Combine(kit.Dir, "notebooks"));
        File.Move(kit.Write("fails", Code("Console.WriteLine(\"ran\");"), Code("throw new Exception(\"spawned failure\");")),
                  Path.Combine(kit.Dir, "notebooks", "fails.ipynb"));
        var failed = Spawn(kit.Dir); // defaults: notebooks/ → artifacts/
        Assert.Equal(1, failed.ExitCode);
        Assert.Contains("cell 2 (2/2)", failed.Stderr);
        Assert.Contains("FAILED", failed.Stdout);
        string executed = File.ReadAllText(Path.Combine(kit.Dir, "artifacts", "fails.ipynb"));
        Assert.Contains("spawned failure", executed);
        Assert.True(File.Exists(Path.Combine(kit.Dir, "artifacts", "fails.html")));
        Assert.True(File.Exists(Path.Combine(kit.Dir, "artifacts", "index.html")));
    }
}
