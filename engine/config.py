"""Run configuration: frozen dataclasses, one per concern, composed into one `RunConfig`.

The dashboard builds a `RunConfig` from its widgets, the CLI from a YAML file plus `--set`
overrides. A config is never mutated during a run and is saved beside every checkpoint, so
`python -m engine train --config <run>/config.yaml` reproduces a run.

Method sections (`adversarial`, `wise_ft`, `pruning`, ...) are not listed here: each method
registers its own config dataclass in `engine.methods`, and `RunConfig.methods` holds one
instance per registered method. In YAML they appear as top-level sections by method name.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field, fields, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping

import yaml

from engine.errors import StudioError

PROJECT_DIR = Path(__file__).resolve().parent.parent
ASSETS_DIR = PROJECT_DIR / "assets"
SAMPLE_DATASET = "assets/sample_textures.zip"  # relative to the project: configs stay portable


UPLOAD_PREFIX = "upload:"  # `upload:<sha256 of the file>`: an upload, wherever this server keeps its uploads
UPLOAD_SUFFIXES = (".zip", ".safetensors", ".pt", ".pth", ".bin")
_UPLOAD_DIRS: list[Path] = []  # filled by each Engine (and the CLI) with its own uploads folder


def register_upload_dir(folder: str | Path) -> None:
    """Look for `upload:<sha256>` sources in `folder` (an engine's uploads folder) too."""
    folder = Path(folder).resolve()
    if folder not in _UPLOAD_DIRS:
        _UPLOAD_DIRS.insert(0, folder)


def upload_ref(sha256: str) -> str:
    """The portable reference to uploaded bytes of this SHA-256 (64 hex digits) kept in configs."""
    return UPLOAD_PREFIX + sha256.lower()


def _resolve_upload(ref: str) -> Path:
    """Where the server keeps the upload `upload:<sha256>` (files are named by the hash's first 32
    digits, as Engine.save_upload writes them). Raises StudioError when it is not there (any more)."""
    import os
    import re

    digest = ref[len(UPLOAD_PREFIX):].strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise StudioError(f"`{ref}` is not a valid upload reference (upload: and 64 hexadecimal digits).")
    folders = list(_UPLOAD_DIRS)
    if os.environ.get("STUDIO_DATA_DIR"):
        folders.append(Path(os.environ["STUDIO_DATA_DIR"]).expanduser() / "uploads")
    folders.append(PROJECT_DIR / "runs" / "uploads")
    for folder in folders:
        for suffix in UPLOAD_SUFFIXES:
            candidate = folder / (digest[:32] + suffix)
            if candidate.is_file():
                return candidate
    raise StudioError("The uploaded file this run uses is no longer on this server (it was deleted). "
                      "Upload it again on the Data page.")


def resolve_path(p: str) -> Path:
    """A user path as given; a relative one that does not exist here is tried from the project root;
    `upload:<sha256>` is the upload of that content in this server's uploads folder (StudioError if gone)."""
    if p.startswith(UPLOAD_PREFIX):
        return _resolve_upload(p)
    path = Path(p).expanduser()
    if not path.is_absolute() and not path.exists() and (PROJECT_DIR / path).exists():
        return PROJECT_DIR / path
    return path


@dataclass(frozen=True)
class DataConfig:
    source: str = SAMPLE_DATASET  # a .zip of class folders, or a folder
    image_size: int = 64  # pixels, square; images are decoded once at this size
    val_fraction: float = 0.2  # of each class, stratified
    test_fraction: float = 0.2
    min_images_per_class: int = 5  # fewer cannot be split into train/val/test meaningfully
    ood_source: str = ""  # optional user OOD set with the same classes ("" = none)
    source_name: str = ""  # the user's own name for `source` (an upload's file name); shown instead of the reference
    ood_source_name: str = ""  # the user's own name for `ood_source`
    train_per_class: int = 0  # keep only this many training images per class (0 = all); for data-scarcity studies


@dataclass(frozen=True)
class BackboneConfig:
    name: str = "resnet18"  # a key of engine.backbones.BACKBONES
    pretrained: str = "bundled"  # bundled | imagenet | none | checkpoint
    checkpoint: str = ""  # path to .pt/.pth/.safetensors when pretrained == "checkpoint"


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.01  # peak learning rate for the batch size below
    momentum: float = 0.9  # Li et al. 2020: what matters is the effective lr = lr / (1 - momentum)
    nesterov: bool = False
    weight_decay: float = 5e-4  # applied to all parameters except biases and norm layers
    schedule: str = "cosine"  # a key of engine.schedules.SCHEDULES
    warmup_fraction: float = 0.0  # of all steps, linear warm-up (for the warmup_cosine schedule)
    step_every_fraction: float = 0.33  # for the step schedule: decay after each such fraction
    step_gamma: float = 0.1
    slow_start_fraction: float = 0.4  # slow_start_fast_decay: the rise spans this fraction of the steps
    fast_decay_rate: float = 6.0  # slow_start_fast_decay: lr falls by e^-rate over the remaining steps
    label_smoothing: float = 0.0
    head_lr_mult: float = 1.0  # Li et al.: a new head often wants a larger lr than the trunk
    trunk_lr_mult: float = 1.0
    freeze_blocks: int = 0  # freeze the first N trunk blocks (stem counts as one) for the whole run
    linear_probe_epochs: int = 0  # LP-FT: train only the head for this many epochs first


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5
    batch_size: int = 64
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    amp: str = "auto"  # auto (bf16 on CUDA, off elsewhere) | bf16 | fp16 | off
    channels_last: bool = True  # used on CUDA only, where it speeds up convolutions
    augment: bool = True  # random resized crop + flip, in batches on the device
    threads: int = 0  # CPU threads for torch (0 = torch's default)
    deterministic: bool = False  # CUDA: deterministic cuDNN kernels, no autotuning (slower). CPU runs repeat exactly anyway
    compile: bool = False  # torch.compile the training forward (GPU: faster after a minute of compiling)


@dataclass(frozen=True)
class EvalConfig:
    ood: bool = True  # evaluate the corruption suite (OOD) on the validation split
    ood_severity_each_epoch: int = 3  # per epoch only this severity (speed); the full 1-5 at the end
    eval_batch_size: int = 256
    robust: bool = False  # robust accuracy under PGD each epoch (val subset) and at the end (test split)
    robust_eps: float = 4 / 255  # the threat model for evaluation (L-inf, pixels in [0, 1])
    robust_steps: int = 20  # PGD-20 by default; step size 2.5 * eps / steps (Madry et al.)
    robust_subset: int = 256  # validation images attacked each epoch (fixed subset)
    autoattack: bool = False  # AutoAttack on the test split at the end, when torchattacks is installed


CORE_SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "backbone": BackboneConfig,
    "optim": OptimConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
}


