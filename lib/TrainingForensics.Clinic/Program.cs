// The clinic: runs the training doctor over the suite of buggy and healthy trainings and prints how it did.
// Usage: dotnet run --project lib/TrainingForensics.Clinic -- [--quick] [--seed N] [--every N] [--no-overhead] [--verbose] [--json FILE]
using TrainingForensics.Clinic;
using TrainingForensics.Diagnostics;
using TrainingForensics.Diagnostics.Doctor;
using TrainingForensics.Setup;

bool quick = false, overhead = true, verbose = false;
int seed = 1;
int? every = null;
string? json = null;
for (int i = 0; i < args.Length; i++)
{
    string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
    switch (args[i])
    {
        case "--quick": quick = true; break;
        case "--no-overhead": overhead = false; break;
        case "--verbose": verbose = true; break;
        case "--seed": seed = int.Parse(Next()); break;
        case "--every": every = int.Parse(Next()); break;
        case "--json": json = Next(); break;
        case "-h" or "--help":
            Console.WriteLine("clinic [--quick] [--seed N] [--every N] [--no-overhead] [--verbose] [--json FILE]");
            return 0;
        default:
            Console.Error.WriteLine($"unknown argument '{args[i]}' (try --help)");
            return 2;
    }
}

var env = TorchEnvironment.Setup(seed);
Console.WriteLine($"TorchSharp {env.TorchSharpVersion}, {env.Threads} thread(s), seed {seed}{(quick ? ", quick subset" : "")}");
var options = every is { } e ? new DoctorOptions { Every = e } : new DoctorOptions();
var cases = quick ? ClinicCases.Quick() : ClinicCases.All();
var report = ClinicRunner.Run(cases, options, seed, env.Device, measureOverhead: overhead, overheadRounds: quick ? 5 : 9, progress: Console.WriteLine);
report.Verbose = verbose;
Console.WriteLine();
Console.WriteLine(report);
if (json != null)
{
    File.WriteAllText(json, report.ToJson());
    Console.WriteLine($"wrote {json}");
}
bool ok = report.Count(ClinicGroup.DesignedBug, ClinicVerdict.Missed) == 0 && report.Count(ClinicGroup.Healthy, ClinicVerdict.FalseAlarm) == 0;
return ok ? 0 : 1;
