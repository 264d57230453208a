"""The dashboard through Streamlit's AppTest: every page, the whole flow on a tiny dataset, the error paths.

`run_every` fragments do not tick inside AppTest, so the tests drive the engine to the end
(`engine.wait`) and then rerun the page. Each test has its own engine folder (STUDIO_DATA_DIR).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from engine.config import with_section
from engine.paths import resolve_path
from engine.methods import METHODS, MethodSpec
from engine.config import METHOD_SECTIONS
from engine.contract import MethodHook

from conftest import tiny_image, write_tiny_zip

ROOT = Path(__file__).resolve().parent.parent
MAIN = str(ROOT / "app" / "main.py")
RUN_TIMEOUT = 300


# ---- helpers ----------------------------------------------------------------------------------

@pytest.fixture
def studio(tmp_path, monkeypatch):
    """A fresh engine folder for this test; the engine is shut down afterwards."""
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path / "studio"))
    yield tmp_path / "studio"
    from app.state import get_engine

    get_engine().shutdown(5)
    st.cache_resource.clear()
    from app import datasets

    datasets._SHAPES.clear()  # the server's memory of checked datasets, as a restart clears it


def new_app() -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def engine():
    from app.state import get_engine

    return get_engine()


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def no_problems(at: AppTest) -> None:
    """No exception, and none that a page's guard caught and showed as its generic error (state.attempt)."""
    assert not at.exception, [e.value for e in at.exception]
    caught = [e for e in texts(at.error) if e.startswith("Something unexpected went wrong")]
    assert not caught, (caught, [c.value for c in at.code if "Traceback" in str(c.value)])


def upload_zip(at: AppTest, data: bytes, name: str = "my data.zip") -> AppTest:
    assert [r for r in at.radio if r.key == "w:data.kind"], (  # seen once under load: say what the page showed
        "no dataset choice on the page", texts(at.error), texts(at.warning), texts(at.title), texts(at.info))
    at.radio(key="w:data.kind").set_value("upload").run()
    at.file_uploader[0].set_value((name, data, "application/zip")).run()
    no_problems(at)
    return at


def configure_tiny(at: AppTest, epochs: int = 1) -> AppTest:
    at.switch_page("app_pages/model.py").run()
    no_problems(at)
    at.number_input(key="w:train.epochs").set_value(epochs)
    at.number_input(key="w:train.batch_size").set_value(8)
    at.number_input(key="w:data.image_size").set_value(32)
    at.radio(key="w:backbone.pretrained").set_value("none")
    at.run()
    no_problems(at)
    return at


def start_run(at: AppTest) -> str:
    at.switch_page("app_pages/train.py").run()
    before = {r.id for r in engine().list_runs()}
    at.button(key="start").click().run()
    no_problems(at)
    new = [r.id for r in engine().list_runs() if r.id not in before]
    assert len(new) == 1, texts(at.error)
    return new[0]


@pytest.fixture(scope="module")
def tiny_bytes(tmp_path_factory) -> bytes:
    return write_tiny_zip(tmp_path_factory.mktemp("app") / "tiny.zip", per_class=10).read_bytes()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def png(cls: str = "red", i: int = 0) -> bytes:
    buf = io.BytesIO()
    tiny_image(cls, i).save(buf, format="PNG")
    return buf.getvalue()


# ---- every page --------------------------------------------------------------------------------

def test_the_sidebars_next_run_says_how_imbalanced_classes_are_treated(studio):
    """A student's runs with a class-weighted loss were described as the others everywhere but the YAML: the
    sidebar's "Next run" line says it too."""
    at = new_app()
    at.selectbox(key="w:data.class_balance").set_value("weighted_loss").run()
    sidebar = " ".join(str(getattr(e, "value", "")) for e in at.sidebar)
    assert "loss weighted by class." in sidebar, sidebar
    at.selectbox(key="w:data.class_balance").set_value("none").run()  # the draft back as it was, for the next tests


def test_wide_pictures_get_the_choice_of_keeping_them_whole_on_the_data_page(studio):
    """Training kept a wide picture's middle square only, and only Try it offered another part: the Data page says
    what the square cuts away and offers *Wide and tall pictures*; keeping them whole changes its words and the
    next run's line."""
    import zipfile

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k, cls in enumerate(("left", "right")):
            for i in range(6):  # noise of its own: no look-alike groups
                img = Image.fromarray(np.random.default_rng(10 * k + i).integers(0, 255, (48, 96, 3), dtype=np.uint8))
                out = io.BytesIO()
                img.save(out, format="PNG")
                zf.writestr(f"{cls}/{i}.png", out.getvalue())
    at = upload_zip(new_app(), buf.getvalue(), "wide shots.zip")
    no_problems(at)
    said = " ".join(texts(at.caption))
    assert "the left and right edges are cut away" in said and "*Wide and tall pictures* below keeps the whole " \
        "picture instead, on grey bars or stretched to the square (the usual way for spectrograms and other " \
        "plots)." in said, said
    choice = at.radio(key="w:data.fit")
    assert choice.value == "crop"
    choice.set_value("pad").run()
    no_problems(at)
    assert at.session_state["cfg"].data.fit == "pad"
    # the counts and previews drawn above the choice are checked again the new way (they stayed cropped)
    assert any(key[-1] == "pad" for key in at.session_state["data_checks"]), list(at.session_state["data_checks"])
    said = " ".join(texts(at.caption))
    assert "the model sees each whole, resized to fit 64 x 64 px; each fills the square's width and 50% of its " \
        "height, grey bars above and below" in said, said
    sidebar = " ".join(str(getattr(e, "value", "")) for e in at.sidebar)
    assert "whole pictures." in sidebar, sidebar
    # a spectrogram's usual treatment: the whole picture stretched to the square, said so
    at.radio(key="w:data.fit").set_value("stretch").run()
    no_problems(at)
    assert at.session_state["cfg"].data.fit == "stretch"
    said = " ".join(texts(at.caption))
    assert "the model sees each whole, stretched to 64 x 64 px; its width is squeezed about 2.0 times more than its " \
        "height" in said, said
    assert "stretched pictures." in " ".join(str(getattr(e, "value", "")) for e in at.sidebar)
    at.radio(key="w:data.fit").set_value("crop").run()  # the draft back as it was, for the next tests


def test_pictures_shrunk_far_get_a_larger_image_size_in_one_click_on_the_data_page(studio):
    """An agronomist's rust pustules, about 8 of a 640 x 480 photo's pixels, were lost at 64 px, and only Results
    said so, after the run."""
    import zipfile

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k, cls in enumerate(("rust", "healthy")):
            for i in range(6):
                img = Image.fromarray(np.random.default_rng(50 + 10 * k + i).integers(0, 255, (200, 200, 3),
                                                                                       dtype=np.uint8))
                out = io.BytesIO()
                img.save(out, format="JPEG", quality=80)
                zf.writestr(f"{cls}/{i}.jpg", out.getvalue())
    at = upload_zip(new_app(), buf.getvalue(), "leaves.zip")
    no_problems(at)
    size = at.session_state["cfg"].data.image_size
    assert size == 64 and "shrunk about 3x" in " ".join(texts(at.caption))
    at.button(key="finer_px").click().run()
    no_problems(at)
    assert at.session_state["cfg"].data.image_size == 128
    assert not any(b.key == "finer_px" for b in at.button), "at 128 px: offered no more"


def test_the_app_opens_on_the_data_page_with_the_engine_status_in_the_sidebar(studio):
    at = new_app()
    assert texts(at.title) == ["1 · Data"]
    sidebar = " ".join(str(getattr(e, "value", "")) for e in at.sidebar)  # (AppTest drops it after switch_page)
    assert "Engine idle" in sidebar and "Next run" in sidebar and "0 runs stored" in sidebar
    if (ROOT / "assets" / "sample_textures.zip").is_file():
        assert "Active dataset: Bundled sample: textures" in texts(at.subheader), "the sample is ready to click"
    else:
        assert any("sample dataset" in w for w in texts(at.warning))


def test_the_data_page_counts_the_training_images_a_run_will_use(studio, tiny_bytes):
    """Training images per class caps what a run trains on: the page's counts follow the cap, and say so."""
    from app.datasets import capped_split

    at = upload_zip(new_app(), tiny_bytes, "colours.zip")
    before = {m.label: m.value for m in at.metric}["Training"]
    at.number_input(key="w:data.train_per_class").set_value(2).run()
    no_problems(at)
    assert {m.label: m.value for m in at.metric}["Training"] == str(2 * 3), "3 classes, at most 2 each"
    assert any(c.startswith("Training uses at most 2 images per class") and f"6 of the {before} training" in c
               for c in texts(at.caption)), texts(at.caption)
    configure_tiny(at)
    run_id = start_run(at)
    assert engine().wait(run_id, RUN_TIMEOUT) == "finished"
    at.switch_page("app_pages/results.py").run()
    no_problems(at)
    used = " ".join(m.value for m in at.markdown if "classes, train:" in m.value)
    assert "train: 6," in used and f"Training used at most 2 images per class, 6 of the split's {before}" in used, used
    at.switch_page("app_pages/data.py").run()
    at.number_input(key="w:data.train_per_class").set_value(0).run()
    assert {m.label: m.value for m in at.metric}["Training"] == before, "0: every training image"
    split = {"train": {"a": 5, "b": 1}, "val": {"a": 2, "b": 2}}
    assert capped_split(split, 3) == ({"train": {"a": 3, "b": 1}, "val": {"a": 2, "b": 2}}, 6)
    assert capped_split(split, 5) == (split, 0), "a cap no class reaches changes nothing"


def test_the_data_pages_switches_keep_their_values_across_the_other_pages(studio, tiny_bytes):
    """'Drop duplicate copies' and 'Imbalanced classes' were drawn again under the Model page's other
    settings with the same keys, where they fell back to off and 'none': a student's choice undid itself."""
    at = upload_zip(new_app(), tiny_bytes, "colours.zip")
    at.toggle(key="w:data.drop_duplicates").set_value(True).run()
    at.selectbox(key="w:data.class_balance").set_value("weighted_loss").run()
    for page in ("app_pages/model.py", "app_pages/train.py", "app_pages/data.py"):
        at.switch_page(page).run()
        no_problems(at)
        assert (at.session_state["cfg"].data.drop_duplicates, at.session_state["cfg"].data.class_balance) == \
            (True, "weighted_loss"), page
    assert at.toggle(key="w:data.drop_duplicates").value is True