@dataclass(frozen=True)
class RunConfig:
    name: str = ""
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # method name -> that method's config dataclass (read-only mapping)
    methods: Mapping[str, Any] = field(default_factory=lambda: types.MappingProxyType(default_method_configs()))

    def method(self, name: str) -> Any:
        return self.methods[name]

    def enabled_methods(self) -> list[str]:
        return [n for n, c in self.methods.items() if getattr(c, "enabled", False)]

    @property
    def effective_lr(self) -> float:
        """lr / (1 - momentum) for SGD (Li et al. 2020); the plain lr for AdamW."""
        if self.optim.optimizer == "sgd" and self.optim.momentum < 1:
            return self.optim.lr / (1.0 - self.optim.momentum)
        return self.optim.lr

    # ---- (de)serialisation ------------------------------------------------------------
    def to_dict(self) -> dict:
        out: dict[str, Any] = {"name": self.name, "seed": self.seed}
        for section in CORE_SECTIONS:
            out[section] = dataclasses.asdict(getattr(self, section))
        for name, cfg in self.methods.items():
            out[name] = dataclasses.asdict(cfg)
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=False)

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> "RunConfig":
        if not isinstance(d, Mapping):
            raise StudioError("The config must be a mapping of sections (data, backbone, optim, ...).")
        method_classes = method_config_classes()
        known = {"name", "seed", *CORE_SECTIONS, *method_classes}
        unknown = sorted(set(d) - known)
        if unknown:
            raise StudioError(
                f"Unknown config section(s): {', '.join(unknown)}. Known sections: {', '.join(sorted(known))}."
            )
        kwargs: dict[str, Any] = {}
        if "name" in d:
            kwargs["name"] = str(d["name"] or "")
        if "seed" in d:
            kwargs["seed"] = coerce_value("seed", int, d["seed"])
        for section, cls in CORE_SECTIONS.items():
            kwargs[section] = _section_from_dict(section, cls, d.get(section) or {})
        methods = default_method_configs()
        for name, cls in method_classes.items():
            if name in d:
                methods[name] = _section_from_dict(name, cls, d[name] or {})
        kwargs["methods"] = types.MappingProxyType(methods)
        cfg = RunConfig(**kwargs)
        validate(cfg)
        return cfg

    @staticmethod
    def from_yaml(text: str) -> "RunConfig":
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise StudioError(f"The config file is not valid YAML: {exc}") from None
        return RunConfig.from_dict(data)

    @staticmethod
    def load(path: str | Path) -> "RunConfig":
        p = Path(path)
        if not p.is_file():
            raise StudioError(f"Config file not found: {p}")
        return RunConfig.from_yaml(p.read_text(encoding="utf-8"))


