"""Using a finished run on new images (engine/predict.py): every model variant, decoding as in
training, the low-confidence flag, the predict CLI on a class-folder zip, and the model card's
"Use it" scripts run on an exported run.

One tiny run trained once for the module composes WiSE-FT, structured pruning and adversarial
fine-tuning (1 epoch, 32 px), so that it has every variant.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY_CLASSES, tiny_image, write_tiny_zip
from engine.cli import main as cli
from engine.data import decode_image
from engine.errors import StudioError
from engine.predict import (VARIANTS, FeatureStats, Predictor, available_variants, chosen_alpha, decode_bytes,
                            load_predictor, load_variant, model_caution, predict_folder, true_labels)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """(engine folder, run folder) of a finished run with every variant."""
    from safetensors.torch import save_file

    from engine.backbones import build_model

    root = tmp_path_factory.mktemp("predict")
    data = write_tiny_zip(root / "tiny.zip", per_class=20)  # 24 held-out images: enough for the unfamiliar bar
    torch.manual_seed(0)  # a "pretrained" start: WiSE-FT refuses random init, and no download is needed
    start, _ = build_model("resnet18", 3, "none")
    save_file({k: v.contiguous() for k, v in start.net.state_dict().items()}, str(root / "start.safetensors"))
    sets = ["eval.ood=false", "train.threads=1", "wise_ft.enabled=true", "wise_ft.alphas=0,0.5,1",
            "wise_ft.probe_epochs=20", "pruning.enabled=true", "pruning.structured=true",
            "pruning.target_sparsity=0.3", "pruning.channel_fraction=0.3", "adversarial.enabled=true",
            "adversarial.attack=fgsm", "adversarial.co_subset=16", "eval.robust_steps=2", "eval.robust_subset=8",
            "train.device=cpu"]
    argv = ["train", "--data", str(data), "--backbone", "resnet18", "--checkpoint", str(root / "start.safetensors"),
            "--epochs", "2", "--image-size", "32", "--batch-size", "8", "--lr", "0.05", "--data-dir",
            str(root / "studio"), "--quiet"] + [a for s in sets for a in ("--set", s)]
    assert cli(argv) == 0
    (run_dir,) = list((root / "studio" / "runs").iterdir())
    return root / "studio", run_dir


def png_bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


# ---- variants ----------------------------------------------------------------------------------------

def test_the_run_offers_every_variant(studio):
    assert list(available_variants(studio[1])) == list(VARIANTS)
    # trained adversarially: its fine-tuned model is named as the robust one, for predict as for Try it
    assert available_variants(studio[1])["fine_tuned"] == "Adversarially fine-tuned (end of training)"


def test_listing_a_runs_models_builds_none(studio, monkeypatch):
    """Listing what a run offers loaded its whole model (a second copy beside the one predict then loaded: 0.2 s
    of a one-image predict, 45 MB per run in the dashboard's cache); it reads the run's files and config only."""
    from engine import predict

    expected = available_variants(studio[1])
    monkeypatch.setattr(predict, "load_run", lambda *a, **k: pytest.fail("a model was loaded"))
    assert available_variants(studio[1]) == expected
    with pytest.raises(StudioError, match="no finished summary"):
        available_variants(studio[0])  # not a run folder


def test_a_runs_config_is_read_again_when_its_checkpoint_is_rewritten(tmp_path):
    """`run_config` caches a checkpoint header's parse for page redraws: a continued run rewrites the file, and the
    new config is read."""
    from engine.checkpoints import save_checkpoint
    from engine.config import RunConfig, apply_overrides
    from engine.runs import run_config

    (tmp_path / "summary.json").write_text(json.dumps({"classes": ["a", "b"]}))
    save_checkpoint(tmp_path / "last.safetensors", {"w": torch.zeros(1)}, apply_overrides(RunConfig(), ["seed=2"]))
    assert run_config(tmp_path).seed == 2
    save_checkpoint(tmp_path / "last.safetensors", {"w": torch.zeros(2)}, apply_overrides(RunConfig(), ["seed=3"]))
    assert run_config(tmp_path).seed == 3


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_loads_and_predicts_probabilities(studio, variant):
    studio_dir, run_dir = studio
    p = load_predictor(run_dir, variant, datasets_dir=studio_dir / "datasets")
    assert p.classes == sorted(TINY_CLASSES) and p.image_size == 32
    images = torch.stack([decode_image(_tmp_png(run_dir, c), 32) for c in TINY_CLASSES])
    answers = p.predict(images, top_k=2)
    assert len(answers) == 3
    for a in answers:
        assert len(a.top) == 2 and a.top[0][1] >= a.top[1][1]
        assert sum(a.probs) == pytest.approx(1.0, abs=1e-5)
        assert a.distance is not None and a.unfamiliar is not None  # the dataset is there: both checks run
    n_params = sum(t.numel() for t in p.model.parameters())
    full = sum(t.numel() for t in load_variant(run_dir, "fine_tuned")[0].parameters())
    assert (n_params < 0.8 * full) if variant == "structured" else (n_params == full)


def _tmp_png(run_dir: Path, cls: str) -> Path:
    path = run_dir.parent.parent / f"try-{cls}.png"
    if not path.is_file():
        tiny_image(cls, 999, size=40).save(path)
    return path


def test_wise_mix_ends_are_the_start_and_the_fine_tuned_models(studio):
    studio_dir, run_dir = studio
    x = torch.rand(4, 3, 32, 32)
    fine, _, _ = load_variant(run_dir, "fine_tuned")
    one, _, _ = load_variant(run_dir, "wise", alpha=1.0)
    zero, _, _ = load_variant(run_dir, "wise", alpha=0.0)
    half, _, _ = load_variant(run_dir, "wise", alpha=0.5)
    with torch.no_grad():
        assert torch.allclose(fine(x), one(x), atol=1e-5)
        assert not torch.allclose(zero(x), one(x), atol=1e-3)
    w0, w1, wh = (m.net.conv1.weight for m in (zero, one, half))
    assert torch.allclose(wh, 0.5 * (w0 + w1), atol=1e-6)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert chosen_alpha(summary) in {p["alpha"] for p in summary["wise_curve"]}
    assert chosen_alpha({"wise_alpha": 0.3}) == 0.3 and chosen_alpha({}) == 1.0
    # what Try it shows; this run prunes, so alpha 0 is the starting model with the masks on
    labels = [load_predictor(run_dir, "wise", alpha=a).label for a in (0.0, 0.5, 1.0)]
    assert labels == ["WiSE-FT mix at alpha 0.00 (the starting model, pruned)", "WiSE-FT mix at alpha 0.50",
                      "WiSE-FT mix at alpha 1.00 (the fine-tuned model)"]


def test_a_missing_variant_or_bad_alpha_is_refused_in_plain_words(studio, tmp_path):
    _, run_dir = studio
    with pytest.raises(StudioError, match="between 0 and 1"):
        load_variant(run_dir, "wise", alpha=1.5)
    plain = tmp_path / "plain"
    shutil.copytree(run_dir, plain, ignore=shutil.ignore_patterns("theta0.*", "structured.*", "best.*"))
    with pytest.raises(StudioError, match="trained without WiSE-FT"):
        load_variant(plain, "wise")
    with pytest.raises(StudioError, match="no best-epoch checkpoint"):
        load_variant(plain, "best")
    with pytest.raises(StudioError, match="Unknown model variant 'pruned'"):
        load_variant(plain, "pruned")
    (plain / "summary.json").write_text(json.dumps({"status": "failed"}))
    with pytest.raises(StudioError, match="did not finish"):
        load_variant(plain, "fine_tuned")


# ---- decoding and the low-confidence flag ------------------------------------------------------------

def test_uploads_decode_as_in_training_and_say_what_was_done(tmp_path):
    # A landscape photo stored sideways: EXIF orientation 6 (turn 90° clockwise to view).
    photo = Image.new("RGB", (60, 30), (0, 0, 0))
    photo.paste((250, 20, 20), (0, 0, 20, 30))  # a red band on the left of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6
    data = png_bytes(photo, "JPEG", exif=exif.tobytes(), quality=95)
    (tmp_path / "p.jpg").write_bytes(data)
    image, notes = decode_bytes(data, "holiday photo.jpg", 16)
    assert torch.equal(image, decode_image(tmp_path / "p.jpg", 16)), "the training decoder, byte for byte"
    assert image.shape == (3, 16, 16)
    assert any("turned 90° clockwise" in n for n in notes), notes
    assert any("centre square of 30 x 30" in n for n in notes) and any("16 x 16" in n for n in notes)
    rgba = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    _, notes = decode_bytes(png_bytes(rgba), "icon.png", 16)
    assert any("RGBA to RGB" in n and "white" in n for n in notes), notes
    assert any("resized to 16 x 16" in n for n in notes), "20 px to 16"
    _, notes = decode_bytes(png_bytes(Image.new("RGB", (16, 16))), "small.png", 16)
    assert notes[-1] == "already 16 x 16 pixels, the run's training size: not resized", notes
    with pytest.raises(StudioError, match="'notes.txt' could not be used: not a readable image"):
        decode_bytes(b"hello", "notes.txt", 16)


def test_a_picture_whose_subject_is_off_centre_can_be_seen_from_either_end(tmp_path):
    """Try it kept a landscape photo's centre square, as training does, and a subject at one end was cut away: the
    square can be kept at either end (its place said in the decoding notes), upright after an EXIF turn, and the
    centre stays training's crop byte for byte."""
    from engine.predict import CROP_AT, crop_place, upright_size

    wide = Image.new("RGB", (60, 30), (20, 20, 250))
    wide.paste((250, 20, 20), (0, 0, 30, 30))  # red square on the left, blue on the right
    data = png_bytes(wide)
    (tmp_path / "w.png").write_bytes(data)
    left, notes = decode_bytes(data, "field.png", 16, crop_at=CROP_AT["left"])
    right, _ = decode_bytes(data, "field.png", 16, crop_at=CROP_AT["right"])
    centre, said = decode_bytes(data, "field.png", 16)
    assert left[0].float().mean() > 240 and left[2].float().mean() < 30, "all red"
    assert right[2].float().mean() > 240 and right[0].float().mean() < 30, "all blue"
    assert torch.equal(centre, decode_image(tmp_path / "w.png", 16)), "the centre is training's crop"
    assert "left square of 30 x 30 kept (the model sees squares; training used the centre square)" in notes, notes
    assert "centre square of 30 x 30 kept (the model sees squares)" in said, said
    # a portrait stored sideways (EXIF 6): upright it is taller than wide, so its ends are top and bottom
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways = png_bytes(wide, "JPEG", exif=exif.tobytes(), quality=95)
    assert upright_size(sideways) == (30, 60) and upright_size(b"not an image") is None
    top, notes = decode_bytes(sideways, "tree.jpg", 16, crop_at=CROP_AT["top"])
    assert any(n.startswith("top square of 30 x 30 kept") for n in notes), notes
    assert top[0].float().mean() > 200, "turned clockwise, the stored left (red) comes on top"
    assert crop_place(30, 30, 0.0) == "centre", "a square picture is kept whole"
    assert crop_place(60, 30, 1.0) == "right" and crop_place(30, 60, 1.0) == "bottom"
    # the whole picture with the square outlined, as Try it shows it: red along the kept square's edges only
    from engine.data import outline_square, upright_preview

    def outlined_square(raw: bytes, crop_at: float = 0.5, max_px: int = 192) -> np.ndarray:
        return outline_square(upright_preview(raw, max_px), crop_at)  # Try it's two steps (try_it.whole_picture)

    red = lambda px: tuple(int(v) for v in px) == (230, 30, 30)  # noqa: E731
    whole = outlined_square(data, CROP_AT["right"], max_px=60)
    assert whole.shape == (30, 60, 3) and red(whole[15, 30]) and red(whole[15, 59]) and not red(whole[15, 20])
    assert outlined_square(sideways, CROP_AT["top"], max_px=60).shape == (60, 30, 3), "upright, as it is seen"
    with pytest.raises(ValueError, match="not a readable image"):
        outlined_square(b"not an image")


def test_low_confidence_flags_unsure_and_unfamiliar_answers():
    p = Predictor.__new__(Predictor)  # only `answers` and `explanation`: no model needed
    p.classes, p.low_confidence = ["cat", "dog"], 0.5
    p.stats = FeatureStats(torch.eye(2).repeat_interleave(5, 0), far_distance=0.1, reference="test")  # 5 images a class
    probs = torch.tensor([[0.9, 0.1], [0.45, 0.55], [0.95, 0.05]])
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7071, 0.7071]])  # the third is between the images
    sure, unsure, unfamiliar = p.answers(probs, feats, top_k=5, threshold=0.6)
    assert sure.top == [("cat", pytest.approx(0.9)), ("dog", pytest.approx(0.1))] and not sure.low_confidence
    assert p.explanation(sure) is None
    assert unsure.unsure and not unsure.unfamiliar and "only 55% probability, under 60%" in p.explanation(unsure)
    assert unfamiliar.unfamiliar and not unfamiliar.unsure
    assert unfamiliar.distance == pytest.approx(1 - 0.7071, abs=1e-4)
    assert p.explanation(unfamiliar).startswith("Unfamiliar image: it looks unlike the training images")
    assert "cat, dog" in p.explanation(unfamiliar)
    assert "it says cat, 95%" in p.explanation(unfamiliar)  # the answer it flags is named
    # unlike the training images by content: a check that flags up to 1 in 20 of them too, so "check", not "do not
    # trust" (a teacher's ordinary slide read "do not trust" in front of a class)
    assert p.explanation(unfamiliar).endswith("so check this answer before relying on it (the check also flags up "
                                              "to 1 in 20 pictures like the training images).")
    assert p.explanation(unfamiliar, brief=True).endswith("; check this answer.")
    assert "next, cat 45%" in p.explanation(unsure)
    assert p.short_reason(unfamiliar) == "unfamiliar (unlike the training images)"
    assert p.short_reason(unsure) == "unsure (55%)"
    assert p.explanation(unsure).startswith("Low confidence: the model is unsure (its best guess, dog, ")
    assert p.explanation(unsure).count(":") == 1, "one colon"
    assert p.familiarity_note() is None


