"""Chart builders as pure functions: a data frame in, a Vega-Lite spec out (no Streamlit, no browser)."""

from __future__ import annotations

import math

import altair as alt
import pandas as pd
import pytest

from app import charts

EPOCHS = [
    {"epoch": 1, "step": 4, "train_loss": 2.0, "val_loss": 2.1, "train_acc": 0.3, "val_acc": 0.25, "ood_acc": 0.2,
     "ood/gaussian_noise": 0.15, "images_per_sec": 100.0},
    {"epoch": 2, "step": 8, "train_loss": 1.2, "val_loss": 1.4, "train_acc": 0.6, "val_acc": 0.55, "ood_acc": 0.4,
     "ood/gaussian_noise": 0.35, "images_per_sec": 120.0, "robust_acc": 0.3, "sparsity": 0.5},
]


def spec(chart: alt.TopLevelMixin) -> dict:
    return chart.to_dict()


def layer_encodings(d: dict) -> list[dict]:
    return [layer["encoding"] for layer in d.get("layer", [d])]


def data_rows(d: dict) -> list[dict]:
    return next(iter(d["datasets"].values())) if d.get("datasets") else []


def test_epochs_frame_has_one_row_per_epoch():
    df = charts.epochs_frame(EPOCHS + [{"epoch": 2, "step": 8, "val_acc": 0.56}])
    assert list(df["epoch"]) == [1, 2]
    assert df.loc[1, "val_acc"] == 0.56 and "step" not in df.columns
    assert list(charts.epochs_frame([]).columns) == ["epoch"]


def test_store_rows_become_epoch_and_step_frames():
    rows = [{"epoch": 1, "step": 1, "name": "loss", "value": 2.0, "ts": 0}, {"epoch": 1, "step": 1, "name": "lr", "value": 0.1, "ts": 0},
            {"epoch": 1, "step": 2, "name": "loss", "value": 1.5, "ts": 0}, {"epoch": 1, "step": 2, "name": "lr", "value": 0.05, "ts": 0},
            {"epoch": 1, "step": 2, "name": "val_acc", "value": 0.5, "ts": 0}, {"epoch": 1, "step": 2, "name": "sparsity", "value": 0.1, "ts": 0}]
    epochs, steps = charts.store_frames(rows)
    assert list(epochs.columns) == ["epoch", "sparsity", "val_acc"] and epochs.loc[0, "val_acc"] == 0.5
    assert list(steps["step"]) == [1, 2] and list(steps["lr"]) == [0.1, 0.05]
    empty_epochs, empty_steps = charts.store_frames([])
    assert empty_epochs.empty and empty_steps.empty


def test_accuracy_chart_plots_the_accuracies_present_as_percentages():
    d = spec(charts.accuracy_chart(charts.epochs_frame(EPOCHS)))
    enc = layer_encodings(d)[0]
    assert [layer["mark"]["type"] for layer in d["layer"]] == ["line", "point"] * 3 + ["text", "text"]
    # training last, its points rings: equal to validation (both 100%, say), it still shows on top
    assert ["train_" in layer["transform"][0]["filter"] and not layer["transform"][0]["filter"].startswith("!")
            for layer in d["layer"][:6]] == [False] * 4 + [True] * 2
    assert d["layer"][5]["mark"]["filled"] is False and d["layer"][1]["mark"]["filled"] is True
    assert enc["x"]["field"] == "epoch" and enc["y"]["field"] == "value"
    assert enc["y"]["axis"]["format"] == "%" and enc["y"]["scale"]["domain"] == [0, 1]
    labels = {row["label"] for row in data_rows(d)}
    assert labels == {"Training accuracy", "Validation accuracy", "OOD accuracy (corrupted)",
                      "Robust accuracy (attacked)"}
    assert enc["color"]["sort"][:2] == ["Training accuracy", "Validation accuracy"]
    assert d["autosize"]["type"] == "fit-x", "the height is the plot's, not squeezed by the legend"


def test_missing_values_are_dropped_not_plotted_as_zero():
    d = spec(charts.accuracy_chart(charts.epochs_frame(EPOCHS)))
    robust = [r for r in data_rows(d) if r["metric"] == "robust_acc"]
    assert [r["epoch"] for r in robust] == [2]
    assert all(math.isfinite(r["value"]) for r in data_rows(d))


def test_loss_chart_is_not_a_percentage():
    d = spec(charts.loss_chart(charts.epochs_frame(EPOCHS)))
    enc = layer_encodings(d)[0]
    assert enc["y"]["axis"]["format"] == "~r" and enc["y"]["scale"] == {"zero": False}
    assert {r["metric"] for r in data_rows(d)} == {"train_loss", "val_loss"}


def test_method_metrics_are_found_and_get_their_own_chart():
    df = charts.epochs_frame(EPOCHS)
    assert charts.method_metric_names(df) == ["sparsity"]  # robust_acc has a place in the accuracy chart
    d = spec(charts.method_metric_chart(df, "sparsity"))
    assert d["title"] == "Sparsity (share of zero weights) per epoch"
    assert layer_encodings(d)[0]["y"]["axis"]["format"] == "%"
    new = df.assign(toy_score=[1.5, 2.5])
    assert "toy_score" in charts.method_metric_names(new)
    d = spec(charts.method_metric_chart(new, "toy_score"))
    assert d["title"] == "Toy score per epoch" and layer_encodings(d)[0]["y"]["axis"]["format"] == "~r"
    guard = pd.DataFrame({"epoch": [1, 2], "train_pgd_acc": [0.2, 0.4]})  # its title was cut in a half-width chart
    assert spec(charts.method_metric_chart(guard, "train_pgd_acc"))["title"] == \
        ["Robust accuracy on training images per epoch", "(overfitting check)"]


def test_step_and_lr_charts_use_steps():
    steps = charts.steps_frame([{"step": 2, "loss": 1.0, "lr": 0.05}, {"step": 1, "loss": 2.0, "lr": 0.1}])
    assert list(steps["step"]) == [1, 2]
    d = spec(charts.step_loss_chart(steps))
    assert layer_encodings(d)[0]["x"]["field"] == "step"
    d = spec(charts.lr_chart(steps))
    assert d["mark"]["type"] == "line" and d["encoding"]["y"]["field"] == "lr"
    # step k's rate is drawn from k - 1 to k: the last step gets its segment (step-after ended on a bare point)
    assert d["mark"]["interpolate"] == "step-before"
    assert [(r["step"], r["lr"]) for r in data_rows(d)] == [(0, 0.1), (1, 0.1), (2, 0.05)]
    # a GPU run logs every 10th step: the first segment still starts at 0; unsigned or text steps are numbers
    sparse = pd.DataFrame({"step": pd.Series([20, 10], dtype="uint64"), "lr": [0.05, 0.1]})
    assert [(r["step"], r["lr"]) for r in data_rows(spec(charts.lr_chart(sparse)))] == [(0, 0.1), (10, 0.1), (20, 0.05)]
    texts_ = pd.DataFrame({"step": ["1", "x"], "lr": [0.1, 0.2]})
    assert [(r["step"], r["lr"]) for r in data_rows(spec(charts.lr_chart(texts_)))] == [(0, 0.1), (1, 0.1)]
    assert data_rows(spec(charts.lr_chart(pd.DataFrame({"step": [1]})))) == []


