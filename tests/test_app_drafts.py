"""The dashboard keeps the user's work and never misleads (AppTest):

- the next run being prepared (dataset, OOD set, method settings) survives a refresh (a new
  session) and a server restart (a new Engine on the same folder);
- earlier uploads are offered again after a restart, with their own names, and can be deleted;
- Compare runs shows the dataset of each run and flags runs on different data;
- a stopped run's Results show the epochs it finished, and its settings can be used again;
- configs and model cards name uploads by content hash and the user's file name, never by a
  server path or the server's file name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import time
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

from conftest import write_tiny_zip
from engine.config import RunConfig
from engine.paths import resolve_path
from test_app import (RUN_TIMEOUT, configure_tiny, engine, new_app, no_problems, png, start_run, studio,  # noqa: F401
                      texts, tiny_bytes, upload_zip, zip_bytes)

OOD_BYTES = zip_bytes({f"{c}/{i}.png": png(c, i) for c in ("red", "green", "stripes") for i in range(2)})


def restart_server() -> None:
    """What a server restart does to the app: the engine is made again on the same data folder."""
    engine().shutdown(5)
    st.cache_resource.clear()


def upload_ood(at, data: bytes = OOD_BYTES, name: str = "street photos.zip"):
    at.file_uploader[1].set_value((name, data, "application/zip")).run()
    no_problems(at)
    return at


def prepared_draft(tiny_bytes):
    """A session that uploaded a dataset and an OOD set and switched pruning on with a setting changed."""
    at = new_app()
    upload_zip(at, tiny_bytes, "my digits.zip")
    upload_ood(at)
    configure_tiny(at, epochs=3)
    at.toggle(key="w:pruning.enabled").set_value(True).run()
    no_problems(at)
    return at


def assert_same_draft(at, before) -> None:
    cfg = at.session_state["cfg"]
    assert cfg == before, "every setting of the draft is back"
    assert cfg.data.source_name == "my digits.zip" and cfg.data.ood_source_name == "street photos.zip"
    assert cfg.methods["pruning"].enabled and cfg.train.epochs == 3
    assert at.session_state["dataset"].label == "my digits.zip"
    assert "Active dataset: my digits.zip" in texts(at.subheader)
    assert any("OOD set in use: **street photos.zip" in s for s in texts(at.success))


def test_a_refresh_and_a_restart_give_back_the_dataset_ood_set_and_settings(studio, tiny_bytes):
    at = prepared_draft(tiny_bytes)
    before = at.session_state["cfg"]

    refreshed = new_app()  # a page refresh: a new session, nothing in st.session_state
    assert_same_draft(refreshed, before)
    # the browser first draws a number field at its widget's default: that is the saved value, not the minimum
    # (seeded through session state, Epochs showed "1" for a moment after every refresh)
    refreshed.switch_page("app_pages/model.py").run()
    epochs = refreshed.number_input(key="w:train.epochs")
    assert epochs.value == 3 and epochs.proto.default == 3, epochs.proto.default
    refreshed.switch_page("app_pages/train.py").run()
    no_problems(refreshed)
    next_run = " ".join(texts(refreshed.markdown))
    assert "my digits.zip" in next_run and "Pruning" in next_run and "Bundled sample" not in next_run
    assert "OOD set **street photos.zip**" in next_run, next_run

    restart_server()
    after = new_app()
    assert_same_draft(after, before)


def test_a_refresh_keeps_an_upload_whose_zip_left_the_server_while_its_extracted_copy_is_held(studio, tiny_bytes,
                                                                                            monkeypatch):
    """A new user moved their uploaded zip off the server: after a refresh the Data page said it was no longer on
    the server and put the sample in use, though the studio still held its extracted images. It now reads them."""
    from engine import data, paths

    data.clear_cache()  # decoded by an earlier test's studio in this process, the zips would not be extracted here
    # earlier tests' studios in this process hold the same bytes: only this one's uploads are looked in
    monkeypatch.setattr(paths, "_UPLOAD_DIRS", [(studio / "uploads").resolve()])
    at = prepared_draft(tiny_bytes)
    before = at.session_state["cfg"]
    zips = sorted((studio / "uploads").glob("*.zip"))
    assert len(zips) == 2 and all((studio / "datasets" / z.stem[:24]).is_dir() for z in zips), "both were extracted"
    for z in zips:
        z.unlink()
    refreshed = new_app()
    assert_same_draft(refreshed, before)
    assert not any("no longer on this server" in s for s in texts(refreshed.warning) + texts(refreshed.info))
    assert "The zip itself is no longer on the server; the studio reads the images it extracted from it." in \
        texts(refreshed.caption), "said, not silent"
    from app.state import source_exists
    from engine.paths import upload_ref

    listed = [u["name"] for u in engine().store.list_uploads("") if source_exists(upload_ref(u["sha256"]))]
    assert sorted(listed) == ["my digits.zip", "street photos.zip"], "the Data page's earlier uploads keep them"


def refreshed_tab(at) -> AppTest:
    """A refresh of one browser tab: a new session whose address still carries the tab's token."""
    again = AppTest.from_file(at._script_path, default_timeout=120)
    again.query_params["tab"] = at.query_params["tab"]
    again.run()
    assert not again.exception, again.exception
    return again


def test_a_duplicated_tab_takes_a_token_of_its_own_and_a_refresh_keeps_it(monkeypatch):
    import app.state as state

    holders = {}
    monkeypatch.setattr(state, "_tab_holders", lambda: holders)
    monkeypatch.setattr(state, "_session_active", lambda sid: sid == "open tab")
    monkeypatch.setattr("streamlit.runtime.scriptrunner.get_script_run_ctx", lambda: type("C", (), {"session_id": "me"}))
    assert state.claim_tab_token("") != "", "no token in the address: a new one"
    assert state.claim_tab_token("0badc0de") == "0badc0de", "a refresh: nobody else holds it"
    holders["0badc0de"] = "open tab"
    duplicate = state.claim_tab_token("0badc0de")
    assert state.TAB_TOKEN.fullmatch(duplicate) and duplicate != "0badc0de", "another open tab holds it: a new one"
    holders["0badc0de"] = "closed tab"
    assert state.claim_tab_token("0badc0de") == "0badc0de", "the tab it came from is gone (a refresh)"


def test_two_tabs_keep_their_own_draft_across_a_refresh(studio, tiny_bytes, tmp_path):
    two_classes = write_tiny_zip(tmp_path / "two.zip", per_class=6, classes=("red", "green")).read_bytes()
    first = new_app()
    upload_zip(first, tiny_bytes, "first tab.zip")
    second = new_app()  # a new tab starts from the user's newest draft
    assert second.session_state["cfg"].data.source_name == "first tab.zip"
    second.file_uploader[0].set_value(("second tab.zip", two_classes, "application/zip")).run()
    no_problems(second)
    assert first.query_params["tab"] != second.query_params["tab"], "each tab has its own token in its address"

    again = refreshed_tab(first)
    assert again.session_state["cfg"].data.source_name == "first tab.zip", "not the other tab's dataset"
    assert "Active dataset: first tab.zip" in texts(again.subheader)
    assert again.query_params["tab"] == first.query_params["tab"], "a refresh keeps the tab's token"
    assert refreshed_tab(again).session_state["cfg"].data.source_name == "first tab.zip", "refreshed twice"
    assert refreshed_tab(second).session_state["cfg"].data.source_name == "second tab.zip"
    assert new_app().session_state["cfg"].data.source_name == "second tab.zip", \
        "a new tab: the newest draft (the second tab saved last)"


