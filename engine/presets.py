"""Presets: one name sets the whole run configuration for a common goal.

The dashboard's preset buttons and the CLI's `train --preset NAME` read this one registry, so both
start from the same settings (`python -m engine presets` lists them). A preset keeps the chosen
dataset (source, OOD set, split), the run name the user gave, and their own checkpoint when it is for the preset's backbone
(`--config` with a checkpoint, then `--preset`, keeps it too), and replaces everything else. Presets switch on methods only when
the engine registers them, so they never refer to a missing method.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from engine.backbones import BACKBONES, available_sources
from engine.config import ADVANCED_TITLE, RunConfig, with_section
from engine.errors import StudioError
from engine.methods import METHODS
from engine.words import data_extras, plural


def offline_pretrained(backbone: str) -> str:
    """The best weights usable without internet: bundled, else cached ImageNet, else none. Bundled weights
    are looked for first: checking torch hub's cache can import torchvision (BackboneSpec.has_imagenet_cached),
    which a new user's first page, built from a preset, need not wait for."""
    if BACKBONES[backbone].has_bundled():
        return "bundled"
    return "imagenet" if available_sources(backbone).get("imagenet") else "none"


def _base(cfg: RunConfig, backbone: str, image_size: int) -> RunConfig:
    """Defaults everywhere, except the dataset the user already chose, the run name they typed, the seed,
    whether its pictures may be mirrored (`train.flip`: a fact about the data, e.g. digits) and how many are
    turned greyscale (`train.greyscale`: night shots among day ones), and their
    own checkpoint when it is
    for the preset's backbone (a preset applied after uploading one starts from it: a teacher's
    adversarial demo on the model the class trained first); otherwise the best offline weights."""
    data = dataclasses.replace(cfg.data, image_size=image_size)
    fresh = with_section(RunConfig(name=cfg.name, seed=cfg.seed, data=data), "train", flip=cfg.train.flip,
                         greyscale=cfg.train.greyscale)
    b = cfg.backbone
    if b.pretrained == "checkpoint" and b.checkpoint and b.name == backbone:
        return with_section(fresh, "backbone", name=backbone, pretrained="checkpoint", checkpoint=b.checkpoint)
    return with_section(fresh, "backbone", name=backbone, pretrained=offline_pretrained(backbone), checkpoint="")


def _enable(cfg: RunConfig, method: str, **changes) -> RunConfig:
    if method not in METHODS or not METHODS[method].supports(cfg.backbone.name):
        return cfg
    return with_section(cfg, method, enabled=True, **changes)


def quick_demo(cfg: RunConfig) -> RunConfig:
    """Issue 19's measurements (2-core CPU, the sample): 5 epochs of batch 64 at lr 0.01 stopped with the
    loss still falling (40.6% test, 33 s); twice the steps (batch 32) at twice the rate, 10 epochs, reached
    64.8% test. With bf16 on the CPU an epoch costs half as much, and tuning on the validation split
    (benchmarks/first_model.py, README) found that the time buys most as more epochs behind a linear probe:
    2 epochs train the new head alone (LP-FT, Kumar et al. 2022; cheap, the trunk is frozen), then 18
    fine-tune everything (validation 70.8% over 3 seeds, against 64.8% for 10 epochs without the probe,
    69.5% for 10 with it, 66.4% at lr 0.04). The corrupted copies are evaluated once, at the end."""
    return _quick(cfg, "resnet18")


def _quick(cfg: RunConfig, backbone: str) -> RunConfig:
    """The Quick demo's recipe (`quick_demo`) on `backbone`."""
    cfg = _base(cfg, backbone, 64)
    cfg = with_section(cfg, "train", epochs=20, batch_size=32)
    cfg = with_section(cfg, "eval", ood=True, ood_severity_each_epoch=0)
    if "wise_ft" in METHODS:  # when switched on, its curve uses 64 corrupted images per corruption: quick
        cfg = with_section(cfg, "wise_ft", ood_subset=64)
    return with_section(cfg, "optim", optimizer="sgd", lr=0.02, momentum=0.9, schedule="cosine",  # effective lr 0.2
                        linear_probe_epochs=2 if cfg.backbone.pretrained != "none" else 0)


