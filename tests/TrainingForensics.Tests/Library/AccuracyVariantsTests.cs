using TorchSharp;
using TrainingForensics.Metrics;
using static TorchSharp.torch;

namespace TrainingForensics.Tests.Library;

public class AccuracyVariantsTests
{
    static Tensor Y() => tensor(new long[] { 1, 2, 3 });
    static Tensor YHat() => tensor(new long[] { 1, 2, 2 });

    [Fact]
    public void Categorical_reads_a_vector_of_indices_as_one_row_while_elementwise_counts_each()
    {
        var cat = new CategoricalAccuracy();
        cat.Update(Y(), YHat());
        Assert.Equal(0.0, cat.Result);
        Assert.Equal(1, cat.Count);
        var plain = new ElementwiseAccuracy();
        plain.Update(Y(), YHat());
        Assert.Equal(2.0 / 3, plain.Result, 12);
        Assert.Equal(3, plain.Count);
        // and the library's shape-checked accuracy agrees with the element-wise one on class predictions
        Assert.Equal(plain.Result, Accuracy.Compute(YHat(), Y()), 12);
    }

    [Fact]
    public void Categorical_ties_go_to_the_first_index()
    {
        var cat = new CategoricalAccuracy();
        cat.Update(tensor(new long[] { 1, 3, 3 }), tensor(new long[] { 0, 5, 5 }));   // argmax 1 vs 1
        Assert.Equal(1.0, cat.Result);
    }

    [Fact]
    public void The_selection_rule_follows_ranks_and_last_axes()
    {
        Assert.Equal(AccuracyKind.Binary, AccuracyVariants.SelectForShapes(new long[] { 8, 1 }, new long[] { 8, 1 }).Kind);
        Assert.Equal(AccuracyKind.Binary, AccuracyVariants.SelectForShapes(new long[] { 8 }, new long[] { 8, 1 }).Kind);
        Assert.Equal(AccuracyKind.SparseCategorical, AccuracyVariants.SelectForShapes(new long[] { 8 }, new long[] { 8, 10 }).Kind);
        Assert.Equal(AccuracyKind.SparseCategorical, AccuracyVariants.SelectForShapes(new long[] { 8, 1 }, new long[] { 8, 10 }).Kind);
        Assert.Equal(AccuracyKind.Categorical, AccuracyVariants.SelectForShapes(new long[] { 8, 10 }, new long[] { 8, 10 }).Kind);
        // the pitfall: argmax'd predictions next to index labels are the same rank → categorical
        var (kind, reason) = AccuracyVariants.Select(Y(), YHat());
        Assert.Equal(AccuracyKind.Categorical, kind);
        Assert.Contains("[3]", reason);
        Assert.Contains("categorical", reason);
        Assert.IsType<CategoricalAccuracy>(AccuracyVariants.Auto(Y(), YHat()));
        Assert.Throws<MetricInputException>(() => AccuracyVariants.SelectForShapes(Array.Empty<long>(), new long[] { 3 }));
    }

    [Fact]
    public void Sparse_on_scores_is_the_true_accuracy_and_categorical_on_argmax_counts_batches()
    {
        // 6 examples, 3 classes; predictions correct except example 4
        var labels = tensor(new long[] { 0, 2, 1, 2, 0, 1 });
        var scores = tensor(new float[,] { { 9, 0, 0 }, { 0, 1, 5 }, { 0, 7, 1 }, { 3, 1, 2 }, { 4, 0, 1 }, { 0, 2, 1 } });
        var sparse = AccuracyVariants.Stream(new SparseCategoricalAccuracy(), labels, scores, batchSize: 4);
        Assert.Equal(5.0 / 6, sparse.Result, 12);
        Assert.Equal(6, sparse.Count);
        Assert.Equal(Accuracy.Compute(scores, labels), sparse.Result, 12);
        var predicted = scores.argmax(1);
        // batches [0,2,1,2] vs [0,2,1,0] → argmax 1 vs 1: right; [0,1] vs [0,1] → argmax 1 vs 1: right
        var cat = AccuracyVariants.Stream(new CategoricalAccuracy(), labels, predicted, batchSize: 4);
        Assert.Equal(2, cat.Count);
        Assert.Equal(1.0, cat.Result);
        // batch size 2: [0,2]/[0,2] ✓, [1,2]/[1,0] ✗ (1 vs 0), [0,1]/[0,1] ✓
        var cat2 = AccuracyVariants.Stream(new CategoricalAccuracy(), labels, predicted, batchSize: 2);
        Assert.Equal(3, cat2.Count);
        Assert.Equal(2.0 / 3, cat2.Result, 12);
        // sparse labels with a trailing axis of 1 are squeezed
        var col = new SparseCategoricalAccuracy();
        col.Update(labels.unsqueeze(1), scores);
        Assert.Equal(5.0 / 6, col.Result, 12);
    }

