using System.Net;
using System.Text;
using System.Text.RegularExpressions;

namespace TrainingForensics.Runner;

/// <summary>
/// A small Markdown → HTML converter for notebook text cells: ATX headings, paragraphs, fenced and indented code,
/// bullet and numbered lists (one level), block quotes, horizontal rules, pipe tables, and inline code, bold,
/// italic, links and images. Everything else is escaped text (raw HTML is shown, not interpreted).
/// </summary>
public static class Markdown
{
    static readonly Regex Heading = new(@"^(#{1,6})\s+(.*?)\s*#*\s*$");
    static readonly Regex Fence = new(@"^\s*(```+|~~~+)\s*([\w#+.-]*)");
    static readonly Regex Bullet = new(@"^\s{0,3}[-*+]\s+(.*)$");
    static readonly Regex Numbered = new(@"^\s{0,3}\d+[.)]\s+(.*)$");
    static readonly Regex Rule = new(@"^\s{0,3}([-*_])(\s*\1){2,}\s*$");
    static readonly Regex TableSep = new(@"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$");

    public static string ToHtml(string markdown)
    {
        var lines = markdown.Replace("\r\n", "\n").Split('\n');
        var html = new StringBuilder();
        var para = new List<string>();
        void FlushPara()
        {
            if (para.Count == 0) return;
            html.Append("<p>").Append(Inline(string.Join("\n", para))).Append("</p>\n");
            para.Clear();
        }

        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i];
            if (string.IsNullOrWhiteSpace(line)) { FlushPara(); continue; }