def fastest(cfg: RunConfig) -> RunConfig:
    """The shortest way to a model as good as a plain fine-tune's (README, Benchmarks, "Against the peers"):
    4 epochs of batch 32 at lr 0.02, no augmentation (4 epochs are too few to overfit the sample),
    and the stem and first stage kept at their pretrained weights (optim.freeze_blocks=2: no backward pass
    through them; 3 frozen blocks cost 8-13 test points), OOD not measured. On the sample, on a 2-core Zen 4
    EPYC over 4 seeds: 0.45x the wall time of the best of a hand-written loop's and timm's 5-epoch fine-tune
    (lr 0.01, crop + flip), at 55.3% test against 53.7% (FASTEST_MEASURED; benchmarks/peers.py
    --studio-preset fastest). Without pretrained weights nothing is frozen (random blocks would stay random)."""
    cfg = _base(cfg, "resnet18", 64)
    cfg = with_section(cfg, "train", epochs=4, batch_size=32, augment=False)
    cfg = with_section(cfg, "eval", ood=False)
    return with_section(cfg, "optim", optimizer="sgd", lr=0.02, momentum=0.9, schedule="cosine",
                        freeze_blocks=2 if cfg.backbone.pretrained != "none" else 0)


def robust(cfg: RunConfig) -> RunConfig:
    """The Robust model preset on top of `cfg` (its dataset, name and seed kept): ResNet-18 at 64 px, 8 epochs,
    LP-FT (2 head-only epochs, Kumar et al. 2022), label smoothing 0.1, L2-SP, adversarial fine-tuning, and OOD
    and robust accuracy measured. A run from scratch skips the probe and L2-SP."""
    cfg = _base(cfg, "resnet18", 64)
    cfg = with_section(cfg, "train", epochs=8, batch_size=64)
    # LP-FT (Kumar et al. 2022): probing the head first distorts pretrained features less -> better OOD.
    cfg = with_section(cfg, "optim", lr=0.01, momentum=0.9, schedule="cosine", label_smoothing=0.1,
                       linear_probe_epochs=2 if cfg.backbone.pretrained != "none" else 0)
    cfg = with_section(cfg, "eval", ood=True)
    cfg = with_section(cfg, "eval", robust=True)  # robust accuracy under a PGD attack, each epoch and at the end
    if cfg.backbone.pretrained != "none":
        cfg = _enable(cfg, "l2sp")
    return _enable(cfg, "adversarial")


def small_model(cfg: RunConfig) -> RunConfig:
    """MobileNetV3-Small with the Quick demo's recipe and half its weights pruned (global magnitude, the
    cubic ramp over the first half of the run, the rest recovering). Measured on the sample
    (benchmarks/small_model.py, README; 3 seeds): the recipe it had before (8 epochs of batch 64, no linear
    probe, 70% of every layer pruned) reached 24.5% validation accuracy; this one 54.2%, against 60.4% for
    the same recipe dense and 42.4% at 70% global sparsity."""
    name = "mobilenet_v3_small" if "mobilenet_v3_small" in BACKBONES else "resnet18"
    return _enable(_quick(cfg, name), "pruning", target_sparsity=0.5, schedule="cubic", start_fraction=0.0,
                   end_fraction=0.5, scope="global")


@dataclass(frozen=True)
class Preset:
    """A named recipe: `apply(cfg)` returns `cfg` with the recipe's settings (the dataset, and a
    checkpoint for the preset's backbone, kept);
    `describe()` is one line for people (it may name methods, so it is read when shown); `details()`,
    where given, what was measured with it (a demo's result against its paper's claim); `tagline`, what it is
    for in one short sentence, the dashboard card's text (its full description one click away: eleven cards of
    whole descriptions made the Model page's presets 2000 px tall)."""

    name: str
    title: str
    describe: Callable[[], str]
    apply: Callable[[RunConfig], RunConfig]
    details: Callable[[], str] | None = None
    tagline: str = ""

    def sets(self, cfg: RunConfig | None = None) -> dict[str, Any]:
        """What the preset changes, as `section.field: value`, against `cfg` (default: the defaults)."""
        return config_changes(cfg or RunConfig(), self.apply(cfg or RunConfig()))


def fit_to_data(cfg: RunConfig, train_images: int, whose: str = "Its") -> tuple[RunConfig, str]:
    """A preset's recipe `cfg` with its batch size fitted to `train_images` training images where its
    batch would leave at most two optimiser steps an epoch (engine.config.smaller_batch: about eight
    steps, the learning rate lowered in step, Goyal et al. 2017's linear scaling rule), and the words
    that say so ("" when nothing was fitted). The presets were tuned on the sample's 384 training images;
    the dashboard and `train --preset` both fit them, and `train` fits its default settings too (`whose`
    begins the sentence: "Its", "The default")."""
    from engine.config import smaller_batch, too_few_steps, with_batch

    n, steps = train_images, cfg.steps_per_epoch(train_images)
    fix = smaller_batch(cfg, n) if too_few_steps(cfg, n) else None
    if fix is None:
        return cfg, ""
    rate = ("the learning rate found for it automatically" if cfg.optim.lr_auto else
            f"the learning rate lowered in step to {fix[1]:g}")
    return with_batch(cfg, fix[0]), (
        f"{whose} batch size of {cfg.train.batch_size} would make {plural(steps, 'optimiser step')} an "
        f"epoch from your {n} training images, so it uses {fix[0]} ({n // fix[0]} steps), with {rate}.")


