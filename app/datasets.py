"""Checking a dataset before training: the engine's validation, plus a few images per class.

The check runs exactly the engine's `load_dataset` (so "valid here" means "trainable"), at the
run's image size capped for speed; the engine keeps the decoded images in memory, so the run
that follows starts without decoding again. Results are memoised per tab.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import streamlit as st

from engine.config import RunConfig
from engine.paths import resolve_path, upload_sha  # noqa: F401  (state.upload_sha)
from engine.data import DataReport, NotDecoded, inspect_ood_dataset, load_dataset
from engine.errors import StudioError
from engine.run_data import zip_limits
from engine.words import plural
from engine.worker import Engine

PREVIEW_PER_CLASS = 8
MAX_PREVIEW_SIZE = 128  # px: the check decodes at the run's size up to this
_MEMO_KEY = "data_checks"
_MEMO_ENTRIES = 6


@dataclass
class DataCheck:
    """The Data page's check of a dataset: whether it can be used, the engine's report, a preview grid (class ->
    uint8 [H, W, 3] images), the error of a refused dataset, and the pictures of each duplicate group shown."""

    ok: bool
    report: DataReport | None = None
    grid: dict[str, list[np.ndarray]] = field(default_factory=dict)  # class -> HWC uint8 images
    error: BaseException | None = None
    # per duplicate group (report order, the first DUPLICATE_GROUPS_SHOWN): its pictures, HWC uint8,
    # at most DUPLICATE_PICTURES each (copies dropped by drop_duplicates have none)
    duplicates: list[list[np.ndarray]] = field(default_factory=list)


DUPLICATE_GROUPS_SHOWN = 12
DUPLICATE_PICTURES = 8


def duplicate_pictures(splits) -> list[list[np.ndarray]]:
    """The pictures of the report's first DUPLICATE_GROUPS_SHOWN duplicate groups, so that the user can
    see whether they are copies: the split images, found by their files (`report.split_files`)."""
    by_path = {}
    for name, files in splits.report.split_files.items():
        images = getattr(splits, name).images
        by_path.update({f: i for f, i in zip(files, images)})
    # copies: a view would keep each split's whole image tensor alive in the memoised check
    return [[by_path[f].permute(1, 2, 0).numpy().copy() for f in group if f in by_path][:DUPLICATE_PICTURES]
            for group in splits.report.duplicate_groups[:DUPLICATE_GROUPS_SHOWN]]


def preview_size(cfg: RunConfig) -> int:
    """The preview's image side in pixels: the run's image size, at most MAX_PREVIEW_SIZE."""
    return min(cfg.data.image_size, MAX_PREVIEW_SIZE)


def _key(cfg: RunConfig) -> tuple:
    """A check's cache key: the dataset as `cfg` splits it (`_shape_key`), the preview size and how its pictures
    become squares (data.fit: the previews show what the model sees)."""
    return (*_shape_key(cfg), preview_size(cfg), cfg.data.fit)


@dataclass(frozen=True)
class DataShape:
    """What the few-steps warning needs of a checked dataset: its class names and its split counts
    ({split: {class: images}}, as engine.data.DataReport.split_counts), which no image size changes."""

    classes: tuple[str, ...]
    split_counts: dict


# The shape of every dataset a check succeeded on, for every tab and session of this server: a refresh,
# or another page's first draw, knows the chosen dataset's size without decoding it again (a check at
# another image size is not "held decoded" at this one). Small: no file names, previews or groups.
_SHAPES: dict[tuple, DataShape] = {}
_SHAPE_ENTRIES = 256


def _shape_key(cfg: RunConfig) -> tuple:
    """The dataset `cfg` chooses, split as `cfg` splits it, at any image size."""
    d = cfg.data
    return d.source, d.val_fraction, d.test_fraction, cfg.seed, d.min_images_per_class, d.drop_duplicates


def known_shape(cfg: RunConfig) -> DataShape | None:
    """The shape this server's last successful check found for the dataset `cfg` chooses, split as
    `cfg` splits it, at any image size; None when none was made since the server started."""
    return _SHAPES.get(_shape_key(cfg))


def _remember_shape(cfg: RunConfig, report: DataReport) -> None:
    key = _shape_key(cfg)
    _SHAPES.pop(key, None)  # the newest last
    _SHAPES[key] = DataShape(tuple(report.classes), dict(report.split_counts))
    for old in list(_SHAPES)[:-_SHAPE_ENTRIES]:  # a copy of the keys: other sessions' threads insert too
        _SHAPES.pop(old, None)


def forget(source: str | None = None) -> None:
    """Drop memoised checks (all, or those of one source), e.g. after a folder changed on disk."""
    memo = st.session_state.get(_MEMO_KEY, {})
    for k in [k for k in memo if source is None or k[0] == source]:
        del memo[k]
    for k in [k for k in list(_SHAPES) if source is None or k[0] == source]:
        _SHAPES.pop(k, None)


def cheap_check(engine: Engine, cfg: RunConfig) -> DataCheck | None:
    """This tab's check of the chosen dataset, or the check redone when the engine still holds the
    dataset decoded (after a browser refresh: splitting only, no image decoded); None otherwise.
    Costs a stat when the dataset is not held (engine.data.is_decoded)."""
    memo = st.session_state.get(_MEMO_KEY, {})
    if _key(cfg) in memo:
        return memo[_key(cfg)]
    from engine.data import is_decoded

    try:
        source = resolve_path(cfg.data.source)
    except StudioError:
        return None
    if not is_decoded(source, preview_size(cfg), zip_limits(engine.limits), cfg.data.fit):
        return None
    return check_dataset(engine, cfg, cached_only=True)


def check_dataset(engine: Engine, cfg: RunConfig, progress: Callable[[int, int], None] | None = None,
                  cached_only: bool = False) -> DataCheck | None:
    """Validate `cfg.data.source` with the engine; never raises (the error is in the result). With
    `cached_only` only from the engine's decoded data: None (nothing kept) when it no longer holds it."""
    memo: dict = st.session_state.setdefault(_MEMO_KEY, {})
    key = _key(cfg)
    if key in memo:
        return memo[key]
    d = cfg.data
    try:
        splits = load_dataset(resolve_path(d.source), engine.datasets_dir, image_size=preview_size(cfg),
                              val_fraction=d.val_fraction, test_fraction=d.test_fraction, seed=cfg.seed,
                              min_images_per_class=d.min_images_per_class, progress=progress,
                              limits=zip_limits(engine.limits), drop_duplicates=d.drop_duplicates,
                              cached_only=cached_only, fit=d.fit)
    except NotDecoded:  # evicted since is_decoded said yes: the Data page decodes it, with its progress bar
        return None
    except Exception as exc:  # StudioError for the user's data; anything else is shown politely
        result = DataCheck(False, error=in_user_words(exc, {d.source: d.source_name}))
    else:
        grid = {}
        for c, name in enumerate(splits.classes):
            idx = (splits.train.labels == c).nonzero().flatten()[:PREVIEW_PER_CLASS]
            grid[name] = [img.permute(1, 2, 0).numpy() for img in splits.train.images[idx]]
        result = DataCheck(True, splits.report, grid, duplicates=duplicate_pictures(splits))
        _remember_shape(cfg, splits.report)
    memo[key] = result
    while len(memo) > _MEMO_ENTRIES:
        memo.pop(next(iter(memo)))
    return result


