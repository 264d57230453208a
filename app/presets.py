"""The dashboard's side of the presets: their icons. The presets themselves live in the engine
(engine.presets), shared with the CLI's `train --preset NAME`."""

from __future__ import annotations

import functools

from engine.config import RunConfig, few_batches
from engine.presets import DEFAULT_PRESET, PRESETS, Preset, offline_pretrained, quick_demo
from engine.words import plural

ICONS: dict[str, str] = {"quick_demo": ":material/bolt:", "fastest": ":material/speed:",
                         "robust": ":material/shield:", "small_model": ":material/compress:",
                         "standard_demo": ":material/school:",
                         "adafilter_demo": ":material/filter_alt:", "pruning_demo": ":material/content_cut:",
                         "adversarial_demo": ":material/security:", "wise_ft_demo": ":material/tune:"}


def icon(name: str) -> str:
    """The preset's button icon (a generic one for presets registered without an icon here)."""
    return ICONS.get(name, ":material/tune:")


def preset_details_words(preset: Preset) -> str:
    """A preset card's "What it does": its full description (`Preset.describe`), then, where it has one, what was
    measured with it (`Preset.details`) under "Measured here"."""
    text = preset.describe()
    return text + (f"\n\n**Measured here**\n\n{preset.details()}" if preset.details is not None else "")


@functools.cache  # every card, every redraw: applying a preset looks for weight files on disk
def methods_words(preset: Preset) -> str:
    """The methods a preset switches on that its title does not name, for its card: "Switches on: Pruning
    (Fine-Pruning)"; "" when none (the Quick demo) or the title names them (the AdaFilter demo). A student's Small
    model run pruned half its weights, which only the card's "What it does" said, and they took it for the backbone
    alone. Cached per preset (the methods it switches on do not depend on the machine)."""
    from engine.methods import METHODS

    on = [m for m in preset.apply(RunConfig()).enabled_methods() if m in METHODS]
    unnamed = [METHODS[m].title for m in on if METHODS[m].short.lower() not in preset.title.lower()]
    return f"Switches on: {', '.join(unnamed)}" if unnamed else ""


SAMPLE_CLASSES, SAMPLE_TRAIN_IMAGES = 8, 384  # the bundled sample's training split: the presets were tuned on it


def recipe_drift(cfg: RunConfig, train_images: int = SAMPLE_TRAIN_IMAGES, min_step_share: float = 0.5) -> str | None:
    """A warning when `cfg` keeps a preset's learning rate (same backbone, optimiser, lr and momentum;
    automatic learning rate off) but trains the whole network for far fewer optimiser steps than every
    such preset did on the sample it was tuned on: (epochs - head-only epochs) x `train_images` // batch
    size below `min_step_share` of the preset's own count on SAMPLE_TRAIN_IMAGES. Head-only (linear-probe)
    epochs do not count: a new user's Quick demo cut to 3 epochs, 2 of them head-only, stayed near
    guessing, while 4 epochs at the same rate with every epoch end to end reached 59.6% test (README,
    "Against the peers"). Frozen blocks do not change the count; the warning says which blocks the preset
    trains. It names the preset the run most likely started from (the same methods, head-only epochs and
    frozen blocks). None when nothing drifted."""
    if cfg.optim.lr_auto:
        return None
    head_only = min(cfg.optim.linear_probe_epochs, cfg.train.epochs)
    steps = (cfg.train.epochs - head_only) * cfg.steps_per_epoch(train_images)
    matches = []  # (share of the preset's whole-network steps, preset, its config, its steps)
    for preset in PRESETS.values():
        ref = preset.apply(cfg)
        if (ref.backbone.name, ref.optim.optimizer, ref.optim.lr, ref.optim.momentum) == (
                cfg.backbone.name, cfg.optim.optimizer, cfg.optim.lr, cfg.optim.momentum):
            ref_epochs = ref.train.epochs - min(ref.optim.linear_probe_epochs, ref.train.epochs)
            ref_steps = ref_epochs * ref.steps_per_epoch(SAMPLE_TRAIN_IMAGES)
            if ref_steps > 0:
                matches.append((steps / ref_steps, preset, ref, ref_steps))
    if not matches or max(m[0] for m in matches) >= min_step_share:
        return None  # not a preset's rate, or close enough to one preset's recipe
    # named: the preset this run most likely came from (its methods, then its head-only epochs and frozen
    # blocks: a method demo, not the Quick demo it shares its recipe with), then the shortest recipe
    share, preset, ref, ref_steps = max(matches, key=lambda m: (
        m[2].enabled_methods() == cfg.enabled_methods(),
        m[2].optim.linear_probe_epochs == cfg.optim.linear_probe_epochs,
        m[2].optim.freeze_blocks == cfg.optim.freeze_blocks, m[0]))
    ref_head = min(ref.optim.linear_probe_epochs, ref.train.epochs)
    ref_whole = ref.train.epochs - ref_head
    whole = cfg.train.epochs - head_only

    after = lambda n: f" after {plural(n, 'epoch')} of the head alone" if n else ""  # noqa: E731
    frozen = ref.optim.freeze_blocks
    trained = (f"the network past its first {plural(frozen, 'block')} (kept at their pretrained weights)"
               if frozen else "the whole network")
    return (f"The learning rate {cfg.optim.lr:g} (effective {cfg.effective_lr:.3g}) was chosen for the "
            f"{preset.title} preset, which trains {trained} for {ref_steps} optimiser steps "
            f"({plural(ref_whole, 'epoch')} of batch {ref.train.batch_size} on the sample's {SAMPLE_TRAIN_IMAGES} training "
            f"images{after(ref_head)}). This run trains it for {steps} ({plural(whole, 'epoch')} of batch "
            f"{cfg.train.batch_size} on {train_images} images{after(head_only)}; {share:.2g}x as many). A rate "
            "tuned for a longer run can leave a short one near guessing: switch on *Find the learning rate "
            "automatically*, or give the run more epochs.")


__all__ = ["DEFAULT_PRESET", "ICONS", "PRESETS", "Preset", "icon", "offline_pretrained", "quick_demo",
           "few_batches", "preset_details_words", "recipe_drift", "SAMPLE_CLASSES", "SAMPLE_TRAIN_IMAGES"]
