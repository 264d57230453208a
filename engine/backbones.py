"""Backbone registry: named factories with the metadata the engine and the dashboard need.

Every model the engine trains is a `Classifier`: pixels in [0, 1] go in (normalisation by the
backbone's mean/std happens inside, so attacks and augmentation work in pixel space), logits
come out. The torchvision network sits at `Classifier.net` and its classification head,
found through `BackboneSpec.head_attr`, is replaced for the dataset's classes.

Pretrained sources: `imagenet` (torchvision's weights API: downloads on first use into the
torch hub cache), `bundled` (weights shipped in assets/, pretrained offline on formula-driven
images), `none` (random init), `checkpoint` (a user file, loaded without running code).
"""

from __future__ import annotations

import functools
import json
import pickle
import re
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.nn.utils import skip_init

from engine.errors import StudioError
from engine.paths import ASSETS_DIR, resolve_path
from engine.words import plural

ASSETS_BACKBONES = ASSETS_DIR / "backbones"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PRETRAINED_SOURCES = ("bundled", "imagenet", "none", "checkpoint")


@dataclass(frozen=True)
class BackboneSpec:
    """A registered architecture: which torchvision builder and weights enum make it, where its final Linear sits
    and how many features feed it, the image sizes it takes (pixels) and its input normalisation (per-channel
    mean and std of [0, 1] pixels), and the file of its bundled weights when the project ships them
    (assets/backbones)."""

    name: str
    family: str  # resnet | mobilenet | efficientnet | convnext | vit
    builder_name: str  # torchvision.models' builder, called as builder(weights=None, num_classes=...)
    weights_name: str  # torchvision.models' weights enum (its DEFAULT is "imagenet")
    head_attr: str  # dotted path of the final Linear inside the torchvision model
    feature_dim: int  # inputs of that Linear
    native_size: int = 224  # the resolution its ImageNet weights were trained at
    min_image_size: int = 32
    fixed_image_size: int = 0  # non-zero when the architecture only accepts this size
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    bundled_file: str = ""  # file name in assets/backbones when weights ship with the project
    description: str = ""

    @property
    def builder(self) -> Callable[..., nn.Module]:
        """torchvision's builder of this network. torchvision is imported here, when a network is first
        built or measured, not with the registry: importing it takes 1-2 s (it loads torch._dynamo), which
        a dashboard's first page and a command that builds no model need not wait for."""
        import torchvision.models

        return getattr(torchvision.models, self.builder_name)

    @property
    def weights_enum(self) -> type:
        """torchvision's weights enum of this network (WeightsEnum); imports torchvision as `builder`."""
        import torchvision.models

        return getattr(torchvision.models, self.weights_name)

    @property
    def title(self) -> str:
        """The architecture's name as people write it ("ResNet-18"), from the description's first words."""
        return re.split(r"[:,.]", self.description)[0].strip() or self.name

    @property
    def bundled_path(self) -> Path | None:
        """The bundled weights' path under assets/backbones, or None when the project ships none for this
        architecture (the file may still be missing: see `has_bundled`). Raises nothing."""
        return ASSETS_BACKBONES / self.bundled_file if self.bundled_file else None

    def has_bundled(self) -> bool:
        """True when the bundled weights file exists on disk. Raises nothing."""
        p = self.bundled_path
        return p is not None and p.is_file()

    def imagenet_cache_path(self) -> Path:
        """Where torchvision's weights API caches the ImageNet weights' file (<torch hub dir>/checkpoints/<file name
        of the DEFAULT weights' URL>): placing the file there makes `pretrained=imagenet` work offline. Nothing
        is downloaded. Raises nothing."""
        url = self.weights_enum.DEFAULT.url
        return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name

    def has_imagenet_cached(self) -> bool:
        """torchvision's ImageNet weights file is in torch hub's cache. Where no file there starts with the
        builder's name (every weights file torchvision names does: tested), says no without importing
        torchvision."""
        if not any((Path(torch.hub.get_dir()) / "checkpoints").glob(f"{self.builder_name}*")):
            return False
        return self.imagenet_cache_path().is_file()

    def num_params(self, num_classes: int = 1000) -> int:
        """Parameters of the network with a head for `num_classes` classes (counted on the meta device
        once per process and network, without weights)."""
        return _imagenet_params(self.builder_name) - (1000 - num_classes) * (self.feature_dim + 1)


@functools.lru_cache(maxsize=None)
def _imagenet_params(builder_name: str) -> int:
    """Parameters of torchvision's `builder_name` network with its 1000-class ImageNet head."""
    import torchvision.models

    with torch.device("meta"):
        net = getattr(torchvision.models, builder_name)(weights=None)
    return sum(p.numel() for p in net.parameters())


