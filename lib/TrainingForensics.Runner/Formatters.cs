using System.Collections;
using System.Globalization;
using System.Net;
using System.Reflection;
using System.Text;
using Microsoft.Data.Analysis;
using Plotly.NET;
using TorchSharp;
using TrainingForensics.Charts;

namespace TrainingForensics.Runner;

/// <summary>One output's representations, keyed by MIME type ("text/plain", "text/html"), in preference order.</summary>
public sealed class MimeBundle : Dictionary<string, string>
{
    public const string Plain = "text/plain";
    public const string Html = "text/html";

    public static MimeBundle Text(string text) => new() { [Plain] = text };

    public static MimeBundle HtmlWithText(string html, string text) => new() { [Html] = html, [Plain] = text };
}

/// <summary>
/// Turns a value a cell displays (or ends with) into a MIME bundle. Formatters are registered per type; the most
/// derived registered type (class chain first, then interfaces in registration order) wins. Values without a
/// registered formatter: an object with a public <c>string ToHtml()</c> becomes text/html, an enumerable of simple
/// values becomes a one-line list, anything else its <c>ToString()</c>.
/// </summary>
public sealed class Formatters
{
    readonly Dictionary<Type, Func<object, MimeBundle>> _byType = new();
    readonly List<Type> _order = new();

    /// <summary>The formatters the runner uses: Plotly.NET charts, DataFrames, TorchSharp tensors, strings.</summary>
    public static Formatters Default { get; } = CreateDefault();

    /// <summary>Marks the div of a chart the runner formatted; the notebook/page embeds plotly.js before the first one.</summary>
    public const string ChartMarker = ChartHtml.ChartMarker;

    public const int MaxTableRows = 50;
    public const int MaxListItems = 100;

    public static Formatters CreateDefault()
    {
        var f = new Formatters();
        f.Register<string>(s => MimeBundle.Text(s));
        f.Register<GenericChart>(FormatChart);
        f.Register<DataFrame>(FormatDataFrame);
        f.Register<torch.Tensor>(FormatTensor);
        return f;
    }

    public void Register<T>(Func<T, MimeBundle> format)
    {
        if (!_byType.ContainsKey(typeof(T))) _order.Add(typeof(T));
        _byType[typeof(T)] = o => format((T)o);
    }

    Func<object, MimeBundle>? Find(Type type)
    {
        for (var t = type; t != null; t = t.BaseType)
            if (_byType.TryGetValue(t, out var f)) return f;
        foreach (var t in _order)
            if (t.IsInterface && t.IsAssignableFrom(type)) return _byType[t];
        return null;
    }

    public MimeBundle Format(object? value)
    {
        if (value is null) return MimeBundle.Text("<null>");
        var formatter = Find(value.GetType());
        if (formatter != null) return formatter(value);

        var toHtml = value.GetType().GetMethod("ToHtml", BindingFlags.Public | BindingFlags.Instance, Type.EmptyTypes);
        if (toHtml != null && toHtml.ReturnType == typeof(string))
        {
            string html = (string?)toHtml.Invoke(value, null) ?? "";
            return MimeBundle.HtmlWithText(html, SafeToString(value));
        }
        if (value is IEnumerable seq and not IDictionary && IsSimpleSequence(value.GetType()))
            return MimeBundle.Text(FormatSequence(seq));
        if (value is IDictionary dict)
            return MimeBundle.Text(FormatDictionary(dict));
        return MimeBundle.Text(SafeToString(value));
    }

    static string SafeToString(object value)
    {
        try { return Convert.ToString(value, CultureInfo.InvariantCulture) ?? ""; }
        catch (Exception e) { return $"<{value.GetType().Name}: ToString() threw {e.GetType().Name}: {e.Message}>"; }
    }

    public static bool IsSimple(Type t) =>
        t.IsPrimitive || t.IsEnum || t == typeof(string) || t == typeof(decimal) || t == typeof(DateTime) ||
        t == typeof(DateTimeOffset) || t == typeof(TimeSpan) || t == typeof(Guid) || t == typeof(Half) ||
        (Nullable.GetUnderlyingType(t) is { } u && IsSimple(u));

