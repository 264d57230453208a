"""AdaFilter on the Results page: which layers fine-tuned their filters, per epoch and per class."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from app import vega
from app.charts import FIT_WIDTH, LAYER_NAMES, LAYER_PADDING, layer_rows, rows_height
from app.method_views import register_view

PREFIX = "adafilter/gate_mean/"
GRAD_PREFIX = "adafilter/gate_grad/"


def layer_epoch_frame(rows: list[dict], prefix: str = PREFIX, value: str = "fraction") -> pd.DataFrame:
    """Store metric rows -> (layer, epoch, value) for the metrics named `prefix`<layer>."""
    out = [{"layer": r["name"][len(prefix):], "epoch": r["epoch"], value: r["value"]}
           for r in rows if r["name"].startswith(prefix) and r["value"] is not None]
    return pd.DataFrame(out, columns=["layer", "epoch", value])


def gradient_chart(df: pd.DataFrame, layer_order: list[str]) -> alt.Chart:
    """Mean gate-logit gradient norm per layer and epoch (log colour scale: it spans decades)."""
    df, layer_order = layer_rows(df, layer_order)
    return alt.Chart(df).mark_rect().encode(
        x=alt.X("epoch:O", title="Epoch"),
        y=alt.Y("layer:N", sort=layer_order, title="Layer (input side at the top)", axis=LAYER_NAMES),
        color=alt.Color("gradient:Q", title="gate gradient", scale=alt.Scale(type="log", scheme="magma")),
        tooltip=["layer:N", "module:N", "epoch:O", alt.Tooltip("gradient:Q", format=".2e")],
    ).properties(title="Gradient reaching each layer's gates (mean norm per step)", height=rows_height(df["layer"].nunique(), 14),
                 autosize=FIT_WIDTH, padding=LAYER_PADDING)


def gate_heatmap(df: pd.DataFrame, x: str, title: str, layer_order: list[str]) -> alt.Chart:
    """A heat map of the fine-tuned share (0-1) per layer (rows, input side at the top, in `layer_order`) and `x`
    (epoch or class) from `df` with columns layer, `x`, fraction."""
    df, layer_order = layer_rows(df, layer_order)
    return alt.Chart(df).mark_rect().encode(
        x=alt.X(f"{x}:O", title=x.capitalize()),
        y=alt.Y("layer:N", sort=layer_order, title="Layer (input side at the top)", axis=LAYER_NAMES),
        color=alt.Color("fraction:Q", title="fine-tuned", scale=alt.Scale(domain=[0, 1], scheme="viridis")),
        tooltip=["layer:N", "module:N", f"{x}:O", alt.Tooltip("fraction:Q", format=".1%")],
    ).properties(title=title, height=rows_height(df["layer"].nunique(), 14), autosize=FIT_WIDTH,
                                     padding=LAYER_PADDING)


def view_charts(summary: dict, rows: list[dict]) -> list[tuple[str, alt.Chart]]:
    """The view's charts from a run's summary and its store metric rows, as (slot, chart) pairs.

    slot is "left" (share per layer and epoch), "right" (share per layer and class) or "wide" (gate
    gradients per layer and epoch); a chart is left out when the run recorded nothing for it.
    """
    layers = list((summary.get("adafilter_gate_mean") or {}).keys())
    out = []
    df = layer_epoch_frame(rows)
    if not df.empty:
        out.append(("left", gate_heatmap(df, "epoch", "Fraction fine-tuned per layer and epoch",
                                         layers or sorted(df["layer"].unique()))))
    by_class = summary.get("adafilter_gate_by_class") or {}
    if by_class:
        class_rows = [{"layer": l, "class": c, "fraction": v} for c, d in by_class.items() for l, v in d.items()]
        out.append(("right", gate_heatmap(pd.DataFrame(class_rows), "class", "Fraction fine-tuned per layer and class",
                                          layers)))
    grads = layer_epoch_frame(rows, GRAD_PREFIX, "gradient")
    grads = grads[grads["gradient"] > 0]
    if not grads.empty:
        out.append(("wide", gradient_chart(grads, layers or sorted(grads["layer"].unique()))))
    return out


def silent_epochs(rows: list[dict]) -> list[int]:
    """Epochs in which no gradient reached any gate (the linear-probe epochs: only the head trains)."""
    grads = layer_epoch_frame(rows, GRAD_PREFIX, "gradient")
    if grads.empty:
        return []
    per_epoch = grads.groupby("epoch")["gradient"].max()
    return [int(e) for e, v in per_epoch.items() if v <= 0]


@register_view("adafilter")
def adafilter_view(engine, rec, summary: dict) -> None:
    """AdaFilter's view on Results: the fine-tuned share of the filters, gate maps per layer by epoch and class, the
    gate gradients, and a note on epochs where the gates did not learn."""
    mixed = (rec.config.get("adafilter") or {}).get("eval_gates") == "expected"
    overall = summary.get("adafilter_gate_mean_overall")
    if overall is not None:
        st.metric("Fine-tuned share of the filters, gate-weighted (validation, mean)" if mixed
                  else "Filters using their fine-tuned copy (validation, mean)", f"{100 * overall:.1f}%")
    rows = engine.store.metrics(rec.id)
    c1, c2 = st.columns(2)
    for slot, chart in view_charts(summary, rows):
        vega.altair_chart(chart, target={"left": c1, "right": c2, "wide": st}[slot], width="stretch")
    silent = silent_epochs(rows)
    if silent:
        which = (f"epoch {silent[0]}" if len(silent) == 1
                 else "epochs " + ", ".join(map(str, silent[:-1])) + f" and {silent[-1]}")
        st.caption(f"No gradient reached the gates in {which}: only the new last layer trained then (the "
                   f"head-only epochs), so the gradient map leaves {'it' if len(silent) == 1 else 'them'} out.")
    st.caption(
        "Each image chooses, filter by filter, between the pretrained and the fine-tuned weights. What to look at: "
        "the share of fine-tuned filters per layer moving away from 50%, and the gate gradients growing epoch by "
        "epoch. The gates get a signal only in proportion to how far the fine-tuned filters have moved from the "
        "pretrained ones (at the start both copies are equal and the gradient is zero; in the head-only epochs, "
        "when only the new last layer trains, it stays zero), so early on the gradients are tiny (about 1e-3 per step "
        "in the first fine-tuning epoch) and the gate network steps by Adam to follow them. "
        "The paper (Guo et al. 2020) claims a lower error than standard fine-tuning (2.54 points on average with "
        "ResNet-50, ImageNet weights and long training). Not shown at the demo's budget on a CPU (3 seeds, 20 "
        "epochs, sample textures): the gates adapt (the fine-tuned share spreads 19 points across layers, more "
        "fine-tuned filters near the input than near the output) but test accuracy stays 1.8 points below "
        "standard fine-tuning (5.2 with the paper's half-open start, one learning rate and 0/1 gates). Over 60 seeds "
        "(on a GPU) it is 0.3 points below on average: as accurate within a point, not better as in the paper, and "
        "one run can land several points either side. The demo "
        "starts the gates 73% open and gives the gated layers 1.4x the rate, because each fine-tuned filter learns "
        "only from the images that pick it; starting them more open brings accuracy closer but the gates then "
        "barely adapt. When predicting, the demo mixes each filter's two copies by its gate's probability, the "
        "average of the random choices training made (with the paper's 0/1 gates: 2.6 points below on the CPUs, 1.0 over "
        "the 60 GPU seeds). "
        + ("This run mixes them, so the shares above are mean probabilities. " if mixed else
           "This run uses the paper's 0/1 gates, so the shares above are fractions of filters. ")
        + "The paper's runs gave the two copies tens of thousands of steps to differ; a 2-minute CPU run "
        "gives them a few hundred (README, Benchmarks).")
