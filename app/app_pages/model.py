"""Page 2, Model and methods: presets, the backbone and its weights, the training knobs, and one
switch per fine-tuning method the engine registers (each with its settings, what it does, what to
watch, and its paper). Everything is read from the engine's registries: no list lives here."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import streamlit as st

from app import charts, components, layout, state, vega
from app.presets import PRESETS, icon, methods_words, offline_pretrained, preset_details_words, recipe_drift
from app.widgets import dataclass_widgets, field_widget, widget_key
from engine.backbones import BACKBONES, CHECKPOINT_SUFFIXES, FAMILY_TITLES, PRETRAINED_SOURCES, available_sources, backbone_title
from engine.config import ADVANCED_TITLE, RunConfig, check_bounds, probe_epochs_for, shown_setting
from engine.methods import METHODS, MethodSpec
from engine.optim import setup_extras
from engine.schedules import SCHEDULES, lr_curve, schedule_label
from engine.words import first_and_more

# Core config fields this page (or the Data page) draws with its own labels; any other field the
# engine adds later is drawn generically under "Other engine settings", so nothing is unreachable.
HANDLED_FIELDS = {
    "data": {"source", "ood_source", "source_name", "ood_source_name", "image_size", "val_fraction", "test_fraction", "min_images_per_class",
             "train_per_class", "drop_duplicates", "class_balance", "fit"},  # fit: the Data page's, by the shape note
    "backbone": {"name", "pretrained", "checkpoint"},
    "optim": {"optimizer", "lr", "lr_auto", "momentum", "nesterov", "weight_decay", "schedule", "warmup_fraction",
              "step_every_fraction", "step_gamma", "slow_start_fraction", "fast_decay_rate", "label_smoothing",
              "head_lr_mult", "trunk_lr_mult", "freeze_blocks", "linear_probe_epochs"},
    "train": {"epochs", "batch_size", "device", "amp", "channels_last", "augment", "flip", "greyscale", "threads",
              "deterministic", "compile"},
    "eval": {"ood", "ood_severity_each_epoch", "ood_subset_each_epoch", "eval_batch_size", "tta_flip", "robust", "robust_eps",
             "robust_steps", "robust_steps_each_epoch", "robust_subset", "autoattack"},
}
PRETRAINED_TEXT = {
    "bundled": "Weights that ship with the studio (pretrained offline on formula-drawn images): work without internet.",
    "imagenet": "torchvision's ImageNet weights: the strongest start for photos; downloaded once, then cached.",
    "none": "Random weights: training from scratch. Expect much lower accuracy on small datasets; a useful baseline.",
    "checkpoint": "Weights from a file you upload: safetensors or a PyTorch torch.save file (.pt, .pth, .pth.tar, "
                  ".bin, .ckpt); files that could run code are refused.",
}
LP_FT_URL = "https://arxiv.org/abs/2202.10054"


# ---- cached facts -----------------------------------------------------------------------------

@st.cache_data(show_spinner=False)
def backbone_facts(name: str, num_classes: int) -> dict:
    """Parameters of backbone `name` with a head of `num_classes` outputs, and their size in MB at float32 (cached)."""
    spec = BACKBONES[name]
    params = spec.num_params(num_classes)
    return {"params": params, "megabytes": params * 4 / 1e6}


@st.cache_data(show_spinner=False)
def trunk_block_count(name: str) -> int:
    """How many trunk blocks backbone `name` has (what "freeze the first N blocks" counts), built on the meta device
    (no memory, cached)."""
    import torch

    from engine.backbones import Classifier

    spec = BACKBONES[name]
    with torch.device("meta"):
        net = spec.builder(weights=None)
    return len(Classifier(net, spec, 2).trunk_blocks())


def fmt_params(n: int) -> str:
    """A parameter count in short form: "11.2 M", "850 k"."""
    return f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n / 1e3:.0f} k"


# ---- presets ----------------------------------------------------------------------------------

def _apply_preset(key: str) -> None:
    before = state.config()
    after, note = state.preset_for_data(PRESETS[key], before)  # its batch fitted to a small dataset
    note += state.STEP_WORDS if note else ""  # the fit's terms in plain words, right after it
    state.set_config(after)
    state.reset_widgets()
    if before.backbone.pretrained == "checkpoint" and before.backbone.checkpoint:
        note += (" It starts from your checkpoint, as before." if after.backbone.pretrained == "checkpoint" else
                f" It trains {backbone_title(after.backbone.name)}, so it starts from "
                f"{state.WEIGHTS_TEXT.get(after.backbone.pretrained, after.backbone.pretrained)}, not from your "
                f"checkpoint (made for {backbone_title(before.backbone.name)}).")
    if after.data.image_size != before.data.image_size:  # a photographer's 112 px went back to 64 px unsaid
        note += (f" Its image size is {after.data.image_size} px (it was {before.data.image_size} px): set Image "
                 "size again below to keep yours.")
    st.session_state["preset_applied"] = (key, note)


ADAMW_HIGHEST_LR = 0.005  # above this AdamW's fine-tuning is in SGD's range: the notice below offers a tenth


def adamw_rate_notice(cfg) -> None:
    """With AdamW at a rate meant for SGD (above ADAMW_HIGHEST_LR; the rate kept from SGD when the optimiser
    is switched), a warning and a button that sets a tenth of it. Nothing when the rate is found automatically."""
    lr = cfg.optim.lr
    if cfg.optim.optimizer != "adamw" or cfg.optim.lr_auto or lr <= ADAMW_HIGHEST_LR:
        return
    tenth = float(f"{lr / 10:.2g}")
    st.warning(f"AdamW fine-tunes at about a tenth of SGD's learning rate (typically 1e-4 to 1e-3): {lr:g}, an SGD "
               "rate, is likely to make this run diverge or learn little.", icon=":material/warning:")
    st.button(f"Use learning rate {tenth:g}", key="adamw_lr", icon=":material/build:", on_click=state.set_settings,
              args=({"optim.lr": tenth},), help="Sets the learning rate above; every setting can still be changed.")


def _lr_auto_on() -> None:
    """The drift warning's button: the automatic learning rate on, and its switch redrawn from the config."""
    state.update_section("optim", lr_auto=True)
    st.session_state.pop(widget_key("optim", "lr_auto"), None)


