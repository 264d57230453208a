"""Command line: `python -m engine train|inspect|predict|runs|backbones|methods|presets|pretrain ...`.

Bad input prints its plain message and exits non-zero without a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import json
import math
import os
import shlex
import signal
import sys
import textwrap
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from engine.backbones import (BACKBONES, WEIGHTS_TEXT, available_sources, backbone_title, check_bundled,
                              head_left_out)
from engine.chance import (ChanceCause, by_class_words, chance_cause, chance_finding, colour_words, cut_ends_words,
                           few_class_words, few_held_out_words, few_training_words, finer_detail_words,
                           labels_not_the_cause, loss_spike, loss_spike_words, memorised_fixes, memorised_words,
                           overfit_words, oversure_words,
                           pictures_kind_words, run_lr, small_split_words, unstable_words, val_test_gap_words,
                           weak_class_words)
from engine.checkpoints import new_run_id, read_metadata, write_json
from engine.clock import fmt_duration, process_started_at
from engine.config import (RunConfig, apply_overrides, probe_epochs_for, smaller_batch, smaller_batch_advice,
                           with_batch)
from engine.contract import Reporter, shown_counters
from engine.data import DataSplits, DatasetError, inspect_dataset
from engine.devices import fit_threads_to_cpus, pick_device
from engine.distributed import world
from engine.errors import StudioError
from engine.jobs import execute_run, interrupted_message, stopped_message
from engine.lr_find import lr_into_config
from engine.methods import METHODS
from engine.methods.pruning import smaller_model_warning
from engine.optim import setup_extras
from engine.paths import (DATASETS_FOLDER, UPLOAD_PREFIX, default_data_dir, register_upload_dir, resolve_path,
                          upload_sha)
from engine.predict import (VARIANTS, batch_scale_words, check_sources, first_page_words, load_predictor,
                            model_caution, own_figures, predict_folder, run_summary, scale_words, sure_mistakes_words,
                            unknown_folder_words, write_csv)
from engine.presets import PRESETS, fit_to_data, fitted_to, get_preset, is_recipe, run_name
from engine.pruning_search import search_into_config
from engine.resume import RESUME_FILE, check_resumable, epochs_done_of, planned_epochs
from engine.run_data import load_user_ood, prepare_data
from engine.store import RunStore, process_alive
from engine.train import StartModel, build_start, train
from engine.words import (and_words, ended_early_words, epochs_run_words, extra_epochs_words, first_and_more,
                          greyscale_words, percent, picture_shape_words, plural, run_picture_shape)


class ConsoleReporter(Reporter):
    """A progress bar (tqdm: steps, images/s, ETA) on stderr and a line per epoch on stdout; metrics
    go to the store. With `live`, progress and method streams go to the store too, for an engine
    that supervises this process (a torchrun child)."""

    def __init__(self, store, run_id: str, quiet: bool = False, live: bool = False, cfg: RunConfig | None = None):
        self.started_at = process_started_at()  # summary.json's wall_time_s includes the imports
        self.store, self.run_id, self.quiet, self.live = store, run_id, quiet, live
        self.robust_basis = robust_basis(cfg) if cfg is not None else "a lighter attack each epoch than at the end"
        self._state: dict[str, Any] = {}
        self._last_live = 0.0
        self._bar = None
        self._said_ood = self._said_curve = False
        self._said_sub: tuple | None = None  # (label, epoch, epochs) of the last sub-work line printed
        # tqdm redraws its bar with carriage returns: sent to a file with the epoch lines (`> log 2>&1`) the two
        # shared lines; a terminal shows them apart, so the bar is drawn on a terminal only
        self.bar_drawn = sys.stderr.isatty()
        self._last_line = -math.inf  # time.monotonic(): a clock set back does not hold the lines back

    def progress(self, **f: Any) -> None:
        if f.get("advice"):  # said even with --quiet: it is about this run's settings
            print(f"note: {f['advice']}", file=sys.stderr, flush=True)
        self._state.update(f)
        if self.live and (time.time() - self._last_live > 0.5 or f.get("phase") != "training"):
            self._last_live = time.time()
            self.store.set_progress(self.run_id, self._state)
        if not self.quiet and f.get("sub_label") and f.get("sub_epoch"):  # work inside the run: its own epochs
            said = (f["sub_label"], f["sub_epoch"], f.get("sub_epochs"))
            if said != self._said_sub:  # a line as each of its epochs starts (the smaller model's printed none)
                self._said_sub = said
                self.close_bar()
                print(f"{said[0]}: epoch {said[1]} of {said[2]}", file=sys.stderr, flush=True)
            return
        if self.quiet or f.get("phase") != "training":
            return
        if not self.bar_drawn:  # a file or a pipe: whole lines, now and then, never a redrawn bar
            if time.monotonic() - self._last_line >= PLAIN_PROGRESS_EVERY_S:
                self._last_line = time.monotonic()
                print(progress_words(f), file=sys.stderr, flush=True)
            return
        if self._bar is None or self._bar.total != f.get("total_steps"):
            self.close_bar()
            self._bar = tqdm(total=f.get("total_steps"), unit="step", file=sys.stderr, dynamic_ncols=True,
                             mininterval=0.5)
        self._bar.set_description(f"epoch {f.get('epoch')}/{f.get('epochs')}", refresh=False)
        self._bar.set_postfix({"img/s": f"{f.get('images_per_sec', 0):.0f}", "loss": f"{f.get('loss', 0):.3f}"},
                              refresh=False)
        self._bar.update(f.get("step", 0) - self._bar.n)

    def close_bar(self) -> None:
        """Close the terminal's progress bar, if one is open (before printing the run's last lines)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def step_metrics(self, epoch: int, step: int, values: dict[str, float]) -> None:
        self.store.log_metrics(self.run_id, epoch, step, values, channel="step")

    def epoch_metrics(self, epoch: int, step: int, values: dict[str, float]) -> None:
        self.store.log_metrics(self.run_id, epoch, step, values, channel="epoch")
        if not self.quiet:
            line = epoch_words(epoch, values)
            if ("ood_acc" in values or "robust_acc" in values) and not self._said_ood:  # once: what the names mean
                self._said_ood = True
                said = (["OOD: accuracy on corrupted copies of the validation images, the shift the run is checked "
                         "for, at one severity each epoch; the final figure averages all five"] if "ood_acc" in values
                        else []) + ([f"robust: accuracy under attack, {self.robust_basis}"] if "robust_acc" in values
                                    else [])
                line += "\n  (" + "; ".join(said) + ")"
            (self._bar.write if self._bar is not None else print)(line)

    def stream(self, key: str, point: dict) -> None:
        if self.live:
            self.store.add_stream_point(self.run_id, key, point)
        if not self.quiet:
            line = stream_words(key, point)
            if key == "wise_ft":  # 21 lines in computing order puzzled new users: one line now, the table at the end
                if self._said_curve:
                    return
                self._said_curve = True
                line = ("WiSE-FT: measuring the curve between the starting model (alpha 0) and the fine-tuned one "
                        "(alpha 1); the table by alpha follows when the run ends")
            if self._bar is not None:
                self._bar.write(line)
            else:
                print(line, flush=True)


def robust_basis(cfg: RunConfig) -> str:
    """What the epochs' robust accuracy and the final one measure, for the line that explains the short names
    (engine.evaluate.epoch_sets and final_sets): "PGD-5 at eps 4/255 on at most 64 validation images each
    epoch; the final figure: PGD-20 on the test images"."""
    ev = cfg.eval
    steps = min(ev.robust_steps_each_epoch, ev.robust_steps)
    return (f"PGD-{steps} at eps {ev.robust_eps * 255:g}/255 on at most {ev.robust_subset} validation images each "
            f"epoch; the final figure: PGD-{ev.robust_steps} on the test images (validation ones without a test split)")


PLAIN_PROGRESS_EVERY_S = 30.0  # without a terminal: a progress line at the first step, then at most this often


def progress_words(f: dict[str, Any]) -> str:
    """A training progress line for a log file, from the engine's progress fields (epoch, epochs, step,
    total_steps, images_per_sec, loss, eta_s in seconds; any may be missing): "epoch 2/10, step 30/120 in all,
    152 img/s, loss 0.812, about 1 min 5 s left". What the terminal's bar shows, as a whole line."""
    c = shown_counters(f)  # a fine-tune inside the run: its own epoch and step, the run's again after it
    parts = [f"epoch {c.epoch or '?'}/{c.epochs or '?'}" if c.whose is None else
             f"{c.whose}: epoch {c.epoch}/{c.epochs}" if c.epochs else c.whose,
             f"step {c.step}/{c.total_steps or '?'}" + (" in all" if c.epochs else "")]  # the run's, not the epoch's
    if isinstance(c.images_per_sec, (int, float)) and c.images_per_sec > 0:
        parts.append(f"{c.images_per_sec:.0f} img/s")
    if isinstance(c.loss, (int, float)) and math.isfinite(c.loss):
        parts.append(f"loss {c.loss:.3f}")
    if isinstance(f.get("eta_s"), (int, float)) and math.isfinite(f["eta_s"]) and f["eta_s"] >= 0:
        parts.append(f"about {fmt_duration(f['eta_s'])} left")
    return ", ".join(parts)


# an epoch line's figures, in this order, in the pages' words; others (per layer, per corruption, a method's
# diagnostics) are the dashboard's and the summary's
EPOCH_WORDS = {"val_acc": "validation", "val_balanced_acc": "balanced", "val_macro_f1": "macro-F1", "ood_acc": "OOD",
               "ood_user_acc": "your OOD set", "robust_acc": "robust", "train_pgd_acc": "robust on training images",
               "sparsity": "sparsity", "adafilter_gate_mean": "AdaFilter fine-tuned filters", "train_acc": "train",
               "train_loss": "train loss", "val_loss": "validation loss", "lr": "lr", "images_per_sec": "img/s"}


def epoch_words(epoch: int, values: dict[str, float]) -> str:
    """One line for an epoch's figures (EPOCH_WORDS, in its order): accuracies, sparsity and shares in %,
    losses to 3 decimals, the learning rate to 3 significant digits, images/s whole ("validation 25.0%,
    OOD 20.0%, ..."); a figure that is not finite reads n/a. It read "val_acc=0.2500
    images_per_sec=199.0720" beside warnings in percent."""
    def shown(k: str, v: float) -> str:
        if not math.isfinite(v):
            return f"{EPOCH_WORDS[k]} n/a"
        if k == "images_per_sec":
            return f"{v:.0f} img/s"
        if k.endswith(("acc", "f1")) or k in ("sparsity", "adafilter_gate_mean"):
            return f"{EPOCH_WORDS[k]} {_pct(v)}"
        return f"{EPOCH_WORDS[k]} " + (f"{v:.3f}" if k.endswith("loss") else f"{v:.3g}")

    return f"epoch {epoch}: " + ", ".join(shown(k, float(values[k])) for k in EPOCH_WORDS
                                          if isinstance(values.get(k), (int, float)))


def finished_words(summary: dict) -> str:
    """The line that ends a finished run: its figures in the pages' words and in % (test, validation, OOD,
    the user's OOD set, robust, sparsity), training speed in images/s, "OOD not measured" when the summary's ood_acc is None
    (eval.ood off, say), and which held-out split had no images. It read
    "val_acc=0.6667  test_acc=0.6667" beside warnings in percent."""
    def finite(k: str) -> bool:
        return isinstance(summary.get(k), float) and math.isfinite(summary[k])

    ev = summary.get("robust_eval") or {}  # the final attack, stronger than the epochs' and on other images
    robust = "robust" if not ev else (f"robust ({ev.get('attack', 'PGD')} at eps {float(ev.get('eps', 0)) * 255:g}/255 on "
                                      f"the {'test' if ev.get('split') == 'test' else 'validation'} images)")
    words = {"test_acc": "test", "val_acc": "validation", "ood_acc": "OOD (corrupted, severities 1-5)",
             "ood_user_acc": "your OOD set", "robust_acc": robust, "sparsity": "sparsity"}
    shown = [f"{w} {_pct(summary[k])}" for k, w in words.items() if finite(k)]
    balanced = _balanced_words(summary)
    if balanced:  # imbalanced classes: beside plain accuracy, which flatters a model that favours the large class
        shown.insert(1 if finite("test_acc") else 0, balanced)
    if finite("train_images_per_sec"):
        shown.append(f"trained at {summary['train_images_per_sec']:.0f} img/s")
    unmeasured = [words[k] for k in ("val_acc", "test_acc") if isinstance(summary.get(k), float) and not finite(k)]
    if "ood_acc" in summary and summary["ood_acc"] is None:  # eval.ood off: said, not left for the reader to guess
        shown.append("OOD not measured")
    line = "finished: " + ", ".join(shown) if shown else "finished:"
    line += (f" ({' and '.join(unmeasured)} not measured: no images were left for "
             f"{'that split' if len(unmeasured) == 1 else 'those splits'}; add images per class)"
             if unmeasured else "")
    ended = ended_early_words(summary)  # a method ended training: the figures are the kept model's
    return line + (f"\n  {ended}" if ended else "")