def test_digit_or_letter_classes_get_a_one_click_stop_to_mirroring(studio, tiny_bytes):
    """Classes named like digits ('0', '1', '7'): the Data page says a mirrored digit is another symbol and
    its button switches mirroring (and flip TTA) off, keeping the crops; colour classes get no such hint."""
    digits = zip_bytes({f"{name}/{i}.png": png(colour, i) for name, colour in (("0", "red"), ("1", "green"),
                                                                               ("7", "stripes")) for i in range(6)})
    at = upload_zip(new_app(), digits, "digits.zip")
    hint = [i.value for i in at.info if "class names are digits or letters ('0', '1', '7')" in i.value]
    assert hint and "another symbol" in hint[0], texts(at.info)
    at.session_state["cfg"] = dataclasses.replace(at.session_state["cfg"], eval=dataclasses.replace(
        at.session_state["cfg"].eval, tta_flip=True))
    at.button(key="no_flip").click().run()
    no_problems(at)
    cfg = at.session_state["cfg"]
    assert (cfg.train.augment, cfg.train.flip, cfg.eval.tta_flip) == (True, False, False)
    assert not [i for i in at.info if "names are digits or letters" in i.value], "said once; gone when done"
    assert "Mirroring is off for these digit or letter classes; training keeps its random crops." in texts(at.caption)
    at = upload_zip(new_app(), tiny_bytes, "colours.zip")
    assert not [i for i in at.info if "names are digits or letters" in i.value]


@pytest.mark.parametrize("with_val", [True, False])
def test_a_pre_split_dataset_greys_out_the_shares_it_does_not_use(studio, with_val):
    """The folders give the split: the test share never applies, the validation share only when val/
    is missing (it then holds out part of train/), and the box says so."""
    files = {f"pets/{split}/{c}/{i}.png": png(c, i + 100 * n) for n, split in enumerate(["train", "val", "test"])
             for c in ("red", "green") for i in range(6) if with_val or split != "val"}
    at = upload_zip(new_app(), zip_bytes(files), "pre-split.zip")
    at.run()  # the check is known from here on, as on any rerun after the upload
    assert at.number_input(key="w:data.test_fraction").disabled
    assert at.number_input(key="w:data.val_fraction").disabled == with_val
    assert not at.number_input(key="w:data.min_images_per_class").disabled
    words = "the validation and test shares do not apply" if with_val else "holds out part of train/ for validation"
    assert any("Your dataset's folders give its split" in c and words in c for c in texts(at.caption)), texts(at.caption)
    upload_zip(at, zip_bytes({f"{c}/{i}.png": png(c, i) for c in ("red", "green") for i in range(8)}), "plain.zip")
    at.run()
    assert not at.number_input(key="w:data.test_fraction").disabled, "class folders: the shares split them"


def test_a_runs_data_warnings_are_on_its_results_and_in_its_model_card(studio):
    """One picture under two classes: the Data page's warning stays with the run (Results, model card)."""
    from engine.export import model_card
    from engine.config import RunConfig

    files = {f"{c}/{i}.png": png(c, i) for c in ("red", "green") for i in range(8)}
    files["green/also red.png"] = files["red/3.png"]
    at = upload_zip(new_app(), zip_bytes(files), "labels.zip")
    assert any("labelled with more than one class" in w for w in texts(at.warning))
    configure_tiny(at)
    run_id = start_run(at)
    assert engine().wait(run_id, RUN_TIMEOUT) == "finished"
    at.switch_page("app_pages/results.py").run()
    no_problems(at)
    (label,) = [e.label for e in at.expander if e.label.startswith("The data this run used")]
    assert label == "The data this run used (1 warning)"
    assert any(w.startswith("These figures come from data with 1 warning: 1 picture is labelled with more than one "
                            "class") and "green/also red.png (green)" in w for w in texts(at.warning)), \
        "under the headline figures, in the user's file names"
    summary = json.loads((Path(engine().run_record(run_id).run_dir) / "summary.json").read_text())
    card = model_card(RunConfig.from_dict(engine().run_record(run_id).config), summary)
    assert "- Warning: 1 picture is labelled with more than one class" in card
    # a class the model gets wrong far more often than the other is named under its chart, with its mix-up
    # (the summary as a larger test split would have given it: 20 of 40 red images right, all 40 green)
    path = Path(engine().run_record(run_id).run_dir) / "summary.json"
    weak = {**summary, "classes": ["green", "red"], "test_confusion": [[40, 0], [20, 20]], "test_acc": 60 / 80,
            "test_per_class_acc": {"green": 1.0, "red": 0.5},
            "data_report": {**summary["data_report"], "split_counts": {
                **summary["data_report"]["split_counts"], "test": {"green": 40, "red": 40}}}}
    path.write_text(json.dumps(weak))
    at.run()
    no_problems(at)
    assert any(i.startswith("Weaker than the other classes on the test images, by more than luck on that many "
                            "images: red, 20 of 40 right (50%, against 100% for the others), most often taken for "
                            "green (20 of 40).") for i in texts(at.info)), texts(at.info)
    # a rare class's 100% on 2 test images is named with its answers and what one image weighs
    rare = {**weak, "test_confusion": [[20, 0], [0, 2]], "test_acc": 1.0, "test_per_class_acc": {"green": 1.0,
                                                                                                   "red": 1.0},
            "data_report": {**summary["data_report"], "split_counts": {
                **summary["data_report"]["split_counts"], "test": {"green": 20, "red": 2}}}}
    path.write_text(json.dumps(rare))
    at.run()
    no_problems(at)
    assert any(i.startswith("Few images to judge this class by. red: 2 of 2 test images right") and "points of such "
               "a class's own accuracy" in i for i in texts(at.info)), texts(at.info)
    # a head that trained at a lower rate than the one set (engine.optim.head_lr_bound) is said beside its figures
    capped = {"lr": 0.02, "to": 0.0059, "curvature": 969, "trunk_lr": 0.02}
    path.write_text(json.dumps({**weak, "head_lr_capped": capped}))
    at.run()
    no_problems(at)
    assert any(c.startswith("The new head learns at a rate of 0.0059, not the 0.02 set: the features") and
               c.endswith("The layers below it learn at 0.02.") for c in texts(at.caption)), texts(at.caption)
    assert "The layers below the new head. The head's own rate follows the same curve from 0.0059 (above)." in \
        texts(at.caption), "under the learning-rate chart, which is theirs"


def test_too_few_steps_an_epoch_are_said_where_a_run_starts(studio, tiny_bytes):
    """The Model page's warning about a batch size that leaves one or two optimiser steps an epoch is on
    the Data page's Train now box and the Train page too, where a run is started from."""
    at = upload_zip(new_app(), tiny_bytes, "colours.zip")
    at.session_state["cfg"] = with_section(at.session_state["cfg"], "train", batch_size=256)
    for page in ("app_pages/data.py", "app_pages/train.py", "app_pages/model.py"):
        at.switch_page(page).run()
        no_problems(at)
        assert any("Batches of 256 from your" in w and "1 optimiser step per epoch" in w for w in texts(at.warning)), page
        assert any(b.label.startswith("Use batch size ") for b in at.button), f"a one-click fix on {page}"
    # the Model page's button sets the suggested batch size and the learning rate scaled with it (the
    # same rate per image), in the config and in their widgets
    label = next(b.label for b in at.button if b.label.startswith("Use batch size "))
    batch, lr = re.fullmatch(r"Use batch size (\d+), learning rate ([\d.e-]+)", label).groups()
    before = at.session_state["cfg"].optim.lr
    assert float(lr) == pytest.approx(before * int(batch) / 256, rel=1e-2)
    assert f"A batch size of {batch} gives" in " ".join(texts(at.warning))
    at.button(key="batch_fix_model").click().run()
    no_problems(at)
    assert any(f"Batch size {batch} and learning rate" in t.value for t in at.toast), "the change is confirmed"
    assert at.session_state["cfg"].train.batch_size == int(batch)
    assert at.session_state["cfg"].optim.lr == pytest.approx(float(lr))
    assert at.number_input(key="w:train.batch_size").value == int(batch)
    assert at.number_input(key="w:optim.lr").value == pytest.approx(float(lr))
    assert not any("Batches of" in w for w in texts(at.warning)), "the fix cleared its warning"
    at.session_state["cfg"] = with_section(at.session_state["cfg"], "train", batch_size=4)
    at.switch_page("app_pages/train.py").run()
    assert not any("optimiser step" in w for w in texts(at.warning))
    assert not any(b.label.startswith("Use batch size ") for b in at.button)


def test_a_refresh_at_another_image_size_still_counts_the_users_training_images(studio, tiny_bytes):
    """After a refresh (a new session), with the image size changed since the Data page checked the
    dataset, the Train page still counts the user's own training images for its few-steps warning: it
    took the bundled sample's 384, and said nothing before the run ended as a guess."""
    first = upload_zip(new_app(), tiny_bytes, "colours.zip")
    assert first.session_state["cfg"].data.image_size != 32
    first.switch_page("app_pages/model.py").run()
    first.number_input(key="w:train.batch_size").set_value(64)  # 6 steps of the sample's 384
    first.number_input(key="w:data.image_size").set_value(32)
    first.run()  # typed on the Model page: the draft keeps them
    at = AppTest.from_file(MAIN, default_timeout=120)  # a refresh of the Train page: a new session
    at.switch_page("app_pages/train.py").run()
    no_problems(at)
    assert at.session_state["cfg"].data.source == first.session_state["cfg"].data.source, "the user's draft"
    assert at.session_state["cfg"].data.image_size == 32
    assert any("Batches of 64 from your" in w and "1 optimiser step per epoch" in w for w in texts(at.warning)), \
        texts(at.warning)


def test_a_preset_rate_kept_for_a_much_shorter_run_offers_the_automatic_rate_in_one_click(studio):
    """The Model page's warning that a preset's learning rate meets far fewer steps than it was tuned for
    switches the automatic learning rate on from a button, as it advises."""
    at = new_app()
    at.switch_page("app_pages/model.py").run()
    at.number_input(key="w:train.epochs").set_value(3).run()  # the Quick demo's rate for 3 epochs
    no_problems(at)
    assert any("A rate tuned for a longer run can leave a short one near guessing" in w for w in texts(at.warning))
    at.button(key="drift_lr_auto").click().run()
    no_problems(at)
    assert at.session_state["cfg"].optim.lr_auto is True
    assert at.toggle(key="w:optim.lr_auto").value is True, "the switch shows it"
    assert not any("near guessing" in w for w in texts(at.warning))


@pytest.mark.parametrize("page", ["app_pages/data.py", "app_pages/model.py", "app_pages/train.py", "app_pages/results.py"])
def test_every_page_renders_on_a_fresh_studio(studio, page):
    at = new_app()
    at.switch_page(page).run()
    no_problems(at)
    assert at.title, "every page has a title"
    assert not at.error, texts(at.error)