def test_confusion_chart_is_a_heat_map_with_counts_in_class_order():
    classes = ["cat", "dog", "eel"]
    df = charts.confusion_frame([[3, 1, 0], [0, 4, 0], [1, 1, 2]], classes)
    assert len(df) == 9
    cat_dog = df[(df["true"] == "cat") & (df["predicted"] == "dog")].iloc[0]
    assert cat_dog["count"] == 1 and cat_dog["share"] == pytest.approx(0.25)
    d = spec(charts.confusion_chart(df))
    cells, text = d["layer"]
    assert cells["mark"]["type"] == "rect" and text["mark"]["type"] == "text"
    assert cells["encoding"]["x"]["sort"] == classes and cells["encoding"]["y"]["sort"] == classes
    assert cells["encoding"]["color"]["field"] == "share" and text["encoding"]["text"]["field"] == "count"
    assert cells["encoding"]["x"]["axis"]["labelOverlap"] is False, "every class name stays visible"


def test_confusion_frame_survives_an_empty_row():
    df = charts.confusion_frame([[0, 0], [1, 1]], ["a", "b"])
    assert df["share"].tolist() == [0.0, 0.0, 0.5, 0.5]


def test_per_class_and_ood_bars():
    d = spec(charts.per_class_chart(charts.per_class_frame({"cat": 0.9, "dog": 0.5, "eel": float("nan")})))
    bars, inside, after = d["layer"]
    assert bars["mark"]["type"] == "bar" and bars["encoding"]["y"]["sort"] == "-x"
    long = spec(charts.per_class_chart(charts.per_class_frame({"Héron cendré (Ardea cinerea)": 0.8, "pic": 1.0})))
    assert long["layer"][0]["encoding"]["y"]["axis"]["labelLimit"] == charts.CLASS_LABEL_PX[1], "the most it may take"
    assert d["title"] == {"text": "Accuracy per class", "subtitle": charts.PER_CLASS_COLOURS}, "its colours said"
    assert {r["class"] for r in data_rows(d)} == {"cat", "dog"}, "a class without images is left out"
    # each bar's accuracy written beside it: a class at 0% has no bar, and a new user read its row as empty
    assert inside["mark"]["type"] == after["mark"]["type"] == "text"
    assert inside["encoding"]["text"]["field"] == after["encoding"]["text"]["field"] == "label"
    assert [r["label"] for r in data_rows(d)] == ["90%", "50%"], "without counts: the accuracy alone"
    # with the split's images per class, each bar says what it rests on: a student read "Inflamed 100%" for one image
    counted = charts.per_class_frame({"Inflamed": 1.0, "Normal tissue": 0.625, "eel": None},
                                     {"Inflamed": 1, "Normal tissue": 8, "eel": 0})
    assert counted["label"].tolist() == ["100% (1 of 1)", "63% (5 of 8)"] and counted["images"].tolist() == [1, 8]
    d = spec(charts.ood_chart(charts.ood_frame({"gaussian_noise": 0.3, "jpeg": 0.6}), clean_acc=0.8))
    bars, rule = d["layer"]
    assert bars["mark"]["type"] == "bar" and rule["mark"]["type"] == "rule"
    assert {r["corruption"] for r in data_rows(d) if "corruption" in r} == {"Gaussian noise", "JPEG"}, "as people write them"
    assert "layer" not in spec(charts.ood_chart(charts.ood_frame({"jpeg": 0.6}), clean_acc=None))


def test_class_counts_stack_the_splits():
    df = charts.class_counts_frame({"train": {"a": 6, "b": 5}, "val": {"a": 2, "b": 2}, "test": {"a": 2, "b": 1}})
    assert len(df) == 6 and df["images"].sum() == 18
    d = spec(charts.class_counts_chart(df))
    assert d["encoding"]["x"]["aggregate"] == "sum"
    assert d["encoding"]["color"]["scale"]["domain"] == ["train", "val", "test"]
    assert d["height"] == 2 * 22, "one 22-px band per class, however many classes"
    five = charts.class_counts_frame({"train": {c: 3 for c in "abcde"}})
    assert spec(charts.class_counts_chart(five))["height"] == 5 * 22
    # a clinician's "Basal cell carcinoma" read "Basal cell carcino…" at Vega's default limit
    long = charts.class_counts_frame({"train": {"Basal cell carcinoma": 30, "Melanoma": 5}})
    assert spec(charts.class_counts_chart(long))["encoding"]["y"]["axis"]["labelLimit"] == \
        charts.class_label_px(["Basal cell carcinoma"]) > charts.CHAR_PX * len("Basal cell carcinoma")


def test_compare_chart_has_one_line_per_run():
    a = charts.epochs_frame(EPOCHS)
    b = a.assign(val_acc=[0.4, 0.7])
    long = charts.compare_frame({"run A": a, "run B": b, "run C (no curve)": pd.DataFrame()}, "val_acc")
    assert sorted(set(long["run"])) == ["run A", "run B"] and len(long) == 4
    d = spec(charts.compare_chart(long, "val_acc"))
    enc = layer_encodings(d)[0]
    assert enc["color"]["field"] == "run" and enc["y"]["axis"]["format"] == "%"
    assert enc["color"]["scale"]["range"] == list(charts.RUN_COLOURS), "distinct hues, not the theme's two blues"
    assert d["title"] == "Validation accuracy: runs compared"
    assert charts.compare_frame({"x": a}, "no_such_metric").empty
    # two runs at the same values: their points differ in shape, so the one drawn first stays visible
    assert layer_encodings(d)[1]["shape"]["field"] == "run"


