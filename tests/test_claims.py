"""Each method's claim line is computed from run summaries (pure functions, small dicts)."""

import pytest

from engine.claims import adafilter_claim, adversarial_claim, pruning_claim, wise_ft_claim, wise_ft_reading


def test_adafilter_claim_needs_accuracy_and_adapting_gates():
    flat = {"test_acc": 0.60, "adafilter_gate_mean": {"a": 0.50, "b": 0.52},
            "adafilter_gate_by_class": {"x": {"a": 0.5, "b": 0.5}, "y": {"a": 0.52, "b": 0.52}}}
    spread = {**flat, "adafilter_gate_mean": {"a": 0.40, "b": 0.75}}
    base = {"test_acc": 0.605}
    assert adafilter_claim(spread, base).shown is True
    assert "-0.5 points" in adafilter_claim(spread, base).text and "differs by 35.0 points between layers" in adafilter_claim(spread, base).text
    assert adafilter_claim(flat, base).shown is False  # accuracy fine, gates did not adapt
    assert adafilter_claim(spread, {"test_acc": 0.62}).shown is False  # 2 points below
    assert adafilter_claim(spread).shown is None  # no baseline: no verdict on accuracy
    classes = {**flat, "adafilter_gate_by_class": {"x": {"a": 0.3, "b": 0.3}, "y": {"a": 0.6, "b": 0.6}}}
    assert adafilter_claim(classes, base).shown is True  # a per-class difference counts too


def test_a_claim_on_data_without_test_images_says_validation_and_compares_like_with_like():
    """A dataset split into train/ and val/ folders has no test images: the lines said "test 100.0%" for its
    validation accuracy, and could set it against another run's test accuracy."""
    gates = {"adafilter_gate_mean": {"a": 0.40, "b": 0.75}}
    no_test = {**gates, "val_acc": 0.90, "test_acc": None}
    text = adafilter_claim(no_test, {"val_acc": 0.905, "test_acc": None}).text
    assert "validation 90.0% vs 90.5%" in text and "test" not in text, text
    assert "AdaFilter: validation 90.0%," in adafilter_claim(no_test).text
    # the baseline has a test split, this run has not: both on validation (0.905), not 0.50 test against 0.90
    mixed = adafilter_claim(no_test, {"val_acc": 0.905, "test_acc": 0.50})
    assert "validation 90.0% vs 90.5%" in mixed.text and mixed.shown is True, mixed.text
    assert "validation 90.0% vs 90.5%" in adafilter_claim({**gates, "val_acc": 0.90, "test_acc": 0.2},
                                                          {"val_acc": 0.905}).text
    sparse = {"sparsity": 0.7, "val_acc": 0.88}
    assert "70.0% sparse at validation 88.0% (run" in pruning_claim(sparse).text
    assert "70.0% sparse at validation 88.0% vs 89.0% dense" in pruning_claim(sparse, {"val_acc": 0.89}).text
    assert "70.0% sparse at test 55.0%" in pruning_claim({"sparsity": 0.7, "test_acc": 0.55, "val_acc": 0.6}).text


def test_pruning_claim_unstructured_and_structured():
    run = {"sparsity": 0.70, "test_acc": 0.55}
    assert pruning_claim(run, {"test_acc": 0.565}).shown is True
    assert pruning_claim(run, {"test_acc": 0.58}).shown is False
    assert "70.0% sparse" in pruning_claim(run).text and pruning_claim(run).shown is None
    both = {**run, "structured": {"val_acc": 0.50, "val_acc_before": 0.54, "flops_ratio": 0.5}}
    assert pruning_claim(both, {"test_acc": 0.56}).shown is False  # structured lost 4 points
    # flops_ratio is after / before
    assert "50.0% of the arithmetic per image left, in FLOPs" in pruning_claim(both).text
    assert pruning_claim({"sparsity": 0.0}).shown is None
    # the verdict in words: a gain is no loss (a new user read "+11.1 points, within 3" as nonsense)
    gained = {**run, "structured": {"val_acc": 1.0, "val_acc_before": 0.889, "flops_ratio": 0.5}}
    text = pruning_claim(gained, {"test_acc": 0.55}).text
    assert text.startswith("Pruning: the paper's claim shown in this run: ") and "(+11.1 points, no loss)" in text, text
    assert "within the 2-point allowance" in pruning_claim(run, {"test_acc": 0.565}).text
    assert "more than the 3-point allowance" in pruning_claim(both, {"test_acc": 0.56}).text
    # the structured half shown but no dense run yet for the sparse half: no verdict for the whole line
    # (a new user's Pruning demo read "the paper's claim shown" beside "run the same settings ... to compare")
    pending = pruning_claim(gained)
    assert pending.shown is None and pending.text == (
        "Pruning: 70.0% sparse at test 55.0% (run the same settings without pruning to compare): the paper's claim "
        "not judged yet; the smaller, channel-pruned model (50.0% of the arithmetic per image left, in FLOPs) at "
        "validation 100.0% vs 88.9% for the full-size model (+11.1 points, no loss): the paper's claim shown."), \
        pending.text
    assert pruning_claim(both).shown is False, "a half that failed is a no, whatever the other half"


def test_wise_ft_claim_interior_alpha_beats_both_ends():
    curve = [{"alpha": 0.0, "val_acc": 0.50, "ood_acc": 0.40}, {"alpha": 0.5, "val_acc": 0.595, "ood_acc": 0.47},
             {"alpha": 1.0, "val_acc": 0.60, "ood_acc": 0.45}]
    c = wise_ft_claim({"wise_curve": curve})
    assert c.shown is True and "alpha 0.5 beats both ends on OOD by 2.0 points" in c.text
    curve[1]["val_acc"] = 0.55  # interior point too far below the fine-tuned end on validation
    far = wise_ft_claim({"wise_curve": curve})
    assert far.shown is False
    # a new user's line said "the grid's best mix with validation at most 1 point below ... validation -8.4 points"
    assert "no mix kept validation within 1 point of the fine-tuned end; the best in-between mix, alpha 0.5" in far.text
    assert "at most 1 point below" not in far.text
    # 40 validation images: one is 2.5 points; 5 points below is two images, decided
    tiny = {"wise_curve": curve, "data_report": {"split_counts": {"val": {"a": 20, "b": 20}}}}
    assert wise_ft_claim(tiny).shown is False
    curve[1]["val_acc"] = 0.575  # one image short: "within 1 point" cannot be told; said as pruning's line says it
    undecided = wise_ft_claim(tiny)
    assert undecided.shown is None and undecided.text.startswith("WiSE-FT: no mix kept validation"), undecided.text
    assert undecided.text.endswith("(too few validation images to tell: one of the 40 validation images is 2.5 points "
                                   "of accuracy, more than the 1-point allowance)."), undecided.text
    tiny["data_report"]["split_counts"]["val"] = {"a": 60, "b": 60}  # 120: one image is 0.8 points, so decided
    assert wise_ft_claim(tiny).shown is False
    # the fine-tuned end at guessing on validation: no verdict, however the mixes' OOD figures fall (a new
    # user's 3-class run at 16.7% read "the paper's claim shown" by one corrupted image)
    nothing = {"classes": ["A", "B", "C"], "wise_curve": [{"alpha": a, "val_acc": 1 / 6, "ood_acc": o}
                                                          for a, o in ((0.0, 0.40), (0.4, 0.414), (1.0, 0.40))]}
    line = wise_ft_claim(nothing)
    assert line.shown is None, line.text
    assert line.text.startswith("WiSE-FT: the best mix at most 1 validation point below the fine-tuned end"), line.text
    assert "(the fine-tuned end is at or below guessing on validation (16.7%; guessing is 33.3%), so the mixes " \
           "compare noise)." in line.text, line.text
    nothing["wise_curve"][-1]["val_acc"] = 0.6
    nothing["wise_curve"][1]["val_acc"] = 0.6
    assert wise_ft_claim(nothing).shown is True, "60% on 3 classes learnt something"
    assert wise_ft_claim({}).shown is None
    curve[1]["val_acc"] = 0.595
    # the margin also in images, so that a difference of a few images reads as what it is
    assert ("beats both ends on OOD by 2.0 points (47.0% vs 40.0% at alpha 0 and 45.0% at alpha 1; 8 more of its 384 "
            "corrupted images right)") in wise_ft_claim({"wise_curve": curve, "wise_curve_ood_images": 384}).text
    curve[1]["ood_acc"] = 0.44
    below = wise_ft_claim({"wise_curve": curve, "wise_curve_ood_images": 384}).text
    assert ("alpha 0.5, is 1.0 points below the better end on OOD (44.0% vs 40.0% at alpha 0 and 45.0% at alpha 1; "
            "4 fewer of its 384") in below, "not '-1.0 points over'"
    assert below.endswith("validation 0.5 points below the fine-tuned end."), below
    # a win by an image or two is a hint, not a success: a new user read "claim shown" won by 1 of 72 images
    curve[1]["ood_acc"] = 0.45 + 1 / 72
    narrow = wise_ft_claim({"wise_curve": curve, "wise_curve_ood_images": 72})
    assert narrow.shown is True and narrow.narrow
    assert narrow.text.startswith("WiSE-FT: the paper's claim shown in this run, narrowly: "), narrow.text
    assert narrow.text.endswith("(an OOD margin of 1 corrupted image can go the other way with another seed: read it "
                                "as a hint, and train another seed to see whether it holds)."), narrow.text
    curve[1]["ood_acc"] = 0.45 + 3 / 72
    assert not wise_ft_claim({"wise_curve": curve, "wise_curve_ood_images": 72}).narrow, "three images: a win"
    assert not wise_ft_claim({"wise_curve": curve}).narrow, "no image count: the margin in images is unknown"


def test_adversarial_claim_against_plain_and_scratch():
    def run(robust_by_epoch, passes=2, images=100):
        return {"robust_acc": robust_by_epoch[-1], "images_per_process_per_epoch": images, "world_size": 1,
                "adversarial": {"passes_per_step": passes},
                "history": [{"epoch": e + 1, "robust_acc": a} for e, a in enumerate(robust_by_epoch)]}

    ft = run([0.30, 0.36, 0.40])
    assert adversarial_claim(ft, {"robust_acc": 0.20}).shown is True
    assert adversarial_claim(ft, {"robust_acc": 0.30}).shown is False
    scratch = run([0.1, 0.2, 0.25, 0.3, 0.3, 0.32, 0.33, 0.34, 0.35, 0.36, 0.36, 0.36])  # 12 epochs x 200 passes
    c = adversarial_claim(ft, {"robust_acc": 0.20}, scratch)
    assert c.shown is True and "36.0%" in c.text and "0.17 of its compute" in c.text  # epoch 2: 400 / 2400
    slow = run([0.30, 0.33, 0.40, 0.40])  # reaches 36% only in epoch 3: 600 / 2400 = 0.25, still within
    assert adversarial_claim(slow, {"robust_acc": 0.20}, scratch).shown is True
    pgd = run([0.30, 0.33, 0.40], passes=4)  # the same curve at twice the passes per image: 0.50
    assert adversarial_claim(pgd, {"robust_acc": 0.20}, scratch).shown is False
    never = run([0.30, 0.33, 0.35])
    assert "never reached it" in adversarial_claim(never, None, scratch).text
    assert adversarial_claim(never, None, scratch).shown is False
    assert adversarial_claim(ft, {"robust_acc": 0.20}, {"robust_acc": 0.4}).shown is True  # no curve: no verdict on cost
    assert adversarial_claim({}).shown is None and adversarial_claim(ft).shown is None


def test_results_page_compares_with_standard_fine_tuning_on_the_same_data():
    from types import SimpleNamespace as R

    from engine.baselines import comparison_run

    def cfg(**methods):
        c = {"data": {"source": "a.zip", "image_size": 64}, "backbone": {"name": "resnet18", "pretrained": "bundled"},
             "train": {"epochs": 5}, "seed": 0}
        return {**c, **{m: {"enabled": True} for m in methods}}

    run = R(id="r", status="finished", config=cfg(pruning=1), run_dir="r")
    other_data = R(id="o", status="finished", config={**cfg(), "data": {"source": "b.zip", "image_size": 64}}, run_dir="o")
    with_method = R(id="m", status="finished", config=cfg(wise_ft=1), run_dir="m")
    failed = R(id="f", status="failed", config=cfg(), run_dir="f")
    plain = R(id="p", status="finished", config=cfg(), run_dir="p")
    assert comparison_run(run, [run, other_data, with_method, failed, plain]) is plain
    assert comparison_run(run, [run, other_data, with_method]) is None
    # augmentation moves accuracy by points: a run without mirroring is compared with one without it
    no_flip = R(id="n", status="finished", config={**cfg(pruning=1), "train": {"epochs": 5, "flip": False}},
                run_dir="n")
    assert comparison_run(no_flip, [no_flip, plain]) is None
    plain_no_flip = R(id="q", status="finished", config={**cfg(), "train": {"epochs": 5, "flip": False}}, run_dir="q")
    assert comparison_run(no_flip, [no_flip, plain, plain_no_flip]) is plain_no_flip
    older = R(id="x", status="finished", config={**cfg(), "train": {"epochs": 5, "flip": True, "augment": True}},
              run_dir="x")  # a key a saved config lacks reads as its default
    assert comparison_run(run, [run, older]) is older
    tta = R(id="t", status="finished", config={**cfg(), "eval": {"tta_flip": True}}, run_dir="t")
    assert comparison_run(run, [run, tta]) is None
    # a duplicate dropped changes the split: not "the same data"
    dropped = R(id="d", status="finished", config={**cfg(), "data": {"source": "a.zip", "image_size": 64,
                                                                     "drop_duplicates": True}}, run_dir="d")
    assert comparison_run(run, [run, dropped]) is None
    faster = R(id="l", status="finished", config={**cfg(), "optim": {"lr": 0.1}}, run_dir="l")
    assert comparison_run(run, [run, faster]) is None, "another learning rate is another recipe"
    # adversarial training is compared on robust accuracy: the standard run must have attacked alike
    adv = R(id="a", status="finished", config={**cfg(adversarial=1), "eval": {"robust": True, "robust_steps": 10}},
            run_dir="a")
    assert comparison_run(adv, [adv, plain]) is None, "the plain run measured no robust accuracy"
    attacked = R(id="k", status="finished", config={**cfg(), "eval": {"robust": True, "robust_steps": 10}}, run_dir="k")
    assert comparison_run(adv, [adv, plain, attacked]) is attacked


