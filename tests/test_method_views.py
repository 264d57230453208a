"""Chart builders of the method views, as pure functions (data in, Vega-Lite spec out)."""

from app.method_views.adafilter import gate_heatmap, layer_epoch_frame
from app.method_views.wise_ft import curve_chart, curve_frame
from engine.methods.wise_ft import curve_point

CURVE = [{"alpha": 0.0, "val_acc": 0.6, "ood_acc": 0.5, "robust_acc": None},
         {"alpha": 0.5, "val_acc": 0.8, "ood_acc": 0.7, "robust_acc": None},
         {"alpha": 1.0, "val_acc": 0.85, "ood_acc": 0.6, "robust_acc": None}]

def test_wise_curve_frame_keeps_measured_kinds_only():
    df = curve_frame(CURVE)
    assert set(df["kind"]) == {"Validation (your data)", "Corrupted images (OOD)"}
    assert len(df) == 6

def test_wise_curve_chart_marks_the_alpha():
    spec = curve_chart(curve_frame(CURVE), 0.3).to_dict()
    layers = spec["layer"]
    assert layers[0]["mark"]["type"] == "line" and layers[1]["mark"]["type"] == "rule"
    rule_data = [d for d in spec["datasets"].values() if d and "kind" not in d[0]]
    assert {"alpha": 0.3} in rule_data[0]

def test_wise_curve_chart_without_alpha_has_no_rule():  # the live curve on the Train page
    spec = curve_chart(curve_frame(CURVE), None).to_dict()
    assert spec["mark"]["type"] == "line" and "layer" not in spec
    assert spec["title"] == "WiSE-FT: accuracy along the weight path"
    # under the Train page's own heading ("WiSE-FT curve: all 21 mixing weights evaluated") it has none:
    # the two titles stacked one over the other
    assert "title" not in curve_chart(curve_frame(CURVE), None, title=None).to_dict()

def test_subset_note_only_for_a_subset():
    from app.method_views.wise_ft import subset_note

    assert subset_note({"wise_ft": {"ood_subset": 0}}) is None and subset_note({}) is None
    assert "up to 64 validation images of each corruption, the classes taken in turn" in subset_note(
        {"wise_ft": {"ood_subset": 64}})
    # 9 validation images: the subset of 64 is all of them ("up to 64" read as a contradiction to a new user)
    assert subset_note({"wise_ft": {"ood_subset": 64}}, val_images=9) is None
    assert subset_note({"wise_ft": {"ood_subset": 64}}, val_images=128) is not None
    from app.method_views.wise_ft import curve_ood_words

    assert "at severity 3 on every validation image" in curve_ood_words({"wise_ft": {"ood_subset": 64}}, 9)
    assert "on up to 64 images of each corruption" in curve_ood_words({"wise_ft": {"ood_subset": 64}}, 128)


def test_the_curve_point_at_an_alpha_is_on_the_grid_or_none():
    assert curve_point(CURVE, 0.5)["val_acc"] == 0.8 and curve_point(CURVE, 0.3) is None and curve_point([], 0.5) is None

def test_adafilter_heatmap():
    rows = [{"name": "adafilter/gate_mean/layer1.0.conv1", "epoch": 1, "value": 0.4},
            {"name": "adafilter/gate_mean/layer1.0.conv1", "epoch": 2, "value": 0.6},
            {"name": "val_acc", "epoch": 1, "value": 0.5}]
    df = layer_epoch_frame(rows)
    assert list(df["fraction"]) == [0.4, 0.6] and set(df["layer"]) == {"layer1.0.conv1"}
    spec = gate_heatmap(df, "epoch", "t", ["layer1.0.conv1"]).to_dict()
    assert spec["mark"]["type"] == "rect" and spec["encoding"]["color"]["scale"]["domain"] == [0, 1]



