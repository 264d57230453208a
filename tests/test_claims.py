"""Each method's claim line is computed from run summaries (pure functions, small dicts)."""

from engine.claims import adafilter_claim, adversarial_claim, pruning_claim, wise_ft_claim


def test_adafilter_claim_needs_accuracy_and_adapting_gates():
    flat = {"test_acc": 0.60, "adafilter_gate_mean": {"a": 0.50, "b": 0.52},
            "adafilter_gate_by_class": {"x": {"a": 0.5, "b": 0.5}, "y": {"a": 0.52, "b": 0.52}}}
    spread = {**flat, "adafilter_gate_mean": {"a": 0.40, "b": 0.75}}
    base = {"test_acc": 0.605}
    assert adafilter_claim(spread, base).shown is True
    assert "-0.5 points" in adafilter_claim(spread, base).text and "35.0 points across layers" in adafilter_claim(spread, base).text
    assert adafilter_claim(flat, base).shown is False  # accuracy fine, gates did not adapt
    assert adafilter_claim(spread, {"test_acc": 0.62}).shown is False  # 2 points below
    assert adafilter_claim(spread).shown is None  # no baseline: no verdict on accuracy
    classes = {**flat, "adafilter_gate_by_class": {"x": {"a": 0.3, "b": 0.3}, "y": {"a": 0.6, "b": 0.6}}}
    assert adafilter_claim(classes, base).shown is True  # a per-class difference counts too


def test_pruning_claim_unstructured_and_structured():
    run = {"sparsity": 0.70, "test_acc": 0.55}
    assert pruning_claim(run, {"test_acc": 0.565}).shown is True
    assert pruning_claim(run, {"test_acc": 0.58}).shown is False
    assert "70.0% sparse" in pruning_claim(run).text and pruning_claim(run).shown is None
    both = {**run, "structured": {"val_acc": 0.50, "val_acc_before": 0.54, "flops_ratio": 0.5}}
    assert pruning_claim(both, {"test_acc": 0.56}).shown is False  # structured lost 4 points
    assert "50.0% of the FLOPs" in pruning_claim(both).text
    assert pruning_claim({"sparsity": 0.0}).shown is None


def test_wise_ft_claim_interior_alpha_beats_both_ends():
    curve = [{"alpha": 0.0, "val_acc": 0.50, "ood_acc": 0.40}, {"alpha": 0.5, "val_acc": 0.595, "ood_acc": 0.47},
             {"alpha": 1.0, "val_acc": 0.60, "ood_acc": 0.45}]
    c = wise_ft_claim({"wise_curve": curve})
    assert c.shown is True and "alpha 0.5" in c.text and "+2.0 points" in c.text
    curve[1]["val_acc"] = 0.55  # interior point too far below the fine-tuned end on validation
    assert wise_ft_claim({"wise_curve": curve}).shown is False
    assert wise_ft_claim({}).shown is None


def test_adversarial_claim_against_plain_and_scratch():
    run = {"robust_acc": 0.40, "compute_passes": 1000}
    assert adversarial_claim(run, {"robust_acc": 0.20}).shown is True
    assert adversarial_claim(run, {"robust_acc": 0.30}).shown is False
    assert adversarial_claim(run, {"robust_acc": 0.20}, {"robust_acc": 0.35, "compute_passes": 5000}).shown is True
    assert adversarial_claim(run, {"robust_acc": 0.20}, {"robust_acc": 0.35, "compute_passes": 3000}).shown is False
    assert adversarial_claim({}).shown is None and adversarial_claim(run).shown is None


def test_results_page_compares_with_standard_fine_tuning_on_the_same_data():
    from types import SimpleNamespace as R

    from app.claims_view import comparison_run

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


def test_a_run_at_chance_is_flagged_before_its_claim_lines():
    from app.claims_view import at_chance

    eight = [f"c{i}" for i in range(8)]
    text = at_chance({"classes": eight, "test_acc": 0.125})
    assert "12.5%" in text and "8 classes" in text and "test accuracy" in text
    assert at_chance({"classes": eight, "test_acc": 0.40}) is None
    assert "validation accuracy" in at_chance({"classes": eight, "val_acc": 0.13})
    assert at_chance({"classes": ["a"], "test_acc": 0.0}) is None and at_chance({}) is None
    assert "the line below compares" in text
    assert "the lines below compare" in at_chance({"classes": eight, "test_acc": 0.125}, lines=2)