def in_user_words(exc: BaseException, names: dict[str, str]) -> BaseException:
    """A StudioError whose message names the user's files by their own names (`names`: reference ->
    the user's file name) instead of the server's; other exceptions unchanged."""
    if not isinstance(exc, StudioError):
        return exc
    text = user_words(str(exc), names)
    if text == str(exc):
        return exc
    try:
        return type(exc)(text)
    except Exception:  # an error class with another signature
        return StudioError(text)


def check_ood(engine: Engine, cfg: RunConfig, source: str, classes: list[str], name: str = ""):
    """Validate an OOD set against the training classes; returns (its number of readable images, the files
    skipped and why: engine.data.SkippedFile). Raises StudioError that names the file `name` (the user's
    file name) rather than the server's copy."""
    try:
        return inspect_ood_dataset(resolve_path(source), engine.datasets_dir, preview_size(cfg), classes,
                                   limits=zip_limits(engine.limits))
    except StudioError as exc:
        raise in_user_words(exc, {source: name}) from None


# ---- the user's own names for their files ------------------------------------------------------

def user_words(text: str, names: dict[str, str]) -> str:
    """`text` with the engine's names for the user's files (references, stored file names, server
    paths) replaced by the user's own names (`names`: reference -> file name)."""
    for ref, name in names.items():
        if not ref or not name:
            continue
        variants = {ref}
        sha = upload_sha(ref)
        if sha:
            variants |= {sha, sha[:32], sha[:24]}
            try:
                path = resolve_path(ref)
                variants |= {str(path), path.name}
            except StudioError:
                pass
        for v in sorted(variants, key=len, reverse=True):  # longest first: a path before its file name
            text = text.replace(v, name)
    return text