BACKBONES: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Add `spec` to BACKBONES under its name and return it. Raises ValueError when the name is already registered."""
    if spec.name in BACKBONES:
        raise ValueError(f"backbone {spec.name!r} is already registered")
    BACKBONES[spec.name] = spec
    return spec


for _spec in (
    BackboneSpec("resnet18", "resnet", "resnet18", "ResNet18_Weights", "fc", 512,
                 bundled_file="resnet18_fractal.safetensors",
                 description="ResNet-18: the classic, fast and robust default."),
    BackboneSpec("resnet50", "resnet", "resnet50", "ResNet50_Weights", "fc", 2048,
                 description="ResNet-50: stronger, about 2-3x slower than ResNet-18."),
    BackboneSpec("mobilenet_v3_small", "mobilenet", "mobilenet_v3_small", "MobileNet_V3_Small_Weights",
                 "classifier.3", 1024, bundled_file="mobilenet_v3_small_fractal.safetensors",
                 description="MobileNetV3-Small: tiny and fast on a laptop CPU."),
    BackboneSpec("mobilenet_v3_large", "mobilenet", "mobilenet_v3_large", "MobileNet_V3_Large_Weights",
                 "classifier.3", 1280, description="MobileNetV3-Large: the larger MobileNetV3."),
    BackboneSpec("efficientnet_b0", "efficientnet", "efficientnet_b0", "EfficientNet_B0_Weights",
                 "classifier.1", 1280, description="EfficientNet-B0: the smallest EfficientNet."),
    BackboneSpec("convnext_tiny", "convnext", "convnext_tiny", "ConvNeXt_Tiny_Weights", "classifier.2", 768,
                 description="ConvNeXt-Tiny: a modern CNN; slow on a CPU."),
    BackboneSpec("vit_b_16", "vit", "vit_b_16", "ViT_B_16_Weights", "heads.head", 768,
                 min_image_size=224, fixed_image_size=224,
                 description="ViT-B/16: a vision transformer; needs 224 px and a GPU."),
):
    register_backbone(_spec)


def available_sources(name: str) -> dict[str, bool]:
    """Which pretrained sources can be used right now without a download."""
    spec = BACKBONES[name]
    return {"bundled": spec.has_bundled(), "imagenet": spec.has_imagenet_cached(), "none": True}


def default_pretrained(name: str) -> str:
    """ImageNet when its weights are cached, else the bundled weights, else random init."""
    avail = available_sources(name)
    if avail["imagenet"]:
        return "imagenet"
    return "bundled" if avail["bundled"] else "none"


# ---- the model --------------------------------------------------------------------------------

def _get_submodule(root: nn.Module, dotted: str) -> nn.Module:
    return root.get_submodule(dotted)


def _set_submodule(root: nn.Module, dotted: str, module: nn.Module) -> None:
    parent_path, _, last = dotted.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, last, module)


class Classifier(nn.Module):
    """Pixels in [0, 1] -> logits. Normalisation is part of the model."""

    def __init__(self, net: nn.Module, spec: BackboneSpec, num_classes: int, mean=None, std=None):
        super().__init__()
        self.net = net
        self.backbone_name = spec.name
        self.head_attr = spec.head_attr
        self.num_classes = num_classes
        # Not persistent: the state dict holds only `net.*`, the spec/config know mean and std.
        self.register_buffer("mean", torch.tensor(mean or spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std or spec.std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits float [B, num_classes] for pixels `x` float [B, 3, S, S] in [0, 1] (normalised here by the
        backbone's mean and std, so callers never normalise)."""
        return self.net((x - self.mean) / self.std)

    @property
    def head(self) -> nn.Module:
        """The final classification layer (the torchvision model's Linear at `head_attr`)."""
        return _get_submodule(self.net, self.head_attr)

    def head_parameter_ids(self) -> set[int]:
        """id() of each of the head's parameters, to tell head and trunk apart (learning rates, L2-SP's anchors).
        Raises nothing."""
        return {id(p) for p in self.head.parameters()}

    def trunk_blocks(self) -> list[nn.Module]:
        """The trunk as an ordered list of blocks with parameters, for freezing and lr groups.

        Leaf layers before the first container (conv1, bn1 of a ResNet) form one "stem" block;
        `features` (MobileNet, EfficientNet, ConvNeXt) and the ViT encoder are expanded into
        their stages/layers. The head is excluded.
        """
        head_root = self.head_attr.split(".")[0]
        blocks: list[nn.Module] = []
        stem: list[nn.Module] = []

        def add(m: nn.Module) -> None:
            if any(True for _ in m.parameters()):
                blocks.append(m)

        for name, child in self.net.named_children():
            if name == self.head_attr:
                continue
            if name == "features" or (name == "encoder" and hasattr(child, "layers")):
                if stem:
                    add(nn.ModuleList(stem)); stem = []
                inner = child.layers if name == "encoder" else child
                for c in inner.children():
                    add(c)
                if name == "encoder":
                    add(child.ln)
            elif not blocks and not list(child.children()):
                stem.append(child)  # conv1, bn1, relu, maxpool ...
            else:
                if stem:
                    add(nn.ModuleList(stem)); stem = []
                if name == head_root:  # e.g. MobileNet's classifier[:3] before the head Linear
                    rest = [m for n, m in child.named_children() if f"{name}.{n}" != self.head_attr]
                    add(nn.ModuleList(rest))
                else:
                    add(child)
        if stem:
            add(nn.ModuleList(stem))
        return blocks


