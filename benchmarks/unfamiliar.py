"""Try it's "unfamiliar image" flag: which images it flags, the first score against the studio's now.

Trains the Quick demo preset on the bundled sample (one CLI process per seed, as a new user would),
then scores images with the studio's own path (`engine.predict.Predictor` with `feature_stats`, the
run's precision) with the bar set on the run's validation images only (so that the test images,
unseen by the bar, measure the false-flag rate), and with the studio's first score:

- *class means, last stage*: cosine distance of the head's input to the nearest class mean of the
  training images', flagged above its own 95% conformal bar on the validation images (the studio's
  first score; features in float32);
- *studio, content*: the k-NN distance of every trunk stage's pooled features above its 95% bar;
- *studio, content or flat colour*: that, or at least 3/4 of the image flat colour where no training
  image is even half flat;
- *studio, every check*: that, or neighbouring pixels correlating under 0.2 and under every training
  image's (noise), or grey levels varying by under 2 (one colour), or the strongest neighbour steps under
  half of every training image's (no strong edges), each where no training image is so
  (`Prediction.unfamiliar`, what Try it and predict say).

Images scored: the test split (in distribution: about 5% should be flagged); new textures from the
sample's generator and seed range apart from it, saved as JPEG like the sample (in distribution);
the same drawn at 256 px and shrunk to the run's size like a large upload, and blurred by 0.7 px
(the same content, taken differently: a flag there is a false alarm); 16 plain images (12 solid
colours, 4 gradients) and 16 drawings (a ball on grass under the sky, colours and places varying),
which show none of the classes; 64 images of uniform noise made at the run's size, and 16 made at
512 px and shrunk like an upload ("static, shrunk"); 200 of scikit-learn's handwritten digits
(another dataset; skipped without scikit-learn, a benchmark-only dependency).

    python benchmarks/unfamiliar.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from common import table
from first_model import NEW, one_run
from PIL import Image, ImageDraw, ImageFilter

from engine.predict import (Predictor, conformal_bar, decode_bytes, feature_stats, load_variant, run_summary,
                            stage_outputs)
from engine.run_data import prepare_data
from tools.textures import make_texture_images


def plain_images(size: int) -> torch.Tensor:
    """16 images without any texture, uint8 [16, 3, size, size]: 12 solid colours, 4 gradients."""
    colours = [(255, 255, 255), (0, 0, 0), (128, 128, 128), (200, 200, 200), (220, 30, 30), (30, 160, 40),
               (40, 60, 220), (240, 220, 40), (250, 140, 20), (140, 60, 160), (120, 80, 40), (250, 190, 200)]
    out = [torch.tensor(c, dtype=torch.uint8).view(3, 1, 1).expand(3, size, size) for c in colours]
    ramp = torch.linspace(0, 255, size).round().to(torch.uint8)
    out += [ramp.view(1, 1, size).expand(3, size, size), ramp.view(1, size, 1).expand(3, size, size),
            torch.stack([ramp.view(1, size).expand(size, size), ramp.view(size, 1).expand(size, size),
                         torch.full((size, size), 128, dtype=torch.uint8)]),
            (255 - ramp).view(1, 1, size).expand(3, size, size)]
    return torch.stack([o.contiguous() for o in out])


def drawings(size: int, n: int = 16) -> torch.Tensor:
    """n clip-art pictures uint8 [n, 3, size, size]: a ball on grass under the sky, colours and places
    varying (drawn at 200 px with PIL, then resized like an upload)."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        sky, grass, ball = (tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(3))
        img = Image.new("RGB", (200, 200), sky)
        pen = ImageDraw.Draw(img)
        pen.rectangle([0, int(rng.integers(110, 170)), 200, 200], fill=grass)
        x, y, r = (int(v) for v in rng.integers([40, 40, 15], [160, 120, 50]))
        pen.ellipse([x - r, y - r, x + r, y + r], fill=ball)
        out.append(torch.from_numpy(np.array(img.resize((size, size), Image.BILINEAR))).permute(2, 0, 1))
    return torch.stack(out)


