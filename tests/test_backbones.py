import os
import pickle
import urllib.error
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from engine.backbones import BACKBONES, build_model, register_backbone
from engine.errors import StudioError


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_backbone_builds_and_runs_with_a_new_head(name):
    spec = BACKBONES[name]
    model, report = build_model(name, num_classes=5, pretrained="none")
    size = spec.fixed_image_size or 32
    model.eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, size, size))
    assert out.shape == (1, 5)
    assert model.head.out_features == 5 and model.head.in_features == spec.feature_dim
    assert model.trunk_blocks(), "freezing needs at least one trunk block"
    head_ids = model.head_parameter_ids()
    assert not any(id(p) in head_ids for b in model.trunk_blocks() for p in b.parameters())


@pytest.mark.parametrize("name", list(BACKBONES))
def test_torchvisions_weights_file_starts_with_the_builders_name(name):
    """has_imagenet_cached looks for files starting with the builder's name before importing torchvision."""
    spec = BACKBONES[name]
    assert Path(spec.weights_enum.DEFAULT.url).name.startswith(spec.builder_name)


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_backbone(BACKBONES["resnet18"])


def _fake_imagenet_file(name: str, torch_home: Path) -> Path:
    spec = BACKBONES[name]
    net = spec.builder(weights=None)
    torch.manual_seed(123)
    for p in net.parameters():
        p.data.normal_()
    path = spec.imagenet_cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_imagenet_weights_load_offline_from_the_hub_cache(name, tmp_path, monkeypatch):
    """The real torchvision weights API, with the file placed where its cache expects it."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert not BACKBONES[name].has_imagenet_cached()
    path = _fake_imagenet_file(name, tmp_path)
    assert str(path).startswith(str(tmp_path)) and BACKBONES[name].has_imagenet_cached()
    model, report = build_model(name, 3, "imagenet")
    saved = torch.load(path, weights_only=True)
    key = next(k for k in saved if k.endswith("weight") and saved[k].ndim == 4)
    assert torch.equal(model.net.state_dict()[key], saved[key])
    assert report.matched > 10 and not report.shape_mismatch


def test_imagenet_missing_offline_names_the_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(StudioError) as exc:
        build_model("resnet18", 3, "imagenet")
    msg = str(exc.value)
    assert "resnet18-" in msg and str(tmp_path) in msg and msg.endswith("or choose the bundled weights."), msg
    # a backbone without bundled weights is not told to choose them (a command-line user of ResNet-50 offline was)
    with pytest.raises(StudioError) as exc:
        build_model("resnet50", 3, "imagenet")
    msg = str(exc.value)
    assert "choose the bundled weights" not in msg and \
        "choose a backbone with bundled weights (ResNet-18, MobileNetV3-Small) or none." in msg, msg


def test_checkpoints_load_from_safetensors_and_pt(tmp_path):
    net, _ = build_model("resnet18", 4, "none")
    sd = {"module.net." + k: v for k, v in net.net.state_dict().items()}  # DataParallel-style prefixes
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "w.safetensors"))
    torch.save({"state_dict": sd}, tmp_path / "w.pt")
    for f in ("w.safetensors", "w.pt"):
        model, report = build_model("resnet18", 7, "checkpoint", str(tmp_path / f))
        assert torch.equal(model.net.conv1.weight, net.net.conv1.weight)
        assert report.matched > 50 and not report.unexpected
        assert model.head.out_features == 7


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/studio_pwned",))


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"conv1.weight": _Evil()}, f)
    with pytest.raises(StudioError, match="could run code"):
        build_model("resnet18", 3, "checkpoint", str(path))
    assert not Path("/tmp/studio_pwned").exists()


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    save_file({"encoder.weight": torch.zeros(3, 3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(StudioError, match="None of the weights"):
        build_model("resnet18", 3, "checkpoint", str(tmp_path / "other.safetensors"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(StudioError, match="junk.pt is not a model checkpoint the studio can read"):
        build_model("resnet18", 3, "checkpoint", str(tmp_path / "junk.pt"))


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "efficientnet_b0"])
def test_batch_norm_follows_new_data_at_pytorchs_default_rate(name):
    """torchvision builds these with BN momentum 0.01; a short fine-tune needs 0.1 (see BN_MOMENTUM)."""
    model, _ = build_model(name, 3, "none")
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.momentum == 0.1 for m in bns)


def test_every_backbone_has_a_title_people_write_and_the_ui_uses_it():
    """Users read "ResNet-18", not the registry id "resnet18": every registered backbone's title is
    its description's name (no trailing full stop), and an unknown id is shown unchanged."""
    from engine.backbones import BACKBONES, backbone_title

    assert backbone_title("resnet18") == "ResNet-18" and backbone_title("mobilenet_v3_small") == "MobileNetV3-Small"
    for name, spec in BACKBONES.items():
        assert spec.title and spec.title != name and not spec.title.endswith("."), (name, spec.title)
    assert backbone_title("my_net") == "my_net"



def test_a_model_built_for_a_checkpoint_skips_drawing_weights_and_loads_them_exactly(resnet_cfg):
    """A finished run's model (engine.runs.model_from_state) is built without random weights: the global RNG is
    left as it was, and every tensor comes from the checkpoint, an AdaFilter run's gate network included."""
    from engine.methods.registry import restructure_model
    from engine.runs import model_from_state

    cfg = resnet_cfg("adafilter.enabled=true")
    torch.manual_seed(3)
    source = restructure_model(build_model("resnet18", 3, "none")[0], cfg)
    state = {k: v.clone() for k, v in source.state_dict().items()}
    rng = torch.random.get_rng_state()
    loaded = model_from_state(cfg, 3, state)
    assert torch.equal(torch.random.get_rng_state(), rng), "no weights drawn"
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x), source.eval()(x))
    with pytest.raises(StudioError, match="does not fit"):  # a tensor missing is still refused, not left unset
        model_from_state(cfg, 3, {k: v for k, v in state.items() if not k.endswith("fc.bias")})
    # batch norm takes a missing step counter as an old checkpoint's: it is 0 then, as a network built as usual has
    old = model_from_state(cfg, 3, {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")})
    assert all(int(v) == 0 for k, v in old.state_dict().items() if k.endswith("num_batches_tracked"))
