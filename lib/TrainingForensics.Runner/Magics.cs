using System.Reflection;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace TrainingForensics.Runner;

/// <summary>A kernel magic line the runner cannot honour (unknown package, wrong version, missing dll, unsupported magic).</summary>
public sealed class MagicException(string message) : Exception(message);

/// <summary>A package version from Directory.Packages.props.</summary>
public sealed record CentralPackage(string Name, string Version, bool Notebook);

/// <summary>The central package versions (Directory.Packages.props, embedded in the runner at build time).</summary>
public static class CentralPackages
{
    static IReadOnlyList<CentralPackage>? _all;

    public static IReadOnlyList<CentralPackage> All => _all ??= Load();

    static IReadOnlyList<CentralPackage> Load()
    {
        using var stream = typeof(CentralPackages).Assembly.GetManifestResourceStream("Directory.Packages.props")
                           ?? throw new InvalidOperationException("Directory.Packages.props is not embedded in tf-run");
        return Parse(XDocument.Load(stream));
    }

    public static IReadOnlyList<CentralPackage> Parse(XDocument doc) =>
        doc.Descendants().Where(e => e.Name.LocalName == "PackageVersion")
            .Select(e => new CentralPackage(
                (string?)e.Attribute("Include") ?? "",
                (string?)e.Attribute("Version") ?? "",
                string.Equals((string?)e.Attribute("Notebook"), "true", StringComparison.OrdinalIgnoreCase)))
            .Where(p => p.Name.Length > 0)
            .ToList();
}

/// <summary>
/// The .NET Interactive magics a C# cell may hold, checked and removed before Roslyn sees the code:
/// <c>#r "nuget: Name, Version"</c> (must match a Notebook="true" central version; the runner already carries it),
/// <c>#r "file.dll"</c> (relative to the notebook's folder), <c>#i "…"</c> (ignored). Any <c>#!</c> magic is refused.
/// Magic lines become empty lines, so line numbers in compile errors still match the cell.
/// </summary>
public sealed class Magics
{
    static readonly Regex RefLine = new(@"^\s*#r\s+""(?<arg>[^""]*)""\s*(//.*)?$", RegexOptions.CultureInvariant);
    static readonly Regex IncludeLine = new(@"^\s*#i\s+""[^""]*""\s*(//.*)?$", RegexOptions.CultureInvariant);
    static readonly Regex MagicCommand = new(@"^\s*#!\S*", RegexOptions.CultureInvariant);
    static readonly Regex NugetArg = new(@"^\s*nuget\s*:\s*(?<name>[^,\s]+)\s*(,\s*(?<version>\S*)\s*)?$", RegexOptions.CultureInvariant | RegexOptions.IgnoreCase);

    public sealed record Result(string Code, IReadOnlyList<string> ReferencePaths, IReadOnlyList<string> LoadedAssemblyNames);

    readonly IReadOnlyList<CentralPackage> _central;
    readonly Func<string, bool> _isLoadedAssembly;

    /// <param name="central">central package versions (defaults to the embedded Directory.Packages.props)</param>
    /// <param name="isLoadedAssembly">whether an assembly simple name is already referenced by the runner</param>
    public Magics(IReadOnlyList<CentralPackage>? central = null, Func<string, bool>? isLoadedAssembly = null)
    {
        _central = central ?? CentralPackages.All;
        _isLoadedAssembly = isLoadedAssembly ?? (n => ScriptReferences.IsReferencedAssembly(n));
    }

