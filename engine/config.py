"""Run configuration: frozen dataclasses, one per concern, composed into one `RunConfig`.

The dashboard builds a `RunConfig` from its widgets, the CLI from a YAML file plus `--set`
overrides. A config is never mutated during a run and is saved beside every checkpoint, so
`python -m engine train --config <run>/config.yaml` reproduces a run.

Method sections (`adversarial`, `wise_ft`, `pruning`, ...) are not listed here: each method
registers its own config dataclass through `register_method_section` (engine.methods.registry does
it; importing the `engine` package imports every method), and `RunConfig.methods` holds one
instance per registered method. In YAML they appear as top-level sections by method name.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field, fields, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from engine.backbones import BACKBONES, PRETRAINED_SOURCES
from engine.errors import StudioError
from engine.paths import SAMPLE_DATASET
from engine.schedules import SCHEDULES
from engine.words import plural

# method name -> (its config dataclass, its validator (run_config, method_config) -> problems)
METHOD_SECTIONS: dict[str, tuple[type, Callable[[Any, Any], list[str]]]] = {}


def register_method_section(name: str, config_cls: type, check: Callable[[Any, Any], list[str]]) -> None:
    """Make `name` a config section holding a `config_cls` (a frozen dataclass with defaults),
    validated by `check`. Raises ValueError for a name already taken."""
    if name in METHOD_SECTIONS or name in ("name", "seed", "data", "backbone", "optim", "train", "eval"):
        raise ValueError(f"config section {name!r} is already registered")
    METHOD_SECTIONS[name] = (config_cls, check)


# The dashboard's title for the expander holding the device, augmentation and evaluation settings
# (Model and methods page); messages that send the user there name it.
ADVANCED_TITLE = "Device, augmentation, evaluation and run name"


def knob(default: Any, **meta: Any) -> Any:
    """A config field with its metadata: `label`, `help`, `unit`, `min`, `max` (inclusive, in stored
    units), `step`, `scale` (shown = stored x scale), `choices`, `labels`, `format`, `widget`, and
    `shown_when` (the dashboard draws the field only while a switch of the same section is on,
    "structured", or a choice holds, "objective=floor"). Validation (`check_bounds`) and the
    dashboard's widgets (app.widgets) both read it."""
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class DataConfig:
    """The dataset and its split: source (a zip, a folder or upload:<sha256>), image size (pixels, square), how a
    picture becomes square (fit: crop, pad or stretch, engine.data.fit_square), validation and test shares (fractions of
    each class's images), the fewest images a class needs, an optional
    OOD set, and the user's own names for both."""

    source: str = knob(SAMPLE_DATASET, label="Dataset", help="A .zip of class folders, or a folder.")
    image_size: int = knob(64, label="Image size", unit="px", min=16, max=512, step=8, help=(
        "The model sees squares: each picture's middle square (as wide as its shorter side) is kept, so a wide "
        "or tall picture loses its ends (data.fit, the Data page's Wide and tall pictures, can keep whole pictures "
        "instead), and resized to this size once. Larger is slower (time grows with the "
        "square) but keeps more detail: large scans or photos with fine detail may need 128 px or more."))
    fit: str = knob("crop", label="Wide and tall pictures", choices=["crop", "pad", "stretch"],  # data.fit_square
                    labels={"crop": "Keep the middle square", "pad": "Keep the whole picture",
                            "stretch": "Stretch the whole picture"}, help=(
        "The model sees squares. 'Keep the middle square' cuts a wide picture's left and right ends (a tall one's "
        "top and bottom), as most image tools do; 'Keep the whole picture' shrinks it to fit the square and fills "
        "the rest with grey bars, so a subject near an end stays in, at fewer pixels; 'Stretch the whole picture' "
        "squeezes its longer side into the square, so shapes are distorted but every pixel of the square is "
        "picture: the usual way for spectrograms and other plots, where a call's time and pitch matter and its "
        "shape is read the same way every time. Square pictures are the same every way. Predictions and exported "
        "models prepare pictures the same way."))
    val_fraction: float = knob(0.2, label="Validation share", min=0.01, max=0.8, step=0.05, format="%.2f", help=(
        "The share of each class's images held out to measure accuracy after each epoch (0.2: one in five); "
        "the run reports and picks its best epoch on them."))
    test_fraction: float = knob(0.2, label="Test share", min=0.0, max=0.8, step=0.05, format="%.2f", help=(
        "The share of each class's images held out until the very end: the honest final score."))
    min_images_per_class: int = knob(5, label="Fewest images per class", min=3, max=1000, help=(
        "Fewer cannot be split into train, validation and test meaningfully."))
    ood_source: str = knob("", label="Your OOD set", help="An optional set with the same classes ('' = none).")
    source_name: str = knob("", label="Dataset name", help="Your own name for the dataset (an upload's file name).")
    ood_source_name: str = knob("", label="OOD set name", help="Your own name for the OOD set.")
    train_per_class: int = knob(0, label="Training images per class (0 = all)", min=0, max=100000, help=(
        "Keep only this many training images per class (0 = all): for data-scarcity studies."))
    drop_duplicates: bool = knob(False, label="Drop duplicate copies", help=(  # copies always stay in one split
        "Keep one image of each group of identical or near-identical pictures (the report lists the groups). "
        "Off: copies stay, together in one split (in a split your folders give, where the folders put them)."))
    class_balance: str = knob("none", label="Imbalanced classes",  # engine.data.class_weights / balanced_sample_indices
                              choices=["none", "weighted_loss", "balanced_sampling"],
                              labels={"none": "As they are", "weighted_loss": "Weight the loss by class",
                                      "balanced_sampling": "Sample classes evenly"}, help=(
        "For data like 200 'normal' to 15 'defect': weight each class's loss by 1/its size, or draw training "
        "batches with every class equally often."))