def is_recipe(preset: "Preset", cfg: RunConfig, train_images: int | Callable[[], int]) -> bool:
    """Whether `cfg` is `preset`'s recipe exactly (applying it changes nothing: every setting it sets, the
    rest at the defaults, the same methods on), or that recipe as `fit_to_data` fits it to `train_images`
    training images (a number, or a function giving it, called only for a config that is the recipe with a
    smaller batch and the rate scaled with it: the dashboard looks the dataset up then). A batch fitted to
    18 images is no longer the preset's once the data is 5,000 images. The dashboard's preset row and the
    command line's run names both ask this."""
    from engine.config import with_batch

    recipe, mine = preset.apply(cfg), cfg.to_dict()  # as dicts: a draft read back from JSON has lists for tuples
    if recipe.to_dict() == mine:
        return True
    if cfg.train.batch_size >= recipe.train.batch_size or with_batch(recipe, cfg.train.batch_size).to_dict() != mine:
        return False
    n = train_images() if callable(train_images) else train_images
    return fit_to_data(recipe, n)[0].to_dict() == mine


def config_changes(before: RunConfig, after: RunConfig) -> dict[str, Any]:
    """`section.field: new value` for every field of `after` that differs from `before`."""
    a, b = before.to_dict(), after.to_dict()
    out: dict[str, Any] = {}
    for section, values in b.items():
        if not isinstance(values, dict):
            if values != a.get(section):
                out[section] = values
            continue
        out.update({f"{section}.{k}": v for k, v in values.items() if a.get(section, {}).get(k) != v})
    return out


PRESETS: dict[str, Preset] = {}


def register_preset(preset: Preset) -> None:
    """Add a preset; a name already taken is refused (ValueError)."""
    if preset.name in PRESETS:
        raise ValueError(f"preset {preset.name!r} is already registered")
    PRESETS[preset.name] = preset


def get_preset(name: str) -> Preset:
    """The preset called `name`; StudioError naming the known ones otherwise."""
    if name not in PRESETS:
        raise StudioError(f"Unknown preset `{name}`. Known presets: {', '.join(PRESETS)} (python -m engine presets).")
    return PRESETS[name]


def _robust_text() -> str:
    parts = ["ResNet-18, 8 epochs: the new head trained alone first, then the whole network (LP-FT), softened "
             "targets (label smoothing)"]
    if "l2sp" in METHODS:
        parts.append("weights kept near the pretrained ones (L2-SP)")
    if "adversarial" in METHODS:
        parts.append("training on images changed just enough to fool the model (adversarial fine-tuning)")
    return ", ".join(parts) + ". Watch accuracy on corrupted copies of the images (OOD)" + (
        " and on such changed images (robust accuracy)." if "adversarial" in METHODS else ".")


def _small_text() -> str:
    text = ("MobileNetV3-Small (1.5M parameters with a head for a few classes; 2.5M with ImageNet's 1000) with the "
            "Quick demo's recipe: fast on a laptop, small to deploy.")
    if "pruning" in METHODS:
        text += (" Pruning is on: watch the share of weights set to zero (sparsity) rise to 50% over the first half "
                 "of the run.")
    return text


def _small_details() -> str:
    """The Small model card's measurement (benchmarks/small_model.py, README)."""
    return ("20 epochs at 64 px, the first 2 for the new head alone; half the weights set to zero over the first "
            "half of the run, the second half winning accuracy back. On the bundled sample (3 seeds, about 35 s each "
            "on a 2-core CPU with fast half-precision maths, bf16): 54% validation accuracy, 6 points below the same "
            "recipe without pruning "
            "(70% pruned: 42%). The preset before (8 epochs of batch 64, 70% of every layer pruned) reached 25%.")


# ---- one demo per method: the paper's claim, visible in about two minutes on a 2-core CPU ---------
# Each uses the Quick demo's training recipe, which its benchmark measured (ResNet-18, offline weights,
# 64 px, 20 epochs of batch 32, the first 2 a linear probe, SGD 0.02 + cosine), so a standard
# fine-tuning run with the same settings is its comparison (the Results page's claim line looks for
# one). Five epochs of batch 64 (30 steps) were too few for any method to recover from what it
# changes: 70% sparsity then cost 4.2 test points, 1.3 with this recipe.

