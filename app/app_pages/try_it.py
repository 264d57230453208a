"""Page 6, Try it: show a finished run's model something new.

- Upload one or many images, or take one with the camera: each gets its top classes as bars, for
  the model variant the user picks (fine-tuned, best epoch, WiSE-FT at alpha, smaller channel-pruned,
  adversarially fine-tuned), and side by side for a second one when asked: another of its models,
  or another finished run's fine-tuned model on the same classes.
- Low confidence is flagged in plain words (engine.predict documents the two checks), and each
  image says what decoding did to it (EXIF rotation, colour mode, centre square or whole picture, size).
- Each prediction can open its attributions (engine.explain, as on the Explain page).
- A zip (or the images of a class-folder zip) is predicted in batches with a progress bar; the
  table sorts by confidence, downloads as CSV, and class folders give accuracy and a confusion matrix.

Everything runs through engine.predict, the same path as `python -m engine predict`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import streamlit as st

from app import charts, components, layout, state, vega
from app.app_pages.explain import (BARS_NOTE, FLAT_GRAD_CAM, any_flat, bars_heavy, colour_bar, map_caption,
                                   overlay, padded_box, upscale)
from app.claims_view import at_chance, guess_warning
from engine.errors import StudioError
from engine.explain import ATTRIBUTIONS
from engine.predict import (FIRST_PAGE_START, IMAGE_WORDS, LOW_CONFIDENCE, model_caution, own_figures,
                            own_image_note, sure_mistakes_words, unknown_folder_words)
from engine.words import first_and_more

RUN_KEY = "try_run"
SOURCE_KEY = "try_source"
COMPARE_KEY = "try_compare"
THRESHOLD_KEY = "try_threshold"
SOURCES = ("Upload images", "Camera", "A zip of images")
TOP_K = 3
TABLE_ROWS_IN_FULL = 50  # a zip's answers up to this many show without scrolling; more scroll in a box as tall
THUMB_PX = 44  # the table's pictures: the model's square shrunk to this size (a user could not tell files apart)
ROW_PX = THUMB_PX + 4  # the table's rows, tall enough for a picture (Streamlit's default is 35 px)
TALL_TABLE_PX = (TABLE_ROWS_IN_FULL + 1) * ROW_PX + 3  # 50 rows and the header, as Streamlit draws them
# one decimal: a whole percent read "50%" beside the note's "unsure (49.9%)" and the 50% bar
CONFIDENCE_FORMAT = "%.1f%%"
# Column widths (px) that fit the page's width, so that no column is cut at the table's edge (the
# horizontal scroll bar sat under a table taller than the window); double-clicking a cut cell shows it all
TABLE_WIDTHS = {"picture": THUMB_PX + 2, "file": 160, "true class": 90, "predicted": 90, "right": 40,
                "confidence": 75, "note": 160, "others": 165}  # 826 px: a 1280 px screen's wide page with the sidebar
# open; "others" fits two, "file" FILE_CHARS characters (at 140 px a new user's "…/1. healthy_0001.png" lost its "g")
DISPLAY_PX = 192  # small training images are enlarged (nearest neighbour) so their pixels stay crisp
METHOD_NAMES = {"integrated_gradients": "Integrated Gradients", "saliency": "Saliency", "grad_cam": "Grad-CAM",
                "occlusion": "Occlusion"}


OTHER_RUN = "run:"  # + a run id: the "Compare with" option for another run's fine-tuned model


@dataclass(frozen=True)
class Shown:
    """One model answering on the page: its predictor, which of its run's models (`variant`, `alpha`),
    the run folder it comes from and the label its answers carry."""

    p: Any
    variant: str
    alpha: float | None
    run_dir: str
    label: str


# ---- engine calls, cached --------------------------------------------------------------------------

def predictor(run_dir: str, datasets_dir: str, variant: str, alpha: float | None):
    """The engine's predictor for this model (an LRU in the engine: reruns reload nothing)."""
    from engine.predict import load_predictor

    return load_predictor(Path(run_dir), variant, alpha if variant == "wise" else None, Path(datasets_dir))


@st.cache_data(max_entries=64, show_spinner=False)
def decoded(tag: str, _data: bytes, name: str, size: int, crop_at: float = 0.5,
            fit: str = "crop") -> tuple[np.ndarray, list[str]]:
    """(uint8 [3, size, size] as numpy, what decoding did), decoded as in training (`fit`: the run's data.fit); a
    non-square picture's square kept `crop_at` along its longer side (engine.predict.decode_bytes; 0.5, the centre,
    as training). Cached by
    `tag`, the bytes' `digest` (`_data` is not hashed again: a 5 MB photo was hashed eight times per redraw)."""
    from engine.predict import decode_bytes

    image, notes = decode_bytes(_data, name, size, crop_at=crop_at, fit=fit)
    return image.numpy(), notes


CROP_KEY_PREFIX = "try_crop_"  # + the image's digest: which part of a non-square picture the model sees


@st.cache_data(max_entries=64, show_spinner=False)
def crop_options(tag: str, _data: bytes) -> list[str]:
    """The places a non-square picture's square can be kept (engine.predict.crop_place's words): left, centre,
    right for a landscape picture, top, centre, bottom for a portrait one; [] for a square or near-square picture
    (sides within 5%) or an unreadable one. Cached per picture by `tag`, the bytes' `digest`: reading a PNG's EXIF
    decodes it (89 ms at 12 MP)."""
    dims = picture_dims(tag, _data)  # measured once per picture for the scale line and the ends' hint too
    if dims is None or max(dims) < 1.05 * min(dims):  # near-square: its three squares are all but the same
        return []
    return ["left", "centre", "right"] if dims[0] > dims[1] else ["top", "centre", "bottom"]


def crop_choice(tag: str) -> float:
    """The crop position (engine.predict.CROP_AT: 0, 0.5 or 1) the user chose for this picture with
    `crop_control`, drawn under it (its value from the last redraw, or kept for a refresh); 0.5, the centre, as
    training crops, until they choose. `tag`: the picture's `digest`."""
    from engine.predict import CROP_AT

    key = CROP_KEY_PREFIX + tag
    state.seed_choice(key)
    if key not in st.session_state:  # the control's start (a default beside a seeded value makes Streamlit warn)
        st.session_state[key] = "centre"
    return CROP_AT.get(st.session_state[key], 0.5)


@st.cache_data(max_entries=64, show_spinner=False)
def preview(tag: str, _data: bytes) -> np.ndarray:
    """engine.data.upright_preview of an uploaded picture (uint8 [H, W, 3]), decoded once per picture (`tag`, its
    `digest`): each crop position draws its outline on it (engine.data.outline_square)."""
    from engine.data import upright_preview

    return upright_preview(_data)


def whole_picture(tag: str, data: bytes, crop_at: float, options: list[str]) -> None:
    """A non-square picture whole, the square the model sees outlined in red, in "What was done to the image": the
    page showed only the square, and a teacher could not show a class what was cut away. Nothing for a square or
    near-square picture (no `options`: `crop_options`), or when the bytes cannot be read (the answer above said
    why)."""
    if not options:
        return
    from engine.data import outline_square

    got = state.attempt("drawing the whole picture", preview, tag, data)
    if got.ok:
        st.image(outline_square(got.value, crop_at),
                 caption="The whole picture; the square the model sees is outlined in red.")