@dataclass(frozen=True)
class BackboneConfig:
    """The architecture and the weights fine-tuning starts from (bundled, imagenet, none or a checkpoint file)."""

    name: str = knob("resnet18", label="Backbone", help="A registered architecture (python -m engine backbones).")
    pretrained: str = knob("bundled", label="Pretrained weights", choices=list(PRETRAINED_SOURCES), help=(
        "The weights fine-tuning starts from: bundled (offline), imagenet (downloaded once), none (from scratch) "
        "or checkpoint (your own file)."))
    checkpoint: str = knob("", label="Checkpoint file", help="A .pt/.pth/.safetensors file, when pretrained is checkpoint.")


@dataclass(frozen=True)
class OptimConfig:
    """The optimiser and its learning rate (peak, per step, for the run's batch size), momentum, weight decay,
    schedule, linear-probe (LP-FT) epochs and the trunk's rate multiplier. The effective learning rate lr / (1 -
    momentum) is what matters (Li et al. 2020)."""

    optimizer: str = knob("sgd", label="Optimiser", choices=["sgd", "adamw"],
                          labels={"sgd": "SGD with momentum", "adamw": "AdamW"}, help=(
        "SGD with momentum is the classic for fine-tuning CNNs; AdamW needs a ~10x smaller learning rate."))
    lr: float = knob(0.01, label="Learning rate", min=1e-6, max=10.0, step=0.001, format="%.5f", help=(
        "The peak step size, for the run's batch size (a larger batch takes a larger rate); the schedule shapes it over the run."))
    lr_auto: bool = knob(False, label="Find the learning rate automatically", help=(  # engine.lr_find
        "Before training, a short learning-rate range test (Smith 2017; at most 15% of the run's steps) "
        "picks the rate and replaces the one above; the Model page shows its curve and pick."))
    momentum: float = knob(0.9, label="Momentum", min=0.0, max=0.99, step=0.01, format="%.2f", widget="slider", help=(
        "How much of the previous update each step keeps. Li et al. 2020: what matters is the effective "
        "learning rate lr / (1 - momentum)."))
    nesterov: bool = knob(False, label="Nesterov momentum",
                          help="A look-ahead variant of momentum; usually a small difference.")
    weight_decay: float = knob(5e-4, label="Weight decay", min=0.0, max=0.5, step=0.0001, format="%.5f", help=(
        "Pulls weights toward zero (not applied to biases and normalisation layers)."))
    schedule: str = knob("cosine", label="Schedule",  # choices: the registry (engine.schedules), at validation
                         help="How the learning rate changes from the first to the last step.")
    warmup_fraction: float = knob(0.0, label="Warm-up share", min=0.0, max=0.5, step=0.01, format="%.2f",
                                  widget="slider", help="Share of all steps spent warming up (warmup_cosine).")
    step_every_fraction: float = knob(0.33, label="Decay every (share of steps)", min=0.05, max=1.0, step=0.05,
                                      format="%.2f", help="For the step schedule: decay after each such share.")
    step_gamma: float = knob(0.1, label="Decay factor", min=0.0, max=1.0, step=0.05, format="%.2f", help=(
        "Step decay multiplies the learning rate by this at each step down (0.1: to a tenth)."))
    slow_start_fraction: float = knob(0.4, label="Slow start (share of steps)", min=0.05, max=0.95, step=0.05,
                                      format="%.2f", widget="slider",
                                      help="The learning rate rises linearly over this share of the steps.")
    fast_decay_rate: float = knob(6.0, label="Fast decay rate", min=0.1, max=20.0, step=0.5, format="%.1f",
                                  help="Then it falls by e^-rate over the remaining steps (6: to 0.25 percent).")
    label_smoothing: float = knob(0.0, label="Label smoothing", min=0.0, max=0.5, step=0.05, format="%.2f", help=(
        "Softens the targets a little: often better-calibrated, slightly more robust models."))
    head_lr_mult: float = knob(1.0, label="Head learning-rate multiplier", min=0.0, max=100.0, step=0.5, format="%.2f", help=(
        "The new head often learns best with a larger learning rate than the pretrained trunk (Li et al. 2020)."))
    trunk_lr_mult: float = knob(1.0, label="Trunk learning-rate multiplier", min=0.0, max=10.0, step=0.1, format="%.2f",
                                help="0 freezes the trunk's learning entirely (a pure linear probe).")
    freeze_blocks: int = knob(0, label="Frozen blocks", min=0, max=64, widget="slider", help=(
        "Keep the first N trunk blocks (the stem counts as one) fixed for the whole run: faster, less "
        "overfitting on tiny data, less adaptation."))
    fused: bool = knob(True, label="Fused optimiser step", help=(  # engine.optim.build_optimizer
        "Update every weight in one fused kernel (PyTorch's fused SGD / AdamW): a faster step on GPUs, and on "
        "CPUs for weights in the default memory layout (a CPU run in the channels-last layout, as every bf16 CPU "
        "run is, keeps the per-tensor step, which is faster there); the same update up to rounding. Off: the "
        "classic per-tensor loop."))
    head_lr_cap: bool = knob(True, label="Keep the new head's steps stable", help=(  # engine.optim.head_lr_bound
        "SGD from pretrained weights: before training, measure how large the features the network hands the new "
        "head are on your images, and lower the head's learning rate where it would make its steps overshoot "
        "(its loss growing instead of falling); the rest of the network keeps its rate. Results says when it did."))
    linear_probe_epochs: int = knob(0, label="Linear-probe epochs first", min=0, max=499, help=(
        "LP-FT: train only the new head for these epochs, then fine-tune everything."))