def presets_section() -> None:
    """The preset buttons, general presets then one demo per method, with the one in use marked and the note of the
    one just applied."""
    st.subheader("Start from a preset")
    cfg = state.config()
    in_use = [k for k, p in PRESETS.items() if state.is_preset(p, cfg)]  # once a rerun: each looks at the data
    demos = [k for k in PRESETS if k.endswith("_demo") and k not in ("quick_demo", "standard_demo")]
    general = [k for k in PRESETS if k not in demos]
    applied = st.session_state.pop("preset_applied", None)  # (key, note) of the preset just applied
    on_yours = on_your_images(cfg, in_use)
    for group in (general, demos):
        if group is demos and demos:
            st.caption("Method demos: each shows what one method does; run the Standard demo on the same data "
                       "to compare with plain fine-tuning.")
        # at most four to a row (words stay whole), the rows as even as they go: five are 3 + 2, not 4 + 1
        per_row = math.ceil(len(group) / math.ceil(len(group) / 4)) if group else 4
        for row in (group[i:i + per_row] for i in range(0, len(group), per_row)):
            draw_preset_row(row, in_use, per_row, applied=applied[0] if applied else None,
                            fitted=fitted_words(cfg) if applied and applied[1] else "", on_yours=on_yours)
    preset = state.preset_of(cfg, among=[PRESETS[k] for k in in_use])  # the one a run is named after
    recipe = preset.apply(cfg) if preset is not None else None
    fitted_said = bool(applied and applied[1])  # the note below, just applied, says how it was fitted
    if recipe is not None and recipe.train.batch_size != cfg.train.batch_size and not fitted_said:  # its card: the sample's
        st.caption(f":material/tune: {preset.title} is in use, fitted to your dataset: "
                   f"{fitted_batch_words(cfg, recipe)} on your images.")
    if applied:
        key, note = applied
        title = PRESETS[key].title
        # the card and a toast say it where one looks (a line below every card is out of sight of the button
        # pressed); this line only when there is more to say (a batch fitted to the data, a checkpoint kept)
        st.toast(f"Preset **{title}** applied.", icon=":material/check:")
        if note:
            st.success(f"Preset **{title}** applied.{note} Every setting below can still be changed.",
                       icon=":material/check:")


CARD_GAP = "1rem"  # Streamlit's gap="small" between the cards of a row
PRESET_CARD_PX = 176  # four cards to a line at 1280 px, three at 1024 px (a projector; at 190, two: two screens)


def fitted_words(cfg) -> str:
    """The batch and rate a preset just applied was fitted to (its card's confirmation): ", fitted to your
    images: batch 4, learning rate 0.0025"."""
    return f", fitted to your images: batch {cfg.train.batch_size}, learning rate {cfg.optim.lr:g}"


def on_your_images(cfg, in_use: list[str]) -> dict[str, str]:
    """For the presets in use (`in_use`) whose batch was fitted to the dataset, what their "What it does" adds to
    the recipe it gives (the sample's): "**On your images:** batch 8 at learning rate 0.005 ...". A clinician read
    "20 epochs of batch 32" there while the note below the cards said batch 8."""
    said = {}
    for key in in_use:
        recipe = PRESETS[key].apply(cfg)
        if recipe.train.batch_size != cfg.train.batch_size:
            said[key] = f"**On your images:** {fitted_batch_words(cfg, recipe)}."
    return said


def fitted_batch_words(cfg, recipe) -> str:
    """A preset's recipe (`recipe`) fitted to the user's dataset (`cfg`): "batch 8 at learning rate 0.005 instead of
    its 32 at 0.02, for more optimiser steps an epoch", said under the cards and in the card's What it does."""
    return (f"batch {cfg.train.batch_size} at learning rate {cfg.optim.lr:g} instead of its "
            f"{recipe.train.batch_size} at {recipe.optim.lr:g}, for more optimiser steps an epoch")


