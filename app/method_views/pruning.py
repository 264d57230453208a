"""Pruning on the Results page: sparsity, the final sparsity per layer when the run ended before its ramp,
the Bayesian search's trials, the shrunken model."""

from __future__ import annotations

import math

from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from app import layout, state, vega
from app.charts import FIT_WIDTH, LAYER_NAMES, LAYER_PADDING, layer_rows, rows_height
from app.method_views import points_delta, register_view
from engine.claims import shown_points
from engine.methods.pruning import nonzero_params, smaller_model_warning
from engine.words import and_words, plural


def trials_frame(trials: list[dict]) -> pd.DataFrame:
    """The pruning search's trials as a frame: trial, validation accuracy, sparsity, score, feasible, and one "prune
    <stage>" column per stage's fraction."""
    rows = []
    for t in trials:
        row = {"trial": t["trial"], "val_acc": t["val_acc"], "sparsity": t["sparsity"], "score": t["score"],
               "feasible": t.get("feasible", True)}
        row.update({f"prune {k}": v for k, v in (t.get("fractions") or {}).items()})
        rows.append(row)
    return pd.DataFrame(rows)


def trials_chart(df: pd.DataFrame, best_trial: int | None) -> alt.Chart:
    """Accuracy against sparsity, one point per trial, the chosen one highlighted."""
    df = df.assign(chosen=df["trial"] == best_trial)
    return alt.Chart(df).mark_circle(size=90).encode(
        x=alt.X("sparsity:Q", title="Sparsity", axis=alt.Axis(format="%")),
        y=alt.Y("val_acc:Q", title="Validation accuracy", axis=alt.Axis(format="%")),
        color=alt.Color("chosen:N", title="chosen", scale=alt.Scale(domain=[False, True], range=["#9ecae1", "#d62728"])),
        tooltip=["trial:Q", alt.Tooltip("val_acc:Q", format=".1%"), alt.Tooltip("sparsity:Q", format=".1%")],
    ).properties(title="Bayesian search: accuracy against sparsity per trial", height=260)


def fine_tune_chart(curve: list[float], before: float | None,
                    title: str | None = "The smaller model's fine-tune") -> alt.LayerChart | alt.Chart:
    """The channel-pruned model's validation accuracy (fractions) right after removing channels (epoch 0) and
    after each epoch of its fine-tune, with a labelled dashed rule at the full-size model's (`before`); the
    axis spans both, so the rule is never off the chart (a new user saw it above the axis, the line squashed).
    `title` None: no title (a heading above says it)."""
    named = {"title": title} if title else {}
    df = pd.DataFrame({"epoch": list(range(len(curve))), "val_acc": curve})
    values = [*curve, *([before] if before is not None else [])]
    pad = max(0.02, 0.1 * (max(values) - min(values)))
    y_scale = alt.Scale(domain=[max(0.0, min(values) - pad), min(1.0, max(values) + pad)], clamp=True)
    line = alt.Chart(df).mark_line(point=True, color="#1f77b4").encode(
        x=alt.X("epoch:O", title="Fine-tuning epochs of the smaller model (0: just after removing channels)",
                axis=alt.Axis(labelAngle=0)),
        y=alt.Y("val_acc:Q", title="Validation accuracy", axis=alt.Axis(format="%"), scale=y_scale),
        tooltip=["epoch:O", alt.Tooltip("val_acc:Q", format=".1%", title="validation accuracy")])
    if before is None:
        return line.properties(height=220, **named)
    rule = alt.Chart(pd.DataFrame({"before": [before], "label": ["full-size model"]}))
    return alt.layer(
        line, rule.mark_rule(strokeDash=[4, 4], color="#7f7f7f").encode(
            y=alt.Y("before:Q", scale=y_scale), tooltip=[alt.Tooltip("before:Q", format=".1%", title="full-size model")]),
        rule.mark_text(align="left", dx=4, dy=-7, color="#7f7f7f").encode(
            y=alt.Y("before:Q", scale=y_scale), x=alt.value(0), text="label:N"),
    ).properties(height=220, **named)


def fine_tune_words(curve: list[float], before: float | None) -> str:
    """What the smaller model's fine-tune did, from its validation accuracies (fractions; [0] right after
    removing channels, then one per epoch) and the full-size model's (`before`): what removing channels
    cost and how much of it the epochs won back, in points as the chart's percentages show them. "" when a
    figure is not a number (a run without validation images measures none: its chart is left out too)."""
    figures = [*curve, *([] if before is None else [before])]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in figures):
        return ""
    first, last = curve[0], curve[-1]
    if before is None:
        return (f"Removing channels left {100 * first:.1f}% on validation; after its fine-tune the smaller model "
                f"has {100 * last:.1f}%.")
    lost = shown_points(before, first)
    if lost <= 0:
        return (f"Removing channels cost no validation accuracy here ({100 * first:.1f}% against {100 * before:.1f}% "
                "for the full-size model, the dashed line).")
    won = shown_points(last, first)
    how = ("all of it back" if last >= before else f"{won:.1f} of them back" if won > 0 else
           "none of it back: more fine-tuning epochs or fewer channels removed would (Model and methods page, Pruning)")
    return (f"Removing channels cost {lost:.1f} points of validation accuracy at once (epoch 0, against the full-size "
            f"model's {100 * before:.1f}%, the dashed line); the smaller model's fine-tune won {how}.")


