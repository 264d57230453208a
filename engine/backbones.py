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

import json
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torchvision
from torch import nn

from engine.errors import StudioError
from engine.paths import ASSETS_DIR, resolve_path

ASSETS_BACKBONES = ASSETS_DIR / "backbones"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PRETRAINED_SOURCES = ("bundled", "imagenet", "none", "checkpoint")


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    family: str  # resnet | mobilenet | efficientnet | convnext | vit
    builder: Callable[..., nn.Module]  # torchvision builder: builder(weights=None, num_classes=...)
    weights_enum: type  # torchvision weights enum (its DEFAULT is "imagenet")
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
    def bundled_path(self) -> Path | None:
        return ASSETS_BACKBONES / self.bundled_file if self.bundled_file else None

    def has_bundled(self) -> bool:
        p = self.bundled_path
        return p is not None and p.is_file()

    def imagenet_cache_path(self) -> Path:
        url = self.weights_enum.DEFAULT.url
        return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name

    def has_imagenet_cached(self) -> bool:
        return self.imagenet_cache_path().is_file()

    def num_params(self, num_classes: int = 1000) -> int:
        with torch.device("meta"):
            net = self.builder(weights=None)
        return sum(p.numel() for p in net.parameters()) - (1000 - num_classes) * (self.feature_dim + 1)


BACKBONES: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    if spec.name in BACKBONES:
        raise ValueError(f"backbone {spec.name!r} is already registered")
    BACKBONES[spec.name] = spec
    return spec


tvm = torchvision.models
for _spec in (
    BackboneSpec("resnet18", "resnet", tvm.resnet18, tvm.ResNet18_Weights, "fc", 512,
                 bundled_file="resnet18_fractal.safetensors",
                 description="ResNet-18, 11.7M parameters: the classic, fast and robust default."),
    BackboneSpec("resnet50", "resnet", tvm.resnet50, tvm.ResNet50_Weights, "fc", 2048,
                 description="ResNet-50, 25.6M parameters: stronger, about 2-3x slower than ResNet-18."),
    BackboneSpec("mobilenet_v3_small", "mobilenet", tvm.mobilenet_v3_small, tvm.MobileNet_V3_Small_Weights,
                 "classifier.3", 1024, bundled_file="mobilenet_v3_small_fractal.safetensors",
                 description="MobileNetV3-Small, 2.5M parameters: tiny and fast on a laptop CPU."),
    BackboneSpec("mobilenet_v3_large", "mobilenet", tvm.mobilenet_v3_large, tvm.MobileNet_V3_Large_Weights,
                 "classifier.3", 1280, description="MobileNetV3-Large, 5.5M parameters."),
    BackboneSpec("efficientnet_b0", "efficientnet", tvm.efficientnet_b0, tvm.EfficientNet_B0_Weights,
                 "classifier.1", 1280, description="EfficientNet-B0, 5.3M parameters."),
    BackboneSpec("convnext_tiny", "convnext", tvm.convnext_tiny, tvm.ConvNeXt_Tiny_Weights, "classifier.2", 768,
                 description="ConvNeXt-Tiny, 28.6M parameters: a modern CNN; slow on a CPU."),
    BackboneSpec("vit_b_16", "vit", tvm.vit_b_16, tvm.ViT_B_16_Weights, "heads.head", 768,
                 min_image_size=224, fixed_image_size=224,
                 description="ViT-B/16, 86.6M parameters: a vision transformer; needs 224 px and a GPU."),
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
        return self.net((x - self.mean) / self.std)

    @property
    def head(self) -> nn.Module:
        return _get_submodule(self.net, self.head_attr)

    def head_parameter_ids(self) -> set[int]:
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
    source: str
    matched: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape_mismatch: list[str] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict:
        return {
            "source": self.source, "matched": self.matched, "missing": self.missing[:50],
            "unexpected": self.unexpected[:50], "shape_mismatch": self.shape_mismatch[:50], "note": self.note,
        }


def build_model(name: str, num_classes: int, pretrained: str = "none", checkpoint: str = "") -> tuple[Classifier, LoadReport]:
    """Build backbone `name` with `pretrained` weights and a fresh head for `num_classes`."""
    if name not in BACKBONES:
        raise StudioError(f"Unknown backbone `{name}`. Available: {', '.join(BACKBONES)}.")
    spec = BACKBONES[name]
    net = spec.builder(weights=None)
    report = LoadReport(source=pretrained)
    mean = std = None
    if pretrained == "imagenet":
        state = load_imagenet_state(spec)
        report = load_matching(net, state, "imagenet", skip_prefix=spec.head_attr)
    elif pretrained == "bundled":
        if not spec.has_bundled():
            raise StudioError(
                f"No bundled offline weights ship for {name}. Backbones with bundled weights: "
                f"{', '.join(n for n, s in BACKBONES.items() if s.has_bundled()) or 'none'}. "
                "Choose ImageNet (needs internet once) or no pretraining."
            )
        state = load_state_file(spec.bundled_path)
        report = load_matching(net, state, "bundled", skip_prefix=spec.head_attr)
        mean, std = bundled_normalisation(spec)
    elif pretrained == "checkpoint":

        state = load_state_file(resolve_path(checkpoint))
        report = load_matching(net, state, f"checkpoint {Path(checkpoint).name}", skip_prefix=spec.head_attr)
    elif pretrained != "none":
        raise StudioError(f"Unknown pretrained source `{pretrained}`: choose {', '.join(PRETRAINED_SOURCES)}.")
    old_head = _get_submodule(net, spec.head_attr)
    _set_submodule(net, spec.head_attr, nn.Linear(old_head.in_features, num_classes))
    set_bn_momentum(net, BN_MOMENTUM)
    return Classifier(net, spec, num_classes, mean, std), report


# torchvision builds MobileNetV3 and EfficientNet with batch-norm momentum 0.01 (made for long
# ImageNet runs): in a fine-tune of a few hundred steps their running statistics barely leave the
# pretraining data's, and evaluation suffers (MobileNetV3-Small, bundled weights, sample textures,
# 100 steps: 23.4% test; with 0.1, 36.7%). PyTorch's default, 0.1, follows the new data within tens
# of steps; ResNets already use it.
BN_MOMENTUM = 0.1


def set_bn_momentum(net: nn.Module, momentum: float) -> None:
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
            f"({type(exc).__name__}). Connect to the internet once, copy the file into that folder, "
            "or choose the bundled weights."
        ) from None