def test_a_tie_is_answered_as_the_runs_accuracy_counted_it():
    """Two classes of exactly equal probability (bf16 logits tie): the first answer is argmax's, the
    class the run's evaluation counted; topk's order among ties made Try it's accuracy on a run's own
    test images one image off the Results page's."""
    p = Predictor.__new__(Predictor)
    p.classes, p.low_confidence, p.stats = ["a", "b", "c", "d"], 0.5, None
    probs = torch.tensor([[0.1, 0.45, 0.0, 0.45], [0.3, 0.3, 0.3, 0.1]])
    answers = p.answers(probs, torch.zeros(2, 4), top_k=3)
    assert [a.top[0][0] for a in answers] == [p.classes[i] for i in probs.argmax(1)] == ["b", "a"]
    assert [c for c, _ in answers[1].top] == ["a", "b", "c"], "the tie in class order"


def test_the_unfamiliar_bar_is_conformal_and_absent_below_19_held_out_images():
    """Split conformal prediction's bar: the ceil((n+1) 0.95)-th smallest held-out distance, so that an
    image like the held-out ones is flagged at most 5% of the time; 18 held-out images cannot set one
    (a plain 95% quantile of 18 flagged 7 of a user's 46 own images), and the answers then say so."""
    from engine.predict import conformal_bar, far_minimum

    assert far_minimum() == 19
    assert conformal_bar(torch.arange(18.0)) == float("inf")
    assert conformal_bar(torch.arange(19.0)) == 18.0  # the largest of 19
    assert conformal_bar(torch.arange(128.0)) == 122.0  # the 123rd smallest of 128
    assert conformal_bar(torch.zeros(0)) == float("inf")
    rng = torch.Generator().manual_seed(0)  # the guarantee, empirically: new draws above the bar <= 5%
    above = [float((torch.rand(1000, generator=rng) > conformal_bar(torch.rand(40, generator=rng))).float().mean())
             for _ in range(200)]
    assert sum(above) / len(above) <= 0.05 + 0.01
    p = Predictor.__new__(Predictor)
    p.classes, p.low_confidence = ["cat", "dog"], 0.5
    p.stats = FeatureStats(torch.eye(2), far_distance=float("inf"), reference="18 validation and test images",
                           edge_min=40.0)
    (far,) = p.answers(torch.tensor([[0.95, 0.05]]), torch.tensor([[0.7071, 0.7071]]))
    assert far.unfamiliar is None and not far.low_confidence and far.distance is not None
    assert "held out only 18 validation and test images, and at least 19 are needed" in p.familiarity_note()
    assert "the image is one colour, mostly flat colour or noise, or has no strong edges" in p.familiarity_note(), \
        "those checks need no held-out images"
    p.stats.edge_min = None  # kept before edges were measured, its dataset gone since: that check is not promised
    assert p.familiarity_note().endswith("one colour, mostly flat colour or noise."), p.familiarity_note()
    p.stats = None
    assert "could not be read" in p.familiarity_note()


def test_the_distance_is_to_the_kth_nearest_training_image():
    from engine.predict import KNN_K, knn_distance

    bank = torch.eye(3).repeat_interleave(KNN_K, 0)  # KNN_K training images in each of three directions
    feats = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0]])
    assert torch.allclose(knn_distance(feats, bank), torch.tensor([0.0, 0.2]), atol=1e-6)
    one_far = torch.cat([bank[:1], bank[KNN_K:]])  # a single image in the first direction: not a crowd
    assert float(knn_distance(feats[:1], one_far)) == pytest.approx(1.0)
    assert float(knn_distance(feats[:1], one_far, k=1)) == pytest.approx(0.0)
    assert float(knn_distance(feats[:1], bank[:2])) == pytest.approx(0.0), "fewer images than k: the farthest"


def test_image_features_pool_every_stage_of_the_image_itself():
    from engine.backbones import build_model
    from engine.predict import image_features, stage_outputs

    torch.manual_seed(0)
    model, _ = build_model("resnet18", 3, "none")
    model.eval()
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad(), stage_outputs(model) as outputs:
        model(x)
        model(x.flip(-1))  # a TTA mirror after the image: not recorded
    feats = image_features(outputs)
    assert feats.shape == (4, 64 + 128 + 256 + 512) and feats.dtype == torch.float32
    assert torch.allclose(feats.norm(dim=1), torch.ones(4), atol=1e-5)
    with torch.no_grad(), stage_outputs(model) as alone:
        model(x)
    assert torch.allclose(feats, image_features(alone), atol=1e-6)
    assert not any(m._forward_hooks for m in model.modules()), "hooks are removed"
    head_only = image_features([None, torch.tensor([[3.0, 4.0]])])  # a ViT: no map-shaped stage outputs
    assert torch.allclose(head_only, torch.tensor([[0.6, 0.8]]))


def test_plain_images_and_a_drawing_are_flagged_as_unlike_textures_a_model_learned(tmp_path):
    """A ResNet-18 (bundled weights) fine-tuned on generated textures. Blank white, black, grey and a
    solid colour are flagged as all one colour, and would be for their content too: every stage's features
    set them apart (the last stage's class means had put them at 0.44-0.64 of that score's bar, on both CPU
    precisions). A
    drawing (a red ball on grass under the sky) is flagged too. New textures of the same kind, drawn
    at 64 px or at 256 px and shrunk like a large upload, mostly are not. Two whole-network epochs: at
    seeds 0-2 the plain images lay at 1.5-2.2 times the bar, 1.1-1.45 after 3, 4 or 8 epochs (8 cost
    three times the time and flag them no more surely)."""
    from PIL import ImageDraw

    from tools.textures import make_texture_images, write_texture_zip

    data = write_texture_zip(tmp_path / "textures.zip", n_per_class=30, image_size=64, fmt="png")
    sets = ["eval.ood=false", "train.threads=1", "train.device=cpu"]
    argv = ["train", "--data", str(data), "--backbone", "resnet18", "--epochs", "2", "--image-size", "64",
            "--batch-size", "16", "--lr", "0.02", "--data-dir", str(tmp_path / "studio"), "--quiet"]
    assert cli(argv + [a for s in sets for a in ("--set", s)]) == 0
    (run_dir,) = list((tmp_path / "studio" / "runs").iterdir())
    p = load_predictor(run_dir, datasets_dir=tmp_path / "studio" / "datasets")
    assert p.familiarity_note() is None, "enough held-out images for a bar"
    plain = torch.stack([torch.tensor(c, dtype=torch.uint8).view(3, 1, 1).expand(3, 64, 64).contiguous()
                         for c in [(255, 255, 255), (0, 0, 0), (128, 128, 128), (30, 30, 220)]])
    drawing = Image.new("RGB", (300, 200), (135, 206, 235))
    pen = ImageDraw.Draw(drawing)
    pen.rectangle([0, 140, 300, 200], fill=(34, 139, 34))
    pen.ellipse([110, 40, 190, 120], fill=(255, 0, 0))
    ball, _ = decode_bytes(png_bytes(drawing), "ball.png", 64)
    fresh, _ = make_texture_images(6, 64, seed=7)  # 48 new textures
    large, _ = make_texture_images(2, 256, seed=8)
    shrunk = torch.stack([decode_bytes(png_bytes(Image.fromarray(t.permute(1, 2, 0).numpy())), "big.png", 64)[0]
                          for t in large])  # 16 textures uploaded at 256 px
    answers = p.predict(torch.cat([plain, ball[None], fresh, shrunk]))
    assert [a.far_by for a in answers[:4]] == ["blank"] * 4, "said plainly: one colour"
    assert all(a.distance > p.stats.far_distance for a in answers[:4]), [a.distance / p.stats.far_distance
                                                                          for a in answers]
    assert answers[4].unfamiliar and answers[4].flat > 0.75, "the drawing"
    assert sum(bool(a.unfamiliar) for a in answers[5:53]) <= 8, "new textures: about 1 in 20 flagged"
    assert sum(bool(a.unfamiliar) for a in answers[53:]) <= 3, "shrunk from a larger picture: not unfamiliar"
    # static: uniform noise made at the run's size and a 512 px one shrunk like an upload; its features sit near a
    # grainy texture's (the content check let all 64 of the benchmark's through), its neighbouring pixels do not
    import numpy as np

    noise = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    big = np.random.default_rng(1).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    static, _ = decode_bytes(png_bytes(Image.fromarray(big)), "static.png", 64)
    flagged = p.predict(torch.cat([noise, static[None]]))
    assert all(a.unfamiliar and a.far_by in ("content", "noise") for a in flagged), \
        [(a.far_by, a.correlation, p.stats.correlation_min) for a in flagged]
    assert p.stats.correlation_min > 0.3, "textures at 64 px: neighbouring pixels alike"
    # a smooth gradient: neither one colour, flat nor noise; no texture is as smooth (named so, also when far)
    ramp = torch.linspace(0, 255, 64).round().to(torch.uint8)
    gradient = torch.stack([ramp.view(64, 1).expand(64, 64), ramp.view(1, 64).expand(64, 64), 255 - ramp.view(64, 1)
                            .expand(64, 64)])[None].contiguous()
    (smooth,) = p.predict(gradient)
    assert smooth.unfamiliar and smooth.far_by == "smooth", (smooth.far_by, smooth.edge, p.stats.edge_min)
    assert not any(p.stats.smooth(a.edge) for a in answers[5:]), "textures, new or shrunk, have strong edges"


def test_an_image_of_one_colour_is_flagged_where_no_training_image_is_one():
    """A white page among drawings on white is as flat as they are, so the flat-colour check cannot fire, and its
    features sat within the content bar of a new user's 60 drawn shapes: it went unflagged at 81%. It is all one
    colour, which no drawing is."""
    from engine.predict import grey_spread

    p = Predictor.__new__(Predictor)
    p.classes, p.low_confidence = ["cat", "dog"], 0.5
    white = torch.full((1, 3, 8, 8), 255, dtype=torch.uint8)
    grey = torch.full((1, 3, 8, 8), 60, dtype=torch.uint8)
    drawing = white.clone()
    drawing[..., 2:5, 2:5] = 0  # a black square on white: mostly flat, not one colour
    assert grey_spread(white).tolist() == [0.0] and float(grey_spread(drawing)) > 50
    images = torch.cat([white, grey, drawing])
    p.stats = FeatureStats(torch.eye(2), far_distance=1.5, reference="test", flat_max=0.95,
                           spread_min=float(grey_spread(drawing)))  # drawings: the flat check is off
    probs, feats = torch.tensor([[0.9, 0.1]] * 3), torch.tensor([[1.0, 0.0]] * 3)  # all near: the content passes
    a_white, a_grey, a_drawing = p.answers(probs, feats, images_u8=images)
    assert a_white.far_by == a_grey.far_by == "blank" and a_white.low_confidence and not a_drawing.unfamiliar
    assert p.short_reason(a_white) == "unfamiliar (one colour)"
    words = p.explanation(a_white)
    assert "it is all one colour" in words and "vary by 0.00; every training image's by at least 88." in words
    assert "all one colour" in p.explanation(a_grey, brief=True)
    p.stats.spread_min = 0.0  # a class of blank pages: one colour is the user's own kind of image
    assert not any(a.unfamiliar for a in p.answers(probs, feats, images_u8=images))


def test_a_smooth_gradient_is_flagged_where_every_training_image_has_strong_edges():
    """A gradient among a new user's drawn shapes was neither one colour, flat nor noise, and its content passed:
    it went unflagged. Its strongest steps between neighbouring pixels are a few grey levels, a drawing's a hundred;
    a blurred copy of a drawing is flagged too, a drawing saved as JPEG is not, and where a training image is as
    smooth (a class of gradients) nothing is."""
    from PIL import ImageDraw, ImageFilter

    from engine.predict import edge_step, grey_spread

    ramp = torch.linspace(0, 255, 48).round().to(torch.uint8)
    gradient = ramp.view(1, 1, 1, 48).expand(1, 3, 48, 48).contiguous()
    page = Image.new("RGB", (48, 48), "white")
    ImageDraw.Draw(page).ellipse([10, 10, 38, 38], outline="black", width=3)
    drawing, _ = decode_bytes(png_bytes(page), "circle.png", 48)
    blurred, _ = decode_bytes(png_bytes(page.filter(ImageFilter.GaussianBlur(6))), "blur.png", 48)
    buf = io.BytesIO()
    page.save(buf, format="JPEG", quality=60)
    jpeg, _ = decode_bytes(buf.getvalue(), "circle.jpg", 48)
    images = torch.stack([gradient[0], blurred, jpeg, drawing])
    edges = edge_step(images)
    assert edges[0] == 6.0 and edges[3] > 100, edges  # 255 / 47 grey levels a step: 5.4 and 5.5, rounded
    p = Predictor.__new__(Predictor)
    p.classes, p.low_confidence = ["circle", "square"], 0.5
    p.stats = FeatureStats(torch.eye(2), far_distance=1.5, reference="test", flat_max=0.95,
                           spread_min=float(grey_spread(drawing[None])), edge_min=float(edges[3]))
    probs, feats = torch.tensor([[0.9, 0.1]] * 4), torch.tensor([[1.0, 0.0]] * 4)  # all near: the content passes
    answers = p.answers(probs, feats, images_u8=images)
    assert [a.far_by for a in answers] == ["smooth", "smooth", None, None], [(a.far_by, a.edge) for a in answers]
    assert p.short_reason(answers[0]) == "unfamiliar (no strong edges)"
    words = p.explanation(answers[0])
    assert "it has no strong edges, as a smooth gradient" in words and "are 6.0 grey levels" in words, words
    assert "no strong edges" in p.explanation(answers[1], brief=True)
    far = p.stats.far_distance
    p.stats.far_distance = -1.0  # all far by content too: the blur's own kind is named, and both are said
    blur_far, jpeg_far = p.answers(probs, feats, images_u8=images)[1:3]
    assert (blur_far.far_by, jpeg_far.far_by) == ("smooth", "content"), (blur_far.far_by, jpeg_far.far_by)
    assert p.short_reason(blur_far) == "unfamiliar (no strong edges)"
    words = p.explanation(blur_far)
    assert "it has no strong edges" in words and "it also looks unlike the training images" in words, words
    p.stats.far_distance = far
    assert "also" not in p.explanation(answers[1]), "near by content: not said"
    big = Image.new("RGB", (224, 224), "white")  # thin lines at 224 px: a share of the steps missed them
    ImageDraw.Draw(big).ellipse([30, 30, 190, 190], outline="black", width=2)
    ramp = torch.linspace(0, 255, 224).round().to(torch.uint8).view(1, 1, 1, 224).expand(1, 3, 224, 224)
    assert edge_step(decode_bytes(png_bytes(big), "big.png", 224)[0][None]) > 200 and edge_step(ramp) <= 2
    p.stats.edge_min = float(edges[0])  # a class of gradients: smooth is the user's own kind of image
    assert not any(a.unfamiliar for a in p.answers(probs, feats, images_u8=images))
    p.stats.edge_min = None  # a file kept before edges were measured, read for a dataset gone since: not checked
    assert not any(a.unfamiliar for a in p.answers(probs, feats, images_u8=images))


