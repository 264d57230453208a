"""WiSE-FT on the Results page: the alpha slider, the accuracy-vs-shift curve, export at alpha."""

from __future__ import annotations

from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from app import layout, state, vega
from app.charts import FIT_WIDTH, METRIC_COLORS
from app.method_views import points_delta, register_view
from engine.claims import split_sizes
from engine.methods.wise_ft import curve_point, tied_alphas
from engine.metrics import top_point
from engine.predict import pick_rule_words

ACC = {"val_acc": "Validation (your data)", "ood_acc": "Corrupted images (OOD)",
       "ood_user_acc": "Your OOD set", "robust_acc": "Under attack (robust)"}


def curve_frame(curve: list[dict]) -> pd.DataFrame:
    """One row per (alpha, accuracy kind) with the kinds that were measured."""
    rows = [{"alpha": p["alpha"], "kind": label, "accuracy": p[k]}
            for p in curve for k, label in ACC.items() if p.get(k) is not None]
    return pd.DataFrame(rows, columns=["alpha", "kind", "accuracy"])


CURVE_TITLE = "WiSE-FT: accuracy along the weight path"


def curve_chart(df: pd.DataFrame, alpha: float | None, title: str | None = CURVE_TITLE) -> alt.Chart:
    """Accuracy against alpha, one line per kind in the colours the epoch charts use for the same
    quantities, on an axis zoomed to the data (a 5-point swing must be visible), with the chosen
    alpha marked (when there is one); `title` None: untitled, under a heading of the page's own."""
    kinds = [label for label in ACC.values() if label in set(df["kind"])]
    lo, hi = (float(df["accuracy"].min()), float(df["accuracy"].max())) if len(df) else (0.0, 1.0)
    pad = max(0.02, 0.1 * (hi - lo))
    lines = alt.Chart(df).mark_line(point=True).encode(
        x=alt.X("alpha:Q", title="alpha (0 = starting model, 1 = fine-tuned)", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("accuracy:Q", title="Accuracy (axis zoomed to the curve)", axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[max(0.0, lo - pad), min(1.0, hi + pad)], zero=False)),
        color=alt.Color("kind:N", title=None, legend=alt.Legend(orient="bottom", labelLimit=0),
                        scale=alt.Scale(domain=kinds, range=[METRIC_COLORS[k] for k, v in ACC.items() if v in kinds])),
        tooltip=["alpha:Q", "kind:N", alt.Tooltip("accuracy:Q", format=".1%")],
    )
    chart = lines if alpha is None else lines + alt.Chart(pd.DataFrame({"alpha": [alpha]})).mark_rule(
        color="#d62728", strokeDash=[4, 3]).encode(x="alpha:Q")
    # FIT_WIDTH: without it Streamlit's stretch squeezed the plot to a strip under a hidden title
    return chart.properties(height=300, autosize=FIT_WIDTH, **({"title": title} if title else {}))


def subset_note(config: dict, val_images: int | None = None) -> str | None:
    """What the curve's OOD accuracy is measured on, when it is a subset (wise_ft.ood_subset) of the
    `val_images` validation images (when known; a subset as large as them is all of them: no note)."""
    n = int(((config or {}).get("wise_ft") or {}).get("ood_subset") or 0)
    if n <= 0 or (val_images is not None and val_images <= n):
        return None
    return (f"On this curve, accuracy on corrupted images uses up to {n} validation images of each corruption, "
            "the classes taken in turn (a quicker curve; the setting \"validation images per corruption on the curve, "
            "at most\" at 0 takes all of them), so it can differ from the validation and OOD figures measured on every "
            "image.")


def curve_ood_words(config: dict, val_images: int | None = None) -> str:
    """Why the curve's OOD accuracy differs from the OOD figure at the top of Results: one severity (the
    epochs' own, else engine.methods.wise_ft.CURVE_SEVERITY), maybe a subset of the `val_images`
    validation images, against severities 1-5 on every validation image."""
    from engine.methods.wise_ft import CURVE_SEVERITY

    severity = int(((config or {}).get("eval") or {}).get("ood_severity_each_epoch") or CURVE_SEVERITY)
    n = int(((config or {}).get("wise_ft") or {}).get("ood_subset") or 0)
    images = f"up to {n} images of each corruption" if subset_note(config, val_images) else "every validation image"
    return (f"OOD here is the curve's: the corruptions at severity {severity} on {images}. The OOD figure at the top "
            "of the page averages severities 1-5 on every validation image, so the two differ.")


@register_view("wise_ft")
def wise_ft_view(engine, rec, summary: dict) -> None:
    """WiSE-FT's view on Results: the alpha slider over the mixes the run measured (an alpha typed beside it is
    computed then), the chosen mix's figures and the accuracies against alpha."""
    curve = summary.get("wise_curve") or []
    if not curve:
        st.info("This run has no WiSE-FT curve (it was stopped before the curve was computed).")
        return
    pruned = summary.get("sparsity")  # every mix keeps the pruning masks (engine.claims.wise_pruned_start)
    st.caption("Slide alpha to mix the starting weights (alpha 0: the pretrained network with a new last layer trained "
               "alone on your images" + (f", here with the {100 * pruned:.0f}% of weights pruning removed left out"
                                          if pruned else "") + ") with the "
               "fine-tuned ones (alpha 1): the slider's stops are the mixes the run measured, shown at once; an "
               "alpha between them is computed when you type it beside the slider.")
    alpha_panel(engine, rec, summary)