def draw_preset_row(keys: list[str], in_use: list[str], columns: int = 4, applied: str | None = None,
                    fitted: str = "", on_yours: dict[str, str] | None = None) -> None:
    """Preset cards of one width in a row that wraps: `columns` to a line sharing its width, each at least
    PRESET_CARD_PX (fewer to a line where the page is narrower): title (marked when it is in `in_use`,
    the presets the settings are), what it does, its button, and under it "Applied" when it is `applied`,
    the preset just applied (the message below every card was out of sight of the button pressed), with
    `fitted` (fitted_words) when its batch was fitted to the data: the card itself says its recipe's, and its "What
    it does" the batch in use (`on_yours`: `on_your_images`). The card
    gives the preset's tagline and its full description behind "What it does" (whole descriptions made the
    presets 2000 px tall). Four equal columns on a 1000 px window broke a popover's label into syllables."""
    # the cards share the line's width, `columns` of them to a full line (a 3-card line left the right third of a
    # 1366 px window empty), each at least PRESET_CARD_PX (they wrap on a narrow page), a shorter last line's
    # cards as wide as the full line's
    row_key = f"presets_{keys[0]}" if keys else "presets"
    st.html(f"<style>.st-key-{row_key} > div {{min-width: {PRESET_CARD_PX}px; "
            f"max-width: calc((100% - {columns - 1} * {CARD_GAP}) / {columns});}}</style>")
    row = st.container(horizontal=True, wrap=True, vertical_alignment="distribute", gap="small", key=row_key)
    for key in keys[:columns]:
        preset = PRESETS[key]
        # the card fills its line's height; "distribute" puts the text at the top and the button at the
        # bottom, so the buttons of a line up whatever the length of each description
        with row.container(border=True, width="stretch", height="stretch", vertical_alignment="distribute"):
            with st.container(gap="small"):
                st.markdown(f"**{preset.title}**" + (" :green-badge[:material/check: in use]" if key in in_use else ""))
                st.caption(preset.tagline or preset.describe())  # a preset registered without one: its description
                if switched := methods_words(preset):  # on the card, not only behind "What it does"
                    st.caption(f":material/toggle_on: {switched}")
            with st.container(gap="small"):  # at the card's foot, aligned across the row
                if preset.tagline or preset.details is not None:  # the recipe in full and what was measured with it
                    with st.popover("What it does", icon=":material/info:", width="stretch"):
                        st.markdown(preset_details_words(preset))
                        if key in (on_yours or {}):
                            st.markdown(on_yours[key])
                st.button(f"Use {preset.title}", key=f"preset_{key}", icon=icon(key), on_click=_apply_preset,
                          args=(key,), width="stretch")  # the card's width: a narrow window wraps words, not letters
                if key == applied:
                    # short: in a 190 px card the longer line made its row twice as tall (the note below says more)
                    st.success(f"Applied{fitted}." if fitted else "Applied to the settings below.",
                               icon=":material/check:")


# ---- backbone ---------------------------------------------------------------------------------

def backbone_section(engine) -> None:
    """The backbone choice, its pretrained weights (or the user's checkpoint) and its facts (parameters, file size,
    offline or not)."""
    cfg = state.config()
    st.subheader("Backbone")
    num_classes, _ = state.known_classes_and_train_size(cfg)
    left, right = st.columns([5, 4])  # the figures whole at 1280 px ("11.…" at [3, 2])
    with left:
        name = field_widget("backbone", cfg.backbone, "name", meta=dict(
            label="Pretrained network", choices=list(BACKBONES),
            labels={n: s.title for n, s in BACKBONES.items()},
            help="The network whose pretrained features are fine-tuned on your images."))
    if name != cfg.backbone.name:
        _switch_backbone(cfg, name)
        cfg = state.config()
    spec = BACKBONES[name]
    avail = available_sources(name)
    facts = backbone_facts(name, num_classes)
    with left:
        st.caption(spec.description)
    with right:
        row = layout.tiles()
        row.metric("Parameters", fmt_params(facts["params"]), help=f"With a new head for {num_classes} classes.",
                   width="content")
        row.metric("Model file", f"{facts['megabytes']:.0f} MB", width="content",
                   help="Size of the fine-tuned weights (float32 safetensors).")
        offline = [state.WEIGHTS_TEXT.get(k, k) for k in ("bundled", "imagenet") if avail.get(k)]
        row.metric("Offline", "yes" if offline else "no", width="content",  # "Offline weights" was cut at 1280 px
                   help="Whether pretrained weights are usable right now without internet: "
                        + (", ".join(offline) if offline else "none (ImageNet weights download on first use)") + ".")
    with st.expander("Compare all backbones", icon=":material/table:", key="x_backbones"):
        rows = []
        for n, s in BACKBONES.items():
            a, f = available_sources(n), backbone_facts(n, num_classes)
            rows.append({"backbone": s.title, "family": FAMILY_TITLES.get(s.family, s.family),
                         "parameters": fmt_params(f["params"]), "MB": round(f["megabytes"]),
                         "min px": s.fixed_image_size or s.min_image_size,
                         "bundled": "yes" if a["bundled"] else "no", "ImageNet": "cached" if a["imagenet"] else "download",
                         "command line": n, "about": s.description})
        # a static table: its text wraps, so every column and the whole description fit a 1280 px window
        st.table(pd.DataFrame(rows).set_index("backbone"))
        st.caption("MB: size of the weights file. min px: the smallest image size it works at. bundled: weights "
                   "that ship with the studio (offline). ImageNet: torchvision's weights, on this machine already "
                   "(cached) or downloaded on first use. command line: the name `python -m engine train --backbone` "
                   "takes.")

    options = [s for s in PRETRAINED_SOURCES if s != "bundled" or avail.get("bundled")]
    labels = {"bundled": "Bundled (offline)", "imagenet": "ImageNet" + ("" if avail.get("imagenet") else " (download)"),
              "none": "None (from scratch)", "checkpoint": "My checkpoint"}
    pretrained = field_widget("backbone", cfg.backbone, "pretrained", widget="radio", meta=dict(
        label="Start from these weights", choices=options, labels=labels,
        help="Fine-tuning starts from these weights; only the new classification head starts random."))
    st.caption(PRETRAINED_TEXT.get(pretrained, ""))
    note = st.session_state.get(state.WEIGHTS_NOTE_KEY)  # (what switching the backbone did, the weights it chose)
    if note is not None and note[1] != pretrained:  # the user chose other weights since: theirs stay
        st.session_state.pop(state.WEIGHTS_NOTE_KEY)
        st.session_state.pop(state.WEIGHTS_WANTED_KEY, None)
    elif note is not None:
        st.info(note[0], icon=":material/swap_horiz:")
        if state.WEIGHTS_WANTED_KEY not in st.session_state:  # "back to bundled weights" is said once; "from scratch" stays
            st.session_state.pop(state.WEIGHTS_NOTE_KEY)
    checkpoint = cfg.backbone.checkpoint
    if pretrained == "imagenet" and not avail.get("imagenet"):
        instead = ("choose the bundled weights instead, or another backbone" if avail.get("bundled") else
                   "choose a backbone with bundled weights ("
                   + ", ".join(b.title for b in BACKBONES.values() if b.has_bundled()) + ") instead")
        st.warning(f"The ImageNet weights for {spec.title} are not on this machine yet: the run downloads them "
                   f"first (about {facts['megabytes']:.0f} MB), which needs internet. Without internet the run stops "
                   f"with a message: {instead}.", icon=":material/cloud_download:")
    if pretrained == "checkpoint":
        checkpoint = checkpoint_upload(engine, name, checkpoint)
    state.update_section("backbone", pretrained=pretrained, checkpoint=checkpoint if pretrained == "checkpoint" else "")