def test_a_mostly_flat_image_is_flagged_and_a_training_image_never_is():
    from engine.predict import flat_share, pixel_key

    p = Predictor.__new__(Predictor)
    p.classes, p.low_confidence = ["cat", "dog"], 0.5
    white = torch.full((1, 3, 8, 8), 255, dtype=torch.uint8)
    grain = torch.randint(0, 256, (1, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert flat_share(white).tolist() == [1.0] and float(flat_share(grain)) < 0.2
    half = white.clone()
    half[..., 4:] = 0  # two flat halves: 7 of the 112 pairs differ
    assert float(flat_share(half)) == pytest.approx(1 - 8 / 112)
    p.stats = FeatureStats(torch.eye(2).repeat_interleave(5, 0), far_distance=0.1, reference="test", flat_max=0.2,
                           splits={pixel_key(grain[0]): "training"})
    probs, feats = torch.tensor([[0.9, 0.1]] * 2), torch.tensor([[1.0, 0.0], [0.0, -1.0]])  # the second: far
    flat, trained = p.answers(probs, feats, images_u8=torch.cat([white, grain]))
    assert flat.unfamiliar and flat.far_by == "flat" and p.short_reason(flat) == "unfamiliar (flat colour)"
    assert "most of it (100% of neighbouring pixels) is flat colour" in p.explanation(flat)
    assert "none of the training images is (at most 20%)" in p.explanation(flat)
    assert not trained.unfamiliar and trained.own == "training", "a training image is never unlike them"
    assert not trained.own_copy, "found by its pixels: the image itself, not a copy"
    p.stats.splits = {pixel_key(grain[0]): "validation"}
    (held_out,) = p.answers(probs[1:], feats[1:], images_u8=grain)  # far features: 5% of held-out images are
    assert not held_out.unfamiliar and held_out.own == "validation", "the run's own held-out image is its data"
    p.stats.splits = {pixel_key(grain[0]): "training"}
    assert p.explanation(trained).startswith("This is one of the run's training images")
    # its label in the run's data: a new user saw "chequered (35%)" for a dotted training image, unable to tell
    p.stats.labels = {pixel_key(grain[0]): "dog"}
    (labelled,) = p.answers(probs[1:], feats[1:], images_u8=grain)
    assert labelled.own_class == "dog" and p.explanation(labelled).endswith(
        f"In the run's data it is labelled dog: the model's answer, {labelled.top[0][0]}, is wrong."), "says so"
    assert trained.own_class is None, "no label recorded: none said"
    p.stats.flat_max = 1.0  # a training image was blank too: a blank page is not unfamiliar
    assert not p.answers(probs[:1], feats[:1], images_u8=white)[0].unfamiliar


def test_a_drawing_saved_as_png_is_not_unfamiliar_beside_the_same_drawings_saved_as_jpeg():
    """JPEG's noise leaves a drawing far from flat; the same drawing as a PNG is flat. A new user's PNG triangle was
    called "unfamiliar (flat colour)" beside the JPEG triangles it was trained on, at 97% for the right class."""
    from PIL import ImageDraw

    from engine.predict import FLAT_SHARE, flat_share

    def drawing(i: int, fmt: str, **kw) -> torch.Tensor:
        im = Image.new("RGB", (64, 64), "white")
        ImageDraw.Draw(im).polygon([(10 + i, 50), (32, 10 + i), (54 - i, 50)], fill=(200, 40, 40))
        out = io.BytesIO()
        im.save(out, fmt, **kw)
        return decode_bytes(out.getvalue(), f"triangle {i}.{fmt.lower()}", 64)[0]

    jpegs = torch.stack([drawing(i, "JPEG", quality=q) for i in range(4) for q in (50, 75, 95)])
    png = drawing(2, "PNG")[None]
    trained = FeatureStats(torch.eye(2), far_distance=0.1, reference="test", flat_max=float(flat_share(jpegs).max()))
    assert float(flat_share(png)) > trained.flat_max and float(flat_share(png)) >= FLAT_SHARE, "the case itself"
    assert not trained.mostly_flat(float(flat_share(png)))
    # textures (grain) in training: the same PNG drawing is a stranger among them
    grain = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    textures = FeatureStats(torch.eye(2), far_distance=0.1, reference="test", flat_max=float(flat_share(grain).max()))
    assert textures.mostly_flat(float(flat_share(png)))


def test_a_padded_pictures_checks_measure_the_picture_not_its_grey_bars():
    """In a run that keeps whole pictures (data.fit "pad") a 4:1 panorama is three quarters grey bar: it was called
    "mostly flat colour" for the bars the studio added, and the bars' border was its strongest edge. The checks
    measure the picture inside the bars, on the training images and the new one alike."""
    from engine.data import PAD_RGB, fit_square, picture_box
    from engine.predict import FLAT_SHARE, edge_step, flat_share, picture_checks

    rng = np.random.default_rng(0)

    def padded(width: int, height: int, pixels=None) -> torch.Tensor:
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8) if pixels is None else pixels
        square = fit_square(Image.fromarray(pixels), 64, fit="pad")
        return torch.from_numpy(np.array(square)).permute(2, 0, 1).contiguous()

    photos = torch.stack([padded(80, 60) for _ in range(6)])  # 4:3 grain: bars above and below
    panorama = padded(160, 40)[None]
    assert picture_box(panorama[0]) == (24, 40, 0, 64) and picture_box(photos[0]) == (8, 56, 0, 64)
    blank = torch.tensor(PAD_RGB, dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 64, 64)
    assert picture_box(blank[0]) == (0, 64, 0, 64), "a picture of the bars' colour is measured whole"
    assert float(flat_share(panorama)) >= FLAT_SHARE, "the case itself: by the whole square it is mostly flat"
    flat, correlation, spread, edge = picture_checks(torch.cat([photos, panorama]), "pad")
    assert flat[-1] < 0.2 and max(flat[:-1]) < 0.2
    assert picture_checks(panorama, "crop")[0] == flat_share(panorama).tolist(), "a cropped run's checks: unchanged"
    ramp = np.repeat(np.linspace(0, 255, 160).astype(np.uint8)[None, :, None], 40, 0).repeat(3, 2)
    smooth = padded(160, 40, ramp)[None]
    assert float(edge_step(smooth)) > 40, "the case itself: the bars' border is a strong edge"
    assert picture_checks(smooth, "pad")[3][0] < 10, "inside the bars the gradient has no strong edge"
    p = Predictor.__new__(Predictor)
    p.classes, p.low_confidence, p.fit = ["cat", "dog"], 0.5, "pad"
    train_flat, train_corr, train_spread, train_edge = picture_checks(photos, "pad")
    p.stats = FeatureStats(torch.eye(2).repeat_interleave(5, 0), far_distance=0.5, reference="test",
                           flat_max=max(train_flat),
                           correlation_min=min(train_corr), spread_min=min(train_spread), edge_min=min(train_edge))
    probs, feats = torch.tensor([[0.9, 0.1]] * 2), torch.tensor([[1.0, 0.0]] * 2)
    wide, gradient = p.answers(probs, feats, images_u8=torch.cat([panorama, smooth]))
    assert not wide.unfamiliar, (wide.far_by, wide.flat)
    assert gradient.unfamiliar and gradient.far_by == "smooth", "a smooth picture between bars is still told"


def test_an_image_of_noise_is_flagged_unless_the_training_images_are_as_noisy():
    """Neighbouring pixels of a photo or texture are alike; of static, not. An image whose pixels correlate
    under NOISE_CORRELATION and under every training image's is called mostly noise, in words that say so."""
    from engine.predict import NOISE_CORRELATION, neighbour_correlation

    flat = torch.full((1, 3, 16, 16), 90, dtype=torch.uint8)
    ramp = torch.arange(16, dtype=torch.uint8).mul(15).view(1, 1, 1, 16).expand(1, 3, 16, 16).contiguous()
    checker = ((torch.arange(16).view(16, 1) + torch.arange(16).view(1, 16)) % 2 * 255).to(torch.uint8)
    checker = checker.expand(1, 3, 16, 16).contiguous()
    noise = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    flat_c, ramp_c, checker_c = neighbour_correlation(torch.cat([flat, ramp, checker])).tolist()
    assert flat_c == 1.0 and ramp_c > 0.4 and checker_c == pytest.approx(-1.0)
    assert abs(float(neighbour_correlation(noise))) < 0.05
    assert neighbour_correlation(torch.zeros(0, 3, 8, 8, dtype=torch.uint8)).shape == (0,)

    p = Predictor.__new__(Predictor)
    p.classes, p.low_confidence = ["cat", "dog"], 0.5
    p.stats = FeatureStats(torch.eye(2).repeat_interleave(5, 0), far_distance=0.1, reference="test",
                           correlation_min=0.62)
    probs, feats = torch.tensor([[0.9, 0.1]]), torch.tensor([[1.0, 0.0]])  # near the training images' features
    (static,) = p.answers(probs, feats, images_u8=noise)
    assert static.unfamiliar and static.far_by == "noise" and p.short_reason(static) == "unfamiliar (noise)"
    said = p.explanation(static)
    assert "it is mostly noise, as in static or a random pattern" in said and "at least 0.62" in said, said
    assert "mostly noise (neighbouring pixels correlate" in p.explanation(static, brief=True)
    p.stats.correlation_min = -0.4  # training images as noisy (a checkerboard texture at 32 px): never noise
    assert not p.answers(probs, feats, images_u8=noise)[0].unfamiliar
    p.stats.correlation_min = 0.95  # very smooth training images: a fine-grained photo is still no noise
    assert ramp_c >= NOISE_CORRELATION and not p.answers(probs, feats, images_u8=ramp)[0].unfamiliar
    # alike along one direction, alternating across it (stripes, blinds, lines of text): no noise (pooled, the two
    # directions cancelled to 0.0005)
    p.stats.correlation_min = 0.62
    stripes = (torch.arange(16).view(16, 1) % 2 * 255).to(torch.uint8).expand(1, 3, 16, 16).contiguous()
    assert float(neighbour_correlation(stripes)) == pytest.approx(1.0)
    assert not p.answers(probs, feats, images_u8=stripes)[0].unfamiliar
    # a near-blank photo (a white wall): its JPEG wobble correlates little, but it is mostly flat, not noise
    wall = torch.full((1, 3, 32, 32), 250, dtype=torch.uint8)
    wall[:, 0] += (torch.rand(32, 32, generator=torch.Generator().manual_seed(2)) < 0.1).to(torch.uint8)
    (blank,) = p.answers(probs, feats, images_u8=wall)
    assert blank.flat >= 0.75 and blank.correlation < NOISE_CORRELATION and blank.far_by != "noise"
    from engine.predict import two_figures

    assert two_figures(0.4512, 0.4549) == ("0.451", "0.455") and two_figures(0.3, 0.62) == ("0.30", "0.62")


def test_a_probability_just_under_the_threshold_does_not_read_as_the_threshold():
    from engine.words import percent

    assert percent(0.496, 0.5) == "49.6%" and percent(0.44, 0.5) == "44%" and percent(0.9, 0.5) == "90%"


def test_a_blank_image_gets_a_low_confidence_flag_and_one_image_answers_fast(studio):
    studio_dir, run_dir = studio
    p = load_predictor(run_dir, "fine_tuned", datasets_dir=studio_dir / "datasets")
    blank, _ = decode_bytes(png_bytes(Image.new("RGB", (48, 48), (255, 255, 255))), "blank.png", 32)
    p.predict(blank[None])  # warm-up
    t0 = time.perf_counter()
    (answer,) = p.predict(blank[None])
    assert time.perf_counter() - t0 < 1.0
    assert answer.unfamiliar and p.explanation(answer).startswith("Unfamiliar image")


def test_where_the_training_images_sit_is_measured_once_per_model_and_kept_in_the_run(studio, monkeypatch):
    """A one-image predict decoded the run's whole dataset and ran its training and held-out images through the
    network every time it loaded a model (minutes for a few thousand photos on a CPU), for the unfamiliar flag
    and the own-image lookup. Both are now kept in the run's folder, for that model's weights, precision and
    data only."""
    import shutil

    from engine import predict

    studio_dir, run_dir = studio
    cache = run_dir / predict.FEATURES_CACHE
    shutil.rmtree(cache, ignore_errors=True)
    decoded = []
    real = predict._train_images
    monkeypatch.setattr(predict, "_train_images", lambda *a: decoded.append(1) or real(*a))

    def load(variant="fine_tuned", alpha=None):
        predict._PREDICTORS.clear()  # a new process: nothing in memory
        return load_predictor(run_dir, variant, alpha, datasets_dir=studio_dir / "datasets")

    first = load()
    assert decoded == [1] and [f.name for f in cache.iterdir()] == ["fine_tuned.safetensors"]
    again = load()
    assert decoded == [1], "read back: the dataset is neither decoded nor run through the model again"
    a, b = first.stats, again.stats
    assert torch.equal(a.bank, b.bank) and (a.far_distance, a.reference, a.flat_max, a.correlation_min, a.splits,
                                            a.labels) == (b.far_distance, b.reference, b.flat_max, b.correlation_min,
                                                          b.splits, b.labels)
    assert (a.copies.hashes == b.copies.hashes).all() and (a.copies.thumbs == b.copies.thumbs).all()
    assert (a.copies.splits, a.copies.labels) == (b.copies.splits, b.copies.labels)
    assert (a.spread_min, a.edge_min) == (b.spread_min, b.edge_min) and a.edge_min > 0
    # a file kept before edges were measured: only they are added, from the decoded images, nothing through the model
    from dataclasses import replace

    predict._write_stats(cache / "fine_tuned.safetensors", predict.stats_key(first, first.cfg),
                         replace(a, edge_min=None, measured="1 Dec 2026"), predict.model_key(first, first.cfg))
    measured, real_stats = [], predict.feature_stats
    monkeypatch.setattr(predict, "feature_stats", lambda *x: measured.append(1) or real_stats(*x))
    assert load().stats.edge_min == a.edge_min and not measured and len(decoded) == 2
    kept = load().stats
    assert kept.edge_min == a.edge_min and len(decoded) == 2, "kept with its edges since"
    assert kept.measured == "1 Dec 2026", "the other figures' day: only the edges were measured now"
    monkeypatch.setattr(predict, "feature_stats", real_stats)
    del decoded[1:]  # the counts below go on from the first load's
    own = tiny_image(TINY_CLASSES[0], 0)  # one of the run's images (the zip's first), a resized copy, a new one
    images = torch.stack([decode_bytes(png_bytes(im), "x.png", 32)[0]
                          for im in (own, own.resize((48, 48)), Image.open(_tmp_png(run_dir, TINY_CLASSES[1])))])
    answers = first.predict(images)
    assert again.predict(images) == answers and answers[0].own is not None and answers[2].own is None
    load("wise", 0.5)
    assert len(decoded) == 2 and len(list(cache.iterdir())) == 2, "each model its own features"
    # another model's file under this one's name (a continued run), and a damaged file: measured again
    (cache / "wise_alpha0.5000.safetensors").replace(cache / "fine_tuned.safetensors")
    assert torch.equal(load().stats.bank, a.bank) and len(decoded) == 3
    (cache / "fine_tuned.safetensors").write_bytes(b"not a safetensors file")
    assert torch.equal(load().stats.bank, a.bank) and len(decoded) == 4
    # a folder that cannot be written (here a file in its place) only goes uncached
    shutil.rmtree(cache)
    cache.write_text("")
    try:
        assert load().stats.far_distance == a.far_distance and len(decoded) == 5
    finally:
        cache.unlink()
    # the key follows the weights and the data; only the most recently used files are kept
    from engine.config import apply_overrides

    p = load()
    key = predict.stats_key(p, p.cfg)
    assert key == predict.stats_key(p, p.cfg) != predict.stats_key(p, apply_overrides(p.cfg, ["seed=1"]))
    assert predict.stats_key(p, apply_overrides(p.cfg, [f"data.source={studio_dir / 'gone.zip'}"])) is None
    try:
        with torch.no_grad():
            next(p.model.parameters()).view(-1)[0] += 1e-3
        assert predict.stats_key(p, p.cfg) != key
        for n in range(predict.FEATURES_CACHE_KEEP + 2):
            predict._write_stats(cache / f"m{n}.safetensors", "k", a)
        assert len(list(cache.iterdir())) == predict.FEATURES_CACHE_KEEP and not (cache / "m0.safetensors").exists()
    finally:
        predict._PREDICTORS.clear()  # the changed model stays out of the other tests
        shutil.rmtree(cache, ignore_errors=True)


def test_a_run_whose_dataset_moved_names_it_and_checks_with_what_was_kept(studio, tmp_path):
    """With the run's zip renamed, predict said only that the probability alone was checked, not which file it
    looked for, and the run's own images went unrecognised. It names the file, and the checks use what was
    measured from the data while it was there; one own image's CSV row gives its label as `true_class`."""
    from engine import predict
    from engine.predict import predict_folder, result_rows

    studio_dir, run_dir = studio

    def load():
        predict._PREDICTORS.clear()  # a new process
        return load_predictor(run_dir, "fine_tuned", datasets_dir=studio_dir / "datasets")

    here = load()
    source = Path(here.cfg.data.source)
    tiny_image(TINY_CLASSES[0], 0).save(tmp_path / "mine.png")  # one of the run's images, outside class folders
    (row,) = result_rows(predict_folder(here, tmp_path / "mine.png"), 2)
    assert row["true_class"] == TINY_CLASSES[0] and "labelled " + TINY_CLASSES[0] in row["note"]
    moved = source.with_name("moved away.zip")
    source.rename(moved)
    try:
        kept = load()
        note = kept.familiarity_note()
        assert f"The run's dataset, '{source}', is not there any more" in note, note
        assert "use what was measured from it on " in note and torch.equal(kept.stats.bank, here.stats.bank)
        (answer,) = predict_folder(kept, tmp_path / "mine.png").rows
        assert answer["own"] is not None and answer["own_class"] == TINY_CLASSES[0]
        shutil.rmtree(run_dir / predict.FEATURES_CACHE)
        bare = load()
        assert bare.stats is None and f"'{source}'" in bare.familiarity_note()
        assert "only the probability was checked" in bare.familiarity_note()
        assert predict_folder(bare, tmp_path / "mine.png").rows[0]["own"] is None
    finally:
        moved.rename(source)
        predict._PREDICTORS.clear()


# ---- folders and the CLI -------------------------------------------------------------------------------

def test_true_labels_follow_class_folders_with_or_without_a_wrapper_folder():
    classes = ["cat", "dog"]
    assert true_labels(["cat/1.png", "Dog/2.png"], classes) == ([0, 1], [])
    assert true_labels(["mydata/cat/1.png", "mydata/dog/2.png"], classes) == ([0, 1], [])
    assert true_labels(["cat/1.png", "bird/2.png", "x.png"], classes) == ([0, None, None], ["bird"])
    assert true_labels(["1.png", "holiday/2.png"], classes) == ([None, None], ["holiday"]), "named: why no accuracy"
    assert true_labels(["photos/1.png", "photos/2.png"], classes) == ([None, None], []), "a zipped folder of photos"
    # a pre-split export, below wrapper folders: the class folders sit inside train/, valid/, test/
    split = ["pets/pets/train/cat/1.png", "pets/pets/valid/dog/2.png", "pets/pets/test/Cat/3.png", "pets/pets/val/bird/4.png"]
    assert true_labels(split, classes) == ([0, 1, 0, None], ["bird"])
    assert true_labels(["train/1.png", "test/cat/2.png"], classes) == ([None, 0], ["train"]), "images in train/ itself"
    assert true_labels(["test/1.png", "cat/2.png"], ["cat", "test"]) == ([1, 0], []), "a class named test stays a class"


def test_predict_cli_on_a_class_folder_zip(studio, tmp_path, capsys):
    studio_dir, run_dir = studio
    files = {f"batch/{c}/{i}.png": png_bytes(tiny_image(c, 500 + i)) for c in TINY_CLASSES for i in range(3)}
    files["batch/red/broken.png"] = b"\x89PNG\r\n\x1a\n not really"
    files["batch/green/phone photo.heic"] = b"ftypheic"
    files["batch/readme.txt"] = b"notes"
    with zipfile.ZipFile(tmp_path / "new batch.zip", "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    out = tmp_path / "predictions.csv"
    rc = cli(["predict", "--run", run_dir.name, "--data", str(tmp_path / "new batch.zip"), "--data-dir",
              str(studio_dir), "--out", str(out), "--top-k", "2"])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    assert out.read_bytes().startswith(b"\xef\xbb\xbf"), "a byte-order mark, as Try it's download: Excel's encoding"
    rows = out.read_text(encoding="utf-8-sig").splitlines()
    assert rows[0] == ("path,answered,true_class,class_1,probability_1,class_2,probability_2,flagged,unsure,"
                       "unfamiliar,note")
    answered = [r for r in rows[1:] if "not answered: " not in r]
    assert len(answered) == 9, "one row per readable image"
    assert all(r.split(",")[1] == "True" and r.split(",")[2] in TINY_CLASSES for r in answered)
    assert all(r.split(",")[1] == "False" for r in rows[1:] if "not answered: " in r), "a column to filter on"
    # and one per skipped file, with its reason: a batch user sees which files got no answer
    skipped = sorted(r.split(",")[0] for r in rows[1:] if "not answered: " in r)
    assert skipped == ["batch/green/phone photo.heic", "batch/readme.txt", "batch/red/broken.png"], rows
    assert re.search(r"accuracy \d+\.\d%  balanced accuracy \d+\.\d%  \(9 images in class folders\)", printed.out)
    flags = r"(\d+ unfamiliar|\d+ unsure|\d+ unfamiliar, \d+ unsure)(; \d+ both)?"
    assert re.search(rf"answers flagged: (none|\d+ \({flags}\));", printed.out)
    assert "confusion matrix" in printed.out
    assert re.search(r"red/broken\.png: (not a readable image|damaged)", printed.out), printed.out
    # the answers under a heading of their own: after "3 files skipped:" they read as more skipped files
    assert "3 files skipped:" in printed.out and "\nanswers (top 2):\n" in printed.out, printed.out
    assert printed.out.index("answers (top 2):") > printed.out.index("3 files skipped:")
    # HEIC is read (pillow-heif): a damaged one is listed with its reason, never fatal
    assert re.search(r"green/phone photo\.heic: (not a readable image|damaged)", printed.out), printed.out
    assert "readme.txt: not an image file (.txt)" in printed.out
    assert "img/s)" in printed.out, "the speed, with or without a bar (tqdm shows one past half a second)"
    assert not list(studio_dir.glob("datasets/predict-*")), "the extracted zip is removed"


def test_predict_says_the_runs_figures_on_the_kind_of_picture_it_is_weaker_on(studio, tmp_path, capsys, monkeypatch):
    """As Try it does under one picture: where the run is weaker on greyscale pictures by more than luck, `predict`
    says how many of the user's are greyscale and the run's figures on them, for a model whose figures they are."""
    import engine.cli as engine_cli

    studio_dir, run_dir = studio
    real = engine_cli.run_summary

    def weak_at_night(*args, **kwargs) -> dict:
        summary = {k: v for k, v in real(*args, **kwargs).items() if k != "test_confusion"}
        return {**summary, "test_acc": 0.85, "val_acc": 0.85,
                "test_by_colour": {"greyscale": [2, 10], "colour": [40, 42]}}

    monkeypatch.setattr(engine_cli, "run_summary", weak_at_night)
    folder = tmp_path / "night"
    folder.mkdir()
    tiny_image("red", 1).convert("L").convert("RGB").save(folder / "grey.png")
    tiny_image("red", 2).save(folder / "colour.png")
    base = ["predict", "--run", str(run_dir), "--data", str(folder), "--data-dir", str(studio_dir), "--quiet",
            "--out", str(tmp_path / "out.csv")]
    assert cli(base + ["--variant", "fine_tuned"]) == 0
    assert ("note: 1 of your 2 pictures are greyscale: the model got 2 of 10 such test pictures right (20.0%), "
            "against 40 of 42 colour ones (95.2%).") in capsys.readouterr().out
    assert cli(base + ["--variant", "best"]) == 0
    assert "greyscale" not in capsys.readouterr().out, "the best epoch's own figures are not the run's"

    def rare(*args, **kwargs) -> dict:  # a class learnt from few training pictures: said as Try it says it
        summary = real(*args, **kwargs)
        counts = {c: 40 for c in summary["classes"]} | {summary["classes"][-1]: 3}
        return {**summary, "data_report": {**summary["data_report"], "split_counts": {"train": counts}}}

    monkeypatch.setattr(engine_cli, "run_summary", rare)
    assert cli(base) == 0
    assert re.search(r"note: The model learnt \S+ from only 3 training pictures \(\S+ from 40\): it knows that class "
                     "least", capsys.readouterr().out)
    # the precision it answers in, beside the device: an engineer's figures differed from the exported file's
    real_load = engine_cli.load_predictor

    def answering_in(dtype, as_evaluated=True):
        def load(*args, **kwargs):
            p = real_load(*args, **kwargs)
            p.amp_dtype, p.as_evaluated = dtype, as_evaluated
            return p
        return load

    for dtype, evaluated, said in (
            (torch.bfloat16, True, r" on \S+ in bfloat16 as the run was evaluated \(the exported files: float32\); "),
            (torch.bfloat16, False, r" on \S+ in bfloat16 \(the exported files: float32\); "),  # a GPU run, say
            (None, True, r" on \S+; classes: ")):
        monkeypatch.setattr(engine_cli, "load_predictor", answering_in(dtype, evaluated))
        assert cli(base) == 0
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("model: "))
        assert re.search(said, line), line


def test_predict_a_plain_folder_without_classes_and_bad_input(studio, tmp_path, capsys):
    studio_dir, run_dir = studio
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        tiny_image("red", 700 + i).save(folder / f"{i}.png")
    tiny_image("green", 703).save(folder / "IMG_0004", format="PNG")  # a camera export with no extension
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    p = load_predictor(run_dir, "best", datasets_dir=studio_dir / "datasets")
    seen = []
    result = predict_folder(p, folder, top_k=1, batch_size=2, progress=lambda d, n: seen.append((d, n)))
    assert [r["path"] for r in result.rows] == ["0.png", "1.png", "2.png", "IMG_0004"] and result.metrics() is None
    assert not result.skipped, "read as training reads a folder: the photo by content, clutter ignored"
    assert seen[-1] == (4, 4) and len(seen) == 2, "progress after each batch"
    assert not result.thumbs, "no pictures unless asked"
    shown = predict_folder(p, folder, top_k=1, batch_size=3, thumbs=8)  # Try it's table: each row's picture
    assert len(shown.thumbs) == 4 and shown.thumbs[0].shape == (8, 8, 3) and shown.thumbs[0].dtype == np.uint8
    red, green = (int(t[..., 0].mean()) - int(t[..., 1].mean()) for t in (shown.thumbs[0], shown.thumbs[3]))
    assert red > 0 > green, "each picture beside its own row, across batches"
    assert [r["path"] for r in predict_folder(p, [folder], top_k=1).rows] == [r["path"] for r in result.rows], \
        "a list of one folder is that folder"
    files = predict_folder(p, [folder / "0.png", folder / "IMG_0004"], top_k=1)
    assert [r["path"] for r in files.rows] == [str(folder / "0.png"), str(folder / "IMG_0004")], "each as given"
    assert cli(["predict", "--run", "no-such-run", "--data", str(folder), "--data-dir", str(studio_dir)]) == 2
    err = capsys.readouterr().err
    assert "No run 'no-such-run'" in err and "add --data-dir FOLDER" in err, "the dashboard's data folder may be another"
    base = ["predict", "--run", str(run_dir), "--data", str(folder), "--data-dir", str(studio_dir)]
    assert cli(base + ["--variant", "best", "--alpha", "0.5"]) == 2
    assert "use it with --variant wise" in capsys.readouterr().err
    # without --variant a WiSE-FT run answers with its mix, as Try it does, at the alpha asked for
    assert cli(base + ["--alpha", "0.5", "--out", str(tmp_path / "mix.csv")]) == 0
    assert "model: WiSE-FT mix at alpha 0.50 on" in capsys.readouterr().out
    assert cli(base + ["--threshold", "5"]) == 2
    assert "between 0 and 1 (got 5)" in capsys.readouterr().err
    # the model asked for at guessing is said, as Try it says it for the model picked (its own figures)
    summary = json.loads((run_dir / "summary.json").read_text())
    for variant in ("structured", "fine_tuned"):
        assert cli(base + ["--variant", variant, "--out", str(tmp_path / f"{variant}.csv")]) == 0
        caution, err = model_caution(summary, variant), capsys.readouterr().err
        assert (f"warning: {caution}" in err) if caution else not any(l.startswith("warning: ") for l in err.splitlines())
    # a smaller model at guessing by its own figures, whatever this tiny run's are: said
    path, before = run_dir / "summary.json", (run_dir / "summary.json").read_text()
    k = len(summary["classes"])
    try:
        path.write_text(json.dumps({**summary, "structured": {**summary["structured"], "val_acc": 1 / k, "test_acc": 1 / k}}))
        assert cli(base + ["--variant", "structured", "--out", str(tmp_path / "guess.csv")]) == 0
        assert "warning: The smaller (channel-pruned) model's test accuracy" in capsys.readouterr().err
        # sure answers right less often than the model was sure: said once, for the run's own model only
        oversure = {**summary, "test_acc": 0.8, "val_acc": 0.8, "test_confusion": None, "val_confusion": None,
                    "test_confidence": {"from": [0.0, 0.5, 0.7, 0.9], "right": [0, 0, 0, 22],
                                        "images": [0, 0, 0, 30], "confidence": [0.0, 0.0, 0.0, 0.97]},
                    "data_report": {**summary["data_report"], "split_counts": {
                        **summary["data_report"]["split_counts"], "test": {c: 10 for c in summary["classes"]}}}}
        path.write_text(json.dumps(oversure))
        assert cli(base + ["--variant", "fine_tuned", "--out", str(tmp_path / "sure.csv")]) == 0
        err = capsys.readouterr().err
        assert err.count("do not take a high confidence at its word") == 1, err
        assert cli(base + ["--variant", "best", "--out", str(tmp_path / "sure_best.csv")]) == 0
        assert "high confidence" not in capsys.readouterr().err, "the best epoch's answers were never counted"
    finally:
        path.write_text(before)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StudioError, match="'empty' holds no image files"):
        predict_folder(p, empty)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "scan.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "none.csv"
    assert cli(["predict", "--run", str(run_dir), "--data", str(broken), "--data-dir", str(studio_dir),
                "--out", str(out)]) == 1, "nothing readable is bad input, not an empty success"
    err = capsys.readouterr().err
    assert "error: no readable image in" in err and "scan.jpg" in err and not out.exists()
    # an empty folder is said before the model loads (a new user waited for the model to hear it was empty)
    import engine.cli

    loads = []
    real = engine.cli.load_predictor
    engine.cli.load_predictor = lambda *a, **k: loads.append(1) or real(*a, **k)
    try:
        assert cli(["predict", "--run", str(run_dir), "--data", str(empty), "--data-dir", str(studio_dir),
                    "--out", str(out)]) == 2
    finally:
        engine.cli.load_predictor = real
    assert "'empty' is empty (no files" in capsys.readouterr().err and not loads
    assert "predicting" not in err, "no empty progress bar before the error"


