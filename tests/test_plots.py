import numpy as np
import pandas as pd
import pytest
import torch

from transferlab import compare, plots


@pytest.fixture(scope="module")
def result():
    from transferlab import ExperimentConfig

    return compare(
        ExperimentConfig(
            dataset="test_blobs",
            backbone="test_tiny",
            per_class=8,
            freeze_depth=1,
            epochs=3,
            batch_size=8,
            test_per_class=None,
            val_per_class=5,
        )
    )


def test_learning_curves_have_a_trace_per_arm_with_every_epoch(result):
    fig = plots.learning_curves(result.history, x="images_seen")
    curves = {t.name: t for t in fig.data if "test split" not in t.name}
    assert set(curves) == {"finetune", "scratch"}
    assert all(len(t.x) == 3 for t in curves.values())
    assert list(curves["scratch"].x) == [32, 64, 96]
    assert fig.layout.xaxis.title.text == "images seen"


def test_confusion_matrix_counts_match_a_hand_count():
    fig = plots.confusion_matrix(torch.tensor([0, 0, 1, 1, 1]), torch.tensor([0, 1, 1, 1, 0]), ["a", "b"])
    assert np.array_equal(fig.data[0].text, [[1, 1], [1, 2]])
    assert np.allclose(fig.data[0].z, [[0.5, 0.5], [1 / 3, 2 / 3]])


def test_freeze_diagram_marks_frozen_blocks(result):
    fig = plots.freeze_diagram(result.runs["finetune"].summary)
    assert list(fig.data[0].text) == ["frozen", "trained", "trained", "trained"]


def test_transfer_map_averages_seeds_into_a_grid():
    table = pd.DataFrame({"freeze_depth": [0, 0, 0, 2], "per_class": [1, 1, 10, 10], "gap": [0.1, 0.3, 0.2, -0.1]})
    fig = plots.transfer_map(table)
    z = np.array(fig.data[0].z, dtype=float)
    assert z.shape == (2, 2) and z[0, 0] == pytest.approx(0.2) and np.isnan(z[1, 0])


def test_transfer_map_marks_cells_whose_interval_covers_zero_as_ties():
    one_seed = pd.DataFrame(
        {
            "freeze_depth": [0, 2],
            "per_class": [10, 10],
            "seed": [0, 0],
            "gap": [0.05, 0.2],
            "gap_low": [-0.01, 0.15],  # covers zero: a tie, however large +5 looks
            "gap_high": [0.11, 0.25],
        }
    )
    text = plots.transfer_map(one_seed).data[0].text
    assert text[0][0].endswith(" tie") and not text[1][0].endswith("tie")
    # Several seeds: the gap per seed, paired, decides; one that changes sign is a tie.
    seeds = pd.DataFrame(
        {
            "freeze_depth": [0, 0, 0, 2, 2, 2],
            "per_class": [10] * 6,
            "seed": [0, 1, 2] * 2,
            "gap": [0.3, -0.2, 0.1, 0.2, 0.21, 0.19],
            "gap_low": [0.2, -0.3, 0.0, 0.1, 0.1, 0.1],
            "gap_high": [0.4, -0.1, 0.2, 0.3, 0.3, 0.3],
        }
    )
    text = plots.transfer_map(seeds).data[0].text
    assert text[0][0].endswith(" tie") and not text[1][0].endswith("tie")


def test_per_class_accuracy_and_image_grid(result):
    preds = {a: r.test_predictions for a, r in result.runs.items()}
    fig = plots.per_class_accuracy(result.data.test_labels, preds, result.data.dataset.classes)
    assert [t.name for t in fig.data] == ["finetune", "scratch"] and len(fig.data[0].y) == 4
    # The bars' heights against a hand count: class a 1 of 2 right, b 2 of 3, c 1 of 1 (and 0, 1, 0).
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    hand = {"x": torch.tensor([0, 1, 1, 1, 0, 2]), "y": torch.tensor([1, 2, 1, 1, 1, 0])}
    fig = plots.per_class_accuracy(labels, hand, ["a", "b", "c"])
    assert list(fig.data[0].x) == ["a", "b", "c"]
    assert list(fig.data[0].y) == pytest.approx([1 / 2, 2 / 3, 1]) and list(fig.data[1].y) == [0, 1, 0]
    grid = plots.image_grid(result.data.test_images[:7], [str(i) for i in range(7)], columns=3)
    assert len(grid.data) == 7