def test_an_adversarial_run_names_the_standard_run_that_did_not_measure_robust_accuracy():
    """An adversarial run measures robust accuracy with eval.robust off; a standard run with it off matched it,
    and Results said "Compared with 'ResNet-18 plain'" under a line that compared nothing."""
    from types import SimpleNamespace as R

    from app.claims_view import attacked_config
    from engine.baselines import comparison_run, run_claims, unattacked_twin
    from engine.config import RunConfig

    base = {"data": {"source": "a.zip", "image_size": 64}, "backbone": {"name": "resnet18", "pretrained": "bundled"},
            "train": {"epochs": 5}, "seed": 0}
    adv = R(id="a", name="adv", status="finished", run_dir="a",
            config={**base, "adversarial": {"enabled": True}, "eval": {"robust_eps": 2 / 255, "robust_steps": 10}})
    plain = R(id="p", name="ResNet-18 plain", status="finished", config=dict(base), run_dir="p")
    assert comparison_run(adv, [adv, plain]) is None
    assert unattacked_twin(adv, [adv, plain]) is plain
    summaries = {"a": {"robust_acc": 0.333}, "p": {"val_acc": 0.9}}
    claims, other, _scratch, twin = run_claims(adv, [adv, plain], summaries.get, summaries["a"])
    assert other is None and twin is plain and claims[0].shown is None
    assert "'ResNet-18 plain'" in claims[0].text and "did not measure robust accuracy" in claims[0].text
    assert "'Measure robust accuracy (eval.robust)' switched on" in claims[0].text
    # another attack is not a comparison either; the same attack is
    other_eps = R(id="e", name="e", status="finished", run_dir="e",
                  config={**base, "eval": {"robust": True, "robust_eps": 4 / 255, "robust_steps": 10}})
    assert comparison_run(adv, [adv, other_eps]) is None and unattacked_twin(adv, [adv, other_eps]) is other_eps
    # the button's run: the twin's settings, robust accuracy measured under the adversarial run's attack
    cfg = attacked_config(adv, plain)
    assert cfg.eval.robust and cfg.eval.robust_eps == 2 / 255 and cfg.eval.robust_steps == 10
    assert cfg.name.startswith("ResNet-18 plain") and not cfg.enabled_methods()
    again = R(id="g", name=cfg.name, status="finished", run_dir="g", config=cfg.to_dict())
    assert comparison_run(adv, [adv, again, plain]) is again and unattacked_twin(adv, [adv, again, plain]) is None
    assert RunConfig.from_dict(again.config).data.source == "a.zip"
    assert attacked_config(adv, again).name == cfg.name, "not '..., robust accuracy measured' twice"
    # judged on the cost half alone (a scratch run): the line still names the run its button trains again
    scratch = R(id="s", name="scratch", status="finished", run_dir="s",
                config={**base, "backbone": {"name": "resnet18", "pretrained": "none"}, "adversarial": {"enabled": True},
                        "eval": {"robust_eps": 2 / 255, "robust_steps": 10}})
    curve = {"robust_acc": 0.4, "images_per_process_per_epoch": 100, "world_size": 1,
             "adversarial": {"passes_per_step": 2}, "history": [{"epoch": 1, "robust_acc": 0.4}]}
    summaries.update(s=curve, a={**summaries["a"], **{k: v for k, v in curve.items() if k != "robust_acc"}})
    judged = run_claims(adv, [adv, plain, scratch], summaries.get, summaries["a"])
    assert judged.scratch is scratch and judged.unattacked is plain and judged.claims[0].shown is not None
    assert "no comparison with plain fine-tuning yet: 'ResNet-18 plain' did not measure" in judged.claims[0].text
    # without robust accuracy in the run's summary the line names no run, so no button
    assert run_claims(adv, [adv, plain], summaries.get, {}).unattacked is None
    # without any standard run the line says what to train
    alone = run_claims(adv, [adv], summaries.get, summaries["a"])
    assert alone.unattacked is None and "train standard fine-tuning with the same settings" in alone.claims[0].text


def test_a_run_at_chance_is_flagged_with_advice_from_its_steps():
    from app.claims_view import at_chance

    eight = [f"c{i}" for i in range(8)]
    text = at_chance({"classes": eight, "test_acc": 0.125})
    assert "12.5%" in text and "8 classes" in text and "test accuracy" in text
    assert at_chance({"classes": eight, "test_acc": 0.40}) is None
    assert "validation accuracy" in at_chance({"classes": eight, "val_acc": 0.13})
    assert at_chance({"classes": ["a"], "test_acc": 0.0}) is None and at_chance({}) is None
    # a batch as large as the training set: one step an epoch, which the advice names
    small = {"classes": ["a", "b", "c"], "test_acc": 0.333, "steps_per_epoch": 1, "train_images": 33}
    text = at_chance(small, {"train": {"epochs": 8, "batch_size": 64}})
    assert "only 8 optimiser steps" in text and "batch size (64)" in text and "33 training images" in text
    assert "Find the learning rate automatically" in text
    # with the run's learning rate known, the Model page's smaller batch and the rate lowered with it
    rated = at_chance(small, {"train": {"epochs": 8, "batch_size": 64}, "optim": {"lr": 0.01}})
    assert "A batch size of 4 gives 8 steps per epoch, with the learning rate lowered in step to 0.000625" in rated
    two = at_chance(dict(small, steps_per_epoch=2, train_images=60),
                    {"train": {"epochs": 4, "batch_size": 32}, "optim": {"lr": 0.01, "lr_auto": True}})
    assert "A batch size of 8 gives 7 steps per epoch (the learning rate is found for it automatically)" in two
    few = dict(small, steps_per_epoch=12, train_images=400)
    assert "only 48 optimiser steps (4 epochs of 12 batches of 32)" in at_chance(few, {"train": {"epochs": 4,
                                                                                           "batch_size": 32}})
    many = at_chance(few, {"train": {"epochs": 40, "batch_size": 32}})
    assert "480 optimiser steps" in many and "lower the learning rate" in many
    auto = at_chance(few, {"train": {"epochs": 40, "batch_size": 32}, "optim": {"lr_auto": True}})
    assert "found automatically" in auto and "switch on" not in auto  # it was on already
    below = at_chance(dict(small, test_acc=0.0), {"train": {"epochs": 8, "batch_size": 64}})
    assert "below the level of guessing" in below and "class folder" in below
    # with so few steps, the steps come first and the labels second (they are the likelier cause)
    assert below.index("only 8 optimiser steps") < below.index("class folder"), below
    below_many = at_chance(dict(few, test_acc=0.0), {"train": {"epochs": 40, "batch_size": 32}})
    assert below_many.index("class folder") < below_many.index("480 optimiser steps"), below_many



def test_a_run_at_guessing_that_learnt_its_training_images_by_heart_is_told_so_not_to_lower_its_rate(capsys):
    """A new user's 45 drawn shapes (WiSE-FT demo, augmentation off): 95% of the training images right in the last
    epoch, 33% on validation and test, and the warning said to lower the learning rate and the WiSE-FT line to
    train longer. A run that learnt its training images by heart is told so, with more images (and augmentation
    where it was off) as the advice, on the Results page and after `train` alike."""
    from app.claims_view import at_chance
    from engine.chance import MEMORISED_GAP, chance_cause
    from engine.claims import wise_ft_reading
    from engine.cli import _say_caution
    from engine.config import RunConfig, with_section

    history = [{"epoch": e, "train_acc": t, "val_acc": 1 / 3} for e, t in ((1, 0.6), (2, 0.8), (3, 0.956))]
    summary = {"classes": ["leaf", "star", "wave"], "test_acc": 1 / 3, "val_acc": 1 / 3, "history": history,
               "steps_per_epoch": 12, "train_images": 45,
               "data_report": {"split_counts": {"test": {"leaf": 5, "star": 5, "wave": 5}}}}
    config = {"train": {"epochs": 20, "batch_size": 4, "augment": False}, "optim": {"lr": 0.0025}}
    cause = chance_cause(summary, 20, 4)
    assert cause.kind == "memorised" and cause.train_acc == 0.956 and cause.n_train == 45
    text = at_chance(summary, config)
    assert "96% of its 45 training images right" in text and "by heart" in text and "more images" in text
    assert "lower the learning rate" not in text and "Augment images" in text, text
    assert "Frozen blocks" not in text and "a longer run" not in text, "a 20-epoch run training every layer"
    assert "Augment images" not in at_chance(summary, {**config, "train": {**config["train"], "augment": True}})
    # 45% of 96 training images against 12.5% held out on 8 classes read "it learnt those by heart": under BY_HEART
    # the run is said to be learning those images
    from engine.chance import BY_HEART

    halfway = {**summary, "history": [{"epoch": 2, "train_acc": 0.45, "val_acc": 0.125}], "train_images": 96,
               "classes": list("abcdefgh"), "test_acc": 0.125, "val_acc": 0.125}
    text = at_chance(halfway, config)
    assert chance_cause(halfway, 2, 32).kind == "memorised" and 0.45 < BY_HEART, text
    assert "45% of its 96 training images right" in text and "by heart" not in text, text
    assert "it is learning those particular images (overfitting)" in text, text
    # a new user's Fastest model run (4 epochs, 2 blocks frozen, no augmentation) at 46% reached 85% with the Quick
    # demo's recipe on the same images: its recipe is named too, and nothing says more epochs cannot help
    fastest = {"train": {"epochs": 4, "batch_size": 4, "augment": False}, "optim": {"lr": 0.0025, "freeze_blocks": 2}}
    text = at_chance(summary, fastest)
    assert "*Frozen blocks* at 0" in text and "first 2 blocks" in text
    assert "a longer run (this one had 4 epochs)" in text
    assert "will not mend" not in text, text
    # the last epoch decides: a run whose training accuracy is near its held-out accuracy is not memorising
    near = dict(summary, history=history[:-1] + [dict(history[-1], train_acc=1 / 3 + MEMORISED_GAP - 0.01)])
    assert chance_cause(near, 20, 4).kind == "many_steps" and "lower the learning rate" in at_chance(near, config)
    cfg = with_section(with_section(RunConfig(), "train", epochs=4, batch_size=4, augment=False), "optim", lr=0.0025,
                       freeze_blocks=2)
    _say_caution(summary, cfg)
    err = capsys.readouterr().err
    assert "by heart" in err and "--set train.augment=true" in err and "--lr" not in err, err
    assert "--set optim.freeze_blocks=0" in err and "this one had 4" in err, err
    curve = [{"alpha": a, "val_acc": 1 / 3, "ood_acc": 0.4} for a in (0.0, 0.5, 1.0)]
    assert "Train it longer" not in wise_ft_reading(curve, 3)


def test_results_page_finds_adversarial_training_from_scratch_with_the_same_attack():
    from types import SimpleNamespace as R

    from engine.baselines import scratch_run

    def cfg(pretrained="bundled", eps=2 / 255, adversarial=True):
        return {"data": {"source": "a.zip", "image_size": 32}, "backbone": {"name": "resnet18", "pretrained": pretrained},
                "train": {"epochs": 20}, "seed": 0, "eval": {"robust_eps": 4 / 255, "robust_subset": 128},
                "adversarial": {"enabled": adversarial, "attack": "fgsm", "eps": eps, "steps": 10}}

    ft = R(id="ft", status="finished", config=cfg(), run_dir="ft")
    other_eps = R(id="e", status="finished", config=cfg("none", eps=8 / 255), run_dir="e")
    plain_scratch = R(id="p", status="finished", config=cfg("none", adversarial=False), run_dir="p")
    running = R(id="r", status="running", config=cfg("none"), run_dir="r")
    scratch = R(id="s", status="finished", config={**cfg("none"), "train": {"epochs": 80}}, run_dir="s")
    runs = [ft, other_eps, plain_scratch, running, scratch]
    assert scratch_run(ft, runs) is scratch  # any length: the claim is about compute
    assert scratch_run(ft, runs[:4]) is None
    assert scratch_run(scratch, runs) is None  # a scratch run is not compared with itself or another


def test_wise_ft_claim_names_the_alpha_every_page_uses_when_two_tie():
    """A tie on OOD accuracy goes to the larger alpha in the claim line, as in chosen_alpha (the
    slider's own pick, Try it, Export): a new user saw 0.15 in one and 0.20 in the other."""
    from engine.predict import chosen_alpha

    curve = [{"alpha": 0.0, "val_acc": 0.80, "ood_acc": 0.70}, {"alpha": 0.15, "val_acc": 0.80, "ood_acc": 0.881},
             {"alpha": 0.2, "val_acc": 0.80, "ood_acc": 0.881}, {"alpha": 1.0, "val_acc": 0.80, "ood_acc": 0.79}]
    line = wise_ft_claim({"wise_curve": curve}).text
    assert "alpha 0.2 (the same OOD as at alpha 0.15) beats both ends" in line, line
    assert chosen_alpha({"wise_curve": curve}) == 0.2


def test_mixes_that_only_tie_with_the_run_pick_end_are_named_as_a_tie_with_it():
    """A new user's curve reached 97.9% OOD at alpha 0.85 and stayed there to alpha 1: the claim line named "the
    best mix, alpha 0.95" beside the slider's "alpha 1.00, the run's own pick", two answers on one page. Mixes that
    only tie with the better end are now named as a tie with that end's alpha, a run of them as a range."""
    from engine.predict import chosen_alpha

    curve = [{"alpha": a / 20, "val_acc": 1.0, "ood_acc": 0.74 + a * 0.01} for a in range(17)]
    curve += [{"alpha": a / 20, "val_acc": 1.0, "ood_acc": 0.979} for a in range(17, 21)]
    claim = wise_ft_claim({"wise_curve": curve})
    assert claim.shown is False and chosen_alpha({"wise_curve": curve}) == 1.0
    assert "the best mixes, alpha 0.85 to 0.95, only tie with alpha 1 on OOD" in claim.text, claim.text
    gap = [p for p in curve if p["alpha"] != 0.9]  # not neighbours on the grid: listed, not a range
    assert "alpha 0.85, 0.95, only tie with alpha 1" in wise_ft_claim({"wise_curve": gap}).text
    # a mix level with the worse end only is below the better end: said as such, no tie named
    low = [{"alpha": a / 20, "val_acc": 1.0, "ood_acc": 0.8 if a in (0, 10) else 0.7} for a in range(20)]
    text = wise_ft_claim({"wise_curve": low + [{"alpha": 1.0, "val_acc": 1.0, "ood_acc": 0.9}]}).text
    assert "tie" not in text and "alpha 0.5 (the same OOD as at alpha 0), is 10.0 points below the better end" in text
    # both ends level with the best mixes (a teacher's 100% at every alpha): a tie with both, and the plain line
    # does not say fine-tuning lowered OOD accuracy ("100.0% vs 100.0%")
    level = [{"alpha": a / 4, "val_acc": 1.0, "ood_acc": 1.0} for a in range(5)]
    assert "alpha 0.25 to 0.75, only tie with both ends on OOD" in wise_ft_claim({"wise_curve": level}).text
    assert wise_ft_reading(level) == ("Fine-tuning left OOD accuracy where it was in this run: the starting and "
                                      "fine-tuned models are level on corrupted images (100.0%), and no mix beats "
                                      "them.")
    # the same count of right images, set apart by float rounding (means of float32 accuracies): a teacher's run
    # picked alpha 0.95 at 0.675000011920929 over alpha 1 at 0.6750000069538752, level on every figure with it
    from engine.methods.wise_ft import tied_alphas

    noisy = [{"alpha": 0.0, "val_acc": 0.9, "ood_acc": 0.6166666646798452},
             {"alpha": 0.95, "val_acc": 0.8500000238418579, "ood_acc": 0.675000011920929},
             {"alpha": 1.0, "val_acc": 0.8500000238418579, "ood_acc": 0.6750000069538752}]
    assert chosen_alpha({"wise_curve": noisy}) == 1.0 and tied_alphas(noisy, noisy[1]) == [1.0]
    assert "the best mix, alpha 0.95, only ties with alpha 1 on OOD" in wise_ft_claim({"wise_curve": noisy}).text
    # the same counts summed in another order, either side of a rounding boundary (rounding to 6 decimals split them)
    counts = [101, 288, 167, 131, 216, 246]
    a, b = sum(c / 320 for c in counts) / 6, sum(c / 320 for c in reversed(counts)) / 6
    assert a != b, "the case itself: float rounding sets them apart"
    edge = [{"alpha": 0.0, "val_acc": 0.9, "ood_acc": 0.5}, {"alpha": 0.5, "val_acc": 0.9, "ood_acc": max(a, b)},
            {"alpha": 1.0, "val_acc": 0.9, "ood_acc": min(a, b)}]
    assert chosen_alpha({"wise_curve": edge}) == 1.0 and tied_alphas(edge, edge[1]) == [1.0]