@dataclass
class LoadReport:
    """What loading pretrained weights did: counts and names, and where in the file they came from."""

    source: str
    matched: int = 0  # tensors copied into the backbone
    missing: list[str] = field(default_factory=list)  # backbone tensors left at random initialisation
    unexpected: list[str] = field(default_factory=list)  # file tensors whose names the backbone lacks
    shape_mismatch: list[str] = field(default_factory=list)  # same name, another shape: skipped
    note: str = ""
    entry: str = ""  # the wrapper the state dict was found in ("state_dict", "model > ema"); "" when bare
    prefix: str = ""  # the key prefix removed to match the backbone ("module.", "_orig_mod.")
    ignored: list[str] = field(default_factory=list)  # file tensors outside that prefix (another sub-model)
    coverage: float = 1.0  # share of the backbone's weight tensors (head excluded) that the file supplied
    file_classes: list[str] | None = None  # the class names the file was trained on, where it says (studio files)
    head_kept: bool = False  # the file's classification head was loaded (same classes, same order)
    head_tensors: int = 0  # the file's own classification head's tensors (replaced unless head_kept)
    head_outputs: int | None = None  # its number of outputs (the classes it was trained on), where it has a weight

    @property
    def partial(self) -> bool:
        """True when most of the backbone stays at random initialisation."""
        return self.coverage < PARTIAL_SHARE

    def to_dict(self) -> dict:
        """The report as JSON-ready values for summary.json (each name list cut to its first 50)."""
        return {
            "source": self.source, "matched": self.matched, "missing": self.missing[:50],
            "unexpected": self.unexpected[:50], "shape_mismatch": self.shape_mismatch[:50], "note": self.note,
            "entry": self.entry, "prefix": self.prefix, "ignored": self.ignored[:50], "coverage": self.coverage,
            "partial": self.partial, "file_classes": self.file_classes, "head_kept": self.head_kept,
            "head_tensors": self.head_tensors, "head_outputs": self.head_outputs,
        }


def check_bundled(name: str) -> None:
    """Raise StudioError, saying which backbones have them, when no bundled offline weights ship for the
    registered backbone `name` (or its file is missing from assets/backbones)."""
    if not BACKBONES[name].has_bundled():
        raise StudioError(
            f"No bundled offline weights ship for {name}. Backbones with bundled weights: "
            f"{', '.join(n for n, s in BACKBONES.items() if s.has_bundled()) or 'none'}. "
            "Choose ImageNet (needs internet once) or no pretraining."
        )


def build_model(name: str, num_classes: int, pretrained: str = "none", checkpoint: str = "",
                checkpoint_label: str = "", classes: list[str] | None = None,
                initialise: bool = True) -> tuple[Classifier, LoadReport]:
    """Build backbone `name` with `pretrained` weights and a fresh head for `num_classes`.

    `checkpoint` is the file read when `pretrained == "checkpoint"`; `checkpoint_label` is the name
    messages use for it (the user's own file name, when the file was stored under another).
    `classes`, the dataset's class names in label order: when the checkpoint says it was trained on
    exactly these (a studio checkpoint or export: `checkpoint_classes`), its classification head is
    kept instead of replaced, so continuing from one's own model (for example fine-tuning a naturally
    trained model adversarially, as Jeddi et al. 2020 do) starts from that model's predictions.
    Raises StudioError for an unknown backbone or source, missing weights, an unreadable file, or
    a checkpoint of another architecture (see `load_matching`).

    `initialise=False` (with `pretrained="none"` only) leaves the weights of the trunk and the head unset (whatever
    memory held; buffers zero) for a caller that loads every tensor next, a finished run's checkpoint: drawing a
    ResNet-18's random weights twice (each layer's default, then torchvision's) took 0.16 s of a 0.20 s build (Zen 3
    CPU, one thread: benchmarks/load_costs.py). The global RNG is then left as it was, except for a network with
    buffers outside its state dict, which is built as usual.
    """
    if name not in BACKBONES:
        raise StudioError(f"Unknown backbone `{name}`. Available: {', '.join(BACKBONES)}.")
    spec = BACKBONES[name]
    net = spec.builder(weights=None) if initialise or pretrained != "none" else _uninitialised(spec)
    report = LoadReport(source=pretrained)
    mean = std = None
    if pretrained == "imagenet":
        state = load_imagenet_state(spec)
        report = load_matching(net, state, "imagenet", skip_prefix=spec.head_attr, backbone=name)
    elif pretrained == "bundled":
        check_bundled(name)
        state = load_state_file(spec.bundled_path)
        report = load_matching(net, state, "bundled", skip_prefix=spec.head_attr, backbone=name)
        mean, std = bundled_normalisation(spec)
    elif pretrained == "checkpoint":

        path = resolve_path(checkpoint)
        label = checkpoint_label or Path(checkpoint).name
        meta = _studio_metadata(path) if path.is_file() else {}  # read once: what kind of model, which classes
        kind = _studio_kind_in(meta)
        if kind == "structured":
            raise StudioError(f"{label} is a channel-pruned studio model (structured pruning): its layers have fewer "
                              f"channels than {backbone_title(name)}'s, so it cannot start a run. Start from the same "
                              "run's final weights (the full-size model) instead.")
        if kind == "adafilter":
            raise StudioError(f"{label} is a studio model trained with AdaFilter: it holds two copies of every filter "
                              "and a gate network, so it cannot start a run of a plain network. Start from a run "
                              "trained without AdaFilter, or from the bundled weights.")
        candidates = read_checkpoint(path, label)
        own = _shapes_of(net)
        # A training checkpoint can hold several state dicts (model and EMA, student and teacher):
        # take the one that fits this backbone best, the usual wrapper first among equals.
        entry, state = max(candidates, key=lambda c: len(_fit(c[1], own, spec.head_attr).matched))
        report = load_matching(net, state, f"checkpoint {label}", skip_prefix=spec.head_attr, backbone=name)
        report.entry = entry
        if entry:
            report.note = (f"read from the file's `{entry}` entry; " + report.note).rstrip("; ")
        report.file_classes = _classes_in(meta)
    elif pretrained != "none":
        raise StudioError(f"Unknown pretrained source `{pretrained}`: choose {', '.join(PRETRAINED_SOURCES)}.")
    old_head = _get_submodule(net, spec.head_attr)
    if initialise or pretrained != "none":
        head = nn.Linear(old_head.in_features, num_classes)
    else:
        head = skip_init(nn.Linear, old_head.in_features, num_classes)
    if pretrained == "checkpoint" and classes is not None and report.file_classes:
        same = report.file_classes == list(classes)
        report.head_kept = same and _load_head(head, state, report.prefix + spec.head_attr)
        head_note = (f"classification head kept: the file was trained on the same {num_classes} classes"
                     if report.head_kept else
                     f"new classification head: the file was trained on {len(report.file_classes)} other classes")
        report.note = "; ".join(n for n in (report.note, head_note) if n)
    _set_submodule(net, spec.head_attr, head)
    set_bn_momentum(net, BN_MOMENTUM)
    return Classifier(net, spec, num_classes, mean, std), report