def test_a_run_keeps_its_colour_whatever_else_is_compared():
    """A new user's plain run was orange beside two runs and blue beside two others."""
    order = ["r1", "r2", "r3", "r4"]  # every run that can be compared, oldest first
    both = charts.run_colours(order, ["r2", "r4"])
    assert both == {"r2": charts.RUN_COLOURS[1], "r4": charts.RUN_COLOURS[3]}
    assert charts.run_colours(order, ["r4", "r1", "r2"])["r2"] == both["r2"]
    many = [f"r{i}" for i in range(12)]
    picked = charts.run_colours(many, ["r0", "r10"])  # places 0 and 10 share a colour: the later takes the next
    assert picked["r0"] == charts.RUN_COLOURS[0] and picked["r10"] == charts.RUN_COLOURS[1]
    assert charts.run_colours(order, ["new"]) == {"new": charts.RUN_COLOURS[4]}, "not in the order: the newest"
    long = charts.compare_frame({"A": charts.epochs_frame(EPOCHS)}, "val_acc")
    enc = layer_encodings(spec(charts.compare_chart(long, "val_acc", {"A": "#e45756"})))[0]
    assert enc["color"]["scale"] == {"domain": ["A"], "range": ["#e45756"]}


def test_labels_for_known_and_unknown_metrics():
    assert charts.metric_label("val_acc") == "Validation accuracy"
    assert charts.metric_label("ood/gaussian_blur") == "OOD: Gaussian blur"
    from engine.corruptions import CORRUPTION_NAMES, CORRUPTIONS

    assert set(CORRUPTION_NAMES) == set(CORRUPTIONS), "every one named"
    assert charts.metric_label("toy_score") == "Toy score"
    assert charts.is_fraction_metric("robust_acc") and charts.is_fraction_metric("sparsity")
    assert not charts.is_fraction_metric("train_loss")


def test_a_legend_with_a_long_label_gives_each_label_its_own_line():
    """Two legend columns in a half-width chart cut "Robust accuracy (attacked)" to "Robust accuracy (atta", and on a
    1024 px projector "Validation accuracy" beside "Training accuracy" lost its whole label."""
    import pandas as pd

    def columns(df):
        return layer_encodings(spec(charts.accuracy_chart(df)))[0]["color"]["legend"]["columns"]

    three = pd.DataFrame({"epoch": [1, 2], "train_acc": [0.5, 0.6], "val_acc": [0.4, 0.5], "ood_acc": [0.3, 0.4]})
    assert columns(three) == 1
    assert columns(three.assign(robust_acc=[0.2, 0.3])) == 1
    assert max(len(charts.metric_label(m)) for m in ("train_loss", "val_loss")) <= charts.LEGEND_PAIR_CHARS, \
        "short labels keep two columns"


def test_a_metric_keeps_its_colour_whichever_metrics_are_present():
    def colour_of(df, label):
        enc = layer_encodings(spec(charts.accuracy_chart(df)))[0]["color"]["scale"]
        return dict(zip(enc["domain"], enc["range"]))[label]

    full = charts.epochs_frame(EPOCHS)
    only_val = full[["epoch", "val_acc"]]
    assert colour_of(full, "Validation accuracy") == colour_of(only_val, "Validation accuracy")
    assert colour_of(full, "Training accuracy") != colour_of(full, "Validation accuracy")
    dash = layer_encodings(spec(charts.accuracy_chart(full)))[0]["strokeDash"]["scale"]
    dashes = dict(zip(dash["domain"], dash["range"]))
    assert dashes["Training accuracy"] == charts.TRAIN_DASH, "training dashed: light blue alone read as validation"
    assert dashes["Validation accuracy"] == [1, 0] and dashes["OOD accuracy (corrupted)"] == [1, 0]


def test_per_layer_metrics_are_grouped_into_one_bar_chart():
    import pandas as pd

    from app import charts

    df = pd.DataFrame({"epoch": [1, 2], "sparsity": [0.2, 0.5],
                       "pruning/sparsity/layer1.0.conv1": [0.1, 0.4], "pruning/sparsity/layer4.1.conv2": [0.3, 0.6],
                       "ood/jpeg": [0.5, 0.5]})
    assert charts.method_metric_names(df) == ["sparsity"]
    groups = charts.layer_groups(df)
    assert groups == {"pruning/sparsity": ["pruning/sparsity/layer1.0.conv1", "pruning/sparsity/layer4.1.conv2"]}
    spec = charts.layer_bar_chart(df, "pruning/sparsity", groups["pruning/sparsity"]).to_dict()
    values = list(spec["datasets"].values())[0]
    assert spec["mark"]["type"] == "bar" and [v["value"] for v in values] == [0.4, 0.6]
    title = spec["title"] if isinstance(spec["title"], str) else " ".join(spec["title"])  # a long one in lines
    assert title.startswith("Pruning (Fine-Pruning): sparsity per layer"), "the method's title, not its id"
    assert spec["encoding"]["y"]["axis"]["labelOverlap"] is False, "every layer's name is drawn"
    assert spec["encoding"]["y"]["axis"]["labelFlush"] is False, "the first name was pushed onto the second"
    assert spec["padding"]["left"] >= 10, "a browser's wider font cut the first letter of the longest name"
    assert spec["height"] == 2 * 16 and spec["encoding"]["x"]["scale"]["domain"] == [0, 1], "16 px per layer"
    # rows in plain words, the module name in the tooltip (a teacher read "layer2.0.downsample.0" as code)
    assert [v["layer"] for v in values] == ["stage 1 · block 1 · conv 1", "stage 4 · block 2 · conv 2"]
    assert [v["module"] for v in values] == ["layer1.0.conv1", "layer4.1.conv2"]
    assert spec["encoding"]["y"]["sort"] == [v["layer"] for v in values], "input side first, as the network runs"


def test_a_resnet_layer_is_named_in_plain_words_and_any_other_as_it_is():
    from app.charts import layer_label

    assert layer_label("layer2.0.downsample.0") == layer_label("layer2.0.downsample") == "stage 2 · block 1 · shortcut"
    assert layer_label("net.layer3.1.conv2") == "stage 3 · block 2 · conv 2"
    assert layer_label("conv1") == "stem" and layer_label("fc") == "head"
    assert layer_label("features.3.block.0.0") == "features.3.block.0.0", "MobileNetV3's names as they are"


def test_gate_shares_sit_on_a_full_percent_axis_and_gradients_on_their_own():
    import pandas as pd

    from app import charts

    assert charts.is_fraction_metric("adafilter_gate_mean"), "a 0.2-point change of the share must not look steep"
    assert not charts.is_fraction_metric("adafilter_gate_grad")
    df = pd.DataFrame({"epoch": [1], "adafilter/gate_grad/layer1": [3e-4], "adafilter/gate_grad/layer2": [1e-5]})
    spec = charts.layer_bar_chart(df, "adafilter/gate_grad", list(df.columns[1:])).to_dict()
    assert "domain" not in spec["encoding"]["x"]["scale"] and spec["encoding"]["x"]["axis"]["format"] != "%"
    assert "e" not in spec["encoding"]["x"]["axis"]["format"], "a gradient axis read 0e+0, 1e-3: plain decimals"