def _demo(cfg: RunConfig) -> RunConfig:
    cfg = _base(cfg, "resnet18", 64)
    cfg = with_section(cfg, "train", epochs=20, batch_size=32)
    return with_section(cfg, "optim", optimizer="sgd", lr=0.02, momentum=0.9, schedule="cosine",
                        linear_probe_epochs=2 if cfg.backbone.pretrained != "none" else 0)


def standard_demo(cfg: RunConfig) -> RunConfig:
    """The demos' comparison: standard fine-tuning with their recipe, no method."""
    return _demo(cfg)


def adafilter_demo(cfg: RunConfig) -> RunConfig:
    """The AdaFilter demo preset on top of `cfg`: the demos' 20-epoch ResNet-18 recipe with AdaFilter (the gate
    network on Adam at 5x the rate, gates starting 73% open, gated layers at 1.4x the rate, predictions mixing
    both copies by the gates' probabilities). Why each choice: the comments below and README, AdaFilter."""
    # The gate network steps by Adam (engine default) at 5x the base lr: its gradients are tiny while
    # both filter copies are still close (see the gate-gradient chart). The gates start 73% open
    # (gate_bias 1) and the gated layers learn at 1.4x the lr (about 1/0.73): a fine-tuned filter gets
    # the gradient of only the images whose gate picks it, so this keeps its effective lr near standard
    # fine-tuning's. The best of the six settings measured (README, AdaFilter). Predictions mix the two
    # copies by the gates' probabilities (eval_gates "expected", the average of training's sampled gates)
    # instead of the paper's binary test-time gates, chosen on validation: +1.2 validation points over
    # binary gates across 11 trained models on two CPUs (on test -0.4, from -7.0 to +5.5 per model).
    return _enable(_demo(cfg), "adafilter", gate_optimizer="adam", gate_lr_mult=5.0, gate_bias=1.0,
                   gated_lr_mult=1.4, eval_gates="expected")


def pruning_demo(cfg: RunConfig) -> RunConfig:
    """The Pruning demo preset on top of `cfg`: the demos' 20-epoch recipe with 70% global unstructured sparsity on
    a cubic ramp over the first half of the run (Zhu & Gupta 2017), then structured pruning of 30% of the
    channels (about half the FLOPs) and 10 epochs of fine-tuning the smaller model."""
    # Zhu & Gupta's cubic ramp ends at half the run, the other half recovers at the final 70% sparsity.
    # Global scope: at 5 epochs seed 0 lost 3.9 test points against 14.8 with every layer at 70% (the
    # stem and the small early layers cannot lose as much); at this recipe 70% costs 1.3 (3 seeds).
    # Structured pruning then removes 30% of the channels (about half the FLOPs) and fine-tunes 10
    # epochs of the smaller model (a quarter of the run's compute): 4 left it 6 test points below.
    return _enable(_demo(cfg), "pruning", target_sparsity=0.7, schedule="cubic", start_fraction=0.0,
                   end_fraction=0.5, scope="global", structured=True, channel_fraction=0.3, structured_epochs=10)


def adversarial_demo(cfg: RunConfig) -> RunConfig:
    """The Adversarial demo preset on top of `cfg`: the demos' 20-epoch recipe with FGSM-RS adversarial fine-tuning
    at eps 2/255 (Jeddi et al. 2020; Wong et al. 2020), robust accuracy measured each epoch and under PGD-10 at
    the end."""
    # A small budget (2/255) and one-step FGSM-RS training: robust accuracy rises clearly within the run.
    # The live robust curve attacks the engine's default 64 validation images each epoch (PGD-5): on 128
    # that attack cost as much as the training itself (205 s for the run, against 112 s for the standard
    # demo with the same evaluation); the end of the run attacks the whole test split with PGD-10.
    cfg = with_section(_demo(cfg), "eval", robust=True, robust_steps=10)
    return _enable(cfg, "adversarial", attack="fgsm", eps=2 / 255)


