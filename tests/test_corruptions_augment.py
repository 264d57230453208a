"""engine.corruptions (the OOD suite) and engine.augment (batched training augmentation)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.augment import augment_batch, to_float
from engine.corruptions import (
    CORRUPTIONS,
    SEVERITIES,
    _CIFAR_C,
    _IMAGENET_C,
    build_ood_suite,
    corrupt,
    severity_parameter,
)


def textured_batch(n: int = 6, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Natural-ish test images: random colour fields with detail at a few-pixel scale."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, size // 2, size // 2, generator=g)
    return (F.interpolate(coarse, size=size, mode="bilinear") * 255).round().to(torch.uint8)


def mean_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().mean().item()


# ---------------------------------------------------------------------------- corruptions


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corruption_keeps_shape_dtype_and_is_deterministic(name):
    images = textured_batch()
    out = corrupt(images, name, 3, seed=7)
    assert out.shape == images.shape and out.dtype == torch.uint8 and out.device == images.device
    assert torch.equal(out, corrupt(images, name, 3, seed=7))
    assert torch.equal(images, textured_batch())  # input untouched


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_distortion_grows_with_severity(name):
    images = textured_batch()
    diffs = [mean_abs_diff(corrupt(images, name, s), images) for s in SEVERITIES]
    assert diffs[0] > 0
    assert all(a < b for a, b in zip(diffs, diffs[1:])), diffs


def test_noise_depends_on_seed():
    images = textured_batch()
    assert not torch.equal(corrupt(images, "gaussian_noise", 2, seed=0), corrupt(images, "gaussian_noise", 2, seed=1))


def test_parameters_match_published_tables_at_their_sizes_and_interpolate_between():
    for name in CORRUPTIONS:
        for s in SEVERITIES:
            assert severity_parameter(name, s, 16) == pytest.approx(_CIFAR_C[name][s - 1])
            assert severity_parameter(name, s, 32) == pytest.approx(_CIFAR_C[name][s - 1])
            assert severity_parameter(name, s, 224) == pytest.approx(_IMAGENET_C[name][s - 1])
            mid = severity_parameter(name, s, 80)
            low, high = sorted((_CIFAR_C[name][s - 1], _IMAGENET_C[name][s - 1]))
            assert low <= mid <= high


def test_build_ood_suite_structure():
    images = textured_batch(n=2, size=16)
    suite = build_ood_suite(images, severities=(1, 5), names=["contrast", "jpeg"])
    assert list(suite) == ["contrast", "jpeg"] and all(list(v) == [1, 5] for v in suite.values())
    full = build_ood_suite(images)
    assert set(full) == set(CORRUPTIONS) >= {"gaussian_noise", "gaussian_blur", "contrast", "brightness", "jpeg", "pixelate"}
    assert all(t.shape == images.shape and t.dtype == torch.uint8 for v in full.values() for t in v.values())


def test_corrupt_rejects_bad_arguments():
    images = textured_batch(n=1, size=8)
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(images, "fog", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt(images, "contrast", 6)
    with pytest.raises(ValueError, match="uint8"):
        corrupt(images.float(), "contrast", 1)


def test_corruptions_of_an_empty_batch():
    empty = torch.zeros(0, 3, 16, 16, dtype=torch.uint8)
    for name in CORRUPTIONS:
        assert corrupt(empty, name, 1).shape == (0, 3, 16, 16)


def test_brightness_lifts_black_pixels_like_imagenet_c():
    black = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    out = corrupt(black, "brightness", 5)
    assert bool((out == round(0.3 * 255)).all())  # V + c at 32 px (CIFAR table), hue-less grey


# ---------------------------------------------------------------------------- augmentation


def test_to_float_range_and_dtype():
    images = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 3, 1, 1)
    out = to_float(images)
    assert out.dtype == torch.float32
    assert out.flatten().tolist() == pytest.approx([0.0, 128 / 255, 1.0])


def test_augment_shape_range_and_determinism():
    images = textured_batch(n=8, size=24)
    a = augment_batch(images, torch.Generator().manual_seed(3))
    b = augment_batch(images, torch.Generator().manual_seed(3))
    c = augment_batch(images, torch.Generator().manual_seed(4))
    assert a.shape == (8, 3, 24, 24) and a.dtype == torch.float32
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.allclose(a, to_float(images))  # it did something


def test_augment_without_crop_or_flip_is_identity():
    images = textured_batch(n=4, size=16)
    out = augment_batch(images, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False)
    assert torch.allclose(out, to_float(images), atol=1e-5)


def test_augment_flip_only_mirrors_some_samples():
    images = textured_batch(n=16, size=16)
    out = augment_batch(images, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=True)
    plain, mirrored = to_float(images), to_float(images).flip(-1)
    is_plain = [torch.allclose(o, p, atol=1e-5) for o, p in zip(out, plain)]
    is_mirrored = [torch.allclose(o, m, atol=1e-5) for o, m in zip(out, mirrored)]
    assert all(p or m for p, m in zip(is_plain, is_mirrored))
    assert any(is_plain) and any(is_mirrored)


def test_the_run_settings_choose_crop_flip_crop_only_or_nothing():
    """`train.flip=false` (digits, text: a mirror image is another thing) keeps the random crops and
    mirrors nothing: a left-to-right falling ramp stays falling in every cropped sample; with flip on,
    some samples rise; `train.augment=false` gives the pixels as they are."""
    from engine.augment import training_batch
    from engine.config import TrainConfig

    ramp = torch.linspace(255, 0, 16).round().to(torch.uint8).expand(64, 3, 16, 16).contiguous()

    def falling(batch):  # per sample: brighter on the left than on the right
        return batch[..., 0].mean(dim=(1, 2)) > batch[..., -1].mean(dim=(1, 2))

    crop_only = training_batch(ramp, torch.Generator().manual_seed(0), TrainConfig(flip=False))
    assert falling(crop_only).all() and not torch.allclose(crop_only, to_float(ramp))
    crop_flip = training_batch(ramp, torch.Generator().manual_seed(0), TrainConfig())
    assert 10 < int((~falling(crop_flip)).sum()) < 54
    assert torch.equal(training_batch(ramp, None, TrainConfig(augment=False, flip=True)), to_float(ramp))


def test_greyscale_copies_turn_that_share_of_a_batch_grey_and_leave_runs_without_them_as_they_were():
    """`train.greyscale` (night shots among day ones): about that share of each training batch is greyscale, the
    rest keeps its colour; at 0 the batches are those of a run without the setting, draw for draw; augmentation
    off turns nothing grey; the run's words say it."""
    from engine.augment import augmentation_words, greyscale_some, training_batch
    from engine.config import TrainConfig

    colour = torch.zeros(200, 3, 8, 8, dtype=torch.uint8)
    colour[:, 0] = 220  # red: greyscale is the same level in all three channels

    def grey(batch):
        return (batch.amax(1) - batch.amin(1)).flatten(1).amax(1) < 1e-4

    mixed = training_batch(colour, torch.Generator().manual_seed(0), TrainConfig(greyscale=0.25))
    assert 30 <= int(grey(mixed).sum()) <= 70, int(grey(mixed).sum())
    assert torch.allclose(mixed[grey(mixed)][:, 0], torch.full_like(mixed[grey(mixed)][:, 0], 0.299 * 220 / 255),
                          atol=2e-3), "ITU-R 601 luminance, as torchvision's RandomGrayscale"
    assert not grey(mixed[~grey(mixed)]).any()
    plain = augment_batch(colour, torch.Generator().manual_seed(0), flip=True)  # crops and mirrors alone
    assert torch.equal(training_batch(colour, torch.Generator().manual_seed(0), TrainConfig(greyscale=0.0)), plain)
    assert not grey(training_batch(colour, None, TrainConfig(augment=False, greyscale=1.0))).any()
    assert grey(greyscale_some(to_float(colour), 1.0)).all() and not grey(greyscale_some(to_float(colour), 0.0)).any()
    from engine.data import PAD_RGB

    padded = torch.zeros(64, 3, 32, 32, dtype=torch.uint8)
    padded[:, 0] = 220
    padded[:, :, :8] = torch.tensor(PAD_RGB, dtype=torch.uint8).view(3, 1, 1)  # a whole picture's top bar
    bar_colour = torch.tensor(PAD_RGB).view(3, 1) / 255
    for fit, kept in (("pad", True), ("crop", False)):
        out = training_batch(padded, torch.Generator().manual_seed(1), TrainConfig(greyscale=1.0, flip=False), fit)
        pixels = out.permute(1, 0, 2, 3).flatten(1)  # [3, B*S*S]
        in_colour = (pixels.amax(0) - pixels.amin(0)) > 1e-4
        assert bool(in_colour.any()) == kept, fit  # a crop run has no bars: a pixel of their colour is greyed
        if kept:  # the bars' own pixels, followed through each crop, and nothing else
            assert torch.allclose(pixels[:, in_colour], bar_colour.expand(3, int(in_colour.sum())), atol=1e-3)
            assert int(in_colour.sum()) > 64 * 32 * 2, "some bar in most crops"
    assert augmentation_words(TrainConfig(greyscale=0.25)) == "random crops and left-right mirrors, 25% of images " \
                                                              "greyscale"
    assert augmentation_words(TrainConfig()) == "random crops and left-right mirrors"
    assert augmentation_words(TrainConfig(greyscale=0.004)).endswith(", 0.4% of images greyscale"), "not 0%"
    assert augmentation_words(TrainConfig(augment=False, greyscale=0.5)) == "no augmentation"