def config_names(cfg: dict) -> dict[str, str]:
    """A run config's (as a dict) references mapped to the user's names for them."""
    d = cfg.get("data", {}) if isinstance(cfg, dict) else {}
    return {d.get("source", ""): d.get("source_name", ""), d.get("ood_source", ""): d.get("ood_source_name", "")}


def capped_split(split: dict[str, dict[str, int]], per_class: int) -> tuple[dict[str, dict[str, int]], int]:
    """The split counts a run uses ({split: {class: images}}): with `data.train_per_class` set, each
    class's training count capped at it (engine.run_data.subsample_train keeps that many, seeded);
    and the training images before the cap (0 when nothing is capped)."""
    train = split.get("train") or {}
    if per_class <= 0 or all(n <= per_class for n in train.values()):
        return split, 0
    return {**split, "train": {name: min(n, per_class) for name, n in train.items()}}, sum(train.values())


STRIP_GAP_PX = 4  # white between the pictures of a class's strip


def thumbnail_strip(images: list[np.ndarray]) -> np.ndarray:
    """Pictures of one size (HWC uint8 [S, S, 3] each) side by side with STRIP_GAP_PX of white between
    them: uint8 [S, n * S + (n - 1) * gap, 3]. Raises ValueError for an empty list."""
    if not images:
        raise ValueError("no pictures for a strip")
    gap = np.full((images[0].shape[0], STRIP_GAP_PX, 3), 255, np.uint8)
    parts = [p for img in images for p in (gap, img)][1:]
    return np.concatenate(parts, axis=1)


def identical_words(identical: list[bool]) -> str:
    """How many duplicate groups (`identical`: one flag per group) are identical files and how many pictures that
    only look alike, to follow a count of files: "; 6 groups of identical files, 3 of pictures that look alike",
    "; all identical files", "; pictures that look alike, no identical files"; "" without groups."""
    same = sum(identical)
    if not identical:
        return ""
    if same == len(identical):
        return "; all identical files"
    if not same:
        return "; pictures that look alike, no identical files"
    return f"; {plural(same, 'group')} of identical files, {len(identical) - same} of pictures that look alike"


def lookalike_caution(identical: list[bool]) -> str:
    """For duplicate groups (`identical`: one flag per group, engine.data.DataReport.group_kinds) of which some are
    pictures that only look alike, not identical files: to look at them before dropping copies, which keeps one
    picture of each group; "" otherwise. A bioacoustics researcher's 6 groups of look-alike spectrograms were 14
    different recordings, with the advice to drop copies beside them."""
    alike = len(identical) - sum(identical)
    if not alike:
        return ""
    which = "They are" if alike == len(identical) else f"{alike} of these groups are"
    return (f"{which} pictures that only look alike, not identical files: look at them below before dropping copies, "
            "since two different recordings, specimens or shots can look this alike, and dropping would keep one.")


def burst_groups_of(rep) -> list[bool]:
    """Per duplicate group of the report `rep`, whether all its files are frames of one burst (`rep.bursts`,
    engine.bursts: shots one camera took moments apart); all False for a report without bursts (or from before)."""
    burst_of = {f: i for i, burst in enumerate(getattr(rep, "bursts", None) or []) for f in burst}
    return [len({burst_of.get(f, -1 - k) for k, f in enumerate(group)}) == 1 for group in rep.duplicate_groups]