def fine_tune_live_view(points: list[dict]) -> None:
    """The smaller model's fine-tune as its epochs end, on the Train page: the points a structured pruning run
    streams (engine.methods.pruning.FINE_TUNE_STREAM: epoch 0 just after removing channels, then one per epoch,
    validation accuracy as a fraction, the full-size model's as "before"). The run's own charts stop at its
    last epoch, and a new user saw nothing move for the fine-tune's 10 epochs."""
    ordered = sorted(points, key=lambda p: p["epoch"])
    curve, before = [p["val_acc"] for p in ordered], ordered[-1].get("before")
    epochs, done = ordered[0].get("epochs") or 0, len(ordered) - 1
    figures = [*curve, *([] if before is None else [before])]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in figures):
        return  # no validation images: nothing measured to draw (Results leaves its chart out too)
    st.markdown(f"**The smaller model's fine-tune: {done} of {plural(epochs, 'epoch')}**" if done < epochs else
                f"**The smaller model's fine-tune: all {plural(epochs, 'epoch')}**")
    vega.altair_chart(fine_tune_chart(curve, before, title=None), width="stretch")  # the heading above names it
    if done == 0 and isinstance(before, (int, float)):
        st.caption(f"Removing channels left {100 * curve[0]:.1f}% on validation, against {100 * before:.1f}% for the "
                   "full-size model (the dashed line); each epoch of the fine-tune adds a point.")
    elif fine_tune_words(curve, before):
        st.caption(fine_tune_words(curve, before))


def search_words(search: dict) -> str:
    """The Bayesian search's choice in words, from summary.json's `pruning_search`: "The search chose to
    remove 40% of layer1's weights and 55% of layer2's: the trial with the best mix of accuracy and sparsity
    (Optuna's TPE sampler, 10 short trials)." (the caption showed the raw dict and "objective score")."""
    fractions = (search.get("best") or {}).get("fractions") or {}
    chosen = and_words([f"{100 * float(f):.0f}% of {stage}'s weights" for stage, f in fractions.items()] or ["nothing"])
    goal = {"score": "the best mix of accuracy and sparsity",
            "floor": "the most sparsity with accuracy within the allowed drop of the unpruned trial"}.get(
        search.get("objective"), f"the best {search.get('objective')}")
    sampler = {"tpe": "TPE", "gp": "Gaussian-process"}.get(search.get("sampler") or "tpe", str(search.get("sampler")))
    return (f"The search chose to remove {chosen}: the trial with {goal} (Optuna's {sampler} sampler, "
            f"{plural(len(search.get('trials') or []), 'short trial')}).")


def size_words(summary: dict) -> str:
    """Both models' sizes in one sentence, from a finished structured run's summary (`num_params`, pruning's
    figures, `structured`'s params_after and nonzero_after): a teacher read the full-size model's 3.36 M non-zero
    parameters beside the smaller model's 5.27 M parameters as the smaller model being the larger. "" without
    the smaller model's figures."""
    s = summary.get("structured") or {}
    after, total = s.get("params_after"), summary.get("num_params") or s.get("params_before")
    if not isinstance(after, int) or not isinstance(total, int):
        return ""
    nonzero = nonzero_params(summary)
    full = f"The full-size model has {total / 1e6:.2f} M parameters" + (
        f", {nonzero / 1e6:.2f} M of them non-zero after pruning" if nonzero is not None else "")
    kept = s.get("nonzero_after")
    if isinstance(kept, int) and kept < after:
        zeros = f", {kept / 1e6:.2f} M of them non-zero (it keeps the pruning's zeros)"
    elif s.get("sparsity_kept") and not isinstance(kept, int):  # a run from before the count was kept
        zeros = " (it keeps the pruning's zeros; their count was not measured in this run)"
    else:
        zeros = ", all of them in use"
    small = f"the smaller model has {after / 1e6:.2f} M{zeros}"
    why = (" Zeros make a file compress but are still stored and computed by ordinary kernels; removed channels are "
           "neither, which is why only the smaller model runs faster." if nonzero is not None else "")
    return f"{full}; {small}.{why}"