@pytest.mark.parametrize("name, content, said", [
    ("weights.pt", b"not an image", "'weights.pt' is not an image this studio reads, a zip archive or a folder"),
    ("photos.zip", b"cut short", "'photos.zip' is not a zip archive: its contents are not in zip format"),
    ("photos.tar.gz", b"\x1f\x8b\x08 gzip", "'photos.tar.gz' is a .tar.gz archive, which the studio does not read"),
])
def test_a_file_predict_cannot_read_gets_predicts_advice_not_trainings(studio, tmp_path, capsys, monkeypatch, name,
                                                                      content, said):
    """Predict reads one image, a folder or a zip of loose images: a file that is none of them is named with
    what it looks like, and the advice lists what predict takes (not training's 'one folder per class'),
    before the model is loaded (which takes seconds on a large one)."""
    import engine.cli

    studio_dir, run_dir = studio
    bad = tmp_path / name
    bad.write_bytes(content)

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded for a file predict cannot read")

    monkeypatch.setattr(engine.cli, "load_predictor", no_model)
    assert cli(["predict", "--run", str(run_dir), "--data", str(bad), "--data-dir", str(studio_dir)]) == 2
    err = capsys.readouterr().err
    assert said in err and "Give one image (jpg, png" in err and "folder per class" not in err, err
    assert not list(tmp_path.glob("predict-*")) and not list((studio_dir / "datasets").glob("predict-*"))


