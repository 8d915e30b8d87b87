using System.Runtime.InteropServices;
using TorchSharp;
using TrainingForensics.Models;
using TrainingForensics.Setup;
using TrainingForensics.Training;
using static TorchSharp.torch;

// Loads libtorch through the library, takes a few training steps and prints what it ran on.
var env = TorchEnvironment.Setup(seed: 1);
var model = Mlp.Create(new[] { 4, 8, 2 });
var loop = new TrainingLoop(model, optim.SGD(model.parameters(), 0.1), (o, t) => nn.functional.cross_entropy(o, t));
var x = randn(16, 4);
var y = (x[.., 0] > 0).to_type(ScalarType.Int64);
for (int i = 0; i < 20; i++) loop.Step(x, y);
Console.WriteLine($"runtime: {RuntimeInformation.FrameworkDescription}");
Console.WriteLine($"device: {env.Device.type}");
Console.WriteLine($"loss: {loop.History.Losses[0]:F4} -> {loop.History.Losses[^1]:F4}");
return loop.History.Losses[^1] < loop.History.Losses[0] ? 0 : 3;
