"""AdaFilter: binary gates with gradients, exact pretrained / fine-tuned limits, gated batch norm,
and tiny runs through the loop (with adversarial training, robust and OOD evaluation, WiSE-FT),
saved and reloaded for inference."""

import copy
import json

import pytest
import torch
from torch import nn

from engine.augment import to_float
from engine.backbones import BACKBONES, build_model
from engine.config import RunConfig, apply_overrides, validate
from engine.errors import StudioError
from engine.methods import METHODS
from engine.methods.adafilter import (GateNetwork, GatedConvBN, gate_network, gated_layers, plain_state,
                                      restructure)
from engine.contract import Reporter
from engine.optim import set_trunk_trainable
from engine.train import train

SUPPORTED = [name for name in BACKBONES if METHODS["adafilter"].supports(name)]


def adafilter_cfg(*overrides: str) -> RunConfig:
    return apply_overrides(RunConfig(), ["backbone.pretrained=none", "data.image_size=32", "adafilter.enabled=true",
                                         *overrides])


def randomise_bn(model: nn.Module, gen: torch.Generator) -> None:
    """Non-trivial batch-norm statistics and affine parameters (fresh ones are 0/1)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=gen) - 0.5)


def perturb_fine_tuned(model: nn.Module, gen: torch.Generator) -> None:
    """Move the fine-tuned copies (filters and their BN) away from the pretrained ones, as training would."""
    with torch.no_grad():
        for m in gated_layers(model).values():
            m.conv.weight.add_(0.3 * m.conv.weight.std() * torch.randn(m.conv.weight.shape, generator=gen))
            m.bn.weight.mul_(1 + 0.2 * torch.randn(m.bn.num_features, generator=gen))
            m.bn.bias.add_(0.1 * torch.randn(m.bn.num_features, generator=gen))
            m.bn.running_mean.add_(0.1 * torch.randn(m.bn.num_features, generator=gen))


def gated_pair(backbone: str, *overrides: str):
    """(plain 'pretrained' model, AdaFilter model built from it with fine-tuned copies moved away)."""
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    plain, _ = build_model(backbone, 3, "none")
    randomise_bn(plain, gen)
    cfg = adafilter_cfg(f"backbone.name={backbone}", *overrides)
    gated = restructure(copy.deepcopy(plain), cfg, cfg.methods["adafilter"])
    return plain, gated, gen


# ---- the gates ---------------------------------------------------------------------------------

@pytest.mark.parametrize("gumbel", [True, False])
def test_gates_are_binary_in_the_forward_pass_and_receive_gradients(gumbel):
    plain, model, gen = gated_pair("resnet18", f"adafilter.gumbel={gumbel}")
    perturb_fine_tuned(model, gen)  # at the start both copies are equal, so a gate cannot matter yet
    gates = gate_network(model)
    gates.record = {}
    model.train()
    x = torch.rand(6, 3, 32, 32, generator=gen)
    loss = nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 0, 1, 2]))
    assert len(gates.record) == len(gates.layer_names) == 19
    for g in gates.record.values():
        assert set(g.unique().tolist()) <= {0.0, 1.0}
    loss.backward()
    for name in ("proj.0.weight", "cell.weight_ih", "cell.weight_hh", "logits.0.weight", "logits.18.bias"):
        grad = dict(gates.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_eval_gates_are_deterministic_and_training_gates_sample():
    _, model, gen = gated_pair("resnet18")
    gates = gate_network(model)
    x = torch.rand(4, 3, 32, 32, generator=gen)
    runs = []
    for mode in (False, False, True, True):
        model.train(mode)
        gates.record = {}
        with torch.no_grad():
            model(x)
        runs.append(torch.cat([g.flatten() for g in gates.record.values()]))
    assert torch.equal(runs[0], runs[1]), "eval: sigmoid(logit) > 0.5, no noise"
    assert not torch.equal(runs[2], runs[3]), "training: Gumbel noise samples the gates"


@pytest.mark.parametrize("backbone", SUPPORTED)
@pytest.mark.parametrize("pretrained_bn", ["adapt", "frozen"])
def test_all_gates_zero_is_the_pretrained_model_all_one_the_fine_tuned_one(backbone, pretrained_bn):
    plain, model, gen = gated_pair(backbone, f"adafilter.pretrained_bn={pretrained_bn}")
    n_blocks, convs_per_block = {"resnet18": (8, 2), "resnet50": (16, 3)}.get(backbone, (None, None))
    if n_blocks:  # every conv of every block, plus one downsample shortcut per stage that changes shape
        assert len(gate_network(model).layer_names) == n_blocks * convs_per_block + (3 if backbone == "resnet18" else 4)
    x = torch.rand(2, 3, 32, 32, generator=gen)
    plain.eval(), model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), plain(x)), "at the start both copies are equal: any gates give the pretrained model"
    perturb_fine_tuned(model, gen)
    fine_tuned = copy.deepcopy(plain)
    fine_tuned.load_state_dict(plain_state(model, "finetuned"))
    gates = gate_network(model)
    with torch.no_grad():
        gates.force_gates = 0.0
        assert torch.equal(model(x), plain(x))
        gates.force_gates = 1.0
        assert torch.equal(model(x), fine_tuned(x))
        assert not torch.equal(fine_tuned(x), plain(x))
        gates.force_gates = None
        learnt = model(x)
        assert not torch.equal(learnt, plain(x)) and not torch.equal(learnt, fine_tuned(x))
    # in training mode too (batch statistics), for the BN the gate selects
    if pretrained_bn == "adapt":
        model.train(), plain.train(), fine_tuned.train()
        with torch.no_grad():
            gates.force_gates = 0.0
            assert torch.equal(model(x), plain(x))
            gates.force_gates = 1.0
            assert torch.equal(model(x), fine_tuned(x))


def one_gated_layer():
    """A seeded 4->6 channel conv + batch norm wrapped as one gated layer: (conv, gate network, layer)."""
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6)
    gates = GateNetwork(["l"], [4], [6], hidden_size=8)
    return conv, gates, GatedConvBN(conv, bn, 0, gates, "adapt")


def test_gated_outputs_pick_each_channel_from_one_copy():
    """Without forcing, every output channel of a gated layer is exactly the pretrained or the fine-tuned one."""
    conv, gates, layer = one_gated_layer()
    layer.eval()
    with torch.no_grad():
        conv.weight.add_(0.5 * torch.randn_like(conv.weight))
        x = torch.rand(5, 4, 8, 8)
        gates.record = {}
        out = layer(x)
        g = gates.record[0]
        fine = layer.bn(conv(x))
        pre = layer.bn_pretrained(nn.functional.conv2d(x, layer.weight_pretrained, padding=1))
    assert 0 < g.mean() < 1
    expect = torch.where(g.bool()[:, :, None, None], fine, pre)
    assert torch.equal(out, expect)


def test_expected_eval_gates_mix_the_copies_by_the_gate_probability():
    """eval_gates "expected": at evaluation each channel is p * fine-tuned + (1 - p) * pretrained, p the
    gate's noise-free probability; training still samples binary gates."""
    conv, gates, layer = one_gated_layer()
    gates.eval_gates = "expected"
    layer.eval(), gates.eval()  # the gate network hangs on the model, not on the layer
    with torch.no_grad():
        conv.weight.add_(0.5 * torch.randn_like(conv.weight))
        x = torch.rand(5, 4, 8, 8)
        gates.record = {}
        out = layer(x)
        p = gates.record[-1]  # the probabilities, recorded beside the gates used
        fine = layer.bn(conv(x))
        pre = layer.bn_pretrained(nn.functional.conv2d(x, layer.weight_pretrained, padding=1))
    assert torch.equal(gates.record[0], p) and ((p > 0) & (p < 1)).all() and not torch.equal(p, p.round())
    torch.testing.assert_close(out, p[:, :, None, None] * fine + (1 - p[:, :, None, None]) * pre)
    layer.train(), gates.train()
    gates.record = {}
    layer(x)
    assert set(gates.record[0].unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("temperature", [0.2, 1.0, 5.0])
def test_the_expected_mix_weights_each_copy_as_often_as_training_picks_it(temperature):
    """Training picks the fine-tuned copy when logit + noise > 0, with probability sigmoid(logit) at any
    temperature; the expected mix must use that probability, not sigmoid(logit / T)."""
    torch.manual_seed(0)
    gates = GateNetwork(["l"], [4], [6], hidden_size=8, temperature=temperature, gate_bias=2.0,
                        eval_gates="expected")
    x = torch.rand(1, 4, 8, 8).expand(4000, 4, 8, 8)  # one image, many draws of the training noise
    with torch.no_grad():
        picked = gates(0, x).mean(0)  # training mode: sampled 0/1 gates
        gates.eval()
        mixed = gates(0, x[:1])[0]
    torch.testing.assert_close(mixed, picked, atol=0.03, rtol=0)


def test_the_config_sets_the_eval_gates_and_refuses_an_unknown_rule():
    _, model, _ = gated_pair("resnet18", "adafilter.eval_gates=expected")
    assert gate_network(model).eval_gates == "expected"
    with pytest.raises(StudioError, match="eval_gates") as refused:
        validate(adafilter_cfg("adafilter.eval_gates=soft"))
    assert str(refused.value).count("soft") == 1, "each problem said once"
    with pytest.raises(StudioError, match="random gate choices"):  # nothing random to average over
        validate(adafilter_cfg("adafilter.eval_gates=expected", "adafilter.gumbel=false"))


def test_gated_batch_norm_statistics_stay_separate():
    conv, gates, layer = one_gated_layer()
    layer.train()
    with torch.no_grad():
        conv.weight.mul_(3.0)  # the fine-tuned filters now respond 3x as strongly
    x = torch.rand(16, 4, 8, 8)
    layer(x)
    with torch.no_grad():
        pre_out = nn.functional.conv2d(x, layer.weight_pretrained, padding=1)
        ft_out = conv(x)
    m = layer.bn.momentum
    torch.testing.assert_close(layer.bn_pretrained.running_mean, m * pre_out.mean((0, 2, 3)))
    torch.testing.assert_close(layer.bn.running_mean, m * ft_out.mean((0, 2, 3)))
    torch.testing.assert_close(layer.bn.running_mean, 3 * layer.bn_pretrained.running_mean)
    var_pre = pre_out.transpose(0, 1).flatten(1).var(1)
    torch.testing.assert_close(layer.bn_pretrained.running_var, (1 - m) + m * var_pre)
    assert layer.bn.weight is not layer.bn_pretrained.weight

    frozen = GatedConvBN(nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), 0, gates, "frozen").train()
    before = {k: v.clone() for k, v in frozen.bn_pretrained.state_dict().items()}
    frozen(x)
    assert all(torch.equal(before[k], v) for k, v in frozen.bn_pretrained.state_dict().items())
    assert not any(True for _ in frozen.bn_pretrained.parameters()), "frozen BN is buffers only"