def _balanced_words(summary: dict, val_word: str = "validation") -> str:
    """For a run whose classes are imbalanced (its data report's `imbalance`), its balanced accuracy (the mean of the
    per-class accuracies) on test, else validation (called `val_word`): "test balanced 21.5%"; "" otherwise. A
    student's 5-class run printed "test 44.4%" while its balanced accuracy, 21.5%, was at guessing."""
    if not ((summary.get("data_report") or {}).get("imbalance") or {}).get("imbalanced"):
        return ""
    for split, words in (("test", "test"), ("val", val_word)):
        value = summary.get(f"{split}_balanced_acc")
        if isinstance(value, (int, float)) and math.isfinite(value):
            return f"{words} balanced {_pct(value)}"
    return ""


def _pct(x: Any) -> str:
    return f"{100 * x:.1f}%" if isinstance(x, (int, float)) and math.isfinite(x) else "n/a"


def stream_words(key: str, point: dict) -> str:
    """One line for a point a method streams while it runs (WiSE-FT's curve, pruning's sparsity, the smaller
    model's fine-tune, the pruning search's trials), accuracies in %; another stream's point as JSON."""
    if key == "wise_ft":
        extra = "".join(f", {words} {_pct(point[k])}" for k, words in (("robust_acc", "robust"),
                                                                         ("ood_user_acc", "your OOD set"))
                        if point.get(k) is not None)
        return (f"WiSE-FT curve, alpha {point.get('alpha', 0):g}: validation {_pct(point.get('val_acc'))}, "
                f"OOD {_pct(point.get('ood_acc'))}{extra}")
    if key == "pruning_sparsity":
        return (f"pruning, epoch {point.get('epoch')}: sparsity {_pct(point.get('sparsity'))} "
                f"(the schedule's target now {_pct(point.get('target'))})")
    if key == "structured_fine_tune":  # engine.methods.pruning.FINE_TUNE_STREAM
        if not point.get("epoch"):
            return (f"structured pruning: the smaller model at validation {_pct(point.get('val_acc'))} after its "
                    f"channels were cut (the full-size model: {_pct(point.get('before'))})")
        return (f"structured pruning: the smaller model's fine-tune, epoch {point['epoch']} of {point.get('epochs')}: "
                f"validation {_pct(point.get('val_acc'))}")
    if key == "pruning_trials":
        best = point.get("best_so_far") == point.get("trial")
        return (f"pruning search, trial {point.get('trial')}: validation {_pct(point.get('val_acc'))}, sparsity "
                f"{_pct(point.get('sparsity'))}" + (", the best so far" if best else "")
                + ("" if point.get("feasible", True) else " (below the accuracy floor)"))
    return f"{key}: {json.dumps(point)}"


def _train(args: argparse.Namespace) -> int:
    if args.resume:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # each process would continue the run on its own, in one folder
            raise StudioError("A run continues in one process: give `python -m engine train --resume ...` without "
                              "torchrun (each batch is the same, shared by fewer processes), or start the run again "
                              "under torchrun.")
        return _resume(args)
    cfg = RunConfig.load(args.config) if args.config else RunConfig()
    if not args.name and _auto_named(cfg):  # a run's config.yaml: its name said what that run was, not this one
        cfg = dataclasses.replace(cfg, name="")
    if args.preset:  # the preset replaces the config's settings (its dataset kept); flags below override it
        cfg = get_preset(args.preset).apply(cfg)
    overrides = _overrides(args)
    lp = cfg.optim.linear_probe_epochs
    short = probe_epochs_for(args.epochs, lp) if args.preset and args.epochs and args.epochs > 0 else lp
    if short != lp and not any(o.startswith("optim.linear_probe_epochs=") for o in overrides):  # as the Model page
        overrides.append(f"optim.linear_probe_epochs={short}")
        print(f"preset {args.preset}: its {lp} head-only (linear-probe) epochs lowered to {short}, so that "
              f"at least one of the {args.epochs} epochs fine-tunes the whole network", flush=True)
    if args.data is not None and not Path(args.data).exists():  # a typo gets the closest names, as `predict`'s
        raise StudioError(missing_words(Path(args.data)))
    if args.pretrained == "checkpoint" and not args.checkpoint and not cfg.backbone.checkpoint and not any(
            o.startswith("backbone.checkpoint=") for o in overrides):  # validation's message is the dashboard's
        raise StudioError("--pretrained checkpoint starts from your own weights: give the file with --checkpoint FILE "
                          "(safetensors, or a file PyTorch's torch.save wrote), or choose other starting weights.")
    cfg = apply_overrides(cfg, overrides)
    data_dir = Path(args.data_dir).resolve()
    # (under torchrun rank 0 makes the folder the others share; a job the dashboard's engine launches, with its
    # --run-id, writes into the folder the engine prepared with its config)
    if args.out and not args.run_id and os.environ.get("RANK", "0") == "0":
        _check_run_out(Path(args.out))
    _check_sources(cfg, data_dir)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return _train_distributed(cfg, args, data_dir)
    data, start = _check_inputs(cfg, data_dir / DATASETS_FOLDER)
    _say_mirroring(cfg, list(data.classes))
    if (args.preset or not args.config) and not any(o.startswith(("train.batch_size=", "optim.lr=")) for o in overrides):
        # as the dashboard fits a preset to a small dataset; the default settings too (a new user's first run,
        # batch 64 on 36 images, took 3 optimiser steps and learnt nothing); a batch or rate given is kept
        cfg, fitted = fit_to_data(cfg, len(data.train), "its" if args.preset else "The default")  # after "preset x:"
        if fitted:
            if args.preset:
                print(f"preset {args.preset}: {fitted}", flush=True)
            else:  # as the other notes: on stderr
                print(f"note: {fitted} (--batch-size sets one)", file=sys.stderr, flush=True)
    if not cfg.name:  # named as the dashboard names a run: the preset it still is, or its methods; its data
        cfg = dataclasses.replace(cfg, name=run_name(cfg, preset=_preset_title(args.preset, cfg, len(data.train)),
                                                     fit=fitted_to(len(data.train))))
    store = RunStore(data_dir / "studio.db")
    run_id = new_run_id()
    run_dir = Path(args.out).resolve() if args.out else data_dir / "runs" / run_id
    store.create_run(run_id, cfg.name, cfg.to_dict(), str(run_dir), owner="cli")
    return _run_in_foreground(store, run_id, cfg, run_dir, data_dir, args.quiet, data=data, start=start)  # read once


def _check_run_out(out: Path) -> None:
    """`train --out`: a new or empty folder. Raises StudioError for a file, or a folder that holds anything (a run
    writes its checkpoints and summary.json there: a new user's second run replaced a finished run's files)."""
    if out.exists() and not out.is_dir():
        raise StudioError(f"--out {out} is a file: a run needs a folder of its own. Give a new folder's path, or leave "
                          "--out out (the run then gets its own folder in the data folder's runs/).")
    if out.is_dir() and any(out.iterdir()):
        what = "another run's files" if (out / "summary.json").is_file() or (out / "config.yaml").is_file() else "files"
        raise StudioError(f"--out {out} already holds {what}, which this run would replace. Give a new or empty "
                          "folder, or leave --out out (the run then gets its own folder in the data folder's runs/).")


def _check_csv_out(out: Path) -> None:
    """`predict --out`: a file in a folder that exists. Raises StudioError before any work is done (a predict of a
    large folder ended in a traceback at the end, its answers lost)."""
    if out.is_dir():
        raise StudioError(f"predict --out {out} is a folder: give a file in it, such as {out / 'predictions.csv'}.")
    if not out.parent.is_dir():
        raise StudioError(f"predict --out {out}: its folder {out.parent} does not exist. Create it first, or give a "
                          "path in a folder that exists.")


def _say_mirroring(cfg: RunConfig, classes: list[str]) -> None:
    """As the Data page does, before training: when the class names are digits or letters and training
    mirrors images (engine.augment.mirror_changes_meaning), a note that a mirrored symbol is another one,
    with the setting that stops it. Advice only: the run keeps its settings."""
    from engine.augment import MIRROR_MEASURED, mirror_changes_meaning

    if not (cfg.train.augment and cfg.train.flip and mirror_changes_meaning(classes)):
        return
    shown = ", ".join(f"'{c}'" for c in classes[:3]) + (", ..." if len(classes) > 3 else "")
    tta = " --set eval.tta_flip=false" if cfg.eval.tta_flip else ""
    print(f"note: your class names are digits or letters ({shown}), and a mirrored digit or letter is another "
          f"symbol, or none; this run mirrors half its training images left to right. If the pictures show them, "
          f"train with --set train.flip=false{tta} (random crops kept). {MIRROR_MEASURED}", file=sys.stderr, flush=True)


def _auto_named(cfg: RunConfig) -> bool:
    """Whether `cfg.name` is one the studio gave (engine.presets.run_name, with any preset's title or
    none), not the user's: a run's config reused with other data or settings is named afresh."""
    # with seed 0 too: names given before run names carried the seed
    # and a preset fitted to its data as this batch (the data that fitted it unknown here)
    fitted = lambda recipe: with_batch(recipe, cfg.train.batch_size)  # noqa: E731
    # with the checkpoint's file name and without: names from before it, and a dashboard upload's (whose file name
    # is the user's, unknown here) read as "from your checkpoint" alone once the name is left out
    names = {name for c in (cfg, dataclasses.replace(cfg, seed=0)) for ck in (None, "")
             for name in (run_name(c, checkpoint=ck), run_name(c, fit=fitted, checkpoint=ck),
                          *(run_name(c, preset=p.title, checkpoint=ck) for p in PRESETS.values()))}
    marker = " from your checkpoint on "  # a name built without the file's: its two sides around any file name

    def with_any_file(name: str) -> bool:
        head, _, tail = name.partition(marker)
        return bool(tail) and cfg.name.startswith(head + " from your checkpoint ") and cfg.name.endswith(" on " + tail)
    return bool(cfg.name) and (cfg.name in names or (cfg.backbone.pretrained == "checkpoint"
                                                     and any(with_any_file(n) for n in names)))


def _preset_title(name: str | None, cfg: RunConfig, train_images: int) -> str | None:
    """The title of preset `name` when `cfg` is its recipe exactly, as given or fitted to `train_images`
    training images (engine.presets.is_recipe, as the dashboard asks it); None without a preset or once a
    flag changed it."""
    return get_preset(name).title if name and is_recipe(get_preset(name), cfg, train_images) else None


def _check_sources(cfg: RunConfig, data_dir: Path) -> None:
    """The run's dataset, OOD set and checkpoint (when it starts from one) are there: StudioError
    naming the missing one otherwise, said before a run is recorded. An upload the folder does not
    have gets the command line's way out (--data-dir, or the file's path)."""
    for what, source in (("dataset", cfg.data.source), ("OOD set", cfg.data.ood_source),
                         ("checkpoint", cfg.backbone.checkpoint if cfg.backbone.pretrained == "checkpoint" else "")):
        try:
            found = not source or resolve_path(source).exists()
        except StudioError as exc:
            if not source.startswith(UPLOAD_PREFIX):
                raise
            name = {"dataset": cfg.data.source_name, "OOD set": cfg.data.ood_source_name}.get(what)
            named = f" {name!r}" if name else ""
            raise StudioError(f"The {what}{named} is an upload of the dashboard's that is not in "
                              f"{data_dir / 'uploads'}: deleted or moved (upload it again on the dashboard's Data "
                              "page), or the dashboard keeps its data in another folder (give that folder with "
                              "--data-dir or STUDIO_DATA_DIR); or put the file's path in the config "
                              "instead.") from exc
        if not found:
            raise StudioError(f"The {what} does not exist: {source}")


