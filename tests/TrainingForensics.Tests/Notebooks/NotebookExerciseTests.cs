using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using TrainingForensics.Runner;

namespace TrainingForensics.Tests.Notebooks;

/// <summary>A prediction on a recorded figure: the exercise's run must record it, within [Min, Max].</summary>
internal sealed record ExerciseExpectation(string Figure, double? Min, double? Max);

/// <summary>
/// One entry of a notebook's metadata <c>trainingforensics.exercises</c>: what the reader sets in the parameters cell
/// (<see cref="Parameters"/>), what the test adds on top of the quick configuration to stay fast
/// (<see cref="TestParameters"/>), predictions on figures, and optionally the claim the run is expected to fail.
/// Values are kept as the --param text (JSON strings as they are, numbers as written, booleans lower-case).
/// </summary>
internal sealed record NotebookExercise(string Id, IReadOnlyList<KeyValuePair<string, string>> Parameters,
                                        IReadOnlyList<KeyValuePair<string, string>> TestParameters,
                                        IReadOnlyList<ExerciseExpectation> Expect, string? ExpectFailure)
{
    /// <summary>The runner's arguments: the notebook, --quick, the parameters then the test's reductions, --out.</summary>
    public string[] RunnerArguments(string notebookPath, string outDir)
    {
        var args = new List<string> { notebookPath, "--quick" };
        foreach (var (name, value) in Parameters.Concat(TestParameters)) { args.Add("--param"); args.Add($"{name}={value}"); }
        args.Add("--out");
        args.Add(outDir);
        return args.ToArray();
    }
}

/// <summary>
/// Issue #15 item 4: every "Try it yourself" item and parameter exercise is declared in the notebook metadata
/// <c>trainingforensics.exercises</c> and run by a test. The hygiene checks here are pure and fast (schema, parameter
/// names and values, the markdown's backticked <c>name=value</c> settings against the declared exercises); the theory
/// marked Category=Exercises runs every exercise through the runner in-process.
/// </summary>
public class NotebookExerciseTests
{
    static readonly Regex KebabCase = new("^[a-z0-9]+(-[a-z0-9]+)*$");
    static readonly HashSet<string> EntryKeys = new() { "id", "parameters", "test_parameters", "expect", "expect_failure" };

    // ---------------------------------------------------------------- reading the metadata

