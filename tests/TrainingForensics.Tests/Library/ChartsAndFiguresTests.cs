using System.Text.Json;
using TorchSharp;
using TrainingForensics.Charts;
using TrainingForensics.Results;
using static TorchSharp.torch;

namespace TrainingForensics.Tests.Library;

public class ChartsTests
{
    static JsonElement Json(Plotly.NET.GenericChart chart) => JsonDocument.Parse(TrainingForensics.Charts.Plots.ToJson(chart)).RootElement;

    [Fact]
    public void A_figure_from_plotly_attributes_keeps_them_and_needs_a_trace()
    {
        var trace = new Dictionary<string, object> { ["type"] = "bar", ["x"] = new[] { "a", "b" }, ["y"] = new[] { 1.0, 2.0 } };
        var json = Json(PlotlyFigure.Build(new[] { trace }, new Dictionary<string, object> { ["title"] = PlotlyFigure.Text("counts") }));
        Assert.Equal("bar", json.GetProperty("data")[0].GetProperty("type").GetString());
        Assert.Equal(2.0, json.GetProperty("data")[0].GetProperty("y")[1].GetDouble());
        Assert.Equal("counts", json.GetProperty("layout").GetProperty("title").GetProperty("text").GetString());
        Assert.Throws<ArgumentException>(() => PlotlyFigure.Build(Array.Empty<Dictionary<string, object>>(), new()));
    }

    [Fact]
    public void A_histogram_keeps_values_at_the_top_of_its_range_and_shows_sets_side_by_side()
    {
        // 32 saturated outputs of exactly 1.0 used to fall outside the last half-open bin
        var (counts, outside) = HistogramChart.Count(Enumerable.Repeat(1.0f, 32).Append(0f).Append(0.5f).Append(2f).Append(float.NaN), 0, 1, 10);
        Assert.Equal(32, counts[^1]);
        Assert.Equal(1, counts[0]);
        Assert.Equal(1, counts[5]);
        Assert.Equal(2, outside);
        var json = Json(HistogramChart.Create("outputs", new Dictionary<string, float[]> { ["step 0"] = new[] { 0.5f }, ["step 14"] = new[] { 1f, 3f } }, bins: 4, min: 0, max: 1));
        Assert.Equal("group", json.GetProperty("layout").GetProperty("barmode").GetString());
        var traces = json.GetProperty("data").EnumerateArray().ToList();
        Assert.Equal(1, traces[1].GetProperty("y")[3].GetInt64());
        Assert.Equal("step 14 (1 outside the range)", traces[1].GetProperty("name").GetString());
    }

    [Fact]
    public void Epoch_values_are_drawn_on_whole_epochs_and_accuracies_on_zero_to_one()
    {
        var h = new TrainingForensics.Training.TrainingHistory("run");
        h.Add(new TrainingForensics.Training.StepRecord(1, 0, 2.0, 0.01, new Dictionary<string, double>()));
        h.Add(new TrainingForensics.Training.EpochRecord(1, 1, 2.0, 0.1, new Dictionary<string, double> { ["test_accuracy"] = 0.9 }));
        var layout = Json(Plots.TrainingCurves("run", new[] { h }, epochValue: "test_accuracy")).GetProperty("layout");
        Assert.Equal(1, layout.GetProperty("xaxis2").GetProperty("dtick").GetInt32());
        Assert.Equal(new[] { 0.0, 1.0 }, layout.GetProperty("yaxis2").GetProperty("range").EnumerateArray().Select(v => v.GetDouble()));
    }

    [Fact]
    public void Side_by_side_panels_have_their_own_axes_and_a_shared_legend()
    {
        var chart = TrainingForensics.Charts.Plots.SideBySide("runs",
            new Panel("loss", "step", "loss", new[] { Series.Of("a", new[] { 3.0, 2, double.NaN }), Series.Of("b", new[] { 3.0, 1, 0.5 }) }, LogY: true),
            new Panel("accuracy", "epoch", "acc", new[] { Series.Of("a", new[] { 0.5, 0.9 }) }));
        var json = Json(chart);
        var data = json.GetProperty("data").EnumerateArray().ToList();
        Assert.Equal(3, data.Count);
        Assert.Equal("y2", data[2].GetProperty("yaxis").GetString());
        Assert.False(data[2].GetProperty("showlegend").GetBoolean()); // "a" already in the legend
        Assert.Equal(JsonValueKind.Null, data[0].GetProperty("y")[2].ValueKind); // NaN → gap, valid JSON
        Assert.Equal("log", json.GetProperty("layout").GetProperty("yaxis").GetProperty("type").GetString());
        Assert.Equal("linear", json.GetProperty("layout").GetProperty("yaxis2").GetProperty("type").GetString());
    }

    [Fact]
    public void Image_grid_tiles_images_with_captions()
    {
        var images = rand(5, 1, 4, 4);
        var json = Json(TrainingForensics.Charts.Plots.ImageGrid(images, new[] { "0", "1", "2", "3", "4" }, columns: 3));
        var z = json.GetProperty("data")[0].GetProperty("z");
        Assert.Equal(2 * (4 + 2), z.GetArrayLength());
        Assert.Equal(3 * (4 + 2), z[0].GetArrayLength());
        Assert.Equal(images[0, 0, 0, 0].item<float>(), z[0][0].GetDouble(), 5);
        Assert.Equal(5, json.GetProperty("layout").GetProperty("annotations").GetArrayLength());
        Assert.Throws<ArgumentException>(() => TrainingForensics.Charts.Plots.ImageGrid(images, new[] { "x" }));
        Assert.Throws<ArgumentException>(() => TrainingForensics.Charts.Plots.ImageGrid(rand(5, 3, 4, 4)));
    }