@st.fragment
def alpha_panel(engine, rec, summary: dict) -> None:
    """`wise_ft_view`'s slider and what it shows (the mix's figures, the curve, its download), redrawn alone when
    the slider moves: the whole Results page took 4.5 s per move on a teacher's projector. Choosing an alpha
    redraws the page (its tiles' note names the mix in use). A failure is shown in its place (state.guarded: the
    page's own guard is not around a fragment's redraw)."""
    with state.guarded("drawing the WiSE-FT slider"):
        alpha_view(engine, rec, summary)


def alpha_view(engine, rec, summary: dict) -> None:
    """`alpha_panel`'s content: the slider, the chosen mix's figures, the curve and the mix's download."""
    from engine.runs import load_run

    curve = summary.get("wise_curve") or []
    used, chosen = state.wise_alpha(engine, rec)  # what Explain, Try it and export use
    alpha = alpha_picker(rec.id, curve, used)
    alpha_choice(engine, rec, alpha, used, chosen, state.message_words(pick_rule_words(summary)))
    point = curve_point(curve, alpha)
    cache = st.session_state.setdefault("wise_points", {})
    if point is None:
        point = cache.get((rec.id, round(alpha, 4)))
    if point is None:
        with st.spinner(f"Evaluating the model at alpha {alpha:.2f} ..."):
            point = load_run(Path(rec.run_dir), engine.datasets_dir).wise_point(alpha)
        cache[(rec.id, round(alpha, 4))] = point
    end = curve[-1]
    row = layout.tiles()
    for k, label in ACC.items():
        if point.get(k) is not None:
            delta = {} if end.get(k) is None else points_delta(point[k], end[k], "fine-tuned")
            row.metric(label, f"{100 * point[k]:.1f}%", **delta, width="content",
                       help="On the curve's own images (see the note under the chart); the figures at the top of "
                            "the page use every image, so the two can differ." if k == "ood_acc" else None)
    val_images = sum(split_sizes(summary, "val")) or None
    note = subset_note(rec.config, val_images)
    if point.get("ood_acc") is not None:  # said where the two OOD figures meet the eye, not only on hover
        st.caption(curve_ood_words(rec.config, val_images))
    # the curve's plain reading (engine.claims.wise_ft_reading) is in the claim line above the panel
    extra = sorted({**{p['alpha']: p for p in curve}, **{p["alpha"]: p for p in cache_points(cache, rec.id)}}.values(),
                   key=lambda p: p["alpha"])
    vega.altair_chart(curve_chart(curve_frame(extra), alpha), width="stretch")
    if note:
        st.caption(note)
    best = top_point(curve, lambda p: p.get("ood_acc") or 0)  # ties: the larger alpha, as chosen_alpha
    if best is not None and best.get("ood_acc") is not None:
        tied = [f"{a:.2f}" for a in tied_alphas(curve, best)]
        also = f", the same as at alpha {', '.join(tied)}" if tied else ""  # the claim line may name one of them
        st.caption(f"Best OOD accuracy on the grid: {100 * best['ood_acc']:.1f}% at alpha {best['alpha']:.2f}{also} "
                   f"(validation {100 * best['val_acc']:.1f}%); fine-tuned model: OOD {100 * end['ood_acc']:.1f}%, "
                   f"validation {100 * end['val_acc']:.1f}%.")
    mix_download(engine, rec, alpha, used)


def mix_download(engine, rec, alpha: float, used: float) -> None:
    """The weights of the mix looked at (`alpha`) as safetensors, mixed on request and downloaded under the run's
    name like Explain's exports (state.download_name); its labels say which alpha, and that it is not the
    one the other pages use (`used`) when they differ. A download prepared for another alpha is not offered
    beside a slider that has moved on."""
    other = alpha != used
    label = f"Prepare the mix at alpha {alpha:.2f} for download" + (" (the alpha shown, not the run's)" if other else "")
    if st.button(label, icon=":material/download:", key=f"wx_{rec.id}",
                 help=(f"The weights of the mix shown here. Explain, Try it and export use alpha {used:.2f}: "
                       "choose this one with the button above to make it the run's.") if other else None):
        out = Path(rec.run_dir) / "exports" / f"wise_alpha_{alpha:.2f}.safetensors"
        out.parent.mkdir(parents=True, exist_ok=True)
        with st.spinner("Mixing the weights ..."):
            made = state.attempt("mixing the weights", lambda: load_run_for(engine, rec).export_wise(alpha, out))
        if made.ok:
            st.session_state[f"wise_export_{rec.id}"] = (str(out), alpha)
    ready = st.session_state.get(f"wise_export_{rec.id}")
    if isinstance(ready, tuple) and ready[1] == alpha and Path(ready[0]).is_file():
        path = Path(ready[0])
        st.download_button(f"Download the mix at alpha {alpha:.2f} (safetensors)", path.read_bytes(),
                           file_name=state.download_name(rec.name, rec.id, path.parent, path.name),
                           mime="application/octet-stream", key=f"wd_{rec.id}", icon=":material/download:")