def _switch_backbone(cfg: RunConfig, name: str) -> None:
    """A new backbone: keep usable weights and a legal image size; redraw those widgets. When the new
    backbone has no bundled weights the start changes to the best offline one, the page says so, and
    a later backbone that has them gets the bundled weights back (unless the user chose other
    weights meanwhile)."""
    spec = BACKBONES[name]
    pretrained = cfg.backbone.pretrained
    wanted = st.session_state.pop(state.WEIGHTS_WANTED_KEY, None)
    st.session_state.pop(state.WEIGHTS_NOTE_KEY, None)
    restored = wanted is not None and pretrained == wanted[1]  # the user has not chosen other weights since
    if restored:
        pretrained = wanted[0]
    if pretrained == "bundled" and not spec.has_bundled():
        pretrained = offline_pretrained(name)
        st.session_state[state.WEIGHTS_WANTED_KEY] = ("bundled", pretrained)
        st.session_state[state.WEIGHTS_NOTE_KEY] = (
            f"{spec.title} has no bundled weights, so this run would start from {state.WEIGHTS_TEXT[pretrained]}"
            + (" (expect much lower accuracy on a small dataset): choose ImageNet to download its weights (needs "
               "internet)" if pretrained == "none" else "")
            + ". A backbone with bundled weights gets them back.", pretrained)
    elif restored:
        st.session_state[state.WEIGHTS_NOTE_KEY] = (f"{spec.title} has bundled weights: the start is back to "
                                                    f"{state.WEIGHTS_TEXT['bundled']}.", pretrained)
    size = spec.fixed_image_size or max(cfg.data.image_size, spec.min_image_size)
    state.update_section("backbone", name=name, pretrained=pretrained,
                         checkpoint=cfg.backbone.checkpoint if pretrained == "checkpoint" else "")
    state.update_section("data", image_size=size)
    for key in (widget_key("backbone", "pretrained"), widget_key("data", "image_size")):
        st.session_state.pop(key, None)


def checkpoint_upload(engine, backbone: str, current: str) -> str:
    """The checkpoint uploader: the engine's own verdict on the file for this backbone, in its words.
    A file chosen before (this session or an earlier one) stays named with its verdict; earlier
    uploads can be picked again without uploading them twice."""
    upload = st.file_uploader("Upload a checkpoint", type=list(CHECKPOINT_SUFFIXES), key="upload_ckpt",
                              help="A state dict of the same architecture, alone or inside a training checkpoint "
                                   "(`state_dict`, `model`, `ema` ...). Layers whose names and shapes match are "
                                   "loaded. The classification head is replaced, except in a model this studio "
                                   "trained on exactly your dataset's classes: that one keeps its head, so training "
                                   "continues from its predictions. The file's contents decide its format, not its name.")
    check = state.last_check(state.config())
    classes = list(check.report.classes) if check is not None else None  # the chosen dataset's, when known
    memo = st.session_state.setdefault("ckpt_checks", {})  # (file, backbone, classes) -> the engine's verdict
    if upload is not None:
        suffix = "." + upload.name.rsplit(".", 1)[-1].lower() if "." in upload.name else ".bin"
        key = (upload.file_id, backbone, tuple(classes or ()))
        if key not in memo:
            saved = state.attempt("saving the checkpoint", state.store_upload, engine, upload.getvalue(), suffix)
            if not saved.ok:
                return current
            memo[key] = _check_checkpoint(str(saved.value), upload.name, backbone, classes)
            if memo[key][2] is None:
                state.remember_upload(engine, str(saved.value), "checkpoint", upload.name, upload.size)
            else:
                state.discard_refused_upload(engine, str(saved.value))
        path, report, error = memo[key]
        if error is not None:
            state.show_error(error, "reading the checkpoint")
            if current:  # said, so that the "Ready to train" line below is not read as this file's
                st.info(f"The next run still starts from **{state.md_text(state.checkpoint_name(current))}**, "
                        "the checkpoint chosen before this file.", icon=":material/info:")
            return current
        show_checkpoint_verdict(report, upload.name, backbone, classes)
        return path
    earlier = {state.upload_ref(u["sha256"]): u["name"] for u in state.uploads(engine, "checkpoint")}
    if earlier:
        current = st.selectbox("Or a checkpoint uploaded before", list(earlier), key="ckpt_earlier",
                               index=list(earlier).index(current) if current in earlier else None,
                               format_func=earlier.get, placeholder="Choose one of your earlier uploads") or current
    if not current:
        st.info("Upload a checkpoint file to start from it.", icon=":material/upload:")
        return current
    if not state.source_exists(current):  # deleted since it was chosen
        st.error("The checkpoint chosen before is no longer on the server: upload it again or pick another.",
                 icon=":material/error:")
        return ""
    name = earlier.get(current, "your checkpoint")
    key = (current, backbone, tuple(classes or ()))
    if key not in memo:
        memo[key] = _check_checkpoint(current, name, backbone, classes)
    _, report, error = memo[key]
    if error is not None:  # e.g. made for the backbone chosen before: not a start for this one
        state.show_error(error, "reading the checkpoint")
        return ""
    show_checkpoint_verdict(report, name, backbone, classes, in_use=True)
    return current