def test_digit_and_letter_class_names_are_told_from_other_names():
    from engine.augment import mirror_changes_meaning

    for classes in (list("0123456789"), ["Seven", " eight ", "nine"], ["A", "b", "ж"], ["10", "11", "x"], ["b", "d"]):
        assert mirror_changes_meaning(classes), classes
    for classes in (["cat", "dog", "bird"], ["0", "1"], ["one", "two"], ["a_b", "c", "d"], ["_", "-", "+"],
                    ["3d", "2d", "4d"], ["x"], []):
        assert not mirror_changes_meaning(classes), classes


def test_augment_crops_zoom_in():
    """A crop of a smaller area shows fewer distinct positions: a white dot in a corner mostly vanishes."""
    images = torch.zeros(32, 3, 16, 16, dtype=torch.uint8)
    images[:, :, 0, 0] = 255
    out = augment_batch(images, torch.Generator().manual_seed(0), scale=(0.35, 0.36), flip=False)
    assert (out[:, :, :2, :2].amax(dim=(1, 2, 3)) < 0.5).float().mean() > 0.5


def test_augment_empty_batch():
    assert augment_batch(torch.zeros(0, 3, 8, 8, dtype=torch.uint8)).shape == (0, 3, 8, 8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_augment_and_corrupt_on_gpu_match_cpu_shapes():
    images = textured_batch(n=4, size=16).cuda()
    out = augment_batch(images, torch.Generator().manual_seed(0))
    assert out.is_cuda and out.shape == (4, 3, 16, 16)
    for name in CORRUPTIONS:
        assert corrupt(images, name, 2).is_cuda