def _uninitialised(spec: BackboneSpec) -> nn.Module:
    """`spec`'s torchvision network with its weights allocated on the CPU but not drawn (built on the meta device) and
    its buffers zero; built as usual when it has a buffer outside its state dict, which a checkpoint would not set."""
    with torch.device("meta"):
        net = spec.builder(weights=None)
    if set(dict(net.named_buffers())) - set(net.state_dict()):
        return spec.builder(weights=None)
    net = net.to_empty(device="cpu")
    for buffer in net.buffers():  # batch norm fills a checkpoint's missing step counter from its own: 0, as built
        buffer.zero_()
    return net


def _load_head(head: nn.Linear, state: dict[str, torch.Tensor], key: str) -> bool:
    """Copy `state[key + ".weight"]` ([classes, features]) and `.bias` ([classes]) into `head` when
    both are there with its shapes; True when copied."""
    w, b = state.get(key + ".weight"), state.get(key + ".bias")
    if w is None or b is None or tuple(w.shape) != tuple(head.weight.shape) or tuple(b.shape) != tuple(head.bias.shape):
        return False
    with torch.no_grad():
        head.weight.copy_(w.to(head.weight.dtype))
        head.bias.copy_(b.to(head.bias.dtype))
    return True


def _studio_metadata(path: Path) -> dict[str, str]:
    """A safetensors file's metadata ({} for other formats or an unreadable header; never raises)."""
    from engine.checkpoints import read_metadata

    try:
        return read_metadata(path) if checkpoint_format(Path(path)) == "safetensors" else {}
    except (StudioError, OSError):
        return {}


def _classes_in(meta: dict[str, str]) -> list[str] | None:
    try:
        names = json.loads(meta["classes"]) if meta.get("classes") else None
    except ValueError:
        return None
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        return names
    return None


def checkpoint_classes(path: Path) -> list[str] | None:
    """The class names (label order) a checkpoint file says its head was trained on, or None.

    The studio writes them into its safetensors files' metadata (`classes`: a JSON list of strings)
    for run checkpoints and exports; other files, and torch.save files, say nothing the studio reads.
    Never raises: an unreadable or odd header is the same as no classes.
    """
    return _classes_in(_studio_metadata(path))


def _studio_kind_in(meta: dict[str, str]) -> str:
    """"structured" (a channel-pruned model), "adafilter" (a gated model: two copies of every filter) or
    "" for anything else, from a studio file's metadata: neither of the first two has the layers of a
    plain backbone, so neither can start a run."""
    if "structured_arch" in meta:
        return "structured"
    try:
        cfg = json.loads(meta.get("config") or "{}")
    except ValueError:
        return ""
    ada = cfg.get("adafilter") if isinstance(cfg, dict) else None  # the config's method sections are top level
    return "adafilter" if isinstance(ada, dict) and ada.get("enabled") else ""


# torchvision builds MobileNetV3 and EfficientNet with batch-norm momentum 0.01 (made for long
# ImageNet runs): in a fine-tune of a few hundred steps their running statistics barely leave the
# pretraining data's, and evaluation suffers (MobileNetV3-Small, bundled weights, sample textures,
# 100 steps: 23.4% test; with 0.1, 36.7%). PyTorch's default, 0.1, follows the new data within tens
# of steps; ResNets already use it.
BN_MOMENTUM = 0.1