def test_adafilter_view_draws_the_gate_gradients_beside_the_per_class_shares():
    from app.method_views.adafilter import view_charts

    rows = [{"name": "adafilter/gate_mean/layer1.0.conv1", "epoch": 1, "value": 0.5},
            {"name": "adafilter/gate_grad/layer1.0.conv1", "epoch": 1, "value": 2e-5},
            {"name": "adafilter/gate_grad/layer1.0.conv1", "epoch": 2, "value": 1e-3}]
    summary = {"adafilter_gate_mean": {"layer1.0.conv1": 0.5},
               "adafilter_gate_by_class": {"cats": {"layer1.0.conv1": 0.4}, "dogs": {"layer1.0.conv1": 0.6}}}
    charts = dict(view_charts(summary, rows))
    assert set(charts) == {"left", "right", "wide"}  # the per-class map must not hide the gradient map
    grads = [d for d in charts["wide"].to_dict()["datasets"].values()][0]
    assert [g["gradient"] for g in grads] == [2e-5, 1e-3]
    assert [c for c, _ in view_charts({}, [])] == []

def test_pruning_trials_chart_highlights_the_chosen_trial():
    from app.method_views.pruning import trials_chart, trials_frame

    trials = [{"trial": 1, "val_acc": 0.8, "sparsity": 0.0, "score": 0.8, "fractions": {"layer1": 0.0}},
              {"trial": 2, "val_acc": 0.78, "sparsity": 0.7, "score": 0.85, "fractions": {"layer1": 0.7}}]
    df = trials_frame(trials)
    assert list(df.columns[:5]) == ["trial", "val_acc", "sparsity", "score", "feasible"] and "prune layer1" in df
    spec = trials_chart(df, 2).to_dict()
    data = list(spec["datasets"].values())[0]
    assert [d["chosen"] for d in data] == [False, True]


def test_the_curve_reading_names_the_winner_or_says_fine_tuning_hurt():
    from engine.claims import wise_ft_reading as reading

    interior = [{"alpha": 0.0, "val_acc": 0.6, "ood_acc": 0.50}, {"alpha": 0.5, "val_acc": 0.79, "ood_acc": 0.58},
                {"alpha": 1.0, "val_acc": 0.80, "ood_acc": 0.55}]
    assert "at alpha 0.5, beats the fine-tuned model by 3.0 points and the starting model by 8.0, for 1.0 points" \
        in reading(interior)
    tie = [{"alpha": 0.0, "val_acc": 1.0, "ood_acc": 0.833}, {"alpha": 0.05, "val_acc": 1.0, "ood_acc": 0.833},
           {"alpha": 1.0, "val_acc": 0.889, "ood_acc": 0.685}]
    assert "beats the fine-tuned" not in reading(tie) and "starting model is best" in reading(tie), "a tie is no win"
    # a new user's curve: 0.85, 0.90 and 0.95 tied on OOD; the panel showed the run's pick, 0.95, and read 0.85
    tied = [{"alpha": 0.0, "val_acc": 0.6, "ood_acc": 0.50}, *({"alpha": a, "val_acc": 0.8, "ood_acc": 0.593}
                                                              for a in (0.85, 0.9, 0.95)),
            {"alpha": 1.0, "val_acc": 0.8, "ood_acc": 0.55}]
    assert "the best on corrupted images, at alpha 0.95," in reading(tied)
    hurt = [{"alpha": 0.0, "val_acc": 0.6, "ood_acc": 0.60}, {"alpha": 1.0, "val_acc": 0.8, "ood_acc": 0.50}]
    assert reading(hurt).startswith("Fine-tuning lowered OOD accuracy in this run: the starting model is best")
    # a new user's 3-epoch run: 16.7% validation at every alpha on 3 classes, "beats both ends ... at no cost"
    nothing = [{"alpha": a, "val_acc": 1 / 6, "ood_acc": o} for a, o in ((0.0, 0.40), (0.4, 0.42), (1.0, 0.40))]
    assert "beats the fine-tuned" in reading(nothing), "without the number of classes nothing is known of guessing"
    assert reading(nothing, classes=3).startswith("The fine-tuned model is at or below guessing on validation (16.7%, "
                                                  "guessing 33.3%)")
    assert "beats the fine-tuned" in reading(interior, classes=3), "0.80 on 3 classes learnt something"