def test_earlier_uploads_are_offered_after_a_restart_and_can_be_used_or_deleted(studio, tiny_bytes, tmp_path):
    two_classes = write_tiny_zip(tmp_path / "two.zip", per_class=6, classes=("red", "green")).read_bytes()
    at = new_app()
    upload_zip(at, tiny_bytes, "first set.zip")
    at.file_uploader[0].set_value(("second set.zip", two_classes, "application/zip")).run()
    no_problems(at)
    assert at.session_state["cfg"].data.source_name == "second set.zip"
    listed_before = [(u["name"], u["created"]) for u in engine().store.list_uploads("")]
    uploads = {u["name"]: u["sha256"] for u in engine().store.list_uploads("")}
    at.button(key=f"use_dataset_{uploads['first set.zip'][:16]}").click().run()
    # the whole page follows at once: the line above the list and the list's marks (they lagged a click behind)
    assert [c for c in texts(at.caption) if c.startswith("In use: ")] == [
        "In use: **first set.zip** (kept on the server: no need to upload it again)."]
    rows = [m for m in texts(at.markdown) if m.startswith("**") and " · uploaded " in m]
    assert len(rows) == 2 and not any(" · last used " in m for m in texts(at.markdown)), \
        "Use keeps a dataset's date: it is the upload's, not the last use's"
    assert [r.endswith("*in use*") for r in rows] == [r.startswith("**first set.zip**") for r in rows]
    assert at.button(key=f"use_dataset_{uploads['first set.zip'][:16]}").disabled
    assert not at.button(key=f"use_dataset_{uploads['second set.zip'][:16]}").disabled, "one click back"
    assert [(u["name"], u["created"]) for u in engine().store.list_uploads("")] == listed_before, \
        "using an upload again keeps its upload date and its place in the list"
    at.run()  # the file still in the chooser (second set.zip) must not come back
    no_problems(at)
    assert at.session_state["cfg"].data.source_name == "first set.zip"

    restart_server()
    at = new_app()
    at.radio(key="w:data.kind").set_value("upload").run()
    no_problems(at)
    listed = " ".join(texts(at.markdown))
    assert "**first set.zip** · " in listed and "3 classes · 30 images" in listed and "*in use*" in listed
    assert "**second set.zip** · " in listed and "2 classes · 12 images" in listed
    at.button(key=f"use_dataset_{uploads['second set.zip'][:16]}").click().run()
    no_problems(at)
    assert "Active dataset: second set.zip" in texts(at.subheader)
    assert at.session_state["cfg"].data.source == "upload:" + uploads["second set.zip"]

    stored = resolve_path("upload:" + uploads["first set.zip"])
    first = uploads['first set.zip'][:16]
    at.button(key=f"del_dataset_{first}").click().run()  # one click asks first: a deletion cannot be undone
    no_problems(at)
    assert stored.exists() and any("Delete it for good? No run used it" in c for c in texts(at.caption))
    at.button(key=f"keep_dataset_{first}").click().run()
    assert stored.exists() and not [b for b in at.button if b.key == f"del_sure_dataset_{first}"]
    at.button(key=f"del_dataset_{first}").click().run()
    at.button(key=f"del_sure_dataset_{first}").click().run()
    no_problems(at)
    assert not stored.exists(), "no run used it: the file is gone"
    assert any("first set.zip: Deleted" in i for i in texts(at.info))
    assert [u["name"] for u in engine().store.list_uploads("")] == ["second set.zip"]
    assert not any("**first set.zip**" in m for m in texts(at.markdown))

    # an upload not in use, deleted while the sample is in use: the list stays where the user is looking
    at.radio(key="w:data.kind").set_value("sample").run()
    at.radio(key="w:data.kind").set_value("upload").run()
    assert "Active dataset: Bundled sample: textures" in texts(at.subheader)
    at.button(key=f"del_dataset_{uploads['second set.zip'][:16]}").click().run()
    at.button(key=f"del_sure_dataset_{uploads['second set.zip'][:16]}").click().run()
    no_problems(at)
    assert at.radio(key="w:data.kind").value == "upload", "still on the uploads the user was looking through"
    assert any(i.startswith("second set.zip: Deleted") and "next run" not in i for i in texts(at.info)), texts(at.info)

    # the last upload, in use: the message says what the next run uses now, and the page shows it
    third = write_tiny_zip(tmp_path / "third.zip", per_class=6, classes=("red", "stripes")).read_bytes()
    at.file_uploader[0].set_value(("third set.zip", third, "application/zip")).run()
    assert "Active dataset: third set.zip" in texts(at.subheader)
    (third_sha,) = [u["sha256"] for u in engine().store.list_uploads("")]
    at.button(key=f"del_dataset_{third_sha[:16]}").click().run()
    assert any("this cannot be undone. The next run would use Bundled sample: textures instead." in c
               for c in texts(at.caption)), texts(at.caption)
    at.button(key=f"del_sure_dataset_{third_sha[:16]}").click().run()
    no_problems(at)
    assert any(i.startswith("third set.zip: Deleted") and "The next run now uses Bundled sample" in i
               for i in texts(at.info)), texts(at.info)
    assert at.radio(key="w:data.kind").value == "sample", "the choice above follows the dataset in use"
    assert "Active dataset: Bundled sample: textures" in texts(at.subheader)


def settings_that_differ_are_shown(table, *runs: str) -> list[str]:
    """Compare's main table has an epochs, batch or lr column exactly when the runs differ in it
    (runs of the same data and methods are named alike); returns the columns shown."""
    cfgs = [engine().run_record(r).config for r in runs]
    shown = []
    for column, (section, key) in {"epochs": ("train", "epochs"), "batch": ("train", "batch_size"),
                                   "lr": ("optim", "lr")}.items():
        differ = len({c[section][key] for c in cfgs}) > 1
        assert (column in table.columns) == differ, (column, [c[section][key] for c in cfgs])
        shown += [column] if differ else []
    return shown