def wise_ft_demo(cfg: RunConfig) -> RunConfig:
    """The WiSE-FT demo preset on top of `cfg`: the demos' 20-epoch recipe without crop + flip, at a constant
    learning rate, with OOD accuracy and WiSE-FT's curve (each point's OOD accuracy on 64 validation images per corruption). Why: the comments below
    and README, WiSE-FT."""
    # Fine-tuning without the studio's crop + flip augmentation, as the paper fine-tunes (its code uses
    # CLIP's training transform: a crop of 90-100% of the image, no flip). With crop + flip the fine-tuned
    # end was itself the most robust point of the curve (claim on 1 of 3 seeds, cosine decay); without, an
    # interior alpha beat both ends out of distribution on 2 of 3 (cosine decay; 3 of 3 in a one-thread run).
    # A constant learning rate, not the demos' cosine decay (nor the paper's, which decays it too): an
    # interior alpha matched or beat both ends out of distribution on 27 of 36 seeds on a GPU (with cosine
    # decay 4 of 19 on the same machine, 9 of 17 in an earlier run) and on 3 of 3 with README's command.
    # A likely reason, not tested: the fine-tuned end is then a noisy SGD iterate that mixing smooths. The
    # price: a fine-tuned model about 4 points weaker, its best mix about 3 below the cosine-decayed end
    # (16 paired seeds; README, WiSE-FT).
    cfg = with_section(_demo(cfg), "eval", ood=True)
    cfg = with_section(cfg, "train", augment=False)
    cfg = with_section(cfg, "optim", schedule="constant")
    return _enable(cfg, "wise_ft", ood_subset=64)


DEMO_TEXT = {  # preset -> (title, method, what to look at, what the paper claims, what this demo measured)
    "adafilter_demo": ("AdaFilter demo", "adafilter",
                       "AdaFilter, 20 epochs: for each image a small network picks, filter by filter, the fine-tuned "
                       "or the pretrained copy (its gates); watch the share of fine-tuned filters per layer and how "
                       "strongly the gates learn (gate gradients).",
                       "Guo et al. 2020: choosing filters per image lowers the error of standard fine-tuning "
                       "(2.54 points on average, ResNet-50, ImageNet weights); not reproduced with this demo on the "
                       "sample (measurements below).",
                       "Not reproduced with this demo: on the sample, over 60 seeds (on a GPU), it was 0.3 test "
                       "points below standard fine-tuning on average: as accurate, not more accurate as in the "
                       "paper. Single runs land a few points either side (means of 3 seeds on CPUs: 1.8 to 7.6 "
                       "points below), so a gap in one run says little. Its gates did adapt: the share of "
                       "fine-tuned filters differed by about 20 points between layers."),
    "pruning_demo": ("Pruning demo", "pruning",
                     "Pruning, 20 epochs: 70% of the weights set to zero (sparsity) by mid-run, then recovery, then "
                     "whole channels removed for a smaller, faster model, fine-tuned 10 more epochs: watch sparsity "
                     "climb "
                     "while validation accuracy holds (or dips and comes back), then, on Results, the smaller "
                     "model's fine-tune win back what removing channels cost.",
                     "Tung et al. 2017, Zhu & Gupta 2017: pruning while fine-tuning keeps the dense accuracy.",
                     "Measured with this demo on the sample (3 seeds, two CPUs): 70% sparsity 1.0 to 1.3 test points "
                     "below dense fine-tuning on average (single seeds up to 3.9 below), and the channel-pruned "
                     "model within 3 points of the model it was cut from on all three seeds (on validation on two CPUs, on "
                     "test on one)."),
    "adversarial_demo": ("Adversarial demo", "adversarial",
                         "Adversarial fine-tuning, 20 epochs: the model trains on images changed just enough to fool "
                         "it (an FGSM-RS attack moving each pixel by at most 2 of 255 levels, eps 2/255); watch its "
                         "accuracy on such images (robust accuracy) beside clean accuracy.",
                         "Jeddi et al. 2020: fine-tuning adversarially gives robustness at a fraction of the cost of "
                         "adversarial training from scratch.",
                         "Measured with this demo on the sample (3 seeds): robust accuracy 16 to 26 points above "
                         "standard fine-tuning's, clean accuracy about 5 points lower."),
    "wise_ft_demo": ("WiSE-FT demo", "wise_ft", "WiSE-FT, 20 epochs without random crops or flips (as in the paper) "
                     "at a constant learning rate (this demo's choice): watch the curve of weight mixes between the "
                     "starting and the fine-tuned model (alpha 0 to 1), accuracy on corrupted copies of the images "
                     "(OOD) against validation accuracy.",
                     "Wortsman et al. 2021: a mix in between beats both ends on corrupted or shifted images at "
                     "equal accuracy on images like the training ones.",
                     "The run and its 21-mix curve took 55 s on a 2-core CPU with fast half-precision maths (bf16; "
                     "the curve 10 s of it), 3 min 37 s on one without (the curve 34 s); the paper decays the "
                     "learning rate, this demo keeps it constant. "
                     "Measured with this demo on the sample: a mix matched or beat both ends on 27 of 36 seeds on a "
                     "GPU (21 of 36 by the Results line's stricter rule) and on 3 of 3 on a 2-core CPU; with the "
                     "decaying rate the other demos use, on 4 to 9 of 17 to 19 seeds in two runs. The price: the "
                     "fine-tuned model is about 4 points less accurate than with the decaying rate, and even the "
                     "best mix stays about 3 points below that model. Your run may or may not show the effect."),
}
DEMOS = {"adafilter_demo": adafilter_demo, "pruning_demo": pruning_demo, "adversarial_demo": adversarial_demo,
         "wise_ft_demo": wise_ft_demo}