def test_a_ten_class_confusion_matrix_keeps_to_its_width_budget():
    from app import charts

    classes = [f"class number {i}" for i in range(10)]
    df = charts.confusion_frame([[int(i == j) for j in range(10)] for i in range(10)], classes)
    d = charts.confusion_chart(df, width=300).to_dict()
    assert d["height"] <= 300 and d["layer"][0]["encoding"]["x"]["axis"]["labelLimit"] <= 90
    assert charts.confusion_px(10, 300, classes) <= 300 + charts.CONFUSION_LABELS_PX
    # a long class name gets the room it needs, within CLASS_LABEL_PX, and the chart asks for it
    birds = ["mésange charbonnière", "rouge-gorge", "pic"]
    df = charts.confusion_frame([[1, 0, 0], [0, 1, 0], [0, 0, 1]], birds)
    axes = [charts.confusion_chart(df).to_dict()["layer"][0]["encoding"][k]["axis"]["labelLimit"] for k in "xy"]
    assert axes == [charts.class_label_px(birds)] * 2 and 20 * charts.CHAR_PX <= axes[0] <= charts.CLASS_LABEL_PX[1]
    assert charts.confusion_px(3, 300, birds) - charts.confusion_px(3, 300) == axes[0] - charts.CLASS_LABEL_PX[0]
    assert charts.class_label_px(["x" * 200]) == charts.CLASS_LABEL_PX[1] and charts.class_label_px([]) == 90
    # the chart fills the width Streamlit gives it (at most confusion_px; a narrower column: the column's),
    # so that in a half-page column on a 1000 px window the cells narrow instead of overflowing the column
    assert d["width"] == "container" and d["autosize"]["type"] == "fit-x"


def test_live_views_redraw_less_often_on_a_cpu_only_machine_with_few_cores():
    """The browser drawing the live charts shares a small CPU machine's cores with the run: every 1 s
    on a GPU or 6+ cores, 3 s on 2 cores (where 1 s slowed a dashboard run by a third)."""
    from app.components import LIVE_REFRESH_S, SLOWEST_LIVE_REFRESH_S, live_refresh_s

    assert live_refresh_s(gpu=True, cpus=2) == LIVE_REFRESH_S == 1.0
    assert live_refresh_s(gpu=False, cpus=2) == SLOWEST_LIVE_REFRESH_S == 3.0
    assert live_refresh_s(gpu=False, cpus=1) == 3.0
    assert live_refresh_s(gpu=False, cpus=4) == 1.5
    assert live_refresh_s(gpu=False, cpus=64) == 1.0
    assert 1.0 <= live_refresh_s() <= 3.0  # this machine's


def test_the_server_can_set_the_live_redraw_interval(monkeypatch):
    """STUDIO_LIVE_REFRESH_S (seconds) overrides the automatic interval, within 0.5-60 s; a value that
    is not a number leaves the automatic choice."""
    from app.components import REFRESH_ENV, live_refresh_s

    monkeypatch.setenv(REFRESH_ENV, "1")
    assert live_refresh_s(gpu=False, cpus=2) == 1.0
    monkeypatch.setenv(REFRESH_ENV, " 7.5 ")
    assert live_refresh_s(gpu=True, cpus=64) == 7.5
    monkeypatch.setenv(REFRESH_ENV, "0")
    assert live_refresh_s(gpu=False, cpus=2) == 0.5
    monkeypatch.setenv(REFRESH_ENV, "1e9")
    assert live_refresh_s(gpu=False, cpus=2) == 60.0
    for junk in ("fast", "", "nan", "inf"):
        monkeypatch.setenv(REFRESH_ENV, junk)
        assert live_refresh_s(gpu=False, cpus=2) == 3.0, junk


def test_the_overfitting_check_is_named_in_words_and_its_rollback_marker_is_no_curve():
    from app.charts import method_metric_names, metric_label

    df = pd.DataFrame({"epoch": [1, 2], "val_acc": [0.5, 0.6], "train_pgd_acc": [0.3, 0.1], "co_rollback": [None, 1.0]})
    assert method_metric_names(df) == ["train_pgd_acc"]
    assert metric_label("train_pgd_acc") == "Robust accuracy on training images (overfitting check)"


def test_durations_say_their_units():
    """'0:02' read as two minutes to a new user: a run time says its units."""
    from app.components import fmt_duration

    assert [fmt_duration(s) for s in (2.4, 59.6, 65, 3725, 3600, 0.2, None)] == \
        ["2 s", "1 min", "1 min 5 s", "1 h 2 min", "1 h", "0 s", "–"]


def test_a_methods_tiny_or_huge_figure_reads_without_e_notation():
    """Results showed AdaFilter's gate gradient as '3.217e-05' among the headline figures."""
    from app.components import fmt_number

    assert [fmt_number(v) for v in (3.217e-5, 0.0123, 1.5, 1234.5, 2e6, 0.0, -4e-7, float("inf"))] == \
        ["3.2 × 10⁻⁵", "0.0123", "1.5", "1,234", "2.0 × 10⁶", "0", "-4.0 × 10⁻⁷", "inf"]