def test_the_curve_axis_is_zoomed_and_coloured_like_the_epoch_charts():
    from app.charts import METRIC_COLORS

    curve = [{"alpha": a / 4, "val_acc": 0.80 + a / 100, "ood_acc": 0.55 + a / 200} for a in range(5)]
    spec = curve_chart(curve_frame(curve), 0.5).to_dict()
    layer = spec["layer"][0]["encoding"]
    lo, hi = layer["y"]["scale"]["domain"]
    assert 0.4 < lo < 0.55 and 0.84 < hi < 0.95, (lo, hi)
    assert layer["color"]["scale"]["range"] == [METRIC_COLORS["val_acc"], METRIC_COLORS["ood_acc"]]


def test_adafilter_metrics_read_as_words_and_probe_epochs_are_named():
    from app.charts import group_title, latest_layer_values, metric_label
    from app.method_views.adafilter import silent_epochs

    assert metric_label("adafilter_gate_grad") == "AdaFilter: gate gradient"
    assert group_title("adafilter/gate_mean") == "AdaFilter: filters using their fine-tuned copy"
    assert group_title("pruning/sparsity").endswith(": sparsity")  # other groups keep their generic words
    rows = [{"name": "adafilter/gate_grad/layer1.0.conv1", "epoch": e, "value": v}
            for e, v in ((1, 0.0), (2, 0.0), (3, 1e-3))]
    assert silent_epochs(rows) == [1, 2] and silent_epochs([]) == []
    import pandas as pd

    df = pd.DataFrame({"epoch": [1, 2], "g/a": [0.0, 0.0], "g/b": [0.0, None]})
    epoch, values = latest_layer_values(df, ["g/a", "g/b"])
    assert epoch == 2 and values[0] == 0.0 and values[1] != values[1]  # a layer not logged is NaN


def test_a_metric_delta_that_rounds_to_nothing_is_grey_and_arrowless():
    from app.method_views import points_delta

    assert points_delta(0.7344, 0.7340, "fine-tuned") == {"delta": "±0.0 pts vs fine-tuned", "delta_color": "off",
                                                         "delta_arrow": "off"}
    assert points_delta(0.75, 0.70, "clean") == {"delta": "+5.0 pts vs clean", "delta_color": "normal",
                                                 "delta_arrow": "auto"}
    assert points_delta(0.40, 0.70, "clean")["delta"] == "-30.0 pts vs clean"


def test_pruning_view_draws_the_final_per_layer_sparsity_only_when_the_rest_was_pruned_at_the_end():
    from streamlit.testing.v1 import AppTest

    def page(rest):
        import types

        from app.method_views.pruning import pruning_view

        summary = {"sparsity": 0.5, "sparsity_by_layer": {"layer1.0.conv1": 0.4, "layer4.1.conv2": 0.6},
                   "pruning": {"pruned_rest_at_end": rest} if rest else {}}
        pruning_view(None, types.SimpleNamespace(run_dir="/nonexistent", id="r"), summary)

    early = AppTest.from_function(page, args=(0.3,)).run()
    assert not early.exception
    assert any("last 30% of the ramp was pruned at the end" in c.value for c in early.caption)
    charts = lambda at: at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")  # noqa: E731
    assert any("Final sparsity per layer" in str(c.proto.spec) for c in charts(early))
    full = AppTest.from_function(page, args=(None,)).run()
    assert not full.exception and not charts(full), "the curves' chart above has them"


