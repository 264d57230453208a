"""The Explain and export page through AppTest: attributions for every method and every model row,
error analysis with a confusion cell's images, verified exports with the model card, the page
without a finished run, and the time a new image takes.

Tiny runs (ResNet-18, 1 epoch, WiSE-FT on so that all four model rows show; 32 px, and 64 px for
the timing) are trained once through the engine for the whole module; each test opens a new
session on one of them.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

# this page's runs are ResNet-18s (its layer names, and answers of a model from random weights)
from conftest import (dashboard_studio, drop_view_choices, finished_run, no_problems, open_app_page, resnet_config,
                      says_stopped_best, texts, write_tiny_zip)
from app.app_pages.explain import breakable_name
from app.components import smaller_headings
from app.state import md_text
from engine.explain import ATTRIBUTIONS

ROOT = Path(__file__).resolve().parent.parent
MAIN = str(ROOT / "app" / "main.py")
PAGE = "app_pages/explain.py"
RUN_TIMEOUT = 300
NEW_IMAGE_BUDGET_S = 3.0  # the page's aim for one rerun after picking a new image (one method, 64 px, CPU), printed


def engine():
    from app.state import get_engine

    return get_engine()


def open_page(run_id: str | None = None, tab: str | None = None):
    return open_app_page(PAGE, keep_view_choices=False, explain_run=run_id, explain_tab=tab)


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """A studio folder for this module, its engine, the tiny dataset and a start checkpoint as uploads."""
    with dashboard_studio(tmp_path_factory.mktemp("explain"), start_checkpoint=True) as studio:
        yield studio


def train_wise(studio: dict, image_size: int) -> str:
    """A finished 1-epoch run with WiSE-FT, so the page shows all four model rows."""
    cfg = resnet_config(studio["data"], f"data.image_size={image_size}", "train.epochs=1", "train.threads=1",
                        "eval.ood=false", "backbone.pretrained=checkpoint", f"backbone.checkpoint={studio['ckpt']}",
                        "wise_ft.enabled=true", "wise_ft.alphas=0,1", "wise_ft.probe_epochs=20")
    return finished_run(engine(), cfg, RUN_TIMEOUT)


@pytest.fixture(scope="module")
def wise_run(studio):
    """(studio folder, run id) of a WiSE-FT run at 32 px: every method on every row stays cheap."""
    return studio["dir"], train_wise(studio, 32)


@pytest.fixture(scope="module")
def wise_run_64(studio):
    """The issue's timing case: ResNet-18 at 64 px, with WiSE-FT (four models per image)."""
    return studio["dir"], train_wise(studio, 64)


def own_alpha(run_id: str) -> float:
    """The WiSE-FT alpha a run uses before anyone chooses one (engine.predict.chosen_alpha)."""
    from engine.predict import chosen_alpha, run_summary

    return round(chosen_alpha(run_summary(engine().run_record(run_id).run_dir)), 2)


def val_files(run_id: str) -> list[str]:
    """The run's validation files in split order (its summary's data report)."""
    import json

    summary = json.loads((Path(engine().run_record(run_id).run_dir) / "summary.json").read_text())
    return summary["data_report"]["split_files"]["val"]


def image_options(at: AppTest, run_id: str) -> list[int]:
    """The validation indices on offer: the options read 'red/3.png · true → said (conf)', the user's
    file name first."""
    files = val_files(run_id)
    return [files.index(o.split(" · ")[0]) for o in at.selectbox(key=f"explain_image_{run_id}").options]


# ---- no run --------------------------------------------------------------------------------------

def test_without_a_finished_run_the_page_says_to_train_one(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path / "empty"))
    try:
        at = open_page()
        assert texts(at.title) == ["5 · Explain and export"]
        assert any("No finished run yet" in i for i in texts(at.info)), texts(at.info)
        assert not at.tabs, "nothing to explain: no tabs"
    finally:
        engine().shutdown(5)


# ---- attributions ---------------------------------------------------------------------------------

def test_attributions_for_every_method_and_every_model(wise_run):
    studio, run_id = wise_run
    at = open_page(run_id)
    assert at.selectbox(key="explain_run").value == run_id, "the finished run is picked"
    assert [t.label for t in at.tabs] == ["Attributions", "Error analysis", "Export"]
    options = image_options(at, run_id)
    assert len(options) >= 3
    at.selectbox(key=f"explain_image_{run_id}").set_value(options[1]).run()
    at.pills(key="explain_methods").set_value(list(ATTRIBUTIONS)).run()
    at.toggle(key="explain_show_start").set_value(True)
    at.toggle(key="explain_show_attack").set_value(True).run()
    no_problems(at)

    markdown = " ".join(texts(at.markdown))
    for title in ("Starting model", "Fine-tuned model", f"WiSE-FT mix at alpha {own_alpha(run_id):.2f}",
                  "adversarial image"):
        assert title in markdown, title
    # 4 model rows x (input + 4 methods) + the colour bar
    assert len(at.image) == 4 * (1 + len(ATTRIBUTIONS)) + 1
    captions = " ".join(c for img in at.image for c in img.captions)
    for name in ("Integrated Gradients", "Saliency", "Grad-CAM", "Occlusion", "adversarial input"):
        assert name in captions, name
    teaching = " ".join(texts(at.markdown))
    for line in ATTRIBUTIONS.values():
        assert line in teaching, "each method's one-liner is on the page"
    words = " ".join([teaching, captions, *texts(at.caption)])
    assert re.search(r"Grad-CAM here reads the model's deepest layer that still splits the image "
                     r"into at least 4 x 4 regions.*\(for experts: torchvision's `[\w.]+`\)", words), \
        "the layer Grad-CAM reads, in plain words first"
    assert re.search(r"The image nudged in \d+ small steps? \(a PGD attack\)", words), "the attack, in plain words"
    assert "A robustness check (this run was not trained against such attacks)" in words, \
        "why a run without the method shows an attacked image, said first"
    for jargon in (" cells", "stage that", "PGD-"):  # an attack is named with what it does, not its short name
        assert jargon not in words, jargon
    name = val_files(run_id)[options[1]]  # the user's file name, not an index
    assert any(f"**{md_text(name)}**, true class" in m for m in texts(at.markdown)), (options, texts(at.markdown))



def test_a_new_image_reuses_the_loaded_run_and_a_seen_one_its_cache(wise_run_64, monkeypatch):
    """One page rerun after picking a new image, the run already loaded, the default methods (Grad-CAM and
    Saliency), ResNet-18 at 64 px on the CPU: PGD attack + four models' answers + their maps.
    No model or data is loaded again for it, and a seen image comes from the cache."""
    import engine.runs

    studio, run_id = wise_run_64
    loads = []
    for name in ("load_run_model", "prepare_data"):  # what loading a run costs: its model, its decoded data
        real = getattr(engine.runs, name)
        monkeypatch.setattr(engine.runs, name,
                            lambda *a, _real=real, _name=name, **k: loads.append(_name) or _real(*a, **k))
    import engine.explain

    maps = []  # every attribution map computed: a seen image's come from the cache
    real_attribute = engine.explain.attribute
    monkeypatch.setattr(engine.explain, "attribute", lambda *a, **k: maps.append(1) or real_attribute(*a, **k))
    st.cache_data.clear()  # no image computed yet; the loaded run (models, data) stays
    t0 = time.perf_counter()
    at = open_page(run_id)
    first_open = time.perf_counter() - t0
    opened = list(loads)
    assert at.pills(key="explain_methods").value == ["grad_cam", "saliency"], "a flat Grad-CAM map is not all"
    options = image_options(at, run_id)
    timings = []
    for index in options[1:3]:
        at.selectbox(key=f"explain_image_{run_id}").set_value(index)
        t0 = time.perf_counter()
        at.run()
        timings.append(time.perf_counter() - t0)
        no_problems(at)
        assert any(f"**{md_text(val_files(run_id)[index])}**, true class" in m for m in texts(at.markdown))
    computed = len(maps)
    t0 = time.perf_counter()
    at.selectbox(key=f"explain_image_{run_id}").set_value(options[1]).run()
    cached = time.perf_counter() - t0
    print(f"\nexplain page: open {first_open:.2f} s; new image {timings[0]:.2f} s, then {timings[1]:.2f} s "
          f"(aim {NEW_IMAGE_BUDGET_S:g} s); back to a seen image {cached:.2f} s")
    assert loads == opened, f"a new image loaded the run again: {loads[len(opened):]}"
    # counted, not timed: "the seen image took under half a new one's time" failed on a loaded machine (0.28 s
    # against 0.55 and 0.72); the times are printed above
    assert computed > 0 and len(maps) == computed, "a seen image's maps come from the cache, none computed again"


