using System.Text.RegularExpressions;

namespace TrainingForensics.Tests.Notebooks;

/// <summary>
/// No claim in a notebook may be vacuous: a check whose range is the whole domain of what it measures passes
/// whatever the run did, and a reader would take its ✓ for evidence. The scan knows the usual shapes of that
/// mistake: a count checked against [0, its own total], a fraction against [0, 1], infinite or extreme bounds, and
/// a condition that is always true.
/// </summary>
public class NotebookClaimTests
{
    static readonly Regex InRange = new(@"Claim\.InRange\(\s*([\w.]+)\s*,\s*([^,]+?)\s*,\s*([^,]+?)\s*,");
    static readonly Regex Unbounded = new(@"Claim\.(InRange|Above|Below)\([^;]*\b(double\.(PositiveInfinity|NegativeInfinity|MaxValue|MinValue)|long\.(MaxValue|MinValue)|int\.(MaxValue|MinValue))\b");
    static readonly Regex AlwaysTrue = new(@"Claim\.That\(\s*(true\s*,|(\w+)\s*\|\|\s*!\s*\2\b)");

    /// <summary>The vacuous claims in a piece of notebook code, as text.</summary>
    internal static IEnumerable<string> VacuousClaims(string code)
    {
        foreach (Match m in InRange.Matches(code))
        {
            string value = m.Groups[1].Value, low = m.Groups[2].Value, high = m.Groups[3].Value;
            string last = value.Split('.')[^1];
            bool zeroLow = low is "0" or "0.0" or "0L";
            // a count against [0, its total] (heldOutFound in [0, heldOut]) or a fraction against [0, 1]
            if (zeroLow && Regex.IsMatch(high, @"^[A-Za-z_]\w*$") && last.StartsWith(high, StringComparison.OrdinalIgnoreCase) && last != high)
                yield return m.Value;
            else if (zeroLow && high is "1" or "1.0" && Regex.IsMatch(last, "(?i)accuracy|fraction|share|probability"))
                yield return m.Value;
        }
        foreach (Match m in Unbounded.Matches(code)) yield return m.Value;
        foreach (Match m in AlwaysTrue.Matches(code)) yield return m.Value;
    }

    [Fact]
    public void The_scan_recognises_vacuous_claims_and_leaves_real_ones()
    {
        Assert.Single(VacuousClaims("Claim.InRange(heldOutFound, 0, heldOut, \"some found\");"));
        Assert.Single(VacuousClaims("Claim.InRange(r.TestAccuracy, 0, 1, \"an accuracy\");"));
        Assert.Single(VacuousClaims("Claim.Above(loss, double.NegativeInfinity, \"a loss\");"));
        Assert.Single(VacuousClaims("Claim.That(true, \"always\");"));
        Assert.Single(VacuousClaims("Claim.That(ok || !ok, \"always\");"));
        Assert.Empty(VacuousClaims("Claim.InRange(frozenFrom, 0, 4, \"freezes early\");"));
        Assert.Empty(VacuousClaims("Claim.InRange(ratio, 0.8, 1.25, \"near one\");"));
        Assert.Empty(VacuousClaims("Claim.That(heldOutFound > 0 && heldOutFound < heldOut, \"some found, some missed\");"));
    }

    [Theory]
    [MemberData(nameof(NotebookFiles.Names), MemberType = typeof(NotebookFiles))]
    public void No_claim_is_vacuous(string name)
    {
        string code = string.Join("\n", NotebookFiles.CodeCells(NotebookFiles.Load(name)).Select(NotebookFiles.Source));
        var vacuous = VacuousClaims(code).ToList();
        Assert.True(vacuous.Count == 0, $"{name}: claims that cannot fail:\n" + string.Join("\n", vacuous));
    }
}