def test_compare_shows_the_dataset_and_flags_runs_on_different_data(studio, tiny_bytes, tmp_path):
    two_classes = write_tiny_zip(tmp_path / "two.zip", per_class=6, classes=("red", "green")).read_bytes()
    at = new_app()
    upload_zip(at, tiny_bytes, "three colours.zip")
    configure_tiny(at)
    first = start_run(at)
    assert engine().wait(first, RUN_TIMEOUT) == "finished"
    at.switch_page("app_pages/data.py").run()
    at.file_uploader[0].set_value(("two colours.zip", two_classes, "application/zip")).run()
    at.button(key="quick_start").click().run()  # one click from the Data page to a run
    no_problems(at)
    assert "3 · Train (live)" in texts(at.title), "the Train page follows the new run"
    (second,) = [r.id for r in engine().list_runs() if r.id != first]
    assert engine().wait(second, RUN_TIMEOUT) == "finished"
    assert engine().run_record(second).name == "ResNet-18 plain from scratch on two colours.zip", \
        "run names say the data, the backbone as people write it, and a start other than pretrained weights"

    at.switch_page("app_pages/results.py").run()
    no_problems(at)
    at.multiselect(key="compare_runs").set_value([first, second]).run()
    no_problems(at)
    grid = next(d for d in at.dataframe if "dataset" in d.value.columns)
    assert grid.proto.HasField("placeholder") and grid.proto.placeholder == "–", "a figure not measured: a dash"
    table = grid.value
    assert list(table.columns[:2]) == ["run", "dataset"], "key columns first"
    # the data's size with the setup, below: the run column keeps the room its names need
    setup = next(d.value for d in at.dataframe if "classes" in d.value.columns)
    assert "classes" not in table.columns and "images" not in table.columns and "images" in setup.columns
    (folded,) = [e.label for e in at.expander if e.label.startswith("How each run was set up")]
    named = {"classes", "images", "model", "epochs", "recipe", "batch size", "learning rate", "seed", "speed", "time"}
    shown = {w for w in named if w in folded}
    # it names what the table holds, and what every run shares is said once above it (ten columns hid speed and time)
    (every,) = [c for c in texts(at.caption) if c.startswith("Every run: ")]
    assert every == ("Every run: ResNet-18, no pretraining · 1 epoch · crops and mirrors, every layer trained · batch 8 · "
                     "learning rate 0.0025 · seed 0"), every
    assert not {"model", "batch", "lr", "seed"} & set(setup.columns) and {"img/s", "time"} <= set(setup.columns)
    assert len(shown) == len(setup.columns) - 1 + every.count(" · ") + 1, (folded, list(setup.columns), every)
    assert "methods" not in table.columns, "both runs are plain fine-tuning: said once, above the table"
    assert any(c.startswith("All ") and c.endswith("with plain fine-tuning.") for c in texts(at.caption)), texts(at.caption)
    assert sorted(zip(table["dataset"], setup["classes"])) == [("three colours.zip", 3), ("two colours.zip", 2)]
    assert "val acc" in table.columns and "test acc" in table.columns
    assert not any(str(v) == "None" for v in table.astype(object).to_numpy().ravel()), "blanks are blank"
    settings_that_differ_are_shown(table, first, second)
    import json

    from app.app_pages.results import COMPARE_FIT_PX

    widths = {k: v.get("width") for k, v in json.loads(grid.proto.columns).items() if k in table.columns}
    assert set(widths) == set(table.columns) and sum(widths.values()) <= COMPARE_FIT_PX, \
        f"every column sized, and the table fits a 1280 px window: {widths}"
    # labels the grid cuts are said in full under it. Started in the same minute, the two runs keep their datasets
    # in their labels (without them they would read the same) and are cut; a minute apart, the labels drop them and
    # fit (the CI of 29fedd1 started them at 00:09 and 00:10): the caption names exactly the cut ones, if any
    cut = [label for label in table["run"] if len(label) * 7.5 + 18 > widths["run"]]
    full = [c for c in texts(at.caption) if c.startswith("The run column in full: ")]
    if cut:
        assert len(full) == 1 and all(label in full[0] for label in cut), (full, cut, widths)
        assert not any(label in full[0] for label in table["run"] if label not in cut), (full, cut, widths)
    else:
        assert not full, (full, list(table["run"]), widths)
    assert any("2 different datasets" in w for w in texts(at.warning))
    assert table["balanced acc"].notna().all()
    from app.components import read_summary

    tests = {read_summary(engine().run_record(r).run_dir)["test_acc"] for r in (first, second)}
    assert set(table["test acc"]) == {float(f"{100 * t:.1f}") for t in tests}, \
        "accuracies in percent with one decimal, rounded as the pages' words round them"
    assert any(c.startswith("balanced: the mean of the per-class accuracies on the test images") for c in texts(at.caption))
    curves = at.selectbox(key="compare_metric").options
    assert "Validation accuracy" in curves and not any(o.startswith("OOD: ") for o in curves), "no per-corruption keys"

    assert not any("WiSE-FT runs start fine-tuning from their starting model (theta_0)" in c for c in texts(at.caption))
    assert not any("A WiSE-FT run's row gives its fine-tuned model's figures" in c for c in texts(at.caption))
    from conftest import RANDOM_RESNET18, finished_run, tiny_config

    # the runs beside `second` are ResNet-18s too, so that each pair differs in what the test says alone
    uploaded = engine().run_record(second).config["data"]["source"]  # the upload, as the server keeps it
    wise = finished_run(engine(), tiny_config(uploaded, "train.epochs=1", "eval.ood=false", "backbone.name=resnet18",
                                              "backbone.pretrained=bundled", "wise_ft.enabled=true",
                                              "wise_ft.alphas=0,1", "wise_ft.probe_epochs=20"))
    at.run()
    at.multiselect(key="compare_runs").set_value([second, wise]).run()
    no_problems(at)
    assert any("WiSE-FT runs start fine-tuning from their starting model (theta_0)" in c for c in texts(at.caption)), \
        "a plain run beside a WiSE-FT run: its fitted head is named as part of the lead"
    assert any("A WiSE-FT run's row gives its fine-tuned model's figures (alpha 1)" in c for c in texts(at.caption)), \
        "which of the run's models its row measures"
    table = next(d.value for d in at.dataframe if "val acc" in d.value.columns)
    assert "methods" in table.columns, "methods that differ are compared in the table"
    assert set(table["methods"]) == {"plain fine-tuning", "WiSE-FT"}, "short method names: the column is narrow"
    assert "sparsity" not in table.columns, "no run pruned: no sparsity column"
    pruned = finished_run(engine(), tiny_config(uploaded, *RANDOM_RESNET18, "train.epochs=1", "eval.ood=false",
                                                "pruning.enabled=true", "pruning.target_sparsity=0.5"))
    at.run()
    at.multiselect(key="compare_runs").set_value([second, pruned]).run()
    no_problems(at)
    table = next(d.value for d in at.dataframe if "val acc" in d.value.columns)
    by_method = dict(zip(table["methods"], table["sparsity"]))
    assert by_method["plain fine-tuning"] == 0.0 and abs(by_method["Pruning"] - 50.0) <= 1, \
        "beside a pruned run, a plain one is 0% sparse, not blank"
    shown = settings_that_differ_are_shown(table, second, wise)
    assert shown, "these two runs differ in their learning rate: the table shows it"
    # recipes that differ in one setting: the recipe column gives that setting, what they share is said once (both
    # cells began "crops and mirrors, every layer trained" and the difference was cut out of sight)
    weighted = finished_run(engine(), tiny_config(uploaded, *RANDOM_RESNET18, "train.epochs=1", "eval.ood=false",
                                                  "data.class_balance=weighted_loss"))
    at.run()
    at.multiselect(key="compare_runs").set_value([second, weighted]).run()
    no_problems(at)
    table = next(d.value for d in at.dataframe if "val acc" in d.value.columns)
    assert sorted(table["recipe"]) == ["classes as they are", "loss weighted by class"], list(table["recipe"])
    assert "Every run's recipe: crops and mirrors, every layer trained; the recipe column gives what differs." in \
        texts(at.caption), texts(at.caption)

    at.multiselect(key="compare_runs").set_value([first]).run()
    assert not any("different datasets" in w for w in texts(at.warning))
    grid = next(d for d in at.dataframe if "val acc" in d.value.columns)
    table = grid.value
    assert list(table.columns[:2]) == ["run", "methods"], "one dataset: its columns give way to the comparison"
    assert not table["run"].str.contains("three colours.zip").any(), "the dataset is named above, not in the run"
    widths = {k: v.get("width") for k, v in json.loads(grid.proto.columns).items()}
    assert widths["run"] == 300, f"the run column takes the room the data columns left: {widths}"
    assert any(c.startswith("On **three colours.zip** (3 classes") and "32 px" in c for c in texts(at.caption))
    assert at.selectbox(key="compare_metric").value == "val_acc"
    curve = "train_loss"
    at.selectbox(key="compare_metric").set_value(curve).run()
    at.session_state["results_tab"] = "Compare runs"
    at.run()
    again = refreshed_tab(at)  # the runs picked, the curve and the tab come back
    again.switch_page("app_pages/results.py").run()
    no_problems(again)
    assert again.multiselect(key="compare_runs").value == [first]
    assert again.selectbox(key="compare_metric").value == curve
    engine().delete_run(first)  # the run picked is deleted since: the newest finished runs again
    third = refreshed_tab(again)
    third.switch_page("app_pages/results.py").run()
    no_problems(third)
    assert set(third.multiselect(key="compare_runs").value) == {wise, pruned, weighted}, "the newest three"


def test_compare_keeps_the_setup_that_tells_runs_apart_beside_their_figures():
    import pandas as pd

    from app.app_pages.results import setup_that_differs

    setup = ["classes", "images", "model", "epochs", "batch", "lr"]
    two_sets = pd.DataFrame({"dataset": ["a.zip", "b.zip"], "classes": [3, 4], "images": [80, 81],
                             "model": ["ResNet-18"] * 2, "epochs": [20, 20], "batch": [32, 32], "lr": [0.02, 0.02]})
    assert setup_that_differs(two_sets, setup) == [], "two datasets: their own column tells them apart"
    fewer = two_sets.assign(dataset=["a.zip", "a.zip"], classes=[3, 3])  # one dataset, 8 images a class in one run
    assert setup_that_differs(fewer, setup) == ["images"]
    assert setup_that_differs(fewer.assign(epochs=[20, 5]), setup) == ["epochs", "images"]