def default_method_configs() -> dict[str, Any]:
    return {name: cls() for name, cls in method_config_classes().items()}


def method_config_classes() -> dict[str, type]:
    from engine.methods import METHODS  # late import: methods import this module

    return {name: spec.config_cls for name, spec in METHODS.items()}


# ---- values -----------------------------------------------------------------------------

def _resolve_type(cls: type, f: dataclasses.Field) -> Any:
    hints = typing.get_type_hints(cls)
    return hints[f.name]


def coerce_value(where: str, typ: Any, value: Any) -> Any:
    """Turn a YAML/CLI value into the field's type, with a message that names the field.

    Floats accept fractions such as `2/255` (attack budgets are written that way).
    """
    origin = typing.get_origin(typ)
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            s = str(value).strip().lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(str(value).strip()) if isinstance(value, str) else int(value)
        if typ is float:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, str) and "/" in value:
                return float(Fraction(value.replace(" ", "")))
            return float(value)
        if typ is str:
            return "" if value is None else str(value)
        if origin in (tuple, list):
            (item_t, *_rest) = typing.get_args(typ) or (Any,)
            if isinstance(value, str):
                value = [v for v in value.replace("[", "").replace("]", "").split(",") if v.strip()]
            return tuple(coerce_value(where, item_t, v) for v in value)
        return value
    except (ValueError, TypeError, ZeroDivisionError):
        tname = getattr(typ, "__name__", str(typ))
        raise StudioError(f"`{where}` must be a {tname}, got {value!r}.") from None


def _section_from_dict(section: str, cls: type, values: Mapping[str, Any]) -> Any:
    if not isinstance(values, Mapping):
        raise StudioError(f"Config section `{section}` must be a mapping of field: value.")
    names = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise StudioError(
            f"Unknown field(s) in `{section}`: {', '.join(unknown)}. Known fields: {', '.join(names)}."
        )
    kwargs = {k: coerce_value(f"{section}.{k}", _resolve_type(cls, names[k]), v) for k, v in values.items()}
    return cls(**kwargs)


def apply_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    """Apply `section.field=value` strings (the CLI's `--set`) and re-validate."""
    d = cfg.to_dict()
    for item in overrides:
        if "=" not in item:
            raise StudioError(f"`--set {item}` must look like section.field=value, e.g. optim.lr=0.01")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) == 1 and parts[0] in ("name", "seed"):
            d[parts[0]] = value
            continue
        if len(parts) != 2:
            raise StudioError(f"`--set {item}`: the key must be section.field (e.g. train.epochs=3).")
        section, fname = parts
        if section not in d:
            raise StudioError(f"`--set {item}`: unknown section `{section}`. Known: {', '.join(d)}.")
        d[section][fname] = value
    return RunConfig.from_dict(d)


def with_section(cfg: RunConfig, section: str, **changes: Any) -> RunConfig:
    """A copy of `cfg` with some fields of one section (core or method) changed."""
    if section in CORE_SECTIONS:
        return replace(cfg, **{section: replace(getattr(cfg, section), **changes)})
    methods = dict(cfg.methods)
    methods[section] = replace(methods[section], **changes)
    return replace(cfg, methods=types.MappingProxyType(methods))


# ---- validation ---------------------------------------------------------------------------