def _check_inputs(cfg: RunConfig, work_dir: Path) -> tuple[DataSplits, StartModel | None]:
    """Read the dataset, the OOD set and the starting weights before a run is recorded, so that an
    unusable one (not a zip, one class, a checkpoint of another network, ImageNet weights offline) is
    a message and not a failed run in `runs`; returns the dataset's splits and, for a checkpoint or
    ImageNet start, the model built from them, which the run then trains (nothing is decoded, split or
    read twice); a device this machine lacks (`--device cuda` without a GPU) and a backbone without bundled
    weights are refused too. Raises StudioError."""
    pick_device(cfg.train.device)
    if cfg.backbone.pretrained == "bundled":
        check_bundled(cfg.backbone.name)
    data = prepare_data(cfg, work_dir)
    load_user_ood(cfg, work_dir, list(data.classes))
    if cfg.backbone.pretrained in ("checkpoint", "imagenet"):  # the user's file; a download that may fail
        return data, build_start(cfg, data)
    return data, None


def _overrides(args: argparse.Namespace) -> list[str]:
    """The `--set` overrides the command's shortcut options (--data, --epochs, ...) stand for."""
    shortcuts = {
        "data.source": args.data, "backbone.name": args.backbone, "backbone.pretrained": args.pretrained,
        "train.epochs": args.epochs, "data.image_size": args.image_size, "train.batch_size": args.batch_size,
        "optim.lr": args.lr, "seed": args.seed, "name": args.name, "train.device": args.device,
    }
    overrides = [f"{k}={v}" for k, v in shortcuts.items() if v is not None] + list(args.set or [])
    if args.checkpoint:
        overrides += [f"backbone.checkpoint={args.checkpoint}", "backbone.pretrained=checkpoint"]
    return overrides


def _resume(args: argparse.Namespace) -> int:
    """`train --resume RUN` (a run id, its end, or its folder): continue a stopped or interrupted run
    in its own folder, with its own settings, under its own record in the store (a new record when
    the store has none). A folder inside a store's runs/ folder continues under that store, whatever
    --data-dir says: resumed under another, a run finished in one store while the dashboard's still
    read "interrupted"."""
    data_dir = Path(args.data_dir).resolve()
    if Path(args.resume).is_dir() and (Path(args.resume).resolve().parent.parent / "studio.db").is_file():
        data_dir = Path(args.resume).resolve().parent.parent  # <its store's folder>/runs/<id>: that store's run
        register_upload_dir(data_dir / "uploads")  # its config may name that store's uploads
    run_dir, known = _run_folder(args.resume, data_dir)  # a folder, a run id or the end of one
    run_dir = run_dir.resolve()
    if not (run_dir / "config.yaml").is_file():
        raise StudioError(f"{args.resume} is not a run folder (it has no config.yaml): give a run id (see `python -m "
                          "engine runs`) or the folder a run was written to, e.g. runs/runs/<run id>.")
    if _overrides(args) or args.config or args.out:
        raise StudioError("--resume continues a run with its own settings: leave out --config, --out, --set and "
                          "the other settings (start a new run to change them).")
    cfg = RunConfig.load(run_dir / "config.yaml")
    _check_sources(cfg, data_dir)
    store = RunStore(data_dir / "studio.db")
    rec = store.get_run(known) if known else None  # _run_folder read the store: its id for this folder, if any
    if rec is not None and Path(rec.run_dir).resolve() != run_dir:
        rec = None
    if rec is not None and rec.status in ("queued", "running") and process_alive(rec.process):
        where = ("stop it there first (Ctrl+C in its terminal)" if rec.owner == "cli" else
                 "stop it there first (Stop on the dashboard's Train page)")
        raise StudioError(f"The run in {args.resume} is {rec.status} already, in another program "
                          f"(process {rec.process.split()[1]}): {where}.")  # one that ended left it "running": go on
    try:  # before anything is written: a finished run keeps its results
        check_resumable(run_dir, rec.status if rec is not None else None)
    except StudioError as exc:
        if rec is not None and rec.status == "finished":
            # with the store's folder: without it the new run went to ./runs, a store `runs --data-dir` did not list
            raise StudioError(f"{exc} For example: python -m engine train --config "
                              f"{shlex.quote(str(run_dir / 'config.yaml'))} --epochs {2 * cfg.train.epochs} "
                              f"--data-dir {shlex.quote(str(data_dir))}") from None
        if (run_dir / "config.yaml").is_file():  # the command `train` and `runs` gave when it stopped
            raise StudioError(f"{str(exc).rstrip('.')}: python -m engine train --config "
                              f"{shlex.quote(str(run_dir / 'config.yaml'))}{data_dir_flag(data_dir)}") from None
        raise
    run_id = rec.id if rec is not None else new_run_id()
    if rec is None:
        store.create_run(run_id, cfg.name or f"cli {cfg.backbone.name}", cfg.to_dict(), str(run_dir), owner="cli")
    return _run_in_foreground(store, run_id, cfg, run_dir, data_dir, args.quiet, resume=True)


def _run_in_foreground(store: RunStore, run_id: str, cfg: RunConfig, run_dir: Path, data_dir: Path, quiet: bool,
                       resume: bool = False, data: DataSplits | None = None, start: StartModel | None = None) -> int:
    reporter = ConsoleReporter(store, run_id, quiet, live=True, cfg=cfg)  # live: the dashboard shows its progress
    print(f"run {run_id} -> {run_dir}" + (" (continued)" if resume else ""), flush=True)
    weights = WEIGHTS_TEXT.get(cfg.backbone.pretrained, cfg.backbone.pretrained)  # the dashboard's words
    print(f"  {cfg.name or 'this run'}: {backbone_title(cfg.backbone.name)} ({weights}), "
          f"{plural(cfg.train.epochs, 'epoch')}{extra_epochs_words(cfg.to_dict())} at {cfg.data.image_size} px, batch "
          f"{cfg.train.batch_size}, " + ("learning rate found at the start" if cfg.optim.lr_auto else
                                         f"lr {cfg.optim.lr:g}")
          + setup_extras(cfg) + f", seed {cfg.seed}", flush=True)
    try:
        with _terminate_as_interrupt():
            summary = execute_run(store, run_id, cfg, run_dir, data_dir / DATASETS_FOLDER, reporter, resume=resume,
                                  data=data, start=start)
    except Terminated:
        _interrupted(store, run_id, run_dir, cfg.train.epochs, data_dir, SIGTERM)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        _interrupted(store, run_id, run_dir, cfg.train.epochs, data_dir)
        return 130
    finally:
        reporter.close_bar()
    return _say_after_run(summary, cfg, run_dir, store)


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, a scheduler, a time limit) during a command-line run: handled as Ctrl+C is."""


@contextlib.contextmanager
def _terminate_as_interrupt():
    """While the block runs in the main thread, SIGTERM raises Terminated, so that a killed run is recorded
    as stopped with its finished epochs and its resume command, instead of left "running" in the store."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_terminated(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


CTRL_C = "from the keyboard (Ctrl+C)"
SIGTERM = "by a request to end the program (SIGTERM: kill, a scheduler's time limit)"


def _interrupted(store: RunStore, run_id: str, run_dir: Path, planned: int, data_dir: Path, why: str = CTRL_C) -> None:
    """Ctrl-C or SIGTERM (`why`: CTRL_C or SIGTERM): the run is stopped with engine.jobs.stopped_message's
    words (the epochs it finished of `planned`, where Continue picks up), its summary says how many epochs
    it finished (for `runs`), and the user is given the command that continues it (with `data_dir` when it is
    not the default store) or, with nothing to continue, the one that starts it again."""
    done = store.epochs_logged(run_id)
    resumable = (run_dir / RESUME_FILE).is_file()
    message = stopped_message(done, planned_epochs(run_dir, planned), resumable, why)  # (a method's early end)
    store.set_status(run_id, "stopped", message)
    if run_dir.is_dir():  # (not made yet when the interrupt came first)
        write_json(run_dir / "summary.json", {"status": "stopped", "run_id": run_id, "epochs": done,
                                              "error": message, **_stopped_facts(store, run_id, run_dir)})
    if resumable:
        print(f"\nstopped (continue it with: {resume_command(str(run_dir), data_dir)})", file=sys.stderr)
    else:
        print(f"\nstopped before its first epoch ended, so there is nothing to continue (start it again with: "
              f"python -m engine train --config {shlex.quote(str(run_dir / 'config.yaml'))}"
              f"{data_dir_flag(data_dir)})", file=sys.stderr)


def _stopped_facts(store: RunStore, run_id: str, run_dir: Path) -> dict:
    """What a run stopped from the command line keeps in its summary besides its status, as a run stopped from the
    dashboard does: its "history" (one dict per finished epoch, from the store's per-epoch figures), so that its best
    epoch and that epoch's figures can be named, and its "classes" (from its best-epoch checkpoint)."""
    epochs: dict[int, dict] = {}
    for row in store.metrics(run_id):
        if row["channel"] == "epoch":
            epochs.setdefault(int(row["epoch"]), {"epoch": int(row["epoch"])})[row["name"]] = row["value"]
    facts: dict = {"history": [epochs[e] for e in sorted(epochs)]} if epochs else {}
    best = run_dir / "best.safetensors"
    classes = json.loads(read_metadata(best).get("classes") or "[]") if best.is_file() else []
    return {**facts, **({"classes": classes} if classes else {})}


def data_dir_flag(data_dir: Path) -> str:
    """" --data-dir <folder>" for a command that must find this store, "" when it is the default one
    (STUDIO_DATA_DIR, else runs/): a printed command then works from a new terminal as it is."""
    return "" if Path(data_dir).resolve() == default_data_dir() else f" --data-dir {shlex.quote(str(data_dir))}"


def resume_command(run: str, data_dir: Path) -> str:
    """The command that continues `run` (a run id or folder) of the store in `data_dir`."""
    return f"python -m engine train --resume {shlex.quote(run)}{data_dir_flag(data_dir)}"


def _say_after_run(summary: dict, cfg: RunConfig, run_dir: Path, store: RunStore | None = None) -> int:
    """What the command line says when a run ends (one process or torchrun's rank 0): what reading the
    data found, what was loaded from the user's checkpoint, then the error or the final figures, the
    warnings and the methods' claim lines (judged against the runs of `store`, as Results judges).
    Returns the exit code (0 finished, 1 otherwise)."""
    try:  # an upload's reference is no path to inspect
        where = str(resolve_path(cfg.data.source)) if cfg.data.source.startswith(UPLOAD_PREFIX) else cfg.data.source
    except StudioError:
        where = cfg.data.source
    _print_data_report(summary.get("data_report") or {}, where)
    _print_weights(summary.get("load_report") or {})
    if summary["status"] != "finished":
        print(f"error: {summary.get('error')}", file=sys.stderr)
        return 1
    print(finished_words(summary))
    _say_caution(summary, cfg)
    _say_methods(summary, store)
    print(f"summary: {run_dir / 'summary.json'}")
    return 0