def _demo_text(key: str) -> Callable[[], str]:
    """The card's line: what to look at and the paper's claim."""
    _title, _method, look, claim, _measured = DEMO_TEXT[key]
    return lambda: f"{look} {claim}"


DEMO_SHORT = {  # preset -> the measurement in one plain sentence, first in its "Measured here"
    "adafilter_demo": "averaged over many runs on the sample this demo is about as accurate as standard "
                      "fine-tuning (a single run lands a few points either side), not more accurate as in the paper.",
    "pruning_demo": "with 70% of its weights set to zero the model lost about 1 test point on average here, and the "
                    "smaller, faster model stayed within 3 points of the model it was cut from.",
    "adversarial_demo": "on slightly altered images the model is right 16 to 26 points more often than a standard "
                        "one, for about 5 points of accuracy on ordinary images.",
    "wise_ft_demo": "a mix beat both ends on corrupted images in about three runs of four here; this demo's model is "
                    "a few points less accurate than with the other demos' decaying learning rate.",
}


def _demo_details(key: str) -> Callable[[], str]:
    """What the demo measured here (in one plain sentence, DEMO_SHORT, then the measurement), and what to compare
    it with."""
    _title, method, _look, _claim, measured = DEMO_TEXT[key]
    measured = f"**In short:** {DEMO_SHORT[key]}\n\n{measured}" if key in DEMO_SHORT else measured
    if method == "wise_ft":  # its claim is read on its own curve: both ends are models of the run itself
        return lambda: f"{measured} Both ends of the curve come from this run: no second run is needed."
    if method == "adversarial":  # its baseline is the standard run's robust accuracy under the same attack
        return lambda: (f"{measured} To compare, run the Standard demo on the same data with 'Measure robust "
                        "accuracy' on and 'PGD steps' at 10 (Model and methods, under "
                        f"'{ADVANCED_TITLE}').")
    return lambda: f"{measured} Run the Standard demo (the same recipe, no method) on the same data to compare."


FASTEST_MEASURED = (
    "**In short:** on the bundled sample this preset trains a model about as good as a usual 5-epoch fine-tune "
    "(55% of the test images right, against 54%) in less than half its time. The Quick demo's 20 epochs reach "
    "70% in three to five times this preset's time (the whole program, start-up included).\n\n"
    "**Why it is quick:** fewer epochs, and the first two blocks stay as they were pretrained. Those blocks learn "
    "nothing from your images: for pictures far from everyday photos (X-rays, spectrograms, micrographs) the Quick "
    "demo, which trains every layer, may do better.\n\n"
    "**The measurements** (2-core CPUs; README, Benchmarks, \"Against the peers\"):\n"
    "- against a hand-written PyTorch loop and timm's optimiser with the usual recipe (5 epochs, lr 0.01, crops "
    "and flips), 4 seeds on an AMD EPYC with fast half-precision maths (bf16), two runs: 0.45-0.46x their wall "
    "time, test 55.3% against "
    "53.7%;\n"
    "- handwritten digits at 32 px against their 10 epochs: 0.32-0.35x the time, 97.9% against 95.0-96.1%;\n"
    "- the same loop trained this preset's way took 0.62x at 64 px: the gain is mostly the recipe;\n"
    "- against the Quick demo on a CPU without half-precision maths, 2 seeds: 21 s against 106 s.")