    static bool IsSimpleSequence(Type type)
    {
        if (type.IsArray) return IsSimple(type.GetElementType()!) || type.GetElementType() == typeof(object);
        var ienum = type.GetInterfaces().Concat([type])
            .FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IEnumerable<>));
        return ienum == null || IsSimple(ienum.GetGenericArguments()[0]) || ienum.GetGenericArguments()[0] == typeof(object);
    }

    public static string FormatScalar(object? v) => v switch
    {
        null => "null",
        string s => s,
        double d => FormatNumber(d),
        float f => FormatNumber(f),
        Half h => FormatNumber((double)h),
        bool b => b ? "true" : "false",
        IFormattable x => x.ToString(null, CultureInfo.InvariantCulture),
        _ => v.ToString() ?? "",
    };

    /// <summary>A compact invariant rendering: up to 6 significant digits, no trailing noise (0.1f → 0.1).</summary>
    public static string FormatNumber(double d)
    {
        if (double.IsNaN(d)) return "NaN";
        if (double.IsPositiveInfinity(d)) return "∞";
        if (double.IsNegativeInfinity(d)) return "-∞";
        return d.ToString("G6", CultureInfo.InvariantCulture);
    }

    static string FormatSequence(IEnumerable seq)
    {
        var sb = new StringBuilder("[");
        int n = 0, more = 0;
        foreach (var item in seq)
        {
            if (n >= MaxListItems) { more++; continue; }
            if (n++ > 0) sb.Append(", ");
            sb.Append(FormatScalar(item));
        }
        if (more > 0) sb.Append($", … {more} more");
        return sb.Append(']').ToString();
    }

    static string FormatDictionary(IDictionary dict)
    {
        var sb = new StringBuilder("{");
        int n = 0;
        foreach (DictionaryEntry e in dict)
        {
            if (n++ > 0) sb.Append(", ");
            if (n > MaxListItems) { sb.Append($"… {dict.Count - MaxListItems} more"); break; }
            sb.Append(FormatScalar(e.Key)).Append(": ").Append(FormatScalar(e.Value));
        }
        return sb.Append('}').ToString();
    }

    // ---- Plotly.NET -------------------------------------------------------------------------------------------

    /// <summary>The chart as offline HTML (the library's <see cref="ChartHtml"/>, shared with the notebook kernel).</summary>
    public static MimeBundle FormatChart(GenericChart chart) => MimeBundle.HtmlWithText(ChartHtml.Format(chart), "Plotly.NET chart");

    // ---- DataFrame --------------------------------------------------------------------------------------------

    public static MimeBundle FormatDataFrame(DataFrame df)
    {
        long rows = df.Rows.Count;
        var cols = df.Columns.ToList();
        long shown = Math.Min(rows, MaxTableRows);
        var html = new StringBuilder();
        html.Append("<table class=\"dataframe\">\n<thead><tr><th></th>");
        foreach (var c in cols) html.Append("<th>").Append(WebUtility.HtmlEncode(c.Name)).Append("</th>");
        html.Append("</tr></thead>\n<tbody>\n");
        for (long r = 0; r < shown; r++)
        {
            html.Append("<tr><td>").Append(r.ToString(CultureInfo.InvariantCulture)).Append("</td>");
            foreach (var c in cols) html.Append("<td>").Append(WebUtility.HtmlEncode(Cell(c[r]))).Append("</td>");
            html.Append("</tr>\n");
        }
        html.Append("</tbody>\n</table>\n");
        if (rows > shown)
            html.Append("<p class=\"dataframe-more\">… ").Append((rows - shown).ToString(CultureInfo.InvariantCulture)).Append(" more rows</p>\n");
        html.Append("<p class=\"dataframe-shape\">").Append(rows.ToString(CultureInfo.InvariantCulture)).Append(" rows × ")
            .Append(cols.Count.ToString(CultureInfo.InvariantCulture)).Append(" columns</p>");

        // plain text fallback: aligned columns
        var table = new List<string[]> { cols.Select(c => c.Name).Prepend("").ToArray() };
        for (long r = 0; r < shown; r++)
            table.Add(cols.Select(c => Cell(c[r])).Prepend(r.ToString(CultureInfo.InvariantCulture)).ToArray());
        var widths = Enumerable.Range(0, cols.Count + 1).Select(i => table.Max(row => row[i].Length)).ToArray();
        var text = new StringBuilder();
        foreach (var row in table)
            text.AppendLine(string.Join("  ", row.Select((s, i) => s.PadLeft(widths[i]))).TrimEnd());
        if (rows > shown) text.AppendLine($"… {rows - shown} more rows");
        text.Append($"{rows} rows × {cols.Count} columns");
        return MimeBundle.HtmlWithText(html.ToString(), text.ToString());
    }

    static string Cell(object? v) => v is null ? "" : FormatScalar(v);

    // ---- TorchSharp -------------------------------------------------------------------------------------------

    /// <summary>A tensor's shape, dtype, device and values (the library's text, as the kernel shows it).</summary>
    public static MimeBundle FormatTensor(torch.Tensor t) => MimeBundle.Text(TrainingForensics.Setup.NotebookKernel.TensorText(t));

}