# ---- error analysis -------------------------------------------------------------------------------

def test_error_analysis_shows_the_worst_images_and_opens_a_confusion_cell(wise_run):
    studio, run_id = wise_run
    at = open_page(run_id)
    at.pills(key="explain_methods").set_value(["integrated_gradients", "grad_cam"]).run()  # kept for "Explain" below
    at.session_state["explain_tab"] = "Error analysis"
    at.run()
    assert {"Highest-loss images", "Confusion matrix"} <= set(texts(at.subheader))
    assert any("Loss says how little the model believed the true class" in c for c in texts(at.caption))
    assert at.get("vega_lite_chart"), "the confusion matrix chart"
    n_val = int(at.markdown[0].value.split(" of ")[1].split("**")[0]) if " of " in at.markdown[0].value else None
    assert n_val, texts(at.markdown)
    highest = min(12, n_val)
    cell = at.selectbox(key=f"explain_cell_{run_id}")
    assert cell.options, "non-empty cells"
    counts = [int(o.split("(")[1].split()[0]) for o in cell.options]
    assert sum(counts) == n_val, "the cells hold every validation image"
    # pick the last cell; its images are shown beside the highest-loss ones
    cell.select_index(len(cell.options) - 1).run()
    no_problems(at)
    assert len(at.image) == highest + min(counts[-1], 24), len(at.image)
    shown = [b for b in at.button if b.key and b.key.startswith(f"cell_{run_id}_")]
    assert len(shown) == min(counts[-1], 24)
    files = val_files(run_id)
    captions = [c for c in texts(at.caption) if any(c.startswith(breakable_name(f) + " · ") for f in files)]
    assert len(captions) == len(at.image), "each image named by its file"
    losses = [m.group(1) for c in captions if (m := re.search(r" · loss ([\d.]+|under 0\.001)", c))]
    assert len(losses) == highest and all(len(x.replace(".", "").lstrip("0")) == 3 or x.startswith("under")
                                          for x in losses), \
        f"three digits each (4.00 beside 4.51, not 4): {losses}"
    assert any("/<wbr>" in c for c in captions), "a long path may wrap after its /, not inside a word"

    # "Explain" on an image opens it on the Attributions tab
    index = int(shown[0].key.rsplit("_", 1)[1])
    shown[0].click().run()
    no_problems(at)
    assert at.session_state["explain_tab"] == "Attributions"
    assert at.selectbox(key=f"explain_image_{run_id}").value == index
    assert any(f"**{md_text(val_files(run_id)[index])}**, true class" in m for m in texts(at.markdown))
    assert at.pills(key="explain_methods").value == ["integrated_gradients", "grad_cam"], "the methods picked before"


# ---- export ---------------------------------------------------------------------------------------

def test_a_shown_documents_headings_go_two_levels_down_but_not_inside_code():
    md = "# Card\n## Data\ntext # not a heading\n```yaml\n# a YAML comment\n```\n   ### indented\n#tag\n##### five"
    assert smaller_headings(md).split("\n") == [
        "### Card", "#### Data", "text # not a heading", "```yaml", "# a YAML comment", "```", "   ##### indented",
        "#tag", "###### five"]


def test_export_verifies_every_format_and_renders_the_model_card(wise_run):
    studio, run_id = wise_run
    run_dir = Path(engine().run_record(run_id).run_dir)
    before = {p for p in studio.rglob("*") if p.is_file()}
    at = open_page(run_id, "Export")
    assert any("Nothing exported yet" in c for c in texts(at.caption))
    markdown = texts(at.markdown)
    assert any("Model card" in m for m in markdown) and any("Exact configuration" in m for m in markdown), "a preview"
    # the files compute in float32; a run evaluated in bf16 answers a point or so apart in Try it: said
    precision = json.loads((run_dir / "summary.json").read_text()).get("precision")
    assert any("They compute in float32, while the run was evaluated" in m for m in markdown) is (
        precision not in (None, "float32")), (precision, markdown[:3])
    from engine.runs import _RUNS

    (loaded,) = [r for (where, *_), r in _RUNS.items() if where == str(run_dir.resolve())]
    try:  # the same run as evaluated on a CPU with bf16 (the summary the loaded run holds)
        loaded.summary["precision"] = "bfloat16"
        said = texts(open_page(run_id, "Export").markdown)
        assert any("evaluated (and Try it answers) in bfloat16 on this computer" in m for m in said), said[:3]
    finally:
        loaded.summary["precision"] = precision
    preview = next(m for m in markdown if "Exact configuration" in m)
    assert preview.startswith("### Model card") and "\n#### Exact configuration" in preview, "smaller than the page's"
    # the WiSE-FT mix first: Results says Explain, Try it and export use the run's alpha (the tab
    # offered the fine-tuned model, alpha 1, first)
    assert at.radio(key=f"export_which_{run_id}").value == "wise"
    card = " ".join(texts(at.markdown))  # the preview describes the weights chosen: the mix, not alpha 1
    assert "WiSE-FT (this is the mix at alpha" in card and "These files are the fine-tuned model" not in card
    at.radio(key=f"export_which_{run_id}").set_value("fine_tuned").run()
    card = " ".join(texts(at.markdown))
    assert "These files are the fine-tuned model (alpha 1)" in card and "this is the mix at alpha" not in card
    at.button(key=f"export_{run_id}").click().run()
    no_problems(at)
    assert any("All 3 exports verified" in s for s in texts(at.success)), texts(at.success)
    assert any("**ONNX** for other programs and for phones" in c for c in texts(at.caption)), "which file for what"
    table = at.dataframe[0].value
    assert list(table["format"]) == ["safetensors", "torchscript", "onnx"]
    assert table["verified"].all() and (table["agreement"] == 100.0).all()
    assert all(d == "none" or d == "under 0.0001" or d.startswith("0.") for d in table["largest score difference"]), \
        "plain decimals, not 4.5e-06"
    labels = {d.label for d in at.download_button}
    assert {"safetensors", "TorchScript", "ONNX", "Model card", "Config (YAML)"} <= labels
    assert not any(d.proto.disabled for d in at.download_button)
    card = " ".join(texts(at.markdown))
    assert "Exports (verified on the validation split)" in card and "safetensors: verified" in card

    exports = run_dir / "exports"
    for name in ("model.safetensors", "model.ts", "model.onnx", "MODEL_CARD.md", "exports.json"):
        assert (exports / name).is_file(), name
    written = {p for p in studio.rglob("*") if p.is_file()} - before
    cache = studio / "datasets"  # the engine's extracted copy of the data, when no earlier test made it
    assert written and all(exports in p.parents or cache in p.parents for p in written), \
        "exports stay inside the run folder"

    # the WiSE-FT mix at the chosen alpha exports into its own folder, with alpha in the card
    at.radio(key=f"export_which_{run_id}").set_value("wise").run()
    assert any("Nothing exported yet" in c for c in texts(at.caption)), "a separate export per weights"
    at.button(key=f"export_{run_id}").click().run()
    no_problems(at)
    assert any("All 3 exports verified" in s for s in texts(at.success))
    alpha = own_alpha(run_id)  # nothing chosen on Results: the run's own pick
    assert (exports / f"wise_alpha_{alpha:.2f}" / "model.onnx").is_file()
    card = (exports / f"wise_alpha_{alpha:.2f}" / "MODEL_CARD.md").read_text()
    assert f"## WiSE-FT (this is the mix at alpha {alpha:g})" in card, card
    from app.state import download_name

    # the mix's downloads say it is the mix: they met the full-size model's in one Downloads folder under one name
    names = {download_name("WiSE-FT demo: mine", run_id, d, "model.onnx")
             for d in (exports, exports / f"wise_alpha_{alpha:.2f}", exports / "structured")}
    assert names == {f"WiSE-FT_demo_mine-{run_id}-model.onnx", f"WiSE-FT_demo_mine-{run_id}-wise_alpha_{alpha:.2f}-"
                     "model.onnx", f"WiSE-FT_demo_mine-{run_id}-structured-model.onnx"}, names
    # one underscore between words, cut after a whole word and before a phrase it would begin (a new user's name
    # was cut mid-phrase, "from_your_-")
    long = download_name("Quick demo, image size 224, epochs 30 (ResNet-18) from your checkpoint on Leaf export v3.zip",
                         "R1", exports, "model.onnx")
    assert long == "Quick_demo_image_size_224_epochs_30_ResNet-18-R1-model.onnx", long
    from app.state import file_stem  # Results' downloads start with the same stem

    assert file_stem("A - B") == "A_B" and file_stem("") == "run" and len(file_stem("x" * 100)) == 60
    assert "- This mix, measured when it was exported: test accuracy" in card, "the dashboard measures it too"
    assert f"- At alpha {alpha:g}: validation accuracy" in card, "the mix's own numbers, from the curve"
    assert "## Metrics (the fine-tuned model, alpha 1)" in card, "the run's metrics say whose they are"

    # a fresh session shows the last export's checks without exporting again
    again = open_page(run_id, "Export")
    assert any("All 3 exports verified" in s for s in texts(again.success))