    /// <summary>Checks and strips the magics of one cell; throws <see cref="MagicException"/> naming the line.</summary>
    public Result Process(string code, string notebookFolder)
    {
        var lines = code.Split('\n');
        var paths = new List<string>();
        var loaded = new List<string>();
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].TrimEnd('\r');
            string where = $"line {i + 1}";
            var r = RefLine.Match(line);
            if (r.Success)
            {
                string arg = r.Groups["arg"].Value;
                if (arg.TrimStart().StartsWith("nuget", StringComparison.OrdinalIgnoreCase) && arg.Contains(':'))
                    CheckNuget(arg, where);
                else
                {
                    var (path, loadedName) = ResolveDll(arg, notebookFolder, where);
                    if (path != null) paths.Add(path);
                    if (loadedName != null) loaded.Add(loadedName);
                }
                lines[i] = BlankKeepingCr(lines[i]);
            }
            else if (IncludeLine.IsMatch(line))
            {
                lines[i] = BlankKeepingCr(lines[i]);
            }
            else if (MagicCommand.Match(line) is { Success: true } m)
            {
                throw new MagicException($"{where}: the magic command '{m.Value.Trim()}' is not supported by tf-run " +
                                         "(only C# code, #r \"nuget: Name, Version\", #r \"file.dll\" and #i lines are)");
            }
            else if (Regex.IsMatch(line, @"^\s*#r\b") && !Regex.IsMatch(line, @"^\s*#region\b"))
            {
                throw new MagicException($"{where}: cannot read the #r line '{line.Trim()}' (expected #r \"nuget: Name, Version\" or #r \"file.dll\")");
            }
        }
        return new Result(string.Join('\n', lines), paths, loaded);
    }

    static string BlankKeepingCr(string line) => line.EndsWith('\r') ? "\r" : "";

    void CheckNuget(string arg, string where)
    {
        var m = NugetArg.Match(arg);
        if (!m.Success)
            throw new MagicException($"{where}: cannot read the package reference \"{arg}\" (expected \"nuget: Name, Version\")");
        string name = m.Groups["name"].Value;
        string version = m.Groups["version"].Success ? m.Groups["version"].Value : "";
        var notebookPackages = _central.Where(p => p.Notebook).ToList();
        var central = notebookPackages.FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase));
        string known = string.Join(", ", notebookPackages.Select(p => $"{p.Name} {p.Version}"));
        if (central == null)
            throw new MagicException($"{where}: the notebook references package {name}{(version.Length > 0 ? " " + version : "")}, " +
                                     $"which is not a notebook package in Directory.Packages.props (central: {known})");
        if (version.Length == 0)
            throw new MagicException($"{where}: #r \"nuget: {name}\" has no version; pin a version: " +
                                     $"#r \"nuget: {central.Name}, {central.Version}\" (the central version)");
        if (!string.Equals(version, central.Version, StringComparison.OrdinalIgnoreCase))
            throw new MagicException($"{where}: the notebook references {name} version {version}, but the central version " +
                                     $"in Directory.Packages.props is {central.Name} {central.Version}");
    }

    (string? Path, string? LoadedName) ResolveDll(string arg, string notebookFolder, string where)
    {
        string trimmed = arg.Trim();
        if (trimmed.Length == 0) throw new MagicException($"{where}: #r \"\" names no assembly");
        string full = Path.GetFullPath(Path.Combine(notebookFolder, trimmed));
        if (File.Exists(full))
        {
            string simpleName;
            try { simpleName = AssemblyName.GetAssemblyName(full).Name ?? Path.GetFileNameWithoutExtension(full); }
            catch (BadImageFormatException) { throw new MagicException($"{where}: #r \"{arg}\": '{full}' is not a .NET assembly"); }
            // one copy of an assembly: when the runner already carries it, notebooks get the loaded one
            return _isLoadedAssembly(simpleName) ? (null, simpleName) : (full, null);
        }
        // a bare assembly name the runner carries (e.g. #r "System.Net.Http")
        string bare = trimmed.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) ? trimmed[..^4] : trimmed;
        if (!trimmed.Contains('/') && !trimmed.Contains('\\') && _isLoadedAssembly(bare))
            return (null, bare);
        // a build output (the library's made-by-dotnet-build/, any bin/): say which command makes it
        string hint = full.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}")
            ? " (a build output: run `dotnet build` at the repository root)" : "";
        throw new MagicException($"{where}: #r \"{arg}\": the assembly '{full}' does not exist{hint}");
    }
}