def validate(cfg: RunConfig) -> None:
    """Refuse configs that cannot work, with a message that says what to change."""
    from engine.backbones import BACKBONES, PRETRAINED_SOURCES
    from engine.schedules import SCHEDULES

    problems: list[str] = []
    o, t, dcfg, b = cfg.optim, cfg.train, cfg.data, cfg.backbone
    if not (o.lr > 0):
        problems.append(f"The learning rate must be positive (got {o.lr}).")
    if not (0 <= o.momentum < 1):
        problems.append(f"Momentum must be in [0, 1) (got {o.momentum}).")
    if o.weight_decay < 0:
        problems.append("Weight decay cannot be negative.")
    if o.optimizer not in ("sgd", "adamw"):
        problems.append(f"Unknown optimiser `{o.optimizer}`: choose sgd or adamw.")
    if o.schedule not in SCHEDULES:
        problems.append(f"Unknown schedule `{o.schedule}`: choose one of {', '.join(SCHEDULES)}.")
    if not (0 <= o.warmup_fraction < 1):
        problems.append("The warm-up fraction must be in [0, 1).")
    if not (0 <= o.label_smoothing < 1):
        problems.append("Label smoothing must be in [0, 1).")
    if o.head_lr_mult < 0 or o.trunk_lr_mult < 0:
        problems.append("Learning-rate multipliers cannot be negative.")
    if o.freeze_blocks < 0 or o.linear_probe_epochs < 0:
        problems.append("freeze_blocks and linear_probe_epochs cannot be negative.")
    if t.epochs < 1:
        problems.append(f"Train for at least 1 epoch (got {t.epochs}).")
    if o.linear_probe_epochs >= t.epochs and o.linear_probe_epochs > 0:
        problems.append("linear_probe_epochs must be smaller than epochs, or nothing is fine-tuned.")
    if t.batch_size < 1:
        problems.append("The batch size must be at least 1.")
    if t.amp not in ("auto", "bf16", "fp16", "off"):
        problems.append("amp must be auto, bf16, fp16 or off.")
    if not (t.device in ("auto", "cpu", "cuda", "mps") or t.device.startswith("cuda:")):
        problems.append(f"Unknown device `{t.device}`: use auto, cpu, cuda, cuda:N or mps.")
    if not (0 <= dcfg.val_fraction < 1 and 0 <= dcfg.test_fraction < 1 and dcfg.val_fraction + dcfg.test_fraction < 0.9):
        problems.append("val_fraction and test_fraction must be in [0, 1) and leave at least 10% for training.")
    if dcfg.val_fraction <= 0:
        problems.append("val_fraction must be positive: validation accuracy is what the run reports.")
    if dcfg.min_images_per_class < 3:
        problems.append("min_images_per_class must be at least 3 (one each for train, val and test).")
    if b.name not in BACKBONES:
        problems.append(f"Unknown backbone `{b.name}`. Available: {', '.join(BACKBONES)}.")
    else:
        spec = BACKBONES[b.name]
        if dcfg.image_size < spec.min_image_size:
            problems.append(
                f"Image size {dcfg.image_size} is too small for {b.name}: it needs at least {spec.min_image_size} px."
            )
        if spec.fixed_image_size and dcfg.image_size != spec.fixed_image_size:
            problems.append(f"{b.name} only works at {spec.fixed_image_size} px (got {dcfg.image_size}).")
    if dcfg.image_size > 512:
        problems.append("Image size above 512 px is not supported (memory).")
    if b.pretrained not in PRETRAINED_SOURCES:
        problems.append(f"Unknown pretrained source `{b.pretrained}`: choose {', '.join(PRETRAINED_SOURCES)}.")
    if b.pretrained == "checkpoint" and not b.checkpoint:
        problems.append("pretrained is `checkpoint` but no checkpoint file is given (backbone.checkpoint).")
    if not (0 < o.slow_start_fraction < 1) or o.fast_decay_rate <= 0:
        problems.append("slow_start_fraction must be in (0, 1) and fast_decay_rate positive.")
    if cfg.eval.robust and (not (0 < cfg.eval.robust_eps <= 0.5) or cfg.eval.robust_steps < 1 or cfg.eval.robust_subset < 1):
        problems.append("Robust evaluation needs eps in (0, 0.5], at least 1 step and a subset of at least 1 image.")
    if cfg.eval.ood_severity_each_epoch not in range(0, 6):
        problems.append("eval.ood_severity_each_epoch must be 0 (off) or a severity from 1 to 5.")
    from engine.methods import METHODS

    for name, mcfg in cfg.methods.items():
        if name in METHODS:
            problems.extend(METHODS[name].validate(cfg, mcfg))
    if problems:
        raise StudioError("The run settings need fixing:\n- " + "\n- ".join(problems))
