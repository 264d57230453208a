"""AdaFilter on the Results page: which layers fine-tuned their filters, per epoch and per class."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from app.method_views import register_view

PREFIX = "adafilter/gate_mean/"


def layer_epoch_frame(rows: list[dict]) -> pd.DataFrame:
    """Store metric rows -> (layer, epoch, fraction fine-tuned)."""
    out = [{"layer": r["name"][len(PREFIX):], "epoch": r["epoch"], "fraction": r["value"]}
           for r in rows if r["name"].startswith(PREFIX) and r["value"] is not None]
    return pd.DataFrame(out, columns=["layer", "epoch", "fraction"])


def gate_heatmap(df: pd.DataFrame, x: str, title: str, layer_order: list[str]) -> alt.Chart:
    return alt.Chart(df).mark_rect().encode(
        x=alt.X(f"{x}:O", title=x.capitalize()),
        y=alt.Y("layer:N", sort=layer_order, title="Layer (input side at the top)"),
        color=alt.Color("fraction:Q", title="fine-tuned", scale=alt.Scale(domain=[0, 1], scheme="viridis")),
        tooltip=["layer:N", f"{x}:O", alt.Tooltip("fraction:Q", format=".1%")],
    ).properties(title=title, height=max(160, 14 * len(layer_order)))


@register_view("adafilter")
def adafilter_view(engine, rec, summary: dict) -> None:
    layers = list((summary.get("adafilter_gate_mean") or {}).keys())
    overall = summary.get("adafilter_gate_mean_overall")
    if overall is not None:
        st.metric("Filters using their fine-tuned copy (validation, mean)", f"{100 * overall:.1f}%")
    df = layer_epoch_frame(engine.store.metrics(rec.id))
    c1, c2 = st.columns(2)
    if not df.empty:
        c1.altair_chart(gate_heatmap(df, "epoch", "Fraction fine-tuned per layer and epoch", layers or
                                     sorted(df["layer"].unique())), width="stretch")
    by_class = summary.get("adafilter_gate_by_class") or {}
    if by_class:
        rows = [{"layer": l, "class": c, "fraction": v} for c, d in by_class.items() for l, v in d.items()]
        c2.altair_chart(gate_heatmap(pd.DataFrame(rows), "class", "Fraction fine-tuned per layer and class", layers),
                        width="stretch")
    st.caption("Each image chooses, filter by filter, between the pretrained and the fine-tuned weights. Layers that "
               "stay near 50% have not learnt a preference yet (common in short runs: the choice only matters once "
               "the fine-tuned filters have moved away from the pretrained ones).")