def _summary_or_empty(run_dir: str) -> dict:
    """A run's summary.json, {} when it has none or it cannot be read."""
    try:
        return json.loads((Path(run_dir) / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


def _say_methods(summary: dict, store: RunStore | None) -> None:
    """The methods' lines after a finished run: each claim judged against the runs of `store` (none without a
    store), WiSE-FT's curve and claim, and a stronger standard run. The data-too-easy note (engine.claims.ceiling_words)
    comes once, under the first lines that call for it: a WiSE-FT run with another method, both at 100%, printed it
    twice."""
    said = _say_claims(summary, store) if store is not None else False
    _say_wise(summary, ceiling_said=said)
    if store is not None:
        _say_stronger(summary, store)


def _say_claims(summary: dict, store: RunStore) -> bool:
    """The claim line of each method of the run but WiSE-FT (`_say_wise` says its own with its curve),
    judged against the same runs of the store as the Results page (engine.baselines.run_claims), and which
    runs they were; a line without a comparison run says what to run. Above them, for a run at or near
    guessing (engine.chance.chance_finding), that they compare noise, as Results says it. Returns whether it
    printed the data-too-easy note (engine.claims.ceiling_words)."""
    from engine.baselines import BASELINE_METHODS, near_standard, run_claims
    from engine.claims import ceiling_words

    rec = store.get_run(str(summary.get("run_id")))
    if rec is None:
        return False
    claims, other, scratch, twin = run_claims(rec, store.list_runs(), _summary_or_empty, summary)
    lines = [claim.text for claim in claims if claim.method != "wise_ft"]
    found = chance_finding(summary) if lines else None
    if found is not None:  # as Results says above its claim lines: on a run at guessing a shown claim is noise
        verb = ("may compare" if found.maybe else "compares" if len(lines) == 1 else "compare")
        print(f"(This run {'may have learnt nothing yet' if found.maybe else 'learnt nothing'}, as its warning says: "
              f"{'the line below' if len(lines) == 1 else 'the lines below'} {verb} noise.)")
    for line in lines:
        print(line)
    ceiling = ceiling_words(summary, [c for c in claims if c.method != "wise_ft"]) if lines else None
    if ceiling:
        print(f"({ceiling})")
    said = [f"{r.name} ({r.id}, {what})" for r, what in ((other, "standard fine-tuning, same settings"),
                                                         (scratch, "adversarial training from scratch"))
            if r is not None and any(c.method != "wise_ft" for c in claims)]
    if said:
        print("  compared with " + " and ".join(said))
    elif other is None and twin is None and {c.method for c in claims} & BASELINE_METHODS:
        near = near_standard(rec, store.list_runs())  # why the standard run there is does not count
        if near is not None:
            print(f"  '{near[0].name}' ({near[0].id}) is standard fine-tuning on the same data but not this run's "
                  f"comparison: {and_words(near[1])}")
    return bool(ceiling)


def _say_stronger(summary: dict, store: RunStore) -> None:
    """After a WiSE-FT run, as under its Results line: a standard run on the same test images well above its
    fine-tuned model (engine.baselines.stronger_standard), named with its id."""
    from engine.baselines import config_value, stronger_standard, stronger_words
    from engine.claims import wise_ft_claim

    rec = store.get_run(str(summary.get("run_id")))
    found = stronger_standard(rec, store.list_runs(), _summary_or_empty, summary) if rec is not None else None
    if found is not None:
        constant = config_value(rec.config, "optim", "schedule") == "constant"
        shown = wise_ft_claim(summary).shown
        print("note: " + stronger_words(f"'{found[0].name}' ({found[0].id})", found[1], summary["test_acc"], constant,
                                        shown))


def _say_wise(summary: dict, ceiling_said: bool = False) -> None:
    """After a WiSE-FT run: the curve by alpha, the alpha the run chose (engine.predict.chosen_alpha, what
    `predict` and `export` use by default) with its figures on the curve, whether the run showed
    the paper's claim (engine.claims.wise_ft_claim) and the curve in plain words
    (engine.claims.wise_ft_reading), as the Results page says them; then, for a run at or near guessing
    (engine.chance.chance_finding) whose lines do not say so themselves, that they compare noise.
    The data-too-easy note is left out when `ceiling_said` (the other methods' lines printed it).
    Nothing for a summary without a WiSE-FT curve."""
    curve = summary.get("wise_curve") or []
    if not curve:
        return
    from engine.claims import (at_guessing, ceiling_words, wise_ft_claim, wise_ft_reading, wise_pruned_start,
                               wise_user_ood_reading)
    from engine.methods.wise_ft import curve_point
    from engine.predict import chosen_alpha, pick_rule_words

    # the live lines came in computing order: the whole curve once more, by alpha
    own = any(p.get("ood_user_acc") is not None for p in curve)  # the user's OOD set: a third figure per alpha
    points = [f"{p.get('alpha', 0):g}: {_pct(p.get('val_acc'))} / {_pct(p.get('ood_acc'))}"
              + (f" / {_pct(p.get('ood_user_acc'))}" if own else "")
              for p in sorted(curve, key=lambda p: p.get("alpha", 0))]
    per_line = 4 if own else 5  # 21 on one line made one of 450 characters
    print(f"WiSE-FT curve by alpha (validation / OOD{' / your OOD set' if own else ''}):\n  " + "\n  ".join(
        " · ".join(points[i:i + per_line]) for i in range(0, len(points), per_line)))
    alpha = chosen_alpha(summary)
    point = curve_point(curve, alpha) or {}
    measured = any(p.get("ood_acc") is not None for p in curve)
    which = (" (the fine-tuned model itself: no mix did better on OOD within a point of its validation)"
             if alpha == 1.0 and measured else "" if measured else f" ({pick_rule_words(summary)})")
    print(f"WiSE-FT: alpha {alpha:g} chosen{which} (validation {_pct(point.get('val_acc'))}, OOD "
          f"{_pct(point.get('ood_acc'))} on the curve's images); predict and export use it (--alpha takes another, "
          "--variant fine_tuned the fine-tuned model)")
    claim = wise_ft_claim(summary)
    classes = len(summary.get("classes") or [])
    plain = wise_ft_reading(curve, classes)
    print(claim.text)
    if plain:  # as the dashboard's claim line: the paper's terms, then the curve in plain words
        print(f"In plain words: {plain}")
    ceiling = None if ceiling_said else ceiling_words(summary, [claim])
    for line in (wise_user_ood_reading(curve), wise_pruned_start(summary), ceiling):
        if line:
            print(line)
    found = chance_finding(summary)
    # a run that learnt nothing (its warning printed before): both lines compare noise; said once, unless
    # they say it themselves (the fine-tuned end at guessing on validation)
    if found is not None and not at_guessing((curve_point(curve, 1.0) or {}).get("val_acc"), classes):
        print(f"(This run {'may have learnt nothing yet' if found.maybe else 'learnt nothing'}, as its warning "
              f"says: {'these lines compare' if plain else 'the line compares'} noise.)")


def _say_caution(summary: dict, cfg: RunConfig) -> None:
    """After a finished run, as the dashboard's Results page does: a warning when the run is at, below or
    within luck of the level of guessing (engine.chance.chance_finding) with what to change in this
    command's options, the same for a channel-pruned model (engine.methods.pruning.smaller_model_warning),
    a note when validation and test differ by more than chance usually gives, and one when its held-out
    splits are so small that one image is over 2 points."""
    found = chance_finding(summary)
    if found is not None:
        cause = chance_cause(summary, cfg.train.epochs, cfg.train.batch_size)
        advice = _chance_advice(summary, cfg, cause)
        if found.kind == "luck":
            advice = f"More {found.split} images per class would tell. {advice}"
        elif found.kind == "below" and (apart := labels_not_the_cause(summary)):  # validation is fine: not labels
            advice = apart
        elif found.kind == "below":  # worse than guessing: the labels too (after the steps when they were few)
            labels = ("check that each class folder holds the images of its class (python -m engine inspect --files "
                      "lists each class's files)")
            advice = (f"{advice} If it stays below guessing with more steps, {labels}." if cause.kind == "few_steps"
                      else f"{labels[0].upper()}{labels[1:]}. {advice}")
        print(f"warning: {found.text} {advice}", file=sys.stderr)
    elif by_class := by_class_words(summary):  # accuracy at the largest class's share, balanced accuracy beyond it
        print(f"note: {by_class}", file=sys.stderr)
    lr, found = run_lr(summary, cfg.to_dict())
    unstable = None if "adversarial" in cfg.enabled_methods() else unstable_words(summary, lr)  # attacked images' loss
    if unstable:
        flag = f"--lr {lr / 4:.2g}" if lr else "a lower --lr"
        print(f"warning: {unstable} Train again at a quarter of the rate: {flag}"
              + (" --set optim.lr_auto=false" if found else "") + ".", file=sys.stderr)
    smaller = smaller_model_warning(summary)  # the full-size model can learn and its channel-pruned one not
    if smaller:
        print(f"warning: {smaller}", file=sys.stderr)
    gap = val_test_gap_words(summary)
    if gap:
        why = ("Your validation and test folders may hold different kinds of pictures." if
               (summary.get("data_report") or {}).get("split_given") else
               "The two splits are drawn at random from your images: the same settings with another --seed show "
               "which of the two numbers is typical.")
        print(f"note: {gap} {why}", file=sys.stderr)
    from engine.claims import split_sizes

    spike = loss_spike(summary.get("history") or [], int(summary.get("probe_epochs") or 0),
                       sum(split_sizes(summary, "val")))
    for note in (weak_class_words(summary), colour_words(summary), few_class_words(summary), oversure_words(summary),
                 overfit_words(summary, cfg.to_dict()),
                 loss_spike_words(spike, running=False) if spike and not unstable else ""):  # one word on overshoots
        if note:
            print(f"note: {note}", file=sys.stderr)
    small = small_split_words(summary)
    if small:
        print(f"note: {small}", file=sys.stderr)
    ends = cut_ends_words(summary, cfg.to_dict(), "a run with --set data.fit=pad (grey bars) or data.fit=stretch")
    if ends:
        print(f"note: {ends}", file=sys.stderr)
    detail = finer_detail_words(summary, cfg.to_dict(), "a run with --image-size {size}")
    if detail:
        print(f"note: {detail}", file=sys.stderr)


def _chance_advice(summary: dict, cfg: RunConfig, cause: ChanceCause) -> str:
    """What to change, in `train`'s options, for a run that learnt nothing (or may not have), from its
    engine.chance.chance_cause: the learning rate when validation clearly peaked and fell, more images when it
    learnt its training images by heart, else more
    optimiser steps when it took fewer than engine.chance.FEW_STEPS, else the rate and the data."""
    if cause.kind == "peaked":
        return (f"Its validation accuracy reached {100 * cause.best['val_acc']:.1f}% in epoch "
                f"{cause.best.get('epoch', '?')} and fell to {100 * cause.last:.1f}% by the end: the learning rate "
                "was likely too high for these images. Lower it (--lr), or use the best epoch's model (predict "
                "--variant best).")
    if cause.kind == "memorised":
        words = {"augment": "random crops and flips (--set train.augment=true; this run had none)",
                 "frozen": f"every layer trained (--set optim.freeze_blocks=0; this run kept its first "
                           f"{plural(cfg.optim.freeze_blocks, 'block')} as they were)",
                 "short": f"a longer run (--epochs; this one had {cfg.train.epochs})"}
        fixes = ["more images per class"] + [words[k] for k in memorised_fixes(cfg.to_dict())]
        return (f"{memorised_words(cause)} What may help: {'; '.join(fixes)}. And check that the classes differ in "
                "what they show, not only in their background, lighting or size (python -m engine inspect --files "
                "lists each class's files).")
    if cause.kind == "unknown":
        return "Give it more epochs (--epochs), or lower the learning rate (--lr)."
    if cause.kind == "many_steps":
        found = (summary.get("lr_find") or {}).get("lr")  # what the range test chose (the config has the start)
        rate = ("lower the learning rate (it was found automatically" + (f" at {found:.3g}" if found else "")
                + ": give one with --lr and --set optim.lr_auto=false)" if cfg.optim.lr_auto else
                f"lower the learning rate (--lr; it was {cfg.optim.lr:g}) or let the studio find one "
                "(--set optim.lr_auto=true)")
        return (f"It took {plural(cause.steps, 'optimiser step')}: {rate}, and check that the classes look different "
                "from each other (python -m engine inspect --files lists each class's files).")
    epochs, per_epoch, batch, n_train = cause.epochs, cause.per_epoch, cause.batch, cause.n_train
    why = (f"the batch size ({batch}) is not smaller than your {n_train} training images, so each epoch is a single "
           f"step" if cause.one_step_epochs else
           f"{plural(epochs, 'epoch')} of {plural(per_epoch, 'batch', 'batches')} of {batch}")
    fix = smaller_batch(cfg, n_train) if n_train is not None else None
    # a smaller batch only where one is offered, with its rate (a smaller batch alone collapsed a new user's run)
    words = (f"It took only {plural(cause.steps, 'optimiser step')} ({why}): give it more with more epochs (--epochs)"
             + (" or a smaller batch with the learning rate lowered in step." if fix else "."))
    if fix is None:
        return words
    flags = f"--batch-size {fix[0]}" + ("" if cfg.optim.lr_auto else f" --lr {fix[1]:g}")
    return f"{words} {smaller_batch_advice(cfg, n_train)} ({flags})"


def _print_data_report(report: dict, source: str) -> None:
    """What reading the data found, as `inspect` says it (notes, warnings, files skipped), after a run:
    a broken file or a guessed code page is said where the run was started, not only by `inspect`."""
    for line in [*(report.get("notes") or []), *(report.get("warnings") or [])]:
        print(f"data: {line}", file=sys.stderr)
    skipped = report.get("skipped") or []
    if skipped:
        first = skipped[0]
        example = f"{first.get('path')}: {first.get('reason')}" if isinstance(first, dict) else str(first)
        print(f"data: {plural(len(skipped), 'file')} skipped (e.g. {example}); "
              f"python -m engine inspect --data {shlex.quote(source)} lists them", file=sys.stderr)


def _print_weights(report: dict) -> None:
    """For a run that started from the user's checkpoint: what was loaded from it (summary's load_report:
    its source "checkpoint <file name>", the tensors matched, how the file was read, the head)."""
    source = str(report.get("source") or "")
    if not source.startswith("checkpoint"):
        return
    name = source.removeprefix("checkpoint").strip() or "your checkpoint"
    parts = [f"{report.get('matched', 0)} weight tensors loaded from {name}"]
    note = str(report.get("note") or "")
    if note:
        parts.append(note)
    if not report.get("file_classes"):  # a studio model's note says what became of its head itself
        parts.append("its classification head kept (the same classes)" if report.get("head_kept")
                     else "a new classification head for your classes"
                     + (f" (the file's own head, {dropped}, left out)" if (dropped := head_left_out(report)) else ""))
    print("weights: " + "; ".join(parts), file=sys.stderr)


def _train_distributed(cfg, args: argparse.Namespace, data_dir: Path) -> int:
    """Under torchrun: every process trains its shard; rank 0 alone writes the store and files."""
    backend = "nccl" if torch.cuda.is_available() and cfg.train.device != "cpu" else "gloo"
    if backend == "nccl":  # one GPU per process; NCCL's own collectives use the current device
        torch.cuda.set_device(pick_device(cfg.train.device, distributed=True))
    dist.init_process_group(backend)
    rank = dist.get_rank()
    try:
        if rank == 0:  # extract and decode once before the others read the same folder; every input checked
            _check_inputs(cfg, data_dir / DATASETS_FOLDER)
            run_id = args.run_id or new_run_id()
            run_dir = Path(args.out).resolve() if args.out else data_dir / "runs" / run_id
            shared = [run_id, str(run_dir)]
        else:
            shared = [None, None]
        dist.broadcast_object_list(shared, src=0)
        run_id, run_dir = shared[0], Path(shared[1])
        if rank != 0:  # the same job-level decisions as rank 0's execute_run (it searches, we receive)
            cfg, _ = lr_into_config(cfg, data_dir / DATASETS_FOLDER)
            cfg, _ = search_into_config(cfg, data_dir / DATASETS_FOLDER)
            train(cfg, Reporter(), run_dir=None, work_dir=data_dir / DATASETS_FOLDER, world=world())
            return 0
        store = RunStore(data_dir / "studio.db")
        if not args.run_id:  # a supervising engine created the record already
            store.create_run(run_id, cfg.name or f"{run_name(cfg)} ({dist.get_world_size()} processes)",
                             cfg.to_dict(), str(run_dir), owner="cli")
        print(f"run {run_id} -> {run_dir} ({dist.get_world_size()} processes, {backend})", flush=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        reporter = ConsoleReporter(store, run_id, args.quiet, live=bool(args.run_id), cfg=cfg)
        summary = execute_run(store, run_id, cfg, run_dir, data_dir / DATASETS_FOLDER, reporter)
        reporter.close_bar()
        return _say_after_run(summary, cfg, run_dir, store)
    finally:
        dist.destroy_process_group()


def _print_skipped(skipped, out=None) -> None:
    out = out or sys.stdout
    print(f"skipped files ({len(skipped)}):", file=out)
    for s in skipped:
        print(f"  {s.path}: {s.reason}", file=out)


def _inspect(args: argparse.Namespace) -> int:
    """A dry run: what the studio makes of a dataset (layout, classes, split, skipped files, duplicates)."""
    cfg = RunConfig.load(args.config) if args.config else RunConfig()
    d = cfg.data
    pick = lambda given, default: default if given is None else given  # noqa: E731
    source = args.data or d.source
    if not Path(resolve_path(source)).exists():
        raise StudioError(missing_words(Path(source)) if args.data else f"The data path does not exist: {source}")
    try:
        rep = inspect_dataset(
            resolve_path(source), Path(args.data_dir).resolve() / DATASETS_FOLDER, image_size=pick(args.image_size,
                                                                                              d.image_size),
            min_images_per_class=pick(args.min_images_per_class, d.min_images_per_class),
            val_fraction=pick(args.val_fraction, d.val_fraction), test_fraction=pick(args.test_fraction, d.test_fraction),
            seed=pick(args.seed, cfg.seed), drop_duplicates=args.drop_duplicates or d.drop_duplicates)
    except DatasetError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc), "notes": exc.notes,
                              "skipped": [asdict(s) for s in exc.skipped]}, ensure_ascii=False, indent=1))
        else:
            print(f"error: {exc}", file=sys.stderr)
            for note in exc.notes:
                print(f"note: {note}", file=sys.stderr)
            if exc.skipped:
                _print_skipped(exc.skipped, sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"ok": True, **rep.to_dict()}, ensure_ascii=False, indent=1))
        return 0
    print(f"dataset: {source}" + ("  (the bundled sample: --data gives yours)" if not args.data and not args.config
                                  else ""))
    print(f"layout: {rep.layout}" + ("  (the split given by the folders is used)" if rep.split_given else
                                     "  (split by class with the seed)"))
    for note in rep.notes:
        print(f"note: {note}")
    shape = picture_shape_words(rep.picture_shape, pick(args.image_size, d.image_size),
                                control="a larger --image-size (train and inspect)", fit=d.fit,
                                whole="Training with --set data.fit=pad or data.fit=stretch")
    if shape:
        print(f"pictures: {shape}")
    if grey := greyscale_words(rep.greyscale, rep.num_images):
        print(f"colour: {grey}")
    split_names = [s for s in ("train", "val", "test") if s in rep.split_counts]
    width = max([len(c) for c in rep.classes] + [5])
    print(f"classes ({len(rep.classes)}):")
    print(f"  {'class':{width}s} " + " ".join(f"{s:>6s}" for s in split_names) + f" {'total':>6s}")
    for c in rep.classes:
        print(f"  {c:{width}s} " + " ".join(f"{rep.split_counts[s].get(c, 0):6d}" for s in split_names)
              + f" {rep.counts.get(c, 0):6d}")
    imb = rep.imbalance
    if imb:
        verdict = ("imbalanced: watch balanced accuracy and macro-F1, and consider data.class_balance"
                   if imb["imbalanced"] else "balanced enough")
        print(f"imbalance: largest class '{imb['largest']}' / smallest '{imb['smallest']}' = {imb['ratio']}x ({verdict})"
              if imb["largest"] != imb["smallest"] else "imbalance: none (every class has the same number of images)")
    _print_few_held_out(rep.split_counts, {"bursts": rep.bursts, "split_files": rep.split_files})
    print(f"duplicate groups: {len(rep.duplicate_groups)}" + (
        f" ({len(rep.duplicates_dropped)} extra copies dropped)" if rep.duplicates_dropped else ""))
    identical = rep.group_kinds()
    for i, group in enumerate(rep.duplicate_groups):  # which are byte-identical, as the Data page says
        kind = ("" if not identical else "  (identical files)" if identical[i] else "  (pictures that look alike)")
        print("  " + " = ".join(group) + kind)
    _print_skipped(rep.skipped)
    for w in rep.warnings:
        print(f"warning: {w}")
    if not args.files:  # 640 file names scrolled the summary away: listed on request
        counts = ", ".join(f"{s} {len(rep.split_files.get(s, []))}" for s in split_names)
        print(f"files of each split ({counts}): --files lists them")
        return 0
    for split in split_names:
        files = rep.split_files.get(split, [])
        print(f"{split} files ({len(files)}):")
        for f in files:
            print(f"  {f}")
    return 0