            var fence = Fence.Match(line);
            if (fence.Success)
            {
                FlushPara();
                string marker = fence.Groups[1].Value;
                string lang = fence.Groups[2].Value;
                var code = new List<string>();
                for (i++; i < lines.Length && !lines[i].TrimStart().StartsWith(marker, StringComparison.Ordinal); i++) code.Add(lines[i]);
                html.Append("<pre><code").Append(lang.Length > 0 ? $" class=\"language-{WebUtility.HtmlEncode(lang)}\"" : "").Append('>')
                    .Append(WebUtility.HtmlEncode(string.Join("\n", code))).Append("</code></pre>\n");
                continue;
            }
            if (para.Count == 0 && (line.StartsWith("    ", StringComparison.Ordinal) || line.StartsWith('\t')))
            {
                var code = new List<string>();
                for (; i < lines.Length && (lines[i].StartsWith("    ", StringComparison.Ordinal) || lines[i].StartsWith('\t') || string.IsNullOrWhiteSpace(lines[i])); i++)
                    code.Add(lines[i].StartsWith('\t') ? lines[i][1..] : lines[i].Length >= 4 ? lines[i][4..] : "");
                i--;
                while (code.Count > 0 && string.IsNullOrWhiteSpace(code[^1])) code.RemoveAt(code.Count - 1);
                html.Append("<pre><code>").Append(WebUtility.HtmlEncode(string.Join("\n", code))).Append("</code></pre>\n");
                continue;
            }
            var h = Heading.Match(line);
            if (h.Success)
            {
                FlushPara();
                int level = h.Groups[1].Value.Length;
                html.Append($"<h{level}>").Append(Inline(h.Groups[2].Value)).Append($"</h{level}>\n");
                continue;
            }
            if (Rule.IsMatch(line)) { FlushPara(); html.Append("<hr>\n"); continue; }
            if (line.TrimStart().StartsWith('>'))
            {
                FlushPara();
                var quote = new List<string>();
                for (; i < lines.Length && lines[i].TrimStart().StartsWith('>'); i++)
                {
                    string q = lines[i].TrimStart()[1..];
                    quote.Add(q.StartsWith(' ') ? q[1..] : q);
                }
                i--;
                html.Append("<blockquote>\n").Append(ToHtml(string.Join("\n", quote))).Append("</blockquote>\n");
                continue;
            }
            if (Bullet.IsMatch(line) || Numbered.IsMatch(line))
            {
                FlushPara();
                bool ordered = !Bullet.IsMatch(line);
                var item = ordered ? Numbered : Bullet;
                html.Append(ordered ? "<ol>\n" : "<ul>\n");
                var current = new List<string>();
                void FlushItem()
                {
                    if (current.Count > 0) html.Append("<li>").Append(Inline(string.Join("\n", current))).Append("</li>\n");
                    current.Clear();
                }
                for (; i < lines.Length; i++)
                {
                    var m = item.Match(lines[i]);
                    if (m.Success) { FlushItem(); current.Add(m.Groups[1].Value); }
                    else if (!string.IsNullOrWhiteSpace(lines[i]) && (lines[i].StartsWith(' ') || lines[i].StartsWith('\t')) && current.Count > 0)
                        current.Add(lines[i].Trim());
                    else break;
                }
                FlushItem();
                i--;
                html.Append(ordered ? "</ol>\n" : "</ul>\n");
                continue;
            }
            if (line.Contains('|') && i + 1 < lines.Length && TableSep.IsMatch(lines[i + 1]) && lines[i + 1].Contains('-'))
            {
                FlushPara();
                var header = Cells(line);
                var aligns = Cells(lines[i + 1]).Select(c => c.StartsWith(':') && c.EndsWith(':') ? "center" : c.EndsWith(':') ? "right" : c.StartsWith(':') ? "left" : null).ToList();
                string Align(int k) => k < aligns.Count && aligns[k] != null ? $" style=\"text-align:{aligns[k]}\"" : "";
                html.Append("<table>\n<thead><tr>");
                for (int k = 0; k < header.Count; k++) html.Append($"<th{Align(k)}>").Append(Inline(header[k])).Append("</th>");
                html.Append("</tr></thead>\n<tbody>\n");
                for (i += 2; i < lines.Length && lines[i].Contains('|') && !string.IsNullOrWhiteSpace(lines[i]); i++)
                {
                    var row = Cells(lines[i]);
                    html.Append("<tr>");
                    for (int k = 0; k < header.Count; k++) html.Append($"<td{Align(k)}>").Append(k < row.Count ? Inline(row[k]) : "").Append("</td>");
                    html.Append("</tr>\n");
                }
                i--;
                html.Append("</tbody>\n</table>\n");
                continue;
            }
            para.Add(line.Trim());
        }
        FlushPara();
        return html.ToString();
    }

    static List<string> Cells(string row)
    {
        string r = row.Trim();
        if (r.StartsWith('|')) r = r[1..];
        if (r.EndsWith('|') && !r.EndsWith("\\|", StringComparison.Ordinal)) r = r[..^1];
        return Regex.Split(r, @"(?<!\\)\|").Select(c => c.Trim().Replace("\\|", "|")).ToList();
    }

    static readonly Regex CodeSpan = new(@"(`+)(.+?)\1", RegexOptions.Singleline);
    static readonly Regex Image = new(@"!\[([^\]]*)\]\(([^)\s]+)(?:\s+&quot;[^)]*&quot;)?\)");
    static readonly Regex Link = new(@"\[([^\]]+)\]\(([^)\s]+)(?:\s+&quot;[^)]*&quot;)?\)");
    static readonly Regex AutoLink = new(@"&lt;(https?://[^\s&]+)&gt;");
    static readonly Regex Bold = new(@"(\*\*|__)(?=\S)(.+?)(?<=\S)\1", RegexOptions.Singleline);
    static readonly Regex Italic = new(@"(?<![\w*])(\*|_)(?=\S)(.+?)(?<=\S)\1(?![\w*])", RegexOptions.Singleline);
    static readonly Regex Strike = new(@"~~(?=\S)(.+?)(?<=\S)~~", RegexOptions.Singleline);

    /// <summary>Inline Markdown of one block: code spans first (their content stays literal), then links, emphasis.</summary>
    public static string Inline(string text)
    {
        var codes = new List<string>();
        string s = CodeSpan.Replace(text, m =>
        {
            codes.Add("<code>" + WebUtility.HtmlEncode(m.Groups[2].Value.Trim()) + "</code>");
            return $"\u0001{codes.Count - 1}\u0002";
        });
        s = WebUtility.HtmlEncode(s);
        s = Image.Replace(s, m => $"<img src=\"{SafeUrl(m.Groups[2].Value)}\" alt=\"{m.Groups[1].Value}\">");
        s = Link.Replace(s, m => $"<a href=\"{SafeUrl(m.Groups[2].Value)}\">{m.Groups[1].Value}</a>");
        s = AutoLink.Replace(s, m => $"<a href=\"{m.Groups[1].Value}\">{m.Groups[1].Value}</a>");
        s = Bold.Replace(s, "<strong>$2</strong>");
        s = Italic.Replace(s, "<em>$2</em>");
        s = Strike.Replace(s, "<del>$1</del>");
        s = s.Replace("  \n", "<br>\n");
        return Regex.Replace(s, "\u0001(\\d+)\u0002", m => codes[int.Parse(m.Groups[1].Value)]);
    }

    static string SafeUrl(string url) =>
        url.StartsWith("javascript:", StringComparison.OrdinalIgnoreCase) ? "#" : url;
}
