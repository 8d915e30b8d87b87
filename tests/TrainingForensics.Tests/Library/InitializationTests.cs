using TorchSharp;
using TrainingForensics.Models;
using TrainingForensics.Setup;
using static TorchSharp.torch;

namespace TrainingForensics.Tests.Library;

public class InitializationTests
{
    [Fact]
    public void Glorot_uniform_fills_the_bound_with_the_uniform_variance_and_zeroes_biases()
    {
        TorchEnvironment.Reseed(3);
        var model = Initialization.GlorotUniform(Mlp.Create(new[] { 784, 256, 10 }));
        var p = model.named_parameters().ToDictionary(x => x.name, x => x.parameter);
        double a1 = Math.Sqrt(6.0 / (784 + 256)), a2 = Math.Sqrt(6.0 / (256 + 10));
        Assert.Equal(a1, Initialization.GlorotBound(784, 256), 12);
        var w1 = p["fc1.weight"];
        Assert.True(w1.abs().max().item<float>() <= a1);
        Assert.True(w1.abs().max().item<float>() > 0.99 * a1);            // the whole interval is used
        Assert.Equal(a1 * a1 / 3, w1.var().item<float>(), 4);               // Var U(−a,a) = a²/3
        Assert.Equal(0, w1.mean().item<float>(), 3);
        Assert.True(p["fc2.weight"].abs().max().item<float>() <= a2);
        Assert.Equal(0, p["fc1.bias"].abs().max().item<float>());
        Assert.Equal(0, p["fc2.bias"].abs().max().item<float>());
    }

    [Fact]
    public void Same_seed_same_weights_and_torch_scheme_leaves_the_default()
    {
        TorchEnvironment.Reseed(5);
        var a = Initialization.Apply(Mlp.Create(new[] { 20, 8, 3 }), "glorot");
        TorchEnvironment.Reseed(5);
        var b = Initialization.Apply(Mlp.Create(new[] { 20, 8, 3 }), "glorot");
        Assert.True(a.parameters().Zip(b.parameters()).All(t => t.First.allclose(t.Second, 0, 0)));

        TorchEnvironment.Reseed(5);
        var d = Mlp.Create(new[] { 20, 8, 3 });
        TorchEnvironment.Reseed(5);
        var t = Initialization.Apply(Mlp.Create(new[] { 20, 8, 3 }), "torch");
        Assert.True(d.parameters().Zip(t.parameters()).All(x => x.First.allclose(x.Second, 0, 0)));
        // torch's default bias is U(±1/√fan_in), not zero: the two schemes really differ
        Assert.True(t.named_parameters().Single(x => x.name == "fc1.bias").parameter.abs().max().item<float>() > 0);
    }

    [Fact]
    public void Bad_inputs_are_refused()
    {
        Assert.Contains("glorot", Assert.Throws<ArgumentException>(() => Initialization.Apply(Mlp.Create(new[] { 2, 2 }), "he")).Message);
        Assert.Contains("no Linear", Assert.Throws<ArgumentException>(() => Initialization.GlorotUniform(nn.Sequential(nn.ReLU()))).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => Initialization.GlorotBound(0, 3));
    }
}