def test_per_layer_values_that_say_one_number_or_fill_a_screen_are_told_in_a_line():
    """Pruning at one share per layer drew 52 equal bars of internal layer names: a line says it. Over
    MANY_LAYERS layers of differing values the range is said and the bars fold into an expander."""
    from streamlit.testing.v1 import AppTest

    def page(values):
        import pandas as pd

        from app import components

        df = pd.DataFrame({"epoch": [1], "val_acc": [0.5], "train_loss": [1.0],
                           **{f"pruning/sparsity/features.{i}.conv": [v] for i, v in enumerate(values)}})
        components.curves_view(components.RunView("r", "run", "finished", None, {}, "/nonexistent", epochs=df))

    def bars(at):
        return [c for c in (at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart"))
                if "sparsity per layer" in str(c.proto.spec)]

    alike = AppTest.from_function(page, args=([0.7] * 52,)).run()
    assert not alike.exception and not bars(alike)
    assert any("70.0% in every one of the 52 layers" in c.value for c in alike.caption)
    near = AppTest.from_function(page, args=([0.7] * 50 + [0.7031, 0.6992],)).run()  # small layers round apart
    assert any("69.9% to 70.3% in every one of the 52 layers" in c.value for c in near.caption), \
        [c.value for c in near.caption]
    many = AppTest.from_function(page, args=([0.4 + 0.01 * i for i in range(40)],)).run()
    assert not many.exception and any("From 40.0% to 79.0% across 40 layers" in c.value for c in many.caption)
    assert len(many.expander) == 1 and len(bars(many)) == 1, "the bars, folded"
    few = AppTest.from_function(page, args=([0.3, 0.6, 0.9],)).run()
    assert not few.exception and len(bars(few)) == 1 and not few.expander, "a few layers: the chart itself"


def test_a_one_metric_chart_has_no_legend_repeating_its_title():
    import pandas as pd

    from app import charts

    df = pd.DataFrame({"epoch": [1, 2], "sparsity": [0.2, 0.5]})
    spec = charts.method_metric_chart(df, "sparsity").to_dict()
    assert spec["layer"][0]["encoding"]["color"]["legend"] is None
    assert spec["title"] == "Sparsity (share of zero weights) per epoch", spec["title"]
    pair = charts.accuracy_chart(pd.DataFrame({"epoch": [1], "val_acc": [0.5], "train_acc": [0.6]})).to_dict()
    assert pair["layer"][0]["encoding"]["color"]["legend"] is None, "a pair is named at its curves' ends"
    words = [layer["encoding"]["text"] for layer in pair["layer"] if "text" in layer.get("encoding", {})]
    assert words, "the words at the ends are drawn"
    three = charts.accuracy_chart(pd.DataFrame({"epoch": [1], "val_acc": [0.5], "train_acc": [0.6],
                                                "ood_acc": [0.4]})).to_dict()
    assert three["layer"][0]["encoding"]["color"]["legend"] is not None, "a curve not named at its end: a legend"
    # every layer, the words at the ends included, asks the same of the legend: Vega warned of a
    # "conflicting legend property" when the lines had it and the words had it off
    for chart in (pair, three):
        legends = [enc["color"].get("legend", "default") for enc in layer_encodings(chart) if "color" in enc]
        assert len(legends) > 2 and all(x == legends[0] for x in legends), legends


def test_a_top_k_chart_says_when_it_leaves_classes_out():
    """Try it showed 3 of a model's 4 classes with nothing saying the fourth was left out."""
    from app import charts

    df = charts.topk_frame([("apples", 0.7), ("limes", 0.2), ("plums", 0.05)])
    title = charts.topk_chart(df, threshold=0.5, classes=4).to_dict()["layer"][0]["encoding"]["x"]["title"]
    assert title == "Top 3 of 4 classes: probability (red dashes: unsure under 50%)", title
    whole = charts.topk_chart(df, threshold=0.5, classes=3).to_dict()["layer"][0]["encoding"]["x"]["title"]
    assert whole == "Probability (red dashes: unsure under 50%)"
    # under a narrow chart's axis ("Probability"), the caption adds only what the axis does not say
    assert charts.topk_words(3, 0.5, 4, under_axis=True) == "Top 3 of 4 classes; red dashes: unsure under 50%"
    assert charts.topk_words(3, 0.5, 3, under_axis=True) == "Red dashes: unsure under 50%"
    assert charts.topk_words(3, None, 3, under_axis=True) == ""
    # a clinician's "Seborrhoeic keratosis" read "Seborrhoeic kera…": a chart of its own gives the names their room
    long = charts.topk_frame([("Melanoma", 0.55), ("Seborrhoeic keratosis", 0.45)])
    limit = charts.topk_chart(long).to_dict()["layer"][0]["encoding"]["y"]["axis"]["labelLimit"]
    assert limit == charts.class_label_px(["Seborrhoeic keratosis"]) > charts.CLASS_LABEL_PX[0]
    narrow = charts.topk_chart(long, words_on_axis=False).to_dict()["layer"][0]["encoding"]["y"]["axis"]["labelLimit"]
    assert narrow == charts.CLASS_LABEL_PX[0], "side by side, the bars keep their room"


def test_a_bar_just_under_the_unsure_line_is_not_labelled_as_the_line():
    """A new user's top bar read "50%" on the red 50% line beside "has only 49.7% probability, under 50%"."""
    from app import charts

    df = charts.topk_frame([("triangle", 0.497), ("circle", 0.3), ("square", 0.203)])
    spec = charts.topk_chart(df, threshold=0.5).to_dict()
    text = next(layer for layer in spec["layer"] if layer["mark"].get("type") == "text")
    assert text["encoding"]["text"]["field"] == "shown"
    rows = next(iter(spec["datasets"].values()))
    assert [r["shown"] for r in rows] == ["49.7%", "30%", "20%"], rows


def test_a_run_summary_is_parsed_once_per_version_of_the_file(tmp_path, monkeypatch):
    """Pages listing many runs read every run's summary.json on each rerun: the same file is parsed
    once, a rewritten one (a finished run's claim added) is read again, a missing or broken one is {}."""
    import json as json_

    from app import components

    (tmp_path / "summary.json").write_text(json_.dumps({"test_acc": 0.5}))
    parsed = []
    real_loads = json_.loads
    monkeypatch.setattr(components.json, "loads", lambda text: parsed.append(text) or real_loads(text))
    first = components.read_summary(str(tmp_path))
    assert first == {"test_acc": 0.5} and components.read_summary(str(tmp_path)) is first
    assert len(parsed) == 1
    (tmp_path / "summary.json").write_text(json_.dumps({"test_acc": 0.75, "classes": ["a", "b"]}))
    assert components.read_summary(str(tmp_path)) == {"test_acc": 0.75, "classes": ["a", "b"]}
    (tmp_path / "summary.json").write_text("{not json")
    assert components.read_summary(str(tmp_path)) == {}
    assert components.read_summary(str(tmp_path / "missing")) == {}


def test_a_long_per_layer_chart_title_is_drawn_in_lines_not_cut():
    columns = ["adafilter/gate_mean/layer1.0.conv1", "adafilter/gate_mean/layer1.0.conv2"]
    df = pd.DataFrame({"epoch": [1], columns[0]: [0.5], columns[1]: [0.6]})
    title = charts.layer_bar_chart(df, "adafilter/gate_mean", columns).to_dict()["title"]
    long = f"{charts.group_title('adafilter/gate_mean')} per layer (epoch 1)"
    assert len(long) > 44 and isinstance(title, list) and " ".join(title) == long, title
    assert all(len(line) <= 44 for line in title)
    assert charts.title_lines("Sparsity per layer (epoch 3)") == "Sparsity per layer (epoch 3)"


def test_a_training_curve_and_its_validation_twin_are_named_at_their_ends():
    """New users told the training and validation curves apart by shade, dashes and hollow points alone: each
    pair's curves say "training" and "validation" beside their last points, the higher one's words above."""
    import pandas as pd

    df = pd.DataFrame({"epoch": [1, 2, 3], "train_acc": [0.5, 0.7, 0.9], "val_acc": [0.4, 0.6, 0.9],
                       "ood_acc": [0.3, 0.4, 0.5], "train_loss": [1.0, 0.6, 0.3], "val_loss": [1.2, 1.0, 0.9]})
    ends = charts.pair_end_labels(charts.long_frame(df, charts.ACCURACY_METRICS))
    assert ends[["metric", "epoch", "value", "end_label"]].values.tolist() == [
        ["train_acc", 3, 0.9, "training"], ["val_acc", 3, 0.9, "validation"]]
    assert ends["above"].tolist() == [True, False], "a tie: one above, one below, never both on one line"
    loss = charts.pair_end_labels(charts.long_frame(df, charts.LOSS_METRICS))
    assert dict(zip(loss["end_label"], loss["above"])) == {"training": False, "validation": True}
    # the WiSE-FT demo's epoch 3 (a new user's screenshot): validation at 16% just above OOD at 15% and far below
    # training at 90%: its words go above its point, not onto the OOD point
    fell = pd.DataFrame({"epoch": [2, 3], "train_acc": [0.95, 0.9], "val_acc": [0.48, 0.156], "ood_acc": [0.4, 0.15]})
    ends = charts.pair_end_labels(charts.long_frame(fell, charts.ACCURACY_METRICS))
    assert dict(zip(ends["end_label"], ends["above"])) == {"training": True, "validation": True}
    crowded = fell.assign(ood_acc=[0.4, 0.19])  # OOD just above validation: below it, as before
    ends = charts.pair_end_labels(charts.long_frame(crowded, charts.ACCURACY_METRICS))
    assert dict(zip(ends["end_label"], ends["above"])) == {"training": True, "validation": False}
    # a photographer's epoch 7: training 43% just above macro-F1 (42%), validation 48% just under balanced (49%):
    # the room beside the other curves sent "training" up and "validation" down, into each other
    close = pd.DataFrame({"epoch": [6, 7], "train_acc": [0.321, 0.429], "val_acc": [0.143, 0.476],
                          "val_balanced_acc": [0.144, 0.486], "val_macro_f1": [0.078, 0.42]})
    ends = charts.pair_end_labels(charts.long_frame(close, charts.ACCURACY_METRICS))
    assert dict(zip(ends["end_label"], ends["above"])) == {"training": False, "validation": True}

    layers = spec(charts.accuracy_chart(df))["layer"]
    texts = [layer for layer in layers if layer["mark"]["type"] == "text"]
    assert len(texts) == 2 and {t["mark"]["dy"] for t in texts} == {-8, 9}
    assert texts[0]["encoding"]["text"]["field"] == "end_label"
    # no pair, no words: validation alone, a method's metric, the per-step loss
    for lone in (charts.accuracy_chart(df[["epoch", "val_acc", "ood_acc"]]),
                 charts.method_metric_chart(pd.DataFrame({"epoch": [1, 2], "sparsity": [0.2, 0.5]}), "sparsity"),
                 charts.step_loss_chart(pd.DataFrame({"step": [1, 2], "loss": [1.0, 0.8]}))):
        assert not [layer for layer in spec(lone)["layer"] if layer["mark"]["type"] == "text"]


def test_no_layer_is_filtered_empty():
    """A layer whose filter keeps no row makes Vega warn "Infinite extent" in the browser's console: the
    training curves' layers only when a training curve is drawn, each per-class label layer only when a
    class is on its side of 80%."""
    df = charts.epochs_frame(EPOCHS)
    held_out_only = spec(charts.metric_lines(df, ["val_acc", "ood_acc"], "Accuracy", "Accuracy", percent=True))
    filters = [t["filter"] for layer in held_out_only["layer"] for t in layer.get("transform", [])]
    assert len(held_out_only["layer"]) == 4 and not any("train_" in f and not f.startswith("!(") for f in filters), \
        filters
    pair = spec(charts.metric_lines(df, ["train_acc", "val_acc"], "Accuracy", "Accuracy", percent=True))
    assert len(pair["layer"]) == 6, "both curves, their points, the words at their ends"
    for per_class, marks in (({"cat": 0.9, "dog": 0.95}, ["bar", "text"]), ({"cat": 0.2}, ["bar", "text"]),
                             ({"cat": 0.9, "dog": 0.5}, ["bar", "text", "text"])):
        d = spec(charts.per_class_chart(charts.per_class_frame(per_class)))
        assert [layer["mark"]["type"] for layer in d["layer"]] == marks, per_class


def test_the_accuracy_chart_says_why_the_first_whole_network_epoch_fell():
    """A live run's chart after the demo's head-only epochs: the fall in epoch 3 is explained under it."""
    from streamlit.testing.v1 import AppTest

    def page(status, probe):
        import pandas as pd

        from app import components

        df = pd.DataFrame({"epoch": [1, 2, 3], "val_acc": [0.492, 0.484, 0.156], "val_loss": [1.43, 1.46, 11.07],
                           "train_loss": [0.59, 0.54, 2.42], "train_acc": [0.953, 0.948, 0.41]})
        config = {"train": {"epochs": 20}, "optim": {"lr": 0.02, "momentum": 0.9, "linear_probe_epochs": probe or 0}}
        progress = {"probe_epochs": probe} if probe is not None else {}  # the engine's record of them
        components.curves_view(components.RunView("r", "run", status, None, config, "/nonexistent", progress, df))

    def notes(at):
        return [c.value for c in at.caption if "the first in which the whole network learnt" in c.value]

    running = AppTest.from_function(page, args=("running", 2)).run()
    assert not running.exception
    (note,) = notes(running)
    assert "from 48% to 16%" in note and "(effective 0.2)" in note and "next epochs show" in note
    gap = [c.value for c in running.caption if "only the new head, training accuracy (95%)" in c.value]
    assert len(gap) == 1 and "48%" in gap[0], "the head-only epochs' gap is said too"
    assert running.caption.values.index(gap[0]) < running.caption.values.index(note), "in the order of the epochs"
    assert not notes(AppTest.from_function(page, args=("running", 0)).run()), "no head-only epochs: no such note"
    unrecorded = AppTest.from_function(page, args=("running", None)).run()  # a run from before the record
    assert not unrecorded.exception and not notes(unrecorded), "no guess at what an older engine ran"


def test_the_loss_chart_says_why_validation_loss_jumped_with_that_epochs_learning_rate():
    """An agronomist's loss chart jumped from 1.29 to 3.57 at epoch 5 with no word on it; the note under the loss
    chart gives the rate the run's logged steps used in that epoch."""
    from streamlit.testing.v1 import AppTest

    def page(with_steps, overshoot_said=False):
        import pandas as pd

        from app import components

        df = pd.DataFrame({"epoch": [1, 2, 3, 4, 5, 6], "val_loss": [1.0, 1.24, 1.01, 1.29, 3.57, 1.2],
                           "train_loss": [0.92, 0.71, 0.6, 0.25, 0.53, 0.3], "val_acc": [0.4, 0.4, 0.6, 0.6, 0.5, 0.6]})
        steps = pd.DataFrame({"step": [1, 2, 3, 4, 5, 6], "epoch": [4, 4, 5, 5, 6, 6],
                              "lr": [0.01, 0.01, 0.009, 0.0088, 0.008, 0.008]}) if with_steps else pd.DataFrame()
        config = {"train": {"epochs": 20}, "optim": {"lr": 0.01, "momentum": 0.9}}
        components.curves_view(components.RunView("r", "run", "finished", None, config, "/nonexistent",
                                                  {"probe_epochs": 2}, df, steps), overshoot_said=overshoot_said)

    at = AppTest.from_function(page, args=(True,)).run()
    assert not at.exception
    (note,) = [c.value for c in at.caption if "Validation loss jumped" in c.value]
    assert note.startswith("Validation loss jumped at epoch 5, from 1.29 to 3.57 (2.8 times)") and \
        "at that epoch's learning rate (0.0089)" in note and "back to 1.29 or lower by epoch 6" in note, note
    bare = AppTest.from_function(page, args=(False,)).run()
    (note,) = [c.value for c in bare.caption if "Validation loss jumped" in c.value]
    assert "steps overshot" in note and "learning rate (" not in note, "no logged steps: no rate guessed"
    # Results warns above that training was unstable (the steps overshot): the chart's note is not said twice, as
    # `train` prints the warning alone
    warned = AppTest.from_function(page, args=(True, True)).run()
    assert not warned.exception and not [c for c in warned.caption if "Validation loss jumped" in c.value]


def test_compare_says_which_runs_fell_in_their_first_whole_network_epoch(tmp_path):
    """The Compare tab's validation curve: a run whose epoch 3 fell after 2 head-only epochs is named under
    it with the fall (the Train and Results charts explained it; Compare showed the dip alone)."""
    import json

    from streamlit.testing.v1 import AppTest

    for name, probe in (("wise", 2), ("plain", 0), ("older", None)):  # "older": a run from before the record
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps({} if probe is None else {"probe_epochs": probe}))

    def page(root):
        from types import SimpleNamespace

        import pandas as pd

        from app.app_pages.results import compare_curves

        fell = pd.DataFrame({"epoch": [1, 2, 3, 4], "val_acc": [0.492, 0.484, 0.156, 0.5], "val_loss": [1.4, 1.5, 11, 1]})
        curves = {"WiSE-FT demo": fell, "plain run": fell, "older run": fell}
        recs = {label: SimpleNamespace(id=d, run_dir=f"{root}/{d}") for label, d in
                zip(curves, ("wise", "plain", "older"))}
        compare_curves(curves, recs)

    at = AppTest.from_function(page, args=(str(tmp_path),)).run()
    assert not at.exception
    (note,) = [c.value for c in at.caption if "first in which the whole network learnt" in c.value]
    assert note == ("WiSE-FT demo: validation accuracy fell from 48% to 16% in epoch 3, the first in which the "
                    "whole network learnt after 2 head-only epochs. The run's One run view says why.")
    at.selectbox(key="compare_metric").set_value("val_loss").run()
    assert [c.value for c in at.caption if "whole network learnt" in c.value], "the loss curve shows the same epoch"