    [Fact]
    public void Mismatched_series_and_heatmap_names_are_refused()
    {
        Assert.Throws<ArgumentException>(() => TrainingForensics.Charts.Plots.Lines("t", "x", "y", new[] { new Series("s", new[] { 1.0 }, new[] { 1.0, 2 }) }));
        Assert.Throws<ArgumentException>(() => TrainingForensics.Charts.Plots.Heatmap("t", new double[2, 2], new[] { "a" }, new[] { "a", "b" }));
        var hm = Json(TrainingForensics.Charts.Plots.Heatmap("t", new double[,] { { 1, 2 }, { 3, 4 } }, new[] { "r1", "r2" }, new[] { "c1", "c2" }, annotate: true));
        Assert.Equal(4, hm.GetProperty("data")[0].GetProperty("z")[1][1].GetDouble());
    }

    [Fact]
    public void Moving_average_is_trailing()
    {
        Assert.Equal(new[] { 1.0, 1.5, 2.5, 3.5 }, TrainingForensics.Charts.Plots.MovingAverage(new[] { 1.0, 2, 3, 4 }, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => TrainingForensics.Charts.Plots.MovingAverage(new[] { 1.0 }, 0));
    }
}

public class FiguresTests
{
    [Fact]
    public void Figures_round_trip_through_json_exactly()
    {
        Figures.Reset();
        Figures.Record("frozen_loss", 0.79326165f, "nats", "evaluation loss at the plateau");
        Figures.Record("first_step", 3L);
        Figures.Record("collapsed", true);
        Figures.Record("device", "cpu");
        Figures.Record("first_step", 4L); // last value wins, order kept
        using var dir = new TempDir();
        string path = dir.File("nb.figures.json");
        Figures.WriteJson(path, "01-loss-plateau");
        var read = Figures.ReadJson(path);
        Assert.Equal((double)0.79326165f, (double)read["frozen_loss"]);
        Assert.Equal(4.0, read["first_step"]);
        Assert.Equal(true, read["collapsed"]);
        Assert.Equal("cpu", read["device"]);
        Assert.Equal(4, Figures.All.Count);
        Assert.Equal("01-loss-plateau", JsonDocument.Parse(File.ReadAllText(path)).RootElement.GetProperty("notebook").GetString());
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp*"));
        Assert.Throws<KeyNotFoundException>(() => Figures.Get("nope"));
        Figures.Reset();
        Assert.Empty(Figures.All);
    }

    [Fact]
    public void Bad_names_and_non_finite_values_are_refused()
    {
        Assert.Throws<ArgumentException>(() => Figures.Record("Frozen Loss", 1.0));
        Assert.Throws<ArgumentException>(() => Figures.Record("1st", 1.0));
        Assert.Throws<ArgumentOutOfRangeException>(() => Figures.Record("x", double.NaN));
    }
}

public class ClaimTests
{
    [Fact]
    public void Claims_show_a_tick_when_they_hold_and_fail_with_a_cross_and_the_measured_value()
    {
        Claim.Reset();
        var output = new StringWriter();
        var saved = Console.Out;
        Console.SetOut(output);
        try
        {
            Claim.Near(0.79326165, 0.3132617 + 0.48, 1e-6, "frozen loss equals the analytic floor");
            Assert.Throws<ClaimFailedException>(() => Claim.Below(3, 2, "three below two"));
        }
        finally { Console.SetOut(saved); }
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("✓ frozen loss equals the analytic floor (0.79326165 ≈ 0.7932617 ± 1E-06)", lines[0]);
        Assert.StartsWith("✗ claim failed: three below two: measured 3, not below 2", lines[1]);
        Assert.Contains("frozen loss", Assert.Single(Claim.Passed));
        Assert.Contains("\"claims\"", Figures.ToJson("x")); // the figures JSON lists the claims that held
        Assert.Contains("frozen loss equals the analytic floor", Figures.ToJson("x"));
        Figures.Reset();
        Assert.Empty(Claim.Passed); // a notebook's run starts with none

        Claim.Reset();
        Claim.Near(0.79326165, 0.3132617 + 0.48, 1e-6, "frozen loss equals the analytic floor");
        Claim.InRange(0.5, 0, 1, "in range");
        Claim.Equal(3, 3, "count");
        Claim.That(true, "true");
        Claim.Above(2, 1, "above");
        Claim.Below(1, 2, "below");
        Assert.Equal(6, Claim.Passed.Count);
        var e = Assert.Throws<ClaimFailedException>(() => Claim.Near(0.9, 0.5, 0.1, "accuracy near the prior"));
        Assert.Contains("measured 0.9", e.Message);
        Assert.Contains("accuracy near the prior", e.Message);
        Assert.Throws<ClaimFailedException>(() => Claim.InRange(double.NaN, 0, 1, "nan is never in range"));
        Assert.Throws<ClaimFailedException>(() => Claim.Above(double.NaN, 0, "nan"));
        Assert.Throws<ClaimFailedException>(() => Claim.Equal("a", "b", "text"));
        Assert.Throws<ClaimFailedException>(() => Claim.That(false, "false"));
        Assert.Equal(6, Claim.Passed.Count);
    }
}