# ---- pure helpers ---------------------------------------------------------------------------------

def test_overlay_keeps_unimportant_pixels_and_paints_important_ones():
    from app.app_pages.explain import colormap, overlay, upscale

    image = np.full((4, 4, 3), 0.5, dtype=np.float32)
    m = np.zeros((4, 4), dtype=np.float32)
    m[0, 0] = 1.0
    out = overlay(image, m, strength=1.0)
    assert np.allclose(out[1:, 1:], 0.5), "zero attribution: the photo"
    assert np.allclose(out[0, 0], colormap(np.ones((1, 1)))[0, 0]), "full attribution: the heat colour"
    assert upscale(out, 16).shape == (16, 16, 3)
    assert colormap(np.linspace(0, 1, 5)[None]).shape == (1, 5, 3)


def test_a_flat_map_says_so_under_the_picture_it_leaves_unchanged():
    from app.app_pages.explain import FLAT_NOTE, map_caption

    assert map_caption("Grad-CAM", np.zeros((4, 4), dtype=np.float32)) == f"Grad-CAM · {FLAT_NOTE}"
    m = np.zeros((4, 4), dtype=np.float32)
    m[1, 2] = 0.2
    assert map_caption("Grad-CAM", m) == "Grad-CAM", "a map with any structure keeps its plain caption"
    from app.app_pages.explain import any_flat

    assert any_flat([m, np.zeros((4, 4), dtype=np.uint8)]) and not any_flat([m, None]) and not any_flat([])


def test_a_map_that_weighs_a_padded_pictures_grey_bars_says_how_much():
    """A run that keeps whole pictures pads them with grey bars; Grad-CAM's coarse grid lit them up with no remark.
    A map with a quarter or more of its weight there says how much; a cropped run's map, or one on the picture,
    keeps its caption."""
    import torch

    from app.app_pages.explain import BARS_NOTE, map_caption, padded_box
    from engine.data import fit_square

    wide = np.random.default_rng(0).integers(0, 256, (16, 64, 3), dtype=np.uint8)
    square = np.array(fit_square(Image.fromarray(wide), 32, fit="pad")).transpose(2, 0, 1)  # [3, 32, 32], bars 12 px
    box = padded_box(square, "pad")
    assert box == (12, 20, 0, 32) and padded_box(square, "crop") is None
    assert padded_box(torch.from_numpy(square), "pad") == box
    full = np.array(fit_square(Image.fromarray(wide), 32, fit="crop")).transpose(2, 0, 1)
    assert padded_box(full, "pad") is None, "a picture that fills the square has no bars"
    on_picture = np.zeros((32, 32), dtype=np.float32)
    on_picture[14:18, 10:20] = 1.0
    assert map_caption("Grad-CAM", on_picture, box) == "Grad-CAM"
    even = np.ones((32, 32), dtype=np.float32)  # spread evenly: the bars' 75% of the square, no more per pixel
    assert map_caption("Grad-CAM", even, box) == "Grad-CAM", "no more weight on the bars than on the picture"
    spilt = np.ones((32, 32), dtype=np.float32)
    spilt[:4] = 5.0  # the top bar lit up
    assert map_caption("Grad-CAM", spilt, box) == "Grad-CAM · 83% of its weight on the grey bars (75% of the square)"
    assert map_caption("Grad-CAM", spilt) == "Grad-CAM", "no box: a cropped run's map"
    assert "coarse grid" in BARS_NOTE and "where the picture ends" in BARS_NOTE


def test_confusion_cells_put_mix_ups_first():
    from app.app_pages.explain import confusion_cells

    labels = np.array([0, 0, 0, 1, 1, 2])
    preds = np.array([0, 1, 1, 1, 0, 2])
    matrix, cells = confusion_cells(labels, preds, 3)
    assert matrix.tolist() == [[1, 2, 0], [1, 1, 0], [0, 0, 1]]
    assert cells[:2] == [(0, 1, 2), (1, 0, 1)] and all(t == p for t, p, _ in cells[2:])


def test_choices_survive_a_tab_switch_and_a_visit_to_another_page(wise_run):
    studio, run_id = wise_run
    at = open_page(run_id)
    index = image_options(at, run_id)[2]
    at.selectbox(key=f"explain_image_{run_id}").set_value(index)
    at.pills(key="explain_methods").set_value(["saliency", "grad_cam"])
    at.radio(key="explain_target").set_value("true")
    at.run()
    at.session_state["explain_tab"] = "Export"
    at.run()
    at.switch_page("app_pages/results.py").run()
    at.switch_page(PAGE)
    at.session_state["explain_tab"] = "Attributions"
    at.run()
    no_problems(at)
    assert not [w for w in texts(at.warning) if "no better than guesses" not in w], texts(at.warning)  # the tiny run may guess
    assert at.selectbox(key=f"explain_image_{run_id}").value == index
    options = image_options(at, run_id)
    # its label counts the image shown (it read "(128 of 128)" beside the first image, as if the last)
    assert at.selectbox(key=f"explain_image_{run_id}").label.startswith(
        f"Validation image {options.index(index) + 1} of {len(options)}")
    assert at.pills(key="explain_methods").value == ["saliency", "grad_cam"]
    assert at.radio(key="explain_target").value == "true"
    at.slider(key="explain_strength").set_value(0.4).run()
    at.toggle(key=f"explain_wrong_{run_id}").set_value(False).run()
    # the confusion cell picked on Error analysis (a new user's went back to the first one after a refresh)
    at.session_state["explain_tab"] = "Error analysis"
    at.run()
    classes = json.loads((Path(engine().run_record(run_id).run_dir) / "summary.json").read_text())["classes"]
    cell = at.selectbox(key=f"explain_cell_{run_id}")
    raw = [":".join(str(classes.index(c)) for c in o.rsplit(" (", 1)[0].split(" → ")) for o in cell.options]
    assert len(raw) > 1, cell.options
    cell.set_value(raw[1]).run()
    at.session_state["explain_tab"] = "Attributions"
    at.run()

    again = AppTest.from_file(MAIN, default_timeout=180)  # a browser refresh: a new session, the tab's token kept
    again.query_params["tab"] = at.query_params["tab"]
    again.run()
    again.switch_page(PAGE).run()
    no_problems(again)
    assert again.selectbox(key=f"explain_image_{run_id}").value == index, "the image"
    assert again.pills(key="explain_methods").value == ["saliency", "grad_cam"], "the methods"
    assert again.radio(key="explain_target").value == "true" and again.slider(key="explain_strength").value == 0.4
    again.session_state["explain_tab"] = "Error analysis"
    again.run()
    assert again.selectbox(key=f"explain_cell_{run_id}").value == raw[1], "the confusion cell"
    again.session_state["explain_tab"] = "Export"
    again.run()
    third = AppTest.from_file(MAIN, default_timeout=180)
    third.query_params["tab"] = again.query_params["tab"]
    third.run()
    third.switch_page(PAGE).run()
    assert third.session_state["explain_tab"] == "Export", "the open tab"