def _print_few_held_out(split_counts: dict[str, dict[str, int]], report: dict | None = None) -> None:
    """`inspect`'s notes, as the Data page's, on what the held-out splits will measure with (`split_counts`:
    {split: {class: images}}): splits of few images (engine.chance.few_held_out_words, with the moments the data
    `report`'s bursts make of them) and classes of few images (engine.chance.few_class_words)."""
    if small := few_held_out_words(split_counts, report):
        print(f"note: {small}")
    if few := few_class_words({"data_report": {"split_counts": split_counts}}):
        print(f"note: {few}")


def _runs(args: argparse.Namespace) -> int:
    db = Path(args.data_dir) / "studio.db"
    store = RunStore(db) if db.is_file() else None  # listing creates no folder
    if store is not None:  # runs whose program was killed: marked interrupted here too, as the dashboard marks them
        store.mark_interrupted(lambda rec: interrupted_message(store, rec))
    if args.give_to is not None:
        return _give_runs(args, store)
    runs = store.list_runs() if store is not None else []
    if args.run and runs:  # `runs --run ID`: those runs alone (the whole list came back, the id ignored)
        runs = [r for r in runs if any(r.id == w or r.id.endswith(w) for w in args.run)]
        if not runs:
            raise StudioError(f"No run matches {', '.join(args.run)} in {Path(args.data_dir)}: `python -m engine runs` "
                              "lists them all.")
    if not runs:
        print(f"no runs yet in {Path(args.data_dir)}; to list another folder's runs, give it with --data-dir "
              "(the dashboard's is its STUDIO_DATA_DIR)")
    for r in runs:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created))
        print(f"{r.id}  {r.status:9s} {when}  {r.name}  {_run_facts(r, store)}" + (f"  ({note})" if (note := _run_note(r, Path(args.data_dir)))
                                                                            else ""))
    return 0


def _give_runs(args: argparse.Namespace, store: RunStore | None) -> int:
    """`runs --give-to NAME [--run ID ...]`: the runs given (default: every run no signed-in user owns,
    RunStore.unowned_runs) become NAME's, so that on a studio with sign-in NAME sees and controls them.
    The name follows the sign-in form's rules (engine.security.user_name) and letter case (an account that
    exists in other capitals is that account)."""
    from engine.security import user_name

    name, refusal = user_name(args.give_to)
    if refusal:
        raise StudioError(refusal)
    if store is None:
        raise StudioError(f"No runs yet in {Path(args.data_dir)}: nothing to give.")
    name = store.known_owner(name) or name
    if args.run:
        ids = [_run_folder(run, Path(args.data_dir))[1] or run for run in args.run]
        known = {r.id for r in store.list_runs()}
        missing = [i for i in ids if i not in known]
        if missing:
            raise StudioError(f"Not runs of this studio's list: {', '.join(missing)} (see `python -m engine runs`).")
    else:
        ids = [r.id for r in store.unowned_runs()]
    given = store.give_runs(name, ids)
    if given:
        print(f"{given} run{'s' if given != 1 else ''} given to {name}: on the dashboard with sign-in they are "
              f"{name}'s to see and control")
    else:
        print(f"0 runs given: {'they were already ' + name + chr(39) + 's' if args.run else 'every run already has a signed-in owner'}")
    return 0


def _run_note(r, data_dir: Path) -> str:
    """`runs`' note on a run: its message's first line in the command line's words (`train --resume` where
    the dashboard says Continue), or for a run its program left "running" (killed), what happened to it."""
    resume = resume_command(r.id, data_dir)
    if r.status in ("queued", "running") and not process_alive(r.process):
        return ("its program ended before it finished" + (f"; continue it with: {resume}"
                                                            if (Path(r.run_dir) / RESUME_FILE).is_file() else ""))
    return (r.error or "").splitlines()[0].replace("Continue picks up", f"{resume} picks up") if r.error else ""


def _run_facts(r, store: RunStore | None = None) -> str:
    """What tells runs of the same name apart: the dataset (the user's file name), epochs (those done
    of those asked for, for a run that did not finish: with the `store`, also the epochs a run still
    training, or killed, logged since its summary was written; for a finished run a method ended early, those it
    ran of those planned) and the final test (else validation) accuracy."""
    try:
        summary = json.loads((Path(r.run_dir) / "summary.json").read_text())
    except (OSError, ValueError):
        summary = {}
    config = r.config or {}
    data = config.get("data") or {}
    epochs = (config.get("train") or {}).get("epochs", "?")
    done = summary.get("epochs")
    if r.status != "finished":  # a run that failed before its first epoch did none ("4 epochs" read as work done)
        done = max(done if isinstance(done, int) else 0, store.epochs_logged(r.id) if store is not None else 0)
    facts = [data.get("source_name") or Path(str(data.get("source") or "?")).name]
    if r.status != "finished" and isinstance(done, int) and done != epochs:
        facts.append(f"{done} of {plural(epochs, 'epoch') if isinstance(epochs, int) else epochs}")
    elif isinstance(epochs, int):  # a finished run a method ended early: "3 of 20 epochs", as the dashboard says
        facts.append(epochs_run_words(summary, epochs))
    else:
        facts.append(plural(epochs, "epoch"))
    for key, words in (("test_acc", "test"), ("val_acc", "val"), ("best_val_acc", "best val")):
        if isinstance(summary.get(key), (int, float)) and math.isfinite(summary[key]):
            facts.append(f"{words} {100 * summary[key]:.1f}%")
            break
    balanced = _balanced_words(summary, val_word="val")  # imbalanced classes: plain accuracy alone flatters
    return "[" + ", ".join(facts + ([balanced] if balanced else [])) + "]"


