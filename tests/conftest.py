"""Shared fixtures: tiny datasets and tiny run configs, so the suite stays fast on 2 cores."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import os

import numpy as np
import pytest
import torch
from PIL import Image

from engine.config import RunConfig, apply_overrides

# Tiny models gain nothing from a second thread, and OpenMP threads that spin against another
# busy process make a step 30x slower: one thread keeps the suite fast on a shared 2-core box.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")
# `train.amp: auto` on the CPU follows a per-machine measurement (engine.devices.cpu_precision); the
# suite pins fp32 so its results are the same on every machine. tests/test_precision.py tests the choice.
os.environ.setdefault("STUDIO_CPU_PRECISION", "fp32")

TINY_CLASSES = ("red", "green", "stripes")

# The engine tests train on the CPU; STUDIO_TEST_DEVICE=cuda runs the same tests through the GPU path
# (benchmarks/gpu_check.sh does that on a machine with a GPU).
TEST_DEVICE = os.environ.get("STUDIO_TEST_DEVICE", "cpu")


def tiny_image(cls: str, i: int, size: int = 24) -> Image.Image:
    rng = np.random.default_rng(i + 1000 * TINY_CLASSES.index(cls))
    arr = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
    if cls == "red":
        arr[..., 0] += 180
    elif cls == "green":
        arr[..., 1] += 180
    else:
        arr[:, :: 4] += 180
    return Image.fromarray(arr)


def write_tiny_zip(path: Path, per_class: int = 20, classes=TINY_CLASSES, nested: str = "") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for cls in classes:
            for i in range(per_class):
                buf = io.BytesIO()
                tiny_image(cls, i).save(buf, format="PNG")
                zf.writestr(f"{nested}{cls}/{i}.png", buf.getvalue())
    return path


@pytest.fixture(scope="session")
def tiny_zip(tmp_path_factory) -> Path:
    return write_tiny_zip(tmp_path_factory.mktemp("data") / "tiny.zip")


def tiny_config(data: Path, *overrides: str) -> RunConfig:
    base = [
        f"data.source={data}", "data.image_size=32", "backbone.name=resnet18", "backbone.pretrained=none",
        "train.epochs=2", "train.batch_size=8", "optim.lr=0.01", "eval.eval_batch_size=64", f"train.device={TEST_DEVICE}",
    ]
    return apply_overrides(RunConfig(), base + list(overrides))


@pytest.fixture
def tiny_cfg(tiny_zip):
    return lambda *overrides: tiny_config(tiny_zip, *overrides)