def test_epoch_axes_start_at_the_first_epoch():
    """20-epoch charts had an axis from 0, an epoch there never is."""
    import pandas as pd

    from app import charts

    df = pd.DataFrame({"epoch": [1, 2, 3], "val_acc": [0.5, 0.6, 0.7], "train_acc": [0.6, 0.7, 0.8]})
    for chart in (charts.accuracy_chart(df).to_dict(), charts.compare_chart(
            pd.DataFrame({"epoch": [1, 2], "value": [0.5, 0.6], "run": ["a", "a"]}), "val_acc").to_dict()):
        for enc in layer_encodings(chart):
            if enc.get("x", {}).get("field") == "epoch" and "scale" in enc["x"]:
                assert enc["x"]["scale"]["zero"] is False and enc["x"]["scale"]["nice"] is False
        assert any("scale" in enc.get("x", {}) for enc in layer_encodings(chart))


def test_charts_over_the_same_epochs_share_their_ticks_and_keep_their_end_points():
    """The loss and accuracy charts side by side read 2, 4 ... 12 and 1 ... 12 (Vega chose by each plot's width), and
    Compare's last point sat half outside the plot."""
    import pandas as pd

    from app import charts

    df = pd.DataFrame({"epoch": range(1, 13), "val_acc": 0.5, "train_acc": 0.6, "val_loss": 1.0, "train_loss": 0.9})
    runs = pd.DataFrame({"epoch": range(1, 21), "value": 0.5, "run": "a"})
    axes = []
    for chart in (charts.loss_chart(df), charts.accuracy_chart(df), charts.compare_chart(runs, "val_acc")):
        xs = [enc["x"] for enc in layer_encodings(chart.to_dict()) if "axis" in enc.get("x", {})]
        assert xs and all(x["scale"]["padding"] > 0 for x in xs if "scale" in x), xs
        axes.append(xs[0]["axis"]["values"])
    assert axes == [list(range(1, 13)), list(range(1, 13)), list(range(2, 21, 2))], axes
    assert charts.count_ticks(range(0, 1201)) == list(range(0, 1201, 200)) and charts.count_ticks([]) == []