def test_the_model_page_has_one_switch_per_registered_method_and_their_explanations(studio):
    at = new_app()
    at.switch_page("app_pages/model.py").run()
    no_problems(at)
    markdown = " ".join(texts(at.markdown)) + " ".join(texts(at.caption))
    for name, spec in METHODS.items():
        assert at.toggle(key=f"w:{name}.enabled") is not None
        assert spec.explanation in markdown  # the teaching text
        assert spec.paper_url in markdown  # the paper link
    toggles = {t.key for t in at.toggle if t.key.endswith(".enabled")}
    assert toggles == {f"w:{name}.enabled" for name in METHODS}, "no switch for an unregistered method"
    # the field's words in plain ones, each method's among them (a geology instructor met L2-SP, a PGD attack's eps
    # and a recurrent gate network here with no word on any of them)
    (glossary,) = [e for e in at.expander if e.label == "What the field's words on this page mean"]
    said = " ".join(texts(glossary.markdown))
    for spec in METHODS.values():
        assert f"**{spec.title.split(' (')[0].split(' weight')[0]}" in said or \
            f", {spec.title.split(' (')[0].split(' weight')[0]}" in said, spec.title
    for term in ("pretrained trunk", "effective learning rate", "OOD accuracy", "eps", "theta_0", "sparsity"):
        assert term in said, term
    from engine.corruptions import CORRUPTIONS

    assert len(CORRUPTIONS) == 6 and all(w in said for w in ("noisy", "blurred", "contrast", "brighter",
                                                              "compressed", "pixelated")), "the six as they are made"


@pytest.mark.parametrize("name", sorted(METHODS))
def test_switching_a_method_on_shows_its_settings_and_changes_the_config(studio, name):
    at = new_app()
    at.switch_page("app_pages/model.py").run()
    spec = METHODS[name]
    if not spec.supports(at.session_state["cfg"].backbone.name):
        pytest.skip(f"{name} does not support the default backbone")
    at.toggle(key=f"w:{name}.enabled").set_value(True).run()
    no_problems(at)
    assert at.session_state["cfg"].methods[name].enabled
    from engine.config import shown_setting

    keys = {w.key for w in [*at.number_input, *at.toggle, *at.selectbox, *at.text_input, *at.slider, *at.checkbox]}
    mcfg = at.session_state["cfg"].methods[name]
    for f in dataclasses.fields(spec.config_cls):
        if f.name != "enabled":  # a setting of a switch that is off is hidden; every other one has a widget
            assert (f"w:{name}.{f.name}" in keys) == shown_setting(mcfg, f.name), f"widget for {name}.{f.name}"


@dataclass(frozen=True)
class ToyConfig:
    enabled: bool = False
    strength: float = field(default=4 / 255, metadata={"label": "strength", "scale": 255, "unit": "/255",
                                                       "min": 0.0, "max": 16 / 255, "step": 1 / 255})
    rounds: int = field(default=3, metadata={"min": 1, "max": 9})
    mode: str = field(default="soft", metadata={"choices": ["soft", "hard"]})
    levels: tuple[float, ...] = (0.5, 1.0)
    loud: bool = False


class ToyHook(MethodHook):
    name = "toy"

    def on_epoch_end(self, ctx, metrics):
        metrics["toy_score"] = 0.5


def test_a_newly_registered_method_gets_a_switch_settings_charts_and_its_result_view(studio, monkeypatch, tiny_bytes):
    from app import method_views

    spec = MethodSpec(name="toy", title="Toy method", summary="Does nothing, loudly.",
                      explanation="A test method. Watch the toy score.", paper="Nobody (2025)",
                      paper_url="https://example.org/toy", config_cls=ToyConfig, build=lambda cfg, m: ToyHook())
    monkeypatch.setitem(METHODS, "toy", spec)
    monkeypatch.setitem(METHOD_SECTIONS, "toy", (ToyConfig, spec.validate))  # what register_method does
    seen = []
    monkeypatch.setitem(method_views.VIEWS, "toy", lambda eng, rec, summary: (seen.append(rec.id), st.write("toy view")))
    at = new_app()
    upload_zip(at, tiny_bytes)
    configure_tiny(at)
    at.toggle(key="w:toy.enabled").set_value(True).run()
    no_problems(at)
    # generic widgets: scaled float shown in /255, int, choices, tuple as text
    assert at.number_input(key="w:toy.strength").value == pytest.approx(4.0)
    at.number_input(key="w:toy.strength").set_value(8.0)
    at.number_input(key="w:toy.rounds").set_value(5)
    at.selectbox(key="w:toy.mode").set_value("hard")
    at.text_input(key="w:toy.levels").input("0.25, 0.75")
    at.run()
    no_problems(at)
    toy = at.session_state["cfg"].methods["toy"]
    assert toy == ToyConfig(enabled=True, strength=pytest.approx(8 / 255), rounds=5, mode="hard", levels=(0.25, 0.75))
    # a bad tuple keeps the old value and says why
    at.text_input(key="w:toy.levels").input("0.25, lots").run()
    assert any(e == "Levels: “0.25, lots” cannot be read: give numbers separated by commas. No run starts until it is "
               "fixed." for e in texts(at.error)), \
        texts(at.error)
    assert not any("toy.levels" in e for e in texts(at.error))
    assert at.session_state["cfg"].methods["toy"].levels == (0.25, 0.75)
    assert any("need fixing" in w and "Levels: “0.25, lots” cannot be read" in w for w in texts(at.warning)), \
        "while the box shows text the run would not use, the page is not ready"
    at.text_input(key="w:toy.levels").input("0.25, 0.75").run()
    assert not any("need fixing" in w for w in texts(at.warning))

    run_id = start_run(at)
    assert engine().wait(run_id, RUN_TIMEOUT) == "finished"
    at.run()
    no_problems(at)
    at.switch_page("app_pages/results.py").run()
    no_problems(at)
    assert run_id in seen, "the Results page calls the method's view"
    assert "Toy score" in [m.label for m in at.metric], "a method's metric shows up without UI code"


def test_a_methods_settings_show_only_while_their_switch_is_on_and_keep_their_values(studio):
    at = new_app()
    at.switch_page("app_pages/model.py").run()
    at.toggle(key="w:pruning.enabled").set_value(True).run()
    no_problems(at)
    keys = lambda: {w.key for kind in (at.number_input, at.slider, at.selectbox) for w in kind}  # noqa: E731
    assert "w:pruning.target_sparsity" in keys()
    hidden = {"w:pruning.channel_fraction", "w:pruning.structured_epochs", "w:pruning.trials", "w:pruning.lam",
              "w:pruning.max_acc_drop", "w:pruning.sampler"}
    assert not hidden & keys(), "structured and auto are off: their settings are not shown"
    at.toggle(key="w:pruning.structured").set_value(True).run()
    assert {"w:pruning.channel_fraction", "w:pruning.structured_epochs"} <= keys()
    at.number_input(key="w:pruning.structured_epochs").set_value(3).run()
    at.toggle(key="w:pruning.auto").set_value(True).run()
    assert {"w:pruning.trials", "w:pruning.lam"} <= keys() and "w:pruning.max_acc_drop" not in keys()
    at.selectbox(key="w:pruning.objective").set_value("floor").run()
    assert "w:pruning.max_acc_drop" in keys() and "w:pruning.lam" not in keys(), "one objective's setting at a time"
    at.toggle(key="w:pruning.structured").set_value(False).run()
    no_problems(at)
    assert "w:pruning.structured_epochs" not in keys()
    assert at.session_state["cfg"].methods["pruning"].structured_epochs == 3, "a hidden setting keeps its value"


def test_the_mirror_switch_shows_only_while_augmenting_and_reaches_the_run_config(studio):
    at = new_app()
    at.switch_page("app_pages/model.py").run()
    keys = lambda: {w.key for w in at.toggle}  # noqa: E731
    assert {"w:train.augment", "w:train.flip"} <= keys()
    at.toggle(key="w:train.flip").set_value(False).run()
    assert at.session_state["cfg"].train.flip is False
    at.toggle(key="w:train.augment").set_value(False).run()
    no_problems(at)
    assert "w:train.flip" not in keys() and at.session_state["cfg"].train.flip is False


# ---- the whole flow -------------------------------------------------------------------------------