def crop_control(where, tag: str, options: list[str]) -> None:
    """Under a non-square picture, in the column `where`: which part of it the model sees, among `options`
    (`crop_options`; none for a square picture): a landscape photo's subject off centre was cut away, and only "What
    was done to the image" said so. Kept for a refresh. `tag`: the picture's `digest`."""
    if not options:
        return
    key = CROP_KEY_PREFIX + tag
    place = where.radio(
        "Part of the picture the model sees", options, key=key, horizontal=True,
        help="The model sees squares, so the middle square of a wider or taller picture is kept, as in training. "
             "If what matters sits nearer one end, choose that end's square.")
    state.remember_choice(key, place or "centre", default="centre")
    if place and place != "centre":  # the run's own images are known by their centre squares (engine.predict)
        where.caption("With this part of the picture the studio cannot check whether the picture is one the run "
                      "trained on: it knows its training pictures by their middle squares.")


def run_stamp(run_dir: str) -> Any:
    """engine.runs.summary_stamp of a run folder: cached answers keyed by it follow a run continued since."""
    from engine.runs import summary_stamp

    return summary_stamp(Path(run_dir))


@st.cache_data(max_entries=64, show_spinner=False)
def attribution(run_dir: str, datasets_dir: str, variant: str, alpha: float | None, image: np.ndarray,
                target: int, method: str, stamp: Any = None) -> np.ndarray:
    """H x W map in [0, 1] for one image and target class (engine.explain.attribute). `stamp`: the run's
    engine.runs.summary_stamp, so that a stopped run continued since gets its new model's maps."""
    import torch

    from engine.explain import attribute

    p = predictor(run_dir, datasets_dir, variant, alpha)
    with p.lock:
        return attribute(p.model, torch.from_numpy(image)[None], torch.tensor([target]), method)[0].numpy()


def digest(data: bytes) -> str:
    """First 16 hex digits of the SHA-256 of `data`: names an uploaded file's content in cache keys."""
    return hashlib.sha256(data).hexdigest()[:16]


# ---- widgets ----------------------------------------------------------------------------------------

def no_finished_run(all_runs) -> None:
    """What Try it shows when no run has finished: where to train one."""
    st.info("No finished run yet. Train one first; then its model answers for your images here.",
            icon=":material/info:")
    st.page_link("app_pages/train.py", label="Go to training", icon=":material/arrow_forward:")




def offered_models(variants: dict[str, str], summary: dict) -> dict[str, str]:
    """The run's models ({variant: label}, engine.predict.available_variants) as the pickers offer them,
    each model once: the best epoch only when it is not the last one (or the end model was pruned
    further after it) or is the only one (a stopped run's), and an adversarial run's fine-tuned model, its
    robust one, not again as "adversarial"."""
    from engine.predict import best_epoch

    variants = dict(variants)
    epochs = best_epoch(summary.get("history") or [])
    pruned_after = (summary.get("pruning") or {}).get("pruned_rest_at_end")  # end model pruned further
    if "best" in variants and len(variants) > 1 and epochs is not None and epochs[0] == epochs[1] and not pruned_after:
        del variants["best"]
    variants.pop("adversarial", None)  # its fine-tuned model, named so by engine.predict.variant_label
    return variants


def comparison_default(variants: dict[str, str], first: tuple[str, float | None],
                       others: Sequence[str] = ()) -> tuple[str, float]:
    """(variant, alpha) the "Compare with" slot opens on: for a WiSE-FT mix at alpha < 1, the fine-tuned
    model (the mix's alpha-1 end, what the slider trades against); for the fine-tuned end itself, the mix
    at alpha 0 (the starting model); otherwise the mix, the best epoch or another of the run's models; for a
    run with no other model, the first of `others` (other runs' options, newest first: comparable_runs),
    never the model already shown where there is another."""
    if first[0] == "wise" and (first[1] if first[1] is not None else 1.0) < 1.0 and "fine_tuned" in variants:
        return "fine_tuned", 1.0
    other = "wise" if "wise" in variants else ("best" if "best" in variants else "fine_tuned")
    if other == first[0] and first[0] != "wise":  # a different model to compare with, where there is one
        other = next((v for v in variants if v != first[0]), next(iter(others), other))
    return other, 0.0


def comparable_runs(engine, rec) -> dict[str, tuple[str, str, str, dict]]:
    """The other finished runs whose fine-tuned model can answer beside `rec`'s: the same classes in
    the same order, the same image size and the same way to a square (data.fit; the image is decoded once).
    {OTHER_RUN + id: (run folder,
    option label as the run pickers label runs, the run's name for its answers' titles (its option label
    when it has the name of `rec`), its config)},
    newest first."""
    visible = state.runs(engine)
    runs = [r for r in visible if r.status == "finished"]
    mine = components.read_summary(str(rec.run_dir)).get("classes")
    def form(config: dict) -> tuple:  # what the image is decoded to: the same for both models
        data = config.get("data") or {}
        return data.get("image_size"), data.get("fit") or "crop"

    fits = [r for r in runs if r.id != rec.id and form(r.config) == form(rec.config)
            and mine and components.read_summary(str(r.run_dir)).get("classes") == mine]
    labels = state.run_labels(fits, with_status=False, among=visible)
    return {OTHER_RUN + r.id: (str(r.run_dir), f"{labels.get(r.id, r.name)}: fine-tuned",
                               r.name if r.name != rec.name else labels.get(r.id, r.name), r.config) for r in fits}


def load_models(run_dir: str, ds: str, chosen: list[tuple[str, float | None]],
                others: dict[str, tuple[str, str, str, dict]]) -> list[Shown] | None:
    """The models chosen ((variant, alpha) of the run in `run_dir`, or OTHER_RUN + id for another run's
    fine-tuned model, from `comparable_runs`), loaded; None when one cannot be (its message is shown).
    Another run that learnt nothing is said to, as the first run is."""
    models = []
    with st.spinner("Loading the model ..."):
        for variant, a in chosen:
            where, what, label = run_dir, variant, None
            if variant.startswith(OTHER_RUN):  # another run's fine-tuned model
                where, what, label = others[variant][0], "fine_tuned", others[variant][2]
                chance = at_chance(components.read_summary(where), others[variant][3])
                if chance:  # as for the first run, above answers that can look sure
                    words = guess_warning(chance)
                    st.warning(f"{state.md_text(label)}: {words[:1].lower()}{words[1:]}", icon=":material/warning:")
            got = state.attempt("loading the model", predictor, where, ds, what, a)
            if not got.ok:
                return None
            # another run's answers say which of its models answers, as the first run's do
            models.append(Shown(got.value, what, a, where, f"{label}: fine-tuned" if label else got.value.label))
    return models


SHORT_LABEL_CHARS = 30  # about what a picker a third of the page wide shows at 1280 px


def picked_cautions(summary: dict, chosen: list[tuple[str, float | None]]) -> list[str]:
    """The warnings of the picked models (variant, WiSE-FT alpha or None) beyond the run's own, shown above
    them: a smaller channel-pruned model or a WiSE-FT mix below alpha 1 at or near guessing
    (engine.predict.model_caution), each once, settings named by their labels. The run's warning is the
    fine-tuned model's, and a mix at alpha 1 is that model: it gets none here (it read twice)."""
    said = (model_caution(summary, v, a) for v, a in chosen
            if v == "structured" or (v == "wise" and a is not None and a < 1))
    return [state.message_words(w) for w in dict.fromkeys(said) if w]


