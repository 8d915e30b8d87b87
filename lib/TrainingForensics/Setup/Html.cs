namespace TrainingForensics.Setup;

internal static class Html
{
    public static string Escape(string s) => System.Net.WebUtility.HtmlEncode(s);
}
