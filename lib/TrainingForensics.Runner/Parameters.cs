using System.Globalization;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace TrainingForensics.Runner;

/// <summary>A --param that cannot be applied (unknown name, value not of the declared type, no parameters cell).</summary>
public sealed class ParameterException(string message) : Exception(message);

/// <summary>The C# types a parameters cell may declare.</summary>
public enum ParameterType { Int, Long, Double, Float, Decimal, Bool, String }

public sealed record ParameterDeclaration(string Name, ParameterType Type, string DefaultText);

/// <summary>
/// papermill-style parameters: the code cell tagged "parameters" declares defaults (<c>int epochs = 5;</c>,
/// <c>var lr = 0.1;</c>, <c>string device = "cpu";</c>); --param values are injected as a cell right after it that
/// assigns typed C# literals.
/// </summary>
public static class Parameters
{
    public const string ParametersTag = "parameters";
    public const string InjectedTag = "injected-parameters";

    /// <summary>The declarations of a parameters cell, found with Roslyn's parser (declared type, or the literal's for var).</summary>
    public static IReadOnlyList<ParameterDeclaration> Parse(string code)
    {
        var tree = CSharpSyntaxTree.ParseText(code, new CSharpParseOptions(LanguageVersion.Latest, kind: SourceCodeKind.Script));
        var result = new List<ParameterDeclaration>();
        foreach (var decl in tree.GetRoot().DescendantNodes().OfType<VariableDeclarationSyntax>())
        {
            // only top-level declarations (a script's locals or fields), not those inside loops, lambdas or methods
            bool topLevel = decl.Parent is LocalDeclarationStatementSyntax { Parent: GlobalStatementSyntax }
                            || decl.Parent is FieldDeclarationSyntax { Parent: CompilationUnitSyntax };
            if (!topLevel) continue;
            foreach (var v in decl.Variables)
            {
                var type = TypeOf(decl.Type, v.Initializer?.Value);
                if (type is { } t)
                    result.Add(new ParameterDeclaration(v.Identifier.ValueText, t, v.Initializer?.Value.ToString() ?? ""));
            }
        }
        return result;
    }

    static ParameterType? TypeOf(TypeSyntax type, ExpressionSyntax? init)
    {
        if (type is PredefinedTypeSyntax p)
            return p.Keyword.Kind() switch
            {
                SyntaxKind.IntKeyword => ParameterType.Int,
                SyntaxKind.LongKeyword => ParameterType.Long,
                SyntaxKind.DoubleKeyword => ParameterType.Double,
                SyntaxKind.FloatKeyword => ParameterType.Float,
                SyntaxKind.DecimalKeyword => ParameterType.Decimal,
                SyntaxKind.BoolKeyword => ParameterType.Bool,
                SyntaxKind.StringKeyword => ParameterType.String,
                _ => null,
            };
        if (type is NullableTypeSyntax { ElementType: PredefinedTypeSyntax { Keyword.RawKind: (int)SyntaxKind.StringKeyword } })
            return ParameterType.String;
        if (type is IdentifierNameSyntax { IsVar: true } && init != null)
        {
            while (init is PrefixUnaryExpressionSyntax { RawKind: (int)SyntaxKind.UnaryMinusExpression or (int)SyntaxKind.UnaryPlusExpression } u)
                init = u.Operand;
            while (init is ParenthesizedExpressionSyntax par) init = par.Expression;
            if (init is LiteralExpressionSyntax lit)
                return lit.Token.Value switch
                {
                    int => ParameterType.Int,
                    uint or long or ulong => ParameterType.Long,
                    double => ParameterType.Double,
                    float => ParameterType.Float,
                    decimal => ParameterType.Decimal,
                    bool => ParameterType.Bool,
                    string => ParameterType.String,
                    _ => null,
                };
        }
        return null;
    }

    public static string TypeName(ParameterType t) => t switch
    {
        ParameterType.Int => "int",
        ParameterType.Long => "long",
        ParameterType.Double => "double",
        ParameterType.Float => "float",
        ParameterType.Decimal => "decimal",
        ParameterType.Bool => "bool",
        _ => "string",
    };