def _backbones(args: argparse.Namespace) -> int:
    for name, spec in BACKBONES.items():
        avail = available_sources(name)
        offline = ", ".join(k for k, v in avail.items() if v)
        print(f"{name:20s} {spec.family:12s} offline: {offline:22s} {spec.description}")
    return 0


def _presets(args: argparse.Namespace) -> int:
    """Each preset: its name, title, one line about it, and every setting it changes from the defaults."""
    width = max(len(name) for name in PRESETS)
    for i, (name, preset) in enumerate(PRESETS.items()):
        print(("\n" if i else "") + f"{name:{width}s} {preset.title}")
        text = preset.describe() + ("\n\n" + preset.details() if preset.details else "")
        for line in plain_paragraphs(text):  # the dashboard's markdown, as a terminal shows text
            print(textwrap.fill(line, 100, initial_indent="    ", subsequent_indent="      " if line.startswith("- ")
                                else "    ") if line else "")
        print("  sets (everything else at its default):")
        for key, value in preset.sets().items():
            print(f"    {key} = {_shown_value(key, value)}")
    return 0


def plain_paragraphs(markdown: str) -> list[str]:
    """`markdown` (a preset's card text: paragraphs, **bold**, "- " bullets) as plain lines for a terminal:
    one per paragraph or bullet, "" between paragraphs, without the emphasis marks."""
    lines = []
    for block in markdown.replace("**", "").split("\n\n"):
        items = [b.strip() for b in block.splitlines() if b.strip()]
        if lines and items:
            lines.append("")
        lines += items if all(b.startswith("- ") for b in items[1:]) and items and items[-1].startswith("- ") \
            else [" ".join(items)]
    return lines


def _shown_value(key: str, value: Any) -> str:
    """A setting's value as the dashboard shows it: scaled fields in their unit (eps 0.00784 -> 2/255)."""
    from engine.config import CORE_SECTIONS, shown_value

    cfg = RunConfig()
    section, _, name = key.partition(".")
    obj = getattr(cfg, section, None) if section in CORE_SECTIONS else cfg.methods.get(section)
    meta = next((f.metadata for f in dataclasses.fields(obj) if f.name == name), {}) \
        if dataclasses.is_dataclass(obj) else {}
    return shown_value(meta, value)


def _methods(args: argparse.Namespace) -> int:
    for name, spec in METHODS.items():
        print(f"{name:12s} {spec.title}: {spec.summary}")
    return 0


def _check_alpha(args: argparse.Namespace, run_dir: Path) -> None:
    """Without --variant, the run's default model (engine.runs.default_variant: a WiSE-FT run's mix, as the
    dashboard answers); --alpha only with the WiSE-FT mix (predict, export): StudioError otherwise."""
    from engine.runs import default_variant

    if args.variant is None:
        args.variant = default_variant(run_dir)
    if args.alpha is not None and args.variant != "wise":
        raise StudioError("--alpha sets the WiSE-FT mix: use it with --variant wise.")


def _stored_alpha(run_id: str | None, data_dir: Path) -> float | None:
    """The WiSE-FT alpha chosen for the run on the dashboard's Results page (kept in the store), or None."""
    if run_id is None or not (data_dir / "studio.db").is_file():
        return None
    return getattr(RunStore(data_dir / "studio.db").get_run(run_id), "wise_ft_alpha", None)


def _variant_arg(parser: argparse.ArgumentParser, variants: dict[str, str]) -> None:
    """`--variant`, one of `variants` (name -> words); without it the model the dashboard answers with
    (resolved by _check_alpha once the run is known)."""
    parser.add_argument("--variant", choices=list(variants), help="which of the run's models: " + "; ".join(
        f"{k}: {v}" for k, v in variants.items()) + " (default: the model the dashboard answers with: a WiSE-FT "
        "run's mix at its chosen alpha, else fine_tuned)")


EXPORT_VARIANTS = {"fine_tuned": "fine-tuned model (end of training, full size)",
                   "best": "best epoch's model (a stopped run's model so far; its accuracy measured at export)",
                   "structured": "smaller, channel-pruned model (runs with structured pruning)",
                   "wise": "WiSE-FT mix (at --alpha; default: the run's chosen alpha)"}


def _export(args: argparse.Namespace) -> int:
    """Export a finished run's model as the dashboard's Export tab does: model.safetensors, model.ts
    (TorchScript), model.onnx and MODEL_CARD.md, each file reloaded and checked against the model on
    the run's validation images (engine.export.export_all). Exit status 1 when a check fails."""
    from engine.export import best_card_summary, check_images, checked_on_words, export_all, export_dir
    from engine.predict import chosen_alpha, run_summary
    from engine.runs import load_run

    data_dir = Path(args.data_dir)
    run_dir, run_id = _run_folder(args.run, data_dir)
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise StudioError(f"export --out {args.out} is a file: the export writes a folder of files (safetensors, "
                          "TorchScript, ONNX, the model card). Give a folder's path.")
    _check_alpha(args, run_dir)  # a stopped run's default is its best epoch so far (engine.runs.default_variant)
    summary = run_summary(run_dir, stopped_ok=args.variant == "best")  # an unfinished run: how to get a model
    _say_stopped(run_dir, run_id, data_dir, "is exported")
    run = load_run(run_dir, data_dir / DATASETS_FOLDER)
    if not run.has(args.variant):
        what = {"structured": "it was trained without structured pruning", "wise": "it was trained without WiSE-FT",
                "best": "it kept no best-epoch checkpoint"}[args.variant]
        raise StudioError(f"This run has no {args.variant.replace('_', '-')} model: {what}. "
                          "Export the fine-tuned model (--variant fine_tuned), or train with it switched on.")
    alpha = None
    if args.variant == "wise":  # to two decimals, as the dashboard's slider and its export folders have it
        alpha = round(chosen_alpha(summary, args.alpha if args.alpha is not None else _stored_alpha(run_id, data_dir)), 2)
        if alpha == 1.0:  # the mix at alpha 1 is the fine-tuned model: exported where the Export tab puts it
            print("the WiSE-FT mix at alpha 1.00 is the fine-tuned model: exporting that", flush=True)
            args.variant, alpha = "fine_tuned", None
        else:
            summary = run.wise_card_summary(summary, alpha)
    if args.variant != "wise":  # the other models' cards name the mix chosen on Results, as the dashboard's export
        stored = _stored_alpha(run_id, data_dir) if run.has("wise") else None  # does (alpha 1 chosen there too)
        summary = {**summary, **({"wise_chosen": stored} if stored is not None else {})}
    model = run.model_variant(args.variant, alpha)
    images, held_out, checked_on, unread = check_images(run)
    if unread is not None:
        print(f"note: the run's dataset could not be read ({unread.rstrip('.')}), so each file is checked on "
              f"{len(images)} generated images instead: that shows it computes the model's function, not its "
              "accuracy (no accuracy is measured here).", file=sys.stderr, flush=True)
    if args.variant == "best":  # its own figures, measured now: the run's are another epoch's model's
        summary = best_card_summary(run, summary, held_out)
    epoch = (summary.get("best_epoch") or [None])[0] if args.variant == "best" else None
    out = Path(args.out).resolve() if args.out else export_dir(run_dir, args.variant, alpha, epoch)  # the dashboard's
    what = f"WiSE-FT mix at alpha {alpha:.2f}" if alpha is not None else EXPORT_VARIANTS[args.variant].split(" (")[0]
    print(f"exporting the {what} of run {run_dir.name} to {out}", flush=True)
    with run.lock:
        checks = export_all(model, run.cfg, summary, images, out, structured=args.variant == "structured",
                            held_out=held_out, checked_on=checked_on)
    for c in checks:
        print(f"  {Path(c.path).name:18} {'verified' if c.ok else 'FAILED':9} agreement {100 * c.agreement:.1f}%  "
              f"max logit difference {c.max_abs_logit_diff:.1e}" + (f"  ({c.message})" if c.message else ""))
    failed = [c for c in checks if not c.ok]
    print("  MODEL_CARD.md: how the model was trained, its accuracy and how to load each file")
    on = checked_on_words(checked_on, len(images))
    if failed:
        print(f"error: {', '.join(c.format for c in failed)} did not reproduce the model on {on}: do not use it; "
              "the other files are fine.", file=sys.stderr)
        return 1
    print(f"all {len(checks)} files reloaded give the model's class on {on.replace('the ', 'all ', 1)}")
    return 0


EXPORTED_FILES = ("model.safetensors", "model.ts", "model.onnx", "MODEL_CARD.md")  # engine.export.export_all's


def _refuse_exported_model(path: Path) -> None:
    """StudioError when --run names an exported model (a downloaded or exported file, or an export folder)
    instead of a run: `predict` and `export` load a run (its config, classes and data); an exported model is
    used with the code in its model card."""
    exported_folder = path.is_dir() and not (path / "config.yaml").is_file() and any(
        (path / f).is_file() for f in EXPORTED_FILES)
    if path.is_file() or exported_folder:
        card = path / "MODEL_CARD.md" if exported_folder else path.with_name("MODEL_CARD.md")
        raise StudioError(f"'{path}' is " + ("a folder of exported model files" if exported_folder else "a file")
                          + ", not a run: --run takes a run id (see `python -m engine runs`), the end of one, or a "
                          "run's folder, and --variant / --alpha pick which of its models answers. An exported model "
                          "is used outside the studio with the code under \"Use it\" in its model card"
                          + (f" ({card})." if card.is_file() else " (MODEL_CARD.md, exported beside it)."))


def _say_stopped(run_dir: Path, run_id: str | None, data_dir: Path, does: str = "answers") -> None:
    """For a stopped run whose best epoch so far is used (engine.runs.stopped_with_best), a note on stderr: the
    epochs it finished of those planned, that its best epoch `does` ("answers", "is exported"), and the command
    that continues it to its final model."""
    from engine.runs import stopped_with_best

    if not stopped_with_best(run_dir):
        return
    summary = json.loads((run_dir / "summary.json").read_text())
    planned = int(RunConfig.from_yaml((run_dir / "config.yaml").read_text()).train.epochs)
    done, planned = epochs_done_of(run_dir, summary, planned)
    print(f"note: this run was stopped after {done} of {plural(planned, 'epoch')}, so its best epoch so far {does}; "
          f"continue it for the final model: {resume_command(run_id or str(run_dir), data_dir)}", file=sys.stderr,
          flush=True)


def _run_folder(run: str, data_dir: Path) -> tuple[Path, str | None]:
    """(the folder of `run`, its run id when the store or the folder's name tells it): a run folder, a
    run id, or the end of one ("076e0a" for 20261201-003228-076e0a) when exactly one run id ends so, else any
    part of one ("003228") when exactly one run id holds it, among the folders in `data_dir`/runs and the
    runs its store lists (`runs` lists those too, wherever `train --out` put them); a file of a run's folder
    (its config.yaml, summary.json) stands for that run.
    Raises StudioError naming the candidates, or the folder a listed run lost."""
    if Path(run).is_file() and (Path(run).parent / "config.yaml").is_file():
        run = str(Path(run).parent)
    _refuse_exported_model(Path(run))
    db = data_dir / "studio.db"
    records = RunStore(db).list_runs() if db.is_file() else []  # reading the store creates no folder
    if Path(run).is_dir():
        where = Path(run).resolve()
        ids = [r.id for r in records if r.run_dir and Path(r.run_dir).resolve() == where]
        return Path(run), ids[0] if ids else next((r.id for r in records if r.id == where.name), None)
    folders = {d.name: d for d in (data_dir / "runs").glob("*") if d.is_dir()} if (data_dir / "runs").is_dir() else {}
    lost = {}
    for r in records:
        if r.id not in folders and r.run_dir:
            (folders if Path(r.run_dir).is_dir() else lost)[r.id] = Path(r.run_dir)
    known = {*folders, *lost}
    matches = [run] if run in known else (sorted(n for n in known if run and n.endswith(run))
                                          or sorted(n for n in known if run and run in n))
    if len(matches) == 1 and matches[0] in folders:
        return folders[matches[0]], matches[0]
    if len(matches) == 1:
        raise StudioError(f"Run {matches[0]} is listed by `python -m engine runs`, but its folder {lost[matches[0]]} "
                          "is gone (moved or deleted): put it back there, or give the folder where it is now.")
    if matches:
        how = "ends" if all(m.endswith(run) for m in matches) else "is part of"
        raise StudioError(f"'{run}' {how} {len(matches)} run ids: {first_and_more(matches, 6)}. Give more of it, or "
                          "the whole id.")
    close = _closest_ids(run, sorted(known))  # a typo (letter o for zero) got no nearest id
    if close:
        raise StudioError(f"No run '{run}' in {data_dir}: did you mean {' or '.join(close)}? (`python -m engine "
                          "runs` lists them; a dashboard started with another data folder keeps its runs there: add "
                          "--data-dir FOLDER.)")
    raise StudioError(f"No run '{run}' in {data_dir}: give a run id (see `python -m engine runs`; the dashboard's "
                      "Results page shows this command with it), the end or any part of one, or a run folder. A "
                      "dashboard started with another data folder (STUDIO_DATA_DIR) keeps its runs there: add "
                      "--data-dir FOLDER.")


