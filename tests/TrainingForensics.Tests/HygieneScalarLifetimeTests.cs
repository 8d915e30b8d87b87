using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Operations;
using Microsoft.CodeAnalysis.Text;

namespace TrainingForensics.Tests;

/// <summary>
/// TorchSharp 0.107 frees a <c>Scalar</c> only in its finaliser, and reads its handle without keeping the object
/// alive: a Scalar made on the fly (<c>t * 2.0</c>, <c>t.gt(0)</c>, the hidden alpha of <c>a + b</c>) can be collected
/// while libtorch is still inside the call, and the finaliser frees the memory libtorch then reads ("Expected false to
/// be true … toFloat", seen in CI in 03's broken regime while other runs trained beside it). The library therefore
/// passes only Scalars it keeps alive (<see cref="TrainingForensics.Native.HeldScalars"/>). This test compiles the
/// library's sources and lists every place that makes one on the fly.
/// </summary>
public class HygieneScalarLifetimeTests
{
    // what <ImplicitUsings> adds to every project (Directory.Build.props)
    const string GlobalUsings = "global using System; global using System.Collections.Generic; global using System.IO; global using System.Linq; " +
        "global using System.Net.Http; global using System.Threading; global using System.Threading.Tasks;";

    internal static IReadOnlyList<string> OnTheFlyScalars()
    {
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(f => !Path.GetFileName(f).StartsWith("TrainingForensics", StringComparison.Ordinal))
            .Select(f => (MetadataReference)MetadataReference.CreateFromFile(f)).ToList();
        var found = new List<string>();
        // the library, then the clinic against it: each as its own compilation, as the build makes them
        foreach (var (project, kind, symbols) in new[] {
            ("lib/TrainingForensics", OutputKind.DynamicallyLinkedLibrary, new[] { "TRAININGFORENSICS_LIBRARY" }),
            ("lib/TrainingForensics.Clinic", OutputKind.ConsoleApplication, Array.Empty<string>()) })
        {
            var parse = new CSharpParseOptions(LanguageVersion.Preview, preprocessorSymbols: symbols);
            var trees = TestPaths.Sources(Path.Combine(TestPaths.RepositoryRoot, project))
                .Select(s => CSharpSyntaxTree.ParseText(s.Text, parse, path: project + "/" + s.Relative)).ToList();
            var compilation = CSharpCompilation.Create(Path.GetFileName(project),
                trees.Append(CSharpSyntaxTree.ParseText(GlobalUsings, parse)), references,
                new CSharpCompilationOptions(kind, nullableContextOptions: NullableContextOptions.Enable, allowUnsafe: true));
            var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).Take(5).ToList();
            Assert.True(errors.Count == 0, $"{project} does not compile for the scan: " + string.Join("; ", errors));
            references.Add(compilation.ToMetadataReference());
            foreach (var tree in trees)
            {
                var model = compilation.GetSemanticModel(tree);
                // implicit conversions have no syntax of their own: walk each root operation's tree
                var seen = new HashSet<(TextSpan, string)>();
                foreach (var node in tree.GetRoot().DescendantNodes())
                {
                    if (model.GetOperation(node) is not { Parent: null } root) continue;
                    foreach (var op in root.DescendantsAndSelf())
                    {
                        if (Reason(op) is not { } why || !seen.Add((op.Syntax.Span, why))) continue;
                        var line = tree.GetLineSpan(op.Syntax.Span).StartLinePosition.Line + 1;
                        found.Add($"{tree.FilePath}:{line}: {why}: {op.Syntax}");
                    }
                }
            }
        }
        return found;
    }

    static bool IsTorch(ITypeSymbol? t) => t?.ContainingNamespace?.ToDisplayString().StartsWith("TorchSharp", StringComparison.Ordinal) == true;
    static bool IsScalar(ITypeSymbol? t) => t?.Name == "Scalar" && IsTorch(t);
    static bool IsTensor(ITypeSymbol? t) => t?.Name == "Tensor" && IsTorch(t);
    static bool InheritsOptimizer(ITypeSymbol? t)
    {
        for (var b = t; b is not null; b = b.BaseType)
            if (b.Name == "Optimizer" && IsTorch(b)) return true;
        return false;
    }

    static string? Reason(IOperation op)
    {
        switch (op)
        {
            // 2.0 → Scalar in our own code
            case IConversionOperation c when c.OperatorMethod is { } m && IsScalar(m.ContainingType) && !IsScalar(c.Operand.Type):
                return "a number converted to a Scalar on the fly";
            // TorchSharp's operators: a number on either side becomes a Scalar inside the operator; + hides an alpha of 1;
            // Scalar - Tensor and Scalar / Tensor go through add/mul with the caller's Scalar as a temporary
            case IBinaryOperation b when b.OperatorMethod is { } m && IsTensor(m.ContainingType):
                var p = m.Parameters;
                bool bothTensors = IsTensor(p[0].Type) && IsTensor(p[1].Type);
                if (m.Name == "op_Addition") return "Tensor + … (TorchSharp adds with an alpha Scalar made on the fly)";
                if (!bothTensors && m.Name is "op_Subtraction" or "op_Multiply" or "op_Division" or "op_Modulus")
                    return $"Tensor {b.OperatorKind} a number (TorchSharp makes the Scalar inside the operator)";
                return null;
            case ICompoundAssignmentOperation ca when ca.OperatorMethod is { } m && IsTensor(m.ContainingType):
                return "compound assignment on a Tensor";
            // TorchSharp methods that call an overload with a literal Scalar
            case IInvocationOperation i when IsTensor(i.TargetMethod.ContainingType):
                var t = i.TargetMethod;
                if (t.Name is "add" or "add_" && t.Parameters.Length == 1) return $"Tensor.{t.Name}(x) (alpha 1 made on the fly)";
                if (t.Name == "square" && t.Parameters.Length == 0) return "Tensor.square() (pow(2) with a Scalar made on the fly)";
                if (t.Name is "addcdiv" or "addcdiv_" && t.Parameters.Length == 2) return $"Tensor.{t.Name}(a, b) (value 1 made on the fly)";
                return null;
            // TorchSharp's optimisers make their hyper-parameters' Scalars on the fly every step
            case IInvocationOperation f when f.TargetMethod.ContainingType?.Name == "optim" && IsTorch(f.TargetMethod.ContainingType)
                                             && InheritsOptimizer(f.TargetMethod.ReturnType):
                return $"optim.{f.TargetMethod.Name}(…) (use Optimizers.Create: its optimisers hold their Scalars)";
            case IObjectCreationOperation n when InheritsOptimizer(n.Type) && IsTorch(n.Type):
                return $"new {n.Type!.Name}(…) (use Optimizers.Create: its optimisers hold their Scalars)";
            case IInvocationOperation f when f.TargetMethod.Name == "arange" && IsTorch(f.TargetMethod.ContainingType)
                                             && f.TargetMethod.Parameters.Count(q => IsScalar(q.Type)) < 3:
                return "arange without start and step (TorchSharp makes 0 and 1 on the fly)";
            default:
                return null;
        }
    }

    [Fact]
    public void The_library_makes_no_scalar_on_the_fly()
    {
        var found = OnTheFlyScalars();
        Assert.True(found.Count == 0, $"{found.Count} on-the-fly Scalar(s) (use TrainingForensics.Native.HeldScalars or a Scalar held by `using`):\n" + string.Join("\n", found));
    }
}