@dataclass(frozen=True)
class TrainConfig:
    """How training runs: epochs, batch size (images), device, mixed precision, memory layout, augmentation, CPU
    threads and checkpoints."""

    epochs: int = knob(5, label="Epochs", min=1, max=500, help="Passes over the training images.")
    batch_size: int = knob(64, label="Batch size", unit="images", min=1, max=1024, help=(
        "Images per step. Smaller batches fit in less memory; keep the effective learning rate in mind "
        "when you change it."))
    device: str = knob("auto", label="Device", labels={"auto": "automatic", "cpu": "CPU", "cuda": "GPU (CUDA)",
                                                       "mps": "Apple GPU (MPS)"}, help=(
        "Automatic (auto): the GPU when there is one, else the CPU (the command line also takes cpu, cuda, cuda:N, mps)."))
    amp: str = knob("auto", label="Mixed precision", choices=["auto", "bf16", "fp16", "off"],
                    labels={"auto": "automatic", "bf16": "bfloat16", "fp16": "float16 (GPU)", "off": "off (float32)"},
                    help=(
        "Faster training in 16-bit. Automatic (auto): bf16 on CUDA GPUs (fp16 where bf16 is missing), bf16 on CPUs with "
        "bfloat16 support where a short first-run measurement found it faster, else off. fp16 is for GPUs only."))
    channels_last: bool = knob(True, label="Channels-last memory",
                               help=("A faster memory layout for convolutions: used on CUDA GPUs, and on a CPU "
                                     "with bf16 or where it was measured faster."))
    augment: bool = knob(True, label="Augment images", help=(
        "Random crops and flips each step (in batches on the device): less overfitting on small datasets."))
    flip: bool = knob(True, label="Mirror images left-right", shown_when="augment", help=(
        "Part of augmenting: half the training images are mirrored. Switch it off where a mirror image is a "
        "different thing or no real picture: digits, letters, text, arrows, left and right hands, and spectrograms "
        "or other plots with time along them (mirrored, a bird's falling call plays as a rising one)."))
    greyscale: float = knob(0.0, label="Greyscale copies (share)", min=0.0, max=1.0, step=0.05, format="%.2f",
                            shown_when="augment", help=(
        "Part of augmenting: this share of the training images is turned greyscale at each step (0.25: one in "
        "four; 0 = none), so that a model trained mostly on colour pictures also learns greyscale ones: infrared "
        "night shots beside day ones, black-and-white photos, scans. Results says how a run does on each kind. "
        "On generated night shots it showed no clear gain in three seeds (README, Benchmarks)."))
    threads: int = knob(0, label="CPU threads (0 = automatic)", min=0, max=256, help=(
        "0 = automatic: one per core (PyTorch's default), less the cores other programs keep busy, measured "
        "as the run starts and again after every epoch (threads waiting for a busy core slow every step). "
        "A number uses exactly that many."))
    deterministic: bool = knob(False, label="Repeatable (deterministic)", help=(
        "CUDA: deterministic cuDNN kernels, no autotuning (slightly slower). CPU runs repeat exactly at the "
        "same thread count: the automatic count follows other programs' load, so to compare runs set CPU "
        "threads to a number."))
    compile: bool = knob(False, label="Compile the model (GPU)", help=(
        "torch.compile: faster training on a GPU after about a minute of compiling; no gain on a CPU."))


