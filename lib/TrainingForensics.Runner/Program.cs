using TrainingForensics.Runner;

return RunnerCli.Run(args, Console.Out, Console.Error);