def test_a_run_with_every_held_out_image_right_says_its_data_leaves_a_method_no_room(capsys):
    """A teacher's drawn shapes reached 100% with every demo, and each claim line read "not shown" with no word on
    why: a run with every validation and test image right says that on data this easy the methods cannot differ,
    under its lines on Results and after `train`, where a line not shown compares figures that are all 100%; not
    for a claim on other figures (robust accuracy, the smaller model, OOD) below 100%, nor one shown or undecided."""
    from engine.claims import Claim, ceiling_words
    from engine.cli import _say_wise

    easy = {"val_acc": 1.0, "test_acc": 1.0}
    ada, pruned = Claim("adafilter", False, "AdaFilter: ..."), Claim("pruning", True, "Pruning: ...")
    assert "on data this easy" in ceiling_words(easy, [ada, pruned])
    assert ceiling_words(easy, [pruned]) is None and ceiling_words(easy, []) is None
    assert ceiling_words(easy, [Claim("adafilter", None, "AdaFilter: run standard fine-tuning")]) is None
    assert ceiling_words({"val_acc": 1.0, "test_acc": 15 / 16}, [ada]) is None
    assert ceiling_words({"val_acc": float("nan"), "test_acc": float("nan")}, [ada]) is None, "NaN is not 100%"
    assert "on data this easy" in ceiling_words({"val_acc": 1.0}, [ada]), "data without a test split"
    smaller = Claim("pruning", False, "Pruning: ...")
    assert ceiling_words({**easy, "structured": {"val_acc": 0.8}}, [smaller]) is None, "the smaller model at 80%"
    attacked = Claim("adversarial", False, "Adversarial: ...")
    assert ceiling_words({**easy, "robust_acc": 0.2}, [attacked]) is None
    assert "on data this easy" in ceiling_words({**easy, "robust_acc": 1.0}, [attacked])
    curve = [{"alpha": a / 20, "val_acc": 1.0, "ood_acc": 0.74 + a * 0.01} for a in range(17)]
    curve += [{"alpha": a / 20, "val_acc": 1.0, "ood_acc": 0.979} for a in range(17, 21)]
    _say_wise({**easy, "wise_curve": curve})  # OOD short of 100%: room left on the corrupted images
    assert "on data this easy" not in capsys.readouterr().out
    _say_wise({**easy, "wise_curve": [dict(p, ood_acc=1.0) for p in curve]})
    assert "on data this easy" in capsys.readouterr().out


def test_the_command_line_says_the_data_too_easy_note_once_for_two_methods_at_100(tmp_path, capsys):
    """After a run with adversarial fine-tuning and WiSE-FT, neither shown on data where every held-out image is
    right, `train` printed the data-too-easy note under the adversarial line and again under WiSE-FT's: it says it
    once. And with a standard twin that measured no robust accuracy, `train` crashed on the empty list of settings
    it differs in (the claim line says what that run lacks)."""
    import json
    from types import SimpleNamespace as R

    from engine.cli import _say_methods

    base = {"data": {"source": "a.zip", "image_size": 64}, "seed": 0, "train": {"epochs": 4},
            "backbone": {"name": "resnet18", "pretrained": "bundled"}}
    run = R(id="r1", name="Both", status="finished", run_dir=str(tmp_path / "r"),
            config={**base, "adversarial": {"enabled": True}, "wise_ft": {"enabled": True}})
    plain = R(id="s1", name="Standard", status="finished", run_dir=str(tmp_path / "s"),
              config={**base, "eval": {"robust": True}})
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "summary.json").write_text(json.dumps({"val_acc": 1.0, "test_acc": 1.0, "robust_acc": 1.0}))
    store = R(get_run={"r1": run}.get, list_runs=lambda: [run, plain])
    curve = [{"alpha": a / 4, "val_acc": 1.0, "ood_acc": 1.0} for a in range(5)]
    summary = {"run_id": "r1", "val_acc": 1.0, "test_acc": 1.0, "robust_acc": 1.0, "classes": ["a", "b"],
               "wise_curve": curve}
    _say_methods(summary, store)
    out = capsys.readouterr().out
    assert "Adversarial: the paper's claim not shown" in out and "WiSE-FT: the paper's claim not shown" in out, out
    assert out.count("on data this easy") == 1, out
    _say_methods(summary, None)  # no store, no adversarial line: WiSE-FT's lines say it
    assert capsys.readouterr().out.count("on data this easy") == 1
    plain.config = base  # robust accuracy not measured: no comparison, and no crash
    _say_methods(summary, store)
    out = capsys.readouterr().out
    assert "did not measure robust accuracy under this run's attack" in out and "does not count" not in out, out


def test_verdicts_on_few_held_out_images_come_with_their_weight():
    from app.claims_view import small_split_note

    def summary(val, test):
        return {"data_report": {"split_counts": {"val": {"a": val}, "test": {"a": test}}}}

    note = small_split_note(summary(7, 7))
    assert "7 validation images (one image is 14.3 points of accuracy)" in note and "7 test images" in note
    assert "figures up to 29 points apart" in note, "two images of the smaller split"
    one = small_split_note(summary(1, 13))  # a split of one image: one image apart, never "200 points"
    assert "figures up to 100 points apart" in one and "can be one image apart" in one, one
    assert small_split_note(summary(128, 128)) == ""
    assert "test" not in small_split_note(summary(20, 0)) and "20 validation images" in small_split_note(summary(20, 0))
    assert small_split_note({}) == ""


def test_the_binomial_tail_is_scipys_one_sided_binomial_test():
    """`binomial_tail` (scipy.special, light to import for a one-image predict) gives scipy.stats.binomtest's
    one-sided p-value."""
    from scipy.stats import binomtest

    from engine.chance import binomial_tail

    for right, n, p in [(4, 9, 1 / 3), (7, 9, 6 / 9), (17, 25, 13 / 25), (1, 3, 0.9), (128, 128, 0.125),
                        (3, 128, 0.125), (100, 128, 0.5), (0, 5, 0.5), (5, 5, 0.2)]:
        assert binomial_tail(right, n, p) == pytest.approx(binomtest(right, n, p, alternative="greater").pvalue,
                                                           rel=1e-9, abs=1e-300), (right, n, p)


def test_an_accuracy_above_guessing_by_no_more_than_luck_is_flagged_with_its_odds():
    # a new user's 3-class run: 44% right on 9 test images is 4 of 9, which a guesser gets 35% of the time
    from scipy.stats import binomtest

    from app.claims_view import LUCK_MARK, at_chance

    report = lambda *n: {"split_counts": {"test": dict(zip("abc", n))}}  # noqa: E731
    nine = {"classes": ["a", "b", "c"], "test_acc": 4 / 9, "data_report": report(3, 3, 3)}
    text = at_chance(nine)
    p = binomtest(4, 9, 1 / 3, alternative="greater").pvalue
    assert 0.3 < p < 0.5 and f"p = {p:.2f}" in text and "4 of 9" in text and f"{100 * p:.0f}% of the time" in text
    assert "not clearly" in text and LUCK_MARK in text and "More test images per class" in text
    assert "largest class" not in text, "a balanced split: guessing is the bar"
    # the same accuracy on 90 images is no luck (p < 0.05), and nothing is said
    assert at_chance(dict(nine, data_report=report(30, 30, 30))) is None
    # 6 of 9 is clear enough (p = 0.04); without the split's size there is nothing to test
    assert at_chance(dict(nine, test_acc=6 / 9)) is None
    assert at_chance({"classes": ["a", "b", "c"], "test_acc": 4 / 9}) is None
    # an empty split, a missing count and an accuracy the counts cannot give (0.53 of 2 images) say nothing
    assert at_chance(dict(nine, data_report=report(0, 0, 0))) is None
    assert at_chance(dict(nine, data_report={"split_counts": {"test": {"a": None}}})) is None
    assert at_chance(dict(nine, test_acc=0.53, data_report=report(1, 1, 0))) is None
    # an imbalanced split: always answering its largest class (6 of 9) scores 67%, so 7 of 9 is no proof
    lopsided = dict(nine, test_acc=7 / 9, data_report=report(6, 2, 1))
    p = binomtest(7, 9, 6 / 9, alternative="greater").pvalue
    assert p > 0.3 and "(33.3%; 66.7% always answering its largest class)" in at_chance(lopsided)
    # and 5 of 9 is above guessing but below that: said so plainly, without odds
    below = at_chance(dict(lopsided, test_acc=5 / 9))
    assert "no better than always answering the largest class of the test images (6 of 9, 66.7%)" in below
    # a p-value just over the bar keeps its third decimal: 0.054 read as "p = 0.05"
    near = {"classes": ["a", "b"], "test_acc": 17 / 25, "data_report": {"split_counts": {"test": {"a": 13, "b": 12}}}}
    p = binomtest(17, 25, 13 / 25, alternative="greater").pvalue
    assert 0.05 <= p < 0.1 and f"p = {p:.3f}" in at_chance(near), (p, at_chance(near))
    assert "binomial" not in below and LUCK_MARK in below
    # a validation-only dataset is tested on its validation images
    val = {"classes": ["a", "b"], "val_acc": 0.6, "data_report": {"split_counts": {"val": {"a": 5, "b": 5}}}}
    assert "validation accuracy (60.0%, 6 of 10 images)" in at_chance(val)


def test_a_run_whose_validation_peaked_and_fell_is_told_about_its_learning_rate():
    # a new user's run: 100% validation in the head-only epochs, 33% at the end; "more steps" was the wrong advice
    from app.claims_view import at_chance

    # (6 validation images: 6 of 6 right is beyond luck among 3 classes, p = 0.001; the drop is 4 images)
    summary = {"classes": ["a", "b", "c"], "test_acc": 1 / 3, "steps_per_epoch": 3, "train_images": 12,
               "data_report": {"split_counts": {"val": {"a": 2, "b": 2, "c": 2}}},
               "history": [{"epoch": 1, "val_acc": 1.0}, {"epoch": 2, "val_acc": 1.0}, {"epoch": 3, "val_acc": 1 / 3}]}
    train = {"train": {"epochs": 3, "batch_size": 4}}
    text = at_chance(summary, train)
    assert "reached 100.0% in epoch 1 and fell to 33.3%" in text and "learning rate was likely too high" in text
    assert "more steps" not in text
    # not that advice, but the steps': a peak guessing reaches by luck (3 of 6, p = 0.32), a drop of one or two
    # images, or a split of unknown size
    # a fall luck could give: 8 of 12 then 4 of 12 (Fisher exact p = 0.11; a new user's 2-epoch run at lr 0.000625
    # was told its rate was likely too high)
    twelve = dict(summary, history=[{"epoch": 1, "val_acc": 8 / 12}, {"epoch": 2, "val_acc": 4 / 12}],
                  data_report={"split_counts": {"val": {"a": 4, "b": 4, "c": 4}}})
    assert "likely too high" not in at_chance(twelve, train) and "optimiser steps" in at_chance(twelve, train)
    for peak, val in ((0.5, None), (2 / 3, {"a": 2, "b": 2, "c": 2}), (1.0, None)):
        other = dict(summary, history=[{"epoch": 1, "val_acc": peak}, {"epoch": 3, "val_acc": 1 / 3}],
                     data_report={"split_counts": {"val": val or {}}} if val else {})
        if peak == 0.5:
            other["data_report"] = summary["data_report"]
        assert "only 9 optimiser steps" in at_chance(other, train), (peak, val)


def test_a_run_whose_training_loss_blew_up_is_told_to_lower_its_learning_rate(capsys):
    """A Quick demo at 32 px (lr 0.02) reached a training loss of 21.7 in epoch 2, ten times a guess's 2.08 among 8
    classes, and ended at 21.9% test with no word on why (above guessing, so no chance warning)."""
    import math

    from app.claims_view import unstable_note
    from engine.chance import UNSTABLE_LOSS, unstable_epoch, unstable_words
    from engine.cli import _say_caution
    from engine.config import RunConfig, apply_overrides

    classes = list("abcdefgh")
    history = [{"epoch": 1, "train_loss": 7.7}, {"epoch": 2, "train_loss": 21.7}, {"epoch": 3, "train_loss": 2.0}]
    summary = {"classes": classes, "test_acc": 28 / 128, "val_acc": 27 / 128, "history": history}
    entry, guess = unstable_epoch(summary)
    assert entry["epoch"] == 2 and guess == pytest.approx(math.log(8))
    assert unstable_words(summary, 0.02).startswith(
        "Training was unstable: its training loss reached 21.7 in epoch 2, 10 times what a guess scores among 8 "
        "classes (2.08): the optimiser's steps overshot, as they do when the learning rate (0.02) is too high")
    config = RunConfig().to_dict() | {"optim": {"lr": 0.02, "lr_auto": False}}
    note = unstable_note(summary, config)
    assert note.endswith("Train again at a lower learning rate: on the Model page, set a quarter of it, 0.005."), note
    auto = unstable_note(dict(summary, lr_find={"lr": 0.04}), {"optim": {"lr": 0.001, "lr_auto": True}})
    assert "learning rate (0.04)" in auto and "switch off *Find the learning rate automatically* and set a quarter " \
        "of it, 0.01." in auto, auto
    assert unstable_note(summary, {"adversarial": {"enabled": True}}) is None, "attacked images' loss: not judged"
    cfg = apply_overrides(RunConfig(), ["optim.lr=0.02"])
    _say_caution(summary, cfg)
    err = capsys.readouterr().err
    assert "warning: Training was unstable" in err and "Train again at a quarter of the rate: --lr 0.005." in err, err
    # an ordinary run: its first epoch near a guess's loss, falling
    calm = dict(summary, history=[{"epoch": 1, "train_loss": 2.36}, {"epoch": 2, "train_loss": 1.9}])
    assert unstable_epoch(calm) is None and unstable_note(calm, config) is None
    assert 2.36 < UNSTABLE_LOSS * math.log(8) and unstable_epoch({"history": history}) is None, "no classes: no guess"
    _say_caution(calm, cfg)
    assert "unstable" not in capsys.readouterr().err


