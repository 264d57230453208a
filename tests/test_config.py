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
        ("train.epochs=many", "must be a whole number"),
        ("optim.lr=1/0", "must be a number"),
        ("eval.robust_eps=0.5", r"must be between 1 and 32/255 \(got 127.5\)"),  # the dashboard's units
    ],
)
def test_validation_messages(override, words):
    with pytest.raises(StudioError, match=words):
        apply_overrides(RunConfig(), [override])


def _settings_out_of_bounds() -> RunConfig:
    """Every bounded setting of every section one step outside its range, plus the problems that
    span settings: a config that trips each kind of check the dashboard can show."""
    from engine.config import CORE_SECTIONS, METHOD_SECTIONS

    cfg = RunConfig()
    for section, cls in {**CORE_SECTIONS, **{n: c for n, (c, _) in METHOD_SECTIONS.items()}}.items():
        changes = {}
        for f in dataclasses.fields(cls):
            if "max" in f.metadata and isinstance(f.default, (int, float)) and not isinstance(f.default, bool):
                changes[f.name] = type(f.default)(f.metadata["max"] + 1)
        cfg = (dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **changes)})
               if section in CORE_SECTIONS else with_section(cfg, section, **changes))
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=3),
                              optim=dataclasses.replace(cfg.optim, linear_probe_epochs=3))
    cfg = with_section(cfg, "pruning", enabled=True, start_fraction=0.9, end_fraction=0.5, stage_fractions=(0.5, 1.5))
    cfg = with_section(cfg, "wise_ft", alphas=(0.5, 2.0))
    return with_section(cfg, "adafilter", eval_gates="expected", gumbel=False)


def test_settings_in_messages_are_named_by_label_and_key_and_the_dashboard_drops_the_keys():
    """The command line's message gives a setting's key to type (train.threads); the dashboard's names
    the setting as its widget is labelled, with no key left in it."""
    import re

    from engine.config import validate, without_setting_keys

    with pytest.raises(StudioError) as info:
        validate(_settings_out_of_bounds())
    lines = str(info.value).splitlines()[1:]
    assert len(lines) > 20, lines
    for line in lines:
        assert re.search(r"\((?:data|backbone|optim|train|eval|adafilter|pruning|wise_ft|adversarial|l2sp)\.[a-z0-9_]+", line), line
        shown = without_setting_keys(line)
        assert not re.search(r"\b[a-z][a-z0-9]*_[a-z0-9_]+\b|\b[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\b",
                             shown.replace("e.g.", "")), shown  # no key, dotted or bare
        assert "( " not in shown and "()" not in shown and "  " not in shown, shown
    shown = without_setting_keys(str(info.value))
    assert "CPU threads (0 = automatic) must be between 0 and 256 (got 257)" in shown
    assert "Linear-probe epochs first must be fewer than Epochs (3 against 3): nothing would be fine-tuned. Lower it " \
           "to 2 or train longer." in shown
    assert "'Start pruning at (share of the run)' (0.9) is after 'Reach the target at (share of the run)' (0.5)" in shown
    assert "Lower it to 2 (optim.linear_probe_epochs=2)" in str(info.value), "the command line's words"
    assert "'Gates when predicting': a mix of both copies (expected) averages" in shown
    # only real settings are taken out: a file named in brackets stays; a value with brackets goes whole
    assert without_setting_keys("Could not read it (data.zip).") == "Could not read it (data.zip)."
    assert without_setting_keys("Keep it (pruning.target_sparsity=0.5 (50%)) here") == "Keep it here"


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


def test_every_setting_has_a_label_and_plain_help():
    """The dashboard draws each setting from its metadata: a label and a ? help for every one (a new
    user found "Start pruning at" without one among fields that all had it)."""
    from engine.config import CORE_SECTIONS, METHOD_SECTIONS

    missing = [f"{section}.{f.name}"
               for section, cls in {**CORE_SECTIONS, **{n: c for n, (c, _) in METHOD_SECTIONS.items()}}.items()
               for f in dataclasses.fields(cls)
               if f.name != "enabled" and not (f.metadata.get("label") and f.metadata.get("help"))]
    assert missing == [], missing


def test_a_zero_that_means_all_or_automatic_says_so_in_its_label():
    """"Training images per class: 0" read as zero images to a new user: where 0 stands for all or for
    automatic, the label says it, not only the help behind the ?."""
    import re

    from engine.config import CORE_SECTIONS, METHOD_SECTIONS

    unsaid = [f"{section}.{f.name}: {f.metadata['label']}"
              for section, cls in {**CORE_SECTIONS, **{n: c for n, (c, _) in METHOD_SECTIONS.items()}}.items()
              for f in dataclasses.fields(cls)
              if (m := re.search(r"\(?0 = (all|automatic)", f.metadata.get("help", "")))
              and f"(0 = {m[1]})" not in f.metadata.get("label", "")]
    assert unsaid == [], unsaid


def test_no_setting_label_carries_two_brackets():
    """A label that says what 0 means and a unit in brackets read "(0 = all) (images)"."""
    from app.widgets import field_info
    from engine.config import CORE_SECTIONS, METHOD_SECTIONS

    doubled = [info.shown_label
               for section, cls in {**CORE_SECTIONS, **{n: c for n, (c, _) in METHOD_SECTIONS.items()}}.items()
               for f in dataclasses.fields(cls) if f.name != "enabled"
               if (info := field_info(section, cls, f.name)).shown_label.count("(") > 1]
    assert doubled == [], doubled


def test_plural_counts_in_words():
    from engine.words import plural

    assert [plural(1, "epoch"), plural(0, "epoch"), plural(3, "epoch")] == ["1 epoch", "0 epochs", "3 epochs"]
    assert [plural(1, "batch", "batches"), plural(2, "batch", "batches")] == ["1 batch", "2 batches"]


def test_names_and_percentages_in_words():
    from engine.words import and_words, percent_half_up

    assert [and_words(["a"]), and_words(("a", "b")), and_words(["a", "b", "c"])] == ["a", "a and b", "a, b and c"]
    assert [percent_half_up(0.125), percent_half_up(0.124), percent_half_up(1.0)] == ["13%", "12%", "100%"]


def test_a_long_list_names_its_first_few_and_counts_the_rest():
    """One way of writing "a, b and 2 more" for the messages that name files, classes or run ids."""
    from engine.words import first_and_more

    files = ["a.png", "b.png", "c.png", "d.png"]
    assert [first_and_more(files, 2), first_and_more(files, 4), first_and_more(files, 9), first_and_more([], 3)] == \
        ["a.png, b.png and 2 more", "a.png, b.png, c.png, d.png", "a.png, b.png, c.png, d.png", ""]
    assert first_and_more(["x, 3 pictures", "y, 2 pictures"], 1, "; ", "; and {} more") == "x, 3 pictures; and 1 more"