def test_export_command_writes_checked_files_of_each_model_the_run_has(studio, tmp_path, capsys):
    """`export` does what the dashboard's Export tab does, from the command line: safetensors, TorchScript and
    ONNX of the model asked for, each reloaded and checked on the validation images, and the model card; by
    default into the run's exports/ folder, where the dashboard offers them."""
    from engine.export import export_dir

    studio_dir, run_dir = studio
    base = ["export", "--run", run_dir.name, "--data-dir", str(studio_dir)]
    for variant, extra in (("fine_tuned", []), ("wise", ["--alpha", "0.5"]), ("structured", [])):
        out = tmp_path / variant
        assert cli([*base, "--variant", variant, "--out", str(out), *extra]) == 0, capsys.readouterr().err
        said = capsys.readouterr().out
        assert re.search(r"all 3 files reloaded give the model's class on all \d+ validation images", said), said
        assert {p.name for p in out.iterdir()} == {"model.safetensors", "model.ts", "model.onnx", "MODEL_CARD.md",
                                                   "exports.json"}
        checks = json.loads((out / "exports.json").read_text())
        assert all(c["ok"] and c["agreement"] == 1.0 for c in checks), checks
    assert "## WiSE-FT (this is the mix at alpha 0.5)" in (tmp_path / "wise" / "MODEL_CARD.md").read_text()
    # an exported model given to predict as if it were a run: said, with where its own code is
    from engine.cli import _run_folder

    for inside in ("config.yaml", "summary.json"):  # a file of the run's folder is that run, not an exported model
        assert _run_folder(str(run_dir / inside), studio_dir)[0] == run_dir
    for given, what in ((tmp_path / "wise", "a folder of exported model files"), (tmp_path / "wise" / "model.onnx", "a file")):
        assert cli(["predict", "--run", str(given), "--data", str(tmp_path), "--data-dir", str(studio_dir)]) == 2
        err = capsys.readouterr().err
        assert f"is {what}, not a run" in err and str(tmp_path / "wise" / "MODEL_CARD.md") in err, err
    # the mix at alpha 1 is the fine-tuned model: exported as that, into the folder the Export tab uses for it
    summary = json.loads((run_dir / "summary.json").read_text())
    capsys.readouterr()
    assert cli([*base, "--variant", "wise", "--alpha", "1"]) == 0
    said = capsys.readouterr().out
    assert "the WiSE-FT mix at alpha 1.00 is the fine-tuned model" in said and f"to {run_dir / 'exports'}\n" in said
    assert (run_dir / "exports" / "model.onnx").is_file() and not (run_dir / "exports" / "wise_alpha_1.00").exists()
    assert "this is the mix" not in (run_dir / "exports" / "MODEL_CARD.md").read_text()
    # alpha 1 chosen on Results: the fine-tuned model's card says so, as the dashboard's Export tab's does
    from engine.store import RunStore

    store = RunStore(studio_dir / "studio.db")
    store.set_wise_ft_alpha(run_dir.name, 1.0)
    try:
        assert cli([*base, "--variant", "wise"]) == 0
    finally:
        store.set_wise_ft_alpha(run_dir.name, None)
    assert "Alpha 1, the fine-tuned model itself, is chosen on the Results page" in \
        (run_dir / "exports" / "MODEL_CARD.md").read_text()
    assert cli([*base, "--variant", "fine_tuned"]) == 0
    assert f"to {run_dir / 'exports'}" in capsys.readouterr().out and (run_dir / "exports" / "model.onnx").is_file()
    # the dashboard's folder for the mix at the slider's two decimals holds that mix, not one near it
    assert cli([*base, "--variant", "wise", "--alpha", "0.604"]) == 0
    assert "WiSE-FT mix at alpha 0.60" in capsys.readouterr().out
    card = (export_dir(run_dir, "wise", 0.6) / "MODEL_CARD.md").read_text()
    assert "## WiSE-FT (this is the mix at alpha 0.6)" in card
    # between the curve's points: its figures computed for the card, as Results computes them for the slider
    assert 0.6 not in [p["alpha"] for p in summary["wise_curve"]]
    assert "- At alpha 0.6: validation accuracy " in card and "is not on the run's curve" not in card, card
    # the mix's own test accuracy, measured at export (the run's test split)
    n_test = sum(summary["data_report"]["split_counts"]["test"].values())
    assert re.search(rf"- This mix, measured when it was exported: test accuracy \d+\.\d% \({n_test} images\); "
                     r"validation accuracy \d+\.\d%", card), card
    # the curve's OOD figure says what it was measured on (it said "corruptions at its per-epoch severity")
    assert "at severity" not in card, "this run measured no OOD accuracy"
    assert cli([*base, "--variant", "fine_tuned", "--alpha", "0.5"]) == 2
    assert "use it with --variant wise" in capsys.readouterr().err
    assert cli([*base, "--alpha", "0.6"]) == 0, "without --variant: the WiSE-FT run's mix, as the dashboard exports"
    assert "exporting the WiSE-FT mix at alpha 0.60" in capsys.readouterr().out
    assert cli([*base, "--variant", "wise", "--alpha", "2"]) == 2 and "between 0 and 1" in capsys.readouterr().err


def test_export_refuses_a_model_the_run_does_not_have_and_an_unfinished_run_and_checks_without_the_data(
        tmp_path, capsys):
    """A run whose dataset is gone is still exported: each file is checked on generated images, said on
    stderr and in the card (the export stopped at "Could not find" before). A stopped run exports its best
    epoch so far (it was refused), with that model's own figures."""
    studio_dir, data = tmp_path / "studio", write_tiny_zip(tmp_path / "mine.zip", per_class=10)
    assert cli(["train", "--data", str(data), "--pretrained", "none", "--epochs", "1", "--image-size", "32",
                "--data-dir", str(studio_dir), "--quiet", "--set", "eval.ood=false"]) == 0
    (run_dir,) = list((studio_dir / "runs").iterdir())
    capsys.readouterr()
    base = ["export", "--run", str(run_dir), "--data-dir", str(studio_dir)]
    assert cli([*base, "--alpha", "0.5"]) == 2, "a run without WiSE-FT: its default is the fine-tuned model"
    assert "use it with --variant wise" in capsys.readouterr().err
    assert cli([*base, "--variant", "structured"]) == 2
    assert "This run has no structured model: it was trained without structured pruning" in capsys.readouterr().err
    data.unlink()
    shutil.rmtree(studio_dir / "datasets")
    assert cli(base) == 0
    said = capsys.readouterr()
    assert "dataset could not be read (Could not find" in said.err and "mine.zip" in said.err, said.err
    assert "all 3 files reloaded give the model's class on all 32 generated images" in said.out, said.out
    card = (run_dir / "exports" / "MODEL_CARD.md").read_text()
    assert "## Exports (verified on the 32 generated images)" in card and "say nothing of its accuracy" in card
    assert card.count("verified (same class as the model on 100.0% of the 32 generated images") == 3, card
    shutil.rmtree(run_dir / "exports")
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps(dict(summary, status="failed")))
    assert cli(base) == 2 and "it has no final model to use" in capsys.readouterr().err
    assert not (run_dir / "exports").exists()
    # a stopped run: its best epoch so far, with its own figures (none here: the dataset is gone), never the run's
    (run_dir / "summary.json").write_text(json.dumps(dict(summary, status="stopped")))
    assert cli(base) == 0
    assert "was stopped after 1 of 1 epoch, so its best epoch so far is exported" in capsys.readouterr().err
    card = (run_dir / "exports" / "best_epoch_1" / "MODEL_CARD.md").read_text()
    assert "- These files are its best epoch, epoch 1 of the 1 it ran (highest validation accuracy), stopped before " \
           "its end" in card, card
    recorded = summary["history"][0]["val_acc"]  # the dataset is gone: the figure its training recorded, no test
    assert (f"## Metrics (the best epoch's validation accuracy as recorded in training: the dataset could not be "
            f"read)\n- Validation accuracy: {100 * recorded:.1f}%; test accuracy: n/a") in card, card
    assert "- 1 epoch planned, batch" in card