def test_pretrained_copies_are_buffers_the_loop_cannot_unfreeze():
    _, model, _ = gated_pair("resnet18")
    set_trunk_trainable(model, [], probe_only=False)  # what the loop does every epoch
    params = dict(model.named_parameters())
    assert not any("weight_pretrained" in k for k in params)
    assert "net.layer1.0.conv1.conv.weight" in params and params["net.layer1.0.conv1.conv.weight"].requires_grad
    assert "net.layer1.0.conv1.weight_pretrained" in model.state_dict()
    assert any(k.startswith("adafilter_gate.") for k in params), "the gate network trains with the model"


def test_structure_and_gate_init_are_deterministic():
    cfg = adafilter_cfg()
    a = restructure(build_model("resnet18", 3, "none")[0], cfg, cfg.methods["adafilter"])
    b = restructure(build_model("resnet18", 3, "none")[0], cfg, cfg.methods["adafilter"])
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa if k.startswith("adafilter_gate."))


@pytest.mark.parametrize("bias, low, high", [(0.0, 0.3, 0.7), (2.0, 0.8, 0.95), (-2.0, 0.05, 0.2)])
def test_the_gate_bias_sets_where_the_gates_start(bias, low, high):
    """A filter starts on its fine-tuned copy with probability about sigmoid(bias) (training gates,
    Gumbel noise included); the seeded weights of the gate network do not depend on the bias."""
    _, model, gen = gated_pair("resnet18", f"adafilter.gate_bias={bias}")
    gates = gate_network(model)
    gates.record = {}
    model.train()
    with torch.no_grad():
        model(torch.rand(8, 3, 32, 32, generator=gen))
    share = float(torch.cat([g.flatten() for g in gates.record.values()]).mean())
    assert low < share < high, (bias, share)
    _, plain_init, _ = gated_pair("resnet18")
    assert torch.equal(gates.logits[0].weight, gate_network(plain_init).logits[0].weight)