def test_overlay_curves_names_each_run_and_arm_and_styles_arms_by_dash(result):
    combined = plots.combine_histories({"k=1": result.history, "k=2": result.history})
    assert set(combined.arm) == {"k=1 finetune", "k=1 scratch", "k=2 finetune", "k=2 scratch"}
    assert set(combined.base_arm) == {"finetune", "scratch"} and len(combined) == 2 * len(result.history)
    fig = plots.overlay_curves({"k=1": result.history, "k=2": result.history}, x="images_seen")
    assert [t.name for t in fig.data] == ["k=1 finetune", "k=1 scratch", "k=2 finetune", "k=2 scratch"]
    assert [t.line.dash for t in fig.data] == ["solid", "dash", "solid", "dash"]
    assert fig.data[0].line.color == fig.data[1].line.color != fig.data[2].line.color
    assert all(len(t.x) == 3 for t in fig.data)


def test_misclassified_grid_shows_only_the_mistakes_with_both_labels():
    images = torch.zeros(5, 1, 8, 8, dtype=torch.uint8)
    labels, predictions = torch.tensor([0, 1, 1, 0, 1]), torch.tensor([0, 0, 1, 1, 1])
    fig = plots.misclassified_grid(images, labels, predictions, ["cat", "dog"])
    assert len(fig.data) == 2
    assert [a.text for a in fig.layout.annotations] == ["cat<br>(true: dog)", "dog<br>(true: cat)"]
    perfect = plots.misclassified_grid(images, labels, labels, ["cat", "dog"])
    assert len(perfect.data) == 0 and "no mistakes" in perfect.layout.annotations[0].text


def test_transfer_points_average_seeds_at_one_place_and_count_them():
    table = pd.DataFrame(
        {"per_class": [10, 10, 100, None], "freeze_depth": [4, 4, 9, 2], "gap": [0.40, 0.20, -0.05, 0.5]}
    )
    trace = plots.transfer_points(table).data[0]
    assert list(trace.x) == [10, 100] and list(trace.y) == [4, 9]  # "all" (None) has no place on a log axis
    assert list(trace.text) == ["+30", "-5"] and list(trace.customdata) == [2, 1]
    assert trace.marker.cmid == 0 and trace.marker.cmax == pytest.approx(0.30)


def test_an_arm_measured_once_is_a_dashed_level_and_levels_sit_beside_curves():
    history = pd.DataFrame(
        {"arm": ["finetune"] * 3 + ["tfidf"], "step": [10, 20, 30, 30], "split": "val",
         "accuracy": [0.2, 0.4, 0.5, 0.3], "loss": 1.0}
    )  # fmt: skip
    fig = plots.learning_curves(history)
    level = next(t for t in fig.data if t.name == "tfidf")
    assert level.line.dash == "dashdot" and list(level.x) == [0, 30] and list(level.y) == [0.3, 0.3]
    assert next(t for t in fig.data if t.name == "finetune").line.dash == "solid"
    table = pd.DataFrame({"arm": "finetune", "per_class": [2, 8, 32], "test_accuracy": [0.5, 0.7, 0.8]})
    fig = plots.accuracy_against(table, x="per_class", levels={"zero-shot (names)": 0.6})
    zero = next(t for t in fig.data if t.name == "zero-shot (names)")
    assert list(zero.x) == [2, 32] and list(zero.y) == [0.6, 0.6] and zero.line.dash == "dash"


def test_arms_differ_by_line_style_and_marker_and_the_palette_is_colour_blind_safe():
    history = pd.DataFrame(
        {"arm": ["finetune", "finetune", "scratch", "scratch"], "step": [10, 20, 10, 20], "split": "val",
         "accuracy": [0.5, 0.66, 0.2, 0.24], "loss": [1.0, 0.8, 2.0, 1.9]}
    )  # fmt: skip
    fig = plots.learning_curves(history)
    styles = {t.name: (t.line.dash, t.marker.symbol, t.line.color) for t in fig.data}
    assert styles["finetune"][:2] == ("solid", "circle") and styles["scratch"][:2] == ("dash", "square")
    okabe_ito = {"#0072B2", "#D55E00", "#009E73", "#999999", "#CC79A7", "#E69F00", "#56B4E9", "#BBBBBB"}
    assert set(plots.ARM_COLOURS.values()) <= okabe_ito