def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors (no code at all) or .pt/.pth (weights_only unpickling)."""
    if not path.is_file():
        raise StudioError(f"Checkpoint file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise StudioError(f"{path.name} is not a readable safetensors file ({exc}).") from None
    if suffix not in (".pt", ".pth", ".bin", ".ckpt"):
        raise StudioError(f"{path.name}: checkpoints must be .safetensors, .pt or .pth files.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if _pickle_imports(path):
            raise StudioError(
                f"{path.name} was refused: it contains Python objects that could run code when opened, "
                "not just weights. Save the model's state_dict() (or use safetensors) and upload that."
            ) from None
        raise StudioError(f"{path.name} is not a readable PyTorch checkpoint (corrupt or another format).") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise StudioError(f"{path.name} is not a readable PyTorch checkpoint ({exc}).") from None
    for key in ("state_dict", "model", "model_state_dict", "net"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise StudioError(f"{path.name} holds no weights (expected a state dict of tensors).")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _pickle_imports(path: Path) -> list[str]:
    """Names a pickle would import (read with pickletools: nothing is executed).

    Tells a file that carries code (refused for safety) from one that is merely corrupt.
    """
    import pickletools

    data = path.read_bytes()
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            pkl = [n for n in zf.namelist() if n.endswith("data.pkl")]
            data = zf.read(pkl[0]) if pkl else b""
    names, strings = [], []
    try:
        for op, arg, _pos in pickletools.genops(data):
            if isinstance(arg, str):
                strings.append(arg)
            if op.name in ("GLOBAL", "INST"):
                names.append(str(arg))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                names.append(f"{strings[-2]} {strings[-1]}")
    except Exception:
        pass  # not a pickle at all: corrupt, so no imports
    safe = ("torch", "collections OrderedDict", "collections.OrderedDict", "builtins")
    return [n for n in names if not n.startswith(safe)]


def _normalise_key(key: str) -> str:
    for prefix in ("module.", "model.", "net."):
        while key.startswith(prefix):
            key = key[len(prefix):]
    return key


def load_matching(net: nn.Module, state: dict[str, torch.Tensor], source: str, skip_prefix: str | None) -> LoadReport:
    """Copy every tensor whose (normalised) name and shape match; report the rest.

    `skip_prefix` names the head, which is replaced anyway. Refuses a file where nothing matches:
    it is then almost surely for another architecture.
    """
    own = net.state_dict()
    report = LoadReport(source=source)
    to_load: dict[str, torch.Tensor] = {}
    for raw_key, tensor in state.items():
        key = _normalise_key(raw_key)
        if skip_prefix and key.startswith(skip_prefix + "."):
            continue
        if key not in own:
            report.unexpected.append(raw_key)
        elif own[key].shape != tensor.shape:
            report.shape_mismatch.append(f"{raw_key}: {tuple(tensor.shape)} vs {tuple(own[key].shape)}")
        else:
            to_load[key] = tensor.to(own[key].dtype)
    report.matched = len(to_load)
    head_keys = {k for k in own if skip_prefix and k.startswith(skip_prefix + ".")}
    report.missing = [k for k in own if k not in to_load and k not in head_keys and not k.endswith("num_batches_tracked")]
    if not to_load:
        raise StudioError(
            f"None of the weights in the {source} match the {net.__class__.__name__} architecture "
            f"({len(state)} tensors in the file, e.g. {next(iter(state), '?')}). Is it a checkpoint of another model?"
        )
    net.load_state_dict(to_load, strict=False)
    return report