def test_a_plain_run_shows_its_model_and_on_request_its_start_and_a_robustness_check(studio, monkeypatch):
    """Plain fine-tuning from random weights: no WiSE-FT row, a note on the starting model. The run
    used flip TTA: the image picker and the fine-tuned row give the same answer and confidence."""
    eng = engine()
    run_id = eng.submit(resnet_config(studio["data"], "train.epochs=1", "train.threads=1", "eval.ood=false",
                                      "eval.tta_flip=true"))
    assert eng.wait(run_id, RUN_TIMEOUT) == "finished", eng.run_record(run_id).error
    at = open_page(run_id)
    assert at.selectbox(key="explain_run").value == run_id
    rows = [m.split("**")[1] for m in texts(at.markdown) if re.match(r"\*\*[^*]+\*\* (says|guesses) ", m)]
    assert rows == ["Fine-tuned model"], "one row at first: a clinician read the attacked image's cross as a mistake"
    from app.app_pages.explain import attribution_maps, model_row, model_rows, row_map

    def no_attack(*args, **kwargs):
        raise AssertionError("a row not shown is not computed")

    monkeypatch.setattr("engine.attacks.pgd", no_attack)
    monkeypatch.setattr("app.app_pages.explain._pretrained", no_attack)
    model_row.clear()  # computed afresh, not read from the page's cache
    row_map.clear()
    run_dir, ds = str(eng.run_record(run_id).run_dir), str(eng.datasets_dir)
    assert [r["key"] for r in model_rows(run_dir, ds, 2, None, ())] == ["fine_tuned"]
    assert set(attribution_maps(run_dir, ds, 2, None, "saliency", "predicted", ())) == {"fine_tuned"}
    monkeypatch.undo()
    from engine import explain as attributions

    calls, real = [], attributions.attribute
    monkeypatch.setattr(attributions, "attribute", lambda *a, **k: calls.append(1) or real(*a, **k))
    both = attribution_maps(run_dir, ds, 2, None, "saliency", "predicted", ("pretrained",))
    assert set(both) == {"pretrained", "fine_tuned"} and len(calls) == 1, "a row turned on is computed alone"
    monkeypatch.undo()
    assert at.toggle(key="explain_show_start").value is False and at.toggle(key="explain_show_attack").value is False
    at.toggle(key="explain_show_start").set_value(True)
    at.toggle(key="explain_show_attack").set_value(True).run()
    markdown = " ".join(texts(at.markdown))
    assert "Starting model" in markdown and "Fine-tuned model" in markdown and "WiSE-FT mix at" not in markdown
    again = AppTest.from_file(MAIN, default_timeout=180)  # a browser refresh: a new session, the tab's token kept
    again.query_params["tab"] = at.query_params["tab"]
    again.run()
    again.switch_page(PAGE).run()
    assert again.toggle(key="explain_show_start").value is True, "kept for a refresh"
    path = Path(eng.run_record(run_id).run_dir) / "summary.json"
    before = path.read_text()
    try:  # a run at the level of guessing: its sure-looking answers are said to be guesses, above them
        summary = json.loads(before)
        path.write_text(json.dumps({**summary, "test_acc": 1 / len(summary["classes"])}))
        warned = texts(open_page(run_id).warning)
        assert any("learnt nothing" in w and "no better than guesses" in w for w in warned), warned
        path.write_text(json.dumps({**summary, "test_acc": 1.0}))
        assert not any("no better than guesses" in w for w in texts(open_page(run_id).warning))
    finally:
        path.write_text(before)
    (start,) = [m for m in texts(at.markdown) if m.startswith("**Starting model**")]
    assert " guesses **" in start and "✓" not in start and "✗" not in start, "an untrained head: no right or wrong"
    for index in image_options(at, run_id)[:6]:
        at.selectbox(key=f"explain_image_{run_id}").set_value(index).run()
        picked = at.selectbox(key=f"explain_image_{run_id}")
        said = picked.format_func(picked.value).split(" → ", 1)[1]  # "✓ red (41%)"
        row = next(m for m in texts(at.markdown) if m.startswith("**Fine-tuned model** says"))
        assert row.split(" says ", 1)[1].replace(":green[✓]", "✓").replace(":red[✗]", "✗").replace("**", "") == said
    assert len(at.image) == 3 * (1 + len(at.pills(key="explain_methods").value)) + 1
    assert any("started from random weights" in c for c in texts(at.caption))
    at.session_state["explain_tab"] = "Export"
    at.run()
    no_problems(at)
    assert not [r for r in at.radio if r.key == f"export_which_{run_id}"], "nothing to mix without WiSE-FT"


# ---- the alpha chosen on Results -------------------------------------------------------------------

