"""The method result views on the Results page, with real runs: WiSE-FT slider, adversarial strip."""

from __future__ import annotations

from safetensors.torch import save_file

from conftest import tiny_config, write_tiny_zip
from engine.backbones import build_model
from test_app import RUN_TIMEOUT, engine, new_app, no_problems, studio, texts  # noqa: F401 (fixture)


def _run(tmp_path, *overrides) -> str:
    data = engine().save_upload(write_tiny_zip(tmp_path / "t.zip").read_bytes(), ".zip")
    start, _ = build_model("resnet18", 3, "none")
    ckpt = engine().save_upload(b"", ".safetensors")  # a path inside the engine's uploads folder
    save_file({k: v.contiguous() for k, v in start.net.state_dict().items()}, str(ckpt))
    cfg = tiny_config(data, "backbone.name=resnet18", "train.epochs=1", "backbone.pretrained=checkpoint",
                      f"backbone.checkpoint={ckpt}", *overrides)
    run_id = engine().submit(cfg)
    assert engine().wait(run_id, RUN_TIMEOUT) == "finished", engine().run_record(run_id).error
    return run_id


def test_wise_ft_slider_shows_grid_and_on_demand_alphas_and_exports(studio, tmp_path):
    import json
    from pathlib import Path

    run_id = _run(tmp_path, "wise_ft.enabled=true", "wise_ft.alphas=0,0.5,1", "eval.ood=true")
    run_dir = Path(engine().run_record(run_id).run_dir)
    at = new_app()
    at.switch_page("app_pages/results.py").run()
    no_problems(at)
    assert not any("mixing weights evaluated" in m.value for m in at.markdown)  # the live curve is the Train page's
    slider = at.select_slider(key=f"wise_alpha_{run_id}")
    assert [float(o) for o in slider.options] == [0.0, 0.5, 1.0], "its stops: the mixes the run measured"
    assert "Validation (your data)" in [m.label for m in at.metric]
    # the curve's OOD (one severity) beside the headline's (severities 1-5) read as a contradiction to a new user
    assert any(c.startswith("OOD here is the curve's: the corruptions at severity 3 on every validation image. The "
                            "OOD figure at the top of the page averages severities 1-5") for c in texts(at.caption))
    # the headline tiles are the fine-tuned end's; the page says so, and which mix the other pages use
    pick = float(slider.value)
    # in a box when the other pages use a mix (a teacher missed the grey caption), else a caption
    note = [c for c in texts(at.caption) + texts(at.info) if "These figures are the fine-tuned model's" in c]
    assert len(note) == 1 and (pick == 1.0 or f"use the mix at alpha {pick:.2f} (the run's own pick" in note[0]), note
    assert pick == 1.0 or note[0] in texts(at.info)
    other = next(a for a in (0.5, 0.0) if a != slider.value)  # a stop other than the run's own pick
    slider.set_value(other).run()  # measured during the run: shown at once
    no_problems(at)
    assert not at.session_state["wise_points"] and at.number_input(key=f"wise_exact_{run_id}").value == other
    assert any(c.startswith(f"Looking at alpha {other:.2f}.") for c in texts(at.caption))
    (predict,) = [c.value for c in at.code if c.value.startswith("python -m engine predict")]
    assert f"--variant wise \\\n    --alpha {other:.2f}" not in predict, "looking is not choosing"
    at.button(key=f"wise_use_{run_id}").click().run()
    (predict,) = [c.value for c in at.code if c.value.startswith("python -m engine predict")]
    assert f"--variant wise \\\n    --alpha {other:.2f} \\\n" in predict, "the command answers with the mix Try it uses"
    assert any(f"(the WiSE-FT mix at alpha {other:.2f}, as Try it uses)" in c for c in texts(at.caption))
    # the mix in use on the held-out images, measured once and kept in the run folder (its card reports the same)
    held = json.loads((run_dir / "wise_held_out.json").read_text())[f"{other:.2f}"]
    words = f"test {100 * held['test_acc']:.1f}%, validation {100 * held['val_acc']:.1f}%"
    right = sum(held["test_confusion"][i][i] for i in range(len(held["test_confusion"])))  # its card's weaker classes
    assert abs(right / held["test_images"] - held["test_acc"]) < 1e-6 and sum(map(sum, held["val_confusion"])) == held["val_images"]
    assert any(f"use the mix at alpha {other:.2f} (your choice): {words}" in c and "on the curve" not in c
               for c in texts(at.info)), texts(at.info)  # in a box; validation once: the held-out figure
    at.number_input(key=f"wise_exact_{run_id}").set_value(0.37).run()  # not on the grid: computed on demand
    no_problems(at)
    assert (run_id, 0.37) in at.session_state["wise_points"]
    assert at.select_slider(key=f"wise_alpha_{run_id}").value == 0.5, "the slider at the nearest stop"
    assert any(c.startswith("Looking at alpha 0.37.") for c in texts(at.caption))
    assert any("alpha 0.37, typed beside the slider, lies between its stops 0.00 and 0.50: the figures below are its "
               "own" in c for c in texts(at.caption)), "said, where a slider reading 0.50 meets the eye"
    assert "(the alpha shown, not the run's)" in at.button(key=f"wx_{run_id}").label, "not the alpha the other pages use"
    at.button(key=f"wx_{run_id}").click().run()
    no_problems(at)
    assert [b for b in at.get("download_button") if "Download the mix at alpha 0.37 (safetensors)" in str(b.proto)]
    # the slider's own stop cannot be picked again (no change), so a button goes back to it
    at.button(key=f"wise_stop_{run_id}").click().run()
    no_problems(at)
    assert not [b for b in at.get("download_button") if "alpha 0.37" in str(b.proto)], "not beside alpha 0.50"
    assert at.number_input(key=f"wise_exact_{run_id}").value == 0.5 and not any(
        "typed beside the slider" in c for c in texts(at.caption))
    assert any(c.startswith("Looking at alpha 0.50.") or c.startswith("Chosen for this run: alpha 0.50") or
               c.startswith("Not chosen yet: alpha 0.50") for c in texts(at.caption)), texts(at.caption)

    # the Train page drew the curve from the points the engine streamed while computing it
    at = new_app()
    at.switch_page("app_pages/train.py").run()
    no_problems(at)
    assert any("WiSE-FT curve: all 3 mixing weights evaluated" in m.value for m in at.markdown)
    specs = [str(c.proto) for c in at.get("vega_lite_chart")]
    assert specs and not any("accuracy along the weight path" in c for c in specs), "one heading, not two stacked"