def digit_images(size: int, n: int = 200) -> torch.Tensor | None:
    """n of scikit-learn's 8x8 digits as uint8 [n, 3, size, size] (bilinear), or None without it."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        return None
    x = torch.from_numpy(load_digits().images[:n] * (255 / 16)).float()[:, None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()


def textures_taken(size: int, seed: int) -> dict[str, torch.Tensor]:
    """New textures of the sample's kind, uint8 [48, 3, size, size] each: saved as JPEG at the sample's
    quality; drawn at 256 px and shrunk; blurred by 0.7 px (both saved as PNG). Decoded by the studio."""
    from tools.textures import _JPEG_QUALITY

    def decoded(img: Image.Image, fmt: str, **kw) -> torch.Tensor:
        buf = io.BytesIO()
        img.save(buf, format=fmt, **kw)
        return decode_bytes(buf.getvalue(), f"x.{fmt.lower()}", size)[0]

    def pil(t: torch.Tensor) -> Image.Image:
        return Image.fromarray(t.permute(1, 2, 0).contiguous().numpy())

    small, _ = make_texture_images(6, 64, seed=1000 + seed)
    large, _ = make_texture_images(6, 256, seed=2000 + seed)
    return {"new textures (JPEG)": torch.stack([decoded(pil(t), "JPEG", quality=_JPEG_QUALITY, subsampling=0)
                                                for t in small]),
            "textures shrunk from 256 px": torch.stack([decoded(pil(t), "PNG") for t in large]),
            "textures blurred 0.7 px": torch.stack([decoded(pil(t).filter(ImageFilter.GaussianBlur(0.7)), "PNG")
                                                    for t in small])}


@torch.no_grad()
def last_stage(model, images: torch.Tensor) -> torch.Tensor:
    """Normalised head inputs [N, D] (float32) for uint8 images, in batches."""
    out = []
    for i in range(0, len(images), 128):
        with stage_outputs(model) as outputs:
            model(images[i:i + 128].float() / 255)
        out.append(F.normalize(outputs[-1].float().flatten(1), dim=1))
    return torch.cat(out)


def flag_rates(run_dir: Path, work: Path, seed: int) -> dict[str, dict[str, float]]:
    """{score: {image set: fraction flagged}} for one finished run."""
    model, cfg, classes = load_variant(run_dir, "fine_tuned")
    data = prepare_data(cfg, work)
    size = int(cfg.data.image_size)
    noise = torch.randint(0, 256, (64, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    rng = np.random.default_rng(seed)
    static = torch.stack([decode_bytes(png(Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8))),
                                       "static.png", size)[0] for _ in range(16)])
    sets = {"test (in distribution)": data.test.images, **textures_taken(size, seed),
            "plain images": plain_images(size), "drawings": drawings(size), "uniform noise": noise,
            "static, shrunk": static}
    digits = digit_images(size)
    if digits is not None:
        sets["handwritten digits"] = digits
    # the studio's path, its bar on the validation images only
    predictor = Predictor(model, cfg, classes, "fine_tuned", None, torch.device("cpu"), summary=run_summary(run_dir))
    no_test = SimpleNamespace(images=data.test.images[:0], labels=data.test.labels[:0])
    predictor.stats = feature_stats(predictor, SimpleNamespace(train=data.train, val=data.val, test=no_test,
                                                                 classes=data.classes))
    answers = {s: predictor.predict(imgs) for s, imgs in sets.items()}
    train = last_stage(predictor.model, data.train.images)
    y = data.train.labels
    means = F.normalize(torch.stack([train[y == c].mean(0) for c in range(len(classes))]), dim=1)
    first = lambda x: 1.0 - (last_stage(predictor.model, x) @ means.T).max(1).values  # noqa: E731
    bar = conformal_bar(first(data.val.images))
    stats = predictor.stats  # each check on its own, whichever reason an answer names first
    content = lambda a: a.own is None and a.distance > stats.far_distance  # noqa: E731
    flat = lambda a: content(a) or (a.own is None and stats.mostly_flat(a.flat))  # noqa: E731
    return {"class means, last stage (first score)": {s: float((first(x) > bar).float().mean()) for s, x in sets.items()},
            "studio, content": {s: sum(map(content, got)) / len(got) for s, got in answers.items()},
            "studio, content or flat colour": {s: sum(map(flat, got)) / len(got) for s, got in answers.items()},
            "studio, every check (content, flat colour, noise, one colour, no strong edges)": {
                s: sum(bool(a.unfamiliar) for a in got) / len(got) for s, got in answers.items()}}


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            run_dir = Path(tmp) / f"run{seed}"
            r = one_run(NEW, seed, keep=run_dir)
            rates = flag_rates(run_dir, Path(tmp) / "work", seed)
            results.append(rates)
            print(f"seed {seed}: test accuracy {100 * r['test']:.1f}%", flush=True)
    scores, sets = list(results[0]), list(results[0][next(iter(results[0]))])
    rows = []
    for score in scores:
        cells = []
        for s in sets:
            xs = [100 * r[score][s] for r in results]
            cells.append(" / ".join(f"{x:.0f}" for x in xs) + f" (mean {statistics.mean(xs):.1f})")
        rows.append([score, *cells])
    print(f"\nImages flagged as unlike the training images, % per seed ({', '.join(map(str, args.seeds))}); "
          "bar: 95% conformal on the validation split")
    print(table(["score", *sets], rows))


if __name__ == "__main__":
    main()