def test_a_difference_in_points_is_the_difference_of_the_percentages_shown():
    from engine.claims import points_diff

    assert points_diff(0.38514, 0.35245) == "+3.3", "38.5% and 35.2% differ by 3.3 points, not 3.27 rounded up"
    assert points_diff(0.3524, 0.3851) == "-3.3"
    assert points_diff(0.5, 0.5) == "+0.0"
    curve = [{"alpha": 0.0, "val_acc": 0.50, "ood_acc": 0.30}, {"alpha": 0.5, "val_acc": 0.60, "ood_acc": 0.38514},
             {"alpha": 1.0, "val_acc": 0.60, "ood_acc": 0.35245}]
    assert "beats both ends on OOD by 3.3 points (38.5% vs 30.0% at alpha 0 and 35.2% at alpha 1)" in wise_ft_claim(
        {"wise_curve": curve}).text


def test_a_verdict_agrees_with_the_rounded_points_it_shows():
    """The line shows the difference of the rounded percentages; its verdict reads the same number, so
    a drop shown as exactly the allowance is within it, whatever the unrounded figures were."""
    run = {"sparsity": 0.7, "test_acc": 0.50004}  # 50.0% against 52.0%: -2.0 points shown
    text = pruning_claim(run, {"test_acc": 0.52004 + 0.00045}).text
    assert "(-2.0 points, within the 2-point allowance)" in text and pruning_claim(
        run, {"test_acc": 0.52049}).shown is True, text
    assert pruning_claim(run, {"test_acc": 0.521}).shown is False, "-2.1 points: more than the allowance"


def test_a_small_test_split_within_luck_beside_validation_clearly_above_it_is_no_finding():
    """A student's 5-class run got 14 of 18 validation images right and 8 of 18 test ones, as many as always answering
    the largest class: the page led with "It may have learnt nothing yet". The validation images show it learnt;
    the splits' disagreement is said by the small-split note. Validation within luck too keeps the finding."""
    from engine.chance import chance_finding, small_split_words

    counts = {"Inflamed": 1, "Normal tissue": 8, "Type A": 5, "Type C lesion": 2, "type b": 2}
    run = {"classes": list(counts), "val_acc": 14 / 18, "test_acc": 8 / 18,
           "data_report": {"split_counts": {"val": counts, "test": counts}}}
    assert chance_finding(run) is None
    said = small_split_words(run)
    assert "Here validation and test are 33.4 points apart (14 of 18 and 8 of 18 images right)" in said, said
    assert chance_finding({**run, "val_acc": 9 / 18}).kind == "largest", "validation within luck: still said"
    assert chance_finding({k: v for k, v in run.items() if k != "val_acc"}).kind == "largest"
    # nor does the test split's level come back as a weak-class note (it did, through split_at_guessing)
    from engine.chance import weak_class_words

    confusion = [[1, 0, 0, 0, 0], [0, 4, 2, 1, 1], [0, 2, 2, 1, 0], [0, 1, 0, 1, 0], [0, 1, 1, 0, 0]]
    assert weak_class_words({**run, "test_confusion": confusion}) is None
    # a large test split (60 images) gets no small-split note: the finding stays, said on its own
    ten = {"classes": [str(i) for i in range(10)], "val_acc": 40 / 200, "test_acc": 9 / 60,
           "data_report": {"split_counts": {"val": {str(i): 20 for i in range(10)},
                                            "test": {str(i): 6 for i in range(10)}}}}
    assert chance_finding(ten).kind == "luck"
    # below guessing on a small test split beside validation clearly above it: no "check each class folder" (a
    # photographer's 9 of 21 validation images right beside 1 of 21 test ones; the gap note says the gap)
    six = {c: n for c, n in zip("abcdef", (5, 2, 5, 2, 4, 3))}
    photos = {"classes": list(six), "val_acc": 9 / 21, "test_acc": 1 / 21,
              "data_report": {"split_counts": {"val": six, "test": six}}}
    assert chance_finding(photos) is None
    assert chance_finding({**photos, "val_acc": 4 / 21}).kind == "below", "validation within luck: still said"
    assert chance_finding(photos, validation_clears=False).kind == "below"
    assert chance_finding({**ten, "test_acc": 3 / 60}).kind == "below", "a large test split keeps its finding"
    forty = {c: 8 for c in "abcde"}  # 0 of 40 beside good validation: beyond luck below guessing (labels swapped?)
    swapped = {"classes": list(forty), "val_acc": 30 / 40, "test_acc": 0.0,
               "data_report": {"split_counts": {"val": forty, "test": forty}}}
    assert chance_finding(swapped).kind == "below"


def test_compare_names_the_runs_at_guessing():
    """A field biologist compared two runs at guessing (35.3% against 17.6% on 17 test images) and read that one had
    doubled the other's accuracy: Compare names the runs whose own page says they may have learnt nothing."""
    from app.claims_view import guessing_runs_words

    counts = {"split_counts": {"test": {c: 4 for c in "abcd"}, "val": {c: 4 for c in "abcd"}}}
    weak = {"classes": list("abcd"), "test_acc": 6 / 16, "val_acc": 5 / 16, "data_report": counts}
    strong = {"classes": list("abcd"), "test_acc": 15 / 16, "val_acc": 15 / 16, "data_report": counts}
    said = guessing_runs_words({"01:22 · Fastest model": weak, "01:28 · Fastest model (2)": dict(weak, test_acc=0.0),
                                "Quick demo": strong})
    assert said.startswith("'01:22 · Fastest model' and '01:28 · Fastest model (2)' are not clearly better than "
                           "guessing on their own Results page"), said
    assert "Quick demo" not in said and guessing_runs_words({"Quick demo": strong, "gone": {}}) == ""
    assert guessing_runs_words({"a": weak}).startswith("'a' is not clearly better than guessing on its own")
    # and how much one image weighs there, as the single-run page says
    from app.claims_view import compare_few_images_words

    assert compare_few_images_words({"a": weak, "b": strong}) == (
        "Measured on few images (down to 16 held-out images a split: one image is 6.2 points of accuracy): figures "
        "up to 12 points apart between these runs can be one or two images apart.")
    single = {"split_counts": {"test": {"a": 1}, "val": {"a": 5}}}
    assert compare_few_images_words({"a": dict(strong, data_report=single)}).endswith(
        "figures up to 100 points apart between these runs can be one image apart.")
    large = {"split_counts": {"test": {c: 40 for c in "abcd"}, "val": {c: 40 for c in "abcd"}}}
    assert compare_few_images_words({"a": dict(strong, data_report=large), "gone": {}}) == ""


def test_a_validation_test_gap_larger_than_chance_gives_is_pointed_out():
    # the WiSE-FT demo on the sample, seed 0: 94 of 128 validation images right, 76 of 128 test images
    from scipy.stats import fisher_exact

    from app.claims_view import val_test_gap

    counts = {"split_counts": {"val": {"a": 64, "b": 64}, "test": {"a": 64, "b": 64}}}
    run = {"val_acc": 94 / 128, "test_acc": 76 / 128, "data_report": counts}
    p = fisher_exact([[94, 34], [76, 52]]).pvalue
    text = val_test_gap(run)
    assert p < 0.05 and text.startswith("Validation (73.4%) and test (59.4%) differ by 14.0 points on 128 and 128")
    assert f"a gap at least this large would come up only {100 * p:.1f}% of the time" in text
    assert f"p = {p:.3f}" in text and "another seed" in text
    given = dict(run, data_report={**counts, "split_given": True})
    assert "validation and test folders may hold different kinds" in val_test_gap(given), "the user's own split"
    big = {"val_acc": 0.9, "test_acc": 0.8, "data_report": {"split_counts": {"val": {"a": 1000}, "test": {"a": 1000}}}}
    assert "less than 0.1% of the time (Fisher's exact test, p < 0.001)" in val_test_gap(big), "no 4e-08%"
    assert val_test_gap(dict(run, val_acc=float("nan"))) is None, "an empty split's NaN"
    assert val_test_gap(dict(run, test_acc=87 / 128)) is None, "5.5 points on 128 images: chance, nothing said"
    assert val_test_gap(dict(run, test_acc=None)) is None and val_test_gap({"val_acc": 0.7, "test_acc": 0.5}) is None
    assert val_test_gap(dict(run, test_acc=0.6)) is None, "not a count of 128 images: measured on something else"


def test_a_wide_gap_on_few_images_that_chance_still_gives_is_said_with_its_odds():
    """A new user's second run read 66.7% validation and 100% test (8 and 12 of 12 images), under a note that
    figures up to 17 points apart can be an image or two: a 33-point gap, unexplained. Chance still gives it
    (Fisher's exact test, p about 0.09), so it is said as such, not as a finding."""
    from scipy.stats import fisher_exact

    from engine.chance import small_split_words, val_test_gap_words

    counts = {"split_counts": {"val": {"a": 6, "b": 6}, "test": {"a": 6, "b": 6}}}
    run = {"val_acc": 8 / 12, "test_acc": 1.0, "data_report": counts}
    p = fisher_exact([[8, 4], [12, 0]]).pvalue
    assert val_test_gap_words(run) is None and p > 0.05, "not beyond chance"
    said = small_split_words(run)
    assert said.endswith(f" Here validation and test are 33.3 points apart (8 of 12 and 12 of 12 images right): with "
                         f"this few images a gap at least this large still comes up by chance {100 * p:.0f}% of the "
                         "time (Fisher's exact test), so neither figure is firm; the same settings with another seed "
                         "show which is typical."), said
    given = small_split_words(dict(run, data_report={**counts, "split_given": True}))
    assert given.endswith("your validation and test folders may also hold different kinds of pictures (the split is "
                          "yours)."), "another seed does not redraw the user's own split"
    assert "Here validation" not in small_split_words(dict(run, val_acc=10 / 12)), "two images: the caution covers it"
    wide = {"val_acc": 2 / 12, "test_acc": 1.0, "data_report": counts}
    assert val_test_gap_words(wide) is not None and "Here validation" not in small_split_words(wide), \
        "beyond chance: the finding says it, not this"
    big = {"val_acc": 0.95, "test_acc": 0.8, "data_report": {"split_counts": {"val": {"a": 100, "b": 100},
                                                                              "test": {"a": 100, "b": 100}}}}
    assert val_test_gap_words(big).endswith("would come up less than 0.1% of the time (Fisher's exact test, "
                                            "p < 0.001)."), "not \"only less than\""
    half = val_test_gap_words({**wide, "val_acc": 6 / 12})  # p about 0.014
    assert "would come up only 1.4% of the time (Fisher's exact test, p = 0.014)" in half, half


def test_one_optimiser_step_is_said_in_the_singular():
    """A 1-epoch run whose batch held every training image read "It took only 1 optimiser steps", on Results and
    after `train`."""
    from app.claims_view import chance_advice
    from engine.chance import ChanceCause
    from engine.cli import _chance_advice
    from engine.config import RunConfig, with_section

    cfg = with_section(RunConfig(), "train", epochs=1, batch_size=16)
    one = ChanceCause("few_steps", steps=1, per_epoch=1, epochs=1, batch=16, n_train=12)
    for words in (_chance_advice({}, cfg, one), chance_advice(cfg.to_dict(), one)):
        assert "It took only 1 optimiser step " in words or "It took only 1 optimiser step:" in words, words
    many = ChanceCause("many_steps", steps=1, per_epoch=1, epochs=1, batch=16, n_train=12)
    assert chance_advice(cfg.to_dict(), many).startswith("It took 1 optimiser step:")


