using System.Runtime.InteropServices;

namespace TrainingForensics.Benchmarks;

/// <summary>What the numbers were measured on: date, CPU, cores, OS, load, versions.</summary>
internal static class Machine
{
    public static string CpuModel()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            if (line != null) return line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return RuntimeInformation.ProcessArchitecture.ToString();
    }

    public static string Os()
    {
        try
        {
            var line = File.ReadLines("/etc/os-release").FirstOrDefault(l => l.StartsWith("PRETTY_NAME=", StringComparison.Ordinal));
            string kernel = File.Exists("/proc/sys/kernel/osrelease") ? File.ReadAllText("/proc/sys/kernel/osrelease").Trim() : "";
            if (line != null) return line["PRETTY_NAME=".Length..].Trim('"') + (kernel.Length > 0 ? $", Linux {kernel}" : "");
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return RuntimeInformation.OSDescription;
    }

    /// <summary>The 1, 5 and 15 minute load averages (Linux), or "n/a".</summary>
    public static string LoadAverage()
    {
        try
        {
            var parts = File.ReadAllText("/proc/loadavg").Split(' ');
            return $"{parts[0]}, {parts[1]}, {parts[2]}";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or IndexOutOfRangeException)
        {
            return "n/a";
        }
    }

    /// <summary>
    /// Runs a program to its end and returns its exit code, wall seconds and peak resident set size in MiB: the
    /// kernel's high-water mark (VmHWM in /proc/PID/status), read every 100 ms while it runs (the last read before
    /// it exits is its peak up to then); NaN where /proc is not available.
    /// </summary>
    public static (int ExitCode, double Seconds, double PeakMiB) RunMeasured(System.Diagnostics.ProcessStartInfo start)
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        using var p = System.Diagnostics.Process.Start(start) ?? throw new InvalidOperationException($"could not start {start.FileName}");
        double peak = double.NaN;
        string status = $"/proc/{p.Id}/status";
        while (!p.WaitForExit(100))
        {
            try
            {
                foreach (var line in File.ReadLines(status))
                    if (line.StartsWith("VmHWM:"))
                        peak = double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) / 1024.0;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // exited between checks
        }
        return (p.ExitCode, watch.Elapsed.TotalSeconds, peak);
    }

    /// <summary>Resident set size of this process in MiB (after a full garbage collection).</summary>
    public static double RssMiB()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using var p = System.Diagnostics.Process.GetCurrentProcess();
        p.Refresh();
        return p.WorkingSet64 / (1024.0 * 1024.0);
    }
}
