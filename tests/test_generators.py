"""The offline data generators: fractal (pretraining) and textures (the bundled sample dataset)."""

from __future__ import annotations

import zipfile
from collections import Counter

import pytest
import torch

from tools import fractal
from tools.textures import TEXTURE_CLASSES, make_texture_images, write_texture_zip


# ---- fractal -------------------------------------------------------------------------------

def test_sample_ifs_classes_deterministic_and_filtered():
    a = fractal.sample_ifs_classes(4, seed=3)
    b = fractal.sample_ifs_classes(4, seed=3)
    c = fractal.sample_ifs_classes(4, seed=4)
    assert len(a) == 4
    assert all(torch.equal(x.maps, y.maps) for x, y in zip(a, b))
    assert not all(x.maps.shape == y.maps.shape and torch.equal(x.maps, y.maps)
                   for x, y in zip(a, c))
    for system in a:
        m = system.maps.shape[0]
        assert fractal.MIN_MAPS <= m <= fractal.MAX_MAPS
        assert system.maps.shape == (m, 6) and system.probs.shape == (m,)
        assert torch.isclose(system.probs.sum(), torch.tensor(1.0))
    assert all(bool(fractal.is_contractive(s.maps)) for s in a)
    assert bool((fractal.filling_rate(a) >= fractal.FILL_THRESHOLD).all())


def _system(rows):
    maps = torch.tensor(rows, dtype=torch.float32)
    return fractal.IFS(maps, fractal._probs_from_maps(maps))


def test_filling_rate_rejects_degenerate_systems():
    sierpinski = _system([[0.5, 0, 0, 0.5, 0, 0], [0.5, 0, 0, 0.5, 0.5, 0],
                          [0.5, 0, 0, 0.5, 0.25, 0.5]])
    line = _system([[0.5, 0, 0, 0.0, 0, 0], [0.5, 0, 0, 0.0, 0.5, 0]])       # collapses to a line
    point = _system([[0.1, 0, 0, 0.1, 0, 0], [0.1, 0, 0, 0.1, 0.0, 0]])       # one fixed point
    divergent = _system([[1.5, 0.3, -0.2, 1.4, 0.1, 0], [0.5, 0, 0, 0.5, 0, 0.5]])
    rates = fractal.filling_rate([sierpinski, line, point, divergent], grid=32)
    assert rates[0] >= fractal.FILL_THRESHOLD
    assert (rates[1:] < fractal.FILL_THRESHOLD).all()
    assert not bool(fractal.is_contractive(divergent.maps[None]))


def test_render_batch_shape_dtype_and_seed():
    systems = fractal.sample_ifs_classes(3, seed=0)
    maps, probs = fractal._stack(systems)
    img1 = fractal.render_fractal_batch(maps, probs, 24, torch.Generator().manual_seed(1))
    img2 = fractal.render_fractal_batch(maps, probs, 24, torch.Generator().manual_seed(1))
    img3 = fractal.render_fractal_batch(maps, probs, 24, torch.Generator().manual_seed(2))
    assert img1.shape == (3, 3, 24, 24) and img1.dtype == torch.uint8
    assert torch.equal(img1, img2) and not torch.equal(img1, img3)
    assert (img1.flatten(1).amax(1) > 0).all()  # every image draws something


def test_make_fractal_dataset_deterministic():
    x1, y1 = fractal.make_fractal_dataset(3, 4, 20, seed=5)
    x2, y2 = fractal.make_fractal_dataset(3, 4, 20, seed=5)
    x3, _ = fractal.make_fractal_dataset(3, 4, 20, seed=6)
    x4, _ = fractal.make_fractal_dataset(3, 4, 20, seed=5, instance_seed=99)
    assert x1.shape == (12, 3, 20, 20) and x1.dtype == torch.uint8
    assert y1.dtype == torch.int64 and y1.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)
    assert not torch.equal(x1, x4)  # fresh instances of the same classes
    assert len({x1[i].numpy().tobytes() for i in range(12)}) == 12  # instances differ


# ---- textures ------------------------------------------------------------------------------

def test_texture_images_shapes_and_determinism():
    x1, y1 = make_texture_images(3, 32, seed=0)
    x2, y2 = make_texture_images(3, 32, seed=0)
    x3, _ = make_texture_images(3, 32, seed=1)
    n = 3 * len(TEXTURE_CLASSES)
    assert len(TEXTURE_CLASSES) >= 6
    assert x1.shape == (n, 3, 32, 32) and x1.dtype == torch.uint8
    assert y1.dtype == torch.int64 and Counter(y1.tolist()) == {i: 3 for i in range(len(TEXTURE_CLASSES))}
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)
    assert x1.float().std() > 10  # not blank


def test_texture_colour_is_not_the_class():
    """Mean colour per image must not separate classes (colour is random by design)."""
    x, y = make_texture_images(20, 32, seed=0)
    means = x.float().mean((2, 3))  # [N, 3]
    class_means = torch.stack([means[y == c].mean(0) for c in range(len(TEXTURE_CLASSES))])
    assert class_means.std(0).max() < 0.5 * means.std(0).min()


@pytest.mark.parametrize("fmt", ["jpg", "png"])
def test_texture_zip_layout_and_bytes(tmp_path, fmt):
    a = write_texture_zip(tmp_path / "a.zip", n_per_class=60, image_size=16, seed=0, fmt=fmt)
    b = write_texture_zip(tmp_path / "b.zip", n_per_class=60, image_size=16, seed=0, fmt=fmt)
    assert a.read_bytes() == b.read_bytes()
    with zipfile.ZipFile(a) as zf:
        names = zf.namelist()
    per_class = Counter(name.split("/")[1] for name in names)
    assert set(per_class) == set(TEXTURE_CLASSES)
    assert all(count >= 60 for count in per_class.values())
    assert all(name.startswith("textures/") and name.endswith("." + fmt) for name in names)


# ---- pretraining CLI (tiny) ----------------------------------------------------------------

def test_pretrain_cli_writes_trunk_and_recipe(tmp_path):
    import json

    import torchvision
    from safetensors.torch import load_file

    from tools.pretrain import main

    rc = main(["--classes", "3", "--instances", "4", "--val-instances", "2", "--image-size", "32",
               "--epochs", "1", "--batch-size", "4", "--threads", "1", "--no-probe",
               "--out-dir", str(tmp_path)])
    assert rc == 0
    state = load_file(str(tmp_path / "resnet18_fractal.safetensors"))
    expected = set(torchvision.models.resnet18().state_dict()) - {"fc.weight", "fc.bias"}
    assert set(state) == expected
    assert all(v.dtype in (torch.float16, torch.int64) for v in state.values())
    recipe = json.loads((tmp_path / "resnet18_fractal.json").read_text())
    assert recipe["dataset"]["classes"] == 3 and recipe["training"]["engine_config"]["train"]["epochs"] == 1
    assert recipe["command"].startswith("python -m tools.pretrain ")
    assert recipe["training"]["engine_config"]["optim"]["nesterov"] is True  # the engine's loop trained it
    assert 0.0 <= recipe["final_heldout_accuracy"] <= 1.0
    assert {"platform", "cpu_count", "torch", "device_name"} <= set(recipe["machine"])
