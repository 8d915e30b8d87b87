using System.Reflection;
using System.Text.RegularExpressions;
using TrainingForensics.Tests.Notebooks;

namespace TrainingForensics.Tests;

/// <summary>
/// Every public type of the library is used by a notebook or a test: a public type nothing reads is either dead
/// code or an untested promise. "Used": its name appears as a whole word in a notebook's code or a test source, or
/// it appears in the public signature of a used type (what <c>Mnist.Load()</c> returns is used through <c>var</c>).
/// </summary>
public class HygienePublicTypesTests
{
    static IEnumerable<string> Sources()
    {
        foreach (var nb in NotebookFiles.All())
            foreach (var cell in NotebookFiles.CodeCells(NotebookFiles.Load(Path.GetFileName(nb))))
                yield return NotebookFiles.Source(cell);
        string tests = Path.Combine(TestPaths.RepositoryRoot, "tests");
        foreach (var f in Directory.EnumerateFiles(tests, "*.cs", SearchOption.AllDirectories))
        {
            string rel = Path.GetRelativePath(tests, f).Replace('\\', '/');
            if (rel.Contains("/bin/") || rel.Contains("/obj/") || f == ThisFile()) continue;
            yield return File.ReadAllText(f);
        }
    }

    static string ThisFile([System.Runtime.CompilerServices.CallerFilePath] string path = "") => path;

    /// <summary>The C# name of a public type: without the generic arity suffix; nested types by their own name.</summary>
    internal static string CSharpName(Type t) => Regex.Replace(t.Name, "`\\d+$", "");

    internal static IReadOnlyList<Type> PublicTypes() =>
        typeof(TrainingForensics.Results.Figures).Assembly.GetExportedTypes()
            .Where(t => !t.IsDefined(typeof(System.Runtime.CompilerServices.CompilerGeneratedAttribute), false))
            .OrderBy(t => t.FullName, StringComparer.Ordinal).ToList();

    [Fact]
    public void Every_public_library_type_is_used_by_a_notebook_or_a_test()
    {
        var types = PublicTypes();
        Assert.True(types.Count > 20, $"only {types.Count} public types found: wrong assembly?");
        string all = string.Join("\n", Sources());
        var used = Reached(types, types.Where(t => Regex.IsMatch(all, $@"\b{Regex.Escape(CSharpName(t))}\b")));
        var unused = types.Where(t => !used.Contains(t)).ToList();
        Assert.True(unused.Count == 0,
            $"{unused.Count} public library type(s) used by no notebook and no test (use or test them, or make them internal):\n  " +
            string.Join("\n  ", unused.Select(t => t.FullName)));
    }

    /// <summary>The named types plus, to a fixed point, the library types in the public signatures of used types.</summary>
    internal static HashSet<Type> Reached(IReadOnlyList<Type> library, IEnumerable<Type> named)
    {
        var set = new HashSet<Type>(library);
        var used = new HashSet<Type>(named);
        var queue = new Queue<Type>(used);
        const BindingFlags Public = BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        while (queue.Count > 0)
        {
            var t = queue.Dequeue();
            var seen = new List<Type>();
            foreach (var m in t.GetMembers(Public))
                switch (m)
                {
                    case MethodInfo mi: seen.Add(mi.ReturnType); seen.AddRange(mi.GetParameters().Select(p => p.ParameterType)); break;
                    case ConstructorInfo ci: seen.AddRange(ci.GetParameters().Select(p => p.ParameterType)); break;
                    case PropertyInfo pi: seen.Add(pi.PropertyType); break;
                    case FieldInfo fi: seen.Add(fi.FieldType); break;
                    case EventInfo ei when ei.EventHandlerType != null: seen.Add(ei.EventHandlerType); break;
                }
            if (t.BaseType != null) seen.Add(t.BaseType);
            foreach (var s in seen.SelectMany(Expand))
                if (set.Contains(s) && used.Add(s)) queue.Enqueue(s);
        }
        return used;
    }

    static IEnumerable<Type> Expand(Type t)
    {
        if (t.HasElementType) { foreach (var e in Expand(t.GetElementType()!)) yield return e; yield break; }
        yield return t.IsGenericType ? t.GetGenericTypeDefinition() : t;
        if (t.IsGenericType)
            foreach (var a in t.GetGenericArguments().SelectMany(Expand)) yield return a;
    }

    [Fact]
    public void A_type_is_used_through_the_signature_of_a_used_type()
    {
        var lib = PublicTypes();
        var reached = Reached(lib, [typeof(TrainingForensics.Data.Mnist), typeof(TrainingForensics.Training.TrainingLoop)]);
        Assert.Contains(typeof(TrainingForensics.Data.MnistData), reached);            // Mnist.Load's return type
        Assert.Contains(typeof(TrainingForensics.Training.StepContext), reached);      // the AfterBackward event's Action<StepContext>
        Assert.DoesNotContain(typeof(TrainingForensics.Charts.Panel), reached);        // nothing on these two types mentions it
    }

    [Fact]
    public void The_search_sees_notebook_code_and_tests()
    {
        string all = string.Join("\n", Sources());
        Assert.Contains("TorchEnvironment.Setup", all); // from the notebooks and tests
        Assert.DoesNotContain("Every_public_library_type_is_used_by_a_notebook_or_a_test", all); // this file is left out
        Assert.DoesNotMatch(@"\bNoSuchTypeNameAnywhere\b", all);
        Assert.Equal("Panel", CSharpName(typeof(TrainingForensics.Charts.Panel)));
    }
}