@dataclass(frozen=True)
class EvalConfig:
    """What each epoch and the end of the run measure: OOD accuracy on the corruption suite (one severity on a fixed
    subset per epoch, all five on every image at the end), robust accuracy under a PGD attack, and flip test-time
    augmentation."""

    ood: bool = knob(True, label="Measure OOD accuracy", help=(
        "Evaluate on corrupted copies of the validation images (noise, blur, contrast, brightness, JPEG, "
        "pixelation) at the end of the run, and after each epoch unless the severity per epoch is 0."))
    # "0 = none" beside "Measure OOD accuracy" on read as a contradiction to a new user: 0 means at the end only
    ood_severity_each_epoch: int = knob(3, label="Corruption severity per epoch (0 = only at the end)", min=0, max=5,
                                        widget="slider", shown_when="ood", help=(
        "Per epoch only this severity, for speed; 0: none per epoch, OOD accuracy at the end only. The end of the "
        "run always measures all five."))
    ood_subset_each_epoch: int = knob(16, label="Corrupted images per epoch (0 = all)", unit="images", min=0, max=100000,
                                      help=(  # 16: the OOD part cost 7% of a quick-demo epoch's training time
        "Per epoch the corruption suite runs on this fixed, class-balanced subset of the validation images "
        "(0 = all of them), so watching OOD accuracy costs little; the end of the run uses every image."))
    tta_flip: bool = knob(False, label="Average with the mirror image (flip TTA)", help=(
        "Test-time augmentation: every prediction averages the model's probabilities for the image and for "
        "its left-right mirror, in every accuracy the run reports, on Try it, in predict and in the "
        "exported TorchScript / ONNX files. Twice the prediction cost; +2.6 test points over 3 seeds in the quick demo "
        "(benchmarks/speedups.py). Attacks (robust accuracy) target the plain model. Leave it off where a "
        "mirror image is a different thing (digits, text)."))
    eval_batch_size: int = knob(256, label="Evaluation batch size", unit="images", min=1, max=4096, help=(
        "Images per pass when accuracy is measured: larger is faster and needs more memory; the figures are the same."))
    robust: bool = knob(False, label="Measure robust accuracy", help=(
        "Attack the model with PGD (small worst-case pixel changes) and report the accuracy that survives, each "
        "epoch on a validation subset and at the end on the test split. Slower."))
    robust_eps: float = knob(4 / 255, label="Attack budget eps", unit="/255", scale=255, min=1 / 255, max=32 / 255,
                             step=1 / 255, format="%.1f", help=(
        "The largest change of any pixel the evaluation attack may make (L-inf, pixels in [0, 1])."))
    robust_steps: int = knob(20, label="PGD steps", min=1, max=200, help=(
        "More steps find stronger attacks (20 is the usual); step size 2.5 * eps / steps (Madry et al.)."))
    robust_subset: int = knob(64, label="Images attacked per epoch", unit="images", min=1, max=100000,
                              help="A fixed validation subset, for speed; the end of the run attacks the whole test split.")
    robust_steps_each_epoch: int = knob(5, label="PGD steps per epoch", min=1, max=200, help=(
        "A cheaper attack for the per-epoch figure (named in the note under the charts); the end of the run "
        "uses the PGD steps above."))
    autoattack: bool = knob(False, label="AutoAttack at the end", help=(
        "A stronger, standard attack on the test split (needs the torchattacks package)."))