@register_view("pruning")
def pruning_view(engine, rec, summary: dict) -> None:
    """Pruning's view on Results: sparsity, the smaller model's size, CPU speed-up and
    accuracy, and the search's trials when it ran."""
    if summary.get("sparsity") is not None:
        row = layout.tiles()
        row.metric("Sparsity (prunable weights)", f"{100 * summary['sparsity']:.1f}%", width="content")
        s = summary.get("structured")
        if s:
            # short labels, the detail in their help: four tiles a row cut "Parameters after channel prun…"
            row.metric("Smaller model's size", f"{s['params_after'] / 1e6:.2f} M parameters",
                       f"{100 * (s['params_after'] / s['params_before'] - 1):+.0f}%", delta_color="inverse",
                       help=f"Parameters after channel pruning (structured pruning removed whole filters), against "
                            f"{s['params_before'] / 1e6:.2f} M before it" + (
                           f"; its file (safetensors) {s['file_bytes_after'] / 1e6:.1f} MB against "
                           f"{s['file_bytes_before'] / 1e6:.1f} MB. The sparse full-size model's file stays as large "
                           "as the dense one's: its zeros are stored too." if s.get("file_bytes_after") and
                           s.get("file_bytes_before") else "."), width="content")
            row.metric("CPU speed-up (batch 1)", f"{summary.get('latency_speedup', 0):.2f}x", width="content")
            tested = isinstance(s.get("test_acc"), float) and isinstance(s.get("test_acc_before"), float)
            split, acc, before = ("test", s["test_acc"], s["test_acc_before"]) if tested else \
                ("validation", s.get("val_acc") or 0, s.get("val_acc_before") or 0)
            # on the test images where the run has them, as the headline tiles above (it read validation beside them)
            # (a difference that rounds to 0.0 had a green "up" arrow: points_delta greys it)
            row.metric(f"Smaller model's {split} accuracy", f"{100 * acc:.1f}%", **points_delta(acc, before, "full size"),
                       help=f"{split.capitalize()} accuracy of the channel-pruned model against the full-size model "
                            f"before channels were removed ({100 * before:.1f}%)" + (
                           f"; on the validation images {100 * (s.get('val_acc') or 0):.1f}% against "
                           f"{100 * (s.get('val_acc_before') or 0):.1f}%." if tested else "."),
                       width="content")
        smaller = smaller_model_warning(summary)  # beside its tiles: the run's own warning is the full-size model's
        if s and size_words(summary):
            st.caption(size_words(summary))
        if smaller:
            st.warning(state.message_md(state.message_words(smaller)), icon=":material/warning:")
        if s and len(s.get("fine_tune_val_acc") or []) > 1 and fine_tune_words(s["fine_tune_val_acc"], s.get("val_acc_before")):
            vega.altair_chart(fine_tune_chart(s["fine_tune_val_acc"], s.get("val_acc_before")), width="stretch")
            st.caption(fine_tune_words(s["fine_tune_val_acc"], s.get("val_acc_before")))
    if summary.get("sparsity"):
        end = (summary.get("pruning") or {}).get("schedule")
        st.caption(f"What to look at: whether validation accuracy dips while the {end or 'pruning'} ramp removes "
                   "weights, and how much it recovers at the final sparsity (the ramp ends before the run does; "
                   "early in a run it can also keep rising through the ramp). Tung et al. 2017 and Zhu & "
                   "Gupta 2017 claim that pruning while fine-tuning keeps the dense accuracy; the reported accuracy "
                   "is the final, fully sparse model's.")
    # the sparsity of each layer is the training curves' "Sparsity per layer" chart above, every layer named;
    # only when the run ended before the ramp did (the rest pruned at the end) do its final values differ
    rest = (summary.get("pruning") or {}).get("pruned_rest_at_end")
    by_layer = summary.get("sparsity_by_layer") or {}
    if rest and by_layer:
        df, order = layer_rows(pd.DataFrame({"layer": list(by_layer), "sparsity": list(by_layer.values())}),
                               list(by_layer))
        st.caption(f"The run ended before its pruning ramp did: the last {100 * rest:.0f}% of the ramp was pruned at "
                   "the end, so the final sparsity per layer is below, not in the last epoch's chart above.")
        vega.altair_chart(alt.Chart(df).mark_bar().encode(
            x=alt.X("sparsity:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"), title="Sparsity"),
            y=alt.Y("layer:N", sort=order, title=None, axis=LAYER_NAMES),
            tooltip=["layer:N", "module:N", alt.Tooltip("sparsity:Q", format=".1%")],
        ).properties(title="Final sparsity per layer", height=rows_height(len(df), 16), autosize=FIT_WIDTH,
                      padding=LAYER_PADDING),
            width="stretch")
    search = summary.get("pruning_search")
    if search and search.get("trials"):
        df = trials_frame(search["trials"])
        vega.altair_chart(trials_chart(df, (search.get("best") or {}).get("trial")), width="stretch")
        st.dataframe(df, hide_index=True, width="stretch")
        st.caption(search_words(search))
    structured = Path(rec.run_dir) / "structured.safetensors"
    if structured.is_file():
        st.download_button("Download the channel-pruned model (safetensors)", structured.read_bytes(),
                           file_name=f"{rec.id}-structured.safetensors", mime="application/octet-stream",
                           key=f"struct_{rec.id}")
        st.caption("This file needs this project's code (`engine.structured.load_structured`). Verified TorchScript "
                   "and ONNX files of the smaller model, which need none, are on the Explain and export page "
                   "(Export tab).")