def test_a_stopped_run_answers_with_its_best_epoch_so_far(tmp_path, tiny_zip, capsys):
    """`predict` on a stopped run used to ask for the run to be continued first, though Results offers its
    best-epoch weights; it now answers with them and says so, also for a run stopped with Ctrl-C on the
    command line, whose summary names no classes (they are read from the checkpoint)."""
    studio_dir = tmp_path / "studio"
    assert cli(["train", "--data", str(tiny_zip), "--pretrained", "none", "--epochs", "1", "--image-size", "32",
                "--data-dir", str(studio_dir), "--quiet", "--set", "eval.ood=false"]) == 0
    (run_dir,) = list((studio_dir / "runs").iterdir())
    (run_dir / "last.safetensors").unlink()  # a stopped run keeps its best epoch only
    (run_dir / "summary.json").write_text(json.dumps({"status": "stopped", "run_id": run_dir.name, "epochs": 1}))
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, cls in enumerate(TINY_CLASSES):
        tiny_image(cls, 900 + i).save(folder / f"{cls}.png")
    capsys.readouterr()
    out = tmp_path / "answers.csv"
    base = ["predict", "--run", run_dir.name[-6:], "--data", str(folder), "--data-dir", str(studio_dir)]
    assert cli([*base, "--out", str(out), "--quiet"]) == 0
    said = capsys.readouterr()
    assert "model: Best epoch" in said.out and f"classes: {', '.join(sorted(TINY_CLASSES))}" in said.out, said.out
    assert "stopped after 1 of 1 epoch, so its best epoch so far answers" in said.err, said.err
    assert f"--resume {run_dir.name}" in said.err and len(out.read_text().splitlines()) == 1 + len(TINY_CLASSES)
    assert cli([*base, "--variant", "fine_tuned", "--out", str(tmp_path / "other.csv")]) == 2
    assert "Its best epoch so far can be used now: --variant best." in capsys.readouterr().err


def test_generated_check_images_are_varied_fixed_and_of_the_models_size():
    """The images an export is checked on without its dataset: uint8 [32, 3, S, S], the same each time, and
    neither constant nor all alike (a flat image would check little of the network)."""
    from engine.export import generated_check_images

    images = generated_check_images(48)
    assert images.shape == (32, 3, 48, 48) and images.dtype == torch.uint8
    assert torch.equal(images, generated_check_images(48))
    assert not torch.equal(images, generated_check_images(48, seed=1))
    per_image = images.float().flatten(1)
    assert per_image.std(1).min() > 10 and per_image.mean(1).std() > 5


def test_predict_finds_a_run_by_the_id_runs_lists_wherever_its_folder_is(studio, tmp_path, capsys):
    """`train --out` writes a run outside the engine's folder; `runs` lists it, so `predict --run` takes
    its id (or the end of it) too."""
    import shutil

    from engine.store import RunStore

    studio_dir, run_dir = studio
    data_dir = tmp_path / "engine"
    elsewhere = shutil.copytree(run_dir, tmp_path / "my-runs" / "first")
    RunStore(data_dir / "studio.db").create_run("20260101-000000-abc123", "mine", {}, str(elsewhere), owner="cli")
    folder = tmp_path / "photos"
    folder.mkdir()
    tiny_image("red", 900).save(folder / "a.png")
    for run in ("20260101-000000-abc123", "abc123", "0101-000000"):  # the id, its end, any part of it
        assert cli(["predict", "--run", run, "--data", str(folder), "--data-dir", str(data_dir),
                    "--out", str(tmp_path / f"{run}.csv"), "--quiet"]) == 0, capsys.readouterr().err
        assert (tmp_path / f"{run}.csv").is_file()
    second = shutil.copytree(run_dir, tmp_path / "my-runs" / "second")
    RunStore(data_dir / "studio.db").create_run("20260101-000001-fed789", "mine", {}, str(second), owner="cli")
    capsys.readouterr()
    assert cli(["predict", "--run", "20260101", "--data", str(folder), "--data-dir", str(data_dir),
                "--out", str(tmp_path / "two.csv")]) == 2
    assert ("'20260101' is part of 2 run ids: 20260101-000000-abc123, 20260101-000001-fed789. Give more of it"
            in capsys.readouterr().err)
    shutil.rmtree(second)  # (the listed runs below: one)
    capsys.readouterr()
    assert cli(["runs", "--data-dir", str(data_dir)]) == 0
    assert "20260101-000000-abc123" in capsys.readouterr().out
    RunStore(data_dir / "studio.db").set_wise_ft_alpha("20260101-000000-abc123", 0.35)  # chosen on Results
    for run in ("abc123", str(elsewhere)):  # by its id, or by its folder: the choice stored with the run
        assert cli(["predict", "--run", run, "--variant", "wise", "--data", str(folder), "--data-dir", str(data_dir),
                    "--out", str(tmp_path / "wise.csv"), "--quiet"]) == 0
        assert "WiSE-FT mix at alpha 0.35" in capsys.readouterr().out
    RunStore(data_dir / "studio.db").create_run("20260102-000000-def456", "moved", {}, str(tmp_path / "gone"), owner="cli")
    assert cli(["predict", "--run", "def456", "--data", str(folder), "--data-dir", str(data_dir)]) == 2
    assert "Run 20260102-000000-def456 is listed by `python -m engine runs`, but its folder" in capsys.readouterr().err


# ---- the model card's scripts --------------------------------------------------------------------------