def test_the_alpha_chosen_on_results_is_what_explain_and_export_use(wise_run):
    """The issue's path: alpha 0.30 on Results, then Explain (a new session too) opens on that run at
    0.30 and Export offers 0.30; the choice is stored with the run, not in the browser session."""
    studio, run_id = wise_run
    eng = engine()
    other = eng.submit(resnet_config(next((studio / "uploads").glob("*.zip")), "train.epochs=1", "train.threads=1",
                                     "eval.ood=false"))  # newer than the WiSE-FT run: listed first
    assert eng.wait(other, RUN_TIMEOUT) == "finished"
    try:
        at = AppTest.from_file(MAIN, default_timeout=180)
        at.run()
        drop_view_choices(at)
        at.switch_page("app_pages/results.py").run()
        at.selectbox(key="results_run").set_value(run_id).run()
        assert "Not chosen yet" in " ".join(texts(at.caption))
        at.number_input(key=f"wise_exact_{run_id}").set_value(0.3).run()  # between the grid's 0 and 1
        no_problems(at)
        assert eng.run_record(run_id).wise_ft_alpha is None, "looking at a mix is not choosing it"
        assert any(c.startswith("Looking at alpha 0.30. Explain, Try it and export use alpha") for c in texts(at.caption))
        at.button(key=f"wise_use_{run_id}").click().run()
        no_problems(at)
        assert eng.run_record(run_id).wise_ft_alpha == 0.3, "the choice is a property of the run"
        assert "Chosen for this run: alpha 0.30. Explain, Try it and export use it." in texts(at.caption)
        assert not [b for b in at.button if b.key == f"wise_use_{run_id}"], "nothing left to choose"

        at.switch_page(PAGE).run()  # Explain opens on the run the user was looking at, at that alpha
        no_problems(at)
        assert at.selectbox(key="explain_run").value == run_id
        markdown = " ".join(texts(at.markdown))
        assert "WiSE-FT mix at alpha 0.30" in markdown and "none chosen yet" not in markdown
        at.session_state["explain_tab"] = "Export"
        at.run()
        assert "WiSE-FT mix at alpha 0.30" in at.radio(key=f"export_which_{run_id}").options[0]
        assert any(c.startswith("Another mix of the starting and fine-tuned weights: choose its alpha on Results")
                   and c.endswith("instead of alpha 0.30.") for c in texts(at.caption)), "where the other mixes are"
        at.session_state["explain_tab"] = "Error analysis"  # the errors of the model in use, the mix
        at.run()
        no_problems(at)
        assert any(m.startswith("The WiSE-FT mix at alpha 0.30 gets **") and "the model Try it and Export use" in m
                   for m in texts(at.markdown)), texts(at.markdown)
        at.session_state["explain_tab"] = "Export"  # the tab a refresh reopens, below
        at.run()

        engine().shutdown(5)  # a server restart as well: the alpha is read from the store
        st.cache_resource.clear()
        fresh = AppTest.from_file(MAIN, default_timeout=180)
        fresh.run()
        fresh.switch_page(PAGE).run()
        no_problems(fresh)
        assert fresh.selectbox(key="explain_run").value == run_id, "a refresh opens on the same run"
        assert "WiSE-FT mix at alpha 0.30" in fresh.radio(key=f"export_which_{run_id}").options[0], "on the tab kept open"
        fresh.session_state["explain_tab"] = "Attributions"
        fresh.run()
        assert "WiSE-FT mix at alpha 0.30" in " ".join(texts(fresh.markdown))
        fresh.switch_page("app_pages/results.py").run()
        assert fresh.number_input(key=f"wise_exact_{run_id}").value == 0.3
        assert fresh.select_slider(key=f"wise_alpha_{run_id}").value == 0.0, "the slider at the nearest stop"
        # every page follows the run looked at last, wherever: Explain kept the run it was first opened on while
        # Results and Try it showed another
        fresh.selectbox(key="results_run").set_value(other).run()
        for page, key in ((PAGE, "explain_run"), ("app_pages/try_it.py", "try_run")):
            fresh.switch_page(page).run()
            no_problems(fresh)
            assert fresh.selectbox(key=key).value == other, page
        fresh.selectbox(key="try_run").set_value(run_id).run()
        for page, key in ((PAGE, "explain_run"), ("app_pages/results.py", "results_run")):
            fresh.switch_page(page).run()
            assert fresh.selectbox(key=key).value == run_id, page
        fresh.switch_page(PAGE).run()  # drawn again without a change elsewhere: the page's own choice stays
        fresh.selectbox(key="explain_run").set_value(other).run()
        fresh.run()
        assert fresh.selectbox(key="explain_run").value == other
    finally:
        engine().store.set_wise_ft_alpha(run_id, None)