def _check_checkpoint(ref: str, name: str, backbone: str, classes: list[str] | None
                      ) -> tuple[str | None, dict | None, BaseException | None]:
    """(ref, the engine's load report as a dict, None), or (None, None, the error in the user's words).
    With the dataset's `classes`, the report says what the run will do with the file's head."""
    from app.datasets import in_user_words
    from engine.backbones import build_model

    try:  # the config names the file upload:<sha256>, never by its path on the server
        _, report = build_model(backbone, len(classes) if classes else 2, "checkpoint", ref, checkpoint_label=name,
                                classes=classes)
        return ref, report.to_dict(), None
    except Exception as exc:
        return None, None, in_user_words(exc, {ref: name})


def show_checkpoint_verdict(report: dict, name: str, backbone: str, classes: list[str] | None,
                            in_use: bool = False) -> None:
    """What loading the file does: tensors loaded, what stays random, and what happens to its head here."""
    note = "; ".join(n for n in str(report.get("note") or "").split("; ") if "classification head" not in n)
    text = ((f"Starting from **{state.md_text(name)}** (uploaded before): it fits " if in_use
             else f"Checkpoint **{state.md_text(name)}** fits ") + f"{backbone_title(backbone)}: "
            f"{report['matched']} weight tensors will be loaded"
            + (f", {len(report['missing'])} stay at random initialisation" if report["missing"] else "")
            + (f", {len(report['shape_mismatch'])} have another shape and are skipped" if report["shape_mismatch"] else "")
            + (f" ({note})" if note else "") + ". " + head_verdict(report, classes))
    if report.get("partial"):
        st.warning(text.replace(" fits ", " fits only part of ", 1) + " Training starts mostly from random "
                   "weights: check that this is the file you meant.", icon=":material/warning:")
    else:
        st.success(text, icon=":material/check_circle:")


def head_verdict(report: dict, classes: list[str] | None) -> str:
    """What the run does with the checkpoint's classification head, in words: the engine's own decision
    (`head_kept`) for the dataset's `classes` when the Data page has checked it, else the rule."""
    file_classes = report.get("file_classes")
    if not file_classes:
        return "Its classification head is replaced by a new one for your classes."
    shown = first_and_more([state.md_text(c) for c in file_classes], 12)
    if classes is None:
        return (f"It was trained on {len(file_classes)} classes ({shown}): on a dataset with exactly these, "
                "its classification head is kept too.")
    if report.get("head_kept"):
        # one sentence for both WiSE-FT states: the switch is drawn further down, so this message is
        # written before a change to it reaches the config and would show the state before the click
        skipped = " and the head-only epochs are skipped" if state.config().optim.linear_probe_epochs else ""
        return (f"It was trained on your dataset's {len(file_classes)} classes ({shown}): its classification "
                f"head is kept, so training continues from its predictions{skipped}; unless WiSE-FT is on, which "
                "fits a new head on your images first (its starting model).")
    if list(file_classes) == list(classes):
        return (f"It names your dataset's classes ({shown}) but holds no head of their size: a new "
                "classification head is trained.")
    return (f"It was trained on other classes ({shown}) than your dataset's {len(classes)}: a new "
            "classification head is trained.")


# ---- training knobs ---------------------------------------------------------------------------



def keep_fine_tuning_epochs(cfg) -> None:
    """Fewer epochs than the linear-probe phase (LP-FT) would fine-tune nothing: the probe phase is
    shortened to leave at least one fine-tuning epoch, and the page says so; a longer run gives the
    chosen number back, unless the user set another since. It also says when the probe takes half the
    run or more (a preset cut to a few epochs keeps its probe epochs)."""
    lp, epochs = cfg.optim.linear_probe_epochs, cfg.train.epochs
    wanted = st.session_state.get(state.LP_WANTED_KEY)  # (the user's or preset's probe epochs, what they were lowered to)
    if wanted is not None and lp != wanted[1]:
        st.session_state.pop(state.LP_WANTED_KEY)  # the user set the probe epochs since: theirs stay
    elif wanted is not None and wanted[0] < epochs:  # room again: back to what was chosen
        st.session_state.pop(state.LP_WANTED_KEY)
        state.update_section("optim", linear_probe_epochs=wanted[0])
        st.session_state.pop(widget_key("optim", "linear_probe_epochs"), None)
        st.caption(f":material/info: Linear-probe epochs back to {wanted[0]}, as chosen before the run was shortened.")
        return
    short = probe_epochs_for(epochs, lp)
    if lp and short != lp:
        st.session_state[state.LP_WANTED_KEY] = (lp if wanted is None else wanted[0], short)
        state.update_section("optim", linear_probe_epochs=short)
        st.session_state.pop(widget_key("optim", "linear_probe_epochs"), None)
        st.caption(f":material/info: Linear-probe epochs lowered from {lp} to {short}, so that at "
                   "least one epoch still fine-tunes the whole network; more epochs give the "
                   f"{st.session_state[state.LP_WANTED_KEY][0]} back.")
    elif lp and 2 * lp >= epochs:
        st.caption(f":material/info: {lp} of the {epochs} epochs train{'s' if lp == 1 else ''} only the new head (a "
                   "linear probe) and "
                   f"{state.plural(epochs - lp, 'epoch')} fine-tune{'s' if epochs - lp == 1 else ''} the whole "
                   "network: for more fine-tuning, lower Linear-probe epochs (Fine-tuning settings) or train "
                   "longer.")