def test_a_recipe_the_compare_column_cuts_is_given_in_full_under_the_table():
    """A new user read "first 2 epochs head only (a linear probe), lea..." in the recipe column."""
    import pandas as pd

    from app.app_pages.results import recipes_in_full

    long = "first 2 epochs head only (a linear probe), learning rate: constant, no augmentation"
    table = pd.DataFrame({"run": ["WiSE-FT demo", "plain"], "recipe": [long, "no augmentation"]})
    assert recipes_in_full(table) == f"The recipe column in full: WiSE-FT demo: {long}."
    assert recipes_in_full(table.assign(recipe=["no augmentation", None])) == "", "every one fits"
    from app.app_pages.results import names_in_full

    runs = pd.DataFrame({"run": ["09:12 · plain", "09:40 · Thin sections, crossed polars, second try"]})
    assert names_in_full(runs, 300) == "The run column in full: 09:40 · Thin sections, crossed polars, second try."
    assert names_in_full(runs, 400) == "", "every label fits 400 px"
    # the recipe column gives way to the run column (down to 112 px) where the table's other columns leave the run
    # under 200 px (an inspector's run column read "08:21 · Small mode"), and the caption then gives more cells whole
    import streamlit as st

    from app.app_pages.results import COMPARE_FIT_PX, RECIPE_LEAST_PX, RUN_PREFERRED_PX, give_run_room, run_width

    wide = pd.DataFrame({"run": ["08:21 · Small model, remove channels at the end"], "methods": ["Pruning"],
                         **{m: [0.8] for m in ("val acc", "test acc", "OOD acc", "balanced acc", "sparsity")},
                         "epochs": ["20 + 1"], "recipe": ["crops and mirrors, first 2 epochs head only"]})
    config = {c: st.column_config.NumberColumn(c, width=64) for c in wide.columns if c not in ("run", "recipe")}
    config["methods"]["width"] = 112
    config["recipe"] = st.column_config.TextColumn("recipe", width=260)
    # the other columns leave 60 px: the table scrolls sideways anyway, and the pinned run column keeps its name
    assert run_width(wide, config) == RUN_PREFERRED_PX, "it was 120 px: '08:21 · Small mode'"
    config["recipe"]["width"] = 170  # 150 px left: still its 200 px (it was 150: "08:21 · Small mode" again)
    assert run_width(wide, config) == RUN_PREFERRED_PX
    config["recipe"]["width"] = 60  # 260 px left: the table fits with the run column at 260
    assert run_width(wide, config) == 260
    config["recipe"]["width"] = 260
    give_run_room(wide, config)
    assert run_width(wide, config) == RUN_PREFERRED_PX and config["recipe"]["width"] < 260
    assert sum(int(v["width"]) for v in config.values()) + RUN_PREFERRED_PX <= COMPARE_FIT_PX
    config["recipe"]["width"] = 400  # a table with more columns: the recipe column never below its least
    config |= {f"extra {i}": st.column_config.NumberColumn("x", width=64) for i in range(3)}
    give_run_room(wide.assign(**{f"extra {i}": [0.1] for i in range(3)}), config)
    assert config["recipe"]["width"] == RECIPE_LEAST_PX
    cells = table.assign(recipe=["no augmentation", "crops and mirrors, flip TTA"])
    assert recipes_in_full(cells) == "" and "plain: crops and mirrors, flip TTA" in recipes_in_full(cells, 112)


def test_a_second_click_on_the_running_settings_is_warned_before_it_queues_a_copy(studio, tiny_bytes):
    at = new_app()
    upload_zip(at, tiny_bytes, "my data.zip")
    configure_tiny(at, epochs=2000)  # still running when the page is checked
    run_id = start_run(at)
    twin = "already running or queued with exactly these settings"
    try:
        # the run just started from this page: said calmly, not as an alarm about a run the user does not know
        assert any(re.search(r"(is training|waits in the queue) with these settings\. Pressing the button again "
                             r"would train a second copy", i) for i in texts(at.info)), texts(at.info)
        assert not any(twin in w for w in texts(at.warning))
        assert at.button(key="start").proto.type == "secondary"
        at.session_state["started_here"] = None  # started elsewhere (app.state.STARTED_KEY): the twin is a warning
        at.run()
        assert any(twin in w for w in texts(at.warning)), "a second click would train a copy: said before it happens"
        assert at.button(key="start").proto.type == "secondary"
        seed = at.session_state["cfg"].seed
        at.button(key="another_seed").click().run()  # another seed, one click away: its own run
        assert at.session_state["cfg"].seed == seed + 1
        assert not any(twin in w for w in texts(at.warning)) and at.button(key="start").proto.type == "primary"
        queued = start_run(at)  # waits behind the first: listed by its name and when it was queued, not its id
        rows = [m for m in texts(at.markdown) if m.startswith(":material/schedule:")]
        assert len(rows) == 1 and engine().run_record(queued).name in rows[0] and queued not in rows[0], rows
        assert any("waits in the queue with these settings. The charts below show the run it waits for" in i
                   for i in texts(at.info)), "not 'is training'"
        # the live view stays on the run training (a new user saw the queued run's empty charts instead) ...
        assert at.selectbox(key="watch_select").value == run_id
        engine().stop(run_id)
        assert engine().wait(run_id, RUN_TIMEOUT) in ("stopped", "failed")
        deadline = time.monotonic() + RUN_TIMEOUT
        while engine().run_record(queued).status != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        at.run()  # ... and moves to the queued run once it trains
        assert at.selectbox(key="watch_select").value == queued
        # the Data page's button queues behind it too, and the Train page it opens stays on the run training
        at.switch_page("app_pages/data.py").run()
        at.session_state["cfg"] = dataclasses.replace(at.session_state["cfg"], seed=9)
        at.run()
        assert at.button(key="quick_start").label == "Add to the queue"
        at.button(key="quick_start").click().run()
        no_problems(at)
        assert len(engine().active_runs()) == 2 and at.selectbox(key="watch_select").value == queued
    finally:
        active = engine().active_runs()
        for r in active:
            engine().stop(r)
        for r in active:
            assert engine().wait(r, RUN_TIMEOUT) in ("stopped", "failed"), r


def test_a_stopped_run_shows_its_finished_epochs_and_can_be_used_again(studio, tiny_bytes):
    at = new_app()
    upload_zip(at, tiny_bytes, "my data.zip")
    configure_tiny(at, epochs=40)
    run_id = start_run(at)
    deadline = time.time() + RUN_TIMEOUT
    while not engine().store.metrics(run_id, ["val_acc"]) and time.time() < deadline:
        time.sleep(0.2)
    engine().stop(run_id)
    assert engine().wait(run_id, RUN_TIMEOUT) == "stopped"
    done = len(engine().store.metrics(run_id, ["val_acc"]))
    assert 1 <= done < 40

    at = new_app()
    at.switch_page("app_pages/results.py").run()
    no_problems(at)
    assert at.selectbox(key="results_run").value == run_id
    warning = " ".join(texts(at.warning))
    assert f"stopped after {done} epoch" in warning and warning.count("Stopped") == 0, "said once, in plain words"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics.get("Validation accuracy", "").endswith("%"), metrics
    assert "best validation epoch" in at.radio(key=f"ckpt_{run_id}_best").options, "its checkpoint is offered"
    assert "when the server stopped" not in warning, "stopped by its user"
    assert any(c.value.startswith(f"python -m engine train --resume {run_id} \\\n    --data-dir ") for c in at.code)
    # its best epoch so far answers `predict` (and Try it), as the command says
    assert any("its best epoch so far (it was stopped" in c for c in texts(at.caption)), texts(at.caption)
    assert any(c.value.startswith(f"python -m engine predict \\\n    --run {run_id} \\\n    --data-dir ")
               for c in at.code)
    at.button(key=f"to_continue_{run_id}").click().run()  # Results offers Continue where the Train page has it
    no_problems(at)
    assert "3 · Train (live)" in texts(at.title) and at.session_state["watch_select"] == run_id
    assert [b for b in at.button if b.key == f"continue_{run_id}"], "the run shown there, with its Continue"
    at.switch_page("app_pages/results.py").run()

    at.session_state["cfg"] = RunConfig()  # the user has moved on to other settings
    (upload,) = engine().store.list_uploads("")
    engine().store.delete_upload("", upload["sha256"])  # and took the file off their list (the run keeps it)
    at.run()  # the run's data is no longer the data in use: its button appears
    at.button(key=f"reuse_data_{run_id}").click().run()
    no_problems(at)
    cfg = at.session_state["cfg"]
    assert cfg.train.epochs == 40 and cfg.data.source_name == "my data.zip" and cfg.name == ""
    assert any("these settings" in s for s in texts(at.success))
    assert [(u["sha256"], u["name"], u["size"]) for u in engine().store.list_uploads("", "dataset")] == [
        (upload["sha256"], "my data.zip", upload["size"])], "the dataset in use is listed among the uploads again"
    at.session_state["cfg"] = RunConfig()
    from app.state import source_exists

    source, moved = engine().run_record(run_id).config["data"]["source"], []
    try:  # the file itself gone from the server (a clean-up, another studio), from every uploads folder it is in
        while source_exists(source):
            found = resolve_path(source)  # the zip, then the studio's extracted copy of it
            moved.append((found, found.rename(found.with_name(found.name + ".moved"))))
        at.run()
        button = at.button(key=f"reuse_data_{run_id}")
        assert button.disabled and "my data.zip is no longer on this server" in button.proto.help, "not a dead end"
    finally:
        for path, now in moved:
            now.rename(path)