CORE_SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "backbone": BackboneConfig,
    "optim": OptimConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
}


NEEDS_FIXING = "The run settings need fixing:"  # heads the list of problems (validate; the dashboard adds to it)


def is_list_type(typ: Any) -> bool:
    """Whether a field's type is a list of values (tuple[float, ...], list[int]): typed as comma-separated text."""
    return typing.get_origin(typ) in (tuple, list)


def field_label(name: str, meta: Mapping[str, Any]) -> str:
    """A config field's label as the dashboard draws it: its metadata's `label` (else its name in
    words), first letter upper-case ("training attack" -> "Training attack"; "eps", "PGD" kept)."""
    label = meta.get("label") or name.replace("_", " ").strip()
    return label[:1].upper() + label[1:]


def _section_class(section: str) -> type | None:
    return CORE_SECTIONS.get(section) or (METHOD_SECTIONS.get(section) or (None,))[0]


def setting_meta(section: str, name: str, cls: type | None = None) -> Mapping[str, Any]:
    """A setting's field metadata (`knob`'s label, bounds, choices ...). `cls`: the section's dataclass (default:
    the registered one). Raises KeyError for an unknown section or field."""
    cls = cls or _section_class(section)
    if cls is None:
        raise KeyError(section)
    return {f.name: f.metadata for f in fields(cls)}[name]


def setting_name(section: str, name: str, cls: type | None = None) -> str:
    """A setting as messages name it: its label as the dashboard shows it, then its key for the
    command line and config files ("CPU threads (train.threads)"). The dashboard shows messages
    without the keys (`without_setting_keys`). `cls`: the section's dataclass (default: the registered
    one). Raises KeyError for an unknown section or field."""
    return f"{field_label(name, setting_meta(section, name, cls))} ({section}.{name})"