def test_error_analysis_answers_in_the_runs_precision_and_agrees_with_its_results(wise_run, monkeypatch):
    """Explain's per-image answers are the run's own evaluation: the same autocast precision (bf16 on
    a CPU where the run measured it faster) and the same validation confusion matrix as Results."""
    import json

    import torch

    from app.app_pages import explain as page
    from engine import explain as engine_explain

    studio, run_id = wise_run
    run_dir = str(engine().run_record(run_id).run_dir)
    datasets = str(engine().datasets_dir)
    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    page.predictions.clear()
    out = page.predictions(run_dir, datasets)
    n = len(summary["classes"])
    confusion = np.zeros((n, n), int)
    np.add.at(confusion, (out["labels"], out["preds"]), 1)
    assert confusion.tolist() == summary["val_confusion"], "Explain's answers are the ones Results reports"
    for point in (summary["wise_curve"][0], summary["wise_curve"][len(summary["wise_curve"]) // 2]):
        mix = page.predictions(run_dir, datasets, point["alpha"])  # a WiSE-FT run's mix in use: the curve's answers
        assert (mix["labels"] == mix["preds"]).mean() == pytest.approx(point["val_acc"]), point

    seen, real = [], engine_explain.predict
    monkeypatch.setattr(engine_explain, "predict", lambda *a, **k: seen.append(k.get("amp_dtype")) or real(*a, **k))
    bundle = page._bundle(run_dir, datasets)
    monkeypatch.setitem(bundle.summary, "precision", "bfloat16")  # a CPU run that evaluated in bf16
    page.predictions.clear()
    page.predictions(run_dir, datasets)
    monkeypatch.setitem(bundle.summary, "device", "cuda:0")  # a GPU run explained on the CPU: this CPU's choice
    monkeypatch.setattr("engine.devices.pick_amp", lambda *a, **k: None)
    page.predictions.clear()
    page.predictions(run_dir, datasets)
    page.predictions.clear()
    assert seen == [torch.bfloat16, None]


def test_the_starting_model_of_a_run_that_kept_its_checkpoints_head_is_not_called_a_guess(tmp_path):
    import json
    from types import SimpleNamespace

    from app.app_pages.explain import row_note

    rec = SimpleNamespace(config={}, run_dir=str(tmp_path))
    (tmp_path / "summary.json").write_text(json.dumps({"load_report": {"head_kept": False}}))
    assert "never trained" in row_note({"key": "pretrained"}, "checkpoint", rec)
    (tmp_path / "summary.json").write_text(json.dumps({"load_report": {"head_kept": True}}))
    note = row_note({"key": "pretrained"}, "checkpoint", rec)
    assert "never trained" not in note and "head it was trained with" in note and "your checkpoint" in note


def test_the_attacked_image_names_whose_budget_it_is():
    """A WiSE-FT run without any robustness evaluation read "the run's evaluation budget" under its attacked
    image: it never evaluated one."""
    from types import SimpleNamespace

    from app.app_pages.explain import row_note

    r = {"key": "adversarial", "linf": 4 / 255, "eps": 4 / 255, "steps": 20}
    plain = row_note(r, "bundled", SimpleNamespace(config={"eval": {"robust": False}}, run_dir="/nonexistent"))
    assert "the attack budget the studio evaluates robustness at" in plain and "the run's" not in plain
    for config in ({"eval": {"robust": True}}, {"adversarial": {"enabled": True}}):
        assert "the run's evaluation budget" in row_note(r, "bundled", SimpleNamespace(config=config, run_dir="/x"))


def test_an_images_loss_reads_as_a_decimal_in_three_digits():
    from app.app_pages.explain import loss_words

    assert loss_words(4.0) == "loss 4.00" and loss_words(0.01234) == "loss 0.0123" and loss_words(12.345) == "loss 12.3"
    assert loss_words(8.39e-05) == "loss under 0.001" and loss_words(-1e-9) == "loss under 0.001", "not 8.39e-05"
    from app.app_pages.explain import LOSS_HINT  # "loss" said in plain words beside the gallery, its figures -ln(p)

    assert LOSS_HINT.endswith("near 0 when it gave it almost 100%, 0.69 at 50%, 2.3 at 10%."), LOSS_HINT


def test_the_highest_loss_gallery_offers_a_choice_only_when_there_is_one():
    # a new user's 3 validation images drew a "How many" slider with one stop, a lone dot
    from app.app_pages.explain import gallery_sizes

    assert gallery_sizes(3) == [3] and gallery_sizes(6) == [6]
    assert gallery_sizes(20) == [6, 12, 20] and gallery_sizes(128) == [6, 12, 24, 48]
    from app.app_pages.explain import gallery_size_words

    assert [gallery_size_words(s, 9) for s in gallery_sizes(9)] == ["6", "all 9"], "not a slider from 6 to 9"


def test_the_export_tab_offers_the_fine_tuned_model_once_when_the_wise_ft_pick_is_alpha_1(tmp_path):
    """A run that kept alpha 1 listed 'fine-tuned, full size (alpha 1)' and 'WiSE-FT mix at alpha 1.00', the
    same weights twice."""
    from app.app_pages.explain import export_choices

    choices = export_choices(tmp_path, {}, 0.6, chosen=False)
    assert choices == {"wise": "WiSE-FT mix at alpha 0.60 (the run's own pick)",
                       "fine_tuned": "fine-tuned, full size (alpha 1)"}
    assert next(iter(choices)) == "wise", "the default: the alpha Results says export uses"
    assert export_choices(tmp_path, {}, 1.0, chosen=False) == {
        "fine_tuned": "fine-tuned, full size (alpha 1), the WiSE-FT run's own pick"}
    assert export_choices(tmp_path, {}, None) == {"fine_tuned": "fine-tuned, full size"}


def test_file_names_shown_as_they_are_with_break_points():
    """The gallery's file names: markdown and HTML characters shown as themselves, also a list or heading
    marker at the start of the line, line breaks allowed after / by <wbr> (nothing a copy of the name picks
    up), not after _ ("leaf_" and "blight_0001.jpg" on two lines read as two names)."""
    names = ("leaf_blight/leaf_blight_0001.jpg", "a *b* <i>x</i> &copy; R&amp;D [l](u) `c` $x$ ~s~ |p|.png",
             "1. healthy/x.jpg", "- x.jpg", "# x.png", "12) y.png", "a\\_b.png", "plain.jpg")
    for name in names:
        shown = breakable_name(name)
        assert "\u200b" not in shown
        assert shown.count("<wbr>") == name.count("/")
        text = shown.replace("<wbr>", "")
        # what a browser shows: each backslash-escaped character as itself (an escaped & starts no entity)
        assert re.sub(r"\\(.)", r"\1", text) == name
        assert re.search(r"(?<!\\)[*`$\[\]~|<>&]", text) is None, shown
        assert not re.match(r"\s*([#+-]+|\d+[.)])(\s|$)", text), "no list or heading"


def test_exporting_keeps_the_attribution_choices(wise_run):
    """A new user picked three methods and an overlay strength, pressed Export and verify on the Export tab, and
    came back to Attributions to find the methods reset and the overlay at 0 (kept so across a refresh)."""
    studio, run_id = wise_run
    at = open_page(run_id)
    at.pills(key="explain_methods").set_value(["saliency", "grad_cam"])
    at.slider(key="explain_strength").set_value(0.4)
    at.run()
    at.session_state["explain_tab"] = "Export"
    at.run()
    at.button(key=f"export_{run_id}").click().run()
    no_problems(at)
    at.session_state["explain_tab"] = "Attributions"
    at.run()
    no_problems(at)
    assert at.pills(key="explain_methods").value == ["saliency", "grad_cam"]
    assert at.slider(key="explain_strength").value == 0.4
    # and the browser is told so: a value Streamlit only holds (set_value false) is not what the browser draws
    # when it has forgotten the widget (a closed tab): it draws its own default and sends that back
    assert at.pills(key="explain_methods").proto.set_value and at.slider(key="explain_strength").proto.set_value


def test_an_adversarial_runs_model_is_named_as_try_it_names_it():
    """Explain said "Fine-tuned model" where Try it said "Adversarially fine-tuned" for the same model."""
    from app.app_pages.explain import row_titles

    assert row_titles({"adversarial": {"enabled": True}})["fine_tuned"] == "Adversarially fine-tuned model"
    assert row_titles({})["fine_tuned"] == "Fine-tuned model"


# ---- the smaller (channel-pruned) model --------------------------------------------------------------

def test_the_smaller_model_has_its_own_row_maps_and_mistakes(studio):
    """A run with structured pruning: the Attributions tab gives the smaller model its own row (its answer
    and a map per method, a note with its share of the parameters), and the Error analysis tab shows its
    mistakes on request, the same count as Results' confusion matrix of the smaller model; a damaged
    structured.safetensors leaves its row out with a message and keeps the others."""
    eng = engine()
    run_id = eng.submit(resnet_config(studio["data"], "train.epochs=1", "train.threads=1", "pruning.enabled=true",
                                      "pruning.target_sparsity=0.3", "pruning.structured=true",
                                      "pruning.channel_fraction=0.5", "pruning.structured_epochs=1"))
    assert eng.wait(run_id, RUN_TIMEOUT) == "finished", eng.run_record(run_id).error
    run_dir = Path(eng.run_record(run_id).run_dir)
    info = json.loads((run_dir / "summary.json").read_text())["structured"]
    at = open_page(run_id)
    no_problems(at)
    at.toggle(key="explain_show_start").set_value(True)
    at.toggle(key="explain_show_attack").set_value(True).run()
    rows = [m.split("**")[1] for m in texts(at.markdown) if re.match(r"\*\*[^*]+\*\* (says|guesses) ", m)]
    assert rows == ["Starting model", "Fine-tuned model", "Smaller (channel-pruned) model",
                    "Fine-tuned model on the adversarial image"], rows
    share = f"{info['params_after'] / info['params_before']:.0%} of its parameters"
    assert any("50% of the channels" in c and share in c and "fine-tuned again for 1 epoch" in c
               for c in texts(at.caption)), texts(at.caption)
    methods = len(at.pills(key="explain_methods").value)
    assert len(at.image) == 4 * (1 + methods) + 1, "one input and a map per method on each of the four rows"

    at.session_state["explain_tab"] = "Error analysis"
    at.run()
    no_problems(at)
    of = at.radio(key=f"explain_errors_of_{run_id}")
    assert of.value == "in_use" and of.options == ["The fine-tuned model", "The smaller (channel-pruned) model"]
    of.set_value("smaller").run()
    no_problems(at)
    n = len(val_files(run_id))
    right = int(np.trace(np.array(info["val_confusion"])))  # Results' confusion matrix of the smaller model
    assert any(m.startswith(f"The smaller (channel-pruned) model gets **{right} of {n}**") for m in texts(at.markdown)), \
        texts(at.markdown)[:3]
    # its confusion cells have a picker of their own: with one picker for both models the browser kept the other
    # model's count in the label of a cell both matrices have ("zigzagged → wavy (8 images)" over "2 images";
    # Streamlit redraws a kept widget's value, not its labels)
    assert not [b for b in at.selectbox if b.key == f"explain_cell_{run_id}"]
    cell = at.selectbox(key=f"explain_cell_{run_id}_smaller")
    t, p_ = (int(k) for k in cell.value.split(":"))
    assert cell.format_func(cell.value).endswith(f"({info['val_confusion'][t][p_]} image"
                                                 f"{'' if info['val_confusion'][t][p_] == 1 else 's'})" + (" · correct" if t == p_ else ""))

    # the Attributions tab's mistakes filter and image list follow the model chosen there (a new user's filter
    # kept counting the full-size model's mistakes after "Mistakes of" named the smaller one)
    at.session_state["explain_tab"] = "Attributions"
    at.run()
    no_problems(at)
    assert "the smaller (channel-pruned) model gets wrong" in at.toggle(key=f"explain_wrong_{run_id}").help
    at.toggle(key=f"explain_wrong_{run_id}").set_value(True).run()
    assert len(at.selectbox(key=f"explain_image_{run_id}").options) == n - right
    at.toggle(key=f"explain_wrong_{run_id}").set_value(False).run()

    (run_dir / "structured.safetensors").write_bytes(b"not a checkpoint")
    try:
        from engine.runs import _RUNS

        _RUNS.clear()  # a fresh load of the run, as after a restart
        st.cache_resource.clear()
        st.cache_data.clear()
        at = open_page(run_id)
        at.toggle(key="explain_show_start").set_value(True)
        at.toggle(key="explain_show_attack").set_value(True).run()
        assert any("could not be loaded" in w for w in texts(at.warning)), texts(at.warning)
        assert any(m.startswith("**Fine-tuned model** says") for m in texts(at.markdown))
        assert len(at.image) == 3 * (1 + methods) + 1
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()


def _picker_script():
    """An app of the image picker alone: four validation images, all answered right."""
    from types import SimpleNamespace

    import numpy as np

    from app.app_pages.explain import image_picker

    pred = {"labels": np.array([0, 1, 0, 1]), "preds": np.array([0, 1, 0, 1]), "confs": np.full(4, 0.9),
            "files": ["a.png", "b.png", "c.png", "d.png"]}
    image_picker(SimpleNamespace(id="r1"), ["pêche", "Red apple", "pear"], pred, "the fine-tuned model")


def test_only_mistakes_on_a_model_without_any_says_so_and_where_the_test_mistakes_are():
    """A new user saw one test mistake on Results, switched on "Only mistakes" here and read "No validation
    image matches these filters", with no word on why the mistake was not listed."""
    at = AppTest.from_function(_picker_script, default_timeout=30)
    at.run()
    at.toggle(key="explain_wrong_r1").set_value(True).run()
    (said,) = texts(at.info)
    assert said.startswith("The fine-tuned model gets every validation image right: no mistake to explain.")
    assert "test images" in said and "Results" in said
    at.selectbox(key="explain_class_r1").set_value("pêche").run()
    assert texts(at.info)[0].startswith("The fine-tuned model gets every validation image of 'pêche' right")
    at.selectbox(key="explain_class_r1").set_value("pear").run()
    assert texts(at.info) == ["No validation image of 'pear'."], "not 'gets every image of pear right'"


def test_the_mix_at_alpha_0_is_said_to_be_the_starting_model_row():
    """A teacher took Explain's "WiSE-FT mix at alpha 0.00" row and the starting model's for two models."""
    from streamlit.testing.v1 import AppTest

    def script():
        from types import SimpleNamespace

        import streamlit as st

        from app import state
        from app.app_pages.explain import row_note

        real = state.wise_alpha, state.get_engine
        state.wise_alpha, state.get_engine = (lambda engine, rec: (0.0, True)), (lambda: None)
        try:
            rec = SimpleNamespace(config={}, run_dir="/nonexistent")
            for alpha in (0.0, 0.5):
                st.caption(row_note({"key": "wise", "alpha": alpha}, "bundled", rec))
        finally:
            state.wise_alpha, state.get_engine = real

    at = AppTest.from_function(script, default_timeout=30).run()
    assert not at.exception, at.exception
    zero, half = (c.value for c in at.caption)
    assert "At alpha 0 the mix is the starting model itself (its row shows with *Compare with the starting model* " \
           "switched on)" in zero
    assert "At alpha 0" not in half


def test_a_stopped_runs_best_epoch_is_explained_and_exported(studio):
    """A stopped run's best epoch so far is offered, said to be that, explained and exported to a folder named by
    its epoch with a card of its own figures; once the run is continued and finishes, the page answers with the
    final model again (nothing cached from the stopped run's model is reused)."""
    import shutil

    cfg = resnet_config(studio["data"], "train.epochs=1", "train.threads=1", "eval.ood=false",
                        "backbone.pretrained=checkpoint", f"backbone.checkpoint={studio['ckpt']}")
    run_id = finished_run(engine(), cfg, RUN_TIMEOUT)
    rec = engine().run_record(run_id)
    run_dir = Path(rec.run_dir)
    before = (run_dir / "summary.json").read_text()
    shutil.move(run_dir / "last.safetensors", run_dir / "last.kept")
    shutil.copy(run_dir / "best.safetensors", run_dir / "best.kept")
    try:
        from safetensors import safe_open
        from safetensors.torch import save_file

        with safe_open(run_dir / "best.safetensors", "pt") as f:  # a best epoch unlike the final model: a zero head
            meta, weights = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
        save_file({k: v * 0 if k.startswith("net.fc.") else v for k, v in weights.items()},
                  run_dir / "best.safetensors", metadata=meta)
        summary = json.loads(before)
        (run_dir / "summary.json").write_text(json.dumps({**summary, "status": "stopped"}))
        engine().store.set_status(run_id, "stopped", "Stopped after epoch 1 of 1.")
        at = open_page(run_id)
        no_problems(at)
        said = next(m for m in texts(at.markdown) if m.startswith("**Fine-tuned model (its best epoch so far)** says"))
        assert "(33%)" in said, "the zero head's answer: a third for each class"
        from engine.predict import load_predictor

        stopped = load_predictor(run_dir, "best")  # Try it's and `predict`'s
        from engine.runs import load_run

        loaded = load_run(run_dir, None)
        assert loaded.model_variant("best") is loaded.model, "a stopped run's best epoch is loaded once"
        says_stopped_best(at, "explain_run", run_id, summary, "is explained and exported")
        markdown = " ".join(texts(at.markdown))
        assert "**Fine-tuned model (its best epoch so far)** says" in markdown
        at.session_state["explain_tab"] = "Export"
        at.run()
        no_problems(at)
        assert not [r for r in at.radio if r.key == f"export_which_{run_id}"], "its one model: no choice"
        assert any(c.startswith("Exports the run's best epoch so far") for c in texts(at.caption))
        at.button(key=f"export_{run_id}").click().run()
        no_problems(at)
        assert any("All 3 exports verified" in s for s in texts(at.success)), texts(at.success)
        card = (run_dir / "exports" / "best_epoch_1" / "MODEL_CARD.md").read_text()
        assert "- These files are its best epoch, epoch 1 of the 1 it ran (highest validation accuracy), stopped " \
               "before its end" in card and "## Metrics (the best epoch's, measured at export)" in card, card
    finally:
        shutil.move(run_dir / "last.kept", run_dir / "last.safetensors")
        shutil.move(run_dir / "best.kept", run_dir / "best.safetensors")
        (run_dir / "summary.json").write_text(before)
        engine().store.set_status(run_id, "finished", None)
        shutil.rmtree(run_dir / "exports", ignore_errors=True)
    at = open_page(run_id)  # continued and finished: the final model
    no_problems(at)
    assert "best epoch so far" not in " ".join(texts(at.markdown))
    again = load_predictor(run_dir, "best")
    assert again is not stopped and again.model.net.fc.weight.abs().sum() > 0, "the best epoch read again"
    final = next(m for m in texts(at.markdown) if m.startswith("**Fine-tuned model** says"))
    assert final.split(" says ")[1] != said.split(" says ")[1], "the final model answers, not a cached earlier one"


def test_a_run_whose_dataset_is_gone_says_so_by_its_name_and_still_exports(studio, tmp_path):
    """A run whose upload was deleted: Explain names the user's file, leaves out what needs its images (the
    attributions and the mistakes) and still exports, each file checked on generated images, as `export` does
    on the command line; the card, the checks' line and exports.json say which images."""
    import hashlib

    data = write_tiny_zip(tmp_path / "mine.zip", per_class=6).read_bytes()
    cfg = resnet_config(engine().save_upload(data, ".zip"), f"data.source=upload:{hashlib.sha256(data).hexdigest()}",
                        "data.source_name=my *shapes*.zip", "train.epochs=1", "train.threads=1")
    run_id = finished_run(engine(), cfg, RUN_TIMEOUT)
    from app.state import source_exists
    from engine.paths import resolve_path

    while source_exists(cfg.data.source):  # gone from every uploads folder that holds these bytes, extracted too
        gone = resolve_path(cfg.data.source)
        shutil.rmtree(gone) if gone.is_dir() else gone.unlink()
    at = open_page(run_id)
    no_problems(at)
    said = " ".join(texts(at.warning))
    assert r"The data of this run, **my \*shapes\*.zip**, is no longer on this server" in said, said
    assert "checked on 32 generated images" in said and "not its accuracy" in said, said
    assert not at.tabs, "the attributions and the mistakes need the images: the export alone is drawn"
    assert any("compared** with the model on 32 generated images" in m for m in texts(at.markdown))
    at.button(key=f"export_{run_id}").click().run()
    no_problems(at)
    assert any("they give the same class on all 32 generated images" in s for s in texts(at.success)), texts(at.success)
    out = Path(engine().run_record(run_id).run_dir) / "exports"
    card = (out / "MODEL_CARD.md").read_text()
    assert "## Exports (verified on the 32 generated images)" in card, card
    checks = json.loads((out / "exports.json").read_text())
    assert {(c["extra"]["checked_on"], c["extra"]["images"]) for c in checks} == {("the 32 generated images", 32)}
    again = open_page(run_id)  # a later visit reads the same words from exports.json
    assert any("on all 32 generated images" in s for s in texts(again.success)), texts(again.success)


def test_a_gone_dataset_is_named_with_the_remedy_for_its_kind_and_a_mix_that_needs_its_images_is_left_out(tmp_path):
    """An upload is uploaded again, a folder put back at its path; a file still there but unreadable is not
    "no longer on this server"; a WiSE-FT mix that re-estimates batch norm on the training images is not offered
    for export once they are gone (it could only fail), the other mixes are."""
    from types import SimpleNamespace

    from app.app_pages.explain import data_gone_words, without_mix_on_gone_data
    from engine.errors import StudioError

    upload = {"data": {"source": "upload:" + "0" * 64, "source_name": "my photos.zip"}}
    said = data_gone_words(upload, StudioError("gone"))
    assert "**my photos.zip**, is no longer on this server" in said and "upload it again on the Data page" in said
    folder = {"data": {"source": str(tmp_path / "birds")}}
    assert f"put it back at `{tmp_path / 'birds'}`" in data_gone_words(folder, StudioError("gone"))
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"not a zip")
    said = data_gone_words({"data": {"source": str(broken)}}, StudioError("The zip file is damaged."))
    assert "could not be read (The zip file is damaged)" in said and "no longer" not in said and "put it" not in said
    choices = {"wise": "mix", "fine_tuned": "fine-tuned"}
    b = SimpleNamespace(cfg=SimpleNamespace(methods={"wise_ft": SimpleNamespace(recalibrate_bn=True)}))
    assert list(without_mix_on_gone_data(b, choices, 0.5)) == ["fine_tuned"]
    assert list(without_mix_on_gone_data(b, choices, 1.0)) == ["wise", "fine_tuned"], "the ends are saved models"
    b.cfg.methods["wise_ft"].recalibrate_bn = False
    assert list(without_mix_on_gone_data(b, choices, 0.5)) == ["wise", "fine_tuned"]


def test_the_export_tab_offers_a_smaller_model_far_below_full_size_second_and_says_by_how_much(tmp_path):
    """An inspector's Export defaulted to the channel-pruned model that Results put 61.5 test points below the
    full-size model (and at guessing), while Try it answered with the full-size one."""
    from app.app_pages.explain import export_choices
    from engine.claims import smaller_shortfall

    (tmp_path / "structured.safetensors").write_bytes(b"")
    fine = {"structured": {"params_before": 100, "params_after": 47, "test_acc": 0.75, "test_acc_before": 0.769,
                           "val_acc": 0.7, "val_acc_before": 0.8}}
    assert smaller_shortfall(fine) is None, "1.9 test points: within the 3-point allowance (validation not read)"
    assert list(export_choices(tmp_path, fine, None)) == ["structured", "fine_tuned"], "the point of such a run"
    far = {"structured": dict(fine["structured"], test_acc=2 / 13, test_acc_before=10 / 13)}
    assert smaller_shortfall(far) == (61.5, "test")
    choices = export_choices(tmp_path, far, None)
    assert list(choices) == ["fine_tuned", "structured"], "the full-size model is the default"
    assert choices["structured"] == ("smaller, channel-pruned (structured pruning, 47% of the parameters; 61.5 test "
                                     "points below full size)")
    assert list(export_choices(tmp_path, far, 0.5)) == ["wise", "fine_tuned", "structured"], \
        "a WiSE-FT run's mix stays first: Try it and predict answer with it"
    val_only = {"structured": {"val_acc": 0.5, "val_acc_before": 0.9}}
    assert smaller_shortfall(val_only) == (40.0, "validation"), "validation where the run has no test figures"


def test_the_images_exports_are_checked_on_read_in_the_singular_for_one():
    """An inspector's one validation image read "compared with the model on the 1 validation images"."""
    from app.app_pages.explain import check_images_words
    from engine.export import VALIDATION_IMAGES, checked_on_words

    assert checked_on_words(VALIDATION_IMAGES, 1) == "the one validation image"
    assert checked_on_words(VALIDATION_IMAGES, 40) == "the 40 validation images"
    assert checked_on_words("the 32 generated images", 1) == "the 32 generated images"
    assert check_images_words([{"extra": {"checked_on": VALIDATION_IMAGES, "images": 1}}]) == "the one validation image"


def test_the_maps_say_when_the_pictures_lost_their_fine_detail(tmp_path):
    """A geology instructor's biotite, shrunk 8x to 64 px, was a plain brown square with its cleavage lines gone, and
    the maps had nothing to show: under the maps of a run whose pictures were shrunk 3x or more, a line says so."""
    import json
    from types import SimpleNamespace

    from app.app_pages.explain import shrunk_note

    def rec(shape, size=64, fit="crop"):
        run_dir = tmp_path / f"r{len(list(tmp_path.iterdir()))}"
        run_dir.mkdir()
        (run_dir / "summary.json").write_text(json.dumps({"data_report": {"picture_shape": shape}}))
        return SimpleNamespace(run_dir=str(run_dir), config={"data": {"image_size": size, "fit": fit}})

    thin = {"long": 640, "short": 480}
    assert shrunk_note(rec(thin)) == (
        ":material/zoom_out: The model saw each picture at 64 x 64 px, about 8x smaller than yours (typically 640 x "
        "480): detail finer than about 8 of their pixels is not in what it saw, so no map can point at it. A run at a "
        "larger image size keeps finer detail.")
    padded = shrunk_note(rec(thin, size=128, fit="pad"))
    assert padded.startswith(":material/zoom_out: The model saw each picture at 128 x 128 px, about 5x smaller"), \
        "whole pictures: by their longer side"
    assert shrunk_note(rec(thin, size=224)) is None, "about 2x: not said"
    stretched = shrunk_note(rec(thin, size=128, fit="stretch"))  # the longer side shrunk most, the other less
    assert stretched.startswith(":material/zoom_out: The model saw each picture at 128 x 128 px, about 5x smaller "
                                "than yours along their longer side (typically 640 x 480)"), stretched
    assert shrunk_note(rec(None)) is None and shrunk_note(rec({})) is None, "a run from before the shape was kept"


def test_the_error_gallery_names_the_cut_away_ends_of_wide_pictures(tmp_path):
    """A bioacoustics researcher's 6 mistakes were all spectrograms whose call lay outside the middle square, and the
    advice named labels, look-alikes and backgrounds only: for a run that kept the middle square of wide or tall
    pictures, the cut-away ends are named too."""
    import json
    from types import SimpleNamespace

    from app.app_pages.explain import cut_ends_hint

    def rec(shape, fit="crop"):
        run_dir = tmp_path / f"r{len(list(tmp_path.iterdir()))}"
        run_dir.mkdir()
        (run_dir / "summary.json").write_text(json.dumps({"data_report": {"picture_shape": shape}}))
        return SimpleNamespace(run_dir=str(run_dir), config={"data": {"image_size": 64, "fit": fit}})

    wide = {"long": 800, "short": 200, "square_share": 0.25, "wide": 1.0, "tall": 0.0}
    assert cut_ends_hint(rec(wide)) == (
        ", or what tells the class apart lying in the ends of the picture cut away (this run saw the middle square of "
        "each; the Data page's *Wide and tall pictures* keeps the whole picture)")
    assert cut_ends_hint(rec(wide, fit="pad")) == "", "whole pictures: nothing cut"
    square = {"long": 64, "short": 64, "square_share": 1.0, "wide": 0.0, "tall": 0.0}
    assert cut_ends_hint(rec(square)) == "" and cut_ends_hint(rec(None)) == ""