def test_configs_and_model_cards_hold_no_server_path_and_no_internal_upload_name(studio, tiny_bytes):
    from engine.export import model_card
    from engine.checkpoints import load_checkpoint

    at = new_app()
    upload_zip(at, tiny_bytes, "my data.zip")
    upload_ood(at)
    configure_tiny(at)
    run_id = start_run(at)
    assert engine().wait(run_id, RUN_TIMEOUT) == "finished", engine().run_record(run_id).error
    rec = engine().run_record(run_id)
    run_dir = Path(rec.run_dir)
    internal = {p.name for p in (studio / "uploads").iterdir()}  # the server's file names for the uploads

    config_text = (run_dir / "config.yaml").read_text()
    cfg = RunConfig.from_yaml(config_text)
    import json

    card = model_card(cfg, json.loads((run_dir / "summary.json").read_text()))
    _, meta = load_checkpoint(run_dir / "last.safetensors")
    for where, text in (("config.yaml", config_text), ("model card", card), ("checkpoint metadata", json.dumps(meta))):
        assert str(studio) not in text and "/uploads/" not in text, where
        assert not any(name in text for name in internal), where
        assert "my data.zip" in text, f"the {where} names the data by the user's file name"
    assert cfg.data.source.startswith("upload:") and len(cfg.data.source) == len("upload:") + 64
    assert cfg.data.ood_source_name == "street photos.zip"
    assert "SHA-256" in card


def test_a_bad_upload_is_reported_with_the_users_file_name(studio):
    at = new_app()
    data = b"this is not a zip file"
    upload_zip(at, data, "holiday photos.zip")
    errors = " ".join(texts(at.error))
    assert "'holiday photos.zip' is not a zip archive" in errors, errors
    internal = hashlib.sha256(data).hexdigest()[:16]  # the server names an upload by its content hash
    assert internal not in errors and not list((studio / "uploads").glob(internal + "*")), "nor is it kept"


def test_compare_keeps_two_datasets_of_the_same_name_apart():
    from app.charts import compare_table

    rows = [{"run": "a", "dataset": "data.zip", "_source": "upload:" + "1" * 64, "classes": 3, "val acc": 0.5,
             "sparsity": None},
            {"run": "b", "dataset": "data.zip", "_source": "upload:" + "2" * 64, "classes": 3, "val acc": None,
             "sparsity": None},
            {"run": "c", "dataset": "data.zip", "_source": "upload:" + "1" * 64, "classes": 3, "val acc": 0.7,
             "sparsity": None}]
    table = compare_table(rows)
    assert list(table["run"]) == ["a", "c", "b"], "grouped by dataset"
    assert table["dataset"].nunique() == 2 and "_source" not in table and "sparsity" not in table
    assert table["val acc"].isna().tolist() == [False, False, True], "a missing number stays missing (blank)"
    assert list(table["dataset"]) == ["data.zip (1)", "data.zip (1)", "data.zip (2)"], "not a path's last characters"
    # one dataset given two ways (an upload, the same images on disk under another name): one dataset, with
    # both names, first-seen first (a user's upload of the sample is not called "sample textures" alone); the digest is what the runs' data reports give (engine.data.content_digest)
    same = [{"run": "d", "dataset": "shapes.zip", "_source": "upload:" + "3" * 64, "_content": "f" * 64, "val acc": 0.6},
            {"run": "e", "dataset": "shapes copy.zip", "_source": "/data/shapes copy.zip", "_content": "f" * 64,
             "val acc": 0.7},
            {"run": "f", "dataset": "noise.zip", "_source": "/data/noise.zip", "_content": "e" * 64, "val acc": 0.3},
            # a run that recorded no digest (stored before it existed, failed, stopped early) on a file another
            # run read: that run's digest
            {"run": "g", "dataset": "shapes copy.zip", "_source": "/data/shapes copy.zip", "_content": None,
             "val acc": None}]
    table = compare_table(same)
    assert list(table["dataset"]) == ["shapes.zip / shapes copy.zip"] * 3 + ["noise.zip"], table
    assert "_content" not in table and "_source" not in table


def test_markdown_characters_in_a_users_names_show_as_written(studio, tiny_bytes):
    """A dataset named with markdown characters ('*', '_', '$', '[') is shown as the user wrote it:
    escaped wherever the pages put it into markdown, never turned into italics, LaTeX or a link."""
    from app.state import md_text

    assert md_text("my_*odd* $5 [v2].zip") == r"my\_\*odd\* \$5 \[v2\].zip"
    assert md_text("holiday photos.zip") == "holiday photos.zip"  # plain names unchanged
    at = new_app()
    upload_zip(at, tiny_bytes, "my_*odd* $5.zip")
    at.switch_page("app_pages/train.py").run()
    no_problems(at)
    next_run = " ".join(texts(at.markdown))
    assert r"**my\_\*odd\* \$5.zip**" in next_run, next_run


def test_a_run_name_says_when_it_starts_from_the_users_checkpoint_or_from_scratch():
    # in Compare, a new user's run from their own model read "ResNet-18 plain", like any other
    from app.state import Dataset, default_run_name
    from engine.config import RunConfig

    ds = Dataset("upload", "upload:" + "0" * 64, "my data.zip")
    import dataclasses

    def name(pretrained: str = "bundled") -> str:
        cfg = RunConfig()
        return default_run_name(dataclasses.replace(cfg, backbone=dataclasses.replace(cfg.backbone, pretrained=pretrained)), ds)

    assert name() == "ResNet-18 plain on my data.zip"
    assert name("checkpoint") == "ResNet-18 plain from your checkpoint on my data.zip"
    # five runs from five checkpoints read alike: the file's name is in each (an ML engineer's `runs` list)
    cfg = RunConfig()
    own = dataclasses.replace(cfg, backbone=dataclasses.replace(cfg.backbone, pretrained="checkpoint",
                                                                checkpoint="/srv/ckpt/b_trainckpt.pth.tar"))
    assert default_run_name(own, ds) == "ResNet-18 plain from your checkpoint b_trainckpt.pth.tar on my data.zip"
    from engine.presets import run_name  # the command line's: the file's own name; an upload's reference: none

    assert run_name(own, "parts") == "ResNet-18 plain from your checkpoint b_trainckpt.pth.tar on parts"
    uploaded = dataclasses.replace(own, backbone=dataclasses.replace(own.backbone, checkpoint="upload:" + "0" * 64))
    assert run_name(uploaded, "parts") == "ResNet-18 plain from your checkpoint on parts"
    assert run_name(uploaded, "parts", checkpoint="mine.pt") == "ResNet-18 plain from your checkpoint mine.pt on parts"
    assert name("none") == "ResNet-18 plain from scratch on my data.zip"