def set_bn_momentum(net: nn.Module, momentum: float) -> None:
    """Set `momentum` (the weight of each new batch in the running statistics, 0-1; PyTorch's convention) on every
    batch-norm layer of `net`, in place. Raises nothing."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = momentum


def bundled_normalisation(spec: BackboneSpec) -> tuple[tuple | None, tuple | None]:
    """The mean/std the bundled weights were pretrained with (from their recipe file)."""
    recipe = spec.bundled_path.with_suffix(".json")
    if recipe.is_file():
        meta = json.loads(recipe.read_text()).get("input", {})
        if "mean" in meta and "std" in meta:
            return tuple(meta["mean"]), tuple(meta["std"])
    return None, None


def load_imagenet_state(spec: BackboneSpec) -> dict[str, torch.Tensor]:
    """torchvision's weights API: cached file if present, else a download (needs internet)."""
    weights = spec.weights_enum.DEFAULT
    try:
        return weights.get_state_dict(progress=False, check_hash=False)
    except Exception as exc:  # URLError, HTTPError, socket errors, a truncated file ...
        raise StudioError(
            f"ImageNet weights for {spec.name} are not available: the file {spec.imagenet_cache_path().name} "
            f"is not in the cache folder {spec.imagenet_cache_path().parent} and could not be downloaded "
            f"({type(exc).__name__}). Connect to the internet once, copy the file into that folder, or "
            + ("choose the bundled weights." if spec.has_bundled() else  # ResNet-50 offline was told to, with none
               f"choose a backbone with bundled weights "
               f"({', '.join(s.title for s in BACKBONES.values() if s.has_bundled()) or 'none here'}) or none.")
        ) from None


# ---- user checkpoints -------------------------------------------------------------------------

# What a checkpoint file is, is decided by its bytes (`checkpoint_format`), never by its name:
# `model_best.pth.tar` (PyTorch's ImageNet example), Lightning's `.ckpt` and Hugging Face's
# `pytorch_model.bin` are all torch.save files. The suffixes only feed the dashboard's file picker.
CHECKPOINT_SUFFIXES = ("safetensors", "pt", "pth", "tar", "bin", "ckpt")
CHECKPOINT_FORMATS = {
    "safetensors": "safetensors (tensors only: nothing in it can run)",
    "torch_zip": "PyTorch's torch.save format (a zip archive, PyTorch 1.6 and later), read with weights_only=True",
    "torch_legacy": "PyTorch's older torch.save format (a pickle stream), read with weights_only=True",
}
# The same, in the words a refusal uses
CHECKPOINT_EXTENSIONS = ".pt, .pth, .pth.tar, .bin, .ckpt"  # the suffixes torch.save's files usually carry
READABLE_CHECKPOINTS = f"a safetensors file, or a file that PyTorch's torch.save wrote ({CHECKPOINT_EXTENSIONS})"
# Entries that wrap the model's state dict in training checkpoints (PyTorch's ImageNet example,
# Lightning, timm, DINO, EMA trainers): tried in this order, then any other nested dict.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "module", "ema", "model_ema",
                "state_dict_ema", "ema_state_dict", "teacher", "student", "backbone", "encoder", "params", "weights")
NOT_WEIGHTS = ("optimizer", "optimizer_state_dict", "optimizer_states", "optim", "scheduler", "lr_scheduler",
               "lr_schedulers", "scaler", "callbacks", "loops")  # entries that never hold the model's weights
# A file is refused when more than this share of its tensors (under the matched prefix, head
# excluded) has a name the backbone lacks or another shape: it was made for another architecture,
# and the tensors that do "match" (a ResNet-50's stem and batch norms in a ResNet-18) match by
# coincidence of names. Legitimate extras (a projection head, a loss buffer) stay well below.
MAX_MISFIT_SHARE = 0.1
PARTIAL_SHARE = 0.5  # a file that supplies less than this share of the backbone is loaded, with a warning
FAMILY_TITLES = {"resnet": "ResNet", "mobilenet": "MobileNet", "efficientnet": "EfficientNet",
                 "convnext": "ConvNeXt", "vit": "Vision Transformer"}


def checkpoint_format(path: Path) -> str:
    """The key of CHECKPOINT_FORMATS that the file's first bytes show, or "" for none of them.

    safetensors: an 8-byte little-endian header length, then a JSON header (`{`); a torch.save zip:
    the zip signature `PK\\x03\\x04`; the legacy torch.save format: a pickle (protocol 2-5 opcode).
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(9)
    if head[:4] == b"PK\x03\x04":
        return "torch_zip"
    if len(head) == 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= size - 8:
        return "safetensors"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "torch_legacy"
    return ""


def cut_short(path: Path, kind: str) -> bool:
    """Whether a checkpoint file of format `kind` (`checkpoint_format`) ends before its contents do, as after an
    interrupted copy or download: a torch.save zip without the end-of-archive record zips close with (in its last
    64 KiB + 22 bytes), a legacy torch.save file whose first four pickles run out before their end, a safetensors
    file shorter than the data its header lists, or (`kind` "") a file that
    starts as safetensors (an 8-byte length, then `{"`) too short to hold its header, which `checkpoint_format`
    does not take for safetensors. Never raises."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            if not kind:
                head = f.read(10)
                return len(head) == 10 and head[8:10] == b'{"' and int.from_bytes(head[:8], "little") > size - 8
            if kind == "torch_zip":
                f.seek(max(0, size - 65_557))
                return b"PK\x05\x06" not in f.read()
            if kind == "torch_legacy":  # its first pickles (magic number, protocol, system, objects) run out early
                import pickletools

                try:
                    for _ in range(4):
                        for _ in pickletools.genops(f):
                            pass
                except ValueError:  # "... ran off the end", "no newline found ...": the bytes ended
                    return True
                return False
            if kind == "safetensors":
                length = int.from_bytes(f.read(8), "little")
                header = json.loads(f.read(length))
                ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
                return 8 + length + max(ends, default=0) > size
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return False
    return False


