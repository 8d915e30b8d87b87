using TrainingForensics.Runner;

using var interruption = Interruption.InstallSignalHandlers();
int exitCode = RunnerCli.Run(args, Console.Out, Console.Error, interruption);
Console.Out.Flush();
Console.Error.Flush();
// Exit even if a cell's thread still runs (a cell that ignored its timeout or the interruption): its outputs are written.
Environment.Exit(exitCode);