def test_a_run_that_is_exactly_a_preset_is_named_after_it():
    # a teacher's Standard demo was listed as "ResNet-18 plain on sample textures" beside the method demos
    from app.state import Dataset, default_run_name
    from engine.config import RunConfig, with_section
    from engine.presets import PRESETS

    sample = Dataset("sample", "assets/sample_textures.zip", "Bundled sample: textures")
    for preset in PRESETS.values():
        cfg = preset.apply(RunConfig())
        assert default_run_name(cfg, sample).startswith(f"{preset.title} ("), preset.name
    demo = PRESETS["standard_demo"].apply(RunConfig())
    assert default_run_name(demo, sample) == "Standard demo (ResNet-18) on sample textures"
    assert default_run_name(with_section(demo, "train", epochs=5), sample) == \
        "Standard demo, epochs 5 (ResNet-18) on sample textures", "changed after choosing the preset: what changed"
    assert default_run_name(with_section(demo, "backbone", pretrained="none"), sample) == \
        "Standard demo (ResNet-18) from scratch on sample textures"
    # fitted to a small dataset (a smaller batch, the rate scaled with it) it is still the preset's recipe, on
    # that dataset only: the batch fitted to 18 images is the user's own recipe on 5,000
    from engine.config import smaller_batch, with_batch

    fitted = with_batch(demo, smaller_batch(demo, 18)[0])
    assert default_run_name(fitted, sample, train_images=18) == "Standard demo (ResNet-18) on sample textures"
    assert default_run_name(fitted, sample, train_images=5000) == \
        f"Standard demo, learning rate {fitted.optim.lr:g}, batch size {fitted.train.batch_size} (ResNet-18) " \
        "on sample textures"
    assert default_run_name(with_batch(demo, 8), sample, train_images=18) == \
        "Standard demo, learning rate 0.005, batch size 8 (ResNet-18) on sample textures", \
        "another smaller batch than the fit is the user's own"
    assert default_run_name(with_section(fitted, "optim", lr=0.02), sample, train_images=18) == \
        f"Standard demo, batch size {fitted.train.batch_size} (ResNet-18) on sample textures", \
        "a smaller batch at the preset's rate is the user's own recipe"


def test_one_runs_view_choices_age_out_but_the_pages_own_stay(monkeypatch):
    """Looking at many runs adds per-run choices (Try it's model, Explain's image); the newest
    TRY_CHOICES_KEPT of them stay in the draft. The runs picked on Compare or the open tab are never
    pushed out by them. A choice is one run's when its key holds the run's id."""
    from app import state

    session: dict = {}
    monkeypatch.setattr(state.st, "session_state", session)
    monkeypatch.setattr(state, "save_draft", lambda: None)
    state.remember_choice("compare_runs", ["r1", "r2"], default=[])
    state.remember_choice("results_tab", "Compare", default="One run")
    state.remember_choice("compare_metric", "train_loss", default="val_acc")
    n = state.TRY_CHOICES_KEPT

    def run(i: int) -> str:  # a run id as engine.checkpoints.new_run_id writes them, numbered
        return f"20261201-{i:06d}-abcdef"
    for i in range(n + 10):
        state.remember_choice(f"try_variant_a_{run(i)}", "wise")
    assert state.kept_choice("compare_runs") == ["r1", "r2"] and state.kept_choice("results_tab") == "Compare"
    assert state.kept_choice("compare_metric") == "train_loss"
    assert state.kept_choice(f"try_variant_a_{run(9)}") is None and state.kept_choice(f"try_variant_a_{run(10)}") == "wise"
    assert state.kept_choice(f"try_variant_a_{run(n + 9)}") == "wise"
    assert len(session[state.TRY_KEY]["choices"]) == n + 3
    state.remember_choice(f"try_variant_a_{run(10)}", "fine_tuned")  # changed: now the newest
    state.remember_choice(f"try_variant_a_{run(999)}", "wise")
    assert state.kept_choice(f"try_variant_a_{run(10)}") == "fine_tuned" and state.kept_choice(f"try_variant_a_{run(11)}") is None
    # a draft saved before per-run choices were told apart: the keys that name a run age as theirs
    old = {f"explain_class_20261130-1200{i:02d}-abcdef": "cat" for i in range(n)}
    session[state.TRY_KEY] = {"choices": {"compare_runs": ["r1"], **old}}
    state.remember_choice("try_variant_a_20261201-120000-012345", "wise")
    assert state.kept_choice("compare_runs") == ["r1"] and state.kept_choice("explain_class_20261130-120000-abcdef") is None
    assert len(session[state.TRY_KEY]["run_keys"]) == n


def test_a_refresh_brings_back_settings_still_to_fix_and_text_that_could_not_be_read(studio):
    """A refresh in the middle of fixing a setting: the settings come back as they were (not the
    defaults, which replaced every choice before, silently), with the text typed into a list that
    could not be read, and the page still says what needs fixing."""
    at = new_app()
    at.switch_page("app_pages/model.py").run()
    at.number_input(key="w:train.epochs").set_value(7).run()
    at.toggle(key="w:pruning.enabled").set_value(True).run()
    at.number_input(key="w:pruning.start_fraction").set_value(0.9).run()
    at.toggle(key="w:wise_ft.enabled").set_value(True).run()
    at.text_input(key="w:wise_ft.alphas").input("0.5, lots").run()
    no_problems(at)
    again = refreshed_tab(at)
    again.switch_page("app_pages/model.py").run()
    no_problems(again)
    cfg = again.session_state["cfg"]
    assert cfg.train.epochs == 7 and cfg.methods["pruning"].enabled and cfg.methods["pruning"].start_fraction == 0.9
    assert again.text_input(key="w:wise_ft.alphas").value == "0.5, lots"
    warning = next(w for w in texts(again.warning) if "need fixing" in w)
    assert "'Start pruning at (share of the run)' (0.9) is after" in warning and "“0.5, lots” cannot be read" in warning
    assert not again.info or not any("Your saved next run is back, except" in i for i in texts(again.info))


def test_a_draft_this_version_cannot_read_says_so_once(studio):
    """Settings saved by another version (a section this one does not know) are replaced by the
    defaults, and the first page says so, once."""
    at = new_app()
    token = at.query_params["tab"]
    token = token[0] if isinstance(token, list) else token
    store = engine().store
    draft = store.load_draft("", token) or {}
    store.save_draft("", {**draft, "config": {**RunConfig().to_dict(), "teleport": {"enabled": True}}}, token)
    again = refreshed_tab(at)
    note = "Your saved next run is back, except the run settings (this version of the studio cannot read them: " \
           "defaults are used)."
    assert note in texts(again.info), texts(again.info)
    again.run()
    assert note not in texts(again.info), "said once"
    # settings the Model page cannot draw (a backbone this version lacks, epochs out of range): the defaults too
    for broken in ({"backbone": {"name": "resnet9000"}}, {"train": {"epochs": 0}}):
        config = {**RunConfig().to_dict(), **broken}
        store.save_draft("", {**draft, "config": config}, token)
        third = refreshed_tab(at)
        assert note in texts(third.info), broken
        third.switch_page("app_pages/model.py").run()
        assert not third.exception and not third.error, broken
    # typed text kept for a setting this version does not have is dropped, not holding runs back for good
    from app import state

    assert not state._setting_in_use(RunConfig(), "w:gone.levels")
    assert not state._setting_in_use(RunConfig(), "w:wise_ft.no_such_field")
    assert state._setting_in_use(RunConfig(), "w:data.source") is False, "not a list setting"


def test_the_compare_curves_name_each_runs_data_when_the_data_differ():
    """The table has a dataset column; the curves' legend has only the run labels: "18:29 · ResNet-18
    plain" and "18:30 · ResNet-18 plain" did not say which run trained on which data."""
    from types import SimpleNamespace

    from app.app_pages.results import compare_labels

    def rec(i, data):
        return SimpleNamespace(id=i, config={"data": {"source": data, "source_name": data}, "backbone": {"name": "resnet18"}})

    labels = {"a": "18:29 · ResNet-18 plain on sample.zip", "b": "18:30 · ResNet-18 plain on shapes.zip"}
    table, legend = compare_labels(labels, [rec("a", "sample.zip"), rec("b", "shapes.zip")])
    assert table == {"a": "18:29 · ResNet-18 plain", "b": "18:30 · ResNet-18 plain"}, "the table: a dataset column"
    assert legend == labels, "the legend: the data named"
    same = {"a": "18:29 · ResNet-18 plain on shapes.zip", "b": "18:30 · ResNet-18 plain on shapes.zip"}
    table, legend = compare_labels(same, [rec("a", "shapes.zip"), rec("b", "shapes.zip")])
    assert legend == table == {"a": "18:29 · ResNet-18 plain", "b": "18:30 · ResNet-18 plain"}, "one dataset: named above"


