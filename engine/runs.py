"""The one loader of a finished run and its model variants, shared by explanations, exports,
WiSE-FT's alpha slider, Try-it and predict.

A run folder holds `config.yaml`, `summary.json`, `last.safetensors` (the fine-tuned model) and
`best.safetensors` (its best validation epoch), and what its methods saved: `theta0.safetensors`
(WiSE-FT's starting model), `masks.safetensors` (pruning), `structured.safetensors` (the
channel-pruned model). Checkpoints are state dicts with the run config in their metadata
(engine.checkpoints); a model is rebuilt from the config (architecture, classes, structural
methods) without any pretrained download, and its state dict must match key for key.

Variants (`FinishedRun.model(variant, alpha)`):
- "fine_tuned": the model at the end of training (last.safetensors);
- "best": the epoch with the best validation accuracy (best.safetensors);
- "wise": theta_alpha = (1 - alpha) * theta_0 + alpha * theta_1 (Wortsman et al. 2021);
- "structured": the channel-pruned network (Torch-Pruning), smaller and faster;
- "adversarial": the fine-tuned model of a run trained with adversarial fine-tuning (the robust one);
- "start": the starting point with this run's head: theta_0 for WiSE-FT runs, else the pretrained
  backbone (its new head random, so only attributions of its features are meaningful).
"""

from __future__ import annotations

import functools
import json
import threading
from collections import OrderedDict
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.backbones import BACKBONES, Classifier, build_model
from engine.checkpoints import load_checkpoint, read_metadata, save_checkpoint
from engine.config import RunConfig
from engine.data import DataSplits, normalise_class_name
from engine.errors import StudioError
from engine.evaluate import EvalSets, held_out_accuracy
from engine.methods import restructure_model
from engine.methods.wise_ft import curve_sets, evaluate_alpha, interpolate_state, recalibrate_bn
from engine.run_data import load_user_ood, prepare_data
from engine.structured import rebuild

VARIANTS = {
    "fine_tuned": "Fine-tuned (end of training)",
    "best": "Best epoch (highest validation accuracy; on a tie, lowest validation loss)",
    "wise": "WiSE-FT mix at alpha",
    "structured": "Smaller (channel-pruned, faster)",
    "adversarial": "Adversarially fine-tuned",
    "start": "Starting model (before fine-tuning)",
}


def stopped_with_best(run_dir: Path) -> bool:
    """Whether the run in `run_dir` was stopped (its summary says so) after keeping a best-epoch checkpoint:
    its model so far is best.safetensors, there is no end-of-training model yet."""
    path = Path(run_dir) / "summary.json"
    try:
        stopped = json.loads(path.read_text()).get("status") == "stopped"
    except (OSError, ValueError):
        return False
    return stopped and (Path(run_dir) / "best.safetensors").is_file()


def default_variant(run_dir: Path) -> str:
    """The model a run answers with unless another is asked for, in the dashboard (Try it) and the CLI
    (`predict`, `export` without --variant): a stopped run's best epoch so far ("best"; it has no other);
    a WiSE-FT run's mix ("wise", at the run's chosen alpha), since the paper's point is that the mix is the
    model to use; else "fine_tuned"."""
    if stopped_with_best(run_dir):
        return "best"
    return "wise" if (Path(run_dir) / "theta0.safetensors").is_file() else "fine_tuned"


def run_classes(run_dir: Path) -> list[str]:
    """The run's class names, in label order, from its summary. Raises StudioError when the run
    has not finished (no summary with classes)."""
    summary = Path(run_dir) / "summary.json"
    if summary.is_file():
        classes = json.loads(summary.read_text()).get("classes")
        if classes:
            return [normalise_class_name(c) for c in classes]  # runs from before names were NFC
        if stopped_with_best(run_dir):  # stopped from the command line: the summary has its status and epochs only
            classes = json.loads(read_metadata(Path(run_dir) / "best.safetensors").get("classes") or "[]")
            if classes:
                return [normalise_class_name(c) for c in classes]
    raise StudioError(f"The run in {run_dir} has no finished summary (no class list): it cannot be loaded.")


def model_from_state(cfg: RunConfig, num_classes: int, state: dict[str, torch.Tensor]) -> Classifier:
    """The run's architecture with `state` loaded strictly, in eval mode on the CPU. Raises
    StudioError when a tensor is missing or unexpected."""
    model, _ = build_model(cfg.backbone.name, num_classes, "none", initialise=False)  # every tensor loaded below
    model = restructure_model(model, cfg)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise StudioError(
            "This checkpoint does not fit the run's model "
            f"(missing {len(missing)} tensors, e.g. {missing[:2]}; unexpected {len(unexpected)}, e.g. {unexpected[:2]})."
        )
    return model.eval()