def knobs_section() -> None:
    """Epochs, batch size, image size, optimiser and learning rate; then the schedule, then the
    fine-tuning knobs of Li et al. 2020. Bounds, units and help come from the config's field metadata."""
    cfg = state.config()
    spec = BACKBONES[cfg.backbone.name]
    st.subheader("Training")
    c = layout.cells(4, key="training")
    cfg = state.update_section("train", epochs=field_widget("train", cfg.train, "epochs", container=c[0]),
                               batch_size=field_widget("train", cfg.train, "batch_size", container=c[1]))
    keep_fine_tuning_epochs(cfg)
    if spec.fixed_image_size:
        c[2].markdown(f"Image size\n\n**{spec.fixed_image_size} px** (fixed for {spec.name})")
        state.update_section("data", image_size=spec.fixed_image_size)
    else:
        state.update_section("data", image_size=field_widget("data", cfg.data, "image_size", container=c[2],
                                                             meta={"min": spec.min_image_size}))
    opt_choice = field_widget("optim", cfg.optim, "optimizer", container=c[3])
    c = layout.cells(4, key="optimiser")
    values = {"optimizer": opt_choice, "lr": field_widget("optim", cfg.optim, "lr", container=c[0]),
              "weight_decay": field_widget("optim", cfg.optim, "weight_decay", container=c[2])}
    if opt_choice == "sgd":
        values["momentum"] = field_widget("optim", cfg.optim, "momentum", container=c[1])
    else:  # the cell keeps its place (an empty one is dropped and the row's other fields spread out)
        c[1].caption("Momentum: AdamW keeps its own running averages of the gradients (PyTorch's betas 0.9 and "
                     "0.999); the Momentum setting is SGD's.")
    values["lr_auto"] = field_widget("optim", cfg.optim, "lr_auto")
    state.update_section("optim", **values)
    effective_lr_view(state.config(), c[3])
    adamw_rate_notice(state.config())
    components.few_steps_notice(state.config(), "model")  # after the rate's widgets: it suggests a rate from it
    drift = recipe_drift(state.config(), state.known_classes_and_train_size(state.config())[1])
    if drift:
        st.warning(drift, icon=":material/warning:")
        st.button("Find the learning rate automatically", key="drift_lr_auto", icon=":material/build:",
                  on_click=_lr_auto_on, help="Switches on the learning-rate range test above, as the warning suggests.")
    last_lr_find()
    schedule_section()
    # a key keeps an expander open while warnings above it come and go (an epochs change closed it)
    with st.expander("Freezing, linear probing, learning-rate multipliers, label smoothing", icon=":material/ac_unit:",
                     key="x_fine_tuning"):
        probe_knobs()
    for spec_m in sorted((s for s in METHODS.values() if s.core_knob), key=lambda s: s.order):
        method_panel(spec_m)


def effective_lr_view(cfg: RunConfig, where) -> None:
    """The effective learning rate, lr / (1 - momentum) for SGD (Li et al. 2020), as a tile in `where` and its sum
    under it."""
    where.metric("Effective learning rate", f"{cfg.effective_lr:.4g}",
                 help="For SGD: lr / (1 − momentum). Li et al. (2020) found that this, not lr or momentum alone, "
                      "decides fine-tuning results: raising momentum from 0.9 to 0.99 is like a 10x larger lr.")
    st.caption(f"Effective learning rate = {cfg.optim.lr:g} / (1 − {cfg.optim.momentum:g}) = **{cfg.effective_lr:.4g}**"
               if cfg.optim.optimizer == "sgd" else f"Effective learning rate = lr = **{cfg.effective_lr:.4g}** (AdamW)")


def last_lr_find() -> None:
    """The range test of this user's last finished run that found its learning rate automatically."""
    engine = state.get_engine()
    for rec in engine.store.list_runs(owner=state.user()):
        found = components.read_summary(rec.run_dir).get("lr_find") if rec.status == "finished" else None
        if not found:
            continue
        kept = found.get("kept", any("is kept" in n for n in found.get("notes", [])))
        title = (f"Learning rate of run “{rec.name}”: {found['lr']:.3g} kept (the range test found none better)"
                 if kept else f"Learning rate found for run “{rec.name}”: {found['lr']:.3g} "
                              f"(effective {found['effective_lr']:.3g})")
        with st.expander(title, icon=":material/query_stats:", expanded=state.config().optim.lr_auto):
            vega.altair_chart(charts.lr_find_chart(found), width="stretch")
            st.caption(f"{found['steps']} steps ({100 * found['step_share']:.0f}% of the run's steps, "
                       f"{found['seconds']:.1f} s), the rate growing from {found['sweep'][0]:.2g} to "
                       f"{found['sweep'][1]:.2g}. The loss was lowest at {found['lr_at_min_loss']:.3g}; the pick "
                       "is a tenth of that (Smith 2017; fastai's lr_find). " + " ".join(found.get("notes", [])))
        return


SCHEDULE_KNOBS = {"warmup_cosine": ("warmup_fraction",), "step": ("step_every_fraction", "step_gamma"),
                  "slow_start_fast_decay": ("slow_start_fraction", "fast_decay_rate")}