def test_the_curves_read_aloud_in_one_sentence_that_follows_them():
    history = pd.DataFrame(
        {"arm": ["finetune", "scratch", "finetune", "scratch"], "step": [20, 20, 40, 40], "split": "val",
         "accuracy": [0.5, 0.2, 0.66, 0.24], "loss": [1.0, 2.0, 0.8, 1.9]}
    )  # fmt: skip
    assert plots.curves_summary(history.head(2), 60) == (
        "After 20 of 60 steps: finetune 50% on validation, scratch 20%; finetune ahead of scratch by 30 points."
    )
    assert plots.curves_summary(history, 60).startswith(
        "After 40 of 60 steps: finetune 66% on validation, scratch 24%;"
    )
    assert plots.curves_summary(history, 60).endswith("finetune ahead of scratch by 42 points.")
    assert "validation loss finetune 0.80, scratch 1.90" in plots.curves_summary(history, 60, "loss")
    tested = pd.concat(
        [history, pd.DataFrame({"arm": ["finetune"], "step": [60], "split": ["test"], "accuracy": [0.7]})]
    )
    assert plots.curves_summary(tested, 60).endswith("Test split: finetune 70.0%.")
    assert plots.curves_summary(history.iloc[0:0]).startswith("No validation point yet")


def test_every_figure_reads_aloud_in_one_sentence_with_its_numbers(result):
    """`plots.summary`: each figure function's own sentence, or one read from the traces, never empty."""
    table = pd.DataFrame(
        {"arm": ["finetune", "scratch"] * 2, "per_class": [1, 1, 10, 10], "test_accuracy": [0.4, 0.2, 0.8, 0.6]}
    )
    assert plots.summary(plots.accuracy_against(table, x="per_class")).endswith(
        "finetune from 40% at 1 to 80% at 10; scratch from 20% at 1 to 60% at 10."
    )
    assert (
        plots.summary(plots.accuracy_bars(table[table.per_class == 10])) == "Test accuracy: finetune 80%, scratch 60%."
    )
    cells = pd.DataFrame(
        {"freeze_depth": [0, 0, 6, 6], "per_class": [2, 10, 2, 10], "gap": [0.1, 0.02, 0.3, np.nan],
         "gap_low": [0.05, -0.01, 0.2, np.nan], "gap_high": [0.15, 0.05, 0.4, np.nan], "seed": 0}
    )  # fmt: skip
    assert plots.summary(plots.transfer_map(cells)) == (
        "Transfer map of fine-tune minus scratch, 3 of 4 cells finished: highest +30 points at k = 6, "
        "2 per class; lowest +2 points at k = 0, 10 per class; 1 cell within noise of zero (tie)."
    )
    assert "highest +30 points at 2 per class, k = 6" in plots.summary(plots.transfer_points(cells))
    confusion = plots.confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), ["a", "b", "c"])
    assert (
        plots.summary(confusion) == "Confusion matrix: 75% of 4 test images right; most confused: a taken for b 1 time."
    )
    grid = plots.image_grid(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), ["sandal", "coat<br>(true: shirt)"], title="T")
    assert plots.summary(grid) == "T: 2 images, captioned: sandal; coat (true: shirt)."
    diagram = plots.summary(plots.freeze_diagram(result.runs["finetune"].summary))
    assert "of the" in diagram and "parameters train" in diagram
    assert plots.summary(plots.learning_curves(result.history)) == plots.curves_summary(result.history)
    said = plots.summary(plots.predictions_histogram([10, 20, 0], (15, 10, 20)))
    assert said.startswith("3 prediction(s): 2 finetune ahead, 1 within noise") and "2 guess(es) inside it" in said
    for fig in (
        plots.per_class_accuracy(result.data.test_labels, {"finetune": result.runs["finetune"].test_predictions},
                                 result.data.dataset.classes),
        plots.weight_change(result.table),
        plots.embedding_scatter(np.zeros((4, 2)), np.array([0, 1, 0, 1]), ["a", "b"], title="PCA"),
        plots.first_layer_filters(torch.randn(4, 3, 3, 3)),
        plots.train_test_gap(table.assign(train_accuracy=table.test_accuracy + 0.1)),
        plots.overlay_curves({"k=1": result.history}),
    ):  # fmt: skip
        assert len(plots.summary(fig)) > 20 and "nothing drawn" not in plots.summary(fig), fig.layout.title.text
    seconds = plots.accuracy_against(table.assign(seconds=table.per_class * 1.5), x="per_class", y="seconds")
    assert "finetune from 1.5 s at 1 to 15 s at 10" in plots.summary(seconds)
    pairs = plots.image_grid(torch.zeros(3, 1, 8, 8, dtype=torch.uint8), ["source", "source", "target"], title="T")
    assert plots.summary(pairs) == "T: 3 images, captioned: source (2); target."
    by_arm = plots.accuracy_against(table[table.per_class == 10], x="arm", title="By arm")
    assert plots.summary(by_arm) == "By arm: finetune 80%; scratch 60%.", "a point at its own name is not read twice"
    empty = plots.accuracy_against(table.iloc[0:0], x="per_class", title="Nothing yet")
    assert plots.summary(empty) == "Nothing yet: nothing drawn yet."
    assert plots.summary(plots.described(empty, "Said.")) == "Said."