    [Fact]
    public void Binary_thresholds_and_averages_over_the_last_axis()
    {
        var b = new BinaryAccuracy();
        b.Update(tensor(new float[,] { { 1 }, { 0 }, { 1 }, { 0 } }), tensor(new float[,] { { 0.9f }, { 0.2f }, { 0.4f }, { 0.7f } }));
        Assert.Equal(0.5, b.Result, 12);
        Assert.Equal(4, b.Count);
        var rank1 = new BinaryAccuracy();
        rank1.Update(tensor(new float[] { 1, 0, 1, 0 }), tensor(new float[] { 0.9f, 0.2f, 0.4f, 0.7f }));
        Assert.Equal(1, rank1.Count);           // a rank-1 batch is one row
        Assert.Equal(0.5, rank1.Result, 12);
        b.Reset();
        Assert.True(double.IsNaN(b.Result));
        Assert.Equal(0, b.Count);
    }

    [Fact]
    public void Shapes_that_fit_no_semantics_are_refused_naming_them()
    {
        var e = Assert.Throws<MetricInputException>(() => new CategoricalAccuracy().Update(tensor(new long[] { 1, 2 }), zeros(2, 3)));
        Assert.Contains("[2]", e.Message);
        Assert.Contains("[2,3]", e.Message);
        Assert.Contains("one axis fewer", Assert.Throws<MetricInputException>(() => new SparseCategoricalAccuracy().Update(Y(), YHat())).Message);
        Assert.Throws<MetricInputException>(() => new ElementwiseAccuracy().Update(Y(), zeros(4)));
        Assert.Throws<MetricInputException>(() => AccuracyVariants.Stream(new ElementwiseAccuracy(), Y(), zeros(4), 2));
    }

    [Fact]
    public void Compare_lists_every_metric_and_marks_the_auto_choice()
    {
        var df = AccuracyVariants.Compare(Y(), YHat());
        Assert.Equal(4, df.Rows.Count);
        var metric = df.Columns["metric"];
        int cat = Enumerable.Range(0, 4).Single(i => (string)metric[i] == "Categorical");
        int sparse = Enumerable.Range(0, 4).Single(i => (string)metric[i] == "SparseCategorical");
        int elem = Enumerable.Range(0, 4).Single(i => (string)metric[i] == "Elementwise");
        Assert.True((bool)df.Columns["auto-selected"][cat]);
        Assert.Equal(0.0, (double)df.Columns["result"][cat]);
        Assert.Equal(1L, (long)df.Columns["count"][cat]);
        Assert.Equal(3L, (long)df.Columns["count"][elem]);
        Assert.Null(df.Columns["result"][sparse]);
        Assert.Contains("one axis fewer", (string)df.Columns["note"][sparse]);
    }

    [Fact]
    public void Auto_table_shows_the_choice_and_its_number_per_case()
    {
        var labels = tensor(new long[] { 0, 2, 1, 2, 0, 1 });
        var scores = tensor(new float[,] { { 9, 0, 0 }, { 0, 1, 5 }, { 0, 7, 1 }, { 3, 1, 2 }, { 4, 0, 1 }, { 0, 2, 1 } });
        var df = AccuracyVariants.AutoTable(new[]
        {
            ("index labels, scores", labels, scores),
            ("index labels, argmax", labels, scores.argmax(1)),
            ("column labels, column argmax", labels.unsqueeze(1), scores.argmax(1).unsqueeze(1)),
        }, batchSize: 2);
        Assert.Equal("SparseCategorical", df.Columns["auto-selected"][0]);
        Assert.Equal(5.0 / 6, (double)df.Columns["result"][0], 12);
        Assert.Equal("Categorical", df.Columns["auto-selected"][1]);
        Assert.Equal(3L, (long)df.Columns["count"][1]);
        Assert.Equal(2.0 / 3, (double)df.Columns["result"][1], 12);
        // predictions with a last axis of 1 → binary: class > 0.5 counts as "1"; labels 0/2/1/2/0/1 vs 0/1/1/1/0/1
        Assert.Equal("Binary", df.Columns["auto-selected"][2]);
        Assert.Equal(4.0 / 6, (double)df.Columns["result"][2], 12);
        Assert.Equal("[6,1] Int64", df.Columns["labels"][2]);
    }
}