CUT_SHORT = ("{label} looks cut short: the file ends before its contents do, as after an interrupted copy or "
             "download. Copy or download it again.")


def read_checkpoint(path: Path, label: str = "") -> list[tuple[str, dict[str, torch.Tensor]]]:
    """Every state dict in a checkpoint file, the usual wrapper first: [(entry, {name: tensor})].

    The format is read from the bytes (see CHECKPOINT_FORMATS); torch.save files are unpickled
    with `weights_only=True`, so a file that carries Python objects is refused, never run.
    `entry` is "" for a bare state dict, else the wrapper keys that lead to it ("state_dict",
    "model > ema"). `label` is the file's name in messages (default: the path's name).
    Raises StudioError for a missing, unreadable or unsafe file, or one without named tensors.
    """
    label = label or path.name
    if not path.is_file():
        raise StudioError(f"Checkpoint file not found: {label}")
    kind = checkpoint_format(path)
    readable = READABLE_CHECKPOINTS
    if kind == "safetensors":
        from safetensors.torch import load_file

        try:
            return [("", load_file(str(path)))]
        except Exception as exc:
            if cut_short(path, kind):
                raise StudioError(CUT_SHORT.format(label=label)) from None
            raise StudioError(f"{label} is not a readable safetensors file ({exc}).") from None
    if kind == "torch_zip":
        try:
            with zipfile.ZipFile(path) as zf:
                is_torch = any(n.endswith("data.pkl") for n in zf.namelist())
        except (zipfile.BadZipFile, OSError) as exc:
            if cut_short(path, kind):
                raise StudioError(CUT_SHORT.format(label=label)) from None
            raise StudioError(f"{label} is not a readable PyTorch checkpoint (a damaged zip archive: {exc}).") from None
        if not is_torch:
            raise StudioError(f"{label} is a zip archive but not a PyTorch checkpoint (PyTorch's torch.save did not write it). "
                              f"Checkpoints the studio reads: {readable}.")
    if not kind and cut_short(path, kind):
        raise StudioError(CUT_SHORT.format(label=label))
    if not kind:
        # "not A, or B" read as if one of the two held (a new user's text file renamed .pt)
        raise StudioError(f"{label} is not a model checkpoint the studio can read: its contents are neither a "
                          f"safetensors file nor a file that PyTorch's torch.save wrote ({CHECKPOINT_EXTENSIONS}). Use "
                          "the file your training saved its weights to.")
    try:
        # An open file, not the path: torch.load reads a path that ends in .safetensors as safetensors
        # whatever its bytes are, and the bytes have been looked at already.
        with open(path, "rb") as f:
            obj = torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        imports = _pickle_imports(path)
        if imports:
            raise StudioError(
                f"{label} was refused: besides weights it contains Python objects that could run code when "
                f"opened ({', '.join(imports[:3])}). Save only the model's state_dict() "
                "(torch.save(model.state_dict(), 'weights.pth')) or use safetensors, and upload that."
            ) from None
        if cut_short(path, kind):
            raise StudioError(CUT_SHORT.format(label=label)) from None
        raise StudioError(f"{label} is not a readable PyTorch checkpoint (corrupt or another format).") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError,
            struct.error) as exc:
        # the legacy format's pickle or data ends early (a cut in its first bytes: struct's or an index's error)
        if isinstance(exc, (EOFError, IndexError, struct.error)) or "unexpected EOF" in str(exc):
            raise StudioError(CUT_SHORT.format(label=label)) from None
        raise StudioError(f"{label} is not a readable PyTorch checkpoint ({exc}).") from None
    found = _state_dicts(obj)
    if not found:
        raise StudioError(f"{label} holds no weights: no named tensors were found in it (expected a state dict, "
                          "alone or inside an entry such as `state_dict` or `model`).")
    return found


def _state_dicts(obj, entry: str = "", depth: int = 0) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """(entry, named tensors) for `obj` and the dicts nested in it, wrapper keys first, 3 levels deep."""
    if not isinstance(obj, dict):
        return []
    found = []
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if tensors:
        found.append((entry, tensors))
    if depth < 3:
        keys = [k for k in WRAPPER_KEYS if k in obj]
        keys += [k for k in obj if isinstance(k, str) and k not in WRAPPER_KEYS and k not in NOT_WEIGHTS]
        for k in keys:
            found += _state_dicts(obj[k], f"{entry} > {k}" if entry else k, depth + 1)
    return found


