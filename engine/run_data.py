"""A run's data: its splits, its user OOD set, and a shared server's limits on them.

Sits between the data layer (engine.data: zips, decoding, splitting) and whatever trains or
reloads a run: the loop, the run loader, the pruning search and the CLI all get their data here,
so a run is always evaluated on exactly the images it was trained and selected on.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from engine.config import RunConfig
from engine.data import DataSplits, ImageSet, ZipLimits, load_dataset, load_ood_dataset
from engine.errors import StudioError
from engine.paths import resolve_path
from engine.security import LimitExceeded
from engine.words import plural


def zip_limits(limits=None) -> ZipLimits:
    """The data loader's caps, with a shared server's per-image pixel limit when there is one."""
    if limits is not None and limits.max_image_pixels:
        return ZipLimits(max_image_pixels=limits.max_image_pixels)
    return ZipLimits()


def dataset_path(cfg: RunConfig) -> Path:
    """Where the run's dataset (`data.source`) is on this server (engine.paths.resolve_path). Raises StudioError;
    UploadGone for an upload that is gone, naming it by the user's file name (`data.source_name`): the engine's
    own message ("The uploaded file this run uses ...") named no file, and read as a wrong `--data-dir` on the
    command line."""
    from engine.errors import UploadGone

    try:
        return resolve_path(cfg.data.source)
    except UploadGone as exc:
        name = f", '{cfg.data.source_name}'," if cfg.data.source_name else " (an upload)"
        raise UploadGone(f"The run's dataset{name} is no longer in this studio's uploads folder: it was deleted "
                         "or moved, or the run comes from another studio. Upload it again on the dashboard's Data "
                         "page.") from exc


def prepare_data(cfg: RunConfig, work_dir: Path, limits=None) -> DataSplits:
    """The run's splits (`data.source` decoded at `data.image_size` and `data.fit`, split with the run's seed or
    as the dataset's folders give it), optionally fewer training images per class. Extracted zips
    and the decode cache live under `work_dir`. Raises StudioError for data that cannot be used."""
    d = cfg.data
    splits = load_dataset(dataset_path(cfg), work_dir, image_size=d.image_size, val_fraction=d.val_fraction,
                          test_fraction=d.test_fraction, seed=cfg.seed, min_images_per_class=d.min_images_per_class,
                          limits=zip_limits(limits), drop_duplicates=d.drop_duplicates, fit=d.fit)
    if d.train_per_class > 0:
        splits = subsample_train(splits, d.train_per_class, cfg.seed)
    return splits


def check_data_limits(cfg: RunConfig, data: DataSplits, limits) -> None:
    """A shared server's fair-use limits on dataset size and compute budget (epochs x images)."""
    n = len(data.train) + len(data.val) + len(data.test)
    if limits.max_dataset_images and n > limits.max_dataset_images:
        raise LimitExceeded(f"The dataset has {n:,} images; this server allows at most {limits.max_dataset_images:,}.")
    budget = cfg.train.epochs * len(data.train)
    if limits.max_epoch_images and budget > limits.max_epoch_images:
        most = max(1, limits.max_epoch_images // max(len(data.train), 1))
        raise LimitExceeded(f"{plural(cfg.train.epochs, 'epoch')} x {len(data.train):,} "
                            f"training images is over this server's budget of {limits.max_epoch_images:,} image-epochs "
                            f"per run: use at most {plural(most, 'epoch')}.")


def subsample_train(splits: DataSplits, per_class: int, seed: int) -> DataSplits:
    """Keep `per_class` training images of each class (seeded), for data-scarcity studies."""
    g = torch.Generator().manual_seed(seed + 1)
    keep = []
    for c in range(len(splits.classes)):
        idx = (splits.train.labels == c).nonzero().flatten()
        keep.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    idx = torch.cat(keep).sort().values
    return replace(splits, train=splits.train.subset(idx))


def load_user_ood(cfg: RunConfig, work_dir: Path, classes: list[str], limits=None) -> ImageSet | None:
    """The user's own OOD set (`data.ood_source`, same classes as training) or None when there is none.
    Raises StudioError when its classes do not match `classes` or it cannot be read, the message starting
    "The OOD set" where it did not say so (a bare "x.zip is not a zip archive" read as the training data)."""
    if not cfg.data.ood_source:
        return None
    try:
        return load_ood_dataset(resolve_path(cfg.data.ood_source), work_dir, cfg.data.image_size, classes,
                                limits=zip_limits(limits), fit=cfg.data.fit)
    except StudioError as exc:
        if "OOD" in str(exc):
            raise
        said = f"The OOD set ({cfg.data.ood_source_name or cfg.data.ood_source}): {exc}"
        try:
            again = type(exc)(said)
        except Exception:  # an error class with another signature
            again = StudioError(said)
        again.__dict__.update(exc.__dict__)  # its notes and skipped files
        raise again from None