def _closest_ids(run: str, ids: list[str]) -> list[str]:
    """The run ids (at most two) whose whole or end (as long as `run`) is closest to `run` (difflib, ratio 0.7 or
    more), for a mistyped id: "5cd3o5" -> the id ending "5cd305"."""
    if not run:
        return []
    ends = {i[-len(run):]: i for i in ids}
    return [ends[e] for e in difflib.get_close_matches(run, list(ends), n=2, cutoff=0.7)]


DEFAULT_PREDICTIONS = "predictions.csv"  # predict's CSV without --out, in the current folder


def default_predictions_path(folder: Path) -> Path:
    """predict's CSV without --out: predictions.csv in `folder`, or, where a file of that name is there already (an
    earlier predict's, or the user's own), the first free "predictions-2.csv", "predictions-3.csv", ...: a file
    that was not named is never replaced. An --out given by name replaces its file, and says so."""
    path = folder / DEFAULT_PREDICTIONS
    n = 1
    while path.exists():
        n += 1
        path = folder / f"{Path(DEFAULT_PREDICTIONS).stem}-{n}{Path(DEFAULT_PREDICTIONS).suffix}"
    return path


def _predict_sources(args: argparse.Namespace) -> list[Path]:
    """predict's images: --data and the bare IMAGES arguments, checked (engine.predict.check_sources) before any
    model loads. Raises StudioError for none, a missing path, or a folder or zip among several."""
    sources = [Path(a) for a in ([args.data] if args.data else []) + list(args.images)]
    if not sources:
        raise StudioError(f"Give the images to answer after the run: a folder or .zip of images, or image files "
                          f"(python -m engine predict --run {args.run} photo.jpg).")
    for source in sources:
        if not source.exists():
            raise StudioError(missing_words(source))
    check_sources(sources)
    return sources


def missing_words(path: Path) -> str:
    """What a path that is not there is told: the closest names in its folder (a typo: "new_circel.png"), or that
    a shell pattern matched nothing ("*.jpeg", passed on as typed)."""
    said = f"Could not find '{path}'"
    if any(c in path.name for c in "*?["):
        return f"{said}: no file in {path.parent} matches {path.name} (the shell passed the pattern on as typed)."
    try:
        names = [p.name for p in path.parent.iterdir()] if path.parent.is_dir() else []
    except OSError:
        names = []
    close = difflib.get_close_matches(path.name, names, n=3, cutoff=0.75)
    if close:
        return f"{said}. Did you mean {' or '.join(repr(str(path.parent / c)) for c in close)}?"
    return said + ("." if path.parent.is_dir() else f": its folder {path.parent} does not exist either.")


def _predict(args: argparse.Namespace) -> int:
    """Predict a folder or zip of images, or image files, with a finished run; CSV out, accuracy when folders
    name classes."""
    data_dir = Path(args.data_dir)
    run_dir, run_id = _run_folder(args.run, data_dir)
    sources = _predict_sources(args)
    source = sources[0] if len(sources) == 1 else sources
    shown = str(source) if len(sources) == 1 else plural(len(sources), "file")
    if args.top_k < 1 or args.batch_size < 1:
        raise StudioError("--top-k and --batch-size must be at least 1.")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise StudioError(f"--threshold is a probability between 0 and 1 (got {args.threshold:g}).")
    out_path = Path(args.out) if args.out else default_predictions_path(Path.cwd())
    _check_csv_out(out_path)
    _check_alpha(args, run_dir)
    alpha = args.alpha if args.alpha is not None or args.variant != "wise" else _stored_alpha(run_id, data_dir)
    predictor = load_predictor(run_dir, args.variant, alpha, data_dir / DATASETS_FOLDER, args.device)
    # the precision too: its answers differ from the exported float32 files' by about a point where it is bfloat16
    amp = (f" in {str(predictor.amp_dtype).removeprefix('torch.')}"
           + (" as the run was evaluated" if predictor.as_evaluated else "") + " (the exported files: float32)"
           if predictor.amp_dtype is not None else "")
    print(f"model: {predictor.label} on {predictor.device}{amp}; classes: {', '.join(predictor.classes)}", flush=True)
    _say_stopped(run_dir, run_id, data_dir)
    summary = run_summary(run_dir, stopped_ok=args.variant == "best")
    caution = model_caution(summary, args.variant, predictor.alpha)  # as Try it warns for its pick
    if caution:
        print(f"warning: {caution}", file=sys.stderr, flush=True)
    oversure = oversure_words(summary) if own_figures(args.variant, predictor.alpha) else None
    if oversure:  # Try it says it under each sure answer; a CSV's reader once, here
        print(f"note: {oversure}", file=sys.stderr, flush=True)
    if predictor.familiarity_note():
        print(predictor.familiarity_note(), flush=True)
    # a bar on a terminal only: in a file its redraws share lines with what stdout prints
    with tqdm(total=0, unit="img", desc="predicting", disable=args.quiet or not sys.stderr.isatty(),
              dynamic_ncols=True, delay=0.5) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        # delay: no bar for a prediction over in half a second (a few images, or none readable)
        result = predict_folder(predictor, source, data_dir / DATASETS_FOLDER, args.top_k, args.batch_size,
                                progress, args.threshold)
    top_k = min(args.top_k, len(predictor.classes))
    n = len(result.rows)
    if not n:  # nothing could be read: say why, write no empty CSV, and fail like any bad input
        print(f"error: no readable image in {shown}", file=sys.stderr)
        for s in result.skipped:
            print(f"  {s.path}: {s.reason}", file=sys.stderr)
        return 1
    replaced = out_path.is_file()  # said: a second predict with the same --out replaced the first one's CSV
    out = write_csv(result, out_path, top_k)
    # without --out an earlier predictions.csv is kept beside the new file: said, with how to name the file
    kept = "" if args.out or out_path.name == DEFAULT_PREDICTIONS else \
        f" ({DEFAULT_PREDICTIONS} was there already and is kept; --out FILE names the file)"
    took = f"{result.seconds:.1f} s" if result.seconds >= 0.95 else f"{1000 * result.seconds:.0f} ms"  # not "0.0s"
    print(f"{plural(n, 'image')} predicted in {took} ({result.images_per_sec:.1f} img/s); "
          f"answers flagged: {result.flag_words()}; predictions: {out}"
          + (" (it replaced the file of that name)" if replaced else kept))
    if result.skipped:
        print(f"{plural(len(result.skipped), 'file')} skipped:")
        for s in result.skipped:
            print(f"  {s.path}: {s.reason}")
    if result.unknown_folders:
        print("folders that are not classes of this run (no accuracy for their images): "
              + ", ".join(unknown_folder_words(f, predictor.classes) for f in result.unknown_folders))
    _say_answers(result, summary, predictor, top_k)
    _say_batch_figures(result, summary, args, predictor, sources)
    return 0


def _say_answers(result, summary: dict, predictor, top_k: int) -> None:
    """`predict`'s answers for FEW_ANSWERS images or fewer, each with the notes Try it gives under it (a picture
    several times the training pictures' size, a file of several pages); for more, those notes once for the batch
    (the answers are in the CSV alone). `result`: engine.predict.FolderResult."""
    n = len(result.rows)
    if n <= FEW_ANSWERS:  # a few images: their answers here, not only in the CSV
        # headed: under "3 files skipped:" the answers, at the same indent, read as more skipped files
        print(f"{'the answer' if n == 1 else 'answers'} (top {top_k}):")
        for r in result.rows:
            # as Try it's bars: a decimal where a whole percent would read as the unsure bar ("50%" beside "49.9%")
            top = ", ".join(f"{c} {percent(p, predictor.low_confidence)}" for c, p in r["top"][:top_k])
            print(f"  {r['path']}: {top}" + (f"  [{r['why']}]" if r["why"] else ""))  # [], as the flag has parentheses
            if scale := scale_words(r.get("size"), run_picture_shape(summary)):  # as Try it says under it
                print(f"    note: {scale}")
            if r.get("pages", 1) > 1:
                print(f"    note: {first_page_words(r['pages'])}")
    else:  # the answers are in the CSV only: what the lines under them would have said, once for the batch
        if scale := batch_scale_words(result.rows, [r["path"] for r in result.rows], run_picture_shape(summary)):
            print(f"note: {scale}")
        if many := [r["path"] for r in result.rows if r.get("pages", 1) > 1]:
            print(f"note: {plural(len(many), 'file')} of several pictures, of which the first was answered (the CSV's "
                  f"note says so): {first_and_more(many, 3)}")


def _say_batch_figures(result, summary: dict, args: argparse.Namespace, predictor, sources: list[Path]) -> None:
    """`predict`'s closing lines for a batch (`result`: engine.predict.FolderResult): the note on the run's own
    images, the run's figures on the kind of picture (greyscale or colour) it is weaker on where some of the batch
    are of it and the figures are the model's own (engine.predict.own_figures), the classes it learnt from few
    training pictures (engine.chance.few_training_words), and accuracy with its confusion matrix where folders
    name the classes."""
    m, own = result.metrics(), result.own_note()
    if own:
        print(f"note: {own}")
    kind = pictures_kind_words(summary, [r["greyscale"] for r in result.rows]) \
        if own_figures(args.variant, predictor.alpha) else None
    if kind:
        print(f"note: {kind}")
    if learnt := few_training_words(summary):  # as Try it says under a first answer
        print(f"note: {learnt}")
    if m is not None:
        print(f"accuracy {100 * m['accuracy']:.1f}%  balanced accuracy {100 * m['balanced_accuracy']:.1f}%  "
              f"({m['labelled']} images in class folders)")
        if not own and _same_file(sources[0], predictor.cfg.data.source):  # its dataset could not be read
            print("note: these are the run's own data, its training images included: this accuracy is not a test "
                  "of the model (the run's summary has its accuracy on the images it held out)")
        fair = result.metrics(without_training=True)
        if fair is not None and fair["labelled"] < m["labelled"]:
            print(f"without the run's training images: accuracy {100 * fair['accuracy']:.1f}%  balanced accuracy "
                  f"{100 * fair['balanced_accuracy']:.1f}%  ({fair['labelled']} images)")
        _print_confusion(predictor.classes, m["confusion"])
        wrong = result.sure_mistakes()
        if sure := sure_mistakes_words(wrong, [r["path"] for r in wrong]):  # the paths each answer line gives
            print(f"note: {sure}")


FEW_ANSWERS = 10  # predict prints each answer for this many images or fewer


def _print_confusion(classes: list[str], confusion: list[list[int]]) -> None:
    """The confusion matrix as text, every class name whole (rows: true class, columns: predicted)."""
    width = max(len(c) for c in classes)
    col = max(8, width)
    print("confusion matrix (rows: true class, columns: predicted)")
    print(" " * width + "  " + " ".join(f"{c:>{col}s}" for c in classes))
    for c, row in zip(classes, confusion):
        print(f"{c:>{width}s}  " + " ".join(f"{v:{col}d}" for v in row))


