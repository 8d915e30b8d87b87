using TrainingForensics.CaseStudies.LossPlateau;
using TrainingForensics.Data;

namespace TrainingForensics.Tests.Library;

/// <summary>The case-study-1 helpers the notebook's explanations rest on.</summary>
public class LossPlateauTests
{
    [Fact]
    public void The_offset_share_is_near_one_for_a_large_offset_and_small_without_one()
    {
        using var offset = EcgGenerator.Generate(new EcgOptions { Length = 600, Records = 8, OffsetMv = 20, Seed = 1 });
        using var zeroMean = EcgGenerator.Generate(new EcgOptions { Length = 600, Records = 8, OffsetMv = 0, Seed = 1 });
        Assert.InRange(EcgExperiment.OffsetShare(offset), 0.95, 1.0);
        Assert.InRange(EcgExperiment.OffsetShare(zeroMean), 0.0, 0.5);
    }
}