def load_run_model(run_dir: Path, checkpoint: str = "last") -> tuple[Classifier, RunConfig, list[str]]:
    """(model in eval mode on the CPU, its config, class names) from `<checkpoint>.safetensors`.
    Raises StudioError when the file is missing or does not fit."""
    path = Path(run_dir) / f"{checkpoint}.safetensors"
    if not path.is_file():
        raise StudioError(f"The run has no {checkpoint} checkpoint ({path.name} is missing).")
    state, meta = load_checkpoint(path)
    cfg = RunConfig.from_dict(meta["config"])
    classes = run_classes(run_dir)
    return model_from_state(cfg, len(classes), state), cfg, classes


def has_variant(run_dir: Path, cfg: RunConfig, variant: str) -> bool:
    """Whether the run in `run_dir`, trained with `cfg`, can give `variant` (a VARIANTS key or "start"): its
    files exist (best.safetensors, theta0.safetensors, structured.safetensors), or it was trained adversarially."""
    if variant == "adversarial":
        return "adversarial" in cfg.enabled_methods()
    files = {"best": "best.safetensors", "wise": "theta0.safetensors", "structured": "structured.safetensors"}
    return variant in ("fine_tuned", "start") or (Path(run_dir) / files.get(variant, "-")).is_file()


def run_config(run_dir: Path) -> RunConfig:
    """The config of the finished run in `run_dir`, from its checkpoint's header alone (no model is built: what
    `load_run` would load, last.safetensors, else a stopped run's best.safetensors). Raises StudioError, as
    `load_run` does, for a run without a finished summary or checkpoint, or an unreadable one."""
    run_classes(run_dir)  # a run that never finished says so, as load_run would
    weights = "last" if (Path(run_dir) / "last.safetensors").is_file() else "best"
    path = Path(run_dir) / f"{weights}.safetensors"
    if not path.is_file():
        raise StudioError(f"The run has no {weights} checkpoint ({path.name} is missing).")
    st = path.stat()
    return _header_config(str(path.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=64)
def _header_config(path: str, mtime_ns: int, size: int) -> RunConfig:
    """`run_config`'s parse of one checkpoint file's header, cached while the file stays as it is (a page redraw
    asks again and again; a continued run rewrites the file)."""
    try:
        return RunConfig.from_dict(json.loads(read_metadata(Path(path))["config"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise StudioError(f"{Path(path).name} is not a readable checkpoint ({exc}).") from None


def load_structured(path: Path) -> tuple[nn.Module, RunConfig, dict]:
    """(the channel-pruned model in eval mode on the CPU, its run config, the checkpoint's metadata).
    Raises StudioError for a file that is not a structured-pruning checkpoint or does not fit."""
    state, meta = load_checkpoint(Path(path))
    if "structured_arch" not in meta:
        raise StudioError(f"{Path(path).name} is not a structured-pruning checkpoint (no layer shapes in it).")
    cfg = RunConfig.from_dict(meta["config"])
    head_key = f"net.{BACKBONES[cfg.backbone.name].head_attr}.weight"
    num_classes = state[head_key].shape[0] if head_key in state else int(meta.get("num_classes", 0))
    model, _ = build_model(cfg.backbone.name, num_classes, "none", initialise=False)  # every tensor loaded below
    model = rebuild(restructure_model(model, cfg), meta["structured_arch"])
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise StudioError(f"The structured checkpoint does not fit its rebuilt model (missing {missing[:2]}, "
                          f"unexpected {unexpected[:2]}).")
    return model.eval(), cfg, meta


def start_model(cfg: RunConfig, classes: list[str]) -> nn.Module:
    """The run's starting point as training began: its pretrained (or checkpoint) backbone with the new
    head drawn as the run drew it (the global RNG seeded with the run's seed right before building, as
    engine.train does; the caller's RNG is left as it was). The same head in every process: Explain's
    "starting model" answered "grid (19%)" before a restart and "zigzagged (24%)" after it. In eval mode.
    Raises StudioError when the starting weights cannot be read (a checkpoint since deleted, ImageNet
    weights offline)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model, _ = build_model(cfg.backbone.name, len(classes), cfg.backbone.pretrained, cfg.backbone.checkpoint,
                               classes=list(classes))
    return model.eval()


class FinishedRun:
    """A finished run, loaded once: config, classes, summary, its data (decoded on first use) and
    its model variants. `lock` serialises use of the shared models across dashboard sessions. `weights` is the
    checkpoint `model` came from: "last", or "best" for a stopped run (its best epoch so far)."""

    def __init__(self, run_dir: Path, datasets_dir: Path | None):
        self.run_dir, self.datasets_dir = Path(run_dir), datasets_dir and Path(datasets_dir)
        # the fine-tuned model; a stopped run has only its best epoch
        self.weights = "last" if (self.run_dir / "last.safetensors").is_file() else "best"
        self.model, self.cfg, self.classes = load_run_model(self.run_dir, self.weights)
        self.summary = json.loads((self.run_dir / "summary.json").read_text())
        self.lock = threading.Lock()
        self._variants: dict[tuple[str, float | None], nn.Module] = {}

    @cached_property
    def data(self) -> DataSplits:
        """The run's splits, decoded exactly as in training (same source, size, seed). Raises
        StudioError when the loader was given no datasets folder or the dataset is gone."""
        if self.datasets_dir is None:
            raise StudioError("This needs the run's training images, and no dataset folder was given.")
        return prepare_data(self.cfg, self.datasets_dir)

    def has(self, variant: str) -> bool:
        """Whether this run can give `variant` (its files exist)."""
        return has_variant(self.run_dir, self.cfg, variant)

    def model_variant(self, variant: str = "fine_tuned", alpha: float | None = None) -> nn.Module:
        """The model `variant` (see the module docstring) in eval mode on the CPU, cached per run.
        `alpha` in [0, 1] is WiSE-FT's mixing weight (the alpha chosen for the run is kept in the run
        store: engine.store). Raises StudioError for a variant this run does not have."""
        if variant not in VARIANTS:
            raise StudioError(f"Unknown model variant `{variant}`: choose one of {', '.join(VARIANTS)}.")
        if not self.has(variant):
            raise StudioError(f"This run has no {VARIANTS[variant].lower()} model.")
        if variant == "wise":
            if alpha is None or not 0.0 <= float(alpha) <= 1.0:
                raise StudioError(f"The WiSE-FT alpha must be between 0 and 1 (got {alpha}).")
            alpha = float(alpha)
        key = (variant, alpha if variant == "wise" else None)
        if key not in self._variants:
            self._variants[key] = self._build(variant, alpha)
            while len(self._variants) > 6:  # a few alphas and variants; each is a whole model
                self._variants.pop(next(iter(self._variants)))
        return self._variants[key]

    def _build(self, variant: str, alpha: float | None) -> nn.Module:
        if variant in ("fine_tuned", "adversarial"):
            return self.model
        if variant == "best":  # a stopped run's model is its best epoch already: not loaded twice
            return self.model if self.weights == "best" else load_run_model(self.run_dir, "best")[0]
        if variant == "structured":
            return load_structured(self.run_dir / "structured.safetensors")[0]
        if variant == "start":
            if (self.run_dir / "theta0.safetensors").is_file():
                return model_from_state(self.cfg, len(self.classes), self.wise_states()[0])
            return start_model(self.cfg, list(self.classes))
        theta_0, theta_1, masks = self.wise_states()
        model = model_from_state(self.cfg, len(self.classes), interpolate_state(theta_0, theta_1, alpha, masks))
        if self.cfg.methods["wise_ft"].recalibrate_bn and 0.0 < alpha < 1.0:  # the ends are the saved models
            recalibrate_bn(model, self.data.train.images, torch.device("cpu"))
        return model.eval()

    # -- WiSE-FT after the run: any alpha on demand ----------------------------------------------
    @cached_property
    def _wise(self) -> tuple[dict, dict, dict | None]:
        if not (self.run_dir / "theta0.safetensors").is_file():
            raise StudioError("This run has no WiSE-FT starting model: run it with WiSE-FT switched on.")
        theta_0 = load_checkpoint(self.run_dir / "theta0.safetensors")[0]
        theta_1 = load_checkpoint(self.run_dir / "last.safetensors")[0]
        masks_path = self.run_dir / "masks.safetensors"
        return theta_0, theta_1, load_checkpoint(masks_path)[0] if masks_path.is_file() else None

    def wise_states(self) -> tuple[dict, dict, dict | None]:
        """(theta_0, theta_1, pruning masks or None) as state dicts on the CPU."""
        return self._wise

    @cached_property
    def curve_sets(self) -> EvalSets:
        """The sets the run's WiSE-FT curve was measured on (same subset, same seed)."""
        return curve_sets(self.cfg, self.data, load_user_ood(self.cfg, self.datasets_dir, self.data.classes))

    def wise_point(self, alpha: float) -> dict[str, Any]:
        """The curve's numbers at any alpha, computed now on the CPU (the dashboard's slider)."""
        theta_0, theta_1, masks = self.wise_states()
        bn = self.data.train.images if self.cfg.methods["wise_ft"].recalibrate_bn else None
        with self.lock:
            return evaluate_alpha(self._probe, theta_0, theta_1, float(alpha), self.curve_sets, torch.device("cpu"),
                                  masks, bn)

    @cached_property
    def _probe(self) -> nn.Module:
        """A model of the run's architecture that `wise_point` loads each alpha into."""
        return model_from_state(self.cfg, len(self.classes), self.wise_states()[1])

    HELD_OUT_FILE = "wise_held_out.json"  # in the run folder: {"0.42": held_out_accuracy of that mix}

    def wise_held_out(self, alpha: float) -> dict[str, Any]:
        """The WiSE-FT mix at `alpha` (to two decimals, the slider's steps) on the run's validation and test
        images (engine.evaluate.held_out_accuracy: fractions, None for an empty split, and the image counts), as
        its model card reports it; measured once per alpha and kept in the run folder (HELD_OUT_FILE), so the
        test images are read for the mixes people use, not searched over. Raises StudioError as
        `model_variant` does."""
        key, path = f"{float(alpha):.2f}", self.run_dir / self.HELD_OUT_FILE
        try:
            kept = json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, ValueError):
            kept = {}  # unreadable: measured again and rewritten
        if isinstance(kept.get(key), dict):
            return kept[key]
        model = self.model_variant("wise", round(float(alpha), 2))
        with self.lock:
            kept[key] = held_out_accuracy(model, self.cfg, self.data)
        tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")  # one per thread: sessions may race
        tmp.write_text(json.dumps(kept, indent=1))
        tmp.replace(path)  # whole or not at all, for a second session reading it meanwhile
        return kept[key]

    def wise_card_summary(self, summary: dict[str, Any], alpha: float) -> dict[str, Any]:
        """`summary` for the model card of the mix at `alpha` (engine.export.wise_card_section): with
        "wise_alpha", and for an alpha between the curve's points its validation and OOD accuracy computed now
        (`wise_point`, "wise_point"), as the Results page shows them for it."""
        from engine.methods.wise_ft import curve_point

        out = dict(summary, wise_alpha=float(alpha))
        if curve_point(summary.get("wise_curve") or [], float(alpha)) is None:
            out["wise_point"] = self.wise_point(float(alpha))
        return out

    def export_wise(self, alpha: float, out_path: Path) -> Path:
        """Write theta_alpha (BN recalibrated when the run asked for it) as a safetensors state dict,
        with the run config, alpha and the class names in its metadata (a start that keeps its head)."""
        model = self.model_variant("wise", float(alpha))
        save_checkpoint(Path(out_path), model.state_dict(), self.cfg, {"alpha": float(alpha), "classes": list(self.classes)})
        return Path(out_path)


_RUNS: "OrderedDict[tuple, FinishedRun]" = OrderedDict()
_RUNS_LOCK = threading.Lock()


def summary_stamp(run_dir: Path) -> tuple[int, int] | None:
    """(modification time in ns, size in bytes) of the run's summary.json, None without one: it changes when a
    stopped run is continued (its summary is rewritten as it stops again or finishes), so what was loaded or
    computed from the run before is known to be another model's."""
    try:
        st = (Path(run_dir) / "summary.json").stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def load_run(run_dir: Path, datasets_dir: Path | None, keep: int = 3) -> FinishedRun:
    """The finished run in `run_dir` (or a stopped run's best epoch), from a small LRU (moving between images
    or alphas reloads nothing), loaded again once its summary changed (`summary_stamp`: a stopped run
    continued since); `datasets_dir` is where its dataset is extracted (None: variants and numbers that need
    the training images raise StudioError). Raises StudioError for a run that has not finished."""
    key = (str(Path(run_dir).resolve()), str(datasets_dir), summary_stamp(Path(run_dir)))
    with _RUNS_LOCK:
        if key in _RUNS:
            _RUNS.move_to_end(key)
            return _RUNS[key]
    run = FinishedRun(Path(run_dir), datasets_dir)
    with _RUNS_LOCK:
        _RUNS[key] = run
        while len(_RUNS) > keep:
            _RUNS.popitem(last=False)
    return run