def _same_file(path: Path, source: str) -> bool:
    """Whether `path` holds a run's dataset `source` (a zip or folder path, or an upload reference
    upload:<sha256>): the same file or folder, or a file with the same bytes (SHA-256, hashlib; for an
    upload only `path` is hashed, against the reference). False when either cannot be read."""
    import hashlib

    def digest(f: Path) -> str:
        with open(f, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()

    try:
        if upload_sha(source):
            return path.is_file() and digest(path) == upload_sha(source)
        other = resolve_path(source)
        if path.exists() and other.exists() and os.path.samefile(path, other):
            return True
        if not (path.is_file() and other.is_file()) or path.stat().st_size != other.stat().st_size:
            return False
        return digest(path) == digest(other)
    except (StudioError, OSError):
        return False


DATA_DIR_HELP = ("the engine's folder: run store, runs, uploads and extracted data (default: $STUDIO_DATA_DIR, "
                 "else runs/ in the project: the dashboard's)")


def _runs_parser(sub) -> None:
    """The `runs` command's arguments (build_parser's `sub`: its subparsers)."""
    r = sub.add_parser("runs", help="list runs (or give them to a signed-in user: --give-to)")
    r.add_argument("--data-dir", help=DATA_DIR_HELP)
    r.add_argument("--give-to", metavar="NAME", help="make NAME the owner of the runs no one owns (made before the "
                   "dashboard's sign-in was on, or from the command line), or of those given with --run, so that NAME "
                   "sees and controls them on a studio with sign-in")
    r.add_argument("--run", action="append", help="a run id (or its end) to list, or with --give-to to give; repeat "
                                                   "for more")
    r.set_defaults(func=_runs)


def _field_help(section: str, name: str, extra: str = "") -> str:
    """A train flag's help: the config field's own help text (its metadata, as the dashboard shows it),
    `extra`, and its default. argparse reads % as a format: it is doubled."""
    from dataclasses import fields

    from engine.config import RunConfig

    f = {f.name: f for f in fields(type(getattr(RunConfig(), section)))}[name]
    said = f"{f.metadata.get('help', '')}{extra} Default: {f.default}."
    return said.replace("%", "%%").strip()


def build_parser() -> argparse.ArgumentParser:
    """The `python -m engine` argument parser: train, inspect, predict, export, runs, presets, backbones and the
    other commands, each with its flags and help. Raises nothing."""
    p = argparse.ArgumentParser(prog="python -m engine", description="Fine-tuning studio engine")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one run in the foreground")
    t.add_argument("--config", help="a run config YAML (e.g. a run's config.yaml)")
    t.add_argument("--preset", help="start from a preset (python -m engine presets lists them); "
                   "the flags below and --set override it")
    t.add_argument("--data", help="a .zip of class folders or a folder")
    t.add_argument("--backbone", help=_field_help("backbone", "name", f" One of: {', '.join(BACKBONES)}."))
    t.add_argument("--pretrained", help="bundled | imagenet | none | checkpoint")
    t.add_argument("--checkpoint", help="weights to start from: safetensors or a torch.save file "
                   "(.pt, .pth, .pth.tar, .bin, .ckpt; read by content, with weights_only=True)")
    t.add_argument("--epochs", type=int, help=_field_help("train", "epochs"))
    t.add_argument("--image-size", type=int, help=_field_help("data", "image_size", " In pixels."))
    t.add_argument("--batch-size", type=int, help=_field_help("train", "batch_size"))
    t.add_argument("--lr", type=str, help=_field_help("optim", "lr", " --set optim.lr_auto=true finds it with a range test."))
    t.add_argument("--seed", type=int, help="the random seed: the split, the head and the order of images")
    t.add_argument("--name", help="the run's name in the run list and on the dashboard")
    t.add_argument("--device", help=_field_help("train", "device"))
    t.add_argument("--out", help="the run folder (default: <data-dir>/runs/<run id>)")
    t.add_argument("--data-dir", help=DATA_DIR_HELP)
    t.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE", help="override any config field")
    t.add_argument("--quiet", action="store_true")
    t.add_argument("--resume", metavar="RUN", help="continue a stopped or interrupted run (a run id, see `runs`, "
                   "or its folder) from its last finished epoch (its own settings, optimiser and schedule state)")
    t.add_argument("--run-id", help=argparse.SUPPRESS)  # set by the engine when it supervises a torchrun job
    t.set_defaults(func=_train)
    ins = sub.add_parser("inspect", help="show what the studio makes of a dataset, without training")
    ins.add_argument("--data", help="a .zip or a folder (default: the config's data.source)")
    ins.add_argument("--config", help="a run config YAML: its data section and seed are used")
    ins.add_argument("--json", action="store_true", help="print the report as JSON")
    ins.add_argument("--image-size", type=int, help="decode size (default: the config's; the split does not depend on it)")
    ins.add_argument("--seed", type=int)
    ins.add_argument("--val-fraction", type=float)
    ins.add_argument("--test-fraction", type=float)
    ins.add_argument("--min-images-per-class", type=int)
    ins.add_argument("--drop-duplicates", action="store_true", help="keep one image per duplicate group")
    ins.add_argument("--files", action="store_true", help="list each split's files too")
    ins.add_argument("--data-dir", help=DATA_DIR_HELP)
    ins.set_defaults(func=_inspect)
    _runs_parser(sub)
    b = sub.add_parser("backbones", help="list registered backbones")
    b.set_defaults(func=_backbones)
    m = sub.add_parser("methods", help="list registered fine-tuning methods")
    m.set_defaults(func=_methods)
    pr = sub.add_parser("predict", help="predict images with a finished run: a folder or zip of them, or image files",
                        usage="%(prog)s --run RUN [options] IMAGES [IMAGES ...]")
    pr.add_argument("--run", required=True, help="a run id (see `runs`) or a run folder")
    pr.add_argument("images", nargs="*", metavar="IMAGES",
                    help="a folder or .zip of images (class folders give accuracy), or one or more image files")
    pr.add_argument("--data", help="the same as IMAGES, for one folder, zip or image")
    _variant_arg(pr, VARIANTS)
    pr.add_argument("--alpha", type=float, help="WiSE-FT alpha for --variant wise (default: the run's chosen alpha)")
    pr.add_argument("--out", default=None,
                    help="the CSV to write, replaced if it exists (default: predictions.csv in the current folder, or "
                         "predictions-2.csv, -3, ... beside an earlier one, which is kept)")
    pr.add_argument("--top-k", type=int, default=3, help="how many classes to give per image, most likely first "
                                                         "(default 3)")
    pr.add_argument("--batch-size", type=int, default=64,
                    help="images per forward pass (default 64; smaller needs less memory)")
    pr.add_argument("--threshold", type=float, help="flag answers whose top probability is under this (default 0.5)")
    pr.add_argument("--device", help="cpu, cuda, ... (default: the run's device)")
    pr.add_argument("--data-dir", help=DATA_DIR_HELP)
    pr.add_argument("--quiet", action="store_true", help="no progress bar")
    pr.set_defaults(func=_predict)
    ex = sub.add_parser("export", help="export a finished run's model (safetensors, TorchScript, ONNX), each "
                        "file checked, with a model card")
    ex.add_argument("--run", required=True, help="a run id (see `runs`) or a run folder")
    _variant_arg(ex, EXPORT_VARIANTS)
    ex.add_argument("--alpha", type=float, help="WiSE-FT alpha for --variant wise")
    ex.add_argument("--out", help="the folder to write (default: the run's exports/ folder, where the dashboard "
                                  "offers them too; files in it are replaced)")
    ex.add_argument("--data-dir", help=DATA_DIR_HELP)
    ex.set_defaults(func=_export)
    ps = sub.add_parser("presets", help="list the presets (the dashboard's too) and what each sets")
    ps.set_defaults(func=_presets)
    pre = sub.add_parser("pretrain", help="pretrain a backbone on formula-driven images", add_help=False)
    pre.set_defaults(func=None)
    return p


class QuietWhenClosed:
    """A text stream (stdout) that goes quiet instead of raising when its reader has gone: `train ... | head`
    closed the pipe after a few lines and the next progress line's BrokenPipeError ended a new user's run as
    failed. The run goes on, its lines unread; for the process's own stdout the descriptor is pointed at the
    null device, so the interpreter's last flush at exit does not complain (Python's documented way)."""

    def __init__(self, stream):
        self._stream, self.closed_by_reader = stream, False

    def _gone(self) -> None:
        self.closed_by_reader = True
        if self._stream is sys.__stdout__:
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())

    def write(self, text: str) -> int:
        """Write `text` unless the reader has gone; returns its length either way."""
        if not self.closed_by_reader:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._gone()
        return len(text)

    def flush(self) -> None:
        """Flush unless the reader has gone."""
        if not self.closed_by_reader:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._gone()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """`parser`'s arguments of `argv`; for `predict`, images after its options too (`predict --run R a.png --out
    x.csv b.png`: argparse takes only the images before the options, so a shell glob split by them was refused).
    Anything else left over is refused as argparse refuses it (SystemExit 2)."""
    _refuse_mistyped(parser, argv)
    args, extra = parser.parse_known_args(argv)
    if extra and getattr(args, "func", None) is _predict and not any(e.startswith("-") for e in extra):
        args.images = [*args.images, *extra]
    elif extra:
        _refuse_unknown(parser, argv, extra)
    return args


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """`parser`'s commands by name ({} without any)."""
    return next((a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), {})


def _options(command: argparse.ArgumentParser) -> list[str]:
    """Every option string a command's parser knows ("--run", "-h", ...)."""
    return [o for a in command._actions for o in a.option_strings]


def _refuse_mistyped(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """Before argparse reads `argv`: a mistyped command gets its closest name ("predcit": did you mean predict?),
    and a command's unknown options are refused by `_refuse_unknown` with their closest names before argparse
    stops at a required option they were meant to be (`predict --rn ID` read "the following arguments are
    required: --run"). An option argparse would take as an abbreviation passes. SystemExit 2 when refused."""
    subs = _commands(parser)
    if not argv or argv[0].startswith("-") or argv[0] == "pretrain":
        return
    sub = subs.get(argv[0])
    if sub is None:
        close = difflib.get_close_matches(argv[0], list(subs), n=1, cutoff=0.6)
        parser.error(f"unknown command '{argv[0]}'" + (f": did you mean {close[0]}?" if close else ".")
                     + " `python -m engine --help` lists the commands.")
    known = _options(sub)
    unknown = []
    for i, a in enumerate(argv[1:], 1):  # each with its value, as argparse lists them ("--tpo-k 2")
        if a == "--":  # what follows is arguments, not options (`predict --run R -- --odd.png`)
            break
        if a.startswith("--") and len(a) > 2 and not any(k.startswith(a.split("=", 1)[0]) for k in known):
            value = argv[i + 1] if "=" not in a and i + 1 < len(argv) and not argv[i + 1].startswith("-") else None
            unknown += [a] + ([value] if value is not None else [])
    if unknown:
        _refuse_unknown(parser, argv, unknown)


def _refuse_unknown(parser: argparse.ArgumentParser, argv: list[str], extra: list[str]) -> None:
    """Refuse arguments `extra` that `parser` does not know, as argparse does (SystemExit 2), with the command's own
    usage and, for a mistyped option, its closest name (difflib): a student's `train --image_size 128` got the
    top-level usage and no word of `--image-size`."""
    sub = _commands(parser).get(argv[0]) if argv else None
    if sub is None:
        parser.parse_args(argv)  # its own message and exit code
        return
    known = _options(sub)
    hints = []
    for e in (e for e in extra if e.startswith("--")):
        close = difflib.get_close_matches(e.split("=", 1)[0].replace("_", "-"), known, n=1, cutoff=0.6)
        if close:
            hints.append(f"{e.split('=', 1)[0]}: did you mean {close[0]}?")
    sub.error(f"unrecognized arguments: {' '.join(extra)}" + (f" ({'; '.join(hints)})" if hints else "")
              + f". `python -m engine {argv[0]} --help` lists its options.")


def main(argv: list[str] | None = None) -> int:
    """Run the command in `argv` (default: sys.argv[1:]) and return the process exit code (0 on success). A
    StudioError is printed as a plain message with exit code 2, never a traceback; Ctrl+C during `train` stops
    the run (exit code 130) and says how to continue it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "pretrain":
        from tools.pretrain import main as pretrain_main  # an asset builder above the engine: loaded on demand

        return pretrain_main(argv[1:])
    args = _parse(build_parser(), argv)
    if getattr(args, "data_dir", "given") is None:
        args.data_dir = str(default_data_dir())  # the dashboard's folder: one store for both
    if getattr(args, "data_dir", None):  # configs and runs name uploads as upload:<sha256>: found in its uploads
        register_upload_dir(Path(args.data_dir) / "uploads")
    fit_threads_to_cpus()  # a container's CPU quota or a taskset: no more torch threads than CPUs to run them
    stdout, sys.stdout = sys.stdout, QuietWhenClosed(sys.stdout)  # `train ... | head`: the run outlives its reader
    try:
        return args.func(args)
    except StudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if getattr(exc, "skipped", None):
            _print_skipped(exc.skipped, sys.stderr)
        return 2
    finally:
        sys.stdout = stdout