def test_a_method_metric_without_any_value_yet_gets_no_chart():
    """A column a method logs only later (all empty so far) drew an empty chart, and Vega warned of an
    "Infinite extent" on the Train page as a run began."""
    import pandas as pd

    from app import charts

    df = pd.DataFrame({"epoch": [1, 2], "val_acc": [0.5, 0.6], "sparsity": [0.1, 0.3], "gate_spread": [None, None]})
    assert charts.method_metric_names(df) == ["sparsity"]
    df.loc[1, "gate_spread"] = 0.2
    assert charts.method_metric_names(df) == ["sparsity", "gate_spread"]
    empty = charts.accuracy_chart(pd.DataFrame({"epoch": [], "val_acc": [], "train_acc": []})).to_dict()
    assert "layer" not in empty and empty["mark"]["type"] == "text", "no axes over nothing: words"



def test_a_long_confusion_matrix_title_goes_on_lines_as_wide_as_the_chart():
    """"Confusion matrix (the smaller model, t" was cut over three classes' cells."""
    df = charts.confusion_frame([[4, 0, 0], [0, 4, 0], [0, 0, 4]], ["circle", "square", "triangle"])
    title = charts.confusion_chart(df, "Confusion matrix (the smaller model, test images)").to_dict()["layer"][0]["title"]
    assert isinstance(title["text"], list) and " ".join(title["text"]) == "Confusion matrix (the smaller model, test images)"
    assert charts.confusion_chart(df).to_dict()["layer"][0]["title"]["text"] == "Confusion matrix"
    # at 8 px a bold character: a teacher's Explain page on a 1024 px window cut "... mix" and the closing bracket
    long = "Confusion matrix of the WiSE-FT mix at alpha 0.30 (validation images)"
    lines = charts.confusion_chart(df, long, width=240).to_dict()["layer"][0]["title"]["text"]
    assert max(len(line) for line in lines) * 8 <= charts.confusion_px(3, 240), lines