    /// <summary>The exercises a notebook declares (none when the metadata has no list); throws naming the defect when an entry breaks the schema.</summary>
    internal static IReadOnlyList<NotebookExercise> Exercises(JsonElement nb)
    {
        if (!nb.GetProperty("metadata").TryGetProperty("trainingforensics", out var tf) || !tf.TryGetProperty("exercises", out var list))
            return Array.Empty<NotebookExercise>();
        if (list.ValueKind != JsonValueKind.Array) throw new FormatException("trainingforensics.exercises must be a JSON list");
        var result = new List<NotebookExercise>();
        foreach (var e in list.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.Object) throw new FormatException("each exercise must be a JSON object");
            var unknown = e.EnumerateObject().Select(p => p.Name).Where(n => !EntryKeys.Contains(n)).ToList();
            string id = e.TryGetProperty("id", out var idEl) && idEl.ValueKind == JsonValueKind.String ? idEl.GetString()! : throw new FormatException("an exercise has no string \"id\"");
            if (unknown.Count > 0) throw new FormatException($"exercise '{id}': unknown key(s) {string.Join(", ", unknown)}; allowed: {string.Join(", ", EntryKeys)}");
            if (!KebabCase.IsMatch(id)) throw new FormatException($"exercise id '{id}' is not kebab-case");
            var parameters = Settings(e, "parameters", id);
            if (parameters.Count == 0) throw new FormatException($"exercise '{id}': \"parameters\" must set at least one parameter");
            var testParameters = Settings(e, "test_parameters", id);
            var expect = new List<ExerciseExpectation>();
            if (e.TryGetProperty("expect", out var ex))
            {
                if (ex.ValueKind != JsonValueKind.Array) throw new FormatException($"exercise '{id}': \"expect\" must be a list");
                foreach (var x in ex.EnumerateArray())
                {
                    string figure = x.TryGetProperty("figure", out var f) && f.ValueKind == JsonValueKind.String ? f.GetString()! : throw new FormatException($"exercise '{id}': an expect entry has no \"figure\"");
                    double? min = x.TryGetProperty("min", out var mn) ? mn.GetDouble() : null;
                    double? max = x.TryGetProperty("max", out var mx) ? mx.GetDouble() : null;
                    if (min == null && max == null) throw new FormatException($"exercise '{id}': expect '{figure}' has neither \"min\" nor \"max\"");
                    var extra = x.EnumerateObject().Select(p => p.Name).Where(n => n is not ("figure" or "min" or "max")).ToList();
                    if (extra.Count > 0) throw new FormatException($"exercise '{id}': expect '{figure}' has unknown key(s) {string.Join(", ", extra)}");
                    expect.Add(new ExerciseExpectation(figure, min, max));
                }
            }
            string? failure = null;
            if (e.TryGetProperty("expect_failure", out var ef))
            {
                failure = ef.ValueKind == JsonValueKind.String && ef.GetString()!.Trim().Length > 0 ? ef.GetString() : throw new FormatException($"exercise '{id}': \"expect_failure\" must be a non-empty string");
            }
            result.Add(new NotebookExercise(id, parameters, testParameters, expect, failure));
        }
        return result;
    }

    static List<KeyValuePair<string, string>> Settings(JsonElement e, string key, string id)
    {
        var result = new List<KeyValuePair<string, string>>();
        if (!e.TryGetProperty(key, out var obj)) return result;
        if (obj.ValueKind != JsonValueKind.Object) throw new FormatException($"exercise '{id}': \"{key}\" must be an object of name: value");
        foreach (var p in obj.EnumerateObject()) result.Add(KeyValuePair.Create(p.Name, ParamText(p.Value)));
        return result;
    }

    /// <summary>A JSON value as --param text: strings as they are, numbers as written, booleans lower-case.</summary>
    internal static string ParamText(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.String => v.GetString()!,
        JsonValueKind.Number => v.GetRawText(),
        JsonValueKind.True => "true",
        JsonValueKind.False => "false",
        _ => throw new FormatException($"a parameter value must be a JSON string, number or boolean, not {v.ValueKind}"),
    };

    /// <summary>The declarations of the notebook's parameters cell (the code cell tagged "parameters").</summary>
    internal static IReadOnlyList<ParameterDeclaration> DeclaredParameters(JsonElement nb)
    {
        var cell = NotebookFiles.CodeCells(nb).FirstOrDefault(c => c.GetProperty("metadata").TryGetProperty("tags", out var t) && t.EnumerateArray().Any(x => x.GetString() == TrainingForensics.Runner.Parameters.ParametersTag));
        return cell.ValueKind == JsonValueKind.Undefined ? Array.Empty<ParameterDeclaration>() : TrainingForensics.Runner.Parameters.Parse(NotebookFiles.Source(cell));
    }

    // ---------------------------------------------------------------- the scans (pure)

    /// <summary>Schema defects of a notebook's exercises against its parameters cell: ids unique, every name declared, every value of the declared type, test_parameters apart from parameters.</summary>
    internal static IEnumerable<string> SchemaProblems(IReadOnlyList<NotebookExercise> exercises, IReadOnlyList<ParameterDeclaration> declared)
    {
        foreach (var dup in exercises.GroupBy(e => e.Id).Where(g => g.Count() > 1))
            yield return $"exercise id '{dup.Key}' is used {dup.Count()} times";
        foreach (var e in exercises)
        {
            foreach (var (name, value) in e.Parameters.Concat(e.TestParameters))
            {
                var d = declared.FirstOrDefault(p => p.Name == name);
                if (d == null) { yield return $"exercise '{e.Id}': '{name}' is not a parameter of the parameters cell"; continue; }
                string? problem = null;
                try { TrainingForensics.Runner.Parameters.ToLiteral(name, d.Type, value); }
                catch (ParameterException ex) { problem = ex.Message; }
                if (problem != null) yield return $"exercise '{e.Id}': {problem}";
            }
            foreach (var name in e.TestParameters.Select(p => p.Key).Intersect(e.Parameters.Select(p => p.Key)))
                yield return $"exercise '{e.Id}': '{name}' is both a parameter of the exercise and a test reduction";
        }
    }

    static readonly Regex Heading = new(@"^(#{1,6})\s+(.*)$");
    static readonly Regex CodeSpan = new(@"`([^`\n]*)`");
    static readonly Regex Setting = new(@"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([^=]*?)\s*;?\s*$");

    /// <summary>
    /// The markdown of the notebook's "Try it yourself" and "Exercises" sections: from such a heading to the next
    /// heading of the same or a higher level (sections may run on over several cells).
    /// </summary>
    internal static string ExerciseSections(IEnumerable<string> markdownCells)
    {
        var kept = new List<string>();
        int? level = null;
        foreach (var cell in markdownCells)
            foreach (var line in cell.Split('\n'))
            {
                var h = Heading.Match(line);
                if (h.Success)
                {
                    int l = h.Groups[1].Length;
                    if (level is { } open && l <= open) level = null;
                    if (Regex.IsMatch(h.Groups[2].Value, @"(?i)\b(try it yourself|exercises)\b")) level = l;
                }
                if (level != null) kept.Add(line);
            }
        return string.Join("\n", kept);
    }

    /// <summary>Every backticked <c>name=value</c> in the text whose name is one of <paramref name="parameterNames"/> (value unquoted).</summary>
    internal static IReadOnlyList<KeyValuePair<string, string>> BacktickedSettings(string markdown, ISet<string> parameterNames) =>
        CodeSpan.Matches(markdown).Select(span => Setting.Match(span.Groups[1].Value))
                .Where(m => m.Success && parameterNames.Contains(m.Groups[1].Value))
               .Select(m => KeyValuePair.Create(m.Groups[1].Value, Unquote(m.Groups[2].Value))).ToList();

    static string Unquote(string v) => v.Length >= 2 && v[0] == '"' && v[^1] == '"' ? v[1..^1] : v;

    /// <summary>Loose equality of two settings' values: numerically (1e-3 == 0.001), booleans ignoring case, otherwise as text.</summary>
    internal static bool SameValue(string a, string b)
    {
        var inv = CultureInfo.InvariantCulture;
        if (double.TryParse(a, NumberStyles.Float, inv, out double x) && double.TryParse(b, NumberStyles.Float, inv, out double y))
            return x == y || Math.Abs(x - y) <= 1e-12 * Math.Max(Math.Abs(x), Math.Abs(y));
        if (bool.TryParse(a, out bool p) && bool.TryParse(b, out bool q)) return p == q;
        return a == b;
    }

    /// <summary>
    /// Both directions between the sections' backticked settings and the exercises: every setting of a parameter is
    /// one some exercise makes (same name, same value), and every setting an exercise makes is written in the sections.
    /// </summary>
    internal static IEnumerable<string> CoverageProblems(string sections, IReadOnlyList<NotebookExercise> exercises, ISet<string> parameterNames)
    {
        var written = BacktickedSettings(sections, parameterNames);
        foreach (var (name, value) in written.Distinct())
            if (!exercises.Any(e => e.Parameters.Any(p => p.Key == name && SameValue(p.Value, value))))
                yield return $"`{name}={value}` is written in a Try-it/Exercises section but no exercise in trainingforensics.exercises sets it";
        foreach (var e in exercises)
            foreach (var (name, value) in e.Parameters)
                if (!written.Any(w => w.Key == name && SameValue(w.Value, value)))
                    yield return $"exercise '{e.Id}' sets {name}={value}, which no Try-it/Exercises section writes as `{name}={value}`";
    }

    // ---------------------------------------------------------------- the scans fail on bad input

    static readonly ParameterDeclaration[] Declared =
    {
        new("offsetMv", ParameterType.Double, "1.0"), new("steps", ParameterType.Int, "300"), new("bug", ParameterType.String, "\"softmax\""),
        new("fullClinic", ParameterType.Bool, "true"),
    };

    static NotebookExercise Ex(string id, params (string, string)[] parameters) =>
        new(id, parameters.Select(p => KeyValuePair.Create(p.Item1, p.Item2)).ToList(), Array.Empty<KeyValuePair<string, string>>(), Array.Empty<ExerciseExpectation>(), null);

    static JsonElement Metadata(string exercisesJson) =>
        JsonDocument.Parse($"{{\"metadata\": {{\"trainingforensics\": {{\"exercises\": {exercisesJson}}}}}}}").RootElement;

    [Fact]
    public void The_metadata_reader_turns_values_into_param_text_and_refuses_schema_breaks()
    {
        var read = Exercises(Metadata("""[{"id": "a-b", "parameters": {"offsetMv": 0, "lr": 1e-3, "bug": "none", "fullClinic": false}, "test_parameters": {"steps": 10}, "expect": [{"figure": "f", "min": 0.9}], "expect_failure": "reaches"}]"""));
        var e = Assert.Single(read);
        Assert.Equal(new[] { "offsetMv=0", "lr=1e-3", "bug=none", "fullClinic=false" }, e.Parameters.Select(p => $"{p.Key}={p.Value}"));
        Assert.Equal(new[] { "nb.ipynb", "--quick", "--param", "offsetMv=0", "--param", "lr=1e-3", "--param", "bug=none", "--param", "fullClinic=false", "--param", "steps=10", "--out", "o" },
                     e.RunnerArguments("nb.ipynb", "o"));
        Assert.Equal(new ExerciseExpectation("f", 0.9, null), Assert.Single(e.Expect));
        Assert.Equal("reaches", e.ExpectFailure);
        Assert.Empty(Exercises(JsonDocument.Parse("""{"metadata": {}}""").RootElement));
        Assert.Throws<FormatException>(() => Exercises(Metadata("""[{"id": "NotKebab", "parameters": {"steps": 1}}]""")));
        Assert.Throws<FormatException>(() => Exercises(Metadata("""[{"id": "a", "parameters": {}}]""")));
        Assert.Throws<FormatException>(() => Exercises(Metadata("""[{"id": "a", "parameters": {"steps": 1}, "expected": []}]""")));
        Assert.Throws<FormatException>(() => Exercises(Metadata("""[{"id": "a", "parameters": {"steps": 1}, "expect": [{"figure": "f"}]}]""")));
        Assert.Throws<FormatException>(() => Exercises(Metadata("""[{"id": "a", "parameters": {"steps": [1]}}]""")));
    }

    [Fact]
    public void The_schema_scan_finds_duplicate_ids_unknown_names_and_values_of_the_wrong_type()
    {
        Assert.Empty(SchemaProblems(new[] { Ex("a", ("offsetMv", "0")), Ex("b", ("bug", "none"), ("steps", "40")) }, Declared));
        Assert.Single(SchemaProblems(new[] { Ex("a", ("offsetMv", "0")), Ex("a", ("steps", "40")) }, Declared));
        Assert.Single(SchemaProblems(new[] { Ex("a", ("offsetMV", "0")) }, Declared));
        Assert.Single(SchemaProblems(new[] { Ex("a", ("steps", "1.5")) }, Declared));
        Assert.Single(SchemaProblems(new[] { Ex("a", ("fullClinic", "yes")) }, Declared));
        var both = new NotebookExercise("a", new[] { KeyValuePair.Create("steps", "40") }, new[] { KeyValuePair.Create("steps", "10") }, Array.Empty<ExerciseExpectation>(), null);
        Assert.Single(SchemaProblems(new[] { both }, Declared));
    }

    [Fact]
    public void The_section_scan_keeps_only_the_try_it_and_exercise_sections()
    {
        var cells = new[]
        {
            "## 6. Verify\nRun with `offsetMv=5` here.",
            "## 7. Try it yourself\n* `offsetMv=0` — zero mean\n### a sub-heading\n* `steps=40`",
            "## Summary\n* `bug=none` is not an exercise\n\n## Exercises\n1. Set `bug = \"dead-bias\"`.",
        };
        var sections = ExerciseSections(cells);
        var names = new HashSet<string>(Declared.Select(d => d.Name));
        Assert.Equal(new[] { "offsetMv=0", "steps=40", "bug=dead-bias" }, BacktickedSettings(sections, names).Select(p => $"{p.Key}={p.Value}"));
        // not settings: code with a declaration, a --param command, a name that is not a parameter
        Assert.Empty(BacktickedSettings("`var doctor = Attach(model);` `--param steps=3` `epochs=3` `steps == 1` `dead` steps=3 `x`", names));
    }

    [Fact]
    public void The_coverage_scan_finds_a_written_setting_without_an_exercise_and_an_exercise_never_written()
    {
        var names = new HashSet<string>(Declared.Select(d => d.Name));
        const string sections = "## Try it yourself\n* `offsetMv=0` and `steps=1e3`\n* `bug=\"none\"`";
        var covered = new[] { Ex("zero-offset", ("offsetMv", "0.0")), Ex("long", ("steps", "1000")), Ex("healthy", ("bug", "none")) };
        Assert.Empty(CoverageProblems(sections, covered, names));
        Assert.Single(CoverageProblems(sections, covered.Take(2).ToList(), names));               // `bug="none"` has no exercise
        Assert.Single(CoverageProblems(sections, covered.Append(Ex("unwritten", ("steps", "7"))).ToList(), names)); // steps=7 is not in the text
        Assert.Equal(2, CoverageProblems(sections, new[] { Ex("zero-offset", ("offsetMv", "0")), Ex("long", ("steps", "100")), Ex("healthy", ("bug", "none")) }, names).Count());
        Assert.True(SameValue("1e-3", "0.001"));
        Assert.True(SameValue("True", "true"));
        Assert.False(SameValue("softmax", "Softmax"));
    }

    // ---------------------------------------------------------------- the committed notebooks

    [Theory]
    [MemberData(nameof(NotebookFiles.Names), MemberType = typeof(NotebookFiles))]
    public void Exercises_follow_the_schema_and_match_the_try_it_and_exercise_sections(string name)
    {
        var nb = NotebookFiles.Load(name);
        var exercises = Exercises(nb);
        var declared = DeclaredParameters(nb);
        var markdown = nb.GetProperty("cells").EnumerateArray().Where(c => c.GetProperty("cell_type").GetString() == "markdown").Select(NotebookFiles.Source);
        var problems = SchemaProblems(exercises, declared)
            .Concat(CoverageProblems(ExerciseSections(markdown), exercises, new HashSet<string>(declared.Select(d => d.Name)))).ToList();
        Assert.True(problems.Count == 0, $"{name}:\n" + string.Join("\n", problems));
    }

    /// <summary>
    /// xunit theory data: one row per (notebook, exercise id) of every notebook that declares exercises. An exercise on
    /// another data set (`dataset=fashion-mnist`) needs that data set, which does not ship in the repository (it is
    /// looked for in shared/data beside it, or TF_DATA): on a machine without it that row is left out.
    /// </summary>
    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var path in NotebookFiles.All())
        {
            string name = Path.GetFileName(path);
            foreach (var e in Exercises(NotebookFiles.Load(name)).Where(DataAvailable)) data.Add(name, e.Id);
        }
        return data;
    }

    static bool DataAvailable(NotebookExercise e)
    {
        foreach (var (key, value) in e.Parameters.Where(p => p.Key == "dataset"))
        {
            try { TrainingForensics.Data.DataPaths.Find(value); }
            catch (TrainingForensics.Data.DataFileException) { return false; }
        }
        return true;
    }

    [Theory]
    [Trait("Category", "Exercises")]
    [MemberData(nameof(Cases))]
    public void Exercise_runs_as_declared(string notebook, string id)
    {
        var exercise = Exercises(NotebookFiles.Load(notebook)).Single(e => e.Id == id);
        using var outDir = new TempDir();
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int exit = RunnerCli.Run(exercise.RunnerArguments(Path.Combine(NotebookFiles.Folder, notebook), outDir.Path), stdout, stderr);

        string stem = Path.GetFileNameWithoutExtension(notebook);
        var errors = Errors(Path.Combine(outDir.Path, stem + ".ipynb"));
        string context = $"{notebook} exercise '{id}' ({string.Join(" ", exercise.Parameters.Concat(exercise.TestParameters).Select(p => $"{p.Key}={p.Value}"))}), exit {exit}:\n{Tail(stderr.ToString(), 20)}\n{string.Join("\n", errors.Select(e => e.Ename + ": " + e.Evalue))}";
        if (exercise.ExpectFailure is { } claim)
        {
            Assert.True(exit == RunnerCli.NotebookFailed, $"expected the claim containing '{claim}' to fail — " + context);
            var error = Assert.Single(errors);
            Assert.True(error.Ename.EndsWith(nameof(TrainingForensics.Results.ClaimFailedException), StringComparison.Ordinal) && error.Evalue.Contains(claim, StringComparison.Ordinal),
                        $"expected a failed claim containing '{claim}' — " + context);
        }
        else Assert.True(exit == RunnerCli.Ok, context);

        if (exercise.Expect.Count == 0) return;
        var figures = TrainingForensics.Results.Figures.ReadJson(Path.Combine(outDir.Path, stem + ".figures.json"));
        foreach (var x in exercise.Expect)
        {
            Assert.True(figures.TryGetValue(x.Figure, out var v), $"{notebook} exercise '{id}': figure '{x.Figure}' was not recorded");
            double value = Convert.ToDouble(v is bool b ? (b ? 1 : 0) : v, CultureInfo.InvariantCulture);
            Assert.True((x.Min == null || value >= x.Min) && (x.Max == null || value <= x.Max),
                        $"{notebook} exercise '{id}': {x.Figure} = {value.ToString("G6", CultureInfo.InvariantCulture)}, predicted [{x.Min?.ToString(CultureInfo.InvariantCulture) ?? "-∞"}, {x.Max?.ToString(CultureInfo.InvariantCulture) ?? "∞"}]");
        }
    }

    static string Tail(string text, int lines) => string.Join("\n", text.Split('\n').TakeLast(lines));

    static List<(string Ename, string Evalue)> Errors(string executed)
    {
        if (!File.Exists(executed)) return new();
        var nb = JsonDocument.Parse(File.ReadAllText(executed)).RootElement;
        return nb.GetProperty("cells").EnumerateArray()
            .SelectMany(c => c.TryGetProperty("outputs", out var o) ? o.EnumerateArray() : Enumerable.Empty<JsonElement>())
            .Where(o => o.GetProperty("output_type").GetString() == "error")
            .Select(o => (o.GetProperty("ename").GetString() ?? "", o.GetProperty("evalue").GetString() ?? "")).ToList();
    }
}
