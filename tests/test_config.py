import dataclasses

import pytest

from engine.config import RunConfig, apply_overrides, with_section
from engine.errors import StudioError
from engine.methods import METHODS


def test_default_round_trips_through_yaml():
    cfg = RunConfig()
    assert RunConfig.from_yaml(cfg.to_yaml()) == cfg


def test_every_method_section_round_trips():
    cfg = RunConfig()
    for name in METHODS:
        cfg = with_section(cfg, name, enabled=True)
    d = cfg.to_dict()
    assert all(d[name]["enabled"] for name in METHODS)
    assert RunConfig.from_dict(d).to_dict() == d


def test_overrides_accept_fractions_and_bools():
    cfg = apply_overrides(RunConfig(), ["optim.lr=1/200", "optim.nesterov=yes", "train.epochs=3", "seed=7"])
    assert cfg.optim.lr == pytest.approx(0.005)
    assert cfg.optim.nesterov is True and cfg.train.epochs == 3 and cfg.seed == 7


def test_effective_lr_is_reported():
    cfg = apply_overrides(RunConfig(), ["optim.lr=0.01", "optim.momentum=0.9"])
    assert cfg.effective_lr == pytest.approx(0.1)


@pytest.mark.parametrize(
    "override, words",
    [
        ("optim.lr=-1", r"Learning rate \(optim.lr\) must be between 1e-06 and 10"),
        ("backbone.name=nope", "Unknown backbone"),
        ("data.image_size=16", "too small"),
        ("optim.momentum=1.5", "Momentum"),
        ("train.epochs=0", r"Epochs \(train.epochs\) must be between 1"),
        ("optim.schedule=zigzag", "Unknown schedule"),
        ("backbone.pretrained=cloud", r"Pretrained weights \(backbone.pretrained\): `cloud` is not a choice"),
        ("train.epochs=many", "must be a int"),
        ("optim.lr=1/0", "must be a float"),
        ("eval.robust_eps=0.5", r"must be between 1 and 32/255 \(got 127.5\)"),  # the dashboard's units
    ],
)
def test_validation_messages(override, words):
    with pytest.raises(StudioError, match=words):
        apply_overrides(RunConfig(), [override])


def test_vit_needs_224():
    with pytest.raises(StudioError, match="224"):
        apply_overrides(RunConfig(), ["backbone.name=vit_b_16", "data.image_size=64"])


def test_unknown_section_and_field_are_named():
    with pytest.raises(StudioError, match="Unknown config section"):
        RunConfig.from_dict({"bogus": {}})
    with pytest.raises(StudioError, match="Unknown field"):
        RunConfig.from_dict({"optim": {"learning_rate": 0.1}})
    with pytest.raises(StudioError, match="section.field"):
        apply_overrides(RunConfig(), ["lr=0.1"])


def test_config_is_frozen():
    cfg = RunConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.optim.lr = 1.0  # type: ignore[misc]


def test_every_method_takes_its_words_from_its_notes(tmp_path, monkeypatch):
    import yaml

    from engine.methods import METHODS, MethodSpec
    from engine.paths import ASSETS_DIR

    for name, spec in METHODS.items():
        front = yaml.safe_load((ASSETS_DIR / "methods" / f"{name}.md").read_text().split("---\n", 2)[1])
        assert (spec.title, spec.summary, spec.paper_url) == (front["title"], front["summary"], front["paper_url"])
    monkeypatch.setattr("engine.methods.registry.ASSETS_DIR", tmp_path)
    (tmp_path / "methods").mkdir()
    (tmp_path / "methods" / "half.md").write_text("---\ntitle: Half\n---\n# Half\n")
    with pytest.raises(ValueError, match="lacks summary, explanation, paper, paper_url"):
        MethodSpec.from_notes("half", config_cls=object, build=None)
    with pytest.raises(ValueError, match="no front matter"):
        MethodSpec.from_notes("missing", config_cls=object, build=None)