def test_the_pruning_search_choice_is_said_in_words():
    """The caption printed the raw dict ("{'layer1': 0.4, ...}") and "objective score"."""
    from app.method_views.pruning import search_words

    text = search_words({"best": {"fractions": {"layer1": 0.4, "layer2": 0.55}}, "objective": "score",
                         "sampler": "tpe", "trials": [{}] * 10})
    assert text == ("The search chose to remove 40% of layer1's weights and 55% of layer2's weights: the trial with "
                    "the best mix of accuracy and sparsity (Optuna's TPE sampler, 10 short trials).")
    floor = search_words({"best": {"fractions": {"layer1": 0.4}}, "objective": "floor", "sampler": "gp", "trials": [{}]})
    assert "within the allowed drop of the unpruned trial" in floor and "{" not in floor and "1 short trial)" in floor


def test_a_smaller_model_at_guessing_is_named_with_what_to_change():
    """A new user's channel-pruned model answered at guessing (33.3% on 3 classes) beside a green
    "Finished." while the full-size model had 66.7%: its own finding, with the settings to change."""
    from engine.chance import smaller_model_finding
    from engine.methods.pruning import smaller_model_warning

    summary = {"classes": ["a", "b", "c"], "val_acc": 0.667, "test_acc": 0.667,
               "structured": {"val_acc": 1 / 3, "test_acc": 1 / 3}}
    found = smaller_model_finding(summary)
    assert found.text.startswith("The smaller (channel-pruned) model's test accuracy (33.3%) is at the level of guessing")
    said = smaller_model_warning(summary)
    assert said.startswith(found.text) and "Its answers are no better than guesses, however sure they look." in said
    assert "Structured: share of channels removed (pruning.channel_fraction)" in said
    assert "Structured: fine-tune epochs after shrinking (pruning.structured_epochs)" in said
    assert smaller_model_warning({**summary, "structured": {"val_acc": 0.9, "test_acc": 0.9}}) is None
    assert smaller_model_warning({**summary, "structured": None}) is None
    # a new user's: 5 of 12 test images, 11 of 12 validation ones; the warning spoke of test alone beside a
    # claim line and a chart of validation
    counts = {"data_report": {"split_counts": {"val": {"a": 4, "b": 4, "c": 4}, "test": {"a": 4, "b": 4, "c": 4}}}}
    split = smaller_model_warning({**summary, **counts, "structured": {"val_acc": 11 / 12, "test_acc": 5 / 12}})
    assert "On the validation images it scores 91.7%, clearly above guessing. Validation (91.7%) and test (41.7%) " \
           "differ by 50.0 points on 12 and 12 images" in split
    assert "more held-out images per class would tell" in split and "pruning.structured_epochs" not in split
    assert "no better than guesses" not in split


def test_the_smaller_models_fine_tune_is_read_from_its_curve():
    from app.method_views.pruning import fine_tune_chart, fine_tune_words

    assert "cost 33.4 points" in fine_tune_words([1 / 3, 0.5], 2 / 3) and "won 16.7 of them back" in \
        fine_tune_words([1 / 3, 0.5], 2 / 3)
    assert "won all of it back" in fine_tune_words([0.4, 0.7], 0.7)
    assert "won none of it back: more fine-tuning epochs" in fine_tune_words([0.4, 0.4], 0.7)
    assert "cost no validation accuracy" in fine_tune_words([0.8, 0.8], 0.7)
    nan = float("nan")  # a run without validation images: no "cost nan points", no advice drawn from nothing
    assert fine_tune_words([nan, nan], nan) == "" and fine_tune_words([0.4, nan], 0.7) == ""
    spec = fine_tune_chart([0.3, 0.35], 0.9).to_dict()
    (domain,) = {tuple(layer["encoding"]["y"]["scale"]["domain"]) for layer in spec["layer"]}
    assert domain[0] <= 0.3 and domain[1] >= 0.9, "the full-size model's line is on the chart"