def test_a_split_too_small_to_resolve_the_allowance_gives_no_verdict():
    """A new user's 8 test images (one image 12.5 points) read "the paper's claim not shown ... (-12.5 points,
    more than the 2-point allowance)" under a note that said to read verdicts as hints: such a split cannot
    decide a 2-point claim (nor AdaFilter's 1 point, nor structured pruning's 3 on 8 validation images)."""
    def report(val, test):
        return {"data_report": {"split_counts": {"val": {"a": val // 2, "b": val - val // 2},
                                                 "test": {"a": test // 2, "b": test - test // 2}}}}

    small = {"sparsity": 0.7, "test_acc": 0.625, **report(8, 8)}
    claim = pruning_claim(small, {"test_acc": 0.75})
    assert claim.shown is None and "one of the 8 test images is 12.5 points of accuracy, more than the 2-point " \
        "allowance" in claim.text
    assert pruning_claim({**small, **report(8, 128)}, {"test_acc": 0.75}).shown is False, "128 images decide it"
    structured = {**small, "structured": {"val_acc": 0.5, "val_acc_before": 0.625, "flops_ratio": 0.5}, **report(8, 128)}
    text = pruning_claim(structured, {"test_acc": 0.625}).text
    assert "one of the 8 validation images is 12.5 points of accuracy, more than the 3-point allowance" in text, text
    assert pruning_claim(structured, {"test_acc": 0.625}).shown is None, "the sparse half shown, the other undecided"
    assert text.startswith("Pruning: 70.0% sparse at test 62.5% vs 62.5% dense (+0.0 points, no loss): the paper's "
                           "claim shown; the smaller, channel-pruned model ") and text.endswith(": the paper's claim "
                                                                                     "not judged yet."), text

    spread = {"test_acc": 0.5, "adafilter_gate_mean": {"l1": 0.2, "l2": 0.6}}
    assert adafilter_claim({**spread, **report(64, 64)}, {"test_acc": 0.6}).shown is None  # 1.6 points an image
    assert adafilter_claim({**spread, **report(64, 128)}, {"test_acc": 0.6}).shown is False
    flat = {"test_acc": 0.5, "adafilter_gate_mean": {"l1": 0.5, "l2": 0.5}, **report(64, 64)}
    assert adafilter_claim(flat, {"test_acc": 0.5}).shown is False, "gates that did not adapt decide it anyway"


def test_pruning_claim_gives_each_model_its_own_verdict_when_they_differ():
    """A run whose sparse model kept its accuracy while removing channels cost 6 points read "not shown in this
    run" as a whole: the line now says which model showed the claim and which did not."""
    run = {"sparsity": 0.7, "test_acc": 0.80, "structured": {"val_acc": 0.70, "val_acc_before": 0.76, "flops_ratio": 0.5}}
    claim = pruning_claim(run, {"test_acc": 0.81})
    assert claim.shown is False, "a failed half still decides the run's verdict (benchmarks count it)"
    assert claim.text.startswith("Pruning: 70.0% sparse at test 80.0% vs 81.0% dense (-1.0 points, within the "
                                 "2-point allowance): the paper's claim shown; the smaller, channel-pruned model "
                                 "(50.0% of the arithmetic per image left, in FLOPs) at validation 70.0% vs 76.0% "
                                 "for the full-size model (-6.0 points, more than the 3-point allowance): the paper's "
                                 "claim not shown."), claim.text
    both_fail = pruning_claim(run, {"test_acc": 0.90})
    assert both_fail.text.startswith("Pruning: the paper's claim not shown in this run: "), both_fail.text


def test_the_claim_lines_name_the_runs_they_compared_with():
    from types import SimpleNamespace as R

    from app.claims_view import compared_with

    plain, scratch = R(id="p", name="plain"), R(id="s", name="scratch")
    labels = {"p": "Quick demo · 10:02", "s": "from scratch · 10:05"}
    assert compared_with(["pruning"], plain, None, labels) == (
        "Compared with 'Quick demo · 10:02' (standard fine-tuning with the same data, split, backbone, image size, "
        "seed, training recipe and augmentation).")
    both = compared_with(["adversarial"], plain, scratch, labels)
    assert "'Quick demo · 10:02'" in both and " and 'from scratch · 10:05' (adversarial training from scratch" in both
    assert compared_with(["wise_ft"], plain, None, labels) == "", "WiSE-FT's claim is judged on its own curve"
    assert compared_with(["pruning"], None, None, labels) == ""


def test_wise_ft_claim_line_is_followed_by_its_plain_reading():
    """The Results page's WiSE-FT line spoke the paper's terms only; the panel's plain reading follows it."""
    from app.claims_view import plain_words

    curve = [{"alpha": a, "val_acc": v, "ood_acc": o} for a, v, o in
             ((0.0, 0.6, 0.50), (0.5, 0.79, 0.56), (1.0, 0.8, 0.55))]
    assert plain_words("wise_ft", {"wise_curve": curve}) == (
        "\n\nIn plain words: Of the mixes measured, the best on corrupted images, at alpha 0.5, beats the fine-tuned "
        "model by 1.0 points and the starting model by 6.0, for 1.0 points of validation accuracy.")
    guessing = [dict(p, val_acc=0.5) for p in curve]
    assert "at or below guessing on validation (50.0%, guessing 50.0%)" in \
        plain_words("wise_ft", {"wise_curve": guessing, "classes": list("ab")})
    assert plain_words("wise_ft", {}) == "" and plain_words("pruning", {"wise_curve": curve}) == ""
    # a mix 0.04 points over the better end: +0.0 as shown, no win on either line
    tie = [{"alpha": 0.0, "val_acc": 0.6, "ood_acc": 0.5}, {"alpha": 0.5, "val_acc": 0.8, "ood_acc": 0.5504},
           {"alpha": 1.0, "val_acc": 0.8, "ood_acc": 0.55}]
    assert wise_ft_claim({"wise_curve": tie}).shown is False
    assert "No mix beats the fine-tuned model" in plain_words("wise_ft", {"wise_curve": tie})
    # one run's verdict, not the data's: a teacher read "on this data" against the card's many seeds
    assert "in this run" in plain_words("wise_ft", {"wise_curve": tie})


def test_why_a_run_at_guessing_learnt_nothing_is_decided_once_for_every_page():
    """engine.chance.chance_cause: the learning rate when validation clearly peaked and fell, else the
    optimiser steps (few, many, or one step an epoch), else unknown; the dashboard and the command line
    word it, neither reads its own advice back."""
    from engine.chance import FEW_STEPS, chance_cause

    val = {"data_report": {"split_counts": {"val": {"a": 30, "b": 30}}}, "classes": ["a", "b"]}
    peaked = dict(val, history=[{"epoch": 1, "val_acc": 0.9}, {"epoch": 2, "val_acc": 0.5}], steps_per_epoch=1)
    cause = chance_cause(peaked, 2, 64)
    assert cause.kind == "peaked" and cause.best["epoch"] == 1 and cause.last == 0.5
    few = dict(val, steps_per_epoch=2, train_images=60)
    assert chance_cause(few, 5, 32).kind == "few_steps" and chance_cause(few, 5, 32).steps == 10
    assert not chance_cause(few, 5, 32).one_step_epochs and chance_cause(few, 5, 64).one_step_epochs
    assert chance_cause(dict(few, steps_per_epoch=FEW_STEPS), 1, 8).kind == "many_steps"
    assert chance_cause(dict(val), 5, 32).kind == "unknown", "steps per epoch not recorded"
    assert chance_cause(few, 0, 32).kind == "unknown", "a config without its epochs"


def test_a_class_far_weaker_than_the_others_is_named_when_chance_cannot_explain_it():
    """Results, the command line and the model card name a class the model gets wrong far more often
    than the rest (a new user's run had a class at 13% beside others at 60%, unremarked), with what it
    was taken for; not a gap luck gives on that many images, nor one of a few points, nor every class
    of a run that learnt nothing."""
    from scipy.stats import fisher_exact

    from engine.chance import WEAK_GAP, chance_finding, weak_class_words, weak_classes

    def run(confusion, classes=("blotchy", "dotted", "wavy")):
        n = [sum(r) for r in confusion]
        right = sum(confusion[i][i] for i in range(len(confusion)))
        counts = dict(zip(classes, n))
        return {"classes": list(classes), "test_confusion": confusion, "test_acc": right / sum(n), "val_acc": 0.6,
                "data_report": {"split_counts": {"test": counts, "val": counts}}}

    summary = run([[12, 2, 2], [2, 2, 12], [1, 2, 13]])  # dotted: 2 of 16, mostly said to be wavy
    (weak,) = weak_classes(summary)
    assert (weak.name, weak.right, weak.images, weak.taken_for, weak.taken) == ("dotted", 2, 16, ("wavy",), 12)
    assert weak.others == pytest.approx(25 / 32)
    assert weak.p == pytest.approx(fisher_exact([[2, 14], [25, 7]], alternative="less").pvalue)
    assert weak_class_words(summary) == (
        "Weaker than the other classes on the test images, by more than luck on that many images: dotted, 2 of 16 "
        "right (13%, against 78% for the others), most often taken for wavy (12 of 16). More training images of such "
        "a class, or clearer ones, usually help; look at what it is mistaken for."), "12.5% is 13%, as the chart says"
    tied = run([[12, 2, 2], [7, 2, 7], [1, 2, 13]])  # dotted taken for blotchy and for wavy alike
    (weak,) = weak_classes(tied)
    assert weak.taken_for == ("blotchy", "wavy") and "most often taken for blotchy and wavy (7 of 16 each)" in \
        weak_class_words(tied)
    luck = run([[14, 1, 1], [1, 5, 2], [1, 1, 14]])  # a good run: 5 of 8 against 28 of 32, which luck can do
    assert chance_finding(luck) is None and weak_classes(luck) == []
    small_gap = run([[90, 5, 5], [5, 75, 20], [5, 5, 90]])  # 75% against 90%: significant, not large
    assert 0.90 - 0.75 < WEAK_GAP and weak_classes(small_gap) == []
    assert weak_classes(run([[6, 5, 5], [5, 5, 6], [5, 6, 5]])) == [], "at the level of guessing: said as that"
    assert weak_classes(run([[12, 2, 2], [2, 2, 12], [1, 2, 13]]) | {"test_confusion": [[1, 2]]}) == [], "malformed"
    assert weak_classes({"classes": ["a", "b"]}) == [] and weak_class_words({}) is None
    assert weak_classes(dict(summary, val_confusion=summary["test_confusion"]), "val")[0].name == "dotted"
    no_test = {k: v for k, v in summary.items() if k != "test_confusion"}
    assert weak_classes(no_test) == [] and "on the validation images" in weak_class_words(
        dict(no_test, val_confusion=summary["test_confusion"])), "no test split: the validation images"


def test_greyscale_and_colour_pictures_accuracies_are_said_apart_and_a_real_gap_named():
    """A field biologist's camera-trap run: a quarter of the pictures were greyscale night shots, and one test
    accuracy hid how the model did on them. Both figures are said; a gap beyond luck names the weaker kind and how
    many such pictures training had; a gap luck can give says so."""
    import numpy as np
    import torch
    from PIL import Image

    from engine.chance import colour_words
    from engine.data import PAD_RGB, fit_square, is_greyscale
    from engine.evaluate import colour_groups

    def run(grey, colour, train=(10, 100)):
        n = grey[1] + colour[1]
        counts = {"a": n // 2, "b": n - n // 2}
        return {"classes": ["a", "b"], "test_acc": (grey[0] + colour[0]) / n, "val_acc": 0.9,
                "test_by_colour": {"greyscale": list(grey), "colour": list(colour)}, "train_greyscale": list(train),
                "data_report": {"split_counts": {"test": counts, "val": counts}}}

    night = run((3, 12), (40, 44))
    assert colour_words(night) == (
        "On the test images the model gets 3 of 12 greyscale pictures right (25.0%) and 40 of 44 "
        "colour ones (90.9%). It is weaker on greyscale pictures by more than luck: more training pictures of that "
        "kind (training had 10 of 100 pictures) usually help.")
    assert "weaker on colour pictures" in colour_words(run((40, 44), (3, 12), (90, 100)))
    assert "training had 10 of 100" in colour_words(run((40, 44), (3, 12), (90, 100))), "its colour pictures: 10"
    luck = run((2, 4), (40, 44))
    assert colour_words(luck).endswith("A gap this size on so few pictures can be luck (more of each kind would "
                                       "tell)."), "2 of 4 against 40 of 44: luck can do that"
    close = colour_words(run((10, 12), (40, 44)))
    assert close.endswith("colour ones (90.9%).") and "weaker" not in close and "luck" not in close
    assert colour_words({"classes": ["a", "b"], "test_acc": 0.9}) is None, "no greyscale pictures: nothing"
    assert colour_words(run((1, 12), (9, 20))) is None, "at guessing: the run's finding says that"
    assert colour_words(dict(night, test_by_colour={"greyscale": [1]})) is None, "malformed"
    # the classes the greyscale pictures hold (an ecologist's night figure held no fox, unsaid)
    by_class = dict(night, test_by_colour={**night["test_by_colour"], "greyscale_by_class": [[3, 10], [0, 2]]})
    assert " colour ones (90.9%). The greyscale ones: a 3 of 10, b 0 of 2 right. It is weaker" in colour_words(by_class)
    no_b = dict(night, test_by_colour={**night["test_by_colour"], "greyscale_by_class": [[3, 12], [0, 0]]})
    assert "The greyscale ones: a 3 of 12 right; no greyscale picture of b. It is weaker" in colour_words(no_b)
    odd = dict(night, test_by_colour={**night["test_by_colour"], "greyscale_by_class": [[3, 12]]})
    assert "The greyscale ones" not in colour_words(odd), "not one pair per class: left out"
    from engine.chance import picture_kind_words  # one new picture, of the weaker kind or not

    assert picture_kind_words(night, greyscale=True) == (
        "A greyscale picture: the model got 3 of 12 such test pictures right (25.0%), against 40 of 44 colour ones "
        "(90.9%).")
    assert picture_kind_words(night, greyscale=False) is None and picture_kind_words(luck, greyscale=True) is None
    assert picture_kind_words(run((40, 44), (3, 12)), greyscale=False).startswith("A colour picture: the model got 3")
    from engine.chance import pictures_kind_words  # a batch: how many are of the weaker kind

    assert pictures_kind_words(night, [True, False, True]).startswith("2 of your 3 pictures are greyscale: the model "
                                                                      "got 3 of 12 such test pictures right")
    assert pictures_kind_words(night, [False, False]) is None and pictures_kind_words(luck, [True]) is None
    # which pictures are greyscale: channels within a JPEG's wobble, a padded picture's bars left out
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    buf = __import__("io").BytesIO()
    Image.fromarray(photo).convert("L").convert("RGB").save(buf, "JPEG", quality=70)
    grey_jpeg = Image.open(buf)

    def tensor(image: Image.Image, fit: str) -> torch.Tensor:
        return torch.from_numpy(np.array(fit_square(image.convert("RGB"), 32, fit=fit))).permute(2, 0, 1)

    images = torch.stack([tensor(grey_jpeg, "crop"), tensor(grey_jpeg, "pad"), tensor(Image.fromarray(photo), "pad"),
                          torch.tensor(PAD_RGB, dtype=torch.uint8).view(3, 1, 1).expand(3, 32, 32)])
    assert is_greyscale(images).tolist() == [True, True, False, False]
    from engine.data import ImageSet

    split = ImageSet(images[:3], torch.tensor([0, 1, 1]), ["a", "b"])
    assert colour_groups(split, torch.tensor([0, 0, 1])) == {"greyscale": [1, 2], "colour": [1, 1],
                                                             "greyscale_by_class": [[1, 1], [0, 1]]}
    assert split.greyscale() is split.greyscale(), "measured once per set"
    assert colour_groups(ImageSet(images[:2], torch.tensor([0, 1]), ["a", "b"]), torch.tensor([0, 1])) is None, \
        "one kind only"
    assert colour_groups(split, torch.tensor([0])) is None, "what was answered only: one greyscale picture"


def test_a_jump_of_validation_loss_in_one_epoch_is_said_with_its_likely_cause(capsys):
    """An agronomist's run (20 epochs, 2 head-only) went from 1.29 to 3.57 validation loss at epoch 5 and back by
    epoch 7, and nothing said what that was. The training loss rose with it: the steps overshot."""
    from engine.chance import SPIKE_RATIO, SPIKE_RISE, loss_spike, loss_spike_words

    def history(val, train=None, acc=None):
        return [{"epoch": i + 1, "val_loss": v, "train_loss": (train or [None] * len(val))[i],
                 "val_acc": (acc or [None] * len(val))[i]} for i, v in enumerate(val)]

    measured = history([1.0, 1.24, 1.01, 1.29, 3.57, 2.68, 1.26, 0.72], [0.92, 0.71, 0.6, 0.25, 0.53, 0.33, 0.17, 0.13],
                       [0.38, 0.43, 0.67, 0.595, 0.476, 0.571, 0.619, 0.762])
    spike = loss_spike(measured, 2, val_images=42)
    assert (spike.epoch, spike.before, spike.after, spike.back, spike.jumps, spike.train_rose) == \
        (5, 1.29, 3.57, 7, 1, True)
    words = loss_spike_words(spike, running=False, lr=0.0089)
    assert words == ("Validation loss jumped at epoch 5, from 1.29 to 3.57 (2.8 times), and validation accuracy went "
                     "from 60% to 48%. The training loss rose in the same epoch (0.25 to 0.53): steps at that epoch's "
                     "learning rate (0.0089) overshot and moved the weights off course for a while, not new pictures "
                     "being harder. It was back to 1.29 or lower by epoch 7.")
    cut = loss_spike(measured[:6], 2)  # the run stopped before it came back
    assert "The next epochs show whether it comes back down." in loss_spike_words(cut, running=True)
    assert loss_spike_words(cut, running=False).endswith("It did not come back down to 1.29 in this run; a lower "
                                                         "learning rate makes such jumps rarer.")
    # the training loss fell on: sure wrong answers, said without the rate's advice, and no accuracy when not logged
    sure = loss_spike(history([0.4, 0.3, 0.9, 0.95], [0.3, 0.2, 0.1, 0.05]), 0)
    assert not sure.train_rose and sure.back is None
    quiet = loss_spike_words(sure, running=False)
    assert "grew very sure of some wrong answers" in quiet and "accuracy went" not in quiet
    assert "than accuracy" not in quiet, "accuracy may have fallen too: nothing said of it that could contradict"
    assert quiet.endswith("It did not come back down to 0.30 in this run.")
    # the largest of several, by its ratio
    two = loss_spike(history([0.5, 1.2, 0.5, 2.0, 0.4]), 0)
    assert (two.epoch, two.jumps) == (4, 2) and "(the largest of 2 such jumps)" in loss_spike_words(two, False)
    # no jump: under the ratio, under the rise in nats, or only the first whole-network epoch's fall after the probe
    assert loss_spike(history([1.0, SPIKE_RATIO - 0.01]), 0) is None
    assert loss_spike(history([0.02, 0.02 + SPIKE_RISE - 0.01]), 0) is None
    jolt = history([1.43, 1.46, 11.07, 9.48], acc=[0.492, 0.484, 0.156, 0.148])
    assert loss_spike(jolt, 2, val_images=128) is None, "the accuracy chart's note says it"
    assert loss_spike(jolt, 0).epoch == 3, "without head-only epochs it is a jump like any other"
    assert loss_spike([{"epoch": 1, "val_loss": float("nan")}, {"epoch": 2}], 0) is None
    assert loss_spike(history([0.0, 1.0, 0.2]), 0) is None, "a loss of 0.0 before: no ratio, no crash"
    # the command line says it after the run (without the rate: the summary keeps no per-epoch rate)
    from engine.cli import _say_caution
    from engine.config import RunConfig

    summary = {"classes": ["healthy", "rust", "septoria"], "val_acc": 0.81, "test_acc": 0.8, "probe_epochs": 2,
               "history": measured}
    _say_caution(summary, RunConfig())
    err = capsys.readouterr().err
    assert "note: Validation loss jumped at epoch 5, from 1.29 to 3.57" in err and "steps overshot" in err, err
    _say_caution(dict(summary, history=measured[:4]), RunConfig())
    assert "jumped" not in capsys.readouterr().err


def test_the_first_whole_network_epochs_fall_after_the_head_only_epochs_is_said_with_its_numbers():
    """The WiSE-FT demo's epoch 3 (benchmarks/results/probe_jolt_zen3.txt, seed 0) fell from 48.4% to
    15.6% validation: a teacher saw a broken run, the page said nothing."""
    from engine.chance import JOLT_DROP, probe_jolt, probe_jolt_words

    def history(accs, losses=None):
        return [{"epoch": i + 1, "val_acc": a, "val_loss": (losses or [1.0] * len(accs))[i]} for i, a in enumerate(accs)]

    measured = history([0.492, 0.484, 0.156, 0.148], [1.43, 1.46, 11.07, 9.48])
    jolt = probe_jolt(measured, 2, val_images=128)
    assert (jolt.epoch, jolt.before, jolt.after, jolt.loss_after, jolt.back) == (3, 0.484, 0.156, 11.07, None)
    live = probe_jolt_words(jolt, 2, 0.2, running=True)
    assert live.startswith("Epoch 3 was the first in which the whole network learnt (epochs 1-2 trained only the "
                           "new head, a linear probe), and validation accuracy fell from 48% to 16% (validation "
                           "loss 1.46 to 11.07): its first steps at the full learning rate (effective 0.2)")
    assert "The next epochs show whether it climbs back." in live
    assert "It did not climb back to 48% in this run." in probe_jolt_words(jolt, 2, 0.2, running=False)
    back = probe_jolt(history([0.492, 0.484, 0.156, 0.3, 0.49, 0.6]), 2)
    assert back.back == 5 and "It was back to 48% or more by epoch 5." in probe_jolt_words(back, 2, 0.2, False)
    assert "epoch 1 trained only" in probe_jolt_words(probe_jolt(measured[1:], 1), 1, 0.2, False)
    assert "Trunk learning-rate multiplier 0.1" in live
    slower = probe_jolt_words(jolt, 2, 0.2, running=True, trunk_lr_mult=0.1)  # already at the advised share
    assert "at the rate of the layers below the head (effective 0.02)" in slower and "multiplier" not in slower
    # no note: a smaller dip, no head-only epochs, the epoch not finished yet, or a fall of two images
    assert probe_jolt(history([0.5, 0.5, 0.5 - JOLT_DROP + 0.01]), 2) is None
    assert probe_jolt(measured, 0) is None and probe_jolt(measured[:2], 2) is None
    assert probe_jolt(history([0.5, 0.5, 0.33]), 2, val_images=12) is None, "2 of 12 images"
    assert probe_jolt(history([0.5, 0.5, 0.25]), 2, val_images=12) is not None, "3 of 12 images"


def test_training_far_above_validation_in_the_head_only_epochs_is_said_why():
    """A new user watching the WiSE-FT demo saw training accuracy about 95% against 49% on validation in
    its head-only epochs, with nothing on the page saying why."""
    from engine.chance import PROBE_GAP, probe_gap_words

    rows = [{"epoch": 1, "train_acc": 0.953, "val_acc": 0.492}, {"epoch": 2, "train_acc": 0.948, "val_acc": 0.484},
            {"epoch": 3, "train_acc": 0.41, "val_acc": 0.156}]
    words = probe_gap_words(rows, 2, wise=True, train_images=384)
    assert words == ("In epochs 1-2, which train only the new head, training accuracy (95%) lies far above validation "
                     "accuracy (48%): a head alone on the pretrained features fits its 384 training images much "
                     "better than it generalises to new ones. WiSE-FT fitted it to convergence on them before epoch 1 "
                     "(theta_0's linear probe). The epochs that train the whole network decide the final accuracy.")
    assert probe_gap_words(rows[:1], 2).startswith("In epochs 1-2"), "live, during the head-only epochs"
    plain = probe_gap_words(rows, 1)
    assert plain.startswith("In epoch 1, which trains only the new head") and "WiSE-FT" not in plain
    assert "fits the training images" in plain, "the split's size unknown: not said"
    # no note: no head-only epochs, a gap under the threshold, no training accuracy recorded
    assert probe_gap_words(rows, 0) is None
    assert probe_gap_words([{"train_acc": 0.5 + PROBE_GAP - 0.01, "val_acc": 0.5}], 1) is None
    assert probe_gap_words([{"val_acc": 0.5}], 1) is None


def test_an_ood_set_at_guessing_is_said_as_such_not_as_weak_classes():
    """A new user's OOD set of darker pictures was answered "square" for all but three images: the page
    named circle and triangle as weaker than the other classes and advised more images of them."""
    from engine.chance import split_at_guessing, weak_class_words, weak_classes

    summary = {"classes": ["circle", "square", "triangle"], "test_acc": 0.9, "val_acc": 0.9,
               "ood_user_confusion": [[0, 8, 0], [0, 8, 0], [3, 5, 0]],
               "test_confusion": [[8, 0, 0], [0, 8, 0], [1, 1, 6]]}
    said = weak_class_words(summary, "ood_user")
    assert said.startswith("On your OOD set the model gets 8 of 24 images right (33.3%), at the level of guessing "
                           "among 3 classes (33.3%). It answers square for 21 of them.")
    assert "taken in such conditions" in said and "Weaker than" not in said
    assert weak_classes(summary, "ood_user") == []
    learnt = {**summary, "ood_user_confusion": [[7, 1, 0], [0, 8, 0], [0, 5, 3]]}  # triangle weak, the rest fine
    assert split_at_guessing(learnt, "ood_user") is None
    assert weak_class_words(learnt, "ood_user").startswith("Weaker than the other classes on your OOD set's images")
    # all 4 right on 2 classes: within luck of guessing (p 6%), but not shown to fail: not "beyond what it learnt"
    few = {"classes": ["cat", "dog"], "test_acc": 0.95, "val_acc": 0.95, "ood_user_confusion": [[2, 0], [0, 2]]}
    said = split_at_guessing(few, "ood_user")
    assert "4 of 4 images right (100.0%)" in said and "beyond what it learnt" not in said, said
    assert said.endswith("Too few pictures to tell whether it holds up in these conditions: more pictures in your OOD "
                         "set would.")
    two = split_at_guessing({**few, "ood_user_confusion": [[1, 0], [1, 0]]}, "ood_user")  # 1 of 2: no proof
    assert "1 of 2 images right" in two and "beyond what it learnt" not in two and "Too few pictures" in two, two


def test_an_unbalanced_split_at_guessing_is_measured_against_its_largest_class():
    """An OOD set of ten pictures of one class and one of each other, answered with that class every time, read
    "83.3%, not clearly above the level of guessing among 3 classes (33.3%)": a true finding in a false
    sentence. Its bar is the largest class's share; a set clearly learnt but still within luck says its odds."""
    from engine.chance import split_at_guessing

    base = {"classes": ["a", "b", "c"], "test_acc": 0.9, "val_acc": 0.9}
    said = split_at_guessing({**base, "ood_user_confusion": [[10, 0, 0], [1, 0, 0], [1, 0, 0]]}, "ood_user")
    assert said.startswith("On your OOD set the model gets 10 of 12 images right (83.3%), no better than always "
                           "answering its largest class, a (10 of 12, 83.3%). It answers a for all of them."), said
    assert "33.3%" not in said
    luck = split_at_guessing({**base, "ood_user_confusion": [[3, 1, 0], [1, 2, 1], [1, 1, 2]]}, "ood_user")
    assert luck.startswith("On your OOD set the model gets 7 of 12 images right (58.3%), above the level of guessing "
                           "among 3 classes (33.3%), but not clearly: a model that learnt nothing gets that many or more right "), luck
    assert split_at_guessing({**base, "ood_user_confusion": [[4, 0, 0], [0, 4, 0], [0, 0, 4]]}, "ood_user") is None


def _attack_again_app():
    """The adversarial claim's button alone, on an engine that only queues (its runs kept in session state)."""
    from types import SimpleNamespace as R

    import streamlit as st

    from app import state
    from app.claims_view import attack_again_button

    queued = st.session_state.setdefault("queued", {})

    class Queue:
        def submit(self, cfg, owner=""):
            queued[f"q{len(queued)}"] = cfg
            return f"q{len(queued) - 1}"

        def active_runs_of(self, user):
            return list(queued)

        def run_record(self, run_id):
            return R(id=run_id, name=queued[run_id].name, config=queued[run_id].to_dict())

    state.get_engine = lambda: Queue()
    base = {"data": {"source": "a.zip", "image_size": 64}, "train": {"epochs": 5}, "seed": 0}
    adv = R(id="a", name="adv", config={**base, "adversarial": {"enabled": True}, "eval": {"robust_eps": 2 / 255}})
    attack_again_button(adv, R(id="p", name="my *plain* run", config=dict(base)))


def test_the_button_under_the_adversarial_line_queues_its_run_once():
    """Pressed, the button queued the run; on the next redraw it was there again, and a second press queued a
    second copy."""
    from streamlit.testing.v1 import AppTest

    from app import state

    real = state.get_engine  # the app below replaces it with a queue of its own: given back at the end
    try:
        _press_attack_again(AppTest.from_function(_attack_again_app, default_timeout=30).run())
    finally:
        state.get_engine = real


def _press_attack_again(at):
    """The button's label, one press, the queued run's settings, and no button on the next redraw."""
    (button,) = at.button
    assert button.label == "Train 'my \\*plain\\* run' again, measuring robust accuracy", "the name shown as typed"
    button.click().run()
    assert [s.value for s in at.success][0].startswith("Queued")
    (cfg,) = at.session_state["queued"].values()
    assert cfg.eval.robust and cfg.eval.robust_eps == 2 / 255 and cfg.name == "my *plain* run, robust accuracy measured"
    at.run()
    assert not at.button, "queued once: no second button"
    assert any("is queued or training" in c.value for c in at.caption)


def test_pruning_claim_judges_the_smaller_model_on_the_split_its_tile_shows():
    """A teacher's Pruning demo compared the smaller model on validation in the claim line and on test on its
    Results tile: with both models' test accuracy the line reads test, the tile's figures; validation otherwise."""
    s = {"val_acc": 0.90, "val_acc_before": 0.91, "test_acc": 0.70, "test_acc_before": 0.76, "flops_ratio": 0.5}
    claim = pruning_claim({"structured": s})
    assert "at test 70.0% vs 76.0% for the full-size model (-6.0 points, more than the 3-point allowance)" in claim.text
    assert claim.shown is False, claim.text
    no_test = {k: v for k, v in s.items() if not k.startswith("test")}
    claim = pruning_claim({"structured": no_test})
    assert "at validation 90.0% vs 91.0%" in claim.text and claim.shown is True, claim.text
    half = {**no_test, "test_acc": 0.70}  # no test figure for the full-size model: both on validation
    assert "at validation 90.0% vs 91.0%" in pruning_claim({"structured": half}).text


def test_a_wise_ft_claim_names_a_much_stronger_standard_run_on_the_same_test_images():
    """A teacher read "claim shown" on a WiSE-FT demo (57.0% test) trained beside a Standard demo at 73.4% and took
    the mix for the better model: the line names the stronger standard run on the same test images."""
    from types import SimpleNamespace as R

    from engine.baselines import stronger_standard

    base = {"data": {"source": "a.zip", "image_size": 64}, "backbone": {"name": "resnet18", "pretrained": "bundled"},
            "seed": 0}
    wise = R(id="w", status="finished", run_dir="w", config={**base, "wise_ft": {"enabled": True},
                                                             "optim": {"schedule": "constant"}})
    plain = R(id="p", status="finished", run_dir="p", config={**base, "optim": {"schedule": "cosine"}})
    better = R(id="b", status="finished", run_dir="b", config={**base, "train": {"epochs": 40}})
    other_seed = R(id="s", status="finished", run_dir="s", config={**base, "seed": 1})  # other test images
    other_data = R(id="d", status="finished", run_dir="d", config={**base, "data": {"source": "b.zip", "image_size": 64}})
    method = R(id="m", status="finished", run_dir="m", config={**base, "pruning": {"enabled": True}})
    failed = R(id="f", status="failed", run_dir="f", config=dict(base))
    acc = {"p": 0.734, "b": 0.80, "s": 0.99, "d": 0.99, "m": 0.99, "f": 0.99}
    summaries = {k: {"test_acc": v} for k, v in acc.items()}
    runs = [wise, plain, better, other_seed, other_data, method, failed]
    assert stronger_standard(wise, runs, summaries.get, {"test_acc": 0.57}) == (better, 0.80), "the best one"
    assert stronger_standard(wise, runs, summaries.get, {"test_acc": 0.76}) is None, "4 points: not named"
    assert stronger_standard(wise, runs, summaries.get, {"test_acc": 0.75}) == (better, 0.80), "5 points: named"
    assert stronger_standard(wise, runs, summaries.get, {}) is None, "no test accuracy: nothing to set against"
    assert stronger_standard(plain, runs, summaries.get, {"test_acc": 0.1}) is None, "WiSE-FT runs only"

    from engine.baselines import stronger_words

    words = stronger_words("'Standard demo'", 0.734, 0.57, constant=True)
    assert "'Standard demo', standard fine-tuning with its own settings, reached 73.4%, 16.4 points above this " \
           "run's fine-tuned model (57.0%)" in words and "constant learning rate" in words
    assert "constant" not in stronger_words("'Standard demo'", 0.734, 0.57)
    assert "a mix that beats both ends" not in stronger_words("'Standard demo'", 0.734, 0.57, shown=False), \
        "no mix beat both ends: nothing to say about one that did"


def test_the_results_claim_lines_show_the_stronger_standard_run_under_a_wise_ft_line():
    from streamlit.testing.v1 import AppTest

    def script():
        import time
        from types import SimpleNamespace as R

        from app.claims_view import claim_lines

        base = {"data": {"source": "a.zip", "image_size": 64}, "seed": 0}
        wise = R(id="w", name="WiSE-FT demo", status="finished", run_dir="w", created=time.time(),
                 config={**base, "wise_ft": {"enabled": True}, "optim": {"schedule": "constant"}})
        plain = R(id="p", name="Standard demo", status="finished", run_dir="p", created=time.time(), config=dict(base))
        curve = [{"alpha": 0.0, "val_acc": 0.5, "ood_acc": 0.40}, {"alpha": 0.5, "val_acc": 0.6, "ood_acc": 0.47},
                 {"alpha": 1.0, "val_acc": 0.6, "ood_acc": 0.45}]
        summary = {"wise_curve": curve, "test_acc": 0.57}
        claim_lines(wise, [wise, plain], {"p": {"test_acc": 0.734}, "w": summary}.get, summary)

    at = AppTest.from_function(script, default_timeout=30).run()
    assert not at.exception, at.exception
    assert [s.value for s in at.success] and "claim shown" in at.success[0].value
    said = [c.value for c in at.caption if "Standard demo" in c.value]
    assert len(said) == 1 and "16.4 points above this run's fine-tuned model (57.0%)" in said[0], [c.value for c in at.caption]


def test_a_verdict_on_a_few_held_out_images_is_a_hint_not_a_success():
    """A teacher read a green "claim shown" on 12 validation images beside the caution that figures there can be an
    image or two apart: a verdict on splits under 50 images is shown in blue, saying what one image weighs, on
    Results and (the same words) after `train`."""
    from streamlit.testing.v1 import AppTest

    from engine.baselines import on_few_images
    from engine.claims import Claim

    def script():
        from types import SimpleNamespace as R

        from app.claims_view import claim_lines

        wise = R(id="w", name="WiSE-FT demo", status="finished", run_dir="w", created=0.0,
                 config={"data": {"source": "a.zip", "image_size": 64}, "seed": 0, "wise_ft": {"enabled": True}})
        curve = [{"alpha": 0.0, "val_acc": 0.5, "ood_acc": 0.40}, {"alpha": 0.5, "val_acc": 0.75, "ood_acc": 0.50},
                 {"alpha": 1.0, "val_acc": 0.75, "ood_acc": 0.45}]
        counts = {"val": {"a": 6, "b": 6}, "test": {"a": 6, "b": 6}}
        summary = {"wise_curve": curve, "classes": ["a", "b"], "data_report": {"split_counts": counts}}
        claim_lines(wise, [wise], {"w": summary}.get, summary)

    at = AppTest.from_function(script, default_timeout=30).run()
    assert not at.exception, at.exception
    assert not at.success and len(at.info) == 1, [s.value for s in at.success]
    line = at.info[0].value
    assert "claim shown" in line and "Measured on 12 validation images (one image is 8.3 points of accuracy) and 12 " \
        "test images (one image is 8.3 points of accuracy): read the verdict as a hint" in line, line
    large = {"data_report": {"split_counts": {"val": {"a": 60, "b": 60}, "test": {"a": 60, "b": 60}}}}
    small = {"data_report": {"split_counts": {"val": {"a": 6, "b": 6}}}}
    shown = Claim("pruning", True, "Pruning: the paper's claim shown in this run.")
    assert on_few_images(shown, large) is shown and on_few_images(shown, {}) is shown, "large or unknown splits"
    assert on_few_images(Claim("pruning", None, "x"), small).text == "x", "no verdict: nothing to weigh"
    failed = on_few_images(Claim("pruning", False, "Pruning: not shown."), small)
    assert failed.narrow and failed.text.startswith("Pruning: not shown. Measured on 12 validation images")
    narrow = Claim("wise_ft", True, "WiSE-FT: shown, narrowly (read it as a hint).", narrow=True)
    assert on_few_images(narrow, small) is narrow, "its own words already call it a hint"


def test_the_command_line_names_the_stronger_standard_run_after_a_wise_ft_run(tmp_path, capsys):
    import json
    from types import SimpleNamespace as R

    from engine.cli import _say_stronger

    base = {"data": {"source": "a.zip", "image_size": 64}, "seed": 0}
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "summary.json").write_text(json.dumps({"test_acc": 0.734}))
    wise = R(id="w1", name="WiSE-FT demo", status="finished", run_dir=str(tmp_path / "w"),
             config={**base, "wise_ft": {"enabled": True}, "optim": {"schedule": "constant"}})
    plain = R(id="p1", name="Standard demo", status="finished", run_dir=str(tmp_path / "p"), config=dict(base))
    store = R(get_run={"w1": wise}.get, list_runs=lambda: [wise, plain])
    _say_stronger({"run_id": "w1", "test_acc": 0.57}, store)
    out = capsys.readouterr().out
    assert out.startswith("note: WiSE-FT's claim compares this run's own models") and \
        "'Standard demo' (p1), standard fine-tuning with its own settings, reached 73.4%, 16.4 points above" in out, out
    _say_stronger({"run_id": "w1", "test_acc": 0.72}, store)
    assert capsys.readouterr().out == "", "1.4 points: nothing said"


def test_the_structured_claim_says_the_smaller_model_trained_epochs_of_its_own():
    """A teacher read "+39.9 points, no loss" for a smaller model fine-tuned 10 epochs more than the 4-epoch model it
    was cut from as "pruning makes models 40 points better": its own epochs are named, and a gain put to them."""
    s = {"test_acc": 0.672, "test_acc_before": 0.273, "flops_ratio": 0.46, "fine_tune_epochs": 10}
    text = pruning_claim({"structured": s}).text
    assert ("(46.0% of the arithmetic per image left, in FLOPs, then 10 epochs of its own fine-tune) at test 67.2% vs "
            "27.3%") in text, text
    assert "part of a gain is its 10 epochs of fine-tuning of its own, which the full-size model did not have" in text
    level = pruning_claim({"structured": {**s, "test_acc": 0.27}}).text
    assert "then 10 epochs of its own fine-tune" in level and "part of a gain" not in level, "no gain: nothing to put"


def test_a_claim_without_its_standard_run_names_the_nearest_one_and_offers_to_train_it():
    """A teacher's Standard demo at 6 epochs beside a 4-epoch Pruning demo: the line said "run the same settings
    without pruning to compare" and nothing on why that run did not count."""
    from types import SimpleNamespace as R

    from engine.baselines import comparison_run, near_standard, standard_config

    base = {"data": {"source": "a.zip", "image_size": 64}, "backbone": {"name": "resnet18", "pretrained": "bundled"},
            "seed": 0}
    run = R(id="r", name="Pruning demo", status="finished", run_dir="r",
            config={**base, "train": {"epochs": 4}, "pruning": {"enabled": True}})
    six = R(id="s", name="Standard demo", status="finished", run_dir="s", config={**base, "train": {"epochs": 6}})
    far = R(id="f", name="far", status="finished", run_dir="f",
            config={**base, "train": {"epochs": 6}, "seed": 3, "optim": {"lr": 0.5}})
    other_data = R(id="o", name="o", status="finished", run_dir="o",
                   config={**base, "data": {"source": "b.zip", "image_size": 64}})
    assert near_standard(run, [run, far, six, other_data]) == (six, ["Epochs (train.epochs): 6 there, 4 here"])
    assert near_standard(run, [run, other_data]) is None, "another dataset is no near miss"
    unflipped = R(id="u", name="u", status="finished", run_dir="u", config={**base, "train": {"epochs": 4, "flip": False}})
    assert near_standard(run, [run, unflipped])[1] == ["Mirror images left-right (train.flip): off there, on here"]
    cfg = standard_config(run)
    assert not cfg.enabled_methods() and cfg.train.epochs == 4 and cfg.name == "Standard fine-tuning with the settings of Pruning demo"
    again = R(id="g", name=cfg.name, status="finished", run_dir="g", config=cfg.to_dict())
    assert comparison_run(run, [run, six, again]) is again, "the run the button trains is the comparison"
    adv = R(id="a", name="adv", status="finished", run_dir="a",
            config={**base, "adversarial": {"enabled": True}, "eval": {"robust_eps": 2 / 255, "robust_steps": 10}})
    attacked = standard_config(adv)
    assert attacked.eval.robust and attacked.eval.robust_steps == 10 and not attacked.enabled_methods()
    assert comparison_run(adv, [adv, R(id="t", name="t", status="finished", run_dir="t",
                                       config=attacked.to_dict())]) is not None


def test_the_results_lines_name_the_near_standard_run_and_queue_the_comparison():
    from streamlit.testing.v1 import AppTest

    def script():
        import time
        from types import SimpleNamespace as R

        import streamlit as st

        from app import state
        from app.claims_view import claim_lines

        queued = st.session_state.setdefault("queued", [])
        fake = R(submit=lambda cfg, owner=None: queued.append(cfg) or R(id="q", name=cfg.name),
                 active_runs_of=lambda user: [], run_record=lambda run_id: None)
        real = state.get_engine
        state.get_engine = lambda: fake
        try:
            base = {"data": {"source": "a.zip", "image_size": 64}, "seed": 0,
                    "backbone": {"name": "resnet18", "pretrained": "bundled"}}
            run = R(id="r", name="Pruning demo", status="finished", run_dir="r", created=time.time(),
                    config={**base, "train": {"epochs": 4}, "pruning": {"enabled": True}})
            six = R(id="s", name="Standard demo", status="finished", run_dir="s", created=time.time(),
                    config={**base, "train": {"epochs": 6}})
            summary = {"sparsity": 0.7, "test_acc": 0.5}
            claim_lines(run, [run, six], {"s": {"test_acc": 0.6}, "r": summary}.get, summary)
        finally:
            state.get_engine = real

    at = AppTest.from_function(script, default_timeout=30).run()
    assert not at.exception, at.exception
    said = [c.value for c in at.caption if "does not count as this run's comparison" in c.value]
    assert len(said) == 1 and "Epochs: 6 there, 4 here" in said[0] and "train.epochs" not in said[0], said
    at.button(key="standard_twin_r").click().run()
    assert not at.exception and [c.name for c in at.session_state["queued"]] == ["Standard fine-tuning with the settings of Pruning demo"]
    assert any("Queued" in s.value for s in at.success)


def test_the_command_line_says_why_the_standard_run_there_is_does_not_count(tmp_path, capsys):
    import json
    from types import SimpleNamespace as R

    from engine.cli import _say_claims

    base = {"data": {"source": "a.zip", "image_size": 64}, "seed": 0,
            "backbone": {"name": "resnet18", "pretrained": "bundled"}}
    run = R(id="r1", name="Pruning demo", status="finished", run_dir=str(tmp_path / "r"),
            config={**base, "train": {"epochs": 4}, "pruning": {"enabled": True}})
    six = R(id="s1", name="Standard demo", status="finished", run_dir=str(tmp_path / "s"),
            config={**base, "train": {"epochs": 6}})
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "summary.json").write_text(json.dumps({"test_acc": 0.6}))
    store = R(get_run={"r1": run}.get, list_runs=lambda: [run, six])
    _say_claims({"run_id": "r1", "sparsity": 0.7, "test_acc": 0.5}, store)
    out = capsys.readouterr().out
    assert "  'Standard demo' (s1) is standard fine-tuning on the same data but not this run's comparison: Epochs " \
           "(train.epochs): 6 there, 4 here" in out, out


def test_a_weak_run_on_pictures_shrunk_far_is_told_a_larger_image_size_keeps_finer_detail(capsys):
    """A student's 320 x 200 scans at 64 px reached 55.6% validation, and no page said that a larger image size
    (128 px: 88.9% in their one trial) keeps finer detail; the words say "if", on Results and after `train`."""
    from app.claims_view import finer_detail_note
    from engine.chance import DETAIL_WEAK, finer_detail_words
    from engine.cli import _say_caution
    from engine.config import RunConfig, apply_overrides

    shape = {"long": 320, "short": 200, "square_share": 0.63, "wide": 1.0, "tall": 0.0}
    summary = {"classes": list("abcde"), "val_acc": 10 / 18, "data_report": {"picture_shape": shape}}
    config = apply_overrides(RunConfig(), ["data.image_size=64"]).to_dict()
    words = finer_detail_words(summary, config, "--image-size {size}")
    assert words.startswith("This run shrank your pictures (about 320 by 200 px) about 3x to 64 px, so detail finer "
                            "than about 3 of their pixels was lost to it."), words
    assert "If what tells your classes apart is small" in words and "--image-size 128 keeps finer detail" in words
    note = finer_detail_note(config, summary)
    assert note.startswith(":material/info: This run shrank") and "*Image size* (Model and methods page; 128 px" in note
    assert not finer_detail_words(dict(summary, val_acc=DETAIL_WEAK), config, "{size}"), "a strong run: no hint"
    assert not finer_detail_words(summary, apply_overrides(RunConfig(), ["data.image_size=96"]).to_dict(), "{size}"), \
        "200 px pictures at 96 px: shrunk about 2x, little detail lost"
    assert not finer_detail_words({"val_acc": 0.5}, config, "{size}"), "a report from before shapes were kept"
    assert not finer_detail_words(dict(summary, val_acc=None), config, "{size}")
    assert not finer_detail_words(summary, dict(config, backbone={"name": "vit_b_16"}), "{size}"), \
        "a backbone of one image size"
    vit = dict(config, backbone={"name": "vit_b_16"}, data={"image_size": 224})
    big = dict(summary, data_report={"picture_shape": {"long": 4000, "short": 3000}})
    assert not finer_detail_words(big, vit, "{size}") and not finer_detail_note(vit, big), "ViT-B/16: 224 px only"
    assert finer_detail_words(big, dict(vit, backbone={"name": "resnet18"}), "{size}"), "the same run on ResNet-18"
    at_320 = finer_detail_words(big, {"data": {"image_size": 320}}, "--image-size {size}")
    assert "--image-size 512 keeps finer detail; each epoch then takes about 3x as long" in at_320, "512 px at most"
    assert not finer_detail_words(big, {"data": {"image_size": 512}}, "{size}"), "nothing larger to suggest"
    cfg = apply_overrides(RunConfig(), ["data.image_size=64"])
    _say_caution(summary, cfg)
    err = capsys.readouterr().err
    assert "note: This run shrank your pictures" in err
    # the middle square cut away the ends of wide pictures: said too (a field biologist's animals at the frame's
    # edges, told to check the folders and train longer)
    assert "note: This run kept the middle square of your pictures, 63% of their longer side: if what tells your " \
           "classes apart can sit near a picture's end, a run with --set data.fit=pad (grey bars) or " \
           "data.fit=stretch " \
           "keeps it in view" in err, err
    from app.claims_view import cut_ends_note
    from engine.chance import cut_ends_words

    assert "*Keep the whole picture* or *Stretch the whole picture* (Data page, *Wide and tall pictures*) " \
           "keeps it in view" in cut_ends_note(config, summary)
    padded = apply_overrides(RunConfig(), ["data.fit=pad"]).to_dict()
    assert not cut_ends_words(summary, padded, "x"), "whole pictures already"
    square = dict(summary, data_report={"picture_shape": {**shape, "wide": 0.0, "square_share": 1.0}})
    assert not cut_ends_words(square, config, "x") and not cut_ends_words(dict(summary, val_acc=0.95), config, "x")
    # no robustness figure without a word why (the Fastest model preset turns OOD evaluation off)
    from app.claims_view import ood_off_note

    off = apply_overrides(RunConfig(), ["eval.ood=false"]).to_dict()
    assert ood_off_note(off, summary).startswith(":material/info: Robustness to corrupted images (OOD accuracy) was "
                                                 "not measured in this run: *Measure OOD accuracy* was off")
    assert not ood_off_note(config, summary) and not ood_off_note(off, dict(summary, ood_acc=0.5))
    _say_caution(dict(summary, val_acc=0.95), cfg)
    assert "shrank" not in capsys.readouterr().err


def test_a_class_with_few_held_out_images_is_named_with_its_answers_and_one_images_weight():
    """A clinician's rare class read "100% (2 of 2)" in green, and its one validation miss (a melanoma called
    benign) sat behind a radio button: a class with fewer than FEW_PER_CLASS held-out images beside larger ones is
    named, before a run with its counts and after it with its answers on each split."""
    from engine.chance import FEW_PER_CLASS, few_class_words, few_image_classes

    split = {"train": {"naevus": 43, "melanoma": 5, "bcc": 18}, "val": {"naevus": 14, "melanoma": 2, "bcc": 6},
             "test": {"naevus": 14, "melanoma": 2, "bcc": 6}}
    before = {"data_report": {"split_counts": split}}
    assert few_image_classes(before) == {"melanoma": {"val": 2, "test": 2}}
    assert few_class_words(before) == (
        "Few images to judge this class by. melanoma: 2 validation images, 2 test images. One image is 50 points of "
        "such a class's own accuracy, so its figures say little (2 images prove little either way). More of its "
        "pictures, or larger validation and test shares, make them firmer.")
    after = {**before, "classes": ["naevus", "melanoma", "bcc"], "test_confusion": [[14, 0, 0], [0, 2, 0], [0, 0, 6]],
             "val_confusion": [[14, 0, 0], [1, 1, 0], [0, 0, 6]]}
    assert "melanoma: 2 of 2 test images right, 1 of 2 validation images right (1 taken for naevus). One image is " \
           "50 points" in few_class_words(after), few_class_words(after)
    # a class with no test image at all: its validation count sets the weight
    none = {"data_report": {"split_counts": {"val": {"a": 9, "b": 3}, "test": {"a": 9, "b": 0}}}}
    assert few_image_classes(none) == {"b": {"val": 3, "test": 0}}
    assert "b: 3 validation images, 0 test images. One image is 33 points" in few_class_words(none)
    # every class small: the split's own caution (small_split_words) says it; none at FEW_PER_CLASS and above
    assert few_class_words({"data_report": {"split_counts": {"val": {"a": 3, "b": 2}, "test": {"a": 3, "b": 2}}}}) == ""
    even = {c: FEW_PER_CLASS for c in ("a", "b")}
    assert few_class_words({"data_report": {"split_counts": {"val": {**even, "c": 40}, "test": even}}}) == ""
    assert few_class_words({}) == "" and few_image_classes({"data_report": {}}) == {}
    unmeasured = {"data_report": {"split_counts": {"val": {"a": 9, "b": 0}, "test": {"a": 9, "b": 0}}}}
    assert few_class_words(unmeasured).startswith("Few images to judge this class by. b: no validation or test "
                                                  "image, so its accuracy cannot be measured. More of its pictures")


def test_a_class_learnt_from_few_training_pictures_beside_a_large_one_is_named():
    from engine.chance import FEW_TRAIN, few_training_words

    def said(train):
        return few_training_words({"data_report": {"split_counts": {"train": train}}})

    assert said({"naevus": 43, "melanoma": 5, "bcc": 18}) == (
        "The model learnt melanoma from only 5 training pictures (naevus from 43): it knows that class least, so it "
        "may miss such pictures or take others for it.")
    assert said({"a": 4, "b": 5, "c": 43}) == (
        "The model learnt a from only 4 training pictures and b from 5 (c from 43): it knows those classes least, so "
        "it may miss such pictures or take others for them.")
    assert said({"a": FEW_TRAIN - 1, "b": 2 * FEW_TRAIN - 3}) is None, "not twice as many in the largest class"
    assert said({"a": FEW_TRAIN, "b": 90}) is None and said({}) is None and few_training_words({}) is None
    assert said({"a": 4, "b": 0, "c": 43}).endswith(" (c from 43): it knows that class least, so it may miss such "
                                                    "pictures or take others for it. It never saw b in training (no "
                                                    "training picture), so it does not know that class at all.")
    assert said({"a": 0, "c": 43}) == "It never saw a in training (no training picture), so it does not know that " \
                                      "class at all."


def test_how_often_answers_are_right_by_how_sure_the_model_was():
    """An ecologist's badgers were called deer at 83-94%, and nothing said how far such answers hold."""
    import torch
    from scipy.stats import binomtest

    from engine.chance import reliability, reliability_words
    from engine.evaluate import confidence_bands
    from engine.export import caution_section

    probs = torch.tensor([0.3, 0.55, 0.65, 0.8, 0.95, 0.99, 1.0, 0.9])
    right = torch.tensor([False, True, False, True, True, True, False, True])
    bands = confidence_bands(probs, right)
    assert bands["from"] == [0.0, 0.5, 0.7, 0.9] and bands["images"] == [1, 2, 1, 4] and bands["right"] == [0, 1, 1, 3]
    assert abs(bands["confidence"][3] - (0.95 + 0.99 + 1.0 + 0.9) / 4) < 1e-6, "1.0 falls in the last band"

    def run(sure_right, sure_n, conf=0.97, others=((0, 0, 3), (0.5, 6, 10), (0.7, 8, 10))):
        right_n = [r for _, r, _ in others] + [sure_right]
        images = [n for _, _, n in others] + [sure_n]
        n = sum(images)
        return {"classes": ["badger", "deer", "fox"], "test_acc": sum(right_n) / n, "val_acc": 0.9,
                "data_report": {"split_counts": {"test": {"badger": n // 3, "deer": n // 3, "fox": n - 2 * (n // 3)},
                                                 "val": {"badger": 10, "deer": 10, "fox": 10}}},
                "test_confidence": {"from": [0.0, 0.5, 0.7, 0.9], "right": right_n, "images": images,
                                    "confidence": [0.4, 0.6, 0.8, conf]}}

    honest = run(29, 30)
    rel = reliability(honest)
    assert rel.split == "test" and rel.sure == (29, 30, 0.97) and not rel.oversure
    assert reliability_words(honest) == (
        "How often its answers on the test images are right, by how sure it was: 90% sure or more, 29 of 30 (96.7%); "
        "70-90%, 8 of 10; 50-70%, 6 of 10; under 50%, 0 of 3.")
    # sure answers right 22 of 30 times at a mean confidence of 97%: beyond luck, said
    p = binomtest(22, 30, 0.97, alternative="less").pvalue
    assert p < 0.05
    over = run(22, 30)
    assert reliability(over).oversure
    assert reliability_words(over).endswith(
        "Its sure answers were right less often than it was sure (73.3% against a mean confidence of 97.0%), by more "
        "than luck on 30 answers: do not take a high confidence at its word.")
    assert "do not take a high confidence" in "\n".join(caution_section(over)), "the model card says it too"
    assert not any("high confidence" in line for line in caution_section(honest))
    # 4 of 5 at 95% is within luck on 5 answers; malformed bands and a run at guessing say nothing
    assert not reliability(run(4, 5, 0.95)).oversure
    assert reliability({**honest, "test_confidence": {"from": [0.0]}}) is None
    assert reliability_words({**honest, "test_acc": 1 / 3, "val_acc": 1 / 3}) is None
    # a WiSE-FT mix's card: its own counts by confidence were never measured, so the fine-tuned model's are not said
    mix = {**over, "wise_alpha": 0.5, "wise_measured": {"val_acc": 0.9, "test_acc": over["test_acc"]}}
    assert not any("high confidence" in line for line in caution_section(mix))


def test_a_test_split_below_guessing_beside_a_clear_validation_split_is_not_blamed_on_the_labels(capsys):
    """A camera-trap run's test deer were all night shots: 6 of 39 test images right, 26 of 36 validation ones, and
    the advice was to check that each class folder holds the images of its class (the same folders gave both)."""
    from app.claims_view import at_chance
    from engine.chance import labels_not_the_cause
    from engine.cli import _say_caution
    from engine.config import RunConfig

    counts = {"test": {"deer": 13, "empty": 13, "fox": 13}, "val": {"deer": 12, "empty": 13, "fox": 11}}
    run = {"classes": ["deer", "empty", "fox"], "test_acc": 6 / 39, "val_acc": 26 / 36,
           "data_report": {"split_counts": counts}}
    said = at_chance(run, {"train": {"epochs": 20, "batch_size": 32}})
    assert said.startswith("This run's test accuracy (15.4%) is below the level of guessing among 3 classes (33.3%). "
                           "The validation images, from the same class folders, are 72.2% right (26 of 36), clearly "
                           "above guessing: the labels are unlikely to be the cause.")
    assert "each class folder holds" not in said
    _say_caution(run, RunConfig())
    err = capsys.readouterr().err
    assert "the labels are unlikely to be the cause" in err and "check that each class folder" not in err
    # the user's own split folders can hold wrong labels of their own: the folders are still named
    given = {**run, "data_report": {**run["data_report"], "split_given": True}}
    assert labels_not_the_cause(given) is None and "each class folder holds" in at_chance(given, {})
    # validation within luck of guessing (14 of 36): the labels stay a suspect
    assert labels_not_the_cause({**run, "val_acc": 14 / 36}) is None


def test_a_gap_between_training_and_validation_that_stays_to_the_end_is_said(capsys):
    """An agronomist saw a note on the head-only epochs' gap and none on the one that stayed to the end (training
    about 100%, validation 81%)."""
    from engine.chance import overfit_words
    from engine.cli import _say_caution
    from engine.config import RunConfig

    counts = {"healthy": 15, "rust": 14, "septoria": 14}
    run = {"classes": ["healthy", "rust", "septoria"], "val_acc": 35 / 43, "test_acc": 37 / 43, "train_images": 134,
           "history": [{"epoch": 1, "train_acc": 0.6}, {"epoch": 20, "train_acc": 1.0}],
           "data_report": {"split_counts": {"val": counts, "test": counts}}}
    said = overfit_words(run, {"train": {"augment": True, "epochs": 20}})
    assert said == ("In its last epoch it got 100% of its 134 training images right, against 81% of its 43 validation "
                    "images: a gap of 19 points, beyond luck, is what it learnt of its training images that does not "
                    "carry to new ones (overfitting). More varied pictures of each class narrow it most.")
    assert overfit_words(run, {"train": {"augment": False}}).endswith(
        "narrow it most; augmentation (off in this run) too."), "what in its recipe may help"
    assert overfit_words({**run, "history": [{"train_acc": 0.9}]}) == "", "a gap of 9 points: not news"
    few = {**run, "train_images": 10, "val_acc": 3 / 4, "history": [{"train_acc": 1.0}],
           "data_report": {"split_counts": {"val": {"healthy": 2, "rust": 1, "septoria": 1}}}}
    assert overfit_words(few) == "", "10 of 10 against 3 of 4: luck can do that"
    at_guess = {**run, "val_acc": 15 / 43, "test_acc": 14 / 43}
    assert overfit_words(at_guess) == "", "a run at guessing: its own finding says it learnt by heart"
    _say_caution(run, RunConfig())
    assert f"note: {said}" in capsys.readouterr().err