def short_label(label: str) -> str:
    """A model's label as a picker shows it: without the explanation in brackets it ends with ("Best epoch" for
    "Best epoch (highest validation accuracy; ...)"); the whole label goes under the picker."""
    return label[:label.rfind(" (")] if label.endswith(")") and " (" in label else label


def label_detail(label: str) -> str:
    """What a picker's box does not show of a model's `label` (`short_label`): the explanation in its last
    brackets, capitalised ("Channel-pruned, faster" for "Smaller (channel-pruned, faster)"), or the whole label
    when it is too long for the box; "" when the box shows it all."""
    short = short_label(label)
    if short != label:
        detail = label[len(short) + 2:-1]
        return detail[:1].upper() + detail[1:]
    return label if len(label) > SHORT_LABEL_CHARS else ""


def smaller_hint(summary: dict, variants: dict[str, str], picked: str) -> str:
    """Under the Model picker, when the run's smaller, channel-pruned model (structured pruning) answers its test
    images better than the picked full-size model: both test accuracies and where to pick it; "" otherwise. A
    teacher's Try it opened on a pruning run's full-size model (27.3% test) while its smaller one had 67.2%."""
    s = summary.get("structured") or {}
    small, full = s.get("test_acc"), s.get("test_acc_before")
    if picked == "structured" or "structured" not in variants or picked not in ("fine_tuned", "best") \
            or not all(isinstance(v, (int, float)) for v in (small, full)) or small - full < 0.005:
        return ""
    return (f"This run's smaller model answered {100 * small:.1f}% of its test images right, against "
            f"{100 * full:.1f}% for the full-size model it was cut from: pick '{short_label(variants['structured'])}' "
            "above to try it.")


def model_picker(rec, variants: dict[str, str], slot: str, default: str, alpha: float, label: str):
    """(variant, alpha or None) chosen in this slot; alpha only for the WiSE-FT mix."""
    key = f"try_variant_{slot}_{rec.id}"
    state.seed_choice(key)  # a refresh keeps the user's model
    if st.session_state.get(key) not in variants:
        st.session_state[key] = default if default in variants else (
            "fine_tuned" if "fine_tuned" in variants else next(iter(variants)))
    variant = st.selectbox(label, list(variants), key=key, format_func=lambda v: short_label(variants[v]))
    state.remember_choice(key, variant)
    said = label_detail(variants[variant])
    if said:
        st.caption(state.md_text(said))  # what the box leaves out ("Best epoch (highest va…"), not its name again
    if variant != "wise":
        return variant, None
    akey = f"try_alpha_{slot}_{rec.id}"
    if akey not in st.session_state and state.kept_choice(akey + ":seed") == alpha:
        state.seed_choice(akey)  # a refresh keeps the user's alpha, unless Results has chosen another since
        st.session_state[akey + ":seed"] = alpha
    if st.session_state.get(akey + ":seed") != alpha:  # follows the alpha chosen on Results when that changes
        st.session_state[akey] = st.session_state[akey + ":seed"] = alpha
    a = st.slider("alpha (0 = starting model, 1 = fine-tuned)", 0.0, 1.0, step=0.05, key=akey,
                  help="The WiSE-FT mix of the starting and the fine-tuned weights.")
    state.remember_choice(akey, float(a))
    state.remember_choice(akey + ":seed", alpha)
    return variant, round(float(a), 2)


# ---- one image -----------------------------------------------------------------------------------------

