"""The dashboard's side of the presets: their icons. The presets themselves live in the engine
(engine.presets), shared with the CLI's `train --preset NAME`."""

from __future__ import annotations

from engine.presets import DEFAULT_PRESET, PRESETS, Preset, offline_pretrained, quick_demo

ICONS: dict[str, str] = {"quick_demo": ":material/bolt:", "robust": ":material/shield:",
                         "small_model": ":material/compress:", "standard_demo": ":material/school:",
                         "adafilter_demo": ":material/filter_alt:", "pruning_demo": ":material/content_cut:",
                         "adversarial_demo": ":material/security:", "wise_ft_demo": ":material/tune:"}


def icon(name: str) -> str:
    """The preset's button icon (a generic one for presets registered without an icon here)."""
    return ICONS.get(name, ":material/tune:")


__all__ = ["DEFAULT_PRESET", "ICONS", "PRESETS", "Preset", "icon", "offline_pretrained", "quick_demo"]