    /// <summary>The value as a C# literal of the declared type; throws naming parameter, value and type when it is not one.</summary>
    public static string ToLiteral(string name, ParameterType type, string value)
    {
        var inv = CultureInfo.InvariantCulture;
        string? literal = type switch
        {
            ParameterType.String => SymbolDisplay.FormatLiteral(value, quote: true),
            ParameterType.Bool => bool.TryParse(value.Trim(), out bool b) ? (b ? "true" : "false") : null,
            ParameterType.Int => int.TryParse(value.Trim(), NumberStyles.AllowLeadingSign, inv, out int i) ? i.ToString(inv) : null,
            ParameterType.Long => long.TryParse(value.Trim(), NumberStyles.AllowLeadingSign, inv, out long l) ? l.ToString(inv) + "L" : null,
            ParameterType.Double => double.TryParse(value.Trim(), NumberStyles.Float, inv, out double d) ? DoubleLiteral(name, value, d) : null,
            ParameterType.Float => float.TryParse(value.Trim(), NumberStyles.Float, inv, out float f) ? FloatLiteral(name, value, f) : null,
            ParameterType.Decimal => decimal.TryParse(value.Trim(), NumberStyles.Float, inv, out decimal m) ? m.ToString(inv) + "m" : null,
            _ => null,
        };
        return literal ?? throw new ParameterException(
            $"parameter '{name}': the value '{value}' is not a valid {TypeName(type)} (declared {TypeName(type)} in the parameters cell)");
    }

    // double/float parsing accepts "NaN", "Infinity", "∞" and turns an overflow such as 1e400 into ±∞ without a word:
    // none of these is a usable setting (a learning rate of +∞ runs, then trains nothing), so they are refused by name.
    static string DoubleLiteral(string name, string value, double d) =>
        double.IsFinite(d) ? d.ToString("R", CultureInfo.InvariantCulture) + "d" : throw NotFinite(name, value, "double", d, double.MaxValue.ToString("R", CultureInfo.InvariantCulture));

    static string FloatLiteral(string name, string value, float f) =>
        float.IsFinite(f) ? f.ToString("R", CultureInfo.InvariantCulture) + "f" : throw NotFinite(name, value, "float", f, float.MaxValue.ToString("R", CultureInfo.InvariantCulture));

    static ParameterException NotFinite(string name, string value, string type, double parsed, string max) => new(
        $"parameter '{name}': the value '{value}' is not a finite {type} (it reads as {Describe(parsed)}); give a number between -{max} and {max}");

    static string Describe(double d) => double.IsNaN(d) ? "NaN" : d > 0 ? "+∞" : "-∞";

    /// <summary>
    /// The source of the injected cell for the --param values this notebook declares. Values it does not declare are
    /// an error only when <paramref name="strict"/> (a single notebook); with several notebooks each takes its own.
    /// </summary>
    public static string? InjectedSource(IReadOnlyList<ParameterDeclaration>? declared, IReadOnlyList<KeyValuePair<string, string>> values,
                                         bool strict, string notebookName)
    {
        if (values.Count == 0) return null;
        if (declared == null)
        {
            if (strict)
                throw new ParameterException($"--param was given, but notebook '{notebookName}' has no parameters cell (a code cell tagged \"parameters\")");
            return null;
        }
        var lines = new List<string> { "// Parameters injected by tf-run" };
        foreach (var (name, value) in values)
        {
            var d = declared.LastOrDefault(p => p.Name == name);
            if (d == null)
            {
                if (strict)
                    throw new ParameterException($"unknown parameter '{name}' for notebook '{notebookName}'; its parameters are: " +
                                                 (declared.Count == 0 ? "(none)" : string.Join(", ", declared.Select(p => $"{p.Name} ({TypeName(p.Type)})"))));
                continue;
            }
            lines.Add($"{name} = {ToLiteral(name, d.Type, value)};");
        }
        return lines.Count == 1 ? null : string.Join("\n", lines);
    }
}