def framed(picture: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] with a 1-pixel grey frame around it, [H + 2, W + 2, 3]: a white picture stays
    visible on the white page."""
    return np.pad(picture, ((1, 1), (1, 1), (0, 0)), constant_values=160)


def precision_words(amp_dtype, brief: bool = False, as_evaluated: bool = True) -> str:
    """", in bfloat16 (shorter numbers, faster here) as the run was evaluated; the exported files compute in float32
    (full precision), ..." when the
    model answers in reduced precision (engine.devices:
    bf16 on a CPU that has it), else "": a user compared 49.5% here with 48.8% from the exported float32 file.
    `brief`: ", in bfloat16" alone, under the later images of a batch (the whole sentence under each of six read
    as noise to a new user). `as_evaluated` (engine.predict.Predictor.as_evaluated) False: the run was evaluated
    on another kind of device, and its precision there is not said to be this one."""
    if amp_dtype is None:
        return ""
    if brief:
        return f", in {str(amp_dtype).removeprefix('torch.')}"
    # the formats in plain words beside their names: a teacher's class knows neither
    name = str(amp_dtype).removeprefix("torch.") + " (shorter numbers, faster here)"
    return (f", in {name}{' as the run was evaluated' if as_evaluated else ''}; the exported files compute in "
            "float32 (full precision), which can move a percentage by about a point")


def verdict(p, answer, said: set | None = None) -> None:
    """The low-confidence flag in plain words, or a short line with the answer (neutral colour: the
    page does not know the true class of the user's image). `said`: the (model, kind) pairs of unfamiliar
    flag ("content", "flat") this page has explained at length already, in that model's column (updated):
    later ones are brief."""
    if answer.low_confidence:
        kind = (id(p), answer.far_by)  # one predictor per model shown: its column
        brief = said is not None and answer.unfamiliar and kind in said
        if said is not None and answer.unfamiliar:
            said.add(kind)
        # plain text naming the user's classes (the command line prints it too): shown as it is
        st.warning(state.md_text(p.explanation(answer, brief=brief)), icon=":material/help:")  # own-image note too
    else:
        name, prob = answer.top[0]  # the model's answer, not a verdict: no green tick (it read as "correct")
        st.info(f"It says **{state.md_text(name)}** ({100 * prob:.0f}%)", icon=":material/label:")
        own = own_image_note(answer.own, answer.own_copy, answer.own_class, name)
        if own:
            st.caption(":material/info: " + state.md_text(own))  # the user's class names, shown as they are


def answer_columns(n_models: int) -> list:
    """The picture's column, then one per model: the picture's holds DISPLAY_PX in a 1280 px window
    beside two models' answers too."""
    return st.columns([1] + [2 if n_models == 1 else 1.5] * n_models, gap="medium")


def explain_view(ds: str, models: list[Shown], image: np.ndarray, answers: list, key: str) -> None:
    """Attributions of each model's answer for this image, as on the Explain page."""
    head = st.columns([3, 1])
    method = head[0].selectbox("Attribution method", list(ATTRIBUTIONS), key=f"try_method_{key}",
                               index=list(ATTRIBUTIONS).index("grad_cam"),  # as Explain opens: the map a user can read
                               format_func=lambda m: METHOD_NAMES.get(m, m), help=ATTRIBUTIONS["grad_cam"])
    head[1].image(colour_bar(), caption="low → high influence", width=160)
    st.caption(ATTRIBUTIONS[method])
    if any(a.unfamiliar for a in answers):
        st.warning("This image was flagged as unfamiliar: a map shows what drove the answer, not that the answer "
                   "means anything.", icon=":material/help:")
    picture = image.transpose(1, 2, 0).astype(np.float32) / 255.0
    cols = answer_columns(len(models))[1:]  # each map under its model's answer
    heats, heavy = [], False
    for col, model, answer in zip(cols, models, answers):
        target = model.p.classes.index(answer.top[0][0])
        with st.spinner(f"{METHOD_NAMES[method]} for {model.label} ..."):
            try:
                m = attribution(model.run_dir, ds, model.variant, model.alpha, image, target, method,
                                run_stamp(model.run_dir))
            except StudioError as exc:  # e.g. an image too small for Grad-CAM
                col.info(f"{METHOD_NAMES[method]}: {exc}", icon=":material/info:")
                continue
        # a fixed width: with the default the caption's length set each map's size (two maps side by side differed)
        box = padded_box(image, model.p.fit)
        heavy = heavy or bars_heavy(m, box) is not None
        col.image(upscale((np.clip(overlay(picture, m), 0, 1) * 255).astype(np.uint8), DISPLAY_PX),
                  caption=map_caption(f"{state.md_text(model.label)}: why {state.md_text(answer.top[0][0])}", m, box),
                  width=DISPLAY_PX)
        heats.append(m)
    if method == "grad_cam" and any_flat(heats):
        st.caption(FLAT_GRAD_CAM)
    if heavy:
        st.caption(BARS_NOTE)


def device_words(device) -> str:
    """A torch device as a user reads it: "the CPU", "the GPU" (its index when there are several)."""
    kind, index = getattr(device, "type", str(device)), getattr(device, "index", None)
    if kind == "cpu":
        return "the CPU"
    if kind == "mps":
        return "the Apple GPU"
    return "the GPU" + (f" {index}" if index else "")


def kind_caution(model: Shown, image: np.ndarray) -> str | None:
    """engine.chance.picture_kind_words for one decoded picture (uint8 [3, S, S]) and a model whose held-out figures
    are the run's own (the fine-tuned model, a WiSE-FT mix at alpha 1): where the run is weaker on greyscale (or
    colour) pictures by more than luck and this picture is one, the figures that say so. None otherwise."""
    import torch

    from engine.chance import picture_kind_words
    from engine.data import is_greyscale

    if not own_figures(model.variant, model.alpha):
        return None
    greyscale = bool(is_greyscale(torch.from_numpy(image)[None])[0])
    return picture_kind_words(components.read_summary(model.run_dir), greyscale)


def other_part_hint(tag: str, data: bytes, options: list[str], crop_at: float) -> str | None:
    """Under a flagged answer (unsure or unfamiliar) on the middle square of a wider or taller picture (`options`:
    `crop_options`; `crop_at` 0.5): that only that square was answered, how much of the picture it is, and that an
    end can be chosen under the picture. None otherwise. A bioacoustics researcher's call near a clip's end was
    "great_tit (74%)" on the middle square and "cuckoo (95%)" on the right one, and nothing suggested trying it."""
    dims = picture_dims(tag, data)
    if not options or crop_at != 0.5 or dims is None:
        return None
    side = "width" if dims[0] > dims[1] else "height"
    ends = "left or right" if side == "width" else "top or bottom"
    return (f"Only the middle square of this picture was answered ({100 * min(dims) / max(dims):.0f}% of its {side}). "
            f"If what tells the classes apart lies nearer one end, choose the {ends} part under the picture.")


@st.cache_data(max_entries=64, show_spinner=False)
def picture_dims(tag: str, _data: bytes) -> tuple[int, int] | None:
    """engine.predict.upright_size of a picture, once per picture (`tag`, its bytes' `digest`)."""
    from engine.predict import upright_size

    return upright_size(_data)


def scale_caution(model: Shown, tag: str, data: bytes) -> str | None:
    """engine.predict.scale_words for a picture (`data`, its `tag`) and the training pictures of `model`'s run: that
    it is several times larger or smaller than they are, and what that means if its subject is too. None otherwise."""
    from engine.predict import scale_words
    from engine.words import run_picture_shape

    return scale_words(picture_dims(tag, data), run_picture_shape(components.read_summary(model.run_dir)))


def sure_caution(model: Shown, confidence: float, brief: bool = False) -> str | None:
    """For an answer of `confidence` (its top probability, a fraction) at engine.chance.SURE or more, from a model
    whose held-out figures are the run's own, where the run's sure answers were right less often than it was sure by
    more than luck (engine.chance.reliability): how often such answers were right (`brief`: in a few words, under a
    later picture). None otherwise. An ecologist's badgers were called deer at 83-94%, and the bar alone read as a
    promise."""
    from engine.chance import SPLIT_WORDS, SURE, reliability

    if confidence < SURE or not own_figures(model.variant, model.alpha):
        return None
    rel = reliability(components.read_summary(model.run_dir))
    if rel is None or not rel.oversure or rel.sure is None:
        return None
    right, n, _ = rel.sure
    if brief:
        return f"Answers this sure were right {100 * right / n:.1f}% of the time."
    return (f"Answers this sure ({100 * SURE:.0f}% or more) were right on {right} of {n} "
            f"{SPLIT_WORDS.get(rel.split, rel.split)} images ({100 * right / n:.1f}%): check this one before relying "
            f"on it.")


def few_caution(model: Shown) -> str | None:
    """engine.chance.few_training_words of the run behind `model` (the classes it learnt from few training
    pictures beside a large one, or never saw in training), or None."""
    from engine.chance import few_training_words

    return few_training_words(components.read_summary(model.run_dir))


def image_result(ds: str, models: list[Shown], name: str, data: bytes, threshold: float,
                 said: set | None, tag: str) -> bool:
    """One image: the picture as the model sees it, its top classes per model, the flag (brief when
    `said` holds its kind: see `verdict`), attributions. `tag`: the bytes' `digest`. False when the bytes are not
    a readable image (the message is shown)."""
    size, fit = models[0].p.image_size, models[0].p.fit
    # cached: a PNG's EXIF is read by decoding it; a square picture has no choice, nor a run that keeps whole pictures
    options = crop_options(tag, data) if fit == "crop" else []
    crop_at = crop_choice(tag) if options else 0.5
    got = state.attempt(f"reading {name}", decoded, tag, data, name, size, crop_at, fit)
    if not got.ok:
        return False
    image, notes = got.value
    cols = answer_columns(len(models))
    cols[0].image(framed(upscale(image.transpose(1, 2, 0), DISPLAY_PX)),
                  caption=f"{state.md_text(name)} (as the model sees it)", width=DISPLAY_PX)
    crop_control(cols[0], tag, options)
    if pages := next((n for n in notes if n.startswith(FIRST_PAGE_START)), None):  # not only in the closed expander:
        cols[0].caption(f":material/auto_stories: {pages[:1].upper()}{pages[1:]}.")  # an archivist's 2-page letter
    with cols[0].expander("What was done to the image"):
        st.markdown("\n".join(f"- {n}" for n in notes) or "- decoded as in training")
        whole_picture(tag, data, crop_at, options)
    answers = []
    import torch

    lines = max(len(charts.probability_title_lines(m.label)) for m in models)  # side by side, their bars at one height
    for col, model in zip(cols[1:], models):
        p = model.p
        t0 = time.perf_counter()
        (answer,) = p.predict(torch.from_numpy(image)[None], TOP_K, threshold=threshold)
        ms = 1000 * (time.perf_counter() - t0)
        answers.append(answer)
        with col:
            wide = len(models) == 1  # side by side, the axis's words are cut: a caption wraps them
            vega.altair_chart(charts.topk_chart(charts.topk_frame(answer.top, model.label), model.label, threshold,
                                                classes=len(p.classes), words_on_axis=wide, lines=lines),
                              width="stretch")
            if not wide and (words := charts.topk_words(len(answer.top), threshold, len(p.classes), under_axis=True)):
                st.caption(words)
            verdict(p, answer, said)
            if answer.low_confidence and (other := other_part_hint(tag, data, options, crop_at)):
                st.caption(f":material/crop: {other}")
            if caution := kind_caution(model, image):
                st.caption(f":material/contrast: {caution}")
            if scale := scale_caution(model, tag, data):
                st.caption(f":material/zoom_in: {scale}")
            brief = said is not None and ("sure", id(p)) in said  # said in full under an earlier picture
            if sure := sure_caution(model, answer.top[0][1], brief):
                st.caption(f":material/speed: {sure}")
                if said is not None:
                    said.add(("sure", id(p)))
            if (few := few_caution(model)) and (said is None or ("few", id(p)) not in said):
                st.caption(f":material/info: {state.md_text(few)}")  # under the first picture each model answers
                if said is not None:
                    said.add(("few", id(p)))
            told = said is not None and ("precision", id(p)) in said  # said in full under an earlier image
            if said is not None:
                said.add(("precision", id(p)))
            st.caption(f"answered in {ms:.0f} ms on {device_words(p.device)}"
                       + precision_words(p.amp_dtype, told, p.as_evaluated))
    key = f"{tag}_{'_'.join(f'{m.variant}{m.alpha}{Path(m.run_dir).name}' for m in models)}"
    # the switch belongs to the image: turning the comparison on or off (other models) keeps it as it
    # was, and so does a refresh
    explain_key = f"{EXPLAIN_KEY_PREFIX}{tag}"
    state.seed_choice(explain_key)
    shown = st.toggle("Why? Show attributions", key=explain_key)
    state.remember_choice(explain_key, shown, default=False)
    if shown:
        explain_view(ds, models, image, answers, key)
    st.divider()
    return True


# ---- a zip of images ----------------------------------------------------------------------------------

def csv_text(result, top_k: int) -> str:
    """A folder's predictions as CSV text, the columns of `predict`'s CSV with `top_k` answers per image, after a
    byte-order mark: a download is opened in a spreadsheet, and Excel reads a CSV without one in the computer's
    legacy code page ("pÃªche" for "pêche"); pandas and csv with encoding="utf-8-sig" read past it."""
    from engine.predict import csv_columns, result_rows

    buf = io.StringIO("\ufeff")
    buf.seek(0, io.SEEK_END)
    writer = csv.DictWriter(buf, fieldnames=csv_columns(top_k))
    writer.writeheader()
    writer.writerows(result_rows(result, top_k))
    return buf.getvalue()


FILE_CHARS = 22  # what the file column shows at its width; longer paths keep their end, the file's name


def shown_paths(paths: list[str]) -> list[str]:
    """The table's file column: each path without the folders every path starts with (a zip's wrapper
    folder), and a long one cut at the start ("…/birds/birds_012.jpg"), so that the file's name shows
    rather than its first folders; names that would then read alike keep what tells them apart. The CSV
    keeps the whole paths."""
    parts = [p.split("/") for p in paths]
    common = len(state.wrapper_folders(paths))
    rest = ["/".join(q[common:]) for q in parts]
    shown = [_tail(r) for r in rest]
    twice = {s for s, n in Counter(shown).items() if n > 1}
    if not twice:
        return shown
    # one name in several folders: the class folder kept ("…/Stop sign/img_10.jpg"), else the split
    # ("train/…/b.jpg" and "valid/…/b.jpg"), else as much of the path's end as fits
    for form in (_with_folder, lambda r: _tail(r, keep_first=True), lambda r: "…" + r[-(FILE_CHARS - 1):]):
        tried = [form(r) if s in twice else s for r, s in zip(rest, shown)]
        if len(set(tried)) == len(tried):
            return tried
    return [_tail(r, keep_first=True) if s in twice else s for r, s in zip(rest, shown)]


def _with_folder(path: str) -> str:
    """The file's name and its folder's ("…/Stop sign/img_10.jpg"), its start cut to FILE_CHARS characters."""
    if len(path) <= FILE_CHARS or path.count("/") < 1:
        return path
    shown = "…/" + "/".join(path.split("/")[-2:])
    return shown if len(shown) <= FILE_CHARS else "…" + shown[-(FILE_CHARS - 1):]


def _tail(path: str, keep_first: bool = False) -> str:
    """`path` in at most FILE_CHARS characters: whole, else without its first folders ("…/birds/b.jpg"),
    or with `keep_first` without the folders after the first ("valid/…/b.jpg"), else the end of the
    file's name."""
    if len(path) <= FILE_CHARS or "/" not in path:
        return path if len(path) <= FILE_CHARS else "…" + path[-(FILE_CHARS - 1):]
    first, rest = path.split("/", 1)
    head = first + "/…/" if keep_first else "…/"
    while "/" in rest and len(head + rest) > FILE_CHARS:
        rest = rest.split("/", 1)[1]
    shown = head + rest
    return shown if len(shown) <= FILE_CHARS else "…" + shown[-(FILE_CHARS - 1):]


def thumb_url(thumb: np.ndarray) -> str:
    """A table cell's picture: uint8 [H, W, 3] as a JPEG data URL (Pillow, quality 85; a few hundred bytes at
    THUMB_PX), the form Streamlit's ImageColumn shows."""
    import base64

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(thumb).save(buf, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def sure_wrong(row: dict) -> str:
    """A table row's note for an answer wrong though 90% or more sure, where its folder names the class: the
    row's own flag (`engine.predict.is_sure_mistake`); "" otherwise."""
    from engine.predict import is_sure_mistake

    return "wrong, though sure" if is_sure_mistake(row) else ""


def pages_tag(row: dict) -> str:
    """A table row's note for a file of several pictures, of which the first was answered: "page 1 of 2"; ""
    otherwise (engine.predict.first_page_words in full in the CSV)."""
    return f"page 1 of {row['pages']}" if row.get("pages", 1) > 1 else ""


def table(result, pictures: list[str] | None = None) -> pd.DataFrame:
    """One row per image, least confident first: a table to sort by any column (confidence in percent;
    "note": why an answer is flagged, or that the image is one of the run's own, in a few words), with a first
    column of `pictures` (`thumb_url`s, one per row of `result`) when given."""
    files = shown_paths([r["path"] for r in result.rows])
    rows = [{"file": f, "true class": r["true"] or "", "predicted": r["top"][0][0],
             "right": "" if r["true"] is None else ("✓" if r["top"][0][0] == r["true"] else "✗"),
             "confidence": 100 * r["top"][0][1],
             "note": "; ".join(w for w in (r.get("why", ""), sure_wrong(r), pages_tag(r)) if w),
             "others": ", ".join(f"{c} {100 * p:.0f}%" for c, p in r["top"][1:] if round(100 * p) >= 1)}
            for f, r in zip(files, result.rows)]
    df = pd.DataFrame(rows, columns=["file", "true class", "predicted", "right", "confidence", "note", "others"])
    if pictures:
        df.insert(0, "picture", pictures)
    if not (df["true class"] != "").any():
        df = df.drop(columns=["true class", "right"])
    if not (df["note"] != "").any():  # its room goes to the class names (a clinician's were cut beside it, empty)
        df = df.drop(columns=["note"])
    return df.sort_values("confidence", kind="stable").reset_index(drop=True)


CLASS_COLUMNS = ("true class", "predicted")
TABLE_FIT_PX = sum(TABLE_WIDTHS.values())  # the table's room in a 1280 px window (every column at TABLE_WIDTHS)
OTHERS_MAX_PX = 330  # the "others" column at most
OTHERS_MIN_PX = 100  # ... and at least, where a long note takes its room: one runner-up ("Red fox 12%")
NOTE_MAX_PX = 330  # the "note" column at most
COLUMN_HELP = {"note": "Why the answer is flagged, or which of the run's own images it is. A cell cut at the "
                       "column's edge shows all its words when you double-click it.",
               "others": "The next most likely classes, with their probabilities."}
CELL_CHAR_PX, CELL_PAD_PX, CLASS_COLUMN_MAX_PX = 7, 16, 170  # a class name's characters in a cell, its padding


def table_widths(df: pd.DataFrame) -> dict[str, int]:
    """Pixel widths of `table`'s columns: TABLE_WIDTHS, with the class columns widened to their longest name (at
    CELL_CHAR_PX a character, at most CLASS_COLUMN_MAX_PX), then the "note" column to its longest cell (at most
    NOTE_MAX_PX; the "others" column gives way, down to OTHERS_MIN_PX), then the "others" column to its longest cell
    (at most OTHERS_MAX_PX), out of the room the columns left out leave, so the table stays within TABLE_FIT_PX (a
    1280 px window). "Seborrhoeic keratos" was cut beside an empty note column; a note showed its first 20
    characters ("unfamiliar (unlike t…") beside runners-up with room to spare."""
    widths = {c: TABLE_WIDTHS[c] for c in df.columns if c in TABLE_WIDTHS}
    free = TABLE_FIT_PX - sum(widths.values())

    def fit(c: str, most: int) -> int:  # the column's longest cell, in px, at most `most`
        return min(most, CELL_CHAR_PX * int(df[c].astype(str).str.len().max() or 0) + CELL_PAD_PX)

    def need(c: str, most: int) -> int:
        return max(0, fit(c, most) - widths[c])

    needs = {c: need(c, CLASS_COLUMN_MAX_PX) for c in CLASS_COLUMNS if c in widths and len(df)}
    for i, c in enumerate(sorted(needs, key=needs.get)):  # the smaller need first: what it leaves goes to the other
        grow = max(0, min(needs[c], free // (len(needs) - i)))
        widths[c] += grow
        free -= grow
    if "note" in widths and len(df):  # why an answer is flagged comes before the runners-up
        want = need("note", NOTE_MAX_PX)
        grow = min(want, free)
        free -= grow
        if "others" in widths and want > grow:  # the runners-up give way: to their own width where it is less,
            # else down to OTHERS_MIN_PX (one runner-up)
            content = fit("others", OTHERS_MAX_PX)
            floor = OTHERS_MIN_PX if content > widths["others"] else max(OTHERS_MIN_PX, content)
            took = max(0, min(want - grow, widths["others"] - floor))
            widths["others"] -= took
            grow += took
        widths["note"] += grow
    if "others" in widths and len(df):  # what is left: the runners-up ("Melanoma 6%, Seborrhoeic k…" was cut)
        widths["others"] += max(0, min(need("others", OTHERS_MAX_PX), free))
    return widths


def batch_accuracy(res) -> None:
    """A zip's accuracy where its folders name the run's classes (with and without the run's own
    training images, and the confusion matrix), or why there is none; the note on the run's own images."""
    metrics, own = res.metrics(), res.own_note()
    if own:
        st.info(own, icon=":material/info:")
    if metrics is not None:
        row = layout.tiles()
        row.metric("Accuracy", f"{100 * metrics['accuracy']:.1f}%", width="content")
        row.metric("Balanced accuracy", f"{100 * metrics['balanced_accuracy']:.1f}%", width="content",
                   help="The mean of the per-class accuracies: a rare class counts as much as a common one.")
        row.metric("Images in class folders", metrics["labelled"], width="content")
        fair = res.metrics(without_training=True)
        if fair is not None and fair["labelled"] < metrics["labelled"]:
            st.caption(f"Without the run's training images: accuracy {100 * fair['accuracy']:.1f}%, balanced "
                       f"accuracy {100 * fair['balanced_accuracy']:.1f}% ({state.plural(fair['labelled'], 'image')}).")
        vega.altair_chart(charts.confusion_chart(charts.confusion_frame(metrics["confusion"], res.classes),
                                                 "Confusion matrix on this batch"),
                          width=charts.confusion_px(len(res.classes), classes=res.classes))
        wrapper = state.wrapper_folders([r["path"] for r in res.rows])  # the whole name, not the table's cut one
        wrong = res.sure_mistakes()
        if sure := sure_mistakes_words(wrong, [state.without_wrapper(r["path"], wrapper) for r in wrong]):
            st.warning(state.md_text(sure), icon=":material/priority_high:")  # the table lists them last
    if res.unknown_folders and metrics is None:
        st.info("No accuracy for this zip: its folders (" + ", ".join(
            state.md_text(unknown_folder_words(f, res.classes)) for f in res.unknown_folders[:8])
                + (", …" if len(res.unknown_folders) > 8 else "") + ") are not named after this run's classes ("
                + ", ".join(state.md_text(c) for c in res.classes)
                + "). To measure it, put the images in folders named after the classes.", icon=":material/info:")
    elif res.unknown_folders:
        st.info("These folders are not classes of this run, so their images count for no accuracy: "
                + ", ".join(state.md_text(unknown_folder_words(f, res.classes)) for f in res.unknown_folders)
                + ". Name a folder as its class to count it.")


def zip_scale_caution(res, run_dir: str) -> str | None:
    """engine.predict.batch_scale_words for a zip's answers (`res`: a FolderResult) and the training pictures of the
    run in `run_dir`, the files named as the table names them: a single picture's size was said, a zip's not."""
    from engine.predict import batch_scale_words
    from engine.words import run_picture_shape

    return batch_scale_words(res.rows, shown_paths([r["path"] for r in res.rows]),
                             run_picture_shape(components.read_summary(run_dir)))


def folder_section(engine, rec, run_dir: str, ds: str, p, variant: str, alpha, threshold: float) -> None:
    """A zip of new images answered by the model: the table (class, probability, flags), accuracy when its folders
    name the classes, skipped files with reasons, and the CSV to download."""
    from engine.predict import predict_folder

    st.caption("A zip of images: loose, or in folders named after the classes "
               f"({', '.join(state.md_text(c) for c in p.classes)}), also inside train/, val/ and test/ folders, to "
               "measure accuracy on a new batch.")
    up = st.file_uploader("Zip of images", type=["zip"], key="try_zip", on_change=_changed, args=("zip",))
    given, new = kept_or_new(engine, "zip", [(up.name, up.getvalue())] if up is not None else [],
                              "Add another zip above to replace it.")
    if not given:
        return
    up_name, data = given[0]
    key = ("try_folder", rec.id, variant, alpha, digest(data), threshold)
    result = st.session_state.get("try_folder_result")
    if result is None or result[0] != key:
        saved = state.attempt("saving the upload", engine.save_upload, data, ".zip")
        if not saved.ok:
            st.session_state["try_unusable_zip"] = new  # the zip kept before stays, also once this one is removed
            return
        bar = st.progress(0.0, text="Predicting ...")
        t0 = time.perf_counter()

        def progress(done: int, total: int) -> None:
            rate = done / max(time.perf_counter() - t0, 1e-9)
            bar.progress(done / total, text=f"{done}/{total} images · {rate:.0f} images/s · "
                                            f"ETA {(total - done) / max(rate, 1e-9):.0f} s")

        got = state.attempt(f"predicting {up_name}", predict_folder, p, saved.value, Path(ds), TOP_K, 64, progress,
                            threshold, name=up_name, advice="Upload a .zip of images: loose, or in class folders.",
                            thumbs=THUMB_PX)
        bar.empty()
        if not got.ok:
            st.session_state["try_unusable_zip"] = new
            return
        pictures = [thumb_url(t) for t in got.value.thumbs]  # once: the table is drawn again on every rerun
        st.session_state["try_folder_result"] = result = (key, got.value, pictures)
    res, pictures = result[1], result[2]
    if not res.rows:  # every file failed: an error, as on the command line, not an empty table
        st.error(f"No readable image in '{state.md_text(up_name)}': "
                 + first_and_more([f"{state.md_text(s.path)}: {s.reason}" for s in res.skipped], 5, "; ",
                                  " (and {} more)"), icon=":material/error:")
        st.session_state["try_unusable_zip"] = new
        return
    if new:
        state.remember_try_inputs(engine, "zip", given)  # predicted (now or before): kept for a refresh
        st.session_state.pop("try_unusable_zip", None)
    if p.familiarity_note():
        st.caption(p.familiarity_note())
    st.markdown(f"**{state.plural(len(res.rows), 'image')}** predicted by *{p.label}* at {res.images_per_sec:.0f} images/s; "
                f"answers flagged: {res.flag_words()}; {state.plural(len(res.skipped), 'file')} skipped.")
    if scale := zip_scale_caution(res, run_dir):
        st.caption(f":material/photo_size_select_large: {state.md_text(scale)}")
    batch_accuracy(res)
    # Streamlit's default height shows 10 rows; a zip of a few dozen images reads best without a scroll bar
    height = "content" if len(res.rows) <= TABLE_ROWS_IN_FULL else TALL_TABLE_PX
    shown = table(res, pictures)
    widths = table_widths(shown)
    st.dataframe(shown, hide_index=True, width="stretch", height=height, row_height=ROW_PX,
                 column_config={
                     **{c: st.column_config.Column(c, width=w, help=COLUMN_HELP.get(c)) for c, w in widths.items()},
                     "picture": st.column_config.ImageColumn(  # no room for a heading: the pictures say what they are
                         "", width=TABLE_WIDTHS["picture"], help="The picture as the model saw it (its square)."),
                     "confidence": st.column_config.ProgressColumn(  # the answer bars' blue: red read as a warning
                         "confidence", format=CONFIDENCE_FORMAT, min_value=0, max_value=100,
                         width=widths["confidence"], color=charts.TOP_BAR_COLOUR)})
    st.download_button("Download predictions (CSV)", csv_text(res, min(TOP_K, len(res.classes))),
                       file_name=f"predictions-{rec.id}.csv", mime="text/csv", icon=":material/download:",
                       key="try_csv")
    if res.skipped:
        with st.expander(f"{state.plural(len(res.skipped), 'file')} skipped"):
            wrapper = state.wrapper_folders([r["path"] for r in res.rows])  # as the answers' table names files
            st.dataframe(pd.DataFrame([{"file": state.without_wrapper(s.path, wrapper), "reason": s.reason}
                                       for s in res.skipped]), hide_index=True,
                         height="content" if len(res.skipped) <= TABLE_ROWS_IN_FULL else TALL_TABLE_PX)


# ---- the page -------------------------------------------------------------------------------------------

def _changed(kind: str) -> None:
    """on_change of Try it's uploaders and camera: the user added or removed files (a widget that is
    only redrawn empty, after another page or source, does not call it)."""
    st.session_state[f"try_changed_{kind}"] = True


def kept_or_new(engine, kind: str, given: list[tuple[str, bytes]],
                replace_hint: str) -> tuple[list[tuple[str, bytes]], bool]:
    """(files, new): the files the widget holds now (new: the caller keeps the usable ones for a
    refresh with state.remember_try_inputs); when it holds none, the ones kept from before (a refresh,
    another page or source, a new tab), with a note and a button to clear them. The user emptying the
    widget (its x) forgets them."""
    changed = st.session_state.pop(f"try_changed_{kind}", False)
    if given:
        return given, True
    unusable = st.session_state.pop(f"try_unusable_{kind}", False)  # the widget held only files that failed
    if changed and not unusable:  # the user removed them: forget, do not bring them back
        state.remember_try_inputs(engine, kind, [])
        return [], False
    kept = state.kept_try_inputs(kind)
    if kept:
        row = layout.button_row()  # the button as wide as its word
        names = state.md_text(", ".join(name for name, _ in kept))
        row.container(width="stretch").caption(f":material/history: Kept from before: {names}. {replace_hint}")
        if row.button("Clear", key=f"try_clear_{kind}", icon=":material/close:"):
            state.remember_try_inputs(engine, kind, [])
            st.rerun()
    return kept, False


def images_from_user(engine) -> tuple[str, list[tuple[str, bytes]], bool]:
    """(kind, [(file name, bytes)], new): the images or the photo to answer for (see kept_or_new)."""
    source = st.session_state.get(SOURCE_KEY, SOURCES[0])
    if source == SOURCES[0]:
        # no `type=` filter: a file of another kind (an iPhone's HEIC) gets the studio's own message, with what to do
        files = st.file_uploader(f"Images ({IMAGE_WORDS})", accept_multiple_files=True,
                                 key="try_files", on_change=_changed, args=("images",),
                                 help="Several at once are fine. Phone photos are turned upright.")
        return "images", *kept_or_new(engine, "images", [(f.name, f.getvalue()) for f in files or []],
                                      "Add other images above to replace them.")
    shot = st.camera_input("Take a photo", key="try_camera", on_change=_changed, args=("camera",))
    return "camera", *kept_or_new(engine, "camera", [("camera photo", shot.getvalue())] if shot is not None else [],
                                  "Take another photo to replace it.")


def run_notes(rec, summary: dict) -> None:
    """Above the answers, what holds for all of them: a stopped run's best epoch answers
    (components.stopped_note), and a run at the level of guessing answers by guessing, however sure it looks."""
    if rec.status == "stopped":
        st.info(components.stopped_note(Path(rec.run_dir), summary, rec.config), icon=":material/stop_circle:")
    chance = at_chance(summary, rec.config)  # its answers look confident but mean nothing: say so first
    if chance:
        st.warning(guess_warning(chance), icon=":material/warning:")


def render() -> None:
    """Draw the Try it page (6): a finished run's model answering photos, files and zips."""
    engine = state.get_engine()
    st.title("6 · Try it")
    st.caption("Show a trained model something new: a photo, a few files, or a whole zip.")
    rec = components.finished_run_picker(
        engine, RUN_KEY, "Any finished run, or a stopped run's best epoch so far: its model answers for your images.",
        no_finished_run, stopped=True)
    if rec is None:
        return
    run_dir, ds = str(rec.run_dir), str(engine.datasets_dir)
    from engine.predict import available_variants, run_summary
    from engine.runs import default_variant

    summary = state.attempt("reading the run", run_summary, Path(run_dir), stopped_ok=True)
    if not summary.ok:
        return
    run_notes(rec, summary.value)
    variants = offered_models(available_variants(Path(run_dir)), summary.value or {})
    alpha = state.wise_alpha(engine, rec)[0] if "wise" in variants else 1.0  # the alpha chosen on Results
    c1, c2, c3 = st.columns([2, 2, 1.4])  # fixed: an empty wrapping cell collapses, and Compare would jump
    with c1:
        first = model_picker(rec, variants, "a", default_variant(Path(run_dir)), alpha, "Model")  # as `predict`
        hint = smaller_hint(summary.value or {}, variants, first[0])
        if hint:
            st.caption(":material/info: " + hint)
    with c3:
        state.seed_choice(COMPARE_KEY)
        compare = st.toggle("Compare two models", key=COMPARE_KEY,
                            help="Two models side by side. It opens on a WiSE-FT mix against the fine-tuned "
                                 "model (alpha 1) it was mixed from, or the fine-tuned model against the starting "
                                 "one (the mix at alpha 0); pick any two of the run's models, or another finished "
                                 "run's fine-tuned model trained on the same classes at the same size.")
        state.remember_choice(COMPARE_KEY, bool(compare))
        state.seed_choice(THRESHOLD_KEY)
        st.session_state.setdefault(THRESHOLD_KEY, LOW_CONFIDENCE)
        threshold = st.slider("Unsure under", 0.05, 0.95, step=0.05, key=THRESHOLD_KEY, format="%.2f",
                              help="Answers whose top probability is under this are flagged as unsure.")
        state.remember_choice(THRESHOLD_KEY, float(threshold))
    chosen = [first]
    others = comparable_runs(engine, rec) if compare else {}
    if compare and len(variants) == 1 and not others:  # the one model beside itself says nothing
        with c2:
            st.caption(":material/info: Nothing to compare with yet: this run has one model, and no other finished "
                       "run was trained on the same classes at the same image size. Train another (another seed, "
                       "say) and it is offered here.")
    elif compare:
        # not the model picked above (a teacher compared "Smaller" with "Smaller"): but two WiSE-FT alphas may meet
        offered = {k: v for k, v in {**variants, **{k: v[1] for k, v in others.items()}}.items()
                   if k != first[0] or k == "wise"}
        with c2:
            second = model_picker(rec, offered, "b", *comparison_default(variants, first, list(others)), "Compare with")
        chosen.append(second)
    for said in picked_cautions(summary.value or {}, chosen):
        st.warning(state.message_md(said), icon=":material/warning:")
    models = load_models(run_dir, ds, chosen, others)
    if models is None:
        return
    p = models[0].p
    st.caption(f"Classes: {', '.join(state.md_text(c) for c in p.classes)} · {p.image_size} px · answers on "
               f"{device_words(p.device)}. Every picture gets one of these classes, whatever it shows: the % "
               "weighs these classes against each other only.")
    remembered = (st.session_state.get(state.TRY_KEY) or {}).get("source")
    if SOURCE_KEY not in st.session_state and remembered in SOURCES:  # a refresh opens where the user was
        st.session_state[SOURCE_KEY] = remembered
    source = st.radio("Images from", SOURCES, key=SOURCE_KEY, horizontal=True)
    state.remember_try_source(source)
    if st.session_state.get(SOURCE_KEY) == SOURCES[2]:
        if compare:
            st.caption(":material/info: A zip is answered by the first model (Model) alone; the comparison is for "
                       "images and photos. Pick the other model above to see its answers for the zip.")
        with state.guarded("predicting the zip"):
            folder_section(engine, rec, run_dir, ds, p, first[0], first[1], threshold)
        return
    kind, images, new = images_from_user(engine)
    if not images:
        st.info("Add an image to see what the model says.", icon=":material/add_photo_alternate:")
    answer_images(engine, kind, images, new, ds, models, threshold)


EXPLAIN_KEY_PREFIX = "try_explain_"  # + the image's digest: its "Why? Show attributions" switch


def forget_explain_switches(digests: set[str]) -> None:
    """Forget the kept choices of images no longer shown, their attribution switches and crop places (the draft
    keeps only those changed from their defaults)."""
    kept = (st.session_state.get(state.TRY_KEY) or {}).get("choices") or {}
    for prefix, default in ((EXPLAIN_KEY_PREFIX, False), (CROP_KEY_PREFIX, "centre")):
        for k in [k for k in kept if k.startswith(prefix) and k[len(prefix):] not in digests]:
            state.remember_choice(k, default, default=default)


def answer_images(engine, kind: str, images: list[tuple[str, bytes]], new: bool, ds: str, models: list[Shown],
                  threshold: float) -> None:
    """Each image's answers (a repeated file once), then, for files the user just gave, the usable
    ones kept for a refresh (`kind`: images or camera)."""
    usable, first_named, said = [], {}, set()
    tags = [digest(data) for _, data in images]  # once per picture and redraw
    forget_explain_switches(set(tags))
    if images:  # about the run's models, not one image: said once above the answers (it was under each one)
        for note in dict.fromkeys(m.p.familiarity_note() for m in models):  # one run's models: once
            if note:
                st.caption(note)
    for (name, data), key in zip(images, tags):
        if key in first_named:  # the same bytes again: one answer (and widget keys)
            if name == first_named[key]:  # the same file given twice: kept once ("... is the same file as" itself)
                st.caption(f":material/content_copy: {state.md_text(name)} was given twice: its answer is above.")
                continue
            st.caption(f":material/content_copy: {state.md_text(name)} is the same file as "
                       f"{state.md_text(first_named[key])}: its answer is above.")
            usable.append((name, data))
            continue
        first_named[key] = name
        with state.guarded(f"predicting {name}"):
            if image_result(ds, models, name, data, threshold, said, tag=key):
                usable.append((name, data))
    if new and usable:  # kept for a refresh: the ones that could be used (a damaged file's message is not
        state.remember_try_inputs(engine, kind, usable)  # shown again); none usable keeps what was kept before,
        st.session_state.pop(f"try_unusable_{kind}", None)  # (these replaced them: removing these forgets them)
    elif new:  # also when the user then removes the failed files
        st.session_state[f"try_unusable_{kind}"] = True


if __name__ == "__main__":  # run as a page (st.Page executes it as __main__); importable for tests
    render()
