"""The dashboard's side of the presets: their icons. The presets themselves live in the engine
(engine.presets), shared with the CLI's `train --preset NAME`."""

from __future__ import annotations

from engine.config import RunConfig, few_batches
from engine.presets import DEFAULT_PRESET, PRESETS, Preset, offline_pretrained, quick_demo

ICONS: dict[str, str] = {"quick_demo": ":material/bolt:", "fastest": ":material/speed:",
                         "robust": ":material/shield:", "small_model": ":material/compress:",
                         "standard_demo": ":material/school:",
                         "adafilter_demo": ":material/filter_alt:", "pruning_demo": ":material/content_cut:",
                         "adversarial_demo": ":material/security:", "wise_ft_demo": ":material/tune:"}


def icon(name: str) -> str:
    """The preset's button icon (a generic one for presets registered without an icon here)."""
    return ICONS.get(name, ":material/tune:")


SAMPLE_CLASSES, SAMPLE_TRAIN_IMAGES = 8, 384  # the bundled sample's training split: the presets were tuned on it


def recipe_drift(cfg: RunConfig, train_images: int = SAMPLE_TRAIN_IMAGES, min_step_share: float = 0.5) -> str | None:
    """A warning when `cfg` keeps a preset's learning rate (same backbone, optimiser, lr and momentum; among
    such presets those with `cfg`'s frozen blocks when any has them, so the Fastest model's 4 epochs with two
    blocks frozen do not excuse a Quick demo cut to 3; automatic learning rate off) but trains far fewer
    optimiser steps than that preset did on the sample it was tuned on (epochs x
    `train_images` // batch size below `min_step_share` of the preset's epochs x SAMPLE_TRAIN_IMAGES // its
    batch size): the rate was tuned for the preset's run, and a much shorter one at that rate can stay near
    guessing (a new user's 3 epochs at 32 px of the Quick demo stayed there). None when nothing drifted."""
    if cfg.optim.lr_auto:
        return None
    steps = cfg.train.epochs * cfg.steps_per_epoch(train_images)
    matches = []  # (share of the preset's steps, preset, its config) for the presets with this rate
    for preset in PRESETS.values():
        ref = preset.apply(cfg)
        if (ref.backbone.name, ref.optim.optimizer, ref.optim.lr, ref.optim.momentum) == (
                cfg.backbone.name, cfg.optim.optimizer, cfg.optim.lr, cfg.optim.momentum):
            ref_steps = ref.train.epochs * ref.steps_per_epoch(SAMPLE_TRAIN_IMAGES)
            matches.append((steps / ref_steps, preset, ref))
    same_frozen = [m for m in matches if m[2].optim.freeze_blocks == cfg.optim.freeze_blocks]
    matches = same_frozen or matches  # another frozen-block count than every preset's: all of them count
    if not matches or max(m[0] for m in matches) >= min_step_share:
        return None  # not a preset's rate, or close enough to one preset's recipe
    # the closest recipe; among presets with the same one, the one whose methods are on (a method demo, not
    # the Quick demo it shares its recipe with)
    share, preset, ref = max(matches, key=lambda m: (m[0], m[2].enabled_methods() == cfg.enabled_methods()))
    return (f"The learning rate {cfg.optim.lr:g} (effective {cfg.effective_lr:.3g}) was chosen for the "
            f"{preset.title} preset: {round(steps / share)} optimiser steps ({ref.train.epochs} epochs of batch "
            f"{ref.train.batch_size} on the sample's {SAMPLE_TRAIN_IMAGES} training images). This run has "
            f"{steps} ({cfg.train.epochs} epoch{'' if cfg.train.epochs == 1 else 's'} of batch {cfg.train.batch_size} "
            f"on {train_images} images, "
            f"{share:.2g}x as many). A rate tuned for a longer run can leave a short one near guessing: "
            "switch on *Find the learning rate automatically*, or give the run more epochs.")


__all__ = ["DEFAULT_PRESET", "ICONS", "PRESETS", "Preset", "icon", "offline_pretrained", "quick_demo",
           "few_batches", "recipe_drift", "SAMPLE_CLASSES", "SAMPLE_TRAIN_IMAGES"]