def test_compare_says_every_runs_augmentation_and_the_smaller_models_epochs():
    """A new user's Compare table: "crops and mirrors, every layer trained" for one run, "first 2 epochs head
    only" for another that also used crops and mirrors, and 5 epochs for a run that trained 5 + 2."""
    from app.app_pages.results import epochs_cell, recipe_cells

    def recipe_cell(cfg, probe=None):
        return recipe_cells([(cfg, probe)])[0]

    plain = {"train": {"epochs": 5, "augment": True, "flip": True}, "optim": {"linear_probe_epochs": 0}}
    assert recipe_cell(plain) == "crops and mirrors, every layer trained"
    probe = {**plain, "optim": {"linear_probe_epochs": 2}}
    assert recipe_cell(probe, 2) == "crops and mirrors, first 2 epochs head only (a linear probe)"
    bare = {"train": {"epochs": 5, "augment": False, "flip": True}, "optim": {}}
    assert recipe_cell(bare) == "no augmentation, every layer trained"
    pruned = {**plain, "pruning": {"enabled": True, "structured": True, "structured_epochs": 2}}
    assert epochs_cell(pruned, {}) == "5 + 2" and epochs_cell(plain, {}) == "5"
    # a setting one run departs in is named in every row: "whole pictures" showed in one row only, and the other
    # read as if it had no such setting
    whole = {**plain, "data": {"fit": "pad"}, "eval": {"tta_flip": True}}
    # what they all share said once (shared_recipe): two rows beginning alike cut the difference out of sight
    from app.app_pages.results import shared_recipe

    three = [(plain, None), (whole, None), (probe, 2)]
    assert recipe_cells(three) == [
        "every layer trained, no flip TTA, middle square",
        "every layer trained, flip TTA (each prediction averaged with the mirror image), whole pictures",
        "first 2 epochs head only (a linear probe), no flip TTA, middle square"]
    assert shared_recipe(three) == "crops and mirrors"
    cosine, constant = {**plain, "optim": {"schedule": "cosine"}}, {**plain, "optim": {"schedule": "constant"}}
    assert recipe_cells([(cosine, None), (constant, None)])[0] == "learning rate: cosine"
    grey = {**plain, "train": {**plain["train"], "greyscale": 0.25}}  # greyscale copies: a kind of its own
    assert recipe_cells([(plain, None), (grey, None)]) == ["no greyscale copies", "25% of images greyscale"]
    assert shared_recipe([(plain, None), (grey, None)]) == "crops and mirrors, every layer trained"
    # recipes alike: each cell whole (the column, the same in every row, is then said once as every run's setting)
    assert recipe_cells([(probe, 2), (probe, 2)]) == [recipe_cell(probe, 2)] * 2
    assert shared_recipe([(probe, 2), (probe, 2)]) == ""


def test_compare_gives_each_runs_accuracy_on_greyscale_pictures():
    """An ecologist's runs each had a night figure on Results, and none side by side in Compare."""
    from app.app_pages.results import greyscale_accuracy
    from app.charts import compare_table

    night = {"test_acc": 0.8, "test_by_colour": {"greyscale": [3, 12], "colour": [40, 44]},
             "val_by_colour": {"greyscale": [1, 2], "colour": [9, 10]}}
    assert greyscale_accuracy(night) == 0.25, "the test images', as the test column"
    assert greyscale_accuracy({**night, "test_acc": None}) == 0.5, "validation where a run has no test split"
    assert greyscale_accuracy({"test_acc": 0.8}) is None, "no greyscale pictures beside colour ones"
    assert greyscale_accuracy({"test_acc": 0.8, "test_by_colour": {"greyscale": [0, 0]}}) is None
    rows = [{"run": r, "dataset": "trap.zip", "_source": "trap.zip", "greyscale acc": g} for r, g in
            (("a", 0.25), ("b", None))]
    assert compare_table(rows)["greyscale acc"].tolist()[0] == 0.25
    assert "greyscale acc" not in compare_table([{**rows[1], "run": "c"}, rows[1]]).columns, "no run has it: no column"