def test_the_note_on_a_run_just_started_says_what_the_run_does_now():
    """A run queued behind another and started since is "training", not "waits in the queue": the note reads
    the run's status when it is drawn (a new user read "waits in the queue" for a whole run)."""
    from streamlit.testing.v1 import AppTest

    def script():
        import types

        import streamlit as st

        from app.components import started_note

        status = st.session_state.get("now", "queued")
        engine = types.SimpleNamespace(run_record=lambda run_id: None if status == "deleted" else types.SimpleNamespace(
            id=run_id, name="Quick demo on my data.zip", status=status))
        started_note(engine, types.SimpleNamespace(id="r1", name="Quick demo on my data.zip", status="queued"))

    at = AppTest.from_function(script).run()
    assert [i.value.split(" with ")[0] for i in at.info] == ["**Quick demo on my data.zip** waits in the queue"]
    at.session_state["now"] = "running"  # the record the page was drawn with still says queued
    at.run()
    assert [i.value.split(" with ")[0] for i in at.info] == ["**Quick demo on my data.zip** is training"]
    at.session_state["now"] = "finished"
    assert not at.run().info, "a run that ended is in the run list below, not in this note"
    at.session_state["now"] = "deleted"
    assert not at.run().info, "nor a run deleted since (the record the page was drawn with says queued)"


def test_the_live_view_follows_the_queued_run_only_from_the_run_it_waited_for():
    """The Train page moves to the run queued behind the one on screen when that one ends and the queued one
    trains; a run picked by hand since is left on screen, and a queued run still waiting is not followed."""
    from streamlit.testing.v1 import AppTest

    def script():
        import types

        import streamlit as st

        from app import state
        from app.app_pages.train import FOLLOW_TO_KEY, follow_queued_run

        status = st.session_state.get("b_status", "queued")
        engine = types.SimpleNamespace(run_record=lambda run_id: types.SimpleNamespace(id=run_id, status=status))
        if "started" not in st.session_state:  # once, as _start sets it (a rerun must not set it again)
            st.session_state["started"] = True
            st.session_state[state.FOLLOW_KEY] = {"from": "a", "to": "b"}
        follow_queued_run(engine, st.session_state.get("shown", "a"), st.session_state.get("a_status", "running"))
        st.write(f"follow to: {st.session_state.get(FOLLOW_TO_KEY)}")

    at = AppTest.from_function(script, default_timeout=60).run()
    assert at.markdown[0].value == "follow to: None", "the run on screen still trains"
    at.session_state["a_status"] = "finished"
    at.run()
    assert at.markdown[0].value == "follow to: None", "the queued run waits behind another still"
    at.session_state["shown"] = "c"  # picked by hand
    at.session_state["b_status"] = "running"
    at.run()
    assert at.markdown[0].value == "follow to: None"
    at.session_state["shown"] = "a"
    at.run()
    assert at.markdown[0].value == "follow to: b" and "follow" not in at.session_state, "followed once"


def test_another_seed_stays_within_the_seeds_the_settings_allow():
    """"Use seed N instead" offered the largest seed + 1, which the seed's field (max 2^31 - 1, the
    Data page's number box) then refused."""
    import dataclasses

    from app.state import another_seed
    from engine.config import RunConfig

    meta = next(f for f in dataclasses.fields(RunConfig) if f.name == "seed").metadata
    top = 2 ** 31 - 1
    assert meta["max"] == top
    assert another_seed(0) == 1 and another_seed(top - 1) == top and another_seed(top) == top - 1


def test_compare_warns_when_runs_of_one_dataset_were_tested_on_other_images():
    """Another seed draws another split: two runs of one dataset then score on different test images, and a
    43-point gap on 7 images read as the runs' difference. The Compare tab says so, and shows the seed."""
    import pandas as pd

    from app.app_pages.results import other_test_images, setup_that_differs

    def summary(test: list[str], val: list[str] | None = None) -> dict:
        return {"data_report": {"split_files": {"train": ["t.jpg"], "val": val or ["v.jpg"], "test": test}}}

    table = pd.DataFrame({"run": ["a", "b", "c", "d"], "dataset": ["pets.zip"] * 3 + ["digits.zip"],
                          "seed": [0, 1, 0, 0], "epochs": [4] * 4, "batch": [4] * 4, "lr": [0.02] * 4})
    same = {"a": summary(["cat/1.jpg", "dog/2.jpg"]), "b": summary(["dog/2.jpg", "cat/1.jpg"]),
            "c": summary(["cat/1.jpg", "dog/2.jpg"]), "d": summary(["0/9.png"])}
    assert other_test_images(table, same) is None, "one split, whatever the order its files were listed in"
    other = {**same, "b": summary(["cat/1.jpg", "dog/5.jpg", "bird/7.jpg"])}
    note = other_test_images(table, other)
    assert note.startswith("Different test images: on **pets.zip** the runs drew different splits"), note
    assert "(2 or 3 images each, 1 in common; one image is 50.0 or 33.3 points of accuracy)" in note, note
    assert "digits.zip" not in note and "runs with one seed share it" in note
    # without test splits, the validation images; a run whose report lists no files says nothing
    no_test = {"a": summary([], ["cat/1.jpg"]), "b": summary([], ["cat/2.jpg"]), "c": {}, "d": {}}
    assert "(1 image each, none in common; one image is 100.0 points of accuracy)" in other_test_images(table, no_test)
    # the same images packed two ways (class folders in a wrapper; train/ and val/ folders): one image is one
    # image whatever folders wrap it, a run without test images is named, and each size's image is counted
    packed = {"a": summary(["Fruit/apple/1.jpg", "Fruit/pear/2.jpg"]),
              "b": summary([], ["val/apple/1.jpg", "val/pear/2.jpg", "val/pear/3.jpg"]), "c": {}, "d": {}}
    note = other_test_images(table, packed)
    assert "(2 or 3 images each, 2 in common; one image is 50.0 or 33.3 points of accuracy; b has no test images, so " \
           "validation images stand in)" in note, note
    assert other_test_images(table, {**packed, "b": summary([], ["val/apple/1.jpg", "val/pear/2.jpg"])}) is None
    assert setup_that_differs(table, ["epochs", "batch", "lr", "seed"]) == ["seed"], "the seed beside the figures"


def test_the_sidebar_leaves_a_running_runs_progress_to_the_train_page(studio):
    """On the Train page the sidebar names the running run without a progress bar of its own: its timer, out of
    step with the page's, showed "epoch 13/20" beside the page's "epoch 16 of 20". Elsewhere it shows the bar."""
    def page(live_page: bool) -> None:
        import types

        import streamlit as st

        from app import components, state

        state.init_session()
        snap = types.SimpleNamespace(name="Quick demo (ResNet-18)", progress={
            "epoch": 13, "epochs": 20, "step": 130, "total_steps": 200, "phase": "training"})
        engine = types.SimpleNamespace(active_runs=lambda: ["r1"], current_run="r1", active_runs_of=lambda user: ["r1"],
                                       snapshot=lambda run_id: snap, visible_runs=lambda user: [],
                                       runs_elsewhere=lambda user: [])
        with st.sidebar:
            components.sidebar(engine, live_page=live_page)

    for live_page in (True, False):
        at = AppTest.from_function(page, args=(live_page,), default_timeout=60).run()
        no_problems(at)
        side = at.sidebar
        assert any(m.startswith("**Training:** Quick demo (ResNet-18)") for m in texts(side.markdown)), texts(side.markdown)
        bars = side.get("progress")
        assert (len(bars) == 0) is live_page, (live_page, [b.proto for b in bars])
        assert any("under **Run shown**" in c for c in texts(side.caption)) is live_page


def test_compare_rounds_a_percentage_as_results_does():
    """Results said robust accuracy 6.2% (1 of 16 images) and Compare 6.3% for the same run."""
    import pandas as pd

    from app.app_pages.results import percent_cells
    from app.components import fmt_pct

    values = [1 / 16, 0.875, 1 / 3, 0.0, 1.0, 0.12345]
    cells = percent_cells(pd.DataFrame({"robust acc": values + [float("nan")]}))["robust acc"].tolist()
    for v, cell in zip(values, cells):
        assert f"{cell:.1f}%" == fmt_pct(v), (v, cell)
    assert cells[0] == 6.2 and pd.isna(cells[-1])