def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """The main state dict of a checkpoint file: the largest one `read_checkpoint` finds, the usual
    wrapper first among equals (a model beside its EMA copy: the model)."""
    candidates = read_checkpoint(Path(path))
    return max(candidates, key=lambda c: len(c[1]))[1]


# Modules whose globals a torch.save file of plain tensors references (what weights_only allows).
_SAFE_PICKLE_MODULES = ("torch", "torch._utils", "torch._tensor", "torch.storage", "torch.serialization",
                        "collections", "builtins", "_codecs")


def _pickle_imports(path: Path) -> list[str]:
    """Names outside plain tensors that a pickle would import (read with pickletools: nothing runs).

    Tells a file that carries code or whole pickled modules (refused for safety) from one that is
    merely corrupt. Reads every pickle in the stream: the legacy torch.save format is several.
    """
    import io
    import pickletools

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            pkl = [n for n in zf.namelist() if n.endswith("data.pkl")]
            data = zf.read(pkl[0]) if pkl else b""
    else:
        data = path.read_bytes()
    stream = io.BytesIO(data)
    names: list[str] = []
    for _ in range(8):  # legacy torch.save: magic number, protocol, system info, the object
        strings: list[str] = []
        try:
            for op, arg, _pos in pickletools.genops(stream):
                if isinstance(arg, str):
                    strings.append(arg)
                if op.name in ("GLOBAL", "INST"):
                    names.append(str(arg))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    names.append(f"{strings[-2]} {strings[-1]}")
        except Exception:
            break  # the end of the pickles (storage bytes follow), or not a pickle at all
    return list(dict.fromkeys(n.replace(" ", ".") for n in names if n.split(" ")[0] not in _SAFE_PICKLE_MODULES))


# ---- matching a state dict to a backbone --------------------------------------------------------

@dataclass
class _Fit:
    prefix: str = ""
    matched: dict[str, torch.Tensor] = field(default_factory=dict)  # backbone key -> file tensor
    mismatch: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    in_scope: int = 0  # file tensors under the prefix, head excluded

    @property
    def misfit(self) -> float:
        return (len(self.mismatch) + len(self.unexpected)) / max(self.in_scope, 1)


def head_left_out(report: dict) -> str:
    """From a load_report (LoadReport.to_dict, a summary's "load_report"): the user's file's own classification
    head that a new one replaced, "2 tensors for 10 classes"; "" where the file had none or it was kept, for weights
    not the user's (ImageNet's 1000-class head goes without saying), and for a studio file, whose note says what
    became of its head. `train` and Results say it beside the tensors loaded, which leave the head out: an
    engineer's 122-tensor file read "120 loaded"."""
    n, out = int(report.get("head_tensors") or 0), report.get("head_outputs")
    if not n or report.get("head_kept") or report.get("file_classes") \
            or not str(report.get("source") or "").startswith("checkpoint"):
        return ""
    return plural(n, "tensor") + (f" for {out} classes" if out else "")


def _is_head(key: str, head_attr: str | None) -> bool:
    return bool(head_attr) and key.startswith(head_attr + ".")