def test_runs_with_imbalanced_classes_weighted_or_sampled_evenly_say_so_wherever_they_are_described():
    """A student's runs with "Weight the loss by class" and without it were named and described alike (name, Results,
    Compare, the model card, the next run's line): the setting showed only in the YAML, and Compare's "Every run:
    ... seed 0" read as if the runs shared every setting."""
    import pandas as pd

    from app.app_pages.results import recipe_cells, setup_that_differs

    def recipe_cell(cfg):
        return recipe_cells([(cfg, None)])[0]
    from engine.config import RunConfig, apply_overrides
    from engine.export import model_card
    from engine.presets import run_name

    plain = {"train": {"epochs": 5}, "optim": {}, "data": {"class_balance": "none"}}
    weighted = {**plain, "data": {"class_balance": "weighted_loss"}}
    assert recipe_cell(plain) == "crops and mirrors, every layer trained"
    assert recipe_cell(weighted) == "crops and mirrors, every layer trained, loss weighted by class"
    assert "classes sampled evenly" in recipe_cell({**plain, "data": {"class_balance": "balanced_sampling"}})
    table = pd.DataFrame({"dataset": ["scans.zip"] * 2, "epochs": [5, 5], "recipe": [recipe_cell(plain),
                                                                                     recipe_cell(weighted)]})
    assert setup_that_differs(table, ["epochs", "recipe"]) == ["recipe"], "beside the figures, not folded away"
    cfg = apply_overrides(RunConfig(), ["data.class_balance=weighted_loss", "data.source=/data/scans.zip"])
    assert run_name(cfg, preset="Quick demo") == "Quick demo (ResNet-18) on scans.zip, loss weighted by class"
    assert run_name(RunConfig(), "scans.zip", "Quick demo") == "Quick demo (ResNet-18) on scans.zip"
    training = model_card(cfg, {"classes": ["a", "b"]}).split("## Training")[1].split("\n## ")[0]
    assert "; imbalanced classes: loss weighted by class" in training, training
    from engine.config import with_section
    from engine.optim import setup_extras  # the Data page's Train now, the Model page's Ready, the sidebar, `train`

    assert setup_extras(cfg) == ", loss weighted by class"
    frozen = with_section(cfg, "optim", freeze_blocks=2)
    assert setup_extras(frozen) == ", first 2 blocks frozen, loss weighted by class"
    assert setup_extras(RunConfig()) == ""
    from app.components import imbalance_words

    imb = {"imbalanced": True, "largest": "Normal_tissue", "smallest": "type b", "ratio": 8.2}
    assert imbalance_words(imb, "none").endswith("To compensate, set *Imbalanced classes* in the split settings.")
    said = imbalance_words(imb, "weighted_loss")
    assert "'Normal\\_tissue' has 8.2x the images of 'type b'" in said, said
    assert said.endswith("The next run compensates: loss weighted by class (*Imbalanced classes* in the split "
                         "settings).") and "To compensate, set" not in said, "once set, not told to set it"


def test_the_curve_on_the_users_ood_set_is_read_too():
    """A new user's mixes at 0.10-0.35 got 66.7% of their own darker pictures right against 33.3% for the
    fine-tuned model; the lines spoke of the corruption suite alone."""
    from app.claims_view import plain_words
    from engine.claims import wise_user_ood_reading as reading

    curve = [{"alpha": 0.0, "val_acc": 0.5, "ood_acc": 0.4, "ood_user_acc": 0.5},
             {"alpha": 0.25, "val_acc": 0.8, "ood_acc": 0.45, "ood_user_acc": 2 / 3},
             {"alpha": 1.0, "val_acc": 0.9, "ood_acc": 0.5, "ood_user_acc": 1 / 3}]
    assert reading(curve) == ("On your OOD set the mix at alpha 0.25 does best: 66.7% against 50.0% for the starting "
                              "model and 33.3% for the fine-tuned one.")
    flat = [{**p, "ood_user_acc": 0.5} for p in curve]
    assert reading(flat).startswith("On your OOD set no mix beats the fine-tuned model (50.0%")
    assert reading([{k: v for k, v in p.items() if k != "ood_user_acc"} for p in curve]) is None
    assert "On your OOD set the mix at alpha 0.25" in plain_words("wise_ft", {"wise_curve": curve, "classes": ["a", "b"]})