def test_only_resnets_are_supported():
    assert {"resnet18", "resnet50"} <= set(SUPPORTED)
    assert all(BACKBONES[n].family == "resnet" for n in SUPPORTED)
    with pytest.raises(StudioError, match="does not support the backbone mobilenet_v3_small"):
        adafilter_cfg("backbone.name=mobilenet_v3_small")


# ---- through the loop ----------------------------------------------------------------------------

class Recorder(Reporter):
    def __init__(self):
        self.epochs = []

    def epoch_metrics(self, epoch, step, values):
        self.epochs.append(values)


def test_tiny_run_with_adversarial_robust_and_ood_eval_saves_and_reloads(resnet_cfg, tmp_path):
    from engine.runs import load_run_model

    rec = Recorder()
    cfg = resnet_cfg("adafilter.enabled=true", "adafilter.gate_lr_mult=5", "adafilter.gated_lr_mult=2",
                     "adversarial.enabled=true",
                     "adversarial.steps=1", "eval.robust=true", "eval.robust_steps=2", "eval.robust_subset=8",
                     "eval.ood=true")
    res = train(cfg, rec, run_dir=tmp_path, work_dir=tmp_path / "data")
    s, ctx = res.summary, res.context
    layers = gate_network(ctx.model).layer_names
    assert set(s["adafilter_gate_mean"]) == set(layers) and len(layers) == 19
    assert all(0 <= v <= 1 for v in s["adafilter_gate_mean"].values())
    assert set(s["adafilter_gate_by_class"]) == set(s["classes"])
    assert set(s["adafilter_gate_by_class"]["red"]) == set(layers)
    assert 0 <= s["robust_acc"] <= 1 and s["ood_acc"] is not None and s["ood_acc_by_corruption"]
    assert s["adafilter"]["gated_layers"] == 19 and s["adafilter"]["block_conv_work_ratio"] == 2.0
    for e in rec.epochs:  # the live chart's data: per layer and overall, every epoch
        assert 0 <= e["adafilter_gate_mean"] <= 1
        assert all(f"adafilter/gate_mean/{name}" in e for name in layers)
    # the gate network has its own lr (base lr x gate_lr_mult), the pretrained filters never moved
    groups = {g["name"]: g for g in ctx.optimizer.param_groups}
    assert groups["adafilter_gates"]["base_lr"] == pytest.approx(cfg.optim.lr * 5)
    # the gated layers (fine-tuned convs, both BNs) at gated_lr_mult x their group's lr, every other
    # trunk parameter where it was, each parameter in exactly one group
    gated_ids = {id(p) for m in gated_layers(ctx.model).values() for p in m.parameters()}
    assert groups["trunk_gated"]["base_lr"] == pytest.approx(groups["trunk"]["base_lr"] * 2)
    assert groups["trunk_no_decay_gated"]["weight_decay"] == 0.0
    assert {id(p) for n, g in groups.items() if n.endswith("_gated") for p in g["params"]} == gated_ids
    ids = [id(p) for g in ctx.optimizer.param_groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(ctx.model.parameters()))
    state = ctx.model.state_dict()
    assert torch.equal(state["net.layer4.1.conv2.weight_pretrained"],
                       ctx.pretrained_state["net.layer4.1.conv2.weight_pretrained"])
    assert not torch.equal(state["net.layer4.1.conv2.conv.weight"],
                           ctx.pretrained_state["net.layer4.1.conv2.conv.weight"])

    (tmp_path / "summary.json").write_text(json.dumps({"classes": s["classes"]}))
    loaded, loaded_cfg, classes = load_run_model(tmp_path)
    assert loaded_cfg.methods["adafilter"].enabled and classes == s["classes"]
    x = to_float(ctx.data.val.images)
    ctx.model.eval().cpu()
    with torch.no_grad():
        # bitwise equal on the CPU; a GPU-trained model keeps channels_last, which reorders the sums
        torch.testing.assert_close(loaded(x), ctx.model(x), rtol=1e-5, atol=1e-5)


