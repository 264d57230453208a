"""Chart builders: pure functions, a pandas DataFrame in, an Altair chart out.

No Streamlit here, so tests can check the specs (`chart.to_dict()`) without a browser. Helpers
at the top turn engine records (snapshot epochs, store metric rows, summary dicts) into frames.
"""

from __future__ import annotations

import math
import re
import textwrap
from typing import Any, Iterable, Mapping, Sequence

import altair as alt
import pandas as pd

from engine.corruptions import corruption_name
from engine.words import percent, percent_half_up

# Friendly names for the metrics the engine and the methods log. Unknown names are humanised.
METRIC_LABELS = {
    "train_loss": "Training loss",
    "val_loss": "Validation loss",
    "loss": "Loss (per step)",
    "train_acc": "Training accuracy",
    "val_acc": "Validation accuracy",
    "val_balanced_acc": "Balanced accuracy (validation)",
    "val_macro_f1": "Macro-F1 (validation)",
    "test_balanced_acc": "Balanced accuracy (test)",
    "test_macro_f1": "Macro-F1 (test)",
    "test_acc": "Test accuracy",
    "ood_acc": "OOD accuracy (corrupted)",
    "ood_user_acc": "OOD accuracy (your OOD set)",
    "robust_acc": "Robust accuracy (attacked)",  # short: two legend columns fit a half-width chart
    # adversarial fine-tuning's catastrophic-overfitting check (PGD-10 on a fixed set of training images)
    "train_pgd_acc": "Robust accuracy on training images (overfitting check)",
    "sparsity": "Sparsity (share of zero weights)",
    "images_per_sec": "Training speed (images/s)",
    "lr": "Learning rate",
    "adafilter_gate_mean": "AdaFilter: fine-tuned filters",
    "adafilter_gate_grad": "AdaFilter: gate gradient",
}
# Per-layer groups (`<method>/<what>`) whose words are not the key's
GROUP_TITLES = {
    "adafilter/gate_mean": "AdaFilter: filters using their fine-tuned copy",
    "adafilter/gate_grad": "AdaFilter: gradient reaching the gates",
}
# One colour per metric on every chart: training pale, validation strong, shifts and attacks warm.
METRIC_COLORS = {
    "train_loss": "#9ecae1", "val_loss": "#1f77b4", "loss": "#1f77b4",
    "train_acc": "#9ecae1", "val_acc": "#1f77b4", "ood_acc": "#ff7f0e", "ood_user_acc": "#9467bd",
    "robust_acc": "#d62728", "sparsity": "#2ca02c", "val_balanced_acc": "#17becf", "val_macro_f1": "#8c564b",
}
TRAIN_DASH = [5, 3]  # training curves are dashed: their light blue alone was hard to tell from validation's blue
OTHER_COLORS = ("#2ca02c", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
LOSS_METRICS = ("train_loss", "val_loss")
# Order matters: the legend and colours follow it.
# Balanced accuracy and macro-F1 are logged only when the classes are imbalanced.
ACCURACY_METRICS = ("train_acc", "val_acc", "val_balanced_acc", "val_macro_f1", "ood_acc", "ood_user_acc", "robust_acc")
# co_rollback marks the epoch a catastrophic-overfitting rollback ended the run: an event, which the
# Results page states in words, not a curve
NOT_PLOTTED = {"epoch", "step", "images_per_sec", "loss", "lr", "co_rollback"}


@alt.theme.register("studio", enable=True)
def studio_theme() -> alt.theme.ThemeConfig:
    """Every chart's y-axis labels centred on their grid lines: Streamlit's theme flushes the first and last label
    inside the axis, so "100%" sat below the line that points at 100% lie on and "0%" above its own (a teacher read
    the points as off their lines). Merged under each chart's own config (Altair themes)."""
    return alt.theme.ThemeConfig(config={"axisY": {"labelFlush": False}})


# Streamlit fits a whole chart (axes, legend, title) into its height by default, which squeezes
# the plot; "fit-x" fits only the width, so `height` is the plot's own height.
FIT_WIDTH = alt.AutoSizeParams(type="fit-x", contains="padding")
LEGEND = dict(orient="bottom", columns=2, labelLimit=320, title=None)
# one label per layer row, every one drawn, names up to 180 px; labelFlush off: Vega pushed the first label
# against the plot's top edge, onto the second one, in 14-16 px rows
LAYER_NAMES = alt.Axis(labelOverlap=False, labelLimit=180, labelFlush=False)
_RESNET_LAYER = re.compile(r"(?:net\.)?layer(\d+)\.(\d+)\.(?:conv(\d+)|(downsample)(?:\.0)?)")


def layer_label(name: str) -> str:
    """A ResNet layer's module name in plain words for the per-layer charts' rows: "layer2.0.conv1" -> "stage 2 ·
    block 1 · conv 1", "layer2.0.downsample(.0)" -> "stage 2 · block 1 · shortcut" (the 1x1 convolution on the
    skip path), "conv1" -> "stem", "fc" -> "head"; any other name (MobileNetV3's) as it is. A teacher read
    "layer2.0.downsample.0" as internal code; the module name stays in each row's tooltip."""
    found = _RESNET_LAYER.fullmatch(name)
    if found:
        part = f"conv {found[3]}" if found[3] else "shortcut"
        return f"stage {found[1]} · block {int(found[2]) + 1} · {part}"
    return {"conv1": "stem", "net.conv1": "stem", "fc": "head", "net.fc": "head"}.get(name, name)


def layer_rows(df: pd.DataFrame, order: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    """`df` (a "layer" column of module names) with "layer" in plain words (`layer_label`) and the module name
    in "module", and `order` (module names) as the labels' sort order."""
    return df.assign(module=df["layer"], layer=df["layer"].map(layer_label)), [layer_label(n) for n in order]


# room left of the longest layer name: Vega sizes the axis by its own text measure, and a browser whose font is a
# few pixels wider cut the first letter ("ayer3.0.downsample.0")
LAYER_PADDING = {"left": 12, "top": 5, "right": 5, "bottom": 5}
# epochs and steps count from 1: an axis from the first to the last, not from 0 (a quantitative axis
# starts at zero by default, and 20-epoch charts began at an epoch 0 there never is)
# (padding: a few pixels beyond the first and last epoch, so that their points are not cut in half at the edges)
COUNT_AXIS = alt.Scale(zero=False, nice=False, padding=8)
TICK_STEPS = (1, 2, 5)  # x 10^k: whole-number tick steps


def count_ticks(values: Iterable[float], most: int = 12) -> list[int]:
    """Tick positions for an axis of counts (epochs, steps) from the first to the last of `values`: the
    multiples of the smallest step of 1, 2, 5, 10, 20, 50 ... that leaves at most `most` ticks ([] for no
    values). Given, not chosen by Vega for each plot's width: the loss and accuracy charts side by side read
    2, 4 ... 12 and 1 ... 12 over the same epochs."""
    finite = [float(v) for v in values if _finite(v)]
    if not finite:
        return []
    lo, hi = math.ceil(min(finite)), math.floor(max(finite))
    scale = 1
    while True:
        for step in (k * scale for k in TICK_STEPS):
            ticks = list(range(-(-lo // step) * step, hi + 1, step))
            if len(ticks) <= most:
                return ticks
        scale *= 10


TITLE_CHARS = 48  # a chart title longer than this is cut in a half-width chart at 1280 px
# longer labels get a line each: a half-width chart cut "Robust accuracy (atta" in two columns, and on a 1024 px
# projector "Validation accuracy" beside "Training accuracy" lost its whole label
LEGEND_PAIR_CHARS = 16


def rows_height(rows: int, px: int) -> int:
    """The plot height in px for `rows` bands of `px` each (at least one). A fixed height rather than a
    Vega-Lite step height: with one, Vega warned 'Dropping "fit-y"' on every bar chart (the dashboard's
    theme asks charts to fit both ways); the bands come out the same size."""
    return px * max(1, int(rows))


def epoch_subset_caption(config: Mapping[str, Any] | None, measured: Mapping[str, Any] | None = None) -> str | None:
    """What the per-epoch OOD and robust curves are measured on, from a run's config dict (the
    engine's epoch_sets: eval.ood_subset_each_epoch class-balanced validation images at
    eval.ood_severity_each_epoch; PGD with min(eval.robust_steps_each_epoch, eval.robust_steps)
    steps on eval.robust_subset images). `measured` is the run's own count (the summary's or the
    progress's `epoch_eval`: ood_images, robust_images), which is smaller when the validation split
    is. None when neither is measured."""
    ev = dict((config or {}).get("eval") or {})
    measured = measured or {}
    parts = []
    if ev.get("ood", True) and ev.get("ood_severity_each_epoch", 3):
        n = int(ev.get("ood_subset_each_epoch", 0) or 0)
        got = measured.get("ood_images")
        if n and isinstance(got, int) and got < n:
            where = f"all {got} validation images"
        else:
            where = f"a fixed, class-balanced subset of {n} validation images" if n else "all validation images"
        parts.append(f"OOD accuracy per epoch: every corruption at severity {ev.get('ood_severity_each_epoch', 3)} "
                     f"on {where}; the end of the run measures all images at severities 1-5")
    adversarial = dict((config or {}).get("adversarial") or {}).get("enabled", False)
    if ev.get("robust") or adversarial:
        steps = min(int(ev.get("robust_steps_each_epoch", 5)), int(ev.get("robust_steps", 20)))
        n_robust = measured.get("robust_images") or ev.get("robust_subset", 64)
        eps = f" at eps {255 * float(ev.get('robust_eps', 4 / 255)):.1f}/255"  # the same budget at both
        parts.append(f"robust accuracy per epoch: PGD-{steps}{eps} on {n_robust} validation images (an attack that "
                     f"nudges each image {steps} times toward a wrong answer, each pixel by at most eps of its 255 "
                     f"levels); the end of the run uses PGD-{ev.get('robust_steps', 20)}{eps} on the test split")
    if not parts:
        return None
    return " ".join(p[0].upper() + p[1:] + "." for p in parts)


def metric_label(name: str) -> str:
    """A metric's name as charts show it ("val_acc" -> "Validation accuracy", "ood/jpeg" -> "OOD: JPEG"); an unknown
    name with "_" as spaces, capitalised."""
    if name in METRIC_LABELS:
        return METRIC_LABELS[name]
    if name.startswith("ood/"):
        return "OOD: " + corruption_name(name[4:])
    return name.replace("_", " ").capitalize()


def is_fraction_metric(name: str) -> bool:
    """Accuracies, sparsities and shares (AdaFilter's gate mean: the share of fine-tuned filters) live
    in [0, 1]: shown as percentages on a 0-100% axis, so a 0.2-point change looks like one."""
    return (name.endswith(("acc", "f1")) or "accuracy" in name or "sparsity" in name
            or any(w in name for w in ("gate_mean", "share", "fraction")))


# ---- frames from engine records -----------------------------------------------------------

def epochs_frame(epochs: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Snapshot epochs (a list of per-epoch metric dicts) -> one row per epoch."""
    df = pd.DataFrame(list(epochs))
    if df.empty:
        return pd.DataFrame({"epoch": pd.Series(dtype="int64")})
    df = df.drop(columns=[c for c in ("step",) if c in df], errors="ignore")
    return df.groupby("epoch", as_index=False).last().sort_values("epoch").reset_index(drop=True)


def store_frames(rows: Iterable[Mapping[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Store metric rows {epoch, step, name, value} -> (per-epoch frame, per-step frame of loss/lr)."""
    df = pd.DataFrame(list(rows), columns=["epoch", "step", "name", "value", "ts"])
    step_rows = df[df["name"].isin(["loss", "lr"])]
    epoch_rows = df[~df["name"].isin(["loss", "lr"])]
    if epoch_rows.empty:
        epochs = pd.DataFrame({"epoch": pd.Series(dtype="int64")})
    else:
        epochs = epoch_rows.pivot_table(index="epoch", columns="name", values="value", aggfunc="last").reset_index()
        epochs.columns.name = None
    if step_rows.empty:
        steps = pd.DataFrame({"step": pd.Series(dtype="int64"), "epoch": pd.Series(dtype="int64")})
    else:
        steps = step_rows.pivot_table(index=["step", "epoch"], columns="name", values="value", aggfunc="last").reset_index()
        steps.columns.name = None
        steps = steps.drop_duplicates("step", keep="last").reset_index(drop=True)  # redone after Continue
    return epochs, steps


def steps_frame(steps: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Logged steps (dicts with step, loss, lr) as a frame sorted by step, a step logged twice (an epoch redone
    after Continue) kept once with its last value."""
    df = pd.DataFrame(list(steps))
    if df.empty:
        return pd.DataFrame({"step": pd.Series(dtype="int64"), "loss": pd.Series(dtype="float64")})
    # a step logged twice (a stopped epoch redone after Continue): its last value
    return df.sort_values("step", kind="stable").drop_duplicates("step", keep="last").reset_index(drop=True)


def method_metric_names(df: pd.DataFrame) -> list[str]:
    """Columns that methods added (e.g. sparsity, robust accuracy): everything not core, not per corruption,
    and not without any value yet (an empty chart made Vega warn of an "Infinite extent" as a run began)."""
    core = set(LOSS_METRICS) | set(ACCURACY_METRICS) | {"val_loss"} | NOT_PLOTTED
    return [c for c in df.columns if c not in core and "/" not in str(c)  # per-layer ones: layer_groups
            and pd.to_numeric(df[c], errors="coerce").notna().any()]


def layer_groups(df: pd.DataFrame) -> dict[str, list[str]]:
    """Per-layer metrics a method logs as `<method>/<what>/<layer>` grouped by `<method>/<what>`."""
    groups: dict[str, list[str]] = {}
    for c in df.columns:
        parts = str(c).split("/")
        if len(parts) >= 3 and parts[0] != "ood":
            groups.setdefault("/".join(parts[:2]), []).append(str(c))
    return groups


def group_title(group: str) -> str:
    """`<method>/<what>` in words, the method by its title: "pruning/sparsity" -> "Pruning (Fine-Pruning): sparsity"."""
    from engine.methods import METHODS

    if group in GROUP_TITLES:
        return GROUP_TITLES[group]
    method, _, what = group.partition("/")
    name = METHODS[method].title if method in METHODS else method.replace("_", " ").capitalize()
    return f"{name}: {what.replace('_', ' ')}" if what else name


def latest_layer_values(df: pd.DataFrame, columns: Sequence[str]) -> tuple[int, list[float]]:
    """(epoch, [value per column]) of the latest epoch that logged any of `columns`."""
    last = df.dropna(subset=list(columns), how="all").iloc[-1]
    return int(last["epoch"]), [float(last[c]) for c in columns]


def layer_value_text(group: str, value: float) -> str:
    """One per-layer value as the bars' axis writes it: a share in % ("70.0%"), anything else in 3 digits."""
    return f"{100 * value:.1f}%" if is_fraction_metric(group) else f"{value:.3g}"


def layer_bar_chart(df: pd.DataFrame, group: str, columns: Sequence[str]) -> alt.Chart:
    """The latest epoch's value per layer as bars (e.g. sparsity per layer, fraction of filters fine-tuned)."""
    epoch, values = latest_layer_values(df, columns)
    names = [c[len(group) + 1:] for c in columns]
    data, order = layer_rows(pd.DataFrame({"layer": names, "value": values}), names)
    title = f"{group_title(group)} per layer (epoch {epoch})"
    share = is_fraction_metric(group)  # a share on 0-100%; anything else (gate gradients) on its own scale
    x_scale = alt.Scale(domain=[0, 1]) if share else alt.Scale(zero=True)
    return alt.Chart(data).mark_bar().encode(
        # small gradients in plain decimals ("0.002"), not "2e-3" (a teacher read "0e+0" as code)
        x=alt.X("value:Q", title=None, scale=x_scale, axis=alt.Axis(format="%" if share else "~g")),
        # one row per layer, every label drawn: 16 px rows, names up to 180 px
        y=alt.Y("layer:N", sort=order, title=None, axis=LAYER_NAMES),
        tooltip=[alt.Tooltip("layer:N", title="Layer"), alt.Tooltip("module:N", title="Module"),
                 alt.Tooltip("value:Q", format=".1%" if share else ".3~g")],
    ).properties(title=title_lines(title), height=rows_height(len(data), 16), autosize=FIT_WIDTH, padding=LAYER_PADDING)


def title_lines(title: str, width: int = 44) -> str | list[str]:
    """A chart title as Vega-Lite draws it: over `width` characters, in lines (a half-page chart cut
    "AdaFilter: filters using their fine-tuned copy per la…")."""
    import textwrap

    return title if len(title) <= width else textwrap.wrap(title, width)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def long_frame(df: pd.DataFrame, metrics: Sequence[str], x: str = "epoch") -> pd.DataFrame:
    """Wide (x, metric columns) -> long (x, metric, label, value), dropping missing values."""
    present = [m for m in metrics if m in df.columns]
    if df.empty or not present or x not in df.columns:
        return pd.DataFrame(columns=[x, "metric", "label", "value"])
    out = df[[x, *present]].melt(id_vars=[x], var_name="metric", value_name="value")
    out = out[out["value"].map(_finite)]
    out["label"] = out["metric"].map(metric_label)
    return out.reset_index(drop=True)


# ---- line charts ----------------------------------------------------------------------------

def metric_lines(df: pd.DataFrame, metrics: Sequence[str], title: str | list[str] | alt.TitleParams, y_title: str,
                 percent: bool = False, x: str = "epoch", height: int = 260) -> alt.Chart:
    """Lines with points, one colour per metric, x = epoch (or step); a legend only for two or more
    metrics (one metric's name is the title) and not for a training / validation pair alone, whose curves
    are named at their ends."""
    data = long_frame(df, metrics, x)
    if data.empty:  # nothing measured yet: words, not empty axes (Vega warned of an "Infinite extent" for each layer)
        return alt.Chart(pd.DataFrame({"note": ["No values yet"]}), title=title).mark_text(
            color="#808495", fontSize=13).encode(text="note:N").properties(height=height, autosize=FIT_WIDTH)
    present = [m for m in metrics if m in set(data["metric"])]
    order = [metric_label(m) for m in present]
    others = iter(OTHER_COLORS * 4)
    colors = [METRIC_COLORS.get(m) or next(others) for m in present]
    y_axis = alt.Axis(format="%" if percent else "~r", title=y_title)
    y_scale = alt.Scale(domain=[0, 1]) if percent else alt.Scale(zero=False)
    x_title = "Epoch" if x == "epoch" else "Step"
    ends = pair_end_labels(data, x)
    # a legend only for curves without words at their ends: a training / validation pair alone is named at
    # its ends, and its two-column legend was cut in a half-page chart on a narrow window ("Valid")
    legend = len(present) > 1 and not set(present) <= set(ends["metric"])
    # one colour encoding for every layer: a layer with its legend off beside one with it on made Vega
    # warn of a "conflicting legend property"
    color = alt.Color("label:N", title=None, sort=order,  # line symbols: a training curve's shows its dashes
                      legend=alt.Legend(**{**LEGEND, "columns": 2 if max(map(len, order)) <= LEGEND_PAIR_CHARS
                                           else 1}, symbolType="stroke", symbolStrokeWidth=2.5)
                      if legend else None,
                      scale=alt.Scale(domain=order, range=colors))
    base = alt.Chart(data).encode(
        x=alt.X(f"{x}:Q", title=x_title, axis=alt.Axis(values=count_ticks(data[x]), format="d"), scale=COUNT_AXIS),
        y=alt.Y("value:Q", axis=y_axis, scale=y_scale),
        color=color,
        tooltip=[alt.Tooltip(f"{x}:Q", title=x_title), alt.Tooltip("label:N", title="Metric"),
                 alt.Tooltip("value:Q", title="Value", format=".1%" if percent else ".4g")],
    )
    # the training curve dashed beside its held-out twin in the same colour family, so the two read apart
    dash = alt.StrokeDash("label:N", scale=alt.Scale(
        domain=order, range=[TRAIN_DASH if m.startswith("train_") else [1, 0] for m in present]))
    # training curves drawn last, their points as rings: a training curve equal to its held-out twin
    # (both 100%, say) shows on top of it instead of vanishing under it
    # (a layer only for curves there are: Vega warns of an "Infinite extent" for a layer filtered empty)
    train = "indexof(datum.metric, 'train_') === 0"
    training = base.transform_filter(train)
    # the first held-out curve (validation) drawn first, wider and with larger points, the others (OOD) thinner
    # on top: an OOD curve equal to validation (a run whose corruptions change no answer) showed as one line, the
    # validation curve hidden under it; now the wider one shows at both sides of the thinner one
    held = [m for m in present if not m.startswith("train_")]
    layers = []
    if len(held) == 1:
        one = base.transform_filter(f"!({train})")
        layers += [one.mark_line().encode(strokeDash=dash), one.mark_point(filled=True, size=40)]
    elif held:
        first = f"datum.metric === '{held[0]}'"
        under, over = base.transform_filter(first), base.transform_filter(f"!({first}) && !({train})")
        layers += [under.mark_line(strokeWidth=HELD_OUT_UNDER_WIDTH).encode(strokeDash=dash),
                   under.mark_point(filled=True, size=80, opacity=1),
                   over.mark_line(strokeWidth=2).encode(strokeDash=dash), over.mark_point(filled=True, size=25, opacity=1)]
    layers += ([training.mark_line().encode(strokeDash=dash), training.mark_point(filled=False, size=70, strokeWidth=1.5)]
               if any(m.startswith("train_") for m in present) else [])
    if not ends.empty:  # the words at the curves' ends: new users told the pair apart by shade and dashes alone
        end = alt.Chart(ends).encode(x=alt.X(f"{x}:Q"), y=alt.Y("value:Q"), text="end_label:N", color=color)
        layers += [end.transform_filter("datum.above").mark_text(align="left", dx=6, dy=-8, fontSize=11),
                   end.transform_filter("!datum.above").mark_text(align="left", dx=6, dy=9, fontSize=11)]
    return alt.layer(*layers, title=title).properties(height=height, autosize=FIT_WIDTH)


HELD_OUT_UNDER_WIDTH = 4  # px: the first held-out curve, drawn under the others (Vega-Lite's default line: 2 px)

# the words written at a curve's end, for a training curve and its held-out twin
END_WORDS = {"train_": "training", "val_": "validation"}


def pair_end_labels(data: pd.DataFrame, x: str = "epoch") -> pd.DataFrame:
    """The last point of each curve of a training / validation pair (train_acc with val_acc, train_loss with
    val_loss), for words written beside it: rows (x, metric, label, value, end_label "training" or
    "validation", above: the higher of the two, whose words go above its point, the other's below). Empty
    when `data` (long_frame's rows) holds no such pair."""
    rows = []
    for metric in sorted(set(data["metric"])) if len(data) else []:
        if not metric.startswith("train_") or f"val_{metric[6:]}" not in set(data["metric"]):
            continue
        for m in (metric, f"val_{metric[6:]}"):
            last = data[data["metric"] == m].sort_values(x, kind="stable").iloc[-1]
            rows.append({x: last[x], "metric": m, "label": last["label"], "value": float(last["value"]),
                         "end_label": END_WORDS[m[:m.index("_") + 1]]})
    ends = pd.DataFrame(rows, columns=[x, "metric", "label", "value", "end_label"])
    # of a pair, the higher value's words above, the other's below, so two ends at one height do not collide;
    # apart from a tie, each goes to the side with more room from every curve's point at that epoch (a
    # "validation" beside the OOD point at the same height read as the OOD curve's name)
    ends["above"] = [_above(data, x, row, ends["value"].iloc[i ^ 1], first=i % 2 == 0)
                     for i, row in enumerate(ends.to_dict("records"))]
    # a pair close in height (under PAIR_CLOSE of the chart's span): the higher's words above, the lower's below,
    # whatever the room: a photographer's "training" at 43% went up and "validation" at 48% down, into each other
    span = float(data["value"].max() - data["value"].min()) if len(data) else 0.0
    for i in range(0, len(ends) - 1, 2):
        a, b = float(ends["value"].iloc[i]), float(ends["value"].iloc[i + 1])
        if a != b and abs(a - b) < PAIR_CLOSE * span:
            ends.loc[ends.index[i], "above"], ends.loc[ends.index[i + 1], "above"] = a >= b, a < b
    return ends


PAIR_CLOSE = 0.15  # a training / validation pair's ends this close (a share of the chart's span) are split


def _above(data: pd.DataFrame, x: str, end: dict, twin: float, first: bool) -> bool:
    """Whether the words at curve end `end` (a pair_end_labels row) go above its point: a pair at one
    height splits (the `first` above); otherwise the side with the larger gap to the points the curves in
    `data` have at that x (its twin's `twin` among them)."""
    v = end["value"]
    if v == twin:
        return first
    at = data[(data[x] == end[x]) & (data["metric"] != end["metric"])]["value"].astype(float)
    gap_above = min((o - v for o in at if o > v), default=math.inf)
    gap_below = min((v - o for o in at if o <= v), default=math.inf)
    return bool(gap_above >= gap_below)


def loss_chart(df: pd.DataFrame) -> alt.Chart:
    """Training and validation loss (nats) per epoch, one line each."""
    # the hint as a subtitle: in a half-page column on a narrow window one line was cut ("(higher is ...")
    return metric_lines(df, LOSS_METRICS, alt.TitleParams("Loss per epoch", subtitle="lower is better"), "Loss")


def accuracy_chart(df: pd.DataFrame) -> alt.Chart:
    """Accuracies per epoch (training, validation, OOD, robust; percent axis), one line each."""
    return metric_lines(df, ACCURACY_METRICS, alt.TitleParams("Accuracy per epoch", subtitle="higher is better"),
                        "Accuracy", percent=True)


def method_metric_chart(df: pd.DataFrame, metric: str) -> alt.Chart:
    """A chart for one metric a method logs (sparsity, robust accuracy, anything new)."""
    label = metric_label(metric)  # "Sparsity (share of zero weights)": the title; the axis its first words
    title: str | list[str] = f"{label} per epoch"
    if len(title) > TITLE_CHARS and " (" in label:  # two lines: a half-width chart cut "...(overfitting ch…"
        head, rest = label.split(" (", 1)
        title = [f"{head} per epoch", f"({rest}"]
    return metric_lines(df, [metric], title, label.split(" (")[0], percent=is_fraction_metric(metric))


def step_loss_chart(steps: pd.DataFrame) -> alt.Chart:
    """Training loss at every logged step: the first thing that moves in a live run."""
    return metric_lines(steps, ["loss"], "Training loss per step", "Loss", x="step", height=220)


def lr_chart(steps: pd.DataFrame) -> alt.Chart:
    """The learning rate over the run's steps (from the store, or a schedule preview): rows of `step`
    (1-based: the row of step k holds the rate step k used; numbers, anything else is dropped) and `lr`.
    Step k is drawn from the previous row's step (0 for the first) to k, so the last step has its own
    segment (a step-after line ended on a bare point there)."""
    data = pd.DataFrame(columns=["step", "lr"])
    if {"step", "lr"} <= set(steps.columns):
        data = steps[["step", "lr"]].apply(pd.to_numeric, errors="coerce").astype("float64").dropna()
        data = data.sort_values("step", kind="stable")
    if len(data) and data["step"].iloc[0] > 0:  # the run starts at step 0 (a GPU run logs every 10th step)
        data = pd.concat([pd.DataFrame({"step": [0.0], "lr": [data["lr"].iloc[0]]}), data], ignore_index=True)
    return alt.Chart(data, title="Learning rate per step").mark_line(interpolate="step-before").encode(
        x=alt.X("step:Q", title="Step", axis=alt.Axis(tickMinStep=1, format="d")),
        y=alt.Y("lr:Q", title="Learning rate", axis=alt.Axis(format="~g")),
        tooltip=[alt.Tooltip("step:Q", title="Step"), alt.Tooltip("lr:Q", title="Learning rate", format=".3g")],
    ).properties(height=180, autosize=FIT_WIDTH)


def lr_find_frame(found: Mapping[str, Any]) -> pd.DataFrame:
    """A run's LR range test (`summary["lr_find"]`, engine.lr_find) as rows of step, lr, loss, smoothed."""
    return pd.DataFrame({"step": range(1, len(found.get("lrs", [])) + 1), "lr": found.get("lrs", []),
                         "loss": found.get("losses", []), "smoothed": found.get("smoothed", [])})


def lr_find_chart(found: Mapping[str, Any]) -> alt.Chart:
    """Training loss against the learning rate (log axis) in the range test, with the pick marked."""
    df = lr_find_frame(found)
    x = alt.X("lr:Q", title="Learning rate", scale=alt.Scale(type="log"), axis=alt.Axis(format="~g"))
    tips = [alt.Tooltip("lr:Q", title="Learning rate", format=".3g"), alt.Tooltip("loss:Q", title="Loss", format=".3f"),
            alt.Tooltip("smoothed:Q", title="Smoothed loss", format=".3f")]
    raw = alt.Chart(df).mark_circle(size=25, opacity=0.5).encode(x=x, y=alt.Y("loss:Q", title="Training loss"),
                                                                  tooltip=tips)
    line = alt.Chart(df).mark_line().encode(x=x, y="smoothed:Q", tooltip=tips)
    pick = pd.DataFrame({"lr": [found.get("lr")], "label": [f"pick {found.get('lr', 0):.3g}"]})
    rule = alt.Chart(pick).mark_rule(color="#d62728", strokeDash=[4, 3]).encode(x="lr:Q")
    text = alt.Chart(pick).mark_text(align="left", dx=4, dy=-60, color="#d62728").encode(x="lr:Q", text="label:N")
    return (raw + line + rule + text).properties(title="Learning-rate range test", height=200, autosize=FIT_WIDTH)


# ---- results ---------------------------------------------------------------------------------

def confusion_frame(matrix: Sequence[Sequence[float]], classes: Sequence[str]) -> pd.DataFrame:
    """Square matrix (rows = true class, columns = predicted) -> long frame with row shares."""
    rows = []
    for i, true in enumerate(classes):
        total = sum(matrix[i]) if i < len(matrix) else 0
        for j, pred in enumerate(classes):
            n = matrix[i][j] if i < len(matrix) and j < len(matrix[i]) else 0
            rows.append({"true": true, "predicted": pred, "count": int(n), "share": (n / total) if total else 0.0})
    return pd.DataFrame(rows, columns=["true", "predicted", "count", "share"])


CONFUSION_LABELS_PX = 130  # a confusion matrix's axis titles and class names at their least (`class_label_px`)
CLASS_LABEL_PX = (90, 130)  # px a class name gets on an axis, at least and at most (more overflowed a half-page
# column at 1024 px)
CHAR_PX = 6  # px a character of an axis label takes on average (Vega's 10 px sans-serif)


def class_label_px(classes: Sequence[str]) -> int:
    """The px an axis gives the class names `classes`: their longest at CHAR_PX a character (plus 6), within
    CLASS_LABEL_PX: "mésange charbonnière" was cut to "mésange charbonniè" at 90 px."""
    longest = max((len(str(c)) for c in classes), default=0)
    return max(CLASS_LABEL_PX[0], min(CLASS_LABEL_PX[1], CHAR_PX * longest + 6))


def confusion_cell_px(n_classes: int, width: int = 300) -> int:
    """A confusion matrix's cell side in px for `n_classes` classes within `width` px of cells: 14-44."""
    return max(14, min(44, width // max(n_classes, 1)))


def confusion_px(n_classes: int, width: int = 300, classes: Sequence[str] = ()) -> int:
    """The width in px a confusion matrix asks for (pass it to app.vega.altair_chart(width=...)): its cells
    and their labels (`class_label_px` of `classes`, the class names). In a narrower column Streamlit gives it the
    column's width and the cells narrow to fit (they overflowed into the next column on a 1000 px window)."""
    extra = class_label_px(classes) - CLASS_LABEL_PX[0]
    return confusion_cell_px(n_classes, width) * n_classes + CONFUSION_LABELS_PX + extra


def confusion_chart(df: pd.DataFrame, title: str = "Confusion matrix", width: int = 300) -> alt.Chart:
    """Heat map with counts; the diagonal is what the model got right. `width` (px) is the budget of
    the cells; class names take `class_label_px` more: show it with app.vega.altair_chart(width=confusion_px(...,
    classes=...)), and it fits that width or, narrower, the column's (the cells narrow, their height stays)."""
    classes = list(dict.fromkeys(df["true"]))
    cell = confusion_cell_px(len(classes), width)  # px per class: labels stay readable
    label = class_label_px(classes)
    # on lines as wide as the chart (at most 8 px a bold character): "Confusion matrix (the smaller model, t" was
    # cut, and at 7 px "... of the WiSE-FT mix at alpha 0.30 (validation images)" lost its ends on a 1024 px window
    lines = textwrap.wrap(title, max(16, confusion_px(len(classes), width, classes) // 8), break_long_words=False)
    base = alt.Chart(df, title=alt.TitleParams(lines if len(lines) > 1 else title, anchor="start")).encode(
        x=alt.X("predicted:N", title="Predicted class", sort=classes,
                axis=alt.Axis(labelAngle=-45, labelOverlap=False, labelLimit=label)),
        y=alt.Y("true:N", title="True class", sort=classes, axis=alt.Axis(labelOverlap=False, labelLimit=label)),
        tooltip=[alt.Tooltip("true:N", title="True"), alt.Tooltip("predicted:N", title="Predicted"),
                 alt.Tooltip("count:Q", title="Images"), alt.Tooltip("share:Q", title="Share of true class", format=".0%")],
    )
    # No colour legend: the counts are written in the cells, the shade only guides the eye.
    cells = base.mark_rect().encode(color=alt.Color("share:Q", scale=alt.Scale(scheme="blues", domain=[0, 1]), legend=None))
    text = base.mark_text(baseline="middle").encode(
        text=alt.Text("count:Q"),
        color=alt.condition(alt.datum.share > 0.5, alt.value("white"), alt.value("black")),
    )
    return (cells + text).properties(width="container", height=rows_height(len(classes), cell), autosize=FIT_WIDTH)


def per_class_frame(per_class: Mapping[str, float | None], images: Mapping[str, int] | None = None) -> pd.DataFrame:
    """Class -> accuracy (fraction) as a frame with columns class, accuracy, images (the class's images in the split,
    from `images`; None where unknown) and label, the words written after the bar: "100% (1 of 1)" where the count is
    known, else "100%" (a student read "Inflamed 100%" without knowing it was one image). Classes without a finite
    value are left out."""
    rows = []
    for c, v in per_class.items():
        if not _finite(v):
            continue
        n = (images or {}).get(c)
        label = percent_half_up(v) + (f" ({round(v * n)} of {n})" if isinstance(n, int) and n > 0 else "")
        rows.append({"class": c, "accuracy": v, "images": n if isinstance(n, int) else None, "label": label})
    return pd.DataFrame(rows, columns=["class", "accuracy", "images", "label"])


def per_class_chart(df: pd.DataFrame, title: str = "Accuracy per class") -> alt.Chart:
    """One bar per class (`per_class_frame`), worst at the bottom, each with its accuracy written after it:
    a class at 0% has no bar, and its row read as empty. Class names get `class_label_px`."""
    base = alt.Chart(df).encode(
        x=alt.X("accuracy:Q", title="Accuracy", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        y=alt.Y("class:N", title=None, sort="-x", axis=alt.Axis(labelLimit=class_label_px(df["class"]))),
        tooltip=[alt.Tooltip("class:N", title="Class"), alt.Tooltip("accuracy:Q", title="Accuracy", format=".1%"),
                 alt.Tooltip("images:Q", title="Images of the class")],
    )
    bars = base.mark_bar().encode(
        color=alt.Color("accuracy:Q", scale=alt.Scale(scheme="redyellowgreen", domain=[0, 1]), legend=None))
    # inside the bar's end when it is long, after it otherwise: 100% stays in the plot
    # (each only when some class is there: Vega warns of an "Infinite extent" for a layer filtered empty)
    text = alt.Text("label:N")  # "100% (1 of 1)": how many images the figure rests on
    layers = [bars]
    if (df["accuracy"] > 0.8).any():
        layers.append(base.transform_filter(alt.datum.accuracy > 0.8).mark_text(
            align="right", dx=-4, color="white", fontSize=11).encode(text=text))
    if (df["accuracy"] <= 0.8).any():
        layers.append(base.transform_filter(alt.datum.accuracy <= 0.8).mark_text(
            align="left", dx=4, color="#31333f", fontSize=11).encode(text=text))
    # the colour said (a photographer asked what green, yellow and orange meant): it repeats the bar's length
    return alt.layer(*layers).properties(title=alt.TitleParams(title, subtitle=PER_CLASS_COLOURS),
                                         height=rows_height(df["class"].nunique(), 24), autosize=FIT_WIDTH)


# two lines: in a half-page column at 1024 px one ("colour as length: red at 0%, yellow at 50%, g…") was cut;
# "colour as length:" read as odd to a new user: the bars' colour follows their length, said as such
PER_CLASS_COLOURS = ["each bar coloured by its length:", "red at 0%, yellow at 50%, green at 100%"]


def ood_frame(by_corruption: Mapping[str, float | None]) -> pd.DataFrame:
    """Corruption -> accuracy (fraction) as a frame with columns corruption (its shown name), accuracy; missing
    values left out."""
    return pd.DataFrame([{"corruption": corruption_name(c), "accuracy": v} for c, v in by_corruption.items() if _finite(v)],
                        columns=["corruption", "accuracy"])


def ood_chart(df: pd.DataFrame, clean_acc: float | None = None) -> alt.Chart:
    """Accuracy per corruption (severities 1-5 averaged), with the clean accuracy as a rule."""
    # on two lines: in a half-page column on a 1024 px window one line lost its last letter
    title = alt.TitleParams(["Accuracy on corrupted", "validation images"], anchor="start")
    bars = alt.Chart(df, title=title).mark_bar().encode(
        x=alt.X("accuracy:Q", title="Accuracy", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        y=alt.Y("corruption:N", title=None, sort="-x"),
        tooltip=[alt.Tooltip("corruption:N", title="Corruption"), alt.Tooltip("accuracy:Q", title="Accuracy", format=".1%")],
    )
    if clean_acc is None or not _finite(clean_acc):
        return bars.properties(height=rows_height(df["corruption"].nunique(), 24), autosize=FIT_WIDTH)
    rule = alt.Chart(pd.DataFrame({"clean": [clean_acc]})).mark_rule(color="firebrick", strokeDash=[4, 3]).encode(
        x="clean:Q", tooltip=[alt.Tooltip("clean:Q", title="Clean validation accuracy", format=".1%")])
    return (bars + rule).properties(height=rows_height(df["corruption"].nunique(), 24), autosize=FIT_WIDTH)


def class_counts_frame(split_counts: Mapping[str, Mapping[str, int]]) -> pd.DataFrame:
    """{"train": {cls: n}, "val": ..., "test": ...} -> long (class, split, images)."""
    rows = [{"class": c, "split": split, "images": int(n)}
            for split, counts in split_counts.items() for c, n in counts.items()]
    return pd.DataFrame(rows, columns=["class", "split", "images"])


def class_counts_chart(df: pd.DataFrame) -> alt.Chart:
    """Images per class, stacked by split: a lopsided bar is a class the model sees too little of; the class names
    as long as `class_label_px` allows ("Basal cell carcino…" was cut at Vega's default)."""
    order = ["train", "val", "test"]
    return alt.Chart(df, title="Images per class").mark_bar().encode(
        x=alt.X("sum(images):Q", title="Images"),
        y=alt.Y("class:N", title=None, axis=alt.Axis(labelLimit=class_label_px(df["class"].unique()))),
        color=alt.Color("split:N", title="Split", sort=order, scale=alt.Scale(domain=order)),
        order=alt.Order("split_order:Q"),
        tooltip=[alt.Tooltip("class:N", title="Class"), alt.Tooltip("split:N", title="Split"),
                 alt.Tooltip("images:Q", title="Images")],
    ).transform_calculate(
        split_order="indexof(['train','val','test'], datum.split)"
    ).properties(height=rows_height(df["class"].nunique(), 22), autosize=FIT_WIDTH)


def compare_frame(curves: Mapping[str, pd.DataFrame], metric: str) -> pd.DataFrame:
    """{run label: per-epoch frame} -> long (run, epoch, value) for one metric."""
    parts = []
    for run, df in curves.items():
        if metric in df.columns and "epoch" in df.columns:
            part = df[["epoch", metric]].rename(columns={metric: "value"})
            part = part[part["value"].map(_finite)]
            parts.append(part.assign(run=run))
    if not parts:
        return pd.DataFrame(columns=["run", "epoch", "value"])
    return pd.concat(parts, ignore_index=True)[["run", "epoch", "value"]]


# Tableau 10, Vega's "tableau10" scheme: neighbouring runs get distinct hues (Streamlit's theme starts with two blues)
RUN_COLOURS = ("#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d",
               "#bab0ac")


def run_colours(order: Sequence[str], chosen: Sequence[str]) -> dict[str, str]:
    """A colour (hex) for each of the `chosen` runs that stays the run's whatever else is chosen: the
    RUN_COLOURS entry at its place in `order` (every run that can be compared, oldest first), or the next one
    no other chosen run has when two chosen runs would share one (more than ten runs). Raises nothing; a run
    missing from `order` counts as the newest. Stable while the comparable runs stay the same: a run deleted, or
    an older one finishing after newer ones, moves the later runs' colours."""
    place = {run: i for i, run in enumerate(order)}
    out: dict[str, str] = {}
    for run in sorted(chosen, key=lambda r: place.get(r, len(order))):
        start = place.get(run, len(order))
        free = [RUN_COLOURS[(start + k) % len(RUN_COLOURS)] for k in range(len(RUN_COLOURS))
                if RUN_COLOURS[(start + k) % len(RUN_COLOURS)] not in out.values()]
        out[run] = free[0] if free else RUN_COLOURS[start % len(RUN_COLOURS)]
    return out


def compare_chart(df: pd.DataFrame, metric: str, colours: Mapping[str, str] | None = None) -> alt.Chart:
    """One line per run for one metric: which settings learned faster, ended higher. `colours`: run label ->
    colour (`run_colours`), so that a run keeps its colour when other runs join or leave the chart; each run's
    points have their own shape too, so that two runs at the same values stay visible."""
    percent = is_fraction_metric(metric)
    label = metric_label(metric)
    scale = (alt.Scale(domain=list(colours), range=list(colours.values())) if colours
             else alt.Scale(range=list(RUN_COLOURS)))
    base = alt.Chart(df).encode(
        x=alt.X("epoch:Q", title="Epoch", axis=alt.Axis(values=count_ticks(df["epoch"]) if len(df) else alt.Undefined,
                                                        format="d"), scale=COUNT_AXIS),
        y=alt.Y("value:Q", title=label, axis=alt.Axis(format="%" if percent else "~r"),  # 1400, not 1.4e+3
                scale=alt.Scale(domain=[0, 1]) if percent else alt.Scale(zero=False)),
        color=alt.Color("run:N", title="Run", scale=scale, legend=alt.Legend(orient="bottom", columns=1, labelLimit=480)),
        tooltip=[alt.Tooltip("run:N", title="Run"), alt.Tooltip("epoch:Q", title="Epoch"),
                 alt.Tooltip("value:Q", title=label, format=".1%" if percent else ".4g")],
    )
    points = base.mark_point(filled=True, size=40).encode(shape=alt.Shape("run:N", title="Run", legend=None))
    return alt.layer(base.mark_line(), points, title=f"{label}: runs compared").properties(
        height=320, autosize=FIT_WIDTH)


# ---- Try it: a prediction's top classes ----------------------------------------------------------------

def topk_frame(top: Sequence[tuple[str, float]], model: str = "") -> pd.DataFrame:
    """One row per (class, probability) of a prediction's top-k, most likely first (`rank` 1..k)."""
    return pd.DataFrame([{"class": c, "probability": float(p), "rank": i + 1, "model": model}
                         for i, (c, p) in enumerate(top)], columns=["class", "probability", "rank", "model"])


def topk_words(shown: int, threshold: float | None = None, classes: int | None = None,
               under_axis: bool = False) -> str:
    """What a top-k chart's axis shows: "Top 3 of 4 classes: probability (red dashes: unsure under 50%)";
    `under_axis`: the same for a caption under an axis that says "Probability" ("Top 3 of 4 classes; red
    dashes: unsure under 50%"; "" when there is nothing to add)."""
    if under_axis:
        parts = [f"Top {shown} of {classes} classes"] if classes is not None and classes > shown else []
        parts += [f"red dashes: unsure under {threshold:.0%}"] if threshold is not None else []
        return "; ".join(parts)[:1].upper() + "; ".join(parts)[1:]
    words = "Probability" if threshold is None else f"Probability (red dashes: unsure under {threshold:.0%})"
    if classes is not None and classes > shown:
        words = f"Top {shown} of {classes} classes: {words[:1].lower()}{words[1:]}"
    return words


TITLE_LINE_CHARS = 30  # of a probability chart's title: what a compared chart's column shows at 1280 px (at 34,
# "Pruning demo (ResNet-18) on sample" was cut to "... on sa…")


def probability_title_lines(title: str) -> list[str]:
    """A probability chart's title on lines of at most TITLE_LINE_CHARS (`title_lines`), as a list."""
    lines = title_lines(title, TITLE_LINE_CHARS)
    return [lines] if isinstance(lines, str) else lines


PROBABILITY_TICKS = [0, 0.25, 0.5, 0.75, 1]  # an odd count: Vega's label thinning keeps both ends
TOP_BAR_COLOUR = "#1f77b4"  # the top answer's bar; Try it's table draws its confidences in it too


def topk_chart(df: pd.DataFrame, title: str = "", threshold: float | None = None,
               classes: int | None = None, words_on_axis: bool = True, lines: int = 1) -> alt.Chart:
    """Horizontal probability bars, most likely class on top; the top bar is strong, the others pale.
    With `threshold`, a dashed rule marks the probability under which the answer counts as unsure;
    with `classes` (how many the model has) above the bars shown, the axis says which share is shown
    (`topk_words`; with `words_on_axis` False the axis says "Probability" and the page says the rest
    where it can wrap: two charts side by side cut it). The title starts at the chart's left edge, on
    `probability_title_lines`, padded to `lines` lines (the most among charts side by side)."""
    # each bar's figure as the words beside it give it: 49.7% under a 50% line, not "50%" (engine.words.percent)
    data = df.assign(top=df["rank"] == 1, shown=[percent(float(p), threshold) for p in df["probability"]])
    x_title = topk_words(len(df), threshold, classes) if words_on_axis else "Probability"
    bars = alt.Chart(data).mark_bar().encode(
        # ticks of their own, an odd number: Vega's default ones (0%, 20% ... 100%) lost every other label in a
        # narrow chart, so two charts side by side read 0-80% and 0-100%; these thin out to 0%, 50%, 100%
        x=alt.X("probability:Q", title=x_title, scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%", values=PROBABILITY_TICKS)),
        # the classes listed in rank order: a sort by the rank field is dropped by Vega-Lite here (the
        # bars and their labels share the axis, and a shared domain only keeps a sort by count, min or
        # max), and the bars then came out in alphabetical order
        # the names as long as `class_label_px` allows in a chart of its own ("Seborrhoeic kera…" was cut); side
        # by side, the bars keep their room
        y=alt.Y("class:N", title=None, sort=list(data.sort_values("rank", kind="stable")["class"]),
                axis=alt.Axis(labelLimit=class_label_px(data["class"]) if words_on_axis else CLASS_LABEL_PX[0])),
        color=alt.Color("top:N", scale=alt.Scale(domain=[True, False], range=[TOP_BAR_COLOUR, "#9ecae1"]), legend=None),
        tooltip=["class:N", alt.Tooltip("probability:Q", format=".1%")],
    )
    labels = bars.mark_text(align="left", dx=3).encode(text="shown:N", color=alt.value("#333"))
    chart = bars + labels
    if threshold is not None:  # under the percentages: a bar ending near the line keeps its figure legible
        rule = alt.Chart(pd.DataFrame({"probability": [threshold]})).mark_rule(
            color="#d62728", strokeDash=[4, 3]).encode(
            x="probability:Q", tooltip=alt.Tooltip("probability:Q", title="Unsure under", format=".0%"))
        chart = bars + rule + labels
    # centred over the plot, a model's name overflowed a narrow chart on the left ("e-tuned (end of training)")
    # on lines of TITLE_LINE_CHARS: Vega-Lite cuts a long one ("WiSE-FT mix at alpha 0.00 (the st…" beside another)
    # `lines` at least, blank ones added, so that charts side by side start their bars at one height
    text = probability_title_lines(title)
    text += [" "] * (lines - len(text))
    heading = alt.TitleParams(text if len(text) > 1 else title, anchor="start", frame="bounds") if title else ""
    return chart.properties(height=max(60, 28 * len(df)), title=heading, autosize=FIT_WIDTH)


# ---- tables ----------------------------------------------------------------------------------

def compare_table(rows: list[dict]) -> pd.DataFrame:
    """The Compare table from one dict per run (keys: run, dataset, `_source` the dataset's reference,
    optionally `_content` its content digest (engine.data.content_digest; None for a run that recorded
    none: stored before the digest existed, failed or stopped early); then any columns): rows grouped by
    dataset in first-seen order. A dataset is its content digest, else the digest another run of the
    same reference recorded, else its reference; runs on one dataset show every name it was given, first-seen
    first ("sample textures / textures.zip": the bundled sample and an upload of the same zip, a copy under
    another name), two different datasets of one name read "name (1)", "name (2)" in first-seen order. Columns without any value are dropped,
    missing numbers left missing (drawn blank) and missing text as "" (never "None")."""
    table = pd.DataFrame(rows)
    if "_content" in table:
        known = {s: c for s, c in zip(table["_source"], table["_content"]) if isinstance(c, str) and c}  # per reference
        table["_source"] = [c if isinstance(c, str) and c else known.get(s) or s
                            for s, c in zip(table["_source"], table["_content"])]
        table = table.drop(columns="_content")
    if "_source" in table:
        names: dict = {}  # every name a dataset was given, first-seen first: the user's own upload's name stays
        for src, name in zip(table["_source"], table["dataset"]):
            names.setdefault(src, {})[name] = None
        table["dataset"] = table["_source"].map({src: " / ".join(n) for src, n in names.items()})
        number: dict = {}
        for name, src in zip(table["dataset"], table["_source"]):
            number.setdefault(name, {}).setdefault(src, len(number[name]) + 1)
        table["dataset"] = [f"{n} ({number[n][src]})" if len(number[n]) > 1 else n
                            for n, src in zip(table["dataset"], table["_source"])]
        table = table.drop(columns="_source")
    table = table.dropna(axis=1, how="all")
    order = {d: i for i, d in enumerate(dict.fromkeys(table["dataset"]))}
    table = table.sort_values("dataset", key=lambda c: c.map(order), kind="stable").reset_index(drop=True)
    for col in table.columns:
        if table[col].dtype == object and col not in ("classes", "images", "image px", "epochs"):
            table[col] = table[col].where(table[col].notna(), "")
    return table