def test_upload_configure_train_watch_and_see_results(studio, tiny_bytes):
    at = new_app()
    upload_zip(at, tiny_bytes, "my data.zip")
    assert "Active dataset: my data.zip" in texts(at.subheader)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Classes"] == "3" and metrics["Images"] == "30" and metrics["Skipped files"] == "0"
    assert len(at.image) == 3, "a strip of sample images per class"
    data_cfg = at.session_state["cfg"].data
    assert data_cfg.source.startswith("upload:") and data_cfg.source_name == "my data.zip"
    stored = resolve_path(data_cfg.source)
    assert stored.parent == studio / "uploads" and "my data" not in stored.name, "uploads are named by content hash"

    configure_tiny(at, epochs=2)
    assert "Ready to train" in " ".join(texts(at.success))
    # the effective learning rate follows lr and momentum
    at.number_input(key="w:optim.lr").set_value(0.02)
    at.slider(key="w:optim.momentum").set_value(0.5).run()
    assert {m.label: m.value for m in at.metric}["Effective learning rate"] == "0.04"
    at.selectbox(key="w:optim.optimizer").set_value("adamw").run()  # no momentum field: its cell says why
    assert not [s for s in at.slider if s.key == "w:optim.momentum"]
    assert any(c.startswith("Momentum: AdamW keeps its own") for c in texts(at.caption))
    assert {m.label: m.value for m in at.metric}["Effective learning rate"] == "0.02"
    assert any(w.startswith("AdamW fine-tunes at about a tenth of SGD's learning rate") for w in texts(at.warning))
    at.button(key="adamw_lr").click().run()  # SGD's 0.02 kept by the switch: a tenth, one click away
    assert at.session_state["cfg"].optim.lr == pytest.approx(0.002) and at.number_input(key="w:optim.lr").value == \
        pytest.approx(0.002)
    assert not any(w.startswith("AdamW fine-tunes") for w in texts(at.warning))
    at.number_input(key="w:optim.lr").set_value(0.02)
    at.selectbox(key="w:optim.optimizer").set_value("sgd").run()
    assert at.slider(key="w:optim.momentum").value == 0.5, "SGD's momentum comes back as it was"
    at.text_input(key="w:run.name").set_value("my first run").run()
    at.switch_page("app_pages/train.py").run()
    assert any(m.startswith("**Next run:** *my first run*: ") for m in texts(at.markdown)), "the name it will get"
    # the rate as the Model page sets it, the effective one beside it
    said = "learning rate 0.02 (momentum 0.5 builds its steps up to 0.04, the effective learning rate)"
    assert any(said in m for m in texts(at.markdown)), texts(at.markdown)
    glossary = next(m for m in texts(at.markdown) if "What these words mean" not in m and "**seed 0**" in m)
    assert "the model is updated after every" in glossary and "so the steps grow to the effective learning rate" \
        in glossary and "blocks frozen" not in glossary, "its terms in plain words, only those the line uses"
    assert "it starts from random weights, so it learns from your images alone" in glossary, "this run's start: scratch"
    assert "pretrained layers" not in glossary, "none here"
    assert any(" · seed 0 · " in m for m in texts(at.markdown)), "what tells two runs of one recipe apart"

    run_id = start_run(at)
    assert engine().snapshot(run_id) is not None, "the job runs in the engine's thread"
    # the name was this run's: the next run is named afresh (a new user's WiSE-FT run was saved as "... plain")
    assert engine().run_record(run_id).name == "my first run" and at.session_state["cfg"].name == ""
    assert engine().wait(run_id, RUN_TIMEOUT) == "finished"
    at.run()
    no_problems(at)
    summary = json.loads((Path(engine().run_record(run_id).run_dir) / "summary.json").read_text())
    # 2 epochs of 2 steps from random weights: often at chance, or above it by no more than luck on so few images
    from app.claims_view import at_chance

    guessing = at_chance(summary, engine().run_record(run_id).config) is not None
    if guessing:  # then the banner says so, with advice from the run's 4 optimiser steps
        assert any(s.startswith("Finished, but") and "only 4 optimiser steps" in s for s in texts(at.warning))
    else:  # the banner gives the test accuracy Results leads with, beside the last validation accuracy
        assert any("Finished" in s and "test accuracy (images held out until the end)" in s for s in texts(at.success))
    assert len(at.get("vega_lite_chart")) >= 2, "accuracy and loss charts"
    # pressing Start again would train about the same model: said beside the button, another seed one click away
    assert any(c.startswith("**my first run** finished with exactly these settings") for c in texts(at.caption)), \
        texts(at.caption)
    at.button(key="another_seed").click().run()
    assert at.session_state["cfg"].seed == 1 and [t.value for t in at.toast if t.value.startswith("Seed 1: ")]
    assert not any("finished with exactly these settings" in c for c in texts(at.caption))

    at.switch_page("app_pages/results.py").run()
    no_problems(at)
    assert guessing == any("learnt nothing yet" in w for w in texts(at.warning))
    labels = {m.label for m in at.metric}
    assert {"Validation accuracy", "Test accuracy", "OOD accuracy (corrupted)", "Training speed"} <= labels
    weight = [c.value for c in at.caption if "one image is" in c.value  # few held-out images: said once, by the
              and "Measured on few images (down to" not in c.value]  # figures (the Compare tab says its own)
    assert len(weight) == 1 and "read them as hints" in weight[0], weight
    downloads = {d.label for d in at.download_button}
    assert {"Fine-tuned model", "Config (YAML)", "Summary (JSON)"} <= downloads
    assert [b for b in at.button if b.key == f"reuse_{run_id}"] and \
        not [b for b in at.button if b.key == f"reuse_data_{run_id}"], "on the data in use: one reuse button"
    assert at.radio(key=f"ckpt_{run_id}_last_best").options == ["final weights", "best validation epoch"]
    assert len(at.get("vega_lite_chart")) >= 5, "curves, confusion matrix, per class, OOD, lr"
    # one option per line, with the shell's line continuations (read as one line where a test looks for text)
    (command,) = [c.value for c in at.code if c.value.startswith("python -m engine train \\\n    --config ")]
    (predict,) = [c.value for c in at.code if c.value.startswith("python -m engine predict \\\n    --run ")]
    assert all(line.count(" --") <= 1 for line in predict.splitlines()), f"one option per line: {predict}"
    assert "--variant" not in predict, "the final weights: predict's default"
    at.radio(key=f"ckpt_{run_id}_last_best").set_value("best").run()
    assert any(c.value.startswith(f"python -m engine predict \\\n    --run {run_id} \\\n    --variant best \\\n")
               for c in at.code), \
        "the predict command follows the weights picked"
    at.radio(key="confusion_split").set_value("val").run()
    again = new_app()  # a refresh: a new session restores the user's draft
    again.switch_page("app_pages/results.py").run()
    assert again.radio(key=f"ckpt_{run_id}_last_best").value == "best", "a refresh keeps the weights picked"
    assert again.radio(key="confusion_split").value == "val", "and the confusion matrix's split"
    again.session_state["results_tab"] = "Compare runs"
    again.run()
    third = new_app()
    third.switch_page("app_pages/results.py").run()
    assert third.session_state["results_tab"] == "Compare runs", "and the tab the user had open"
    third.session_state["results_tab"] = "One run"
    third.run()
    at.radio(key=f"ckpt_{run_id}_last_best").set_value("last").run()
    at.radio(key="confusion_split").set_value("test").run()
    assert not (at.session_state["try_inputs"].get("choices") or {}), \
        "defaults are not kept: visiting runs does not push the user's other choices out"
    at.button(key=f"to_export_{run_id}").click().run()  # the model card: Explain and export, Export tab, this run
    no_problems(at)
    assert (at.session_state["explain_run"], at.session_state["explain_tab"]) == (run_id, "Export")
    assert any(b.label == "Export and verify" for b in at.button), "the Export tab is drawn"
    at.switch_page("app_pages/results.py").run()

    # the command Results shows repeats the run from the command line, to the same accuracy, also from a
    # shell without STUDIO_DATA_DIR (its --data-dir finds the uploaded dataset); the run joins the store
    import shlex

    rec = engine().run_record(run_id)
    summary = json.loads((Path(rec.run_dir) / "summary.json").read_text())
    env = {k: v for k, v in os.environ.items() if k != "STUDIO_DATA_DIR"}
    # as pasted into a shell: bash joins the continued lines; `python` is this interpreter
    out = subprocess.run(["bash", "-c", f"{shlex.quote(sys.executable)}{command.removeprefix('python')} --quiet"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert out.returncode == 0, out.stderr[-2000:]
    # the predict command beside it answers with this run's model for the user's own images
    photos = Path(rec.run_dir).parent.parent / "photos.zip"
    photos.write_bytes(tiny_bytes)
    pasted = predict.removeprefix("python").replace("new_photos.zip", shlex.quote(str(photos))).replace(
        "predictions.csv", shlex.quote(str(photos.with_suffix(".csv"))))
    out = subprocess.run(["bash", "-c", f"{shlex.quote(sys.executable)}{pasted} --quiet"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert photos.with_suffix(".csv").read_text().count("\n") > 1, "one line per image"
    cli_rec = next(r for r in engine().store.list_runs() if r.owner == "cli")
    assert json.loads((Path(cli_rec.run_dir) / "summary.json").read_text())["val_acc"] == pytest.approx(
        summary["val_acc"])


def test_a_folder_on_the_server_can_be_the_dataset(studio, tmp_path, tiny_bytes, monkeypatch):
    monkeypatch.setenv("STUDIO_DATA_ROOTS", str(tmp_path))  # the administrator allows this folder
    folder = tmp_path / "my images"
    with zipfile.ZipFile(io.BytesIO(tiny_bytes)) as zf:
        zf.extractall(folder)
    at = new_app()
    at.radio(key="w:data.kind").set_value("folder").run()
    # the button takes a click while the box looks empty: the browser sends the box's text only when the click takes
    # the focus from it, and a button disabled until then lost that first click (a new user clicked twice)
    assert not at.button[0].disabled
    at.button[0].click().run()
    no_problems(at)
    assert "Type the folder's path in the box above first." in texts(at.warning)
    at.text_input(key="folder_path").input(str(tmp_path / "nowhere")).run()
    at.button[0].click().run()
    no_problems(at)
    assert any("does not exist" in e for e in texts(at.error))
    at.text_input(key="folder_path").input(str(folder)).run()
    at.button[0].click().run()
    no_problems(at)
    assert f"Active dataset: {folder}" in texts(at.subheader)
    assert at.session_state["cfg"].data.source == str(folder)
    refreshed = new_app()  # a refresh: the box holds the folder in use, as typed (it was empty)
    assert refreshed.radio(key="w:data.kind").value == "folder"
    assert refreshed.text_input(key="folder_path").value == str(folder)


def test_a_second_session_sees_the_running_job(studio, tiny_bytes):
    first = new_app()
    upload_zip(first, tiny_bytes)
    configure_tiny(first, epochs=2)
    run_id = start_run(first)
    second = new_app()  # a refresh or another tab: a new session on the same engine
    second.switch_page("app_pages/train.py").run()
    no_problems(second)
    assert second.selectbox(key="watch_select").value == run_id
    assert engine().wait(run_id, RUN_TIMEOUT) == "finished"


def test_runs_are_listed_with_their_metrics_after_a_server_restart(studio, tiny_bytes):
    at = new_app()
    upload_zip(at, tiny_bytes)
    configure_tiny(at)
    run_id = start_run(at)
    assert engine().wait(run_id, RUN_TIMEOUT) == "finished"
    engine().shutdown(5)
    st.cache_resource.clear()  # the server restarts: a new engine reads the same store

    after = new_app()
    assert engine().snapshot(run_id) is None, "a new process has no live snapshot"
    after.switch_page("app_pages/results.py").run()
    no_problems(after)
    assert after.selectbox(key="results_run").value == run_id
    assert "Validation accuracy" in {m.label for m in after.metric}
    assert len(after.get("vega_lite_chart")) >= 2, "curves read from the store"


def test_the_data_page_names_a_rare_class_whose_figures_will_rest_on_few_images(studio):
    """A clinician's 9 melanoma pictures among 150 left 2 validation and 2 test images of it, and the Data page
    said only how many images the whole splits held: the rare class is named before any run, with what one of
    its images will weigh."""
    files = {f"{c}/{i}.png": png(c, i) for c, n in (("red", 30), ("green", 6)) for i in range(n)}
    at = upload_zip(new_app(), zip_bytes(files), "rare.zip")
    assert any(i.startswith("Few images to judge this class by. green: 1 validation image, 1 test image. One image "
                            "is 100 points") for i in texts(at.info)), texts(at.info)


def test_the_default_preset_follows_the_datasets_size_until_the_user_changes_a_setting(studio, tiny_bytes):
    """A new user's 24 images kept the default Quick demo's batch of 32 (one optimiser step an epoch) with
    the preset marked in use, while clicking the preset fitted it: a draft that is a preset is fitted to
    each dataset chosen, and back to the preset's own batch on a large one; a changed draft is left alone."""
    from app.presets import PRESETS

    at = new_app()
    assert at.session_state["cfg"].train.batch_size == 32
    upload_zip(at, tiny_bytes)
    cfg = at.session_state["cfg"]
    assert cfg.train.batch_size == 4 and cfg.optim.lr == pytest.approx(0.0025), "fitted to 18 training images"
    assert any(i.startswith("The settings in use (the Quick demo preset, the studio's starting settings) are fitted "
                            "to this dataset. Its batch size of 32 would make 1 optimiser step an epoch from your 18 "
                            "training images") and i.endswith("an epoch is one pass over the training images.")
               for i in texts(at.info)), texts(at.info)
    # 30 images split 18 / 6 / 6: what one held-out image is worth, said before any run (Results says it after)
    assert any(i.startswith("Few images to measure on: 6 validation images (one image is 16.7 points of accuracy) "
                            "and 6 test "
                            "images (one image is 16.7 points of accuracy).") for i in texts(at.info)), texts(at.info)
    at.switch_page("app_pages/model.py").run()
    assert f"**{PRESETS['quick_demo'].title}** :green-badge[:material/check: in use]" in texts(at.markdown)
    assert not any("optimiser step per epoch" in w for w in texts(at.warning))
    assert any("Quick demo is in use, fitted to your dataset: batch 4 at learning rate 0.0025 instead of its 32 at "
               "0.02" in c for c in texts(at.caption)), "the card's recipe and the fields below agree in words"
    assert "**On your images:** batch 4 at learning rate 0.0025 instead of its 32 at 0.02, for more optimiser steps " \
           "an epoch." in texts(at.markdown), "and its What it does, which said batch 32 alone"
    at.switch_page("app_pages/data.py").run()
    at.radio(key="w:data.kind").set_value("sample").run()
    no_problems(at)
    assert at.session_state["cfg"].train.batch_size == 32, "the sample's 384 images: the preset's own batch"
    at.switch_page("app_pages/model.py").run()
    at.number_input(key="w:train.epochs").set_value(7).run()  # the user's own recipe from now on
    at.switch_page("app_pages/data.py").run()
    at.radio(key="w:data.kind").set_value("upload").run()
    at.button(key=next(b.key for b in at.button if str(b.key).startswith("use_dataset_"))).click().run()
    no_problems(at)
    assert at.session_state["cfg"].train.batch_size == 32, "a changed draft is not refitted"


def test_a_preset_that_fits_the_data_as_it_is_is_confirmed_once_at_its_card(studio):
    at = new_app()  # the bundled sample: 384 training images, no batch to fit
    at.switch_page("app_pages/model.py").run()
    at.button(key="preset_fastest").click().run()
    no_problems(at)
    confirmed = [s for s in texts(at.success) if "applied" in s.lower() or "preset" in s.lower()]
    assert confirmed == ["Applied to the settings below."], texts(at.success)
    assert [t.value for t in at.toast] == ["Preset **Fastest model** applied."]


def test_a_preset_that_changes_the_image_size_says_so(studio):
    """A photographer set Image size to 112 px, then chose the Small model preset: it put back 64 px, and only the
    next run's line said so. The confirmation names the size it set and the one it replaced."""
    at = new_app()
    at.switch_page("app_pages/model.py").run()
    at.number_input(key="w:data.image_size").set_value(112).run()
    at.button(key="preset_small_model").click().run()
    no_problems(at)
    said = " ".join(texts(at.success))
    assert "Its image size is 64 px (it was 112 px): set Image size again below to keep yours." in said, said
    at.button(key="preset_fastest").click().run()  # 64 px already: nothing to say of the size
    assert "image size" not in " ".join(texts(at.success)).lower()


def test_a_preset_card_says_what_it_is_for_in_a_line_and_its_recipe_on_request(studio):
    """A new user found the Model page long: eleven cards, each a paragraph in the field's terms. A card now gives
    its tagline; the whole description and what was measured with it are behind its "What it does"."""
    from app.presets import PRESETS, preset_details_words

    at = new_app()
    at.switch_page("app_pages/model.py").run()
    no_problems(at)
    captions = texts(at.caption)
    markdown = texts(at.markdown)
    for key, preset in PRESETS.items():
        assert preset.tagline in captions, key
        assert preset.describe() not in captions, f"{key}: the whole description is on the card"
        assert preset_details_words(preset) in markdown, f"{key}: its description is not behind 'What it does'"
        if preset.details is not None:
            assert preset.details() in preset_details_words(preset)


@pytest.mark.parametrize("preset", ["quick_demo", "fastest", "robust", "small_model", "adafilter_demo",
                                    "pruning_demo", "adversarial_demo", "wise_ft_demo"])
def test_a_preset_sets_the_whole_config_and_keeps_the_dataset(studio, tiny_bytes, preset):
    from app.presets import PRESETS
    from engine.config import smaller_batch, with_batch

    at = new_app()
    upload_zip(at, tiny_bytes)
    source = at.session_state["cfg"].data.source
    at.switch_page("app_pages/model.py").run()
    at.number_input(key="w:train.epochs").set_value(17).run()
    at.button(key=f"preset_{preset}").click().run()
    no_problems(at)
    cfg = at.session_state["cfg"]
    assert cfg.data.source == source, "a preset keeps the chosen dataset"
    recipe = PRESETS[preset].apply(cfg)
    # 18 training images: the preset's batch of 32 would be one optimiser step an epoch, the few-steps warning's
    # case (a new user's preset brought it back): the batch is fitted, the rate lowered in step, and said
    fitted = smaller_batch(recipe, 18)
    assert cfg.to_dict() == with_batch(recipe, fitted[0]).to_dict() and cfg.optim.lr == fitted[1]
    assert at.number_input(key="w:train.epochs").value == cfg.train.epochs != 17, "the widgets show the preset"
    assert any(PRESETS[preset].title in s and f"Its batch size of {recipe.train.batch_size} would make 1 optimiser "
               f"step an epoch from your 18 training images, so it uses {fitted[0]}" in s and
               "An optimiser step updates the model once from a batch of images" in s for s in texts(at.success))
    assert not any("optimiser step per epoch" in w for w in texts(at.warning)), "no warning against the preset"
    assert not any("is in use, fitted to your dataset" in c for c in texts(at.caption)), "the fit said once, above"
    badge = f"**{PRESETS[preset].title}** :green-badge[:material/check: in use]"
    assert badge in texts(at.markdown), "the preset's card is marked in use"
    # the success line sits below every card: a new user saw no word at the button pressed, so a toast says it
    assert any(f"Preset **{PRESETS[preset].title}** applied." in t.value for t in at.toast)
    # and the card itself, under its button (a toast passes; at 1024 px the line below the cards is out of sight)
    assert sum(s.startswith("Applied") for s in texts(at.success)) == 1
    # the fit said where the user looks too (the card reads "batch 32"; the full note is below every card), in few
    # words: the card is 176 px wide, and a longer line made its row twice as tall
    assert f"Applied, fitted to your images: batch {fitted[0]}, learning rate {fitted[1]:g}." in texts(at.success), \
        texts(at.success)
    if preset == "quick_demo":
        assert (cfg.backbone.name, cfg.data.image_size, cfg.train.epochs, cfg.train.batch_size) == ("resnet18", 64, 20, 4)
        assert cfg.optim.linear_probe_epochs == 2
        assert not any("of the 20 epochs train only the new head" in c for c in texts(at.caption)), \
            "2 of 20: no warning (the sidebar's next-run line still says what the first 2 do)"
        at.number_input(key="w:train.epochs").set_value(3).run()
        no_problems(at)
        assert any(c.endswith("2 of the 3 epochs train only the new head (a linear probe) and 1 epoch fine-tunes "
                              "the whole network: for more fine-tuning, lower Linear-probe epochs (Fine-tuning "
                              "settings) or train longer.") for c in texts(at.caption)), texts(at.caption)
        at.number_input(key="w:train.epochs").set_value(2).run()
        no_problems(at)
        assert at.session_state["cfg"].optim.linear_probe_epochs == 1, "fewer epochs shorten the probe phase"
        assert any("Linear-probe epochs lowered from 2 to 1" in c for c in texts(at.caption))
        assert badge not in texts(at.markdown), "changed settings are no longer the preset's, on the same rerun"
        at.number_input(key="w:train.epochs").set_value(1).run()
        assert at.session_state["cfg"].optim.linear_probe_epochs == 0
        at.number_input(key="w:train.epochs").set_value(20).run()
        no_problems(at)
        assert at.session_state["cfg"].optim.linear_probe_epochs == 2, "a longer run gives the preset's 2 back"
        assert any("Linear-probe epochs back to 2" in c for c in texts(at.caption))
        assert at.number_input(key="w:optim.linear_probe_epochs").value == 2, "the widget shows it"
        at.number_input(key="w:train.epochs").set_value(2).run()
        at.number_input(key="w:optim.linear_probe_epochs").set_value(0).run()  # the user's own choice now
        at.number_input(key="w:train.epochs").set_value(20).run()
        assert at.session_state["cfg"].optim.linear_probe_epochs == 0, "a number the user set stays"
        at.number_input(key="w:train.epochs").set_value(1).run()  # lowered again, then a preset: the preset's own
        other = next(k for k in PRESETS if k != preset and PRESETS[k].apply(cfg).train.epochs > 2)
        at.button(key=f"preset_{other}").click().run()
        assert at.session_state["cfg"].optim.linear_probe_epochs == PRESETS[other].apply(cfg).optim.linear_probe_epochs


def test_a_look_at_a_backbone_without_bundled_weights_says_what_it_did_to_the_weights_and_undoes_it(studio):
    """Picking ResNet-50 (no bundled weights) changes the start, visibly; going back to ResNet-18 gives
    the bundled weights back, unless the user chose other weights meanwhile."""
    at = new_app()
    at.switch_page("app_pages/model.py").run()
    assert at.session_state["cfg"].backbone.pretrained == "bundled"
    at.selectbox(key="w:backbone.name").set_value("resnet50").run()
    no_problems(at)
    cfg = at.session_state["cfg"].backbone
    assert cfg.name == "resnet50" and cfg.pretrained in ("none", "imagenet")
    assert any(i.startswith("ResNet-50 has no bundled weights, so this run would start from") for i in texts(at.info)), \
        texts(at.info)
    at.selectbox(key="w:backbone.name").set_value("mobilenet_v3_small").run()
    assert at.session_state["cfg"].backbone.pretrained == "bundled", "a backbone with bundled weights gets them back"
    assert any("has bundled weights: the start is back to bundled weights" in i for i in texts(at.info))
    at.run()
    assert not any("the start is back" in i for i in texts(at.info)), "said once"
    for name in ("resnet50", "efficientnet_b0", "resnet18"):  # through two backbones without bundled weights
        at.selectbox(key="w:backbone.name").set_value(name).run()
    assert at.session_state["cfg"].backbone.pretrained == "bundled", "still wanted after a second such backbone"
    at.selectbox(key="w:backbone.name").set_value("resnet50").run()
    at.radio(key="w:backbone.pretrained").set_value("imagenet").run()  # the user's own choice on ResNet-50
    assert not any("bundled weights" in i for i in texts(at.info)), "the note goes with the weights it was about"
    from engine.backbones import available_sources

    if not available_sources("resnet50")["imagenet"]:  # not downloaded here: the page says what a run would do
        assert any(w.startswith("The ImageNet weights for ResNet-50 are not on this machine yet") and "/" not in w
                   and "(ResNet-18, MobileNetV3-Small) instead" in w for w in texts(at.warning)), texts(at.warning)
    at.selectbox(key="w:backbone.name").set_value("resnet18").run()
    no_problems(at)
    assert at.session_state["cfg"].backbone.pretrained == "imagenet", "weights the user chose stay"


def test_text_that_cannot_be_read_keeps_runs_from_starting_until_it_is_fixed(studio):
    """A list typed with a word in it: the config keeps its last good value, so no run starts while the
    box shows something else, on the Model page and the Train page; the typed text stays in its box
    when the user comes back; switching the method off, or fixing the text, lets runs start."""
    at = new_app()
    at.switch_page("app_pages/model.py").run()
    at.toggle(key="w:wise_ft.enabled").set_value(True).run()
    at.text_input(key="w:wise_ft.alphas").input("0.5, lots").run()
    no_problems(at)
    why = "Alphas evaluated after training: “0.5, lots” cannot be read: give numbers separated by commas."
    assert any(w.startswith("The run settings need fixing:") and why in w for w in texts(at.warning)), texts(at.warning)
    for _ in range(2):  # the first visit and a rerun alike
        at.switch_page("app_pages/train.py").run()
        assert at.button(key="start").disabled and any(why in w for w in texts(at.warning))
    at.switch_page("app_pages/model.py").run()
    assert at.text_input(key="w:wise_ft.alphas").value == "0.5, lots", "the text as typed, to fix"
    at.toggle(key="w:wise_ft.enabled").set_value(False).run()
    assert not any("need fixing" in w for w in texts(at.warning)), "a method switched off does not hold runs back"
    at.toggle(key="w:wise_ft.enabled").set_value(True).run()
    at.text_input(key="w:wise_ft.alphas").input("0, 0.5, 1").run()
    assert not any("need fixing" in w for w in texts(at.warning))
    assert at.session_state["cfg"].methods["wise_ft"].alphas == (0.0, 0.5, 1.0)


def test_settings_that_need_fixing_are_named_as_the_page_labels_them(studio):
    """The engine's message names a setting by label and key for the command line; the dashboard shows
    the label alone, and Start waits until the settings are fixed."""
    at = new_app()
    at.switch_page("app_pages/model.py").run()
    at.toggle(key="w:pruning.enabled").set_value(True).run()
    at.number_input(key="w:pruning.start_fraction").set_value(0.9).run()
    at.number_input(key="w:pruning.end_fraction").set_value(0.5).run()
    no_problems(at)
    warning = next(w for w in texts(at.warning) if "need fixing" in w)
    assert "'Start pruning at (share of the run)' (0.9) is after 'Reach the target at (share of the run)' (0.5)" \
        in warning, warning
    assert "pruning." not in warning and "_fraction" not in warning, "no internal setting names"
    assert any(e.startswith("'Start pruning at (share of the run)' (0.9) is after") for e in texts(at.error)), \
        "said in the pruning panel too, next to the two settings"
    at.switch_page("app_pages/train.py").run()
    no_problems(at)
    assert at.button(key="start").disabled
    assert not any("pruning." in w for w in texts(at.warning) + texts(at.error) + texts(at.caption))


def test_checkpoint_uploads_are_checked_against_the_backbone(studio, tmp_path):
    import torch
    from safetensors.torch import save_file

    at = new_app()
    at.switch_page("app_pages/model.py").run()
    at.radio(key="w:backbone.pretrained").set_value("checkpoint").run()
    assert any("Upload a checkpoint" in i for i in texts(at.info))
    assert any("no checkpoint file is accepted yet" in w for w in texts(at.warning)), "the engine's validation says what is missing"

    import datetime

    bad = tmp_path / "bad.pt"
    torch.save({"model": datetime.date(2020, 1, 1)}, bad)  # a pickle that imports a class: could run code
    at.file_uploader(key="upload_ckpt").set_value(("model.pt", bad.read_bytes(), "application/octet-stream")).run()
    no_problems(at)
    assert any("refused" in e for e in texts(at.error)), texts(at.error)
    assert at.session_state["cfg"].backbone.checkpoint == ""
    at.switch_page("app_pages/train.py").run()  # a refused file: nothing to start from, and the pages say so alike
    no_problems(at)
    assert at.button(key="start").disabled, "Start waits for an accepted checkpoint"
    assert any("your checkpoint, none accepted yet" in m for m in texts(at.markdown)), "the Next run line"
    assert any("your checkpoint, none accepted yet" in c for c in texts(at.sidebar.caption)), "the sidebar's"
    assert not any("backbone.checkpoint" in w for w in texts(at.warning)), "no internal setting names"
    at.switch_page("app_pages/model.py").run()

    good = tmp_path / "good.safetensors"
    save_file({"conv1.weight": torch.zeros(64, 3, 7, 7)}, str(good))
    at.file_uploader(key="upload_ckpt").set_value(("mine.safetensors", good.read_bytes(), "application/octet-stream")).run()
    no_problems(at)
    # one tensor of a whole backbone: loaded, with a warning that the rest stays random
    assert any("fits only part of ResNet-18" in w for w in texts(at.warning)), texts(at.error)
    ref = at.session_state["cfg"].backbone.checkpoint
    assert ref.startswith("upload:"), "the config names the upload by content hash, not by a server path"
    stored = resolve_path(ref)
    assert stored.parent == studio / "uploads" and stored.suffix == ".safetensors"

    at.file_uploader(key="upload_ckpt").set_value(("other.pt", bad.read_bytes(), "application/octet-stream")).run()
    no_problems(at)  # refused: the file used is named, so that no line below reads as this file's
    assert any("other.pt was refused" in e for e in texts(at.error)), texts(at.error)
    assert any("still starts from **mine.safetensors**" in i for i in texts(at.info)), texts(at.info)
    assert at.session_state["cfg"].backbone.checkpoint == ref
    at.switch_page("app_pages/train.py").run()
    assert any("(your checkpoint mine.safetensors)" in m for m in texts(at.markdown)), "the Next run line names it"


# ---- error paths -----------------------------------------------------------------------------------

BAD_UPLOADS = {
    "not a zip": (b"this is not a zip file", "is not a zip archive"),
    "empty zip": (zip_bytes({}), "empty"),
    "one class": (zip_bytes({f"red/{i}.png": png("red", i) for i in range(8)}), "only one class"),
    "no class folders": (zip_bytes({f"{i}.png": png("red", i) for i in range(8)}), "not inside class folders"),
    "path traversal": (zip_bytes({"../evil/1.png": png(), "a/1.png": png(), "b/1.png": png()}), "outside"),
    "too few images": (zip_bytes({**{f"red/{i}.png": png("red", i) for i in range(2)},
                                  **{f"green/{i}.png": png("green", i) for i in range(8)}}), "at least"),
    "unreadable images": (zip_bytes({"red/1.png": b"junk", "red/2.png": b"junk", "green/1.png": b"junk"}),
                          "could be read"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_a_bad_upload_shows_the_engines_message_not_a_traceback(studio, case):
    data, expected = BAD_UPLOADS[case]
    at = new_app()
    before = at.session_state["cfg"].data.source
    upload_zip(at, data, "bad.zip")
    errors = " ".join(texts(at.error))
    assert expected.lower() in errors.lower(), errors
    assert "bad.zip" in errors, "every refusal names the user's own file"
    assert "Traceback" not in errors and not at.exception
    assert at.session_state["cfg"].data.source == before, "a refused upload is not used"
    assert any("still uses" in i for i in texts(at.info))
    assert not stored_copies(studio, data), "a refused upload leaves nothing on the server"
    at.run()  # a rerun with the file still in the chooser: the same message, still nothing kept
    assert "bad.zip" in " ".join(texts(at.error)) and not stored_copies(studio, data)


def stored_copies(studio: Path, data: bytes) -> list[Path]:
    """The server's stored copies of the uploaded `data` (named by its content hash), extracted ones too."""
    sha = hashlib.sha256(data).hexdigest()
    return [*(studio / "uploads").glob(sha[:32] + ".*"), *(studio / "datasets").glob(sha[:24])]


def test_a_bad_ood_upload_is_refused_with_its_message(studio, tiny_bytes):
    at = new_app()
    upload_zip(at, tiny_bytes)
    ood = zip_bytes({**{f"red/{i}.png": png("red", i) for i in range(3)}, **{f"blue/{i}.png": png("red", i) for i in range(3)}})
    at.file_uploader[1].set_value(("ood.zip", ood, "application/zip")).run()
    no_problems(at)
    assert any("do not match the training classes" in e for e in texts(at.error))
    assert at.session_state["cfg"].data.ood_source == ""
    assert not stored_copies(studio, ood), "a refused OOD upload leaves nothing on the server"
    good = zip_bytes({f"{c}/{i}.png": png(c, i) for c in ("red", "green", "stripes") for i in range(2)})
    at.file_uploader[1].set_value(("ood.zip", good, "application/zip")).run()
    no_problems(at)
    assert at.session_state["cfg"].data.ood_source.startswith("upload:")
    assert at.session_state["cfg"].data.ood_source_name == "ood.zip"
    assert any("OOD set in use" in s for s in texts(at.success))
    assert not any("could not be used" in w for w in texts(at.warning))
    # a broken image and a truncated one in an OOD zip: skipped and named, as in training data, not dropped silently
    png_bytes = png("red", 0)
    broken = zip_bytes({**{f"{c}/{i}.png": png(c, i) for c in ("red", "green", "stripes") for i in range(2)},
                        "red/not_a_photo.jpg": b"this is text", "green/cut.png": png_bytes[:len(png_bytes) // 2]})
    at.file_uploader[1].set_value(("field photos.zip", broken, "application/zip")).run()
    no_problems(at)
    assert any("OOD set in use: **field photos.zip (6 images, 2 skipped)" in s for s in texts(at.success))
    (warning,) = [w for w in texts(at.warning) if "could not be used" in w]
    assert warning.startswith("2 files of your OOD set could not be used") and "`red/not_a_photo.jpg`" in warning \
        and "`green/cut.png`" in warning, warning


def test_choosing_other_training_data_keeps_a_fitting_ood_set_and_says_why_one_is_dropped(studio, tiny_bytes):
    at = new_app()
    upload_zip(at, tiny_bytes)
    ood = zip_bytes({f"{c}/{i}.png": png(c, i) for c in ("red", "green", "stripes") for i in range(2)})
    at.file_uploader[1].set_value(("dusk.zip", ood, "application/zip")).run()
    assert at.session_state["cfg"].data.ood_source_name == "dusk.zip"
    # more images of the same three classes: the OOD set still fits and stays, with a line saying so
    more = zip_bytes({f"{c}/{i}.png": png(c, i) for c in ("red", "green", "stripes") for i in range(9)})
    upload_zip(at, more, "more photos.zip")
    no_problems(at)
    data = at.session_state["cfg"].data
    assert data.source_name == "more photos.zip" and data.ood_source_name == "dusk.zip"
    assert any("OOD set **dusk.zip** is still used" in i for i in texts(at.info)), texts(at.info)
    assert any("OOD set in use: **dusk.zip" in s for s in texts(at.success))
    # other classes: the OOD set no longer fits; it is dropped and the page says why, in the user's names
    other = zip_bytes({f"{c}/{i}.png": png(c, i) for c in ("red", "green") for i in range(9)})
    upload_zip(at, other, "two kinds.zip")
    no_problems(at)
    data = at.session_state["cfg"].data
    assert data.source_name == "two kinds.zip" and data.ood_source == "" and data.ood_source_name == ""
    (warning,) = [w for w in texts(at.warning) if "no longer used" in w]
    assert "**dusk.zip**" in warning and "stripes" in warning and "upload:" not in warning, warning
    assert ".)." not in warning and warning.count("try again") == 1, "the engine's advice, said once"
    assert not any("OOD set in use" in s for s in texts(at.success))
    assert not texts(at.error), "the dropped zip is not checked again against the new classes from its file chooser"
    assert "comes back by itself if you return to data with its classes" in warning
    # back to data with its classes: the dropped set is used again, and the page says so (not from the file chooser)
    upload_zip(at, tiny_bytes, "first.zip")
    no_problems(at)
    assert at.session_state["cfg"].data.ood_source_name == "dusk.zip" and not texts(at.error)
    assert any("OOD set **dusk.zip** is used again" in i for i in texts(at.info)), texts(at.info)
    # removed by the user, it stays removed whatever data comes next
    at.button(key=[b.key for b in at.button if b.label == "Remove it"][0]).click().run()
    upload_zip(at, other, "two kinds.zip")
    upload_zip(at, tiny_bytes, "first.zip")
    assert at.session_state["cfg"].data.ood_source == ""
    # a refused OOD zip while one is in use: the page says the one in use stays
    at.file_uploader[1].set_value(("dusk.zip", ood, "application/zip")).run()
    bad = zip_bytes({f"{d}/{i}.png": png(c, i) for c, d in (("red", "cats"), ("green", "dogs")) for i in range(2)})
    at.file_uploader[1].set_value(("wrong.zip", bad, "application/zip")).run()
    assert at.session_state["cfg"].data.ood_source_name == "dusk.zip"
    assert any("still uses your OOD set **dusk.zip**" in i for i in texts(at.info)), texts(at.info)
    assert not any("without your OOD set" in i for i in texts(at.info))


def test_the_users_ood_set_gets_its_own_confusion_matrix_and_per_class_accuracy(studio, tiny_bytes):
    """The OOD set the user brought had one figure on Results and nothing to inspect."""
    at = new_app()
    upload_zip(at, tiny_bytes)
    ood = zip_bytes({f"{c}/{i}.png": png(c, i) for c in ("red", "green", "stripes") for i in range(3)})
    at.file_uploader[1].set_value(("dusk.zip", ood, "application/zip")).run()
    configure_tiny(at)
    run_id = start_run(at)
    assert engine().wait(run_id, RUN_TIMEOUT) == "finished"
    summary = json.loads((Path(engine().store.get_run(run_id).run_dir) / "summary.json").read_text())
    matrix = summary["ood_user_confusion"]
    assert sum(map(sum, matrix)) == 9 and [sum(r) for r in matrix] == [3, 3, 3]
    assert sum(matrix[i][i] for i in range(3)) / 9 == pytest.approx(summary["ood_user_acc"])
    assert set(summary["ood_user_per_class_acc"]) == set(summary["classes"])
    at.switch_page("app_pages/results.py").run()
    no_problems(at)
    split = at.radio(key="confusion_split")
    assert split.options == ["test images", "validation images", "your OOD set"]
    split.set_value("ood_user").run()
    no_problems(at)
    specs = " ".join(str(c.proto) for c in at.get("vega_lite_chart"))
    assert "Confusion matrix (your OOD set)" in specs and "Accuracy per class (your OOD set)" in specs
    assert any("On your OOD set" in c for c in texts(at.caption))


def test_a_config_the_engine_refuses_shows_its_message_and_starts_nothing(studio, tiny_bytes):
    at = new_app()
    upload_zip(at, tiny_bytes)
    at.session_state["cfg"] = with_section(at.session_state["cfg"], "optim", lr=0.0)
    at.switch_page("app_pages/train.py").run()
    assert any("Learning rate must be between" in w for w in texts(at.warning)), "named as the page labels it"
    assert at.button(key="start").disabled, "nothing to start until the settings are fixed"
    at.switch_page("app_pages/data.py").run()
    assert at.button(key="quick_start").disabled
    assert any("Learning rate must be between" in w for w in texts(at.warning)), "Train now says why"
    no_problems(at)
    assert engine().list_runs() == []


def test_a_crashing_run_is_marked_failed_and_the_next_run_starts(studio, tiny_bytes, monkeypatch):
    class Exploding(MethodHook):
        name = "exploding"

        def after_step(self, ctx):
            raise RuntimeError("method exploded")

    at = new_app()
    upload_zip(at, tiny_bytes)
    configure_tiny(at)
    with monkeypatch.context() as patch:  # (not monkeypatch.undo(): that would also undo STUDIO_DATA_DIR)
        patch.setattr("engine.train.build_hooks", lambda cfg: [Exploding()])
        crashed = start_run(at)
        assert engine().wait(crashed, RUN_TIMEOUT) == "failed"
    at.run()
    no_problems(at)
    assert any("method exploded" in e for e in texts(at.error)), texts(at.error)

    at.switch_page("app_pages/results.py").run()
    no_problems(at)
    assert any("This run failed" in e for e in texts(at.error))
    # no model to answer with: no predict command (a new user was offered one for a failed run), the repeat stays
    assert any(c.value.startswith("python -m engine train") for c in at.code)
    assert not any("engine predict" in c.value for c in at.code)

    good = start_run(at)
    assert engine().wait(good, RUN_TIMEOUT) == "finished"


def test_stop_ends_a_running_job(studio, tiny_bytes):
    at = new_app()
    upload_zip(at, tiny_bytes)
    configure_tiny(at, epochs=50)
    run_id = start_run(at)
    at.run()
    at.button(key=f"stop_{run_id}").click().run()
    no_problems(at)
    # said at once (a new user saw "Stop" a few seconds after pressing it): stopping, or stopped already
    label = at.button(key=f"stop_{run_id}").label if f"stop_{run_id}" in [b.key for b in at.button] else None
    assert label == "Stopping…" or engine().run_record(run_id).status == "stopped", label
    assert engine().wait(run_id, RUN_TIMEOUT) == "stopped"
    assert not engine().stopping(run_id), "no longer stopping once stopped"
    at.run()
    assert any("Stopped" in w for w in texts(at.warning))


# ---- widget helpers --------------------------------------------------------------------------------

def test_scaled_fields_round_trip_between_stored_and_shown_units():
    from app.widgets import field_info, from_shown, to_shown

    info = field_info("toy", ToyConfig, "strength")
    assert info.shown_label == "Strength (/255)"
    assert to_shown(info, 8 / 255) == pytest.approx(8.0)
    assert from_shown(info, 8.0) == pytest.approx(8 / 255)
    assert to_shown(field_info("toy", ToyConfig, "levels"), (0.5, 1.0)) == "0.5, 1.0"
    assert field_info("toy", ToyConfig, "mode").choices == ("soft", "hard")


def test_the_compare_table_leaves_the_dataset_out_of_run_labels_unless_that_makes_two_alike():
    from app.state import without_dataset

    labels = {"a": "11:24 · Quick demo (ResNet-18) on sample textures", "b": "11:30 · My run on leaves.zip (2) · stopped",
              "c": "11:31 · Quick demo (ResNet-18) on sample textures · failed"}
    data = {"a": "sample textures", "b": "leaves.zip", "c": "sample textures"}
    assert without_dataset(labels, data) == {"a": "11:24 · Quick demo (ResNet-18)", "b": "11:30 · My run (2) · stopped",
                                             "c": "11:31 · Quick demo (ResNet-18) · failed"}
    same_minute = {"a": "11:24 · Quick demo on x.zip", "b": "11:24 · Quick demo on y.zip"}
    assert without_dataset(same_minute, {"a": "x.zip", "b": "y.zip"}) == same_minute, "they would read the same"
    named = {"a": "11:24 · trip on sample textures day"}  # the words in the middle of a user's name stay
    assert without_dataset(named, {"a": "sample textures"}) == named
    # the data's settings the name goes on with stay (a clinician's weighted run kept "(ResNet-18) on Clinic …")
    from app.state import without_backbone

    weighted = {"a": "04:51 · Quick demo (ResNet-18) on Clinic lesions 2026.zip, loss weighted by class",
                "b": "04:46 · Quick demo (ResNet-18) on Clinic lesions 2026.zip"}
    short = without_dataset(weighted, dict.fromkeys(weighted, "Clinic lesions 2026.zip"),
                            {"a": ", loss weighted by class"})
    assert without_backbone(short, dict.fromkeys(weighted, "ResNet-18")) == {
        "a": "04:51 · Quick demo, loss weighted by class", "b": "04:46 · Quick demo"}
    own = {"a": "11:24 · trip on x.zip, day 2"}  # a user's own words after a comma: no setting of the data
    assert without_dataset(own, {"a": "x.zip"}) == own
    before = {"a": "04:40 · Quick demo (ResNet-18) on x.zip"}  # named before the data's settings went into names
    assert without_dataset(before, {"a": "x.zip"}, {"a": ", loss weighted by class"}) == {
        "a": "04:40 · Quick demo (ResNet-18)"}


def test_the_compare_table_leaves_a_shared_backbone_out_of_run_labels():
    from app.state import without_backbone

    labels = {"a": "11:24 · Quick demo (ResNet-18)", "b": "11:30 · Pruning demo (ResNet-18) (2) · stopped",
              "c": "11:31 · lr 0.02 · Quick demo (ResNet-18) · failed"}
    resnet = dict.fromkeys(labels, "ResNet-18")
    assert without_backbone(labels, resnet) == {"a": "11:24 · Quick demo", "b": "11:30 · Pruning demo (2) · stopped",
                                                "c": "11:31 · lr 0.02 · Quick demo · failed"}
    assert without_backbone(labels, {**resnet, "c": "MobileNetV3-Small"}) == labels, "two backbones: the names say which"
    seeded = {"a": "11:24 · Quick demo (ResNet-18)", "b": "11:30 · Quick demo (ResNet-18, seed 1) · stopped"}
    assert without_backbone(seeded, dict.fromkeys(seeded, "ResNet-18")) == {
        "a": "11:24 · Quick demo", "b": "11:30 · Quick demo (seed 1) · stopped"}, "the seed stays, the backbone goes"
    alike = {"a": "11:24 · Quick demo (ResNet-18)", "b": "11:24 · Quick demo"}
    assert without_backbone(alike, dict.fromkeys(alike, "ResNet-18")) == alike, "they would read the same"
    assert without_backbone(alike, dict.fromkeys(alike, None)) == alike, "a run without a backbone name"


def test_run_labels_use_names_and_start_times_and_number_runs_that_would_read_the_same():
    import time

    from app.state import run_labels

    @dataclass
    class Rec:
        id: str
        name: str
        created: float
        status: str = "finished"
        config: dict = field(default_factory=dict)

    t = time.mktime((2026, 12, 1, 9, 30, 10, 0, 0, -1))
    recs = [Rec("20261201-093010-a1b2c3", "Quick demo", t), Rec("20261201-093040-d4e5f6", "Quick demo", t + 30,
                                                                  "stopped"),
            Rec("20261201-101500-0a0b0c", "Pruning demo", t + 2690)]
    labels = run_labels(recs)
    assert labels[recs[2].id] == "Pruning demo · 01 Dec 10:15 · finished"
    assert labels[recs[0].id] == "Quick demo · 01 Dec 09:30 (1) · finished"
    assert labels[recs[1].id] == "Quick demo · 01 Dec 09:30 (2) · stopped", "same name and minute: numbered by start"
    assert not any(r.id[-6:] in label for r in recs for label in labels.values()), "no internal run id"
    compact = run_labels(list(reversed(recs)), compact=True)  # the order given does not change the numbers
    assert compact == {recs[2].id: "10:15 · Pruning demo", recs[1].id: "09:30 · Quick demo (2) · stopped",
                       recs[0].id: "09:30 · Quick demo (1)"}
    recs.append(Rec("20261202-080000-ffffff", "Quick demo", t + 86400))
    assert run_labels(recs, compact=True)[recs[3].id] == "02 Dec 09:30 · Quick demo", "several days: the day shows"
    assert run_labels(recs, with_status=False)[recs[3].id] == "Quick demo · 02 Dec 09:30"
    # runs of the same name say the settings they differ in (a new user's two "ResNet-18 plain" runs)
    three, six = (Rec(f"2026120{i}-1000-x", "ResNet-18 plain on shapes.zip", t + i,
                      config={"train": {"epochs": e, "batch_size": 8}, "optim": {"lr": 0.01}, "seed": 0})
                  for i, e in ((1, 3), (2, 6)))
    labels = run_labels([three, six], with_status=False)
    assert labels[three.id] == "ResNet-18 plain on shapes.zip (3 epochs) · 01 Dec 09:30"
    assert labels[six.id] == "ResNet-18 plain on shapes.zip (6 epochs) · 01 Dec 09:30", "no number needed"
    assert run_labels([three, six], compact=True)[six.id] == "09:30 · 6 epochs · ResNet-18 plain on shapes.zip", \
        "in the narrow column the difference comes before the name"


def test_the_gpu_selector_appears_only_with_several_gpus(studio, monkeypatch):
    at = new_app()
    at.switch_page("app_pages/train.py").run()
    no_problems(at)
    assert not [m for m in at.multiselect if m.key == "gpus"]
    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    monkeypatch.setattr("torch.cuda.get_device_name", lambda i=0: "H100")
    at.run()
    no_problems(at)
    assert [m for m in at.multiselect if m.key == "gpus"]
    at.session_state["cfg"] = with_section(at.session_state["cfg"], "train", device="cpu")
    at.run()
    no_problems(at)
    assert not [m for m in at.multiselect if m.key == "gpus"], "a CPU run has no GPUs to choose"


def test_choosing_two_gpus_submits_one_process_per_gpu(studio, tiny_bytes, monkeypatch):
    """The selector's choice reaches the engine as the run's GPUs (the engine then launches torchrun for
    several, or trains on the one chosen; here the run goes on as one CPU process, as there is no GPU)."""
    from engine.worker import Engine

    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    monkeypatch.setattr("torch.cuda.get_device_name", lambda i=0: "H100")
    asked = []
    original = Engine.submit

    def submit(self, cfg, owner="", processes=1, gpus=()):
        asked.append(gpus)
        return original(self, cfg, owner=owner)

    monkeypatch.setattr(Engine, "submit", submit)
    at = new_app()
    upload_zip(at, tiny_bytes)
    configure_tiny(at)
    at.switch_page("app_pages/train.py").run()
    at.multiselect(key="gpus").set_value([0, 1]).run()
    run_id = start_run(at)
    assert asked == [(0, 1)]
    assert engine().wait(run_id, 120) == "finished"
    at.multiselect(key="gpus").set_value([1]).run()  # one GPU, not the first: the run goes to that one
    run_id = start_run(at)
    assert asked == [(0, 1), (1,)]
    assert engine().wait(run_id, 120) == "finished"


def test_the_head_only_epochs_are_said_in_words():
    from app.state import head_only_words
    from engine.config import RunConfig, apply_overrides

    def cfg(lp: int, epochs: int = 20):
        return apply_overrides(RunConfig(), [f"optim.linear_probe_epochs={lp}", f"train.epochs={epochs}"])

    assert head_only_words(cfg(0)) == ""
    assert head_only_words(cfg(1)) == "the first epoch trains only the new head"
    assert head_only_words(cfg(2)) == "the first 2 epochs train only the new head"
    # a new user saw sparsity rise in those epochs: the pruning demo prunes from the first step
    from engine.presets import PRESETS

    demo = PRESETS["pruning_demo"].apply(RunConfig())
    assert head_only_words(demo) == "the first 2 epochs train only the new head, while pruning already zeroes trunk weights"
    later = apply_overrides(demo, ["pruning.start_fraction=0.1"])
    assert head_only_words(later) == "the first 2 epochs train only the new head"
    structured_only = apply_overrides(demo, ["pruning.target_sparsity=0"])  # channels go at the end only
    assert head_only_words(structured_only) == "the first 2 epochs train only the new head"


def test_a_runs_caption_says_when_it_trained_without_mirrors_or_augmentation():
    from app.app_pages.results import recipe_notes

    assert recipe_notes({"train": {"epochs": 3}}) == "", "the default (crops and mirrors) goes unsaid"
    assert recipe_notes({"train": {"flip": False}}) == " · random crops, no mirroring"
    assert recipe_notes({"train": {"augment": False, "flip": False}, "eval": {"tta_flip": True}}) == \
        " · no augmentation · flip TTA (each prediction averaged with the mirror image)"
    # the Fastest model's frozen blocks: a new user found them in the Freezing settings only
    assert recipe_notes({"train": {"augment": False}, "optim": {"freeze_blocks": 2}}) == \
        " · no augmentation · first 2 blocks frozen"
    assert recipe_notes({"optim": {"freeze_blocks": 0}}) == ""
    assert recipe_notes({"optim": {"freeze_blocks": 1}, "backbone": {"pretrained": "none"}}) == \
        " · first block frozen at random weights"
    # the Quick demo's head-only epochs: the caption, Compare's set-up and the card said "20 epochs" alone
    assert recipe_notes({"optim": {"linear_probe_epochs": 2}}) == " · first 2 epochs head only (a linear probe)"
    assert recipe_notes({"optim": {"linear_probe_epochs": 2}}, 0) == "", "a kept head: the engine ran none"
    # the WiSE-FT demo's constant rate: beside a Standard demo its weaker model had no reason given
    assert recipe_notes({"optim": {"linear_probe_epochs": 2, "schedule": "constant"}, "train": {"augment": False}}) == \
        " · no augmentation · first 2 epochs head only (a linear probe) · learning rate: constant"
    assert recipe_notes({"optim": {"schedule": "cosine"}}) == ""
    assert recipe_notes({"optim": {"schedule": "slow_start_fast_decay"}}) == " · learning rate: slow start, fast decay"


def test_the_epochs_structured_pruning_adds_are_said_with_the_runs_epochs():
    from app.state import epochs_words
    from engine.config import RunConfig, with_section

    assert epochs_words(RunConfig().to_dict()) == f"{RunConfig().train.epochs} epochs"
    pruned = with_section(with_section(RunConfig(), "train", epochs=6), "pruning", enabled=True, structured=True,
                          structured_epochs=10)
    assert epochs_words(pruned.to_dict()) == "6 epochs + 10 epochs fine-tuning the smaller model (structured pruning)"
    assert epochs_words({"train": {"epochs": 1}, "pruning": {"enabled": False, "structured": True}}) == "1 epoch"


def test_a_class_strip_puts_its_pictures_side_by_side_with_white_between():
    import numpy as np

    from app.datasets import STRIP_GAP_PX, thumbnail_strip

    pictures = [np.full((8, 8, 3), v, np.uint8) for v in (10, 20, 30)]
    strip = thumbnail_strip(pictures)
    assert strip.shape == (8, 3 * 8 + 2 * STRIP_GAP_PX, 3) and strip.dtype == np.uint8
    assert (strip[:, 8:8 + STRIP_GAP_PX] == 255).all() and (strip[:, -8:] == 30).all()
    with pytest.raises(ValueError):
        thumbnail_strip([])


def test_the_next_run_glossary_gives_each_term_of_the_line_in_plain_words():
    """A new user read the Train page's "Next run" line (bundled weights, batch, seed, momentum, blocks frozen) as
    jargon: the list under it says each term the line uses, and only those."""
    from app.app_pages.train import next_run_glossary
    from app.presets import PRESETS
    from app.state import default_config

    fastest = "\n".join(next_run_glossary(PRESETS["fastest"].apply(default_config())))
    assert "it starts from the weights that ship with the studio (learnt offline from generated patterns)" in fastest
    assert "**blocks frozen**: the first layers" in fastest and "**new head**" not in fastest, fastest
    assert "**4 epochs**: the model sees every training image 4 times." in fastest
    quick = "\n".join(next_run_glossary(default_config()))
    assert "**new head**" in quick and "keeps the pretrained layers" in quick and "blocks frozen" not in quick
    assert "whole pictures" not in quick
    import dataclasses

    whole = default_config()
    whole = dataclasses.replace(whole, data=dataclasses.replace(whole.data, fit="pad"))
    assert "**whole pictures**: each picture is shrunk whole to fit the square" in "\n".join(next_run_glossary(whole))
