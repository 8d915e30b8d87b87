using TrainingForensics.Runner;
using static TrainingForensics.Tests.Runner.RunnerKit;

namespace TrainingForensics.Tests.Runner;

/// <summary>tf-run --device: sets TF_DEVICE (read by TorchEnvironment.Setup) for the run, auto by default (as Setup).</summary>
public class DeviceOptionTests
{
    const string PrintDevice = "Console.Write(Environment.GetEnvironmentVariable(\"TF_DEVICE\"));";

    /// <summary>Runs the body with TF_DEVICE set to <paramref name="value"/> and restores it after.</summary>
    static void WithDeviceVariable(string? value, Action body)
    {
        string? saved = Environment.GetEnvironmentVariable(RunnerCli.DeviceVariable);
        Environment.SetEnvironmentVariable(RunnerCli.DeviceVariable, value);
        try { body(); }
        finally { Environment.SetEnvironmentVariable(RunnerCli.DeviceVariable, saved); }
    }

    [Theory]
    [InlineData(new[] { "--device", "cuda" }, "cuda")]
    [InlineData(new[] { "--device=AUTO" }, "auto")]
    [InlineData(new[] { "--device", " cpu " }, "cpu")]
    [InlineData(new string[0], null)]
    public void Parses_the_device(string[] args, string? expected)
    {
        Assert.Equal(expected, RunnerCli.Parse(args).Device);
    }

    [Fact]
    public void Auto_is_the_default_unless_TF_DEVICE_says_otherwise()
    {
        Assert.Equal("auto", RunnerCli.DeviceFor(null, null));
        Assert.Equal("auto", RunnerCli.DeviceFor(null, "  "));
        Assert.Equal("cpu", RunnerCli.DeviceFor(null, "cpu"));
        Assert.Equal("cuda", RunnerCli.DeviceFor("cuda", "cpu")); // the option wins over the environment
    }

    [Fact]
    public void An_unknown_device_is_a_usage_error_and_nothing_runs()
    {
        using var kit = new RunnerKit();
        string nb = kit.Write("nb", Code(PrintDevice));
        var r = kit.Run(nb, "--device", "tpu");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--device 'tpu'", r.Stderr);
        Assert.Contains("cpu, cuda or auto", r.Stderr);
        Assert.False(Directory.Exists(kit.OutDir));
        Assert.Equal(2, kit.Run(nb, "--device").ExitCode); // no value
    }

    [Fact]
    public void The_notebooks_see_the_device_and_the_variable_is_restored_after_the_run()
    {
        WithDeviceVariable(null, () =>
        {
            using var kit = new RunnerKit();
            string nb = kit.Write("nb", Code(PrintDevice));

            Assert.Equal(0, kit.Run(nb).ExitCode);
            Assert.Equal("auto", AllText(kit.Executed("nb"), 0).Trim());
            Assert.Null(Environment.GetEnvironmentVariable(RunnerCli.DeviceVariable));

            Assert.Equal(0, kit.Run(nb, "--device", "auto").ExitCode);
            Assert.Equal("auto", AllText(kit.Executed("nb"), 0).Trim());
            Assert.Null(Environment.GetEnvironmentVariable(RunnerCli.DeviceVariable));
        });
        WithDeviceVariable("auto", () =>
        {
            using var kit = new RunnerKit();
            string nb = kit.Write("nb", Code(PrintDevice));
            Assert.Equal(0, kit.Run(nb).ExitCode); // no option: the caller's TF_DEVICE stands
            Assert.Equal("auto", AllText(kit.Executed("nb"), 0).Trim());
            Assert.Equal(0, kit.Run(nb, "--device", "cpu").ExitCode);
            Assert.Equal("cpu", AllText(kit.Executed("nb"), 0).Trim());
            Assert.Equal("auto", Environment.GetEnvironmentVariable(RunnerCli.DeviceVariable));
        });
    }

    [Fact]
    public void Setup_honours_the_device_the_runner_sets()
    {
        const string setup = "var env = TrainingForensics.Setup.TorchEnvironment.Setup(seed: 1);\nConsole.Write(env.Device.type);";
        WithDeviceVariable(null, () =>
        {
            using var kit = new RunnerKit();
            string nb = kit.Write("nb", Code(setup));
            Assert.Equal(0, kit.Run(nb, "--device", "cpu").ExitCode);
            Assert.Equal("CPU", AllText(kit.Executed("nb"), 0).Trim());

            if (TorchSharp.torch.cuda.is_available()) return; // on a GPU machine cuda would succeed
            // this machine's libtorch is the CPU build: cuda fails in the notebook with Setup's explanation
            Assert.Equal(1, kit.Run(nb, "--device", "cuda").ExitCode);
            // the cpu run above is a good run in the same folder: the failed one is written beside it
            Assert.Equal("CPU", AllText(kit.Executed("nb"), 0).Trim());
            var error = SingleError(kit.Executed("nb.failed"), 0);
            Assert.Contains("device 'cuda' was requested", error["evalue"]!.GetValue<string>());
        });
    }
}