def schedule_section() -> None:
    """The schedule, its own knobs, and the learning rate it gives over the run's steps."""
    cfg = state.config()
    left, right = layout.cells(2)  # the schedule and its knobs, then its curve: wrapping on a narrow page
    with left:  # each knob whole: one above the other in a narrow half ("Nesterov momentu m" at 1024 px)
        c = [*layout.cells(2, key="schedule"), right]
    with c[0]:
        schedule = field_widget("optim", cfg.optim, "schedule", meta=dict(
            choices=list(SCHEDULES), labels={k: schedule_label(k) for k in SCHEDULES}))
        st.caption(SCHEDULES[schedule][0])
    with c[1]:
        extra = {name: field_widget("optim", cfg.optim, name) for name in SCHEDULE_KNOBS.get(schedule, ())}
        if cfg.optim.optimizer == "sgd":
            extra["nesterov"] = field_widget("optim", cfg.optim, "nesterov")
    state.update_section("optim", schedule=schedule, **extra)
    cfg = state.config()
    with c[2]:
        _, n_train = state.known_classes_and_train_size(cfg)
        per_epoch = cfg.steps_per_epoch(n_train)
        total = per_epoch * cfg.train.epochs
        curve = pd.DataFrame({"step": range(1, total + 1), "lr": lr_curve(cfg.optim, total)})  # as a run logs them
        st.caption(f"The learning rate over the run's {state.plural(total, 'step')} ({per_epoch} per epoch):")
        vega.altair_chart(charts.lr_chart(curve).properties(height=150, title=""), width="stretch")


def probe_knobs() -> None:
    """Frozen blocks, LP-FT, label smoothing and the head/trunk learning-rate multipliers."""
    cfg = state.config()
    n_blocks = trunk_block_count(cfg.backbone.name)
    c = layout.cells(3)
    values = {
        "freeze_blocks": field_widget("optim", cfg.optim, "freeze_blocks", container=c[0], meta=dict(
            max=n_blocks, help=f"Keep the first N of the {n_blocks} trunk blocks (the stem counts as one) fixed for "
                               "the whole run: faster, less overfitting on tiny data, less adaptation.")),
        "linear_probe_epochs": field_widget("optim", cfg.optim, "linear_probe_epochs", container=c[1],
                                            meta=dict(max=max(cfg.train.epochs - 1, 0))),
        "label_smoothing": field_widget("optim", cfg.optim, "label_smoothing", container=c[2]),
    }
    c = layout.cells(3)
    values.update(head_lr_mult=field_widget("optim", cfg.optim, "head_lr_mult", container=c[0]),
                  trunk_lr_mult=field_widget("optim", cfg.optim, "trunk_lr_mult", container=c[1]))
    st.markdown(f"**Linear probe, then fine-tune (LP-FT).** Training the new head alone first means the pretrained "
                f"features are not distorted by a random head's large early gradients; Kumar et al. found this "
                f"improves accuracy on shifted data. Watch *OOD accuracy*. [Paper]({LP_FT_URL})")
    state.update_section("optim", **values)


# ---- methods ----------------------------------------------------------------------------------

def method_panel(spec: MethodSpec) -> None:
    """A method's switch, what it does and what to watch, its paper, and (when on) its settings."""
    cfg = state.config()
    mcfg = cfg.methods[spec.name]
    supported = spec.supports(cfg.backbone.name)
    key = widget_key(spec.name, "enabled")
    if not supported and st.session_state.get(key):
        st.session_state[key] = False
    panel = st.container(border=True)
    with panel:
        enabled = field_widget(spec.name, mcfg, "enabled", disabled=not supported,
                               meta=dict(label=spec.title, help=spec.summary))
        st.markdown(f"**{spec.summary}** {spec.explanation}")
        if spec.paper_url:
            st.caption(f"Paper: [{spec.paper}]({spec.paper_url})")
        if not supported:
            st.caption(f":material/block: {spec.title} does not work with {backbone_title(cfg.backbone.name)}: choose another backbone to use it.")
            enabled = False
        values = dataclass_widgets(spec.name, mcfg) if enabled else {}
    state.update_section(spec.name, enabled=bool(enabled), **values)
    if enabled:  # what needs fixing in this method, next to its settings (the Ready? box lists it too)
        cfg = state.config()
        for problem in check_bounds(spec.name, cfg.methods[spec.name]) + spec.validate(cfg, cfg.methods[spec.name]):
            panel.error(state.message_words(problem), icon=":material/error:")


def methods_section() -> None:
    """One panel per optional fine-tuning method, in their order, each with its switch and settings."""
    st.subheader("Fine-tuning methods")
    specs = sorted((s for s in METHODS.values() if not s.core_knob), key=lambda s: s.order)
    if not specs:
        st.info("This engine has no optional fine-tuning methods installed yet; plain fine-tuning (with the options "
                "above) is what runs.", icon=":material/info:")
        return
    st.caption("Switch on any combination; each adds its own charts on the Train and Results pages.")
    for spec in specs:
        method_panel(spec)


# ---- advanced and review ------------------------------------------------------------------------

def advanced_section() -> None:
    """The advanced settings expander: device (only those present), mixed precision, CPU threads and the other
    switches of training."""
    import torch  # only this section asks which devices exist

    cfg = state.config()
    with st.expander(ADVANCED_TITLE, icon=":material/settings:", key="x_device"):
        devices = ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            devices.append("mps")
        c = layout.cells(3)
        train = {"device": field_widget("train", cfg.train, "device", container=c[0], meta=dict(choices=devices)),
                 "amp": field_widget("train", cfg.train, "amp", container=c[1]),
                 "threads": field_widget("train", cfg.train, "threads", container=c[2])}
        c = layout.cells(2)  # two switches a row: their labels stay whole at 1280 px (four a row were cut)
        for name in ("augment", "flip", "greyscale", "deterministic", "channels_last", "compile"):
            if shown_setting(cfg.train, name, train):  # flip and greyscale only while augmenting
                train[name] = field_widget("train", cfg.train, name, container=c[(len(train) - 3) % 2])
        state.update_section("train", **train)
        c = layout.cells(4, key="ood_eval")
        state.update_section("eval", **{name: field_widget("eval", cfg.eval, name, container=col) for name, col in
                                        zip(("ood", "ood_severity_each_epoch", "ood_subset_each_epoch",
                                             "eval_batch_size"), c)})
        c = layout.cells(3)
        state.update_section("eval", tta_flip=field_widget("eval", cfg.eval, "tta_flip", container=c[0]))
        name = field_widget("run", cfg, "name", container=c[1], meta=dict(
            label="Run name", help="Shown in the run lists; empty = backbone and methods."))
        if name != cfg.name:
            state.set_config(dataclasses.replace(state.config(), name=name))
        robust_section()


