using System.Text.RegularExpressions;

namespace TrainingForensics.Tests;

/// <summary>
/// The library's rooms and the one rule the README states about them: a room uses only the rooms before it in
/// <see cref="Rooms"/>, so the case studies (last) build on generic rooms that never reach back up. Namespaces follow
/// folders, so a reference to another room always spells its name (a using or a qualified name): this scans for it.
/// </summary>
public class HygieneLayoutTests
{
    /// <summary>The rooms, lowest first (the README's layout section lists them in this order).</summary>
    internal static readonly string[] Rooms =
        { "Native", "Results", "Data", "Models", "Metrics", "Training", "Probes", "Charts", "Diagnostics", "Setup", "CaseStudies" };

    static string Library => Path.Combine(TestPaths.RepositoryRoot, "lib", "TrainingForensics");

    static IEnumerable<(string Room, string Relative, string Text)> Sources() =>
        TestPaths.Sources(Library).Select(s => (s.Relative.Split('/')[0], s.Relative, s.Text));

    [Fact]
    public void Every_source_sits_in_a_room_and_its_namespace_follows_its_folder()
    {
        var problems = new List<string>();
        foreach (var (room, rel, text) in Sources())
        {
            if (!Rooms.Contains(room)) { problems.Add($"{rel}: not in a room ({string.Join(", ", Rooms)})"); continue; }
            string folder = string.Join('.', rel.Split('/')[..^1]);
            var ns = Regex.Match(text, @"^namespace\s+TrainingForensics\.([\w.]+)", RegexOptions.Multiline);
            if (!ns.Success || ns.Groups[1].Value != folder)
                problems.Add($"{rel}: namespace {(ns.Success ? "TrainingForensics." + ns.Groups[1].Value : "(none)")}, folder {folder}");
        }
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    /// <summary>The rooms above <paramref name="room"/> that <paramref name="text"/> refers to.</summary>
    internal static IEnumerable<string> RoomsAbove(string room, string text)
    {
        int own = Array.IndexOf(Rooms, room);
        // code only: a comment may mention a higher room ("the notebook of case study 1 shows …")
        string code = Regex.Replace(text, @"//.*$", "", RegexOptions.Multiline);
        return Regex.Matches(code, @"\bTrainingForensics\.(\w+)").Select(m => m.Groups[1].Value)
            .Where(r => Array.IndexOf(Rooms, r) > own).Distinct();
    }

    [Fact]
    public void Rooms_depend_only_on_the_rooms_before_them()
    {
        var problems = Sources().Where(s => Rooms.Contains(s.Room))
            .SelectMany(s => RoomsAbove(s.Room, s.Text).Select(up => $"{s.Relative} ({s.Room}) uses {up}, a room above it")).ToList();
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void The_scan_sees_a_reference_up_the_rooms_in_code_not_in_comments()
    {
        Assert.Equal(new[] { "CaseStudies" }, RoomsAbove("Training", "using TrainingForensics.CaseStudies.LossPlateau;\nusing TrainingForensics.Data;"));
        Assert.Equal(new[] { "Charts" }, RoomsAbove("Training", "var c = TrainingForensics.Charts.Plots.Lines(a, b, c, d);"));
        Assert.Empty(RoomsAbove("Training", "// as TrainingForensics.CaseStudies shows\nusing TrainingForensics.Models;"));
    }

    [Fact]
    public void No_class_shares_its_namespace_name()
    {
        foreach (var t in HygienePublicTypesTests.PublicTypes().Concat(typeof(TrainingForensics.Clinic.ClinicRunner).Assembly.GetExportedTypes()))
            Assert.False(t.Namespace?.Split('.').Contains(t.Name) == true, $"{t.FullName}: the type shares a name with its namespace");
    }
}