def test_sparsity_penalty_lowers_the_fraction_of_fine_tuned_filters(resnet_cfg, tmp_path):
    common = ("adafilter.enabled=true", "adafilter.gate_lr_mult=100", "eval.ood=false", "train.epochs=2")
    free = train(resnet_cfg(*common), work_dir=tmp_path).summary
    sparse = train(resnet_cfg(*common, "adafilter.sparsity_weight=1.0"), work_dir=tmp_path).summary
    assert sparse["adafilter_gate_mean_overall"] < free["adafilter_gate_mean_overall"] - 0.004  # GPU noise is ~0.003


def test_wise_ft_mixes_an_adafilter_model(resnet_cfg, tmp_path):
    from safetensors.torch import save_file

    start, _ = build_model("resnet18", 3, "none")
    ckpt = tmp_path / "start.safetensors"
    save_file({k: v.contiguous() for k, v in start.net.state_dict().items()}, str(ckpt))
    cfg = resnet_cfg("adafilter.enabled=true", "wise_ft.enabled=true", "wise_ft.alphas=0,0.5,1", "train.epochs=1",
                     "eval.ood=false", "backbone.pretrained=checkpoint", f"backbone.checkpoint={ckpt}")
    s = train(cfg, work_dir=tmp_path).summary
    curve = s["wise_curve"]
    assert [p["alpha"] for p in curve] == [0.0, 0.5, 1.0]
    assert curve[-1]["val_acc"] == pytest.approx(s["val_acc"])
    assert curve[0]["val_acc"] == pytest.approx(s["wise_theta0_val_acc"])