def robust_section() -> None:
    """Robust accuracy's settings: the switch, then eps, attack steps (at the end and per epoch), images attacked
    per epoch and AutoAttack."""
    cfg = state.config()
    c = layout.cells(5, key="robust")  # wraps on a narrow page: the switches' labels stay whole
    ev = {"robust": field_widget("eval", cfg.eval, "robust", container=c[0])}
    if ev["robust"]:
        ev.update({name: field_widget("eval", cfg.eval, name, container=col) for name, col in
                   zip(("robust_eps", "robust_steps", "robust_steps_each_epoch", "robust_subset"), c[1:])})
        ev["autoattack"] = field_widget("eval", cfg.eval, "autoattack", container=c[0])
    state.update_section("eval", **ev)


def other_settings_section() -> None:
    """Fields the engine has that this page does not draw yet: generic widgets, nothing unreachable."""
    from engine.config import CORE_SECTIONS

    cfg = state.config()
    rest = [(sec, f.name) for sec, cls in CORE_SECTIONS.items() for f in dataclasses.fields(cls)
            if f.name not in HANDLED_FIELDS.get(sec, set())]
    if not rest:
        return
    with st.expander("Other engine settings", icon=":material/more_horiz:", key="x_other"):
        cols = layout.cells(3)
        changes: dict[str, dict] = {}
        for i, (sec, name) in enumerate(rest):
            changes.setdefault(sec, {})[name] = field_widget(sec, getattr(cfg, sec), name, container=cols[i % 3])
    for sec, values in changes.items():
        state.update_section(sec, **values)


def review_section() -> None:
    """"Ready?": the settings' problems in plain words, or one line saying what will be trained."""
    cfg = state.config()
    st.subheader("Ready?")
    problems = state.config_problems(cfg)
    if problems:
        st.warning(problems, icon=":material/warning:")
    else:
        methods = ", ".join(METHODS[m].title for m in cfg.enabled_methods()) or "no extra method"
        st.success(f"Ready to train **{backbone_title(cfg.backbone.name)}** ({state.weights_words(cfg)}) for "
                   f"{state.epochs_words(cfg.to_dict())} at {cfg.data.image_size} px with {methods}"
                   + setup_extras(cfg) + ".",
                   icon=":material/check_circle:")
    with st.expander("These settings as a config file (YAML)", icon=":material/description:"):
        st.code(cfg.to_yaml(), language="yaml")
        st.caption("Every run saves this file; `python -m engine train --config config.yaml` repeats the run "
                   "from the command line.")
    st.page_link("app_pages/train.py", label="Next: start training", icon=":material/arrow_forward:")


GLOSSARY = (  # the terms the settings and method panels use, in plain words (a geology instructor met L2-SP, the
    # pretrained trunk, a PGD attack's eps and a recurrent gate network on this page with no word on any of them)
    ("Backbone, pretrained trunk", "the network that turns a picture into features; pretrained means it has already "
     "learnt from other pictures, so your images only adjust it"),
    ("Head, linear probe", "the last layer, which picks a class from the features; a new one is made for your "
     "classes, and head-only epochs (a linear probe) train it alone before the whole network learns"),
    ("Learning rate, effective learning rate, momentum", "how big each update is; momentum carries part of each "
     "update into the next, so the steps grow to the effective learning rate (the rate / (1 - momentum))"),
    ("Weight decay, L2-SP", "a pull that keeps the weights small, or (L2-SP) near where fine-tuning started "
     "(theta_0), so the network forgets less of what it learnt before"),
    ("OOD accuracy", "accuracy on images unlike the training ones (out of distribution): here the validation images "
     "made noisy, blurred, lower in contrast, brighter, compressed or pixelated on purpose"),
    ("Adversarial fine-tuning, attack, eps, PGD, robust accuracy", "training on images changed just enough to fool "
     "the model; eps is how far each pixel may be changed (in 255ths of its range), PGD an attack that searches in "
     "several small steps, robust accuracy the share still right under attack"),
    ("AdaFilter, gate network", "each layer keeps a pretrained and a fine-tuned copy of its filters, and a small "
     "network (recurrent: it reads the layers one after another) picks, for each picture, which copy each filter "
     "uses"),
    ("WiSE-FT, alpha", "a mix of the starting and the fine-tuned weights; alpha 0 is the start, 1 the fine-tuned "
     "model, and in between often holds up better on changed pictures"),
    ("Pruning, sparsity, structured", "setting weights to zero while training (sparsity is the share that are zero); "
     "structured pruning removes whole channels, so the model gets smaller and faster"),
    ("Bayesian optimisation", "a search that tries settings one after another, each chosen from how the earlier "
     "ones did, to find good ones in few tries"),
)


def render() -> None:
    """Draw the Model and methods page (2): presets, backbone, training settings, methods, advanced settings and the
    review."""
    engine = state.get_engine()
    st.title("2 · Model and methods")
    st.markdown("Pick a preset, or tune everything yourself. Every setting explains itself when you hover "
                "the **?** next to it.")
    with st.expander("What the field's words on this page mean", icon=":material/help:"):
        st.markdown("\n".join(f"- **{term}**: {meaning}" for term, meaning in GLOSSARY))
    top = st.container()  # filled last: a preset is marked "in use" against the settings as this run left them
    backbone_section(engine)
    knobs_section()
    methods_section()
    advanced_section()
    other_settings_section()
    review_section()
    with top:
        presets_section()


render()