def load_run_for(engine, rec):
    """The finished run `rec` loaded for its variants (engine.runs.load_run). Raises StudioError for a run whose
    files are gone or unreadable."""
    from engine.runs import load_run

    return load_run(Path(rec.run_dir), engine.datasets_dir)


def alpha_picker(run_id: str, curve: list[dict], used: float) -> float:
    """The alpha the user looks at (rounded to 0.01), from a slider whose stops are the `curve`'s alphas
    (instant: measured during the run; arrow keys step from one to the next) and a box that takes any
    alpha in [0, 1] (computed on demand); both start at `used` (the run's chosen alpha) and follow each
    other. Kept per run for the session (Streamlit forgets widget values when the page changes)."""
    grid = sorted({round(float(p["alpha"]), 2) for p in curve})
    look_key, slider_key, exact_key = f"wise_look_{run_id}", f"wise_alpha_{run_id}", f"wise_exact_{run_id}"
    look = round(float(st.session_state.setdefault(look_key, used)), 2)
    if slider_key not in st.session_state:
        st.session_state[slider_key] = min(grid, key=lambda a: (abs(a - look), a))
    st.session_state.setdefault(exact_key, look)

    def from_slider() -> None:
        st.session_state[look_key] = st.session_state[exact_key] = st.session_state[slider_key]

    def from_box() -> None:  # the slider goes to the nearest stop: it read 1.00 beside a typed 0.42
        st.session_state[look_key] = exact = round(float(st.session_state[exact_key]), 2)
        st.session_state[slider_key] = min(grid, key=lambda a: (abs(a - exact), a))

    left, right = st.columns([5, 1], vertical_alignment="bottom")
    left.select_slider("alpha", grid, key=slider_key, on_change=from_slider, format_func=lambda a: f"{a:.2f}",
                       help="The mixes the run measured. Explain, Try it and export keep using the alpha chosen "
                            "for the run until you press the button that chooses the one shown.")
    right.number_input("any alpha", 0.0, 1.0, step=0.01, format="%.2f", key=exact_key, on_change=from_box,
                       help="An alpha between the slider's stops, computed when you enter it (a second or two "
                            "on a CPU).")
    look = round(float(st.session_state[look_key]), 2)
    if look not in grid:
        below, above = max((a for a in grid if a < look), default=None), min((a for a in grid if a > look), default=None)
        between = f"between its stops {below:.2f} and {above:.2f}" if below is not None and above is not None \
            else "off its stops"
        st.caption(f":material/info: alpha {look:.2f}, typed beside the slider, lies {between}: the figures below "
                   "are its own, computed now; the slider shows the nearest stop.")
        # picking the stop the slider already shows changes nothing, so no event: this button does it
        st.button(f"Show the slider's stop, alpha {st.session_state[slider_key]:.2f}", key=f"wise_stop_{run_id}",
                  on_click=from_slider, icon=":material/undo:")
    return look


def alpha_choice(engine, rec, alpha: float, used: float, chosen: bool, rule: str) -> None:
    """Which alpha Explain, Try it and export use (`used`: the run's stored choice when `chosen`, else
    its own pick, made by `rule`: engine.predict.pick_rule_words), under the slider showing `alpha`; when the two
    differ, a button makes `alpha` the
    run's choice. Looking is not choosing: a teacher sliding through the mixes in a demonstration
    does not change the model the other pages explain and export."""
    if alpha == used and chosen:
        st.caption(f"Chosen for this run: alpha {alpha:.2f}. Explain, Try it and export use it.")
        return
    if alpha == used:
        st.caption(f"Not chosen yet: alpha {used:.2f} is shown, the run's own pick ({rule}). Explain, Try it and "
                   "export use it until you choose another: move the slider to look, then press the button that "
                   "appears under it.")
        return
    st.caption(f"Looking at alpha {alpha:.2f}. Explain, Try it and export use alpha {used:.2f} "
               + ("(chosen for this run)." if chosen else "(the run's own pick: none chosen yet)."))
    if st.button(f"Use alpha {alpha:.2f} for Explain, Try it and export", key=f"wise_use_{rec.id}",
                 icon=":material/check:",
                 help="Keeps this alpha with the run: the other pages explain, answer with and export this mix."):
        state.set_wise_alpha(engine, rec, alpha)
        st.rerun()  # the whole page, not only the slider's fragment: the tiles' note names the mix in use


def cache_points(cache: dict, run_id: str) -> list[dict]:
    """The mixes computed on request for run `run_id` (from `cache`, keyed (run id, alpha))."""
    return [p for (rid, _), p in cache.items() if rid == run_id]