def test_the_delete_question_says_a_file_another_user_has_stays(monkeypatch):
    """The question said "removed from the server: this cannot be undone" for bytes another user had
    uploaded too; the deletion itself kept them (and said so only afterwards)."""
    from types import SimpleNamespace

    from app import state

    monkeypatch.setattr(state, "user", lambda: "ann")
    monkeypatch.setattr(state, "next_run_words", lambda ref, done: "")
    engine = SimpleNamespace(store=SimpleNamespace(others_have_upload=lambda owner, sha: owner == "ann"))
    assert state.delete_upload_question(engine, "a" * 64) == (
        "Remove it from your list? Another user uploaded the same file, so it stays on the server.")


def test_the_compare_methods_column_is_as_wide_as_its_longest_cell_within_bounds():
    """"L2-SP, Adversarial" was cut in a fixed 112 px column."""
    import pandas as pd

    from app.app_pages.results import text_width

    assert text_width(pd.Series(["plain", "AdaFilter"]), 112, 220) == 112
    assert text_width(pd.Series(["plain", "L2-SP, Adversarial"]), 112, 220) >= 18 * 7 + 18
    assert text_width(pd.Series(["L2-SP, Adversarial, AdaFilter, Pruning, WiSE-FT"]), 112, 220) == 220
    assert text_width(None, 112, 220) == 112


def _compare_picker_app():
    """Compare's run picker alone, over four finished runs, newest first: a method run and two other runs after
    the standard run the method run is judged against."""
    from types import SimpleNamespace as R

    import streamlit as st

    from app.app_pages.results import compare_picker

    base = {"data": {"source": "a.zip", "image_size": 64}, "train": {"epochs": 20}, "seed": 0}
    runs = [R(id="wise", status="finished", config={**base, "wise_ft": {"enabled": True}}),
            R(id="seed1", status="finished", config={**base, "seed": 1, "pruning": {"enabled": True}}),
            R(id="pruning", status="finished", config={**base, "pruning": {"enabled": True}}),
            R(id="standard", status="finished", config=dict(base))]
    st.session_state["picked"] = compare_picker(runs, {r.id: r.id for r in runs})


def test_compare_opens_with_the_standard_run_the_newest_method_run_is_judged_against():
    """A teacher's fourth run pushed the Standard demo out of the three runs Compare opens on."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_compare_picker_app, default_timeout=30).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["picked"] == ["wise", "seed1", "pruning", "standard"]


def _per_class_app():
    from app.app_pages.results import per_class_compare

    counts = {"test": {"naevus": 14, "melanoma": 2}, "val": {"naevus": 14, "melanoma": 2}}
    base = {"classes": ["naevus", "melanoma"], "data_report": {"split_counts": counts}}
    per_class_compare({"04:46 · plain": {**base, "test_confusion": [[14, 0], [1, 1]]},
                       "04:51 · weighted": {**base, "test_confusion": [[13, 1], [0, 2]]}})


def test_compare_sets_runs_of_the_same_classes_side_by_side_per_class():
    """A clinician weighted the loss to help their rare class and Compare could not show whether it did: runs of the
    same classes get a per-class table (test images where every run has them), the rare class's weight said."""
    from streamlit.testing.v1 import AppTest

    from app.app_pages.results import per_class_frame

    at = AppTest.from_function(_per_class_app, default_timeout=30).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [e.label for e in at.expander] == ["Accuracy per class (test images)"]
    (frame,) = [d.value for d in at.dataframe]
    assert frame.to_dict("list") == {"class": ["naevus", "melanoma"], "04:46 · plain": ["100.0% (14 of 14)",
                                                                                       "50.0% (1 of 2)"],
                                     "04:51 · weighted": ["92.9% (13 of 14)", "100.0% (2 of 2)"]}
    assert any(c.startswith(":material/straighten: melanoma: few test images") for c in texts(at.caption))
    two = {"classes": ["a", "b"], "val_confusion": [[1, 0], [0, 1]], "test_confusion": [[1, 0], [0, 1]]}
    assert per_class_frame({"x": two, "y": {**two, "test_confusion": None}})[1] == "val", "a run without test images"
    assert per_class_frame({"x": two, "y": {**two, "classes": ["a", "c"]}}) is None, "other classes"
    assert per_class_frame({"x": two, "y": {**two, "test_confusion": [[1, 0], [1]]}}) is None, "a malformed matrix"
    assert per_class_frame({"x": two}) is None and per_class_frame({"x": two, "y": {"classes": ["a", "b"]}}) is None
    from app.app_pages.results import few_on

    counts = {"val": {"a": 30, "b": 3}, "test": {"a": 30, "b": 30}}  # few on validation only
    runs = {"x": {"data_report": {"split_counts": counts}}}
    assert few_on(runs, "test", ["a", "b"]) == [] and few_on(runs, "val", ["a", "b"]) == ["b"]


def test_compare_speaks_of_a_wise_ft_runs_lead_only_where_it_has_one():
    """The note on a WiSE-FT run's head-only lead showed beside a WiSE-FT demo 4 validation points behind."""
    from app.app_pages.results import wise_leads

    rows = [{"val acc": 0.656}, {"val acc": 0.695}]
    assert not wise_leads(rows, [True, False]), "behind: no lead to explain"
    assert wise_leads(rows, [False, True])
    assert not wise_leads(rows, [True, True]) and not wise_leads([{"val acc": None}, rows[1]], [True, False])


def test_the_train_pages_tiles_keep_their_widths_while_the_numbers_grow(monkeypatch):
    """Tiles as wide as their content moved every tile right of "Step" when 9 / 120 became 10 / 120: each live
    tile is as wide as the widest value it can show, so the row keeps its place over a run."""
    from app import components, layout

    drawn: list = []

    class Row:
        def metric(self, label, value, width=None, **_):
            drawn.append((label, value, width))

    monkeypatch.setattr(layout, "tiles", lambda: Row())
    monkeypatch.setattr(components.st, "progress", lambda *a, **k: None)

    def widths(step: int, ips: float, eta: float, loss: float) -> dict:
        drawn.clear()
        progress = {"phase": "training", "epoch": step // 12, "epochs": 10, "step": step, "total_steps": 120,
                    "images_per_sec": ips, "eta_s": eta, "loss": loss}
        components.progress_view(components.RunView(id="r", name="r", status="running", error=None,
                                                    config={"train": {"epochs": 10}}, run_dir="/x", progress=progress))
        assert all(isinstance(w, int) for _, _, w in drawn), drawn
        return {label: w for label, _, w in drawn}

    early, late = widths(9, 85.0, 125.0, 2.3), widths(110, 412.0, 3575.0, 0.123)
    assert early == late, (early, late)
    assert sum(early.values()) + 4 * 16 <= 820, "one row in the 820 px a 1280 px window leaves the page"
    for label, value, width in drawn:  # wide enough for what they show
        assert width >= layout.tile_width(label, value), (label, value, width)


def _recent_runs_app():
    import time
    from types import SimpleNamespace

    from app.app_pages.train import recent_table

    recent_table([SimpleNamespace(name="Fastest model (ResNet-18) from ImageNet weights on shapes.zip", status="failed",
                                  created=time.time(), started=None, id="20261206-030445-d76d5d", config={},
                                  error="The ImageNet weights could not be downloaded.")])


def test_the_recent_runs_table_shows_a_whole_run_id():
    """The id is what the command line's --run takes: a new user saw it cut ("20261206-030445-d76d5…")."""
    import json

    from app.app_pages.results import TEXT_PX_PER_CHAR

    at = AppTest.from_function(_recent_runs_app, default_timeout=30).run()
    no_problems(at)
    (grid,) = at.dataframe
    widths = {k: v.get("width") for k, v in json.loads(grid.proto.columns).items()}
    assert widths["id"] >= len("20261206-030445-d76d5d") * TEXT_PX_PER_CHAR + 18, widths
    assert grid.value["id"].tolist() == ["20261206-030445-d76d5d"]