TAGLINES = {  # preset -> what it is for, in one short sentence: the dashboard card's text
    "quick_demo": "A good first model of your images in a few minutes: the studio's usual start.",
    "fastest": "The shortest way to a first model: about a quarter of the Quick demo's time, for a weaker model.",
    "robust": "A model meant to hold up on blurred, noisy or slightly changed copies of your images.",
    "small_model": "A smaller network (MobileNetV3-Small, about a seventh of ResNet-18's weights): quick on a laptop, "
                   "small to ship.",
    "standard_demo": "Plain fine-tuning with the method demos' recipe: run it beside a demo to see what the method "
                     "changed.",
    "adafilter_demo": "For each image, a small network picks filter by filter the fine-tuned or the pretrained copy "
                      "(AdaFilter).",
    "pruning_demo": "Sets most weights to zero while fine-tuning, then removes whole channels, for a smaller, faster "
                    "model (Fine-Pruning).",
    "adversarial_demo": "Trains on images changed just enough to fool the model, so such changes stop fooling it "
                        "(adversarial fine-tuning).",
    "wise_ft_demo": "Mixes the starting and the fine-tuned weights; a slider trades accuracy for robustness to "
                    "changed images (WiSE-FT).",
}

register_preset(Preset("quick_demo", "Quick demo", lambda: (
    "ResNet-18 with offline weights, 64 px, 20 epochs of batch 32 (the first 2 train only the new head), "
    "accuracy on corrupted copies of the images (OOD) measured at the end: on the bundled sample's 384 training "
    "images about 40 s on a 2-core CPU with fast half-precision maths (bf16), under 2 minutes on one without "
    "(time grows with the images)."), quick_demo,
    tagline=TAGLINES["quick_demo"]))
register_preset(Preset("fastest", "Fastest model", lambda: (
    "ResNet-18 with offline weights, 64 px, 4 epochs of batch 32, no random crops or flips, the first two blocks "
    "kept as pretrained, accuracy on corrupted copies (OOD) not measured: the shortest way to a first model. On "
    "the sample: a fifth to a third of the Quick demo's time on the same CPU (the whole program, start-up "
    "included), for a weaker model (about 55% of test images right, against 70%)."), fastest,
    lambda: FASTEST_MEASURED, TAGLINES["fastest"]))
register_preset(Preset("robust", "Robust", _robust_text, robust, tagline=TAGLINES["robust"]))
register_preset(Preset("small_model", "Small model", _small_text, small_model, _small_details, TAGLINES["small_model"]))
register_preset(Preset("standard_demo", "Standard demo", lambda: (
    "Standard fine-tuning with the method demos' recipe, the Quick demo's (ResNet-18, 64 px, 20 epochs of "
    "batch 32, the first 2 training only the new head): the run each method demo is compared with. Unlike the Quick "
    "demo it measures accuracy on corrupted copies of the images (OOD) every epoch, as the method demos do."),
    standard_demo, tagline=TAGLINES["standard_demo"]))
for _key, _apply in DEMOS.items():
    if DEMO_TEXT[_key][1] in METHODS:  # never a preset for a method the engine does not register
        register_preset(Preset(_key, DEMO_TEXT[_key][0], _demo_text(_key), _apply, _demo_details(_key),
                               TAGLINES[_key]))
DEFAULT_PRESET = "quick_demo"

__all__ = ["Preset", "PRESETS", "DEFAULT_PRESET", "register_preset", "get_preset", "config_changes",
           "offline_pretrained", "quick_demo", "fastest", "robust", "small_model"]


def fitted_to(train_images: int | Callable[[], int]) -> Callable[[RunConfig], RunConfig]:
    """A preset's recipe -> that recipe as `fit_to_data` fits it to `train_images` training images (a number, or
    a function giving it, called at most once and only when a recipe is fitted), for `run_name` and
    `near_preset`."""
    import functools

    count = functools.cache(train_images if callable(train_images) else lambda: train_images)
    return lambda recipe: fit_to_data(recipe, count())[0]