def test_an_ood_curve_equal_to_validation_leaves_the_validation_curve_in_sight():
    """A new user's run whose corruptions changed no answer drew OOD accuracy exactly over validation, which
    vanished under it: validation is drawn first and wider, with larger points, the other held-out curves
    thinner on top, so both show where they meet; a lone held-out curve keeps the plain line."""
    import pandas as pd

    df = pd.DataFrame({"epoch": [1, 2], "train_acc": [0.6, 0.9], "val_acc": [0.5, 0.7], "ood_acc": [0.5, 0.7]})
    layers = spec(charts.accuracy_chart(df))["layer"]
    drawn = [(layer["mark"]["type"], layer["mark"].get("strokeWidth"), layer["mark"].get("size"),
              layer["transform"][0]["filter"]) for layer in layers if layer["mark"]["type"] != "text"]
    assert [d[0] for d in drawn] == ["line", "point", "line", "point", "line", "point"]
    (v_line, v_point, o_line, o_point) = drawn[:4]
    assert v_line[3] == v_point[3] == "datum.metric === 'val_acc'" and "!(datum.metric === 'val_acc')" in o_line[3]
    assert v_line[1] > o_line[1] and v_point[2] > o_point[2], "the one underneath is the wider"
    lone = spec(charts.accuracy_chart(df[["epoch", "val_acc"]]))["layer"]
    assert [layer["mark"].get("strokeWidth") for layer in lone if layer["mark"]["type"] == "line"] == [None]


def test_adafilters_gate_share_in_head_only_epochs_is_said_to_be_their_start(tmp_path):
    """A teacher read 73% fine-tuned filters at epoch 1 of the AdaFilter demo as filters fine-tuned while only the
    head trained: under the chart, the head-only epochs' share is said to be where the gates start."""
    from types import SimpleNamespace

    import pandas as pd

    from app.components import gate_probe_note

    epochs = pd.DataFrame({"epoch": [1, 2, 3], "adafilter_gate_mean": [0.731, 0.733, 0.75]})
    run = SimpleNamespace(progress={"probe_epochs": 2}, run_dir=str(tmp_path), epochs=epochs)
    note = gate_probe_note(run)
    assert note.startswith("In epochs 1-2 only the new head trains: the gates stay near where they start (73% "), note
    assert gate_probe_note(SimpleNamespace(progress={"probe_epochs": 0}, run_dir=str(tmp_path), epochs=epochs)) is None
    plain = SimpleNamespace(progress={"probe_epochs": 2}, run_dir=str(tmp_path), epochs=epochs[["epoch"]])
    assert gate_probe_note(plain) is None, "a run without AdaFilter"


def test_y_axis_labels_sit_on_their_grid_lines():
    """Streamlit's chart theme flushes an axis's first and last labels inside it: "100%" sat below the line the
    points at 100% lie on, "0%" above its own. Every chart the studio draws turns that off for its y-axes."""
    import altair as alt
    import pandas as pd

    from app import charts

    df = pd.DataFrame({"epoch": [1, 2], "val_acc": [0.5, 1.0], "train_acc": [0.4, 1.0]})
    spec = charts.accuracy_chart(df).to_dict()
    assert spec["config"]["axisY"]["labelFlush"] is False
    assert alt.Chart(df).mark_point().encode(y="val_acc:Q").to_dict()["config"]["axisY"]["labelFlush"] is False


def test_the_dashboard_draws_a_chart_without_the_schema_check_and_sends_the_same_spec(monkeypatch):
    """app.vega hands Streamlit a copy whose to_dict() skips Altair's jsonschema validation: the same spec
    for a valid chart, no check at all (an invalid one passes through), and the chart given is left as it was."""
    import streamlit as st
    from altair.utils.schemapi import SchemaValidationError

    from app import vega

    quick = getattr(vega._unvalidated, "__wrapped__", vega._unvalidated)  # tests/conftest.py wraps it with a check
    chart = charts.accuracy_chart(pd.DataFrame(EPOCHS))
    assert quick(chart).to_dict() == chart.to_dict()
    checks = []
    monkeypatch.setattr(alt.utils.schemapi.SchemaBase, "validate",
                        classmethod(lambda cls, *a, **k: checks.append(cls.__name__)))
    chart.to_dict()
    assert type(chart).__name__ in checks  # the whole spec, checked by default
    checks.clear()
    quick(chart).to_dict()
    assert type(chart).__name__ not in checks, "the whole spec is not checked on the dashboard's path"
    monkeypatch.undo()
    wrong = alt.Chart(pd.DataFrame({"a": [1]})).mark_bar().encode(x="a:Q")
    wrong.width = {"no": "such"}  # set without the check .properties() makes
    with pytest.raises(SchemaValidationError):
        wrong.to_dict()
    assert quick(wrong).to_dict()["width"] == {"no": "such"}
    with pytest.raises(SchemaValidationError):
        wrong.to_dict()  # the chart passed in still validates for everyone else
    drawn = []
    monkeypatch.setattr(st, "altair_chart", lambda c, **kw: drawn.append((c, kw)) or "state")
    assert vega.altair_chart(chart, width="stretch") == "state"
    (sent, kw), = drawn
    assert sent is not chart and kw == {"width": "stretch"} and sent.to_dict() == chart.to_dict()
