"""The Try it page through AppTest: an uploaded image gets top-k bars and the decoding notes, a blank
image gets the low-confidence message, two models side by side, attributions for a new image, a
zip of class folders gives a sortable table, accuracy and a CSV, and the page without a run.

One tiny WiSE-FT run (ResNet-18, 1 epoch, 32 px) is trained through the engine for the module.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from PIL import Image

from conftest import (RANDOM_RESNET18, TINY_CLASSES, dashboard_studio, finished_run, no_problems, open_app_page,
                      says_stopped_best, texts, tiny_config, tiny_image, write_tiny_zip)

PAGE = "app_pages/try_it.py"


def engine():
    from app.state import get_engine

    return get_engine()


def open_page(run_id: str | None = None):
    return open_app_page(PAGE, try_run=run_id)


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    # 20 images a class: 24 held out, enough to set the "unlike the training images" bar (19 or more)
    with dashboard_studio(tmp_path_factory.mktemp("try"), start_checkpoint=True, per_class=20) as studio:
        cfg = tiny_config(studio["data"], "backbone.name=resnet18", "train.epochs=1", "train.threads=1",
                          "eval.ood=false", "backbone.pretrained=checkpoint", f"backbone.checkpoint={studio['ckpt']}",
                          "wise_ft.enabled=true", "wise_ft.alphas=0,1", "wise_ft.probe_epochs=20")
        yield finished_run(studio["engine"], cfg)


def test_without_a_finished_run_the_page_says_to_train_one(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path / "empty"))
    try:
        at = open_page()
        assert texts(at.title) == ["6 · Try it"]
        assert any("No finished run yet" in i for i in texts(at.info))
    finally:
        engine().shutdown(5)
        st.cache_resource.clear()


def test_an_uploaded_image_gets_top_k_bars_and_a_blank_one_is_flagged(run):
    at = open_page(run)
    assert at.selectbox(key=f"try_variant_a_{run}").options  # the model picker offers the run's variants
    photo = tiny_image("red", 321, size=48).crop((0, 0, 48, 36))
    at.file_uploader(key="try_files").set_value([("my photo.png", png(photo), "image/png")])
    at.run()
    no_problems(at)
    charts = at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")
    assert len(charts) == 1, "one top-k bar chart for one image and one model"
    spec = charts[0].proto.spec
    assert '"probability"' in spec and "class" in spec
    notes = " ".join(texts(at.markdown))
    assert "centre square of 36 x 36" in notes and "32 x 32" in notes, notes
    assert any("answered in" in c and (c.endswith("on the CPU") or "the exported files compute in float32" in c)
               for c in texts(at.caption)), texts(at.caption)
    assert any(re.match(r"It says \*\*(red|green|stripes)\*\* \(\d+%\)$|Low confidence", t)
               for t in texts(at.info) + texts(at.warning)), texts(at.info) + texts(at.warning)
    assert not at.success, "the page cannot know the true class of a user's photo: no green tick"

    blank = Image.new("RGB", (40, 40), (255, 255, 255))
    at.file_uploader(key="try_files").set_value([("blank.png", png(blank), "image/png")])
    at.run()
    no_problems(at)
    assert any(w.startswith("Unfamiliar image") for w in texts(at.warning)), texts(at.warning)
    at.toggle(key=[t.key for t in at.toggle if t.key.startswith("try_explain_")][0]).set_value(True).run()
    no_problems(at)
    assert any(w.startswith("This image was flagged as unfamiliar: a map shows what drove the answer")
               for w in texts(at.warning)), "its attributions repeat the flag"

    at.file_uploader(key="try_files").set_value([("blank.png", png(blank), "image/png"),
                                                  ("my copy.png", png(blank), "image/png")])
    at.run()
    no_problems(at)  # the same bytes twice: one answer, no clash of widget keys
    assert any("my copy.png is the same file as blank.png" in c for c in texts(at.caption)), texts(at.caption)
    assert len(at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")) == 1
    # the same file given twice (a new user read "blank.png is the same file as blank.png" and a kept list naming it
    # twice): answered and kept once
    at.file_uploader(key="try_files").set_value([("blank.png", png(blank), "image/png")] * 2)
    at.run()
    no_problems(at)
    from app import state

    assert any(c.endswith("blank.png was given twice: its answer is above.") for c in texts(at.caption)), texts(at.caption)
    assert [name for name, _ in at.session_state[state.TRY_KEY]["images"]] == ["blank.png"]

    at.file_uploader(key="try_files").set_value([("phone.heic", b"\x00\x00\x00\x18ftypheic", "image/heic"),
                                                  ("blank.png", png(blank), "image/png")])
    at.run()
    assert not at.exception
    assert any("'phone.heic' could not be used" in e for e in texts(at.error)), texts(at.error)
    assert len(at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")) == 1, "the other image still answers"

    # two flagged images for one reason: the paragraph once, then one short line (it was repeated under each)
    grey = Image.new("RGB", (40, 40), (128, 128, 128))
    at.file_uploader(key="try_files").set_value([("blank.png", png(blank), "image/png"),
                                                  ("grey.png", png(grey), "image/png")])
    at.run()
    no_problems(at)
    flags = [w for w in texts(at.warning) if w.startswith("Unfamiliar image")]
    assert len(flags) == 2 and "The model always answers with one of its classes" in flags[0], flags
    assert flags[1].startswith("Unfamiliar image (as explained above): all one colour"), flags
    assert "do not trust this answer" in flags[1] and len(flags[1]) < len(flags[0]) / 2, flags


def test_what_holds_for_every_answer_of_the_run_is_said_once_not_under_each_image(run, monkeypatch):
    """A new user read the same paragraph (why unfamiliar images are not flagged for this run) under every
    image: it is about the run's model, said once above the answers."""
    from engine.predict import Predictor

    note = "Images unlike the training images are not flagged for this run: it held out only 18."
    monkeypatch.setattr(Predictor, "familiarity_note", lambda self: note)
    at = open_page(run)
    images = [(f"photo {i}.png", png(tiny_image(c, i, size=40)), "image/png") for i, c in enumerate(("red", "green"))]
    at.file_uploader(key="try_files").set_value(images).run()
    no_problems(at)
    assert len(at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")) == 2, "two images answered"
    assert texts(at.caption).count(note) == 1, texts(at.caption)


def test_a_picture_of_the_kind_the_run_is_weaker_on_gets_the_figures_that_say_so(run, monkeypatch):
    """A field biologist's night shot was answered at 77%, wrong, with no word beside it, while the run got a
    quarter of its greyscale test pictures right. Under a greyscale picture's answer (not a colour one's) the
    figures are said, for the model they are of."""
    import app.components as components

    real = components.read_summary

    def weak_at_night(run_dir: str) -> dict:
        summary = real(run_dir)  # the tiny run's own test confusion matrix is near guessing: left out
        return summary and {**{k: v for k, v in summary.items() if k != "test_confusion"}, "test_acc": 0.85,
                            "val_acc": 0.85, "test_by_colour": {"greyscale": [2, 10], "colour": [40, 42]}}

    monkeypatch.setattr(components, "read_summary", weak_at_night)
    at = open_page(run)
    was = at.selectbox(key=f"try_variant_a_{run}").value
    at.selectbox(key=f"try_variant_a_{run}").set_value("fine_tuned").run()
    night = tiny_image("green", 77, size=40).convert("L").convert("RGB")
    at.file_uploader(key="try_files").set_value([("night.png", png(night), "image/png"),
                                                  ("day.png", png(tiny_image("green", 78, size=40)), "image/png")])
    at.run()
    no_problems(at)
    said = [c for c in texts(at.caption) if "greyscale picture" in c]
    at.selectbox(key=f"try_variant_a_{run}").set_value(was).run()  # kept for the user: the next tests' default
    assert said == [":material/contrast: A greyscale picture: the model got 2 of 10 such test pictures right "
                    "(20.0%), against 40 of 42 colour ones (95.2%)."], texts(at.caption)
    from app.app_pages.try_it import Shown, kind_caution

    image = np.array(night).transpose(2, 0, 1).copy()
    run_dir = str(engine().run_record(run).run_dir)
    for variant, alpha in (("best", None), ("structured", None), ("wise", 0.5)):  # not the run's figures: nothing
        assert kind_caution(Shown(None, variant, alpha, run_dir, variant), image) is None, variant
    assert kind_caution(Shown(None, "wise", 1.0, run_dir, "alpha 1"), image).startswith("A greyscale picture")


def test_a_class_the_model_learnt_from_few_pictures_is_named_under_the_first_answer(run, monkeypatch):
    """A clinician's new photo of their rare class (5 training pictures) was answered as another class at 94%,
    with no word that the model had seen few of its kind: said once, under the first picture's answer."""
    import app.components as components

    real = components.read_summary

    def rare(run_dir: str) -> dict:
        summary = real(run_dir)
        counts = {c: 40 for c in summary["classes"]} | {summary["classes"][0]: 4}
        return {**summary, "data_report": {**summary["data_report"], "split_counts": {
            **summary["data_report"]["split_counts"], "train": counts}}}

    monkeypatch.setattr(components, "read_summary", rare)
    at = open_page(run)
    first = components.read_summary(str(engine().run_record(run).run_dir))["classes"][0]
    images = [(f"photo {i}.png", png(tiny_image(c, i, size=40)), "image/png") for i, c in enumerate(("red", "green"))]
    at.file_uploader(key="try_files").set_value(images).run()
    no_problems(at)
    said = [c for c in texts(at.caption) if "training pictures" in c]
    assert said == [f":material/info: The model learnt {first} from only 4 training pictures ({said[0].split('(')[1]}"
                    ] and "it knows that class least" in said[0], texts(at.caption)


def test_the_alpha_chosen_on_results_is_the_one_try_it_and_predict_use(run, tmp_path, capsys):
    from app.state import get_engine
    from engine.cli import main as cli
    from engine.predict import chosen_alpha, run_summary

    eng = get_engine()
    run_dir = eng.run_record(run).run_dir
    at = open_page(run)
    own = round(chosen_alpha(run_summary(run_dir)), 2)
    assert at.slider(key=f"try_alpha_a_{run}").value == own, "nothing chosen yet: the run's own pick"
    eng.store.set_wise_ft_alpha(run, 0.35)  # what the Results page's "Use alpha" button stores
    at.run()
    no_problems(at)
    assert at.slider(key=f"try_alpha_a_{run}").value == 0.35, "the open page follows the new choice"
    write_tiny_zip(tmp_path / "batch.zip", per_class=2)
    assert cli(["predict", "--run", run, "--data", str(tmp_path / "batch.zip"), "--variant", "wise",
                "--data-dir", str(eng.store.path.parent), "--out", str(tmp_path / "predictions.csv"), "--quiet"]) == 0
    assert "WiSE-FT mix at alpha 0.35" in capsys.readouterr().out, "the command line uses the choice too"
    eng.store.set_wise_ft_alpha(run, None)


def test_two_models_side_by_side_and_attributions_for_a_new_image(run, monkeypatch):
    from streamlit.delta_generator import DeltaGenerator

    from app.app_pages.try_it import DISPLAY_PX

    widths: dict[str, object] = {}  # caption -> the width st.image was given (AppTest does not expose it)
    shown = DeltaGenerator.image
    monkeypatch.setattr(DeltaGenerator, "image", lambda self, *a, **k: (widths.__setitem__(k.get("caption"),
                                                                                        k.get("width")),
                                                                         shown(self, *a, **k))[1])
    at = open_page(run)
    at.toggle(key="try_compare").set_value(True).run()
    no_problems(at)
    assert at.selectbox(key=f"try_variant_a_{run}").value == "wise"
    # the mix against the fine-tuned model it was mixed from: what the run's alpha changed
    assert at.selectbox(key=f"try_variant_b_{run}").value == "fine_tuned"
    assert not [s for s in at.slider if s.key == f"try_alpha_b_{run}"], "no alpha for the fine-tuned model"
    at.file_uploader(key="try_files").set_value([("stripes.png", png(tiny_image("stripes", 5, 40)), "image/png")])
    at.run()
    no_problems(at)
    assert len(at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")) == 2, "one chart per model"
    at.toggle(key=[t.key for t in at.toggle if t.key.startswith("try_explain_")][0]).set_value(True).run()
    no_problems(at)
    captions = [c for img in at.image for c in img.captions if c != "low → high influence"]  # the colour scale
    assert len(at.image) == 4, captions  # the picture, the scale, then one attribution map per model
    assert at.selectbox(key=[s.key for s in at.selectbox if s.key.startswith("try_method_")][0]).value == "grad_cam", \
        "Grad-CAM first, as on Explain: Integrated Gradients on a small image read as the unchanged photo"
    assert sum(c.startswith("WiSE-FT mix at alpha") and ": why " in c for c in captions) == 1, captions
    assert sum(c.startswith("Fine-tuned (end of training)") and ": why " in c for c in captions) == 1, captions
    # both maps (and the picture) at one fixed width: by default a longer caption made its map larger
    assert {widths[c] for c in captions} == {DISPLAY_PX}, widths
    at.toggle(key="try_compare").set_value(False).run()  # kept in the draft: later tests start with one model
    no_problems(at)
    assert [t.value for t in at.toggle if t.key.startswith("try_explain_")] == [True], "the attributions stay on"
    assert len(at.image) == 3, "the picture, the scale and the one model's map"


def with_a_wide_photo(run_id: str):
    """Try it on run `run_id` with a 96 x 32 photo given, its red subject at the left end (checked for problems)."""
    at = open_page(run_id)
    wide = Image.new("RGB", (96, 32), (20, 20, 250))
    wide.paste(tiny_image("red", 5, size=32), (0, 0))
    at.file_uploader(key="try_files").set_value([("field.png", png(wide), "image/png")])
    at.run()
    no_problems(at)
    return at


def test_a_landscape_photos_subject_at_one_end_can_be_shown_to_the_model(run):
    """Try it kept a landscape photo's centre square and said so only under "What was done to the image": a user
    whose subject sat at one end could not show it to the model. A non-square picture gets a choice of the part the
    model sees, the answer follows it, and a refresh keeps it; a square picture gets none."""
    at = with_a_wide_photo(run)
    crops = [r for r in at.radio if r.key.startswith("try_crop_")]
    assert len(crops) == 1 and crops[0].options == ["left", "centre", "right"] and crops[0].value == "centre"
    assert "centre square of 32 x 32 kept" in " ".join(texts(at.markdown))
    crops[0].set_value("left").run()
    no_problems(at)
    assert "left square of 32 x 32 kept (the model sees squares; training used the centre square)" in \
        " ".join(texts(at.markdown)), texts(at.markdown)
    assert any("the studio cannot check whether the picture is one the run trained on" in c
               for c in texts(at.caption)), "the own-image check is the centre's (said without 'here' and 'own')"
    assert "The whole picture; the square the model sees is outlined in red." in \
        [c for img in at.image for c in img.captions], "the whole picture, the square outlined"
    again = open_page(run)
    no_problems(again)
    assert [r.value for r in again.radio if r.key.startswith("try_crop_")] == ["left"], "kept for a refresh"
    assert "left square of 32 x 32 kept" in " ".join(texts(again.markdown))
    again.file_uploader(key="try_files").set_value([("square.png", png(tiny_image("red", 6, size=32)), "image/png")])
    again.run()
    no_problems(again)
    assert not [r for r in again.radio if r.key.startswith("try_crop_")], "a square picture is kept whole"
    from app.app_pages.try_it import crop_options, digest

    near, tall = png(Image.new("RGB", (101, 100))), png(Image.new("RGB", (60, 96)))
    assert crop_options(digest(near), near) == [], "near-square: the three squares are the same"
    assert crop_options(digest(tall), tall) == ["top", "centre", "bottom"]


def test_a_run_that_keeps_whole_pictures_answers_a_wide_photo_whole(tmp_path):
    """A run trained on whole pictures (data.fit "pad") sees a new photo whole, as it trained: no square to choose,
    and "What was done to the image" says so."""
    with dashboard_studio(tmp_path, per_class=8) as studio:
        cfg = tiny_config(studio["data"], "train.epochs=1", "train.threads=1", "data.fit=pad")
        run_id = finished_run(studio["engine"], cfg)
        at = with_a_wide_photo(run_id)
        assert not [r for r in at.radio if r.key.startswith("try_crop_")], "the whole picture: nothing to choose"
        assert "the whole picture kept, resized to fit 32 x 32 pixels (bilinear), grey bars above and below" in \
            " ".join(texts(at.markdown)), texts(at.markdown)


def test_a_refresh_keeps_the_models_the_comparison_and_the_threshold(run):
    """The model picked, the comparison and its model, an alpha moved by hand and the threshold live in
    the user's draft with the images: a new session (a refresh) opens with them."""
    at = open_page(run)
    options = at.selectbox(key=f"try_variant_a_{run}").options
    assert not any(o.startswith("Best epoch") for o in options), "one epoch: its best is its end, offered once"
    at.selectbox(key=f"try_variant_a_{run}").set_value("fine_tuned").run()
    at.toggle(key="try_compare").set_value(True).run()
    # not the model picked above: a teacher compared "Smaller" with "Smaller", two identical columns
    picked = at.selectbox(key=f"try_variant_a_{run}")
    assert picked.format_func("fine_tuned") not in at.selectbox(key=f"try_variant_b_{run}").options
    at.selectbox(key=f"try_variant_b_{run}").set_value("wise").run()
    at.slider(key=f"try_alpha_b_{run}").set_value(0.35).run()
    at.slider(key="try_threshold").set_value(0.7).run()
    no_problems(at)
    again = open_page(run)
    no_problems(again)
    assert again.selectbox(key=f"try_variant_a_{run}").value == "fine_tuned"
    assert again.toggle(key="try_compare").value is True
    assert again.selectbox(key=f"try_variant_b_{run}").value == "wise"
    assert again.slider(key=f"try_alpha_b_{run}").value == pytest.approx(0.35)
    assert again.slider(key="try_threshold").value == pytest.approx(0.7)
    again.toggle(key="try_compare").set_value(False).run()  # back to the defaults for the next tests
    again.selectbox(key=f"try_variant_a_{run}").set_value("wise").run()
    again.slider(key="try_threshold").set_value(0.5).run()
    assert open_page(run).toggle(key="try_compare").value is False


def test_a_zip_of_class_folders_gives_a_table_accuracy_and_a_csv(run):
    at = open_page(run)
    at.radio(key="try_source").set_value("A zip of images").run()
    no_problems(at)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for c in TINY_CLASSES:
            for i in range(2):
                zf.writestr(f"{c}/{i}.png", png(tiny_image(c, 800 + i)))
        zf.writestr("red/broken.jpg", b"not a jpeg")
    at.file_uploader(key="try_zip").set_value(("new batch.zip", buf.getvalue(), "application/zip")).run()
    no_problems(at)
    (df,) = [d.value for d in at.dataframe if "confidence" in d.value.columns]
    assert len(df) == 6 and list(df["confidence"]) == sorted(df["confidence"]), "least confident first"
    assert df["confidence"].between(100 / len(TINY_CLASSES) - 1e-6, 100).all(), "the top class's share, in percent"
    from app.app_pages.try_it import CONFIDENCE_FORMAT

    assert CONFIDENCE_FORMAT % 49.94 == "49.9%", "not \"50%\" beside \"unsure (49.9%)\""
    assert set(df["true class"]) == set(TINY_CLASSES)
    from app.app_pages.try_it import THUMB_PX

    assert list(df.columns[:2]) == ["picture", "file"] and df["picture"].str.startswith("data:image/jpeg;base64,").all()
    import base64

    thumb = Image.open(io.BytesIO(base64.b64decode(df["picture"][0].split(",", 1)[1])))
    assert thumb.size == (min(THUMB_PX, 32),) * 2, "the model's square, never enlarged"
    labels = [m.label for m in at.metric]
    assert "Accuracy" in labels and "Balanced accuracy" in labels
    assert any("1 file skipped" in str(e.label) for e in at.expander)
    assert any("6 images" in m for m in texts(at.markdown))
    assert not any("the run's own" in i for i in texts(at.info)), "new images: no own-image note"
    assert "note" in df.columns and "low confidence" not in df.columns, "a reason in words, not a bare tick"
    def two_folders(top: str, red: str, green: str, seed: int) -> bytes:
        """A zip of two pictures in each of two folders, a red one's and a green one's."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for i in range(2):
                zf.writestr(f"{top}/{red}/{i}.png", png(tiny_image("red", seed + i)))
                zf.writestr(f"{top}/{green}/{i}.png", png(tiny_image("green", seed + i)))
        return buf.getvalue()

    at.file_uploader(key="try_zip").set_value(("other.zip", two_folders("shapes", "circles", "squares", 820),
                                               "application/zip")).run()
    no_problems(at)
    assert not [m for m in at.metric if m.label == "Accuracy"]
    assert any(i.startswith("No accuracy for this zip: its folders (circles, squares) are not named after this run's "
                            f"classes ({', '.join(sorted(TINY_CLASSES))})") for i in texts(at.info)), texts(at.info)
    # a folder that may mean a class is said with it (an ecologist's "fox" beside the class "Red fox")
    at.file_uploader(key="try_zip").set_value(("card.zip", two_folders("card", "red", "greens", 840),
                                               "application/zip")).run()
    no_problems(at)
    assert any(i.startswith("These folders are not classes of this run, so their images count for no accuracy: "
                            "greens (perhaps 'green')") for i in texts(at.info)), texts(at.info)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("one.png", png(tiny_image("red", 830)))
    at.file_uploader(key="try_zip").set_value(("one.zip", buf.getvalue(), "application/zip")).run()
    assert any(m.startswith("**1 image** predicted by") for m in texts(at.markdown)), "not '1 images'"
    for content, said in (({}, "'my batch.zip' is empty"), ({"readme.txt": b"hello"}, "'my batch.zip' holds no image"),
                          ({"red/scan.jpg": b"not a jpeg"}, "No readable image in 'my batch.zip': red/scan.jpg")):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data in content.items():
                zf.writestr(name, data)
        at.file_uploader(key="try_zip").set_value(("my batch.zip", buf.getvalue(), "application/zip")).run()
        errors = texts(at.error)
        assert any(said in e for e in errors), errors  # the user's file name, never the saved upload's
        assert not any("upload again" in e or "one folder per class" in e for e in errors), "advice for prediction"
    # a file that is no zip, renamed: the advice is this box's (a zip), not the command line's (an image, a folder)
    at.file_uploader(key="try_zip").set_value(("my batch.zip", b"not a zip at all", "application/zip")).run()
    errors = texts(at.error)
    assert any("'my batch.zip' is not a zip archive" in e and "Upload a .zip of images" in e for e in errors), errors
    assert not any("Give one image" in e for e in errors), errors


def test_long_class_names_take_the_room_an_empty_note_column_leaves():
    """"Seborrhoeic keratos" and "Basal cell carcinoma" were cut beside an empty note column: a column with nothing
    in it is left out, and the class columns widen to their longest name out of its room, the table no wider."""
    import pandas as pd

    from app.app_pages.try_it import CELL_CHAR_PX, CELL_PAD_PX, TABLE_WIDTHS, table, table_widths

    def result(why: str, true: str | None, p: float = 0.9):  # p: each answer's probability (0.9: "sure")
        rows = [{"path": f"p{i}.jpg", "true": true, "why": why,
                 "top": [(name, p), ("Naevus (benign)", 0.1)]}
                for i, name in enumerate(("Seborrhoeic keratosis", "Basal cell carcinoma", "Melanoma"))]
        return type("Result", (), {"rows": rows})()

    budget = sum(TABLE_WIDTHS.values())
    df = table(result("", None))
    assert "note" not in df.columns and "true class" not in df.columns
    widths = table_widths(df)
    assert widths["predicted"] == CELL_CHAR_PX * len("Seborrhoeic keratosis") + CELL_PAD_PX
    assert sum(widths.values()) <= budget
    noted = table(result("unsure (41%)", "Melanoma", 0.41), ["data:,"] * 3)  # every column: no room to give
    assert "note" in noted.columns and table_widths(noted) == {c: TABLE_WIDTHS[c] for c in noted.columns}
    both = table_widths(table(result("", "Seborrhoeic keratosis")))
    assert both["predicted"] > TABLE_WIDTHS["predicted"] and both["true class"] > TABLE_WIDTHS["true class"]
    assert sum(both.values()) <= budget
    # what the class columns leave goes to the runners-up ("Melanoma 6%, Seborrhoeic k…" was cut)
    runners = table(result("unsure (41%)", None))
    runners.loc[0, "others"] = "Seborrhoeic keratosis 30%, Melanoma 22%"
    wide = table_widths(runners)
    assert wide["others"] > TABLE_WIDTHS["others"] and sum(wide.values()) == budget, "all the room left, no more"
    short = table_widths(table(result("unsure (41%)", None)))  # "Naevus (benign) 10%": no wider than it needs
    assert short["others"] == max(TABLE_WIDTHS["others"], CELL_CHAR_PX * len("Naevus (benign) 10%") + CELL_PAD_PX)
    assert table_widths(pd.DataFrame(columns=["file", "predicted"])) == {"file": 160, "predicted": 90}
    # a long note takes the runners-up's room down to one runner-up's, the table no wider
    from app.app_pages.try_it import OTHERS_MIN_PX

    flagged = table(result("unfamiliar (unlike the training images); unsure (44%)", "Melanoma", 0.44),
                    ["data:,"] * 3)
    note = table_widths(flagged)  # "Naevus (benign) 10%" fits in less than the column: the rest goes to the note
    assert note["others"] == CELL_CHAR_PX * len("Naevus (benign) 10%") + CELL_PAD_PX and sum(note.values()) == budget
    assert note["note"] == TABLE_WIDTHS["note"] + TABLE_WIDTHS["others"] - note["others"]
    flagged.loc[0, "others"] = "Seborrhoeic keratosis 30%, Melanoma 22%"  # cut either way: one runner-up is shown
    assert table_widths(flagged)["others"] == OTHERS_MIN_PX
    flagged["others"] = "Melanoma 9%"  # runners-up that need less than OTHERS_MIN_PX give no more than that floor
    assert table_widths(flagged)["others"] == OTHERS_MIN_PX
    short = table(result("unfamiliar (noise)", "Melanoma", 0.6), ["data:,"] * 3)  # fits: nothing moves
    assert table_widths(short) == {c: TABLE_WIDTHS[c] for c in short.columns}


def test_a_run_images_note_leaves_out_a_label_the_row_already_shows():
    """"training image of this run, labelled granite" was cut at 1280 px on a granite row: a batch row's short reason
    gives the run's label only where it differs from the row's true class (its folder's, shown in the row); the
    CSV's longer reason keeps it."""
    from app.app_pages.try_it import table
    from engine.predict import Prediction, Predictor, own_short_words

    def answer(own_class, own="training", copy=False, unsure=False, p=0.9):
        return Prediction(top=[("granite", p), ("schist", 1 - p)], probs=[p, 1 - p], unsure=unsure, unfamiliar=False,
                          distance=None, own=own, own_copy=copy, own_class=own_class)

    why = Predictor.short_reason
    assert own_short_words("training", False, "granite") == "run's training image, labelled granite"
    assert own_short_words(None) == ""
    assert why(answer("granite"), "granite") == "run's training image"  # 20 characters: no cut at 160 px
    assert why(answer("granite"), "basalt") == "run's training image, labelled granite"  # news: kept
    assert why(answer("granite")) == "run's training image, labelled granite"  # no folder class
    assert why(answer(None), "granite") == "run's training image"
    assert why(answer("granite", "validation", True, True, 0.41), "granite") == \
        "unsure (41%); copy of a validation image"
    assert why(answer("granite", own=None), "granite") == ""

    def row(true, own_class, top):
        return {"path": "rocks/granite/g1.png", "true": true, "why": why(answer(own_class), true), "top": top}

    sure = [("granite", 0.9), ("schist", 0.1)]
    missed = row("schist", "schist", [("granite", 0.95), ("schist", 0.05)])  # its own image, missed, sure
    shown = table(type("Result", (), {"rows": [row("granite", "granite", sure), row("basalt", "granite", sure),
                                                 missed]})())
    assert sorted(shown["note"]) == ["run's training image",  # the basalt row's answer, granite at 90%: sure
                                     "run's training image, labelled granite; wrong, though sure",
                                     "run's training image; wrong, though sure"]  # it said only the first before


def test_the_file_column_shows_the_files_name_at_1280_px():
    """A zip's wrapper folder is left out, and a long path keeps its end: the 140 px column showed
    "my_pets/train/birds/birds_" and no file name."""
    from app.app_pages.try_it import FILE_CHARS, shown_paths

    paths = ["my_pets/train/birds/birds_012.jpg", "my_pets/val/cats/c1.png", "my_pets/test.jpg"]
    shown = shown_paths(paths)
    assert shown == ["…/birds/birds_012.jpg", "val/cats/c1.png", "test.jpg"]
    assert shown_paths(["x/a_very_long_file_name_from_a_camera.jpg", "y/b.jpg"]) == ["…ame_from_a_camera.jpg", "y/b.jpg"]
    assert all(len(s) <= FILE_CHARS for s in shown)
    assert shown_paths(["a.png", "b.png"]) == ["a.png", "b.png"] and shown_paths([]) == []
    assert shown_paths(["only/one.png"]) == ["one.png"], "one file in a folder: the folder is the wrapper"
    same = shown_paths(["pets/train/birds/birds_012.jpg", "pets/valid/birds/birds_012.jpg", "pets/val/cats/c.jpg"])
    assert same == ["train/…/birds_012.jpg", "valid/…/birds_012.jpg", "val/cats/c.jpg"], "the split tells them apart"
    # a camera's numbering in every class folder: "train/…/train_10.jpg" twice hid which sign it was
    signs = shown_paths(["signs/train/Stop sign/train_10.jpg", "signs/train/Give way/train_10.jpg",
                         "signs/train/Speed limit/train_10.jpg", "signs/val/Stop sign/val_1.jpg"])
    assert signs == ["…top sign/train_10.jpg", "…Give way/train_10.jpg", "…ed limit/train_10.jpg",
                     "…/Stop sign/val_1.jpg"], signs
    # a skipped file is named as the answered ones: without the wrapper they share, whole otherwise
    from app.state import without_wrapper, wrapper_folders

    wrapper = wrapper_folders(["pets/bird/b1.jpg", "pets/cat/c1.jpg"])
    assert wrapper == ["pets"] and without_wrapper("pets/bird/broken.jpg", wrapper) == "bird/broken.jpg"
    assert without_wrapper("elsewhere/notes.txt", wrapper) == "elsewhere/notes.txt"
    assert without_wrapper("pets", wrapper) == "pets" and without_wrapper("x.txt", []) == "x.txt"


def test_the_runs_own_images_are_recognised_one_by_one_and_in_a_zip(run):
    """A copy of one of the run's images (same pixels once decoded) is named as such: alone, and as
    part of a zip, where the accuracy over them is said not to be a test when training images are in."""
    at = open_page(run)
    at.radio(key="try_source").set_value("Upload images").run()  # the page keeps the last source chosen
    at.file_uploader(key="try_files").set_value([("red 0.png", png(tiny_image("red", 0)), "image/png")])
    at.run()
    no_problems(at)
    said = texts(at.caption) + texts(at.warning)
    (split,) = {m.group(1) for t in said for m in [re.search(r"This is one of the run's (\w+) images", t)] if m}
    bigger = io.BytesIO()
    tiny_image("red", 0).resize((96, 96), Image.Resampling.BICUBIC).save(bigger, "JPEG", quality=90)
    at.file_uploader(key="try_files").set_value([("red 0 large.jpg", bigger.getvalue(), "image/jpeg")]).run()
    said = texts(at.caption) + texts(at.warning)
    assert any(f"This looks like a resized or re-saved copy of one of the run's {split} images" in t for t in said), \
        (split, said)
    at.radio(key="try_source").set_value("A zip of images").run()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for c in TINY_CLASSES:
            for i in range(20):  # the whole dataset, out of the zip it came in
                zf.writestr(f"{c}/{i}.png", png(tiny_image(c, i)))
        zf.writestr("red/0 large.jpg", bigger.getvalue())  # and one saved again, larger
    at.file_uploader(key="try_zip").set_value(("my copy.zip", buf.getvalue(), "application/zip")).run()
    no_problems(at)
    (note,) = [i for i in texts(at.info) if "the run's own" in i]
    assert re.match(r"61 of these 61 images are the run's own \(\d+ training, \d+ validation, \d+ test; 1 of them a "
                    r"resized or re-saved copy\): the model learned from its training images, so an accuracy over "
                    r"them is not a test", note), note
    (df,) = [d.value for d in at.dataframe if "confidence" in d.value.columns]
    assert df["note"].str.contains(r"(?:run's|copy of a) (?:training|validation|test) image").all()
    assert not df["note"].str.contains("labelled").any(), "each label is its folder's, in the true class column"
    assert set(df["right"]) <= {"✓", "✗"}, "each answer marked right or wrong against its folder"
    assert any(re.match(r"Without the run's training images: accuracy \d+\.\d%, balanced accuracy \d+\.\d% "
                        r"\(\d+ images?\)\.$", c) for c in texts(at.caption)), texts(at.caption)


def test_top_k_chart_is_a_pure_builder_with_bars_sorted_by_rank_and_the_threshold_rule():
    from app.charts import topk_chart, topk_frame

    df = topk_frame([("dog", 0.7), ("cat", 0.2), ("bird", 0.1)], "Fine-tuned")
    assert list(df["rank"]) == [1, 2, 3] and list(df["class"]) == ["dog", "cat", "bird"]
    spec = topk_chart(df, "Fine-tuned", threshold=0.5).to_dict()
    bars = spec["layer"][0]
    assert bars["mark"]["type"] == "bar" and bars["encoding"]["x"]["scale"]["domain"] == [0, 1]
    # the same ticks in every chart, an odd count whose thinning keeps 0% and 100% (two compared charts read
    # 0-80% and 0-100%: Vega dropped every other of its own six labels in the narrower one)
    ticks = bars["encoding"]["x"]["axis"]["values"]
    assert ticks[0] == 0 and ticks[-1] == 1 and len(ticks) % 2 == 1 and ticks[::2][-1] == 1
    # an explicit order: Vega-Lite drops a field sort on the axis the bars share with their labels
    assert bars["encoding"]["y"]["sort"] == ["dog", "cat", "bird"]
    shuffled = topk_chart(topk_frame([("dog", 0.7), ("cat", 0.2), ("bird", 0.1)], "x").iloc[[2, 0, 1]]).to_dict()
    assert shuffled["layer"][0]["encoding"]["y"]["sort"] == ["dog", "cat", "bird"], "by rank, not row order"
    assert all(not isinstance(layer["encoding"]["y"].get("sort"), dict) for layer in (spec["layer"][0], spec["layer"][2]))
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["bar", "rule", "text"], \
        "the unsure threshold, under the percentages (a bar ending at the line kept its figure crossed out)"
    assert spec["title"] == {"text": "Fine-tuned", "anchor": "start", "frame": "bounds"}, "whole in a narrow chart"
    long = topk_chart(df, "WiSE-FT mix at alpha 0.00 (the starting model, pruned)").to_dict()["title"]["text"]
    assert long == ["WiSE-FT mix at alpha 0.00 (the", "starting model, pruned)"], "on lines, not cut at the column"
    other = topk_chart(df, "Pruning demo (ResNet-18) on sample textures: fine-tuned").to_dict()["title"]["text"]
    assert other == ["Pruning demo (ResNet-18) on", "sample textures: fine-tuned"], "at 34 characters: 'on sa…'"
    padded = topk_chart(df, "Fine-tuned", lines=2).to_dict()["title"]["text"]
    assert padded == ["Fine-tuned", " "], "beside a two-line title, its bars at the same height"
    narrow = topk_chart(df, "Fine-tuned", threshold=0.5, words_on_axis=False).to_dict()
    assert narrow["layer"][0]["encoding"]["x"]["title"] == "Probability", "side by side: the page says the rest"
    assert bars["encoding"]["x"]["title"] == "Probability (red dashes: unsure under 50%)", "the rule is named"
    assert len(topk_chart(df).to_dict()["layer"]) == 2, "no rule without a threshold"


def test_each_model_is_offered_once_under_the_name_of_what_it_is():
    """An adversarial run offered "Fine-tuned (end of training)" and "Adversarially fine-tuned": one model
    under two names, which a new user compared; a best epoch that is the last one is the same model too."""
    from app.app_pages.try_it import offered_models
    from engine.predict import VARIANTS, variant_label

    history = [{"epoch": 1, "val_acc": 0.5}, {"epoch": 2, "val_acc": 0.7}]
    every = {v: variant_label(v, adversarial=True) for v in VARIANTS}  # as available_variants gives them
    got = offered_models(every, {"history": history})
    assert list(got) == ["fine_tuned", "wise", "structured"], got
    assert got["fine_tuned"] == "Adversarially fine-tuned (end of training)"
    earlier = offered_models(every, {"history": [*history, {"epoch": 3, "val_acc": 0.6}]})
    assert "best" in earlier, "a best epoch before the last is its own model"
    plain = {k: v for k, v in VARIANTS.items() if k != "adversarial"}
    assert offered_models(plain, {"history": history})["fine_tuned"] == VARIANTS["fine_tuned"]


def test_the_comparison_opens_on_the_model_the_first_one_is_measured_against():
    from app.app_pages.try_it import comparison_default

    every = {"fine_tuned": "", "best": "", "wise": ""}
    assert comparison_default(every, ("wise", 0.6)) == ("fine_tuned", 1.0), "a mix against its fine-tuned end"
    assert comparison_default(every, ("wise", 1.0)) == ("wise", 0.0), "the fine-tuned end against the start"
    assert comparison_default(every, ("fine_tuned", None)) == ("wise", 0.0)
    assert comparison_default({"fine_tuned": "", "best": ""}, ("fine_tuned", None)) == ("best", 0.0)
    assert comparison_default({"fine_tuned": "", "best": ""}, ("best", None)) == ("fine_tuned", 0.0)
    assert comparison_default({"fine_tuned": ""}, ("fine_tuned", None)) == ("fine_tuned", 0.0), "nothing else"
    # a run with one model: the newest other run trained alike, not the same model twice
    assert comparison_default({"fine_tuned": ""}, ("fine_tuned", None), ["run:b", "run:a"]) == ("run:b", 0.0)
    assert comparison_default(every, ("fine_tuned", None), ["run:b"]) == ("wise", 0.0), "the run's own first"


def test_a_refresh_keeps_the_images_and_the_zip_until_the_user_clears_them(run):
    """Try it's inputs live in the user's draft (the files in the uploads folder): a new session, as
    after a refresh, answers for them again, opens on the same source, and Clear or emptying the
    uploader forgets them."""
    at = open_page(run)
    at.radio(key="try_source").set_value("Upload images").run()  # an earlier test may have left the zip chosen
    at.file_uploader(key="try_files").set_value([("my cat.png", png(tiny_image("red", 901, 40)), "image/png")])
    at.run()
    no_problems(at)
    assert len(at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")) == 1

    at.toggle(key=[t.key for t in at.toggle if t.key.startswith("try_explain_")][0]).set_value(True).run()
    no_problems(at)
    maps = len(at.image)

    again = open_page(run)  # a refresh: a new session, the uploader empty
    assert len(again.get("arrow_vega_lite_chart") or again.get("vega_lite_chart")) == 1, "answered again"
    assert any("Kept from before: my cat.png" in c for c in texts(again.caption)), texts(again.caption)
    assert [t.value for t in again.toggle if t.key.startswith("try_explain_")] == [True], "its attributions too"
    assert len(again.image) == maps
    again.toggle(key=[t.key for t in again.toggle if t.key.startswith("try_explain_")][0]).set_value(False).run()
    assert [t.value for t in open_page(run).toggle if t.key.startswith("try_explain_")] == [False], "and off again"
    uploads = engine().data_dir / "uploads"
    kept_files = {p.name for p in uploads.iterdir()}
    again.button(key="try_clear_images").click().run()
    no_problems(again)
    assert not (again.get("arrow_vega_lite_chart") or again.get("vega_lite_chart"))
    assert not (open_page(run).get("arrow_vega_lite_chart") or []), "cleared for good"
    assert len(kept_files - {p.name for p in uploads.iterdir()}) == 1, "the cleared image left the server"

    at = open_page(run)
    at.file_uploader(key="try_files").set_value([("dog.png", png(tiny_image("red", 902, 40)), "image/png")]).run()
    at.file_uploader(key="try_files").set_value([]).run()  # the uploader's x
    no_problems(at)
    assert not any("Kept from before" in c for c in texts(at.caption)), "removed files do not come back"
    assert not (open_page(run).get("arrow_vega_lite_chart") or [])

    at.file_uploader(key="try_files").set_value([("owl.png", png(tiny_image("red", 903, 40)), "image/png")]).run()
    at.radio(key="try_source").set_value("A zip of images").run()
    at.radio(key="try_source").set_value("Upload images").run()  # the uploader is redrawn empty
    assert any("Kept from before: owl.png" in c for c in texts(at.caption)), "switching away is no removal"
    at.switch_page("app_pages/results.py").run()
    at.switch_page(PAGE).run()  # another page and back: the uploader is empty again, the images are kept
    no_problems(at)
    assert any("Kept from before: owl.png" in c for c in texts(at.caption)), "a page visit is no removal"
    at.file_uploader(key="try_files").set_value([("scan.jpg", b"not a jpeg", "image/jpeg")]).run()
    assert any("scan.jpg" in t for t in texts(at.error) + texts(at.warning)), "the bad file is named"
    assert any("Kept from before: owl.png" in c for c in texts(open_page(run).caption)), \
        "a file that cannot be read replaces nothing: a refresh still brings back the kept image"
    at.file_uploader(key="try_files").set_value([]).run()  # the uploader's x on the failed file
    assert any("Kept from before: owl.png" in c for c in texts(at.caption)), "removing it forgets nothing either"
    at.file_uploader(key="try_files").set_value([("scan.jpg", b"not a jpeg", "image/jpeg")]).run()
    at.file_uploader(key="try_files").set_value([("bee.png", png(tiny_image("red", 904, 40)), "image/png")]).run()
    at.file_uploader(key="try_files").set_value([]).run()  # a good file replaced the failed one, then its x
    assert not any("Kept from before" in c for c in texts(at.caption)), "the good file replaced the kept: x forgets it"
    at.file_uploader(key="try_files").set_value([("owl.png", png(tiny_image("red", 903, 40)), "image/png")]).run()
    at.radio(key="try_source").set_value("A zip of images").run()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for c in TINY_CLASSES:
            zf.writestr(f"{c}/0.png", png(tiny_image(c, 910)))
    at.file_uploader(key="try_zip").set_value(("field batch.zip", buf.getvalue(), "application/zip")).run()
    no_problems(at)
    again = open_page(run)
    assert again.radio(key="try_source").value == "A zip of images", "the refresh opens on the zip"
    assert any("Kept from before: field batch.zip" in c for c in texts(again.caption))
    assert any("3 images" in m for m in texts(again.markdown)), "the kept zip is predicted again"
    again.button(key="try_clear_zip").click().run()
    again.file_uploader(key="try_zip").set_value(("field batch.zip", buf.getvalue(), "application/zip")).run()
    assert any("Kept from before: field batch.zip" in c for c in texts(open_page(run).caption)), \
        "the same zip again (its answer cached) is kept again"
    again.file_uploader(key="try_zip").set_value(None).run()  # the uploader's x: forgotten
    assert not any("Kept from before" in c for c in texts(open_page(run).caption))
    again.radio(key="try_source").set_value("Upload images").run()
    no_problems(again)


def test_a_run_that_learnt_nothing_is_said_to_answer_by_guessing(run):
    """Train and Results say a run at the level of guessing learnt nothing; Try it says it too, above
    answers that can look sure (a new user got a green '100%' from such a run)."""
    import json
    from pathlib import Path

    path = Path(engine().run_record(run).run_dir) / "summary.json"
    before = path.read_text()
    try:
        summary = json.loads(before)
        path.write_text(json.dumps({**summary, "test_acc": 1 / len(summary["classes"])}))
        at = open_page(run)
        no_problems(at)
        assert any("no better than guesses" in w and "learnt nothing" in w for w in texts(at.warning)), texts(at.warning)
        # above guessing by no more than luck on its test images: its answers *may* be guesses
        from scipy.stats import binomtest

        counts = summary["data_report"]["split_counts"]["test"]
        n, k = sum(counts.values()), len(summary["classes"])
        right = next(r for r in range(n + 1) if r / n > 1 / k + 0.02 and r > max(counts.values()))
        assert binomtest(right, n, max(1 / k, max(counts.values()) / n), alternative="greater").pvalue >= 0.05
        path.write_text(json.dumps({**summary, "test_acc": right / n}))
        warned = texts(open_page(run).warning)
        assert any("may be no better than guesses" in w and "not clearly" in w for w in warned), warned
        path.write_text(json.dumps({**summary, "test_acc": 1.0}))  # a run that learnt: no such warning
        assert not any("no better than guesses" in w for w in texts(open_page(run).warning))
    finally:
        path.write_text(before)


def test_two_runs_answer_side_by_side(run):
    """A teacher compares a plain run with another run on one photo: "Compare with" offers the fine-tuned
    model of every other finished run on the same classes at the same size (not one on other classes),
    labelled by its run, and both answer, with their own attributions; a second run that learnt nothing is
    said to, as the first would be."""
    rec = engine().run_record(run)
    source = rec.config["data"]["source"]
    other = finished_run(engine(), tiny_config(source, "train.epochs=1", "train.threads=1", "eval.ood=false",
                                               "optim.lr=0.05", *RANDOM_RESNET18))
    two = write_tiny_zip(Path(engine().data_dir) / "two.zip", per_class=20, classes=TINY_CLASSES[:2])
    two_classes = engine().save_upload(two.read_bytes(), ".zip")  # as the Data page keeps an upload
    elsewhere = finished_run(engine(), tiny_config(two_classes, "train.epochs=1", "train.threads=1",
                                                   "eval.ood=false", *RANDOM_RESNET18))
    try:
        at = open_page(run)
        at.toggle(key="try_compare").set_value(True).run()
        no_problems(at)
        picker = at.selectbox(key=f"try_variant_b_{run}")
        offered = [o for o in picker.options if o.endswith(": fine-tuned")]
        assert len(offered) == 1 and "(lr 0.05)" in offered[0], picker.options  # not the run on two classes
        picker.set_value(f"run:{other}").run()
        at.radio(key="try_source").set_value("Upload images").run()
        at.file_uploader(key="try_files").set_value([("stripes.png", png(tiny_image("stripes", 7, 40)), "image/png")])
        at.run()
        no_problems(at)
        charts_drawn = at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")
        name = engine().run_record(other).name
        import json

        heads = [json.loads(c.proto.spec)["title"]["text"] for c in charts_drawn]
        heads = [[h] if isinstance(h, str) else h for h in heads]
        titles = [" ".join(line for line in h if line.strip()) for h in heads]
        assert len(charts_drawn) == 2 and titles.count(f"{name}: fine-tuned") == 1, titles  # by its name, and the model
        assert len(heads[0]) == len(heads[1]), "side by side, on as many title lines: their bars at one height"
        at.toggle(key=[t.key for t in at.toggle if t.key.startswith("try_explain_")][0]).set_value(True).run()
        no_problems(at)
        captions = [c for img in at.image for c in img.captions if c != "low → high influence"]
        assert sum(c.startswith(f"{name}: fine-tuned: why ") for c in captions) == 1, captions  # its own map
        path = Path(engine().run_record(other).run_dir) / "summary.json"
        summary = json.loads(path.read_text())
        for acc, said in ((1.0, False), (1 / len(summary["classes"]), True)):  # a run that learnt, one at guessing
            # both splits: a validation accuracy clearly above guessing clears a small test split's (a run that learnt
            # on one CPU's kernels and not on another's read differently)
            path.write_text(json.dumps({**summary, "test_acc": acc, "val_acc": acc}))
            at.run()
            warned = any(w.startswith(f"{name}: ") and "no better than guesses" in w for w in texts(at.warning))
            assert warned is said, f"a second run at guessing is said to be, as the first would be ({acc})"
    finally:
        for r in (other, elsewhere):
            engine().delete_run(r)
        at = open_page(run)
        at.toggle(key="try_compare").set_value(False).run()  # as the module's other tests expect


def test_an_answer_in_reduced_precision_says_why_the_exported_file_can_differ():
    """49.5% in Try it, 48.8% from the exported ONNX file of the same model: bf16 against float32."""
    import torch

    from app.app_pages.try_it import precision_words

    assert precision_words(None) == ""
    said = precision_words(torch.bfloat16)
    assert said.startswith(", in bfloat16 (shorter numbers, faster here) as the run was evaluated") and \
        "compute in float32 (full precision), which can move a percentage by about a point" in said
    assert precision_words(torch.bfloat16, brief=True) == ", in bfloat16", "under the later images of a batch"
    assert "as the run was evaluated" not in precision_words(torch.bfloat16, as_evaluated=False), "another device's"


def test_a_models_long_label_is_shortened_in_its_picker_and_shown_whole_under_it():
    """A third of the page wide, the picker cut "Best epoch (highest validation accuracy; on a tie, lowest ..."
    mid-word; it now shows the name, and the explanation in brackets goes under it."""
    from app.app_pages.try_it import short_label
    from engine.predict import VARIANTS

    assert short_label(VARIANTS["best"]) == "Best epoch"
    assert short_label("Adversarially fine-tuned (end of training)") == "Adversarially fine-tuned"
    assert short_label("photos, seed 2 (3 Dec 10:00): fine-tuned") == "photos, seed 2 (3 Dec 10:00): fine-tuned"
    assert short_label("WiSE-FT mix at alpha") == "WiSE-FT mix at alpha"
    # under the picker: what the box leaves out, not the name again ("Smaller" over "Smaller (channel-pruned,
    # faster)" read twice)
    from app.app_pages.try_it import label_detail

    assert label_detail(VARIANTS["structured"]) == "Channel-pruned, faster"
    assert label_detail(VARIANTS["best"]) == "Highest validation accuracy; on a tie, lowest validation loss"
    assert label_detail("WiSE-FT mix at alpha") == ""
    long = "photos from the field, seed 2 (3 Dec 10:00): fine-tuned"
    assert label_detail(long) == long, "a long label without an explanation is shown whole"


def test_a_mix_at_guessing_picked_in_try_it_says_so():
    """A new user's pruned WiSE-FT run answered one class for every image at alpha 0, unwarned: the run's
    warning is the fine-tuned model's, and that one had learnt."""
    from engine.predict import mix_warning

    summary = {"classes": ["a", "b", "c"], "val_acc": 0.8, "test_acc": 0.8,
               "wise_curve": [{"alpha": 0.0, "val_acc": 1 / 3}, {"alpha": 0.5, "val_acc": 0.9},
                              {"alpha": 1.0, "val_acc": 0.8}]}
    said = mix_warning(summary, 0.0)
    assert said.startswith("At alpha 0.00 the WiSE-FT mix's validation accuracy (33.3%) is at the level of guessing")
    assert said.endswith("Its answers are no better than guesses, however sure they look.")
    assert mix_warning(summary, 0.5) is None and mix_warning(summary, 1.0) is None
    assert mix_warning(summary, 0.37) is None, "off the curve: nothing measured to judge"


def test_a_picked_models_own_warning_is_said_once_in_the_dashboards_words():
    """Try it's warnings beyond the run's own: a mix at alpha 1 is the fine-tuned model, whose warning the page
    already gave (it read twice); a smaller model at guessing names its settings by their labels, without the
    command line's keys; a mix at guessing says so, once for two pickers on it."""
    from app.app_pages.try_it import picked_cautions

    summary = {"classes": ["a", "b", "c"], "val_acc": 1 / 3, "test_acc": 1 / 3,
               "structured": {"val_acc": 1 / 3, "test_acc": 1 / 3},
               "wise_curve": [{"alpha": 0.0, "val_acc": 1 / 3}, {"alpha": 1.0, "val_acc": 1 / 3}]}
    assert picked_cautions(summary, [("wise", 1.0)]) == [] and picked_cautions(summary, [("fine_tuned", None)]) == []
    (small,) = picked_cautions(summary, [("structured", None)])
    assert small.startswith("The smaller (channel-pruned) model's") and "pruning." not in small
    assert "('Structured: share of channels removed')" in small, small
    (mix,) = picked_cautions(summary, [("wise", 0.0), ("wise", 0.0)])
    assert mix.startswith("At alpha 0.00 the WiSE-FT mix's validation accuracy (33.3%)")


def test_the_csv_download_opens_in_a_spreadsheet_with_the_users_names_and_lists_skipped_files():
    """Excel shows "pÃªche" for a CSV without a byte-order mark; a skipped file had no line at all."""
    import pandas as pd

    from app.app_pages.try_it import csv_text
    from engine.data import SkippedFile
    from engine.predict import FolderResult

    result = FolderResult(["pêche", "Red apple"], "m", skipped=[SkippedFile("notes.png", "not a readable image")],
                          rows=[{"path": "a.png", "true": "pêche", "top": [("pêche", 0.9)], "low_confidence": False,
                                 "reason": ""}])
    text = csv_text(result, 1)
    assert text.startswith("\ufeffpath,answered,true_class,")
    table = pd.read_csv(io.BytesIO(text.encode("utf-8")))
    assert list(table["path"]) == ["a.png", "notes.png"] and table["true_class"][0] == "pêche"
    assert table["note"][1] == "not answered: not a readable image"
    assert list(table["answered"]) == [True, False], "a spreadsheet filters the files that got no answer"


def test_try_it_points_to_a_pruning_runs_better_smaller_model():
    """A teacher's Try it opened on a pruning run's full-size model (27.3% test) while its smaller model had 67.2%:
    a line under the picker says so and names the picker's entry."""
    from app.app_pages.try_it import smaller_hint

    variants = {"fine_tuned": "Fine-tuned", "structured": "Smaller (channel-pruned, faster)"}
    summary = {"structured": {"test_acc": 0.672, "test_acc_before": 0.273}}
    hint = smaller_hint(summary, variants, "fine_tuned")
    assert hint == ("This run's smaller model answered 67.2% of its test images right, against 27.3% for the "
                    "full-size model it was cut from: pick 'Smaller' above to try it."), hint
    assert smaller_hint(summary, variants, "structured") == "", "picked already"
    worse = {"structured": {"test_acc": 0.25, "test_acc_before": 0.273}}
    assert smaller_hint(worse, variants, "fine_tuned") == "", "the full-size model answers better: nothing to say"
    assert smaller_hint(summary, {"fine_tuned": "Fine-tuned"}, "fine_tuned") == "", "no smaller model offered"


def test_a_stopped_run_answers_with_its_best_epoch_so_far(run):
    """Results offers a stopped run's best-epoch weights; Try it now lets them answer too, says whose answers
    they are and how to get the final model (it listed finished runs only)."""
    import json
    import shutil

    from engine import predict, runs

    rec = engine().run_record(run)
    run_dir = Path(rec.run_dir)
    before = (run_dir / "summary.json").read_text()
    shutil.move(run_dir / "last.safetensors", run_dir / "last.kept")
    try:
        summary = json.loads(before)
        (run_dir / "summary.json").write_text(json.dumps({**summary, "status": "stopped"}))
        engine().store.set_status(run, "stopped", "Stopped after epoch 1 of 3.")
        runs._RUNS.clear()
        predict._PREDICTORS.clear()
        at = open_page(run)
        no_problems(at)
        says_stopped_best(at, "try_run", run, summary, "answers")
        options = at.selectbox(key=f"try_variant_a_{run}").options
        assert len(options) == 1 and options[0].startswith("Best epoch"), options  # its only model
        at.file_uploader(key="try_files").set_value([("mine.png", png(tiny_image("red", 654)), "image/png")])
        at.run()
        no_problems(at)
        assert len(at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")) == 1, "the best epoch answered"
    finally:
        shutil.move(run_dir / "last.kept", run_dir / "last.safetensors")
        (run_dir / "summary.json").write_text(before)
        engine().store.set_status(run, "finished", None)
        runs._RUNS.clear()
        predict._PREDICTORS.clear()


def test_a_sure_answer_says_how_often_such_answers_were_right_where_the_run_is_oversure(monkeypatch):
    """An ecologist's badgers were called deer at 83-94%: the bar alone read as a promise."""
    import app.components as components
    from app.app_pages.try_it import Shown, sure_caution

    def oversure(run_dir: str) -> dict:
        return {"classes": ["badger", "deer", "fox"], "test_acc": 0.76, "val_acc": 0.9,
                "data_report": {"split_counts": {"test": {"badger": 17, "deer": 17, "fox": 16},
                                                 "val": {"badger": 10, "deer": 10, "fox": 10}}},
                "test_confidence": {"from": [0.0, 0.5, 0.7, 0.9], "right": [0, 6, 10, 22],
                                    "images": [2, 8, 10, 30], "confidence": [0.4, 0.6, 0.8, 0.97]}}

    monkeypatch.setattr(components, "read_summary", oversure)
    model = Shown(None, "fine_tuned", None, "run", "fine-tuned")
    assert sure_caution(model, 0.93) == ("Answers this sure (90% or more) were right on 22 of 30 test images "
                                         "(73.3%): check this one before relying on it.")
    assert sure_caution(model, 0.93, brief=True) == "Answers this sure were right 73.3% of the time.", "a later one"
    assert sure_caution(model, 0.85) is None, "not a sure answer"
    assert sure_caution(Shown(None, "best", None, "run", "best"), 0.93) is None, "not the run's figures"
    monkeypatch.setattr(components, "read_summary", lambda run_dir: {**oversure(run_dir), "test_confidence": {
        "from": [0.0, 0.5, 0.7, 0.9], "right": [0, 6, 10, 29], "images": [2, 8, 10, 30],
        "confidence": [0.4, 0.6, 0.8, 0.97]}})
    assert sure_caution(model, 0.93) is None, "sure answers that held: nothing to say"


def test_try_it_flags_each_wrong_answer_given_with_high_confidence_in_a_labelled_zip():
    """A single 99% miss in a labelled zip had only its row's cross: a warning names it above the table, and its row's
    note says it (the table lists it last, least confident first)."""
    from streamlit.testing.v1 import AppTest

    def page():
        import streamlit as st

        from app.app_pages.try_it import batch_accuracy, table
        from engine.predict import FolderResult

        def row(path, true, top, p):
            return {"path": path, "true": true, "top": [(top, p), ("other", 1 - p)], "why": ""}

        res = FolderResult(["healthy", "rust"], "final", [
            row("leaves/rust/a long name from the field camera 1.jpg", "rust", "healthy", 0.993),
            row("leaves/rust/IMG 2.jpg", "rust", "rust", 0.97),
            row("leaves/healthy/IMG 3.jpg", "healthy", "rust", 0.6)])
        batch_accuracy(res)
        st.dataframe(table(res))

    at = AppTest.from_function(page).run()
    assert not at.exception
    (warned,) = [w.value for w in at.warning]
    assert warned.startswith("1 answer was wrong though the model was 90% sure or more: rust/a long name from the "
                             "field camera 1.jpg (rust, taken for healthy at 99%)."), "its whole name, not the table's"
    df = at.dataframe[0].value
    assert list(df["note"]) == ["", "", "wrong, though sure"], "least confident first; a 60% miss not flagged as sure"


def test_a_picture_several_times_the_training_pictures_size_is_said(run):
    """A geology instructor's 4096 x 3072 TIFF beside 640 x 480 training pictures was answered wrongly with only the
    generic "unfamiliar" flag; to a microscopist the size meant another magnification. A picture 3 or more times
    larger (or smaller) than the training pictures gets a line saying so; one of about their size does not."""
    from engine.predict import scale_words

    at = open_page(run)
    at.file_uploader(key="try_files").set_value([("big.png", png(tiny_image("red", 5, size=96)), "image/png"),
                                                  ("same.png", png(tiny_image("red", 6, size=40)), "image/png")])
    at.run()
    no_problems(at)
    said = [c for c in texts(at.caption) if c.startswith(":material/zoom_in:")]
    assert said == [":material/zoom_in: This picture is 96 x 96 pixels, about 4 times as large as the training "
                    "pictures (typically 24 x 24). Every picture is shrunk to the same size, so if it also shows its "
                    "subject larger or smaller than they do (another magnification, distance or zoom), the model sees "
                    "details at a scale it did not learn."], texts(at.caption)
    shape = {"long": 640, "short": 480}
    assert scale_words((100, 80), shape).startswith("This picture is 100 x 80 pixels, about 1/6 the size of the "
                                                    "training pictures (typically 640 x 480).")
    assert scale_words((1600, 1200), shape) is None and scale_words((170, 170), shape) is None, "within 3x"
    assert scale_words(None, shape) is None and scale_words((4096, 3072), {}) is None, "either unknown"
    # a zip's pictures too, named as the table names them: their sizes are read as they are decoded
    from engine.predict import batch_scale_words

    at.radio(key="try_source").set_value("A zip of images").run()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("batch/big one.png", png(tiny_image("red", 7, size=96)))
        zf.writestr("batch/same.png", png(tiny_image("red", 8, size=30)))
        zf.writestr("batch/tiny.png", png(tiny_image("green", 9, size=6)))
    at.file_uploader(key="try_zip").set_value(("sizes.zip", buf.getvalue(), "application/zip")).run()
    no_problems(at)
    said = [c for c in texts(at.caption) if c.startswith(":material/photo_size_select_large:")]
    assert said == [":material/photo_size_select_large: Of your 3 pictures, 2 are 3 or more times larger or smaller "
                    "than the training pictures (typically 24 x 24), by the shorter side: big one.png (4 times as "
                    "large), tiny.png (1/4 the size). Every picture is shrunk to the same size, so where one also "
                    "shows its subject larger or smaller than they do (another magnification, distance or zoom), the "
                    "model sees details at a scale it did not learn."], texts(at.caption)
    rows = [{"size": (96, 96)}] * 5 + [{"size": (24, 24)}, {}]
    assert batch_scale_words(rows, list("abcdefg"), {"long": 24, "short": 24}).count("(4 times as large)") == 3 and \
        "and 2 more." in batch_scale_words(rows, list("abcdefg"), {"long": 24, "short": 24})
    assert batch_scale_words(rows[5:], ["f", "g"], {"long": 24, "short": 24}) is None, "their size, or unknown"
    assert batch_scale_words(rows, list("abcdefg"), {}) is None
    # a file of two pages, uploaded alone: that its first page is answered is said under it, not only in the closed
    # "What was done to the image"
    at.radio(key="try_source").set_value("Upload images").run()
    two = io.BytesIO()
    tiny_image("red", 11).save(two, format="TIFF", save_all=True, append_images=[tiny_image("green", 12)])
    at.file_uploader(key="try_files").set_value([("Brief zwei Seiten.tif", two.getvalue(), "image/tiff")]).run()
    no_problems(at)
    assert ":material/auto_stories: Page 1 of its 2 used (the model answers one picture; save another page as a file " \
           "of its own to try it)." in texts(at.caption), texts(at.caption)


def test_a_flagged_answer_on_a_wide_pictures_middle_square_points_to_its_ends():
    """A bioacoustics researcher's call near a clip's end was "great_tit (74%)" on the middle square and "cuckoo
    (95%)" on the right one, and nothing suggested trying it: under a flagged answer on the middle square of a wider
    or taller picture, a line says how much of it was answered and that an end can be chosen."""
    from streamlit.testing.v1 import AppTest

    def page():
        import io as io_

        import streamlit as st
        from PIL import Image as Image_

        from app.app_pages.try_it import crop_options, digest, other_part_hint

        def png_of(size):
            buf = io_.BytesIO()
            Image_.new("RGB", size).save(buf, format="PNG")
            return buf.getvalue()

        for size, crop_at in (((800, 200), 0.5), ((200, 400), 0.5), ((800, 200), 1.0), ((200, 200), 0.5)):
            data = png_of(size)
            tag = digest(data)
            st.caption(str(other_part_hint(tag, data, crop_options(tag, data), crop_at)))

    at = AppTest.from_function(page).run()
    assert not at.exception
    assert texts(at.caption) == [
        "Only the middle square of this picture was answered (25% of its width). If what tells the classes apart "
        "lies nearer one end, choose the left or right part under the picture.",
        "Only the middle square of this picture was answered (50% of its height). If what tells the classes apart "
        "lies nearer one end, choose the top or bottom part under the picture.",
        "None", "None"], "an end chosen already, or a square picture: nothing to point to"