@pytest.mark.parametrize("runtime", ["onnx", "torchscript"])
def test_model_card_use_it_code_reproduces_the_studio(studio, tmp_path, runtime):
    """Export the run as the Explain page does, take the card's script for `runtime` verbatim, run it
    on new image files (a sideways JPEG photo, an RGBA icon, a grey PNG, a 16-bit scan, a float TIFF) and compare
    with the studio."""
    from engine.export import export_all
    from engine.runs import FinishedRun

    studio_dir, run_dir = studio
    bundle = FinishedRun(run_dir, studio_dir / "datasets")
    checks = export_all(bundle.model, bundle.cfg, bundle.summary, bundle.data.val.images, tmp_path / "export")
    assert all(c.ok for c in checks), [c.message for c in checks]
    card = (tmp_path / "export" / "MODEL_CARD.md").read_text()
    title = "ONNX Runtime" if runtime == "onnx" else "TorchScript"
    code = re.search(r"### " + title + r".*?```python\n(.*?)```", card, re.S).group(1)
    (tmp_path / "export" / "predict.py").write_text(code)

    images = tmp_path / "images"
    images.mkdir()
    photo = tiny_image("stripes", 1, size=90).crop((0, 0, 90, 60))
    exif = Image.Exif()
    exif[0x0112] = 8
    photo.save(images / "photo.jpg", exif=exif.tobytes(), quality=90)
    icon = tiny_image("red", 2, size=40).convert("RGBA")
    icon.putalpha(Image.linear_gradient("L").resize((40, 40)))
    icon.save(images / "icon.png")
    tiny_image("green", 3, size=50).convert("L").save(images / "grey.png")
    # a 16-bit greyscale scan (X-ray, microscope) went white through the card's convert("RGBA") alone
    ramp = np.linspace(0, 1, 44 * 36).reshape(36, 44)
    Image.fromarray((ramp * 50000 + 3000).astype(np.uint16)).save(images / "scan16.png")
    Image.fromarray(ramp.astype(np.float32)).save(images / "scan float.tif")
    paths = sorted(images.iterdir())
    assert {Image.open(x).mode for x in paths} >= {"I;16", "F"}, "the high-depth modes are tried"

    namespace: dict = {}
    exec(code.split("\nMODEL, IMAGES")[0], namespace)  # the card's own `load`, without running the model
    for x in paths:
        pixels = torch.from_numpy(namespace["load"](str(x)) * 255).round().to(torch.uint8)
        assert torch.equal(pixels, decode_image(x, 32)), f"{x.name}: the card's preprocessing differs from the studio's"

    model_file = tmp_path / "export" / ("model.onnx" if runtime == "onnx" else "model.ts")
    downloaded = model_file.rename(tmp_path / f"my run-2026-{model_file.name}")  # saved under another name
    run = subprocess.run([sys.executable, "predict.py", str(downloaded), *map(str, paths)], cwd=tmp_path / "export",
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "deprecated" not in run.stderr, "a user's script says nothing about TorchScript's deprecation upstream"
    printed = [line.rsplit(" ", 2) for line in run.stdout.strip().splitlines()]
    p = load_predictor(run_dir, "fine_tuned")
    studio_answers = p.predict(torch.stack([decode_image(x, 32) for x in paths]))
    assert len(printed) == len(paths)
    for (path, cls, prob), x, a in zip(printed, paths, studio_answers):
        assert path == str(x)
        assert cls == a.top[0][0]
        assert float(prob) == pytest.approx(a.top[0][1], abs=2e-4)


@pytest.mark.parametrize("batch_size", [2, 3])
def test_decoding_ahead_of_the_model_and_batch_by_batch_give_the_same_batches(tmp_path, batch_size):
    """The GPU path (decoding runs ahead in threads) and the CPU path (each batch decoded, then
    handed over) yield the same images in the same order, with the same skipped files."""
    from engine.predict import _decoded_batches

    items = []
    for i in range(7):
        path = tmp_path / f"{i}.png"
        if i == 3:
            path.write_bytes(b"broken")
        else:  # sizes of their own: each row's size must be its own picture's
            tiny_image(TINY_CLASSES[i % 3], i, size=20 + i).resize((20 + i, 30 + i)).save(path)
        items.append((path.name, path))
    runs = {}
    for overlap in (True, False):
        skipped = []
        batches = list(_decoded_batches(items, 16, batch_size, skipped, overlap))
        assert all(len(idx) == len(b) == len(dims) <= batch_size for idx, b, _, dims in batches)
        assert batches[-1][2] == 7, "the last batch reports every file consumed"
        assert all(facts == ((20 + i, 30 + i), 1)  # each picture's own size, and one page
                   for idx, _, _, dims in batches for i, facts in zip(idx, dims)), batches
        runs[overlap] = ([i for idx, *_ in batches for i in idx], torch.cat([b for _, b, *_ in batches]),
                         [(s.path, s.reason) for s in skipped])
    assert runs[True][0] == runs[False][0] == [0, 1, 2, 4, 5, 6]
    assert torch.equal(runs[True][1], runs[False][1])
    assert runs[True][2] == runs[False][2] and runs[True][2][0][0] == "3.png"


def test_the_own_images_note_counts_and_says_what_the_accuracy_means():
    from engine.predict import own_images_note

    assert own_images_note([None, None]) is None
    assert own_images_note(["test", None, None]) == ("1 of these 3 images is the run's own (1 test): none is a "
                                                     "training image, so they test the model like the run's own "
                                                     "held-out images.")
    many = own_images_note(["training", "validation", "training", None])
    assert many.startswith("3 of these 4 images are the run's own (2 training, 1 validation): the model learned")
    assert own_images_note(["validation"]).startswith("This is one of the run's validation images")
    assert own_images_note(["training", None], accuracy=False).endswith(
        "the model learned from its training images, so its answers on them say little about new images."), \
        "loose images have no accuracy to speak of"


def test_the_best_epoch_model_says_which_epoch_it_is(studio):
    from engine.predict import best_epoch

    assert best_epoch([{"epoch": 1, "val_acc": 0.5}, {"epoch": 2, "val_acc": 0.7}, {"epoch": 3, "val_acc": 0.7}]) \
        == (2, 3), "the first of equal bests, as the loop keeps it"
    # 100% on 9 validation images after the head-only first epoch and after the last: the lower loss decides
    tied = [{"epoch": 1, "val_acc": 1.0, "val_loss": 0.713}, {"epoch": 2, "val_acc": 0.9, "val_loss": 0.3},
            {"epoch": 3, "val_acc": 1.0, "val_loss": 0.116}]
    assert best_epoch(tied) == (3, 3), "not the head-only epoch a new user's Try it opened on"
    # the run was trained adversarially: its fine-tuned model is named as Try it's picker names it
    assert load_predictor(studio[1], "fine_tuned", datasets_dir=studio[0] / "datasets").label == \
        "Adversarially fine-tuned (end of training)"
    assert best_epoch([]) is None
    # no validation images (a dataset whose look-alike pictures all went to training): the loop keeps epoch 1, and
    # predict stopped with a TypeError on the saved None
    unmeasured = [{"epoch": 1, "val_acc": None, "val_loss": None}, {"epoch": 2, "val_acc": None}]
    assert best_epoch(unmeasured) == (1, 2)
    assert best_epoch([{"epoch": 1, "val_acc": None}, {"epoch": 2, "val_acc": 0.1}]) == (2, 2)
    studio_dir, run_dir = studio
    label = load_predictor(run_dir, "best", datasets_dir=studio_dir / "datasets").label
    assert re.fullmatch(r"Best epoch \([12] of 2\)", label), label


def test_a_resized_or_re_saved_copy_of_the_runs_image_is_recognised_and_no_other_image_is():
    """Generated textures as a run's 64 px images. Their copies saved at another size and format are
    found as the image they came from (a user's copy of a training image is not a test of the
    model); new textures, a flat colour beside another, and a picture whose hash is close but whose
    thumbnail is not (as for two similar handwritten digits) are not."""
    from tools.textures import make_texture_images

    from engine.predict import NearCopies, copy_keys, own_images_note

    images, _ = make_texture_images(4, 64, seed=3)  # 32 textures, each its own "split" to tell them apart
    copies = NearCopies.of([(f"image {i}", images[i:i + 1]) for i in range(len(images))])
    found = []
    for i, image in enumerate(images):
        picture = Image.fromarray(image.permute(1, 2, 0).numpy())
        for size, fmt, kw in ((150, "JPEG", {"quality": 85}), (48, "PNG", {}), (300, "WEBP", {})):
            copy, _ = decode_bytes(png_bytes(picture.resize((size, size), Image.Resampling.BICUBIC), fmt, **kw),
                                   f"copy.{fmt.lower()}", 64)
            found.append((copies.find(copy[None])[0], f"image {i}"))
    assert sum(got == want for got, want in found) >= 0.85 * len(found), found
    assert all(got in (None, want) for got, want in found), "a copy is never taken for another image"
    fresh, _ = make_texture_images(4, 64, seed=11)
    assert copies.find(fresh) == [None] * len(fresh), "new textures are nobody's copy"
    red = torch.tensor([200, 30, 30], dtype=torch.uint8).view(3, 1, 1).expand(3, 64, 64).contiguous()[None]
    blue = torch.tensor([30, 30, 200], dtype=torch.uint8).view(3, 1, 1).expand(3, 64, 64).contiguous()[None]
    flat = NearCopies.of([("training", red)])
    flat.hashes[:] = copy_keys(blue)[0]  # even with the same hash: the colours differ
    assert flat.find(blue) == [None]
    redder = red.clone()
    redder[:, 0] += 13  # 13 levels in one channel: thumbnails 4.3 apart on average, within their rule
    flat.hashes[:] = copy_keys(redder)[0]
    assert flat.find(redder) == [None], "the colour rule alone: a channel more than 12 levels away"
    redder[:, 0] -= 2  # 11 levels: a copy by every rule
    flat.hashes[:] = copy_keys(redder)[0]
    assert flat.find(redder) == ["training"]
    brighter = images[:1].clone()
    brighter[..., :32, :32] = (brighter[..., :32, :32].int() + 40).clamp(max=255).to(torch.uint8)
    one = NearCopies.of([("training", images[:1])])
    one.hashes[:] = copy_keys(brighter)[0]  # the same hash and mean colours within 12: only the thumbnails differ
    assert one.find(brighter) == [None], "a close hash alone does not make a copy"
    both = NearCopies.of([("test", images[:1]), ("training", images[:1])])
    assert both.find(images[:1]) == ["training"], "a copy of a training image is one, whatever else it matches"

    p = Predictor.__new__(Predictor)
    p.classes, p.low_confidence = ["cat", "dog"], 0.5
    p.stats = FeatureStats(torch.eye(2).repeat_interleave(5, 0), far_distance=0.1, reference="test",
                           copies=NearCopies.of([("training", images[:16]), ("test", images[16:])],
                                                [["cat"] * 16, ["dog"] * 16]))
    picture = Image.fromarray(images[0].permute(1, 2, 0).numpy()).resize((200, 200), Image.Resampling.BICUBIC)
    copy, _ = decode_bytes(png_bytes(picture, "JPEG", quality=90), "mine.jpg", 64)
    (a,) = p.answers(torch.tensor([[0.9, 0.1]]), torch.tensor([[0.0, -1.0]]), images_u8=copy[None])  # far features
    assert a.own == "training" and a.own_copy and not a.unfamiliar, "a copy of a training image is not unfamiliar"
    assert p.explanation(a).startswith("This looks like a resized or re-saved copy of one of the run's training images")
    assert p.short_reason(a) == "copy of a training image, labelled cat"
    assert a.own_class == "cat" and p.explanation(a).endswith("In the run's data it is labelled cat: the model's "
                                                              "answer is right.")
    assert own_images_note(["training"], [False], labels=["cat"]).endswith("it is labelled cat."), "no answer: no verdict"
    labelled = NearCopies.of([("test", images[:1]), ("training", images[:1])], [["dog"], ["cat"]])
    assert labelled.find_labelled(images[:1]) == [("training", "cat")], "the training image's label, as its split"
    assert own_images_note(["training", None], [True, False]) == (
        "1 of these 2 images is the run's own (1 training; 1 of them a resized or re-saved copy): the model learned "
        "from its training images, so an accuracy over them is not a test of the model.")


def test_a_run_that_did_not_finish_says_how_to_get_a_model(tmp_path):
    """Predicting with a stopped run says to continue it when it can be continued, else to train again."""
    from engine.errors import StudioError
    from engine.predict import run_summary

    stopped = tmp_path / "stopped"
    stopped.mkdir()
    (stopped / "resume.pt").write_bytes(b"")
    with pytest.raises(StudioError, match=re.escape(f"has not finished: continue it to the end first "
                                                    f"(python -m engine train --resume {stopped}")):
        run_summary(stopped)
    failed = tmp_path / "failed"
    failed.mkdir()
    (failed / "summary.json").write_text(json.dumps({"status": "failed"}))
    with pytest.raises(StudioError, match=r"did not finish \(failed\): it has no final model to use; train it again"):
        run_summary(failed)


def test_each_model_of_a_run_is_judged_by_its_own_figures():
    """predict and Try it: a run whose fine-tuned model learnt can hold a smaller model or a mix at guessing."""
    summary = {"classes": ["a", "b", "c"], "val_acc": 0.9, "test_acc": 0.9,
               "structured": {"val_acc": 1 / 3, "test_acc": 1 / 3},
               "wise_curve": [{"alpha": 0.0, "val_acc": 1 / 3}, {"alpha": 1.0, "val_acc": 0.9}]}
    assert model_caution(summary, "structured").startswith("The smaller (channel-pruned) model's test accuracy (33.3%)")
    assert model_caution(summary, "wise", 0.0).startswith("At alpha 0.00 the WiSE-FT mix's validation accuracy")
    assert model_caution(summary, "wise", 1.0) is None and model_caution(summary, "fine_tuned") is None
    guessing = {**summary, "val_acc": 1 / 3, "test_acc": 1 / 3}
    assert model_caution(guessing, "fine_tuned").startswith("This run's test accuracy (33.3%) is at the level")
    assert model_caution(guessing, "best") is None, "the best epoch has no held-out figures of its own"


def test_a_best_epochs_card_has_its_own_figures_and_none_of_the_final_models():
    """The best epoch's model card: the run's facts, the figures measured on that model at export, never the final
    model's (its test, OOD, robust accuracy or WiSE-FT curve)."""
    from engine.config import RunConfig
    from engine.export import best_epoch_summary, model_card

    run = {"classes": ["a", "b"], "data_report": {"counts": {"a": 9, "b": 9}}, "num_params": 10, "val_acc": 0.9,
           "test_acc": 0.8, "ood_acc": 0.7, "robust_acc": 0.5, "wise_curve": [{"alpha": 0.5}], "test_confusion": [[1]],
           "status": "finished"}
    measured = {"val_acc": 0.75, "test_acc": 0.625, "val_images": 8, "test_images": 8}
    card = best_epoch_summary(run, ["a", "b"], measured, (3, 5))
    assert card["val_acc"] == 0.75 and card["test_acc"] == 0.625 and card["best_epoch"] == [3, 5]
    assert not {"ood_acc", "robust_acc", "wise_curve", "test_confusion"} & set(card), card
    assert card["data_report"] == run["data_report"] and card["export_variant"] == "best"
    text = model_card(RunConfig(), card)
    assert "- These files are its best epoch, epoch 3 of the 5 it ran (highest validation accuracy)\n" in text
    assert "Validation accuracy: 75.0%; test accuracy: 62.5%" in text and "not measured for the best epoch's" in text


def test_a_gone_upload_is_named_by_its_file_on_the_command_line_too(tmp_path):
    """The dashboard named a deleted upload by the user's file; `predict`, `export` and `train --config` said only
    "the uploaded file this run uses", and `train` blamed --data-dir though the right folder was given."""
    from engine.cli import _check_sources
    from engine.config import apply_overrides, RunConfig
    from engine.predict import data_fingerprint
    from engine.run_data import prepare_data

    cfg = apply_overrides(RunConfig(), ["data.source=upload:" + "ab" * 32, "data.source_name=my drawings.zip"])
    with pytest.raises(StudioError, match="The run's dataset, 'my drawings.zip', is no longer in this studio's "
                                          "uploads folder: it was deleted or moved"):
        prepare_data(cfg, tmp_path)
    fingerprint, why = data_fingerprint(cfg)  # predict's and Try it's note
    assert fingerprint is None and "'my drawings.zip'" in why
    with pytest.raises(StudioError) as said:
        _check_sources(cfg, tmp_path)
    assert "The dataset 'my drawings.zip' is an upload of the dashboard's" in str(said.value)
    assert "deleted or moved (upload it again" in str(said.value) and "another folder" in str(said.value)
    nameless = apply_overrides(cfg, ["data.source_name="])
    with pytest.raises(StudioError, match=r"The run's dataset \(an upload\) is no longer"):
        prepare_data(nameless, tmp_path)


def test_a_run_that_keeps_whole_pictures_answers_and_exports_with_whole_pictures(tmp_path):
    """data.fit "pad" (the whole picture padded to a square, engine.data.fit_square): `predict`, Try it's decode
    and the model card's scripts prepare a new picture the way the run trained, the run's name says so, and the
    card's script gives the studio's pixels."""
    from engine.data import PAD_RGB
    from engine.export import use_it_code

    classes = {"left": (0, 6), "right": (42, 48)}  # a red bar at one end of a 48 x 24 grey picture
    with zipfile.ZipFile(tmp_path / "ends.zip", "w") as zf:
        for cls, (x0, x1) in classes.items():
            for i in range(8):  # noise of its own: no two pictures look alike (one group would take every split)
                rng = np.random.default_rng(i + 10 * x0)
                img = Image.fromarray(rng.integers(40, 140, (24, 48, 3), dtype=np.uint8))
                img.paste((230, 20, 20), (x0, 0, x1, 24))
                zf.writestr(f"{cls}/{i}.png", png_bytes(img))
    sets = ["eval.ood=false", "train.threads=1", "train.device=cpu", "data.fit=pad"]
    argv = ["train", "--data", str(tmp_path / "ends.zip"), "--backbone", "resnet18", "--pretrained", "none",
            "--epochs", "1", "--image-size", "32", "--batch-size", "4", "--data-dir", str(tmp_path / "studio"),
            "--quiet"]
    assert cli(argv + [a for s in sets for a in ("--set", s)]) == 0
    (run_dir,) = list((tmp_path / "studio" / "runs").iterdir())
    p = load_predictor(run_dir, datasets_dir=tmp_path / "studio" / "datasets")
    assert p.fit == "pad"
    # the kept measurements are filed under the data settings: "pad" changes the key, and the default "crop" leaves it
    # as it was for every run made before the setting existed
    from dataclasses import replace as replaced

    import engine.predict as predict

    crop_cfg = replaced(p.cfg, data=replaced(p.cfg.data, fit="crop"))
    assert predict.model_key(p, p.cfg) != predict.model_key(p, crop_cfg)
    own = predict.asdict
    try:  # the key of a config from before data.fit existed: its data settings without the field
        predict.asdict = lambda d: {k: v for k, v in own(d).items() if k != "fit"}
        before = predict.model_key(p, crop_cfg)
    finally:
        predict.asdict = own
    assert predict.model_key(p, crop_cfg) == before, "older runs keep their kept measurements"
    new = Image.new("RGB", (60, 20), (95, 90, 90))
    new.paste((230, 20, 20), (0, 0, 8, 20))
    (tmp_path / "new.png").write_bytes(png_bytes(new))
    image, notes = decode_bytes(png_bytes(new), "new.png", 32, fit=p.fit)
    assert torch.equal(image, decode_image(tmp_path / "new.png", 32, fit="pad"))
    assert (image[:, :10] == torch.tensor(PAD_RGB).view(3, 1, 1)).all() and image[0, 16, 0] > 200, "the red end kept"
    assert any(n.startswith("the whole picture kept, resized to fit 32 x 32 pixels (bilinear), grey bars above and "
                            "below") for n in notes), notes
    (row,) = predict_folder(p, tmp_path / "new.png").rows
    (answer,) = p.predict(image[None])
    assert row["top"][0] == answer.top[0], "predict decodes as the run trained"
    from engine.config import RunConfig
    from engine.presets import run_name

    assert run_name(RunConfig.load(run_dir / "config.yaml")).endswith("on ends.zip, whole pictures")
    code = use_it_code(["left", "right"], 32, "onnx", fit="pad")
    assert "trained on SIZE x SIZE whole pictures, padded with grey to a square" in code
    namespace: dict = {}
    exec(code.split("\nMODEL, IMAGES")[0], namespace)
    photo = tmp_path / "photo.jpg"
    new.rotate(90, expand=True).save(photo, quality=90)  # a tall JPEG: bars left and right
    large = tmp_path / "large.jpg"  # decoded at a fraction of its size (JPEG draft), by its longer side
    new.resize((640, 200)).save(large, quality=90)
    for x in (tmp_path / "new.png", photo, large):
        pixels = torch.from_numpy(namespace["load"](str(x)) * 255).round().to(torch.uint8)
        assert torch.equal(pixels, decode_image(x, 32, fit="pad")), f"{x.name}: the card's script differs"


def test_a_run_that_stretches_whole_pictures_answers_and_exports_stretched(tmp_path):
    """data.fit "stretch" (the whole picture resized to the square, a spectrogram's usual treatment): `predict`,
    Try it's decode and the model card's scripts stretch a new picture as the run trained, the decoding notes say by
    how much, and the run's name says so."""
    from engine.config import RunConfig
    from engine.export import use_it_code, use_it_section
    from engine.presets import run_name

    with zipfile.ZipFile(tmp_path / "calls.zip", "w") as zf:
        for cls, (x0, x1) in {"early": (0, 12), "late": (84, 96)}.items():
            for i in range(8):
                img = Image.fromarray(np.random.default_rng(i + 10 * x0).integers(40, 140, (24, 96, 3), dtype=np.uint8))
                img.paste((230, 20, 20), (x0, 0, x1, 24))
                zf.writestr(f"{cls}/{i}.png", png_bytes(img))
    argv = ["train", "--data", str(tmp_path / "calls.zip"), "--backbone", "resnet18", "--pretrained", "none",
            "--epochs", "1", "--image-size", "32", "--batch-size", "4", "--data-dir", str(tmp_path / "studio"),
            "--quiet"]
    sets = ["eval.ood=false", "train.threads=1", "train.device=cpu", "data.fit=stretch"]
    assert cli(argv + [a for s in sets for a in ("--set", s)]) == 0
    (run_dir,) = list((tmp_path / "studio" / "runs").iterdir())
    p = load_predictor(run_dir, datasets_dir=tmp_path / "studio" / "datasets")
    assert p.fit == "stretch"
    assert run_name(RunConfig.load(run_dir / "config.yaml")).endswith("on calls.zip, stretched pictures")
    new = Image.new("RGB", (120, 30), (95, 90, 90))
    new.paste((230, 20, 20), (0, 0, 10, 30))
    (tmp_path / "new.png").write_bytes(png_bytes(new))
    image, notes = decode_bytes(png_bytes(new), "new.png", 32, fit=p.fit)
    assert torch.equal(image, decode_image(tmp_path / "new.png", 32, fit="stretch"))
    assert image[0, :, 0].min() > 200, "the red end kept, top to bottom: no bars"
    assert "the whole picture kept, stretched to 32 x 32 pixels (bilinear; its width squeezed 4.0x more than its " \
           "height): as in the run's training" in notes, notes
    (row,) = predict_folder(p, tmp_path / "new.png").rows
    (answer,) = p.predict(image[None])
    assert row["top"][0] == answer.top[0], "predict decodes as the run trained"
    card = " ".join(use_it_section(["early", "late"], 32, "stretch"))
    assert "the whole picture stretched to 32 x 32, pixels" in card
    code = use_it_code(["early", "late"], 32, "onnx", fit="stretch")
    assert "trained on SIZE x SIZE whole pictures, stretched to a square" in code
    namespace: dict = {}
    exec(code.split("\nMODEL, IMAGES")[0], namespace)
    photo, large = tmp_path / "photo.jpg", tmp_path / "large.jpg"
    new.rotate(90, expand=True).save(photo, quality=90)
    new.resize((1280, 320)).save(large, quality=90)  # decoded at a fraction of its size (JPEG draft)
    for x in (tmp_path / "new.png", photo, large):
        pixels = torch.from_numpy(namespace["load"](str(x)) * 255).round().to(torch.uint8)
        assert torch.equal(pixels, decode_image(x, 32, fit="stretch")), f"{x.name}: the card's script differs"


def test_an_archivists_multi_page_tiffs_pdfs_and_double_flags_are_said_alike_everywhere(studio, tmp_path, capsys):
    """An archivist's trial: a 2-page letter (TIFF) was answered from page 1 with a word on it only in Try it's
    closed expander, not in a zip's table, the CSV or `predict`; a .jp2 or .pdf scan was "not accepted here" on the
    Data page but "not a readable image (unknown format or damaged file)" when uploaded alone or given to
    `predict`; and "answers flagged: 1 unfamiliar, 3 unsure" read as 4 of 3 flagged pictures."""
    import csv

    from engine.data import kind_reason
    from engine.predict import FolderResult, check_source

    studio_dir, run_dir = studio
    letter = tmp_path / "Brief 1940 zwei Seiten.tif"
    tiny_image("red", 950).save(letter, save_all=True, append_images=[tiny_image("green", 951)])
    with zipfile.ZipFile(tmp_path / "new.zip", "w") as zf:
        zf.write(letter, f"neu/{letter.name}")
        zf.writestr("neu/one.png", png_bytes(tiny_image("green", 952)))
    out = tmp_path / "p.csv"
    assert cli(["predict", "--run", run_dir.name, "--data-dir", str(studio_dir), str(tmp_path / "new.zip"),
                "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith(f"neu/{letter.name}"))
    assert lines[at + 1] == ("    note: page 1 of its 2 used (the model answers one picture; save another page as a "
                             "file of its own to try it)"), lines
    assert sum("page 1 of its" in line for line in lines) == 1, "not under the one-page file"
    rows = {r["path"]: r for r in csv.DictReader(out.open(encoding="utf-8-sig"))}
    assert "page 1 of its 2 used" in rows[f"neu/{letter.name}"]["note"] and "page" not in rows["neu/one.png"]["note"]
    from app.app_pages.try_it import pages_tag

    assert pages_tag({"pages": 2}) == "page 1 of 2" and pages_tag({"pages": 1}) == pages_tag({}) == ""

    # more than ten answers: they go to the CSV only, and what the lines under them would say is said once
    with zipfile.ZipFile(tmp_path / "eleven.zip", "w") as zf:
        zf.write(letter, f"neu/{letter.name}")
        zf.writestr("neu/big.png", png_bytes(tiny_image("red", 953, size=96)))
        for i in range(9):
            zf.writestr(f"neu/{i}.png", png_bytes(tiny_image("green", 960 + i)))
    assert cli(["predict", "--run", run_dir.name, "--data-dir", str(studio_dir), str(tmp_path / "eleven.zip"),
                "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "note: Of your 11 pictures, 1 is 3 or more times larger or smaller than the training pictures (typically " \
           "24 x 24), by the shorter side: neu/big.png (4 times as large)." in printed, printed
    assert f"note: 1 file of several pictures, of which the first was answered (the CSV's note says so): " \
           f"neu/{letter.name}" in printed, printed
    # given among other files, a PDF is skipped with the same reason
    (tmp_path / "Scan.pdf").write_bytes(b"%PDF-1.4")
    tiny_image("red", 970).save(tmp_path / "a.png")
    assert cli(["predict", "--run", run_dir.name, "--data-dir", str(studio_dir), str(tmp_path / "a.png"),
                str(tmp_path / "Scan.pdf"), "--out", str(out)]) == 0
    assert f"Scan.pdf: {kind_reason('Scan.pdf')}" in capsys.readouterr().out
    for name in ("Karte neu.jp2", "Brief Scan0099.pdf"):  # said as the Data page says it, uploaded or given alone
        with pytest.raises(StudioError) as refused:
            decode_bytes(b"%PDF-1.4 or a JPEG 2000 codestream", name, 32)
        assert str(refused.value) == f"'{name}' could not be used: {kind_reason(name)}."
        (tmp_path / name).write_bytes(b"not read")
        with pytest.raises(StudioError, match=re.escape(f"'{name}' cannot be used: {kind_reason(name)}.")):
            check_source(tmp_path / name)
    assert kind_reason("x.jp2") == "image format not accepted here (.jp2); save it as JPEG or PNG"
    assert kind_reason("x.pdf").startswith("a PDF document (.pdf), not a picture")
    assert kind_reason("x.png") is None and kind_reason("camera_export") is None

    def flagged(unfamiliar, unsure):
        return {"unfamiliar": unfamiliar, "unsure": unsure}

    result = FolderResult(["a"], "fine_tuned", rows=[flagged(True, True), flagged(False, True), flagged(False, True),
                                                     flagged(False, False)])
    assert result.flag_words() == "3 (1 unfamiliar, 3 unsure; 1 both)"
    assert FolderResult(["a"], "fine_tuned", rows=[flagged(False, True)]).flag_words() == "1 (1 unsure)"
    assert FolderResult(["a"], "fine_tuned", rows=[flagged(False, False)]).flag_words() == "none"


def test_a_wrong_answer_given_with_high_confidence_is_flagged_in_a_labelled_batch(capsys):
    """A labelled batch's single 99% miss had no flag of its own, only its row's cross among the right ones: it is
    named on Try it and by `predict`, the surest first, and its table row says it."""
    from types import SimpleNamespace

    from engine.cli import _say_batch_figures
    from engine.predict import SURE_MISTAKES_NAMED, FolderResult, sure_mistakes_words

    def row(path, true, top, p):
        return {"path": path, "true": true, "top": [(top, p), ("other", 1 - p)], "why": "", "greyscale": False}

    rows = [row("rust/a.jpg", "rust", "healthy", 0.993), row("rust/b.jpg", "rust", "rust", 0.99),
            row("healthy/c.jpg", "healthy", "rust", 0.89), row("healthy/d.jpg", "healthy", "rust", 0.95),
            row("loose.jpg", None, "rust", 0.999)]
    result = FolderResult(["healthy", "rust"], "final", rows)
    wrong = result.sure_mistakes()
    assert [r["path"] for r in wrong] == ["rust/a.jpg", "healthy/d.jpg"], "90% or more, wrong, labelled; surest first"
    words = sure_mistakes_words(wrong, ["a.jpg", "d.jpg"])
    assert words == ("2 answers were wrong though the model was 90% sure or more: a.jpg (rust, taken for healthy at "
                     "99%), d.jpg (healthy, taken for rust at 95%). A wrong answer this sure is worth a look: the "
                     "picture may be in the wrong class folder, or show something the training images did not.")
    many = [row(f"rust/{i}.jpg", "rust", "healthy", 0.95) for i in range(SURE_MISTAKES_NAMED + 2)]
    assert "1 answer was wrong" in sure_mistakes_words(many[:1], ["0.jpg"])
    assert " and 2 more." in sure_mistakes_words(many, [r["path"] for r in many])
    assert sure_mistakes_words([], []) is None
    predictor = SimpleNamespace(alpha=None, classes=["healthy", "rust"], cfg=SimpleNamespace(data=SimpleNamespace(
        source="elsewhere.zip")))
    _say_batch_figures(result, {}, SimpleNamespace(variant="final"), predictor, [Path("batch.zip")])
    out = capsys.readouterr().out
    assert "note: 2 answers were wrong though the model was 90% sure or more: rust/a.jpg (rust, taken for " \
        "healthy" in out
    _say_batch_figures(FolderResult(["healthy", "rust"], "final", rows[1:3]), {}, SimpleNamespace(variant="final"),
                       predictor, [Path("batch.zip")])
    assert "wrong though" not in capsys.readouterr().out, "no sure mistake: no note"


def test_copies_of_a_padded_runs_images_are_told_by_the_picture_not_its_grey_bars():
    """A bioacoustics researcher's new recording, a wide spectrogram that a whole-picture run padded to a quarter of
    its square, was "a copy of a training image, labelled blackbird" (and the right answer called wrong): on the whole
    square the bars' grey outweighed the picture. The copy keys are now the picture's inside its bars; a resized copy
    of a training picture is still found."""
    from engine.data import fit_square
    from engine.predict import NearCopies

    def spectrogram(seed: int, size=(800, 100)) -> Image.Image:  # 2-4 calls (a chirp and its harmonic) over noise
        r = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:100, 0:800]
        a = r.integers(0, 40, (100, 800)).astype(np.float32)
        for _ in range(int(r.integers(2, 5))):
            (x0, x1), (f0, f1) = sorted(r.integers(0, 800, 2)), r.integers(10, 90, 2)
            f = f0 + (f1 - f0) * (xx - x0) / max(1, x1 - x0)
            for k in (1, 2):
                a += ((xx >= x0) & (xx <= x1)) * 200 * np.exp(-((yy - f / k) ** 2) / 18)
        a = np.clip(a, 0, 255).astype(np.uint8)
        return Image.fromarray(np.stack([a, a // 2, 255 - a], -1)).resize(size)

    def squares(pictures) -> torch.Tensor:
        return torch.stack([torch.from_numpy(np.array(fit_square(p, 64, "pad"))).permute(2, 0, 1) for p in pictures])

    training = squares(spectrogram(i) for i in range(30))
    new = squares(spectrogram(1000 + i) for i in range(30))
    inside = NearCopies.of([("training", training)], [["call"] * 30], fit="pad")
    assert inside.find(new) == [None] * 30, "new recordings are no copies"
    resized = squares(spectrogram(i, (640, 80)) for i in range(5))
    assert inside.find(resized) == ["training"] * 5, "a resized copy still is"
    whole = NearCopies.of([("training", training)], [["call"] * 30])  # the keys of the whole square, bars and all
    assert sum(found is not None for found in whole.find(new)) >= 3, "what the bars did (5 of 30 new ones)"


def test_predict_says_when_a_picture_is_several_times_the_training_pictures_size(studio, tmp_path, capsys):
    """Try it's line on a picture 3 or more times larger than the training pictures (a geology instructor's
    4096 x 3072 TIFF beside 640 x 480 ones) is printed by `predict` too, under that file's answer; not under one of
    the training pictures' size."""
    studio_dir, run_dir = studio
    tiny_image("red", 900, size=96).save(tmp_path / "big.png")  # the tiny dataset's pictures are 24 x 24
    tiny_image("red", 901).save(tmp_path / "same.png")
    assert cli(["predict", "--run", run_dir.name, "--data-dir", str(studio_dir), str(tmp_path / "big.png"),
                str(tmp_path / "same.png"), "--out", str(tmp_path / "p.csv")]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    big = next(i for i, line in enumerate(lines) if line.strip().startswith(str(tmp_path / "big.png")))
    assert lines[big + 1] == ("    note: This picture is 96 x 96 pixels, about 4 times as large as the training "
                              "pictures (typically 24 x 24). Every picture is shrunk to the same size, so if it also "
                              "shows its subject larger or smaller than they do (another magnification, distance or "
                              "zoom), the model sees details at a scale it did not learn."), out
    assert out.count("times as large") == 1, "not under the picture of their size"
    # one file alone, given from another folder: its row names it by its file name, and it is still found
    other = tmp_path / "elsewhere"
    other.mkdir()
    (tmp_path / "big.png").rename(other / "big.png")
    assert cli(["predict", "--run", run_dir.name, "--data-dir", str(studio_dir), str(other / "big.png"),
                "--out", str(tmp_path / "p.csv")]) == 0
    assert "note: This picture is 96 x 96 pixels, about 4 times as large" in capsys.readouterr().out
    # inside a zip, whose files are gone once answered: the size is read as the picture is decoded
    with zipfile.ZipFile(tmp_path / "batch.zip", "w") as zf:
        zf.write(other / "big.png", "new/big.png")
        zf.write(tmp_path / "same.png", "new/same.png")
    assert cli(["predict", "--run", run_dir.name, "--data-dir", str(studio_dir), str(tmp_path / "batch.zip"),
                "--out", str(tmp_path / "p.csv")]) == 0
    lines = capsys.readouterr().out.splitlines()
    big = next(i for i, line in enumerate(lines) if line.strip().startswith("new/big.png"))
    assert lines[big + 1].startswith("    note: This picture is 96 x 96 pixels, about 4 times as large"), lines
    assert sum("times as large" in line for line in lines) == 1, lines