def test_gated_model_exports_to_torchscript_and_onnx(tmp_path):
    from engine.export import export_onnx, export_torchscript

    _, model, gen = gated_pair("resnet18")
    perturb_fine_tuned(model, gen)
    images = (torch.rand(10, 3, 32, 32, generator=gen) * 255).to(torch.uint8)
    assert export_torchscript(model, 32, tmp_path / "m.pt", images).ok
    pytest.importorskip("onnxruntime")
    check = export_onnx(model, 32, tmp_path / "m.onnx", images)
    assert check.ok, check.message


def test_gate_gradients_are_recorded_non_zero_and_move_the_gates(resnet_cfg, tmp_path):
    """The diagnostic the issue asks for: per layer and epoch, the gate-logit gradient norm. Once the
    fine-tuned copies differ from the pretrained ones every layer's gates get a gradient, and a short
    run moves the noise-free gate probabilities away from those of the untrained gate network."""
    rec = Recorder()
    cfg = resnet_cfg("adafilter.enabled=true", "adafilter.gate_lr_mult=20", "eval.ood=false", "train.epochs=2")
    res = train(cfg, rec, work_dir=tmp_path)
    s, model = res.summary, res.context.model
    history = s["adafilter_gate_grad_history"]
    layers = gate_network(model).layer_names
    assert len(history) == 2 and all(set(h) == set(layers) for h in history)
    assert all(v > 0 for v in history[-1].values())  # every layer's gates got a signal
    assert all("adafilter_gate_grad" in e and e["adafilter_gate_grad"] > 0 for e in rec.epochs)

    fresh, _ = build_model("resnet18", len(s["classes"]), "none")
    fresh = restructure(fresh, cfg, cfg.methods["adafilter"])  # the same seeded, untrained gate network
    trained = gate_network(model).state_dict()
    moved = max((trained[k].cpu() - v).abs().max().item() for k, v in gate_network(fresh).state_dict().items())
    assert moved > 1e-4
    probs = s["adafilter_gate_prob_mean"]
    assert set(probs) == set(layers) and all(0 < v < 1 for v in probs.values())