def _shapes_of(net: nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def _fit(state: dict[str, torch.Tensor], own: dict[str, tuple], head_attr: str | None) -> _Fit:
    """Match `state` to a backbone's key -> shape map, after removing the key prefix that fits best.

    Wrappers add prefixes (`module.` from DataParallel, `_orig_mod.` from torch.compile, `model.`
    from Lightning, `net.` from this studio, `encoder_q.` from MoCo, or several at once); rather
    than list them, every prefix that turns a file key into a backbone key of the same shape is
    counted, and the most frequent wins. Keys outside it are another part of the file (ignored).
    """
    counts: dict[str, int] = {}
    for key, tensor in state.items():
        for i in [0] + [j + 1 for j, ch in enumerate(key) if ch == "."]:
            rest = key[i:]
            if own.get(rest) == tuple(tensor.shape) and not _is_head(rest, head_attr):
                counts[key[:i]] = counts.get(key[:i], 0) + 1
    fit = _Fit(prefix=max(counts, key=counts.get) if counts else "")  # first seen among equals
    for key, tensor in state.items():
        if not key.startswith(fit.prefix):
            fit.ignored.append(key)
            continue
        rest = key[len(fit.prefix):]
        if _is_head(rest, head_attr):
            continue  # the head is replaced anyway
        fit.in_scope += 1
        if rest not in own:
            fit.unexpected.append(key)
        elif own[rest] != tuple(tensor.shape):
            fit.mismatch.append(f"{key}: {tuple(tensor.shape)} vs {own[rest]}")
        else:
            fit.matched[rest] = tensor
    return fit


@functools.lru_cache(maxsize=None)
def _registry_shapes(name: str) -> dict[str, tuple]:
    """A registered backbone's key -> shape map, built on the meta device (no memory, no weights)."""
    with torch.device("meta"):
        return _shapes_of(BACKBONES[name].builder(weights=None))


def guess_architecture(state: dict[str, torch.Tensor]) -> tuple[str, float] | None:
    """The registered backbone whose names and shapes fit `state` best, and the share of the file's
    tensors (head excluded) that fit it; None when no backbone fits at least 90% of them.

    Among backbones that fit equally well, the one the file covers most wins (a ResNet-18 file
    fits ResNet-18 fully, and ResNet-50 only in the layers whose names and shapes coincide).
    """
    best, best_score = None, (0.0, 0.0)
    for name, spec in BACKBONES.items():
        own = _registry_shapes(name)
        fit = _fit(state, own, spec.head_attr)
        if not fit.in_scope:
            continue
        body = sum(1 for k in own if not _is_head(k, spec.head_attr))
        score = (len(fit.matched) / fit.in_scope, len(fit.matched) / max(body, 1))
        if score > best_score:
            best, best_score = name, score
    return (best, best_score[0]) if best is not None and best_score[0] >= 0.9 else None


# where a run starts (backbone.pretrained), in the words the dashboard and the command line use
WEIGHTS_TEXT = {"bundled": "bundled weights", "imagenet": "ImageNet weights", "none": "no pretraining",
                "checkpoint": "your checkpoint"}


def backbone_title(name: str) -> str:
    """What the UI calls a backbone: "ResNet-18" for `resnet18`; an unregistered name unchanged."""
    spec = BACKBONES.get(name)
    return spec.title if spec is not None else name


def describe_backbone(name: str) -> str:
    """A registered backbone in plain words: "ResNet-50 weights (ResNet family; `resnet50` here)"."""
    spec = BACKBONES[name]
    return f"{spec.title} weights ({FAMILY_TITLES.get(spec.family, spec.family)} family; `{name}` here)"


def _refusal(source: str, backbone: str, fit: _Fit, state: dict[str, torch.Tensor]) -> StudioError:
    what = backbone or "this backbone"
    guess = guess_architecture(state)
    if guess and guess[0] != backbone:
        hint = f" It looks like {describe_backbone(guess[0])}: choose that backbone, or a checkpoint made for {what}."
    else:
        hint = f" It does not look like any backbone registered here either ({', '.join(BACKBONES)})."
    if not fit.matched:
        return StudioError(f"None of the weights in the {source} match the {what} architecture ({len(state)} "
                           f"tensors in the file, e.g. {next(iter(state), '?')}).{hint}")
    wrong = [f"{len(fit.unexpected)} have names {what} does not have" if fit.unexpected else "",
             f"{len(fit.mismatch)} have another shape" if fit.mismatch else ""]
    return StudioError(
        f"The {source} was made for another architecture than {what}: of its {fit.in_scope} weight tensors, "
        f"{' and '.join(w for w in wrong if w)}; the {len(fit.matched)} that fit match only by coincidence of "
        f"layer names.{hint}")


def load_matching(net: nn.Module, state: dict[str, torch.Tensor], source: str, skip_prefix: str | None,
                  backbone: str = "") -> LoadReport:
    """Copy every tensor whose name (after the best-fitting prefix is removed) and shape match.

    `skip_prefix` names the head, which is replaced anyway; `backbone` is the registry name used
    in messages. Raises StudioError when nothing matches, or when more than MAX_MISFIT_SHARE of
    the file's tensors has a name the backbone lacks or another shape (a checkpoint of another
    architecture), naming the registered backbone the file looks like. Tensors are cast to the
    backbone's dtypes (a float16 file loads into float32 layers).
    """
    own = net.state_dict()
    fit = _fit(state, _shapes_of(net), skip_prefix)
    if not fit.matched or fit.misfit > MAX_MISFIT_SHARE:
        raise _refusal(source, backbone, fit, state)
    report = LoadReport(source=source, matched=len(fit.matched), unexpected=fit.unexpected,
                        shape_mismatch=fit.mismatch, prefix=fit.prefix, ignored=fit.ignored)
    head = [v for k, v in state.items() if k.startswith(fit.prefix) and _is_head(k[len(fit.prefix):], skip_prefix)]
    report.head_tensors = len(head)
    report.head_outputs = next((int(v.shape[0]) for v in head if v.ndim == 2), None)  # Linear weight [out, in]
    weights = [k for k in own if not _is_head(k, skip_prefix) and not k.endswith("num_batches_tracked")]
    report.missing = [k for k in weights if k not in fit.matched]
    report.coverage = (len(weights) - len(report.missing)) / max(len(weights), 1)
    notes = []
    if fit.prefix:
        # in words a teacher can say: what the prefix is and where it comes from
        notes.append(f"the prefix `{fit.prefix}` (this studio's own) removed from every weight's name"
                     if fit.prefix == "net." else
                     f"the prefix `{fit.prefix}` that a training wrapper adds to every weight's name removed")
    if fit.ignored:
        notes.append(f"{len(fit.ignored)} tensors outside `{fit.prefix}` ignored (another part of the file)")
    if report.partial:
        notes.append(f"only {report.coverage:.0%} of the backbone's weights are in the file; the rest stay random")
    report.note = "; ".join(notes)
    net.load_state_dict({k: v.to(own[k].dtype) for k, v in fit.matched.items()}, strict=False)
    return report