def test_adversarial_view_shows_the_image_strip(studio, tmp_path):
    run_id = _run(tmp_path, "adversarial.enabled=true", "adversarial.steps=1", "eval.robust_steps=2",
                  "eval.robust_subset=4", f"adversarial.eps={2 / 255}", f"eval.robust_eps={4 / 255}")
    at = new_app()
    at.switch_page("app_pages/results.py").run()
    no_problems(at)
    assert any("Robust test accuracy" in m.label for m in at.metric)
    # trained at 2/255, checked at 4/255: a teacher asked why the two differ; said under the figure
    assert any(c.startswith("Training changed its images by at most 2.0/255 (eps); this check changes them by up to "
                            "4.0/255") for c in texts(at.caption)), texts(at.caption)
    import json
    from pathlib import Path

    path = Path(engine().run_record(run_id).run_dir) / "summary.json"
    summary = json.loads(path.read_text())  # data without a test split: the attack ran on validation images
    path.write_text(json.dumps({**summary, "robust_eval": {**summary["robust_eval"], "split": "val"}}))
    at.run()
    assert any("Robust validation accuracy" in m.label for m in at.metric), [m.label for m in at.metric]
    path.write_text(json.dumps(summary))
    at.run()
    assert len(at.get("image")) >= 3, "clean, adversarial and perturbation images"
    captions = [str(i.proto) for i in at.get("image")]
    strip = [c for c in captions if "true " in c or "max change" in c or "✓" in c or "✗" in c]
    # drawn row by row: the clean images first, all of them (a column per image let one wrapped caption shift
    # a whole column of pictures below the others)
    assert len(strip) >= 6 and all("true " in c for c in strip[:len(strip) // 3]), strip
    # the headline gives robust accuracy on held-out images, with its attack; the check on the training images
    # (91.7% beside a 75.0% test figure for a new user) stays in its own chart
    tiles = {m.label: m for m in at.metric}
    assert "Robust accuracy (attacked)" in tiles and "Attack: PGD-2" in tiles["Robust accuracy (attacked)"].help
    assert not [label for label in tiles if "training images" in label], list(tiles)


def test_pruning_results_draw_the_sparsity_per_layer_once_with_every_layer(studio, tmp_path):
    # a teacher saw a second, cramped "Final sparsity per layer" chart labelling every fourth layer
    run_id = _run(tmp_path, "train.epochs=2", "pruning.enabled=true", "pruning.target_sparsity=0.5",
                  "pruning.end_fraction=0.5", "pruning.scope=global")  # one share for the whole network: bars differ
    at = new_app()
    at.switch_page("app_pages/results.py").run()
    no_problems(at)
    assert "Sparsity (prunable weights)" in [m.label for m in at.metric]
    # the model's size beside "Parameters": what pruning left, counted in the run's final model
    from pathlib import Path

    from engine.runs import load_run

    model = load_run(Path(engine().run_record(run_id).run_dir), engine().datasets_dir).model
    left = sum(int((p != 0).sum()) for p in model.parameters())
    total = sum(p.numel() for p in model.parameters())
    (tile,) = [m for m in at.metric if m.label == "Non-zero parameters"]
    assert left < 0.6 * total and abs(float(tile.value.split()[0]) * 1e6 - left) <= 0.006e6, (tile.value, left)
    specs = [str(c.proto.spec) for c in at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")]
    per_layer = [s for s in specs if "sparsity per layer" in s]
    assert len(per_layer) == 1 and "labelOverlap" in per_layer[0], "one chart, every layer's name drawn"
    assert not any("Final sparsity per layer" in s for s in specs)


def test_wise_tiles_note_names_the_model_behind_the_headline_and_the_one_the_pages_use():
    from app.app_pages.results import confusion_view, wise_tiles_note

    # Results' matrices of a WiSE-FT run are its fine-tuned model's: said (Explain's are the chosen mix's)
    assert confusion_view({"wise_curve": [{"alpha": 1.0}]}, "test")[2] == "the fine-tuned model, alpha 1, test images"
    assert confusion_view({}, "test")[2] == "test images"

    summary = {"wise_curve": [{"alpha": 0.0, "val_acc": 0.5, "ood_acc": 0.4},
                              {"alpha": 0.5, "val_acc": 0.625, "ood_acc": 0.5},
                              {"alpha": 1.0, "val_acc": 0.6, "ood_acc": 0.45}]}
    assert ("use the mix at alpha 0.50 (the run's own pick): validation 62.5% on the curve, corrupted images 50.0%;"
            in wise_tiles_note(summary, 0.5, False))
    held = wise_tiles_note(summary, 0.5, False, {"test_acc": 0.7, "val_acc": 0.65})
    assert "(the run's own pick): test 70.0%, validation 65.0%, corrupted images 50.0%; see" in held
    assert "62.5" not in held, "validation said once: on every validation image"
    off_grid = wise_tiles_note(summary, 0.37, True)  # typed beside the slider: no curve point to quote
    assert "use the mix at alpha 0.37 (your choice); see" in off_grid and "%" not in off_grid
    end = wise_tiles_note(summary, 1.0, False)
    assert "alpha 1), the model Explain, Try it and Export use" in end and "mix" not in end


def title_words(chart) -> str:
    """A chart's spec with a title's lines joined by spaces, whatever width they were wrapped at."""
    import re

    return re.sub(r'\\?"\s*,\s*\\?"', " ", str(chart.proto))


def test_a_structured_run_says_its_smaller_models_size_in_parameters_and_megabytes(studio, tmp_path, monkeypatch):
    import json
    from pathlib import Path

    run_id = _run(tmp_path, "pruning.enabled=true", "pruning.target_sparsity=0.5", "pruning.structured=true",
                  "pruning.channel_fraction=0.5", "eval.ood=false")
    s = json.loads((Path(engine().run_record(run_id).run_dir) / "summary.json").read_text())["structured"]
    at = new_app()
    at.switch_page("app_pages/results.py").run()
    no_problems(at)
    # the command for new images names the smaller model's variant (a new user found only the full model's command)
    assert any("add `--variant structured`" in c for c in texts(at.caption)), texts(at.caption)
    (size,) = [m for m in at.metric if m.label == "Smaller model's size"]
    assert size.value == f"{s['params_after'] / 1e6:.2f} M parameters", size.value  # "5.27 M" read without a unit
    # both models' non-zero parameters said side by side, counted in the smaller model itself
    from engine.runs import load_run

    small = load_run(Path(engine().run_record(run_id).run_dir), engine().datasets_dir).model_variant("structured")
    assert s["nonzero_after"] == sum(int((p != 0).sum()) for p in small.parameters()) < s["params_after"]
    assert any(f"the smaller model has {s['params_after'] / 1e6:.2f} M, {s['nonzero_after'] / 1e6:.2f} M of them "
               "non-zero" in c for c in texts(at.caption)), texts(at.caption)
    assert f"its file (safetensors) {s['file_bytes_after'] / 1e6:.1f} MB against {s['file_bytes_before'] / 1e6:.1f} MB" \
        in size.help and "stays as large as the dense one's" in size.help
    # its accuracy on the test images, as the headline tiles (validation in the help), against the full-size model's
    (acc,) = [m for m in at.metric if m.label == "Smaller model's test accuracy"]
    assert acc.value == f"{100 * s['test_acc']:.1f}%" and f"({100 * s['test_acc_before']:.1f}%)" in acc.help
    assert f"on the validation images {100 * s['val_acc']:.1f}%" in acc.help
    assert acc.delta.endswith(" pts vs full size") and (acc.delta.startswith("±0.0") or acc.delta[0] in "+-")
    # its fine-tune charted: just after removing channels, then after each of its epochs
    assert len(s["fine_tune_val_acc"]) == s["fine_tune_epochs"] + 1 and s["fine_tune_val_acc"][-1] == s["val_acc"]
    assert s["fine_tune_val_acc"][0] == s["val_acc_shrunk"]
    assert any("s fine-tune" in str(c.proto) and "Fine-tuning epochs of the smaller model" in str(c.proto)
               for c in at.get("vega_lite_chart"))
    # its own confusion matrix and per-class accuracy, as the run's (a smaller model 25 points down could not be
    # inspected): counts of the test images, its accuracy on the diagonal
    run_summary = json.loads((Path(engine().run_record(run_id).run_dir) / "summary.json").read_text())
    matrix = s["test_confusion"]
    assert [sum(r) for r in matrix] == list(run_summary["data_report"]["split_counts"]["test"].values())
    assert abs(sum(matrix[i][i] for i in range(len(matrix))) / sum(map(sum, matrix)) - s["test_acc"]) < 1e-6
    at.radio(key="confusion_split").set_value("smaller").run()
    no_problems(at)
    assert any("Confusion matrix (the smaller model, test images)" in title_words(c) for c in at.get("vega_lite_chart"))
    # and on its validation images, as Explain's error analysis shows it (a new user found the two pages never
    # showed the same split)
    split = at.radio(key="confusion_split")
    assert split.options[-2:] == ["the smaller model, test images", "the smaller model, validation images"]
    split.set_value("smaller_val").run()
    assert any("Confusion matrix (the smaller model, validation images)" in title_words(c)
               for c in at.get("vega_lite_chart"))
    # Compare gives the smaller model's accuracy its own column (a new user found no word of it there)
    at.multiselect(key="compare_runs").set_value([run_id]).run()
    grid = next(d.value for d in at.dataframe if "val acc" in d.value.columns)
    assert "smaller acc" in grid.columns and round(100 * s["test_acc"], 1) in set(grid["smaller acc"]), grid
    # the smaller model at guessing is said beside its tiles, whatever the full-size model did
    from engine.methods.pruning import smaller_model_warning
    full = json.loads((Path(engine().run_record(run_id).run_dir) / "summary.json").read_text())
    found = smaller_model_warning(full)
    assert (found is not None) == any(w.startswith("The smaller (channel-pruned) model's") for w in texts(at.warning))
    # the Train page says which model each figure is (as for a run that learnt: this tiny one may be at guessing,
    # which the page says instead of its figures)
    monkeypatch.setattr("app.components.at_chance", lambda *a, **k: None)
    at.switch_page("app_pages/train.py").run()
    no_problems(at)
    (done,) = [m for m in texts(at.success) if m.startswith("Finished.")]
    assert "Validation accuracy of the full-size fine-tuned model" in done and \
        f"The smaller, channel-pruned model: test {100 * s['test_acc']:.1f}%" in done, done
    assert (found is not None) == any(w.startswith("The smaller (channel-pruned) model's") for w in texts(at.warning))
    # the warning names its settings by their labels, as the dashboard's other messages do (the command line's
    # keys in brackets showed on Train and Results)
    keyed = "At guessing: remove fewer channels ('Structured: share of channels removed (pruning.channel_fraction)')."
    for where in ("app.components", "app.method_views.pruning"):
        monkeypatch.setattr(f"{where}.smaller_model_warning", lambda summary: keyed)
    for page in ("app_pages/train.py", "app_pages/results.py"):
        at.switch_page(page).run()
        said = [w for w in texts(at.warning) if w.startswith("At guessing")]
        assert said and all("('Structured: share of channels removed')" in w and "pruning." not in w for w in said), \
            (page, said)


def test_size_words_set_both_models_non_zero_parameters_side_by_side():
    """A teacher read the full-size model's 3.36 M non-zero parameters beside the smaller model's 5.27 M
    parameters as the smaller model being the larger: each model's total and non-zero count, in one line."""
    from app.method_views.pruning import size_words

    summary = {"num_params": 11_200_000, "sparsity": 0.7, "pruning": {"prunable_weights": 11_000_000},
               "structured": {"params_after": 5_270_000, "nonzero_after": 1_600_000, "sparsity_kept": True}}
    words = size_words(summary)
    assert words.startswith("The full-size model has 11.20 M parameters, 3.50 M of them non-zero after pruning; "
                            "the smaller model has 5.27 M, 1.60 M of them non-zero"), words
    assert "only the smaller model runs faster" in words
    older = {**summary, "structured": {"params_after": 5_270_000, "sparsity_kept": True}}  # before nonzero_after
    assert "not measured in this run" in size_words(older)
    dense = {"num_params": 11_200_000, "structured": {"params_after": 5_270_000, "nonzero_after": 5_270_000}}
    assert size_words(dense) == "The full-size model has 11.20 M parameters; the smaller model has 5.27 M, all of them in use."
    assert size_words({"num_params": 5}) == ""


def test_the_smaller_models_fine_tune_is_drawn_as_its_epochs_end():
    """The Train page's charts stayed at the run's epochs for the smaller model's 10 fine-tuning epochs (a new user
    saw nothing move): the points the run streams are charted with what they mean."""
    from streamlit.testing.v1 import AppTest

    def page(points):
        from app.method_views.pruning import fine_tune_live_view

        fine_tune_live_view(points)

    def point(epoch, acc):
        return {"epoch": epoch, "val_acc": acc, "before": 0.75, "epochs": 10}

    start = AppTest.from_function(page, args=([point(0, 0.5)],)).run()
    assert not start.exception and start.markdown[0].value == "**The smaller model's fine-tune: 0 of 10 epochs**"
    assert "Removing channels left 50.0% on validation, against 75.0% for the full-size model" in start.caption[0].value
    assert len(start.get("arrow_vega_lite_chart") or start.get("vega_lite_chart")) == 1
    later = AppTest.from_function(page, args=([point(1, 0.6), point(0, 0.5), point(2, 0.7)],)).run()
    assert later.markdown[0].value == "**The smaller model's fine-tune: 2 of 10 epochs**"
    assert "won 20.0 of them back" in later.caption[0].value, later.caption[0].value
    done = AppTest.from_function(page, args=([point(e, 0.5 + 0.03 * e) for e in range(11)],)).run()
    assert done.markdown[0].value == "**The smaller model's fine-tune: all 10 epochs**"
    empty = AppTest.from_function(page, args=([{**point(0, float("nan"))}],)).run()
    assert not empty.markdown and not empty.exception, "no validation images: nothing drawn"

    def train_page(streams):  # the Train page draws the streamed points under the run's own charts
        import pandas as pd

        from app import components

        df = pd.DataFrame({"epoch": [1, 2], "val_acc": [0.5, 0.6], "train_loss": [1.0, 0.8]})
        components.curves_view(components.RunView("r", "run", "running", None, {}, "/nonexistent", epochs=df,
                                                  streams=streams), live=True, streams=True)

    live = AppTest.from_function(train_page, args=({"structured_fine_tune": [point(0, 0.5), point(1, 0.6)]},)).run()
    assert not live.exception and [m.value for m in live.markdown] == ["**The smaller model's fine-tune: 1 of 10 epochs**"]
    charts = live.get("arrow_vega_lite_chart") or live.get("vega_lite_chart")
    assert "Fine-tuning epochs of the smaller model" in str(charts[0].proto.spec), "while it runs, it comes first"
    assert not AppTest.from_function(train_page, args=({},)).run().markdown, "nothing streamed: no such heading"


def test_a_runs_line_names_the_users_checkpoint_file(studio, tmp_path):
    """A new user's run from their own checkpoint read "ResNet-18 (your checkpoint)" on Results, without the file:
    the line names it (an upload by the name it was uploaded under, a server path by its file name)."""
    from types import SimpleNamespace

    from app.app_pages.results import run_weights_words

    def rec(pretrained, checkpoint=""):
        return SimpleNamespace(owner="local", config={"backbone": {"name": "resnet18", "pretrained": pretrained,
                                                                   "checkpoint": checkpoint}})

    # (in markdown: the underscores escaped, shown as typed)
    typed = rec("checkpoint", "/srv/models/my_leaf_model.ckpt")
    assert run_weights_words(typed) == r"your checkpoint my\_leaf\_model.ckpt"
    assert run_weights_words(rec("bundled")) == "bundled weights"
    assert run_weights_words(rec("checkpoint", "upload:" + "0" * 64)) == "your checkpoint", "an upload not listed"
    engine().store.add_upload("local", "1" * 64, "checkpoint", "old model.ckpt", 7)
    assert run_weights_words(rec("checkpoint", "upload:" + "1" * 64)) == "your checkpoint old model.ckpt"


def test_the_weights_a_run_loaded_are_said_in_plain_words():
    """A new user read "120 weight tensors loaded, 0 missing, 0 of another shape" as jargon."""
    from app.app_pages.results import loaded_words

    assert loaded_words({"matched": 120, "missing": [], "shape_mismatch": []}) == \
        "120 weight tensors (the layers' learnt numbers) loaded, none missing or of another shape"
    partial = loaded_words({"matched": 100, "missing": ["a", "b"], "shape_mismatch": ["c"]})
    assert partial == ("100 weight tensors (the layers' learnt numbers) loaded, 2 missing (these start at random) and "
                       "1 of another shape (skipped: they start at random too)")
    assert loaded_words({}) == "its weight tensors (the layers' learnt numbers) loaded", "a report without counts"
    assert "50 or more missing" in loaded_words({"matched": 3, "missing": ["m"] * 50, "shape_mismatch": []}), \
        "the report keeps 50 names of a longer list"


def test_the_compare_picker_says_which_finished_runs_its_first_pick_left_out():
    """A new user's four runs: Compare picked the newest three and left the fourth out without a word."""
    from app.app_pages.results import left_out_words

    labels = {"a": "Quick demo", "b": "Robust", "c": "Small model", "d": "Fastest model"}
    words = left_out_words(["a", "b", "c", "d"], ["a", "b", "c"], ["a", "b", "c"], labels)
    assert words == ("Picked at first: the newest finished runs; 1 other finished run (Fastest model) can be added "
                     "in the box above.")
    assert left_out_words(["a", "b", "c", "d"], ["a", "b"], ["a", "b", "c"], labels) == "", "the user's own pick"
    assert left_out_words(["a", "b"], ["a", "b"], ["a", "b"], labels) == ""


def test_results_says_which_duplicate_copies_a_run_dropped(studio, tmp_path):
    """A new user dropped duplicate copies before training; the model card said so, Results' "The data this run
    used" did not."""
    import zipfile

    zip_path = write_tiny_zip(tmp_path / "t.zip")
    with zipfile.ZipFile(zip_path) as zf:
        copy = zf.read("red/0.png")
    with zipfile.ZipFile(zip_path, "a") as zf:
        zf.writestr("red/copy of 0.png", copy)
    data = engine().save_upload(zip_path.read_bytes(), ".zip")
    run_id = engine().submit(tiny_config(data, "train.epochs=1", "data.drop_duplicates=true"))
    assert engine().wait(run_id, RUN_TIMEOUT) == "finished", engine().run_record(run_id).error
    at = new_app()
    at.switch_page("app_pages/results.py").run()
    no_problems(at)
    said = [c for c in texts(at.caption) if "duplicate copy of other images dropped before the split" in c]
    assert len(said) == 1 and "0.png" in said[0], texts(at.caption)
