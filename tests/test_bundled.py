"""The shipped offline assets: the bundled backbone loads and its features are useful."""


import pytest
import torch

from engine.backbones import BACKBONES, available_sources, build_model, default_pretrained
from engine.config import RunConfig
from engine.paths import SAMPLE_DATASET, resolve_path
from engine.methods.wise_ft import fit_linear_probe, head_features
from engine.run_data import prepare_data


BUNDLED = ["resnet18", "mobilenet_v3_small"]


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_backbone_is_registered_and_available_offline(name):
    assert BACKBONES[name].has_bundled()
    assert available_sources(name)["bundled"]
    assert default_pretrained(name) in ("bundled", "imagenet")
    assert resolve_path(SAMPLE_DATASET).is_file()
    size_mb = BACKBONES[name].bundled_path.stat().st_size / 1024 ** 2
    assert size_mb <= 25, "fp16 safetensors, at most 25 MB"


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_features_beat_random_features_in_a_linear_probe(tmp_path, name):
    data = prepare_data(RunConfig(), tmp_path)  # the bundled sample, 64 px, default split
    accs = {}
    for source in ("bundled", "none"):
        torch.manual_seed(0)
        model, report = build_model(name, len(data.classes), source)
        if source == "bundled":
            assert report.matched > 100 and not report.shape_mismatch and not report.missing
        dev = torch.device("cpu")
        w, b = fit_linear_probe(head_features(model, data.train.images, dev), data.train.labels, len(data.classes))
        feats = head_features(model, data.test.images, dev)
        accs[source] = float(((feats @ w.T + b).argmax(1) == data.test.labels).float().mean())
    assert accs["bundled"] > accs["none"] + 0.15, accs