def without_setting_keys(text: str) -> str:
    """`text` without the setting keys that `setting_name` and the engine's messages put in brackets
    ("CPU threads (train.threads)" -> "CPU threads"; "lower it to 2 (optim.linear_probe_epochs=2)" ->
    "lower it to 2"): the dashboard names its settings by their labels only. Only the registered
    sections' real fields are taken out: "(data.zip)" stays."""
    keys = [rf"{re.escape(section)}\.(?:{'|'.join(re.escape(f.name) for f in fields(cls))})"
            for section, cls in {**CORE_SECTIONS, **{n: c for n, (c, _) in METHOD_SECTIONS.items()}}.items()]
    return re.sub(rf" ?\((?:{'|'.join(keys)})(?:\s?[=:][^()]*(?:\([^()]*\)[^()]*)*)?\)", "", text)


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs, frozen: name, seed, the core sections (data, backbone, optim, train, eval) and each
    registered method's section. Round-trips through YAML and JSON (`to_yaml`, `from_yaml`); `from_dict`
    validates and raises StudioError naming the setting in the user's words."""

    name: str = ""
    seed: int = knob(0, label="Seed", min=0, max=2**31 - 1,
                     help="Fixes the split, the initial head and the batch order.")
    data: DataConfig = field(default_factory=DataConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # method name -> that method's config dataclass (read-only mapping)
    methods: Mapping[str, Any] = field(default_factory=lambda: types.MappingProxyType(default_method_configs()))

    def enabled_methods(self) -> list[str]:
        """Names of the methods switched on, in registration order. Raises nothing."""
        return [n for n, c in self.methods.items() if getattr(c, "enabled", False)]

    @property
    def effective_lr(self) -> float:
        """lr / (1 - momentum) for SGD (Li et al. 2020); the plain lr for AdamW."""
        if self.optim.optimizer == "sgd" and self.optim.momentum < 1:
            return self.optim.lr / (1.0 - self.optim.momentum)
        return self.optim.lr

    def steps_per_epoch(self, train_images: int) -> int:
        """Optimiser steps in one epoch over `train_images` training images: the ragged last batch is
        dropped, and a batch as large as the training set is one step (engine.train)."""
        return max(1, train_images // self.train.batch_size)

    # ---- (de)serialisation ------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain nested dict: name, seed, one dict per core section and one per method (what config.yaml holds).
        Raises nothing."""
        out: dict[str, Any] = {"name": self.name, "seed": self.seed}
        for section in CORE_SECTIONS:
            out[section] = dataclasses.asdict(getattr(self, section))
        for name, cfg in self.methods.items():
            out[name] = dataclasses.asdict(cfg)
        return out

    def to_yaml(self) -> str:
        """The config as YAML text (sections in order). Raises nothing."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def to_json(self) -> str:
        """The config as one-line JSON text (the run store's copy). Raises nothing."""
        return json.dumps(self.to_dict(), sort_keys=False)

    @staticmethod
    def from_dict(d: Mapping[str, Any], validated: bool = True) -> "RunConfig":
        """A config from its dict form (YAML, a run's config, a dashboard draft). Raises StudioError
        for an unknown section or field or a value of the wrong type, and (`validated`) for settings
        `validate` refuses; a dashboard draft is read with validated=False, so that settings the user
        has still to fix come back to be fixed rather than being replaced by the defaults."""
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
        if validated:
            validate(cfg)
        return cfg

    @staticmethod
    def from_yaml(text: str) -> "RunConfig":
        """A validated RunConfig from YAML `text`. Raises StudioError when the text is not YAML or a setting is
        unknown or out of range."""
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise StudioError(f"The config file is not valid YAML: {exc}") from None
        return RunConfig.from_dict(data)

    @staticmethod
    def load(path: str | Path) -> "RunConfig":
        """A validated RunConfig from the YAML file at `path` (a run's config.yaml). Raises StudioError when the
        file is missing, is not YAML or holds an unknown or out-of-range setting."""
        p = Path(path)
        if not p.is_file():
            raise StudioError(f"Config file not found: {p}")
        return RunConfig.from_yaml(p.read_text(encoding="utf-8"))


def default_method_configs() -> dict[str, Any]:
    """Method name -> that method's config with its defaults (switched off), for every registered method. Raises
    nothing."""
    return {name: cls() for name, cls in method_config_classes().items()}


def method_config_classes() -> dict[str, type]:
    """Method name -> its config dataclass, for every registered method. Raises nothing."""
    return {name: cls for name, (cls, _check) in METHOD_SECTIONS.items()}


# ---- values -----------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _type_hints(cls: type) -> dict[str, Any]:
    """`typing.get_type_hints(cls)`, resolved once per class: resolved again for every field, a config read took
    32 ms (0.7 ms now: benchmarks/load_costs.py), and the dashboard's pages read run configs on every rerun."""
    return typing.get_type_hints(cls)


def _resolve_type(cls: type, f: dataclasses.Field) -> Any:
    return _type_hints(cls)[f.name]


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
        if is_list_type(typ):
            (item_t, *_rest) = typing.get_args(typ) or (Any,)
            if isinstance(value, str):
                value = [v.strip() for v in value.replace("[", "").replace("]", "").split(",") if v.strip()]
            return tuple(coerce_value(where, item_t, v) for v in value)
        return value
    except (ValueError, TypeError, ZeroDivisionError):
        kind = {float: "a number", int: "a whole number", bool: "true or false"}.get(
            typ, f"a {getattr(typ, '__name__', typ)}")
        raise StudioError(f"`{where}` must be {kind}, got {value!r}.") from None


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


def shown_value(meta: Mapping[str, Any], value: Any) -> str:
    """A setting's value as the dashboard shows it, from its field's metadata: a scaled float in its
    unit (eps 0.00784 with scale 255 and unit "/255" -> "2/255"; 0.01 with scale 100 and unit
    "points" -> "1 point"), any other value as str()."""
    scale = meta.get("scale", 1)
    if isinstance(value, float) and scale != 1:
        unit = meta.get("unit", "")
        if unit[:1].isalpha():  # a word: after a space, singular for exactly one
            unit = " " + (unit[:-1] if value * scale == 1 and unit.endswith("s") else unit)
        return f"{value * scale:g}{unit}"
    return str(value)


def shown_setting(obj: Any, name: str, values: Mapping[str, Any] | None = None) -> bool:
    """Whether field `name` of the settings dataclass `obj` applies: its metadata's `shown_when` names
    a switch of the same dataclass ("structured") or a choice ("objective=floor"); the field applies
    only while that holds, judged on `values` (field -> value, e.g. the widgets drawn so far) where
    given, else on `obj`. The dashboard draws only such fields; the model card lists only them."""
    values = values or {}
    cond = {f.name: f for f in fields(obj)}[name].metadata.get("shown_when")
    if not cond:
        return True
    other, _, wanted = cond.partition("=")
    if not shown_setting(obj, other, values):  # "objective=floor" hides with the auto switch that hides objective
        return False
    current = values.get(other, getattr(obj, other))
    return str(current) == wanted if wanted else bool(current)


# ---- validation ---------------------------------------------------------------------------

def check_bounds(section: str, values: Any) -> list[str]:
    """Problems with one section's values against its fields' metadata (`min`, `max`, `choices`),
    naming each field by its label and key (`setting_name`), values in the dashboard's units."""
    problems = []
    for f in fields(values):
        m, v = f.metadata, getattr(values, f.name)
        scale, unit = m.get("scale", 1), m.get("unit", "")
        unit = unit if unit.startswith("/") or not unit else f" {unit}"
        shown = setting_name(section, f.name, type(values))
        if "choices" in m and v not in m["choices"]:
            problems.append(f"{shown}: `{v}` is not a choice; choose {', '.join(map(str, m['choices']))}.")
        if isinstance(v, (int, float)) and not isinstance(v, bool) and ("min" in m or "max" in m):
            lo, hi = m.get("min", -math.inf), m.get("max", math.inf)
            if not lo <= v <= hi:
                problems.append(f"{shown} must be between {lo * scale:g} and {hi * scale:g}{unit} (got {v * scale:g}).")
    return problems


def validate(cfg: RunConfig) -> None:
    """Refuse configs that cannot work, with a message that says what to change. Bounds and choices
    come from the fields' metadata (`check_bounds`); what spans fields or registries is checked here;
    each method adds its own checks (registered with its section). Raises StudioError."""
    problems: list[str] = []
    for section in CORE_SECTIONS:
        problems += check_bounds(section, getattr(cfg, section))
    for name, mcfg in cfg.methods.items():
        problems += check_bounds(name, mcfg)
    o, t, d, b = cfg.optim, cfg.train, cfg.data, cfg.backbone
    if o.schedule not in SCHEDULES:
        problems.append(f"Unknown schedule `{o.schedule}`: choose one of {', '.join(SCHEDULES)}.")
    if o.linear_probe_epochs >= t.epochs and o.linear_probe_epochs > 0:
        problems.append(f"{setting_name('optim', 'linear_probe_epochs')} must be fewer than "
                        f"{setting_name('train', 'epochs')} ({o.linear_probe_epochs} against {t.epochs}): nothing "
                        f"would be fine-tuned. Lower it to {max(t.epochs - 1, 0)} "
                        f"(optim.linear_probe_epochs={max(t.epochs - 1, 0)}) or train longer.")
    if not (t.device in ("auto", "cpu", "cuda", "mps") or t.device.startswith("cuda:")):
        problems.append(f"Unknown device `{t.device}`: use auto, cpu, cuda, cuda:N or mps.")
    if d.val_fraction + d.test_fraction >= 0.9:
        problems.append(f"{setting_name('data', 'val_fraction')} and {setting_name('data', 'test_fraction')} "
                        "together must leave at least 10% of the images for training.")
    if b.name not in BACKBONES:
        problems.append(f"Unknown backbone `{b.name}`. Available: {', '.join(BACKBONES)}.")
    else:
        spec = BACKBONES[b.name]
        if d.image_size < spec.min_image_size:
            problems.append(f"Image size {d.image_size} is too small for {b.name}: it needs at least {spec.min_image_size} px.")
        if spec.fixed_image_size and d.image_size != spec.fixed_image_size:
            problems.append(f"{b.name} only works at {spec.fixed_image_size} px (got {d.image_size}).")
    if b.pretrained == "checkpoint" and not b.checkpoint:
        problems.append("Starting weights are set to your own checkpoint, but no checkpoint file is accepted yet (a "
                        "refused file is not used): give one that is accepted, or choose other starting weights.")
    for name, mcfg in cfg.methods.items():
        if name in METHOD_SECTIONS:
            problems.extend(METHOD_SECTIONS[name][1](cfg, mcfg))
    if problems:
        raise StudioError(NEEDS_FIXING + "\n- " + "\n- ".join(problems))


def batch_size_for(train_images: int) -> int:
    """The power-of-two batch size that gives about eight optimiser steps an epoch on `train_images`
    images, at least 4 (batch norm needs a few images per batch)."""
    return max(4, 2 ** round(math.log2(max(train_images, 1) / 8)))


def smaller_batch(cfg: "RunConfig", train_images: int, max_per_epoch: int = 2) -> tuple[int, float] | None:
    """(batch size, learning rate) for more optimiser steps an epoch on `train_images` images:
    `batch_size_for`, with the learning rate scaled by the same factor (the linear scaling rule,
    Goyal et al. 2017: the same rate per image) unless the rate is found automatically
    (optim.lr_auto: the range test picks it for the new batch). None when that batch is not
    smaller than the one set or still gives at most `max_per_epoch` steps an epoch. A smaller batch
    at the same rate collapsed to chance on the sample (README, "Few optimiser steps an epoch")."""
    batch = batch_size_for(train_images)
    if batch >= cfg.train.batch_size or train_images // batch <= max_per_epoch:
        return None
    return batch, with_batch(cfg, batch).optim.lr


def with_batch(cfg: "RunConfig", batch: int) -> "RunConfig":
    """`cfg` with batch size `batch` and the learning rate scaled by the same factor (the linear scaling
    rule, Goyal et al. 2017; 3 significant digits, never below the rate's lowest allowed value), kept
    when the rate is found automatically (optim.lr_auto)."""
    lowest = setting_meta("optim", "lr").get("min", 0.0)
    lr = cfg.optim.lr if cfg.optim.lr_auto else max(lowest, float(f"{cfg.optim.lr * batch / cfg.train.batch_size:.3g}"))
    return with_section(with_section(cfg, "train", batch_size=batch), "optim", lr=lr)


def probe_epochs_for(epochs: int, probe: int) -> int:
    """The head-only (linear-probe, LP-FT) epochs a run of `epochs` can have: `probe`, or fewer so that at
    least one epoch still fine-tunes the whole network (the Model page and `train --preset` shorten so)."""
    return min(probe, max(epochs - 1, 0))


def too_few_steps(cfg: "RunConfig", train_images: int, max_per_epoch: int = 2) -> bool:
    """Whether the batch size leaves at most `max_per_epoch` optimiser steps an epoch on `train_images`
    training images (8 or more: with fewer there is no better batch to offer)."""
    return train_images >= 8 and cfg.steps_per_epoch(train_images) <= max_per_epoch


def few_batches(cfg: "RunConfig", train_images: int, max_per_epoch: int = 2) -> str | None:
    """A warning when the batch size leaves at most `max_per_epoch` optimiser steps per epoch on
    `train_images` training images (a batch as large as the training set is one step an epoch), with
    the smaller batch and learning rate `smaller_batch` gives (about eight steps an epoch). None
    otherwise, and for fewer than 8 images."""
    n, epochs = train_images, cfg.train.epochs
    per_epoch = cfg.steps_per_epoch(n)
    if not too_few_steps(cfg, n, max_per_epoch):
        return None
    return (f"Batches of {cfg.train.batch_size} from your {n} training images make "
            f"{plural(per_epoch, 'optimiser step')} per epoch ({per_epoch * epochs} in {plural(epochs, 'epoch')}): "
            f"too few for fine-tuning to get far. {smaller_batch_advice(cfg, n, max_per_epoch)}")


def smaller_batch_advice(cfg: "RunConfig", train_images: int, max_per_epoch: int = 2) -> str:
    """The sentence that gives `smaller_batch`'s batch size and learning rate, or says that with so few
    images there is none (the Model page's warning and a finished run's advice share it)."""
    n = train_images
    fix = smaller_batch(cfg, n, max_per_epoch)
    if fix is None:
        return "With so few images, a batch size of 4 and many epochs is what there is: more images help most."
    if cfg.optim.lr_auto:
        return (f"A batch size of {fix[0]} gives {n // fix[0]} steps per epoch (the learning rate is found "
                "for it automatically).")
    return (f"A batch size of {fix[0]} gives {n // fix[0]} steps per epoch, with the learning rate lowered "
            f"in step to {fix[1]:g}: the same rate per image (left at {cfg.optim.lr:g}, a smaller batch "
            "can collapse to guessing).")