def run_name(cfg: RunConfig, data: str | None = None, preset: str | None = None,
             fit: Callable[[RunConfig], RunConfig] | None = None, checkpoint: str | None = None) -> str:
    """What a run is called when the user gave no name (the dashboard and `train` alike): `preset`
    (the title of the preset the settings are exactly, when they are one) with the backbone ("Quick
    demo (ResNet-18) on ..."), else the preset they are with a setting or two changed (`near_preset`:
    "Standard demo, epochs 5 (ResNet-18) on ..."; `fit`: as `near_preset`'s, so that a preset fitted to the
    run's small dataset is not named by its fitted batch), else the backbone and the methods switched on
    ("ResNet-18 WiSE-FT on ..."); the seed when it is not 0 (two runs of one recipe had one name in every
    list); where it starts when that is not the bundled weights (ImageNet weights, scratch, your checkpoint with its
    file name: `checkpoint`, the user's name for it, else the file name of backbone.checkpoint unless that is an
    upload's reference; five runs from five checkpoints read alike); and
    the data, with how imbalanced classes are treated and whole pictures (engine.words.data_extras):
    `data`, else the dataset's own name (data.source_name, "sample textures" for the bundled sample, or
    the file or folder name of data.source)."""
    from pathlib import PurePath

    from engine.backbones import backbone_title
    from engine.paths import SAMPLE_DATASET, UPLOAD_PREFIX

    if data is None:
        source = cfg.data.source
        data = cfg.data.source_name or ("sample textures" if PurePath(source).as_posix().endswith(SAMPLE_DATASET)
                                        else PurePath(source).name or source)
    if checkpoint is None and not cfg.backbone.checkpoint.startswith(UPLOAD_PREFIX):
        checkpoint = PurePath(cfg.backbone.checkpoint).name
    start = {"checkpoint": " from your checkpoint" + (f" {checkpoint}" if checkpoint else ""), "none": " from scratch",
             "imagenet": " from ImageNet weights"}.get(cfg.backbone.pretrained, "")
    seed = f"seed {cfg.seed}" if cfg.seed != 0 else ""  # two runs of one recipe told apart wherever the name shows
    near = None if preset else near_preset(cfg, fit)
    if near is not None:  # "Standard demo, epochs 5 (ResNet-18) on ...": the recipe it was, and what changed
        preset = ", ".join([near[0].title, *near[1]])
    data += "".join(f", {w}" for w in data_extras(cfg.data))  # settings of the data, kept by every preset
    if preset:
        return f"{preset} ({backbone_title(cfg.backbone.name)}{', ' + seed if seed else ''}){start} on {data}"
    methods = " + ".join(METHODS[m].title.split()[0] if m in METHODS else m  # "WiSE-FT", "Pruning", ...
                         for m in cfg.enabled_methods())
    return f"{backbone_title(cfg.backbone.name)} {methods or 'plain'}{f' ({seed})' if seed else ''}{start} on {data}"


NEAR_PRESET_CHANGES = 2  # a recipe changed in more settings than this is the user's own: named by backbone and methods
# said elsewhere in a run's name (the backbone in brackets, " from scratch"), or not a setting of the recipe
_NOT_A_CHANGE = ("backbone.", "data.source", "data.ood_source", "data.source_name", "name", "seed")


def near_preset(cfg: RunConfig, fit: Callable[[RunConfig], RunConfig] | None = None) -> tuple[Preset, list[str]] | None:
    """The preset whose recipe `cfg` is with at most NEAR_PRESET_CHANGES settings changed, the same methods on
    (the fewest changes; the most specific preset among ties), and each change in words, the setting's label
    and its value ("epochs 5", "augment images off"; a switch turned on by its label alone, "remove channels at the
    end"); None when no preset is that near. The backbone and where the
    weights come from are not counted (a run's name says them), nor, with `fit` (a preset's recipe -> that recipe
    fitted to the run's data: `fitted_to`), the smaller batch and learning rate of a preset fitted to a small
    dataset (a new user's Fastest model on ImageNet weights was named "Fastest model, learning rate 0.0025, batch
    size 4", the preset's own fit). A teacher's Standard demo run at 5 epochs was named "ResNet-18 plain" and read
    as another recipe than the demo's."""
    import re

    from engine.config import setting_name, without_setting_keys
    from engine.words import value_words

    def changes(recipe: RunConfig) -> dict[str, Any]:
        return {k: v for k, v in config_changes(recipe, cfg).items() if not k.startswith(_NOT_A_CHANGE)}

    best = None
    for p in PRESETS.values():
        recipe = p.apply(cfg)
        if recipe.enabled_methods() != cfg.enabled_methods():
            continue
        changed = changes(recipe)
        if fit is not None and cfg.train.batch_size < recipe.train.batch_size:  # fitted to the data, if fewer changes
            changed = min(changed, changes(fit(recipe)), key=len)
        rank = (len(changed), -len(p.sets()))
        if len(changed) <= NEAR_PRESET_CHANGES and (best is None or rank < best[0]):
            best = (rank, p, changed)
    if best is None:
        return None

    def words(key: str, value: Any) -> str:
        label = re.sub(r" \(.*\)$", "", without_setting_keys(setting_name(*key.split(".", 1))))  # no unit: "(px)"
        if value is True:  # a switch turned on, by what it does: "..., structured: remove channels at the end on
            label = label.rpartition(": ")[2]  # (MobileNetV3-Small) on parts.zip" read as two places
        label = label if label[:2].isupper() else label[:1].lower() + label[1:]  # "OOD ..." kept, "Epochs" -> "epochs"
        return label if value is True else f"{label} {value_words(value)}"

    return best[1], [words(k, v) for k, v in best[2].items()]
