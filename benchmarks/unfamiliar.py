"""Try it's "unlike the training images" flag: which images it flags, old score against new.

Trains the Quick demo preset on the bundled sample (one CLI process per seed, as a new user would),
then scores images with two out-of-distribution scores, each flagging an image when its score is
above split conformal prediction's 95% bar set on the run's validation images only (so that the test
images, unseen by the bar, measure the false-flag rate):

- *class means, last stage*: cosine distance of the head's input to the nearest class mean of the
  training images' (the studio's first score);
- *k-NN, every stage*: `engine.predict.knn_distance` of `engine.predict.image_features` (the k-th
  nearest training image's distance, Sun et al. 2022, on every trunk stage's pooled output);
- *k-NN, every stage + pixel detail*: `engine.predict.FeatureStats.distance`, the studio's score
  now: the larger of the above and the k-NN distance of `engine.predict.pixel_detail`, each in units
  of the training images' own spacing.

Features are computed in float32 for every score. Images scored: the test split (in distribution:
about 5% should be flagged); 16 plain images (12 solid colours, white, black and greys among them,
and 4 smooth gradients) and 16 drawings (a ball on grass under the sky, in several colours and
places), which show none of the classes; 64 images of uniform noise; 200 of scikit-learn's
handwritten digits (another dataset; skipped without scikit-learn, a benchmark-only dependency).

    python benchmarks/unfamiliar.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import table
from first_model import NEW, one_run

from PIL import Image, ImageDraw

from engine.predict import (FeatureStats, conformal_bar, image_features, knn_distance, load_variant, pixel_detail,
                            stage_outputs)
from engine.run_data import prepare_data


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
        out.append(torch.from_numpy(np.asarray(img.resize((size, size), Image.BILINEAR))).permute(2, 0, 1))
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


@torch.no_grad()
def both_features(model, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(normalised head inputs [N, D1], `image_features` [N, D2]) for uint8 images, in batches."""
    last, every = [], []
    for i in range(0, len(images), 128):
        with stage_outputs(model) as outputs:
            model(images[i:i + 128].float() / 255)
        last.append(F.normalize(outputs[-1].float().flatten(1), dim=1))
        every.append(image_features(outputs))
    return torch.cat(last), torch.cat(every)


def flag_rates(run_dir: Path, work: Path, seed: int) -> dict[str, dict[str, float]]:
    """{score: {image set: fraction flagged}} for one finished run."""
    model, cfg, _ = load_variant(run_dir, "fine_tuned")
    data = prepare_data(cfg, work)
    size = int(cfg.data.image_size)
    noise = torch.randint(0, 256, (64, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    sets = {"test (in distribution)": data.test.images, "plain images": plain_images(size),
            "drawings": drawings(size), "uniform noise": noise}
    digits = digit_images(size)
    if digits is not None:
        sets["handwritten digits"] = digits
    train_last, train_every = both_features(model, data.train.images)
    y, classes = data.train.labels, len(data.classes)
    means = F.normalize(torch.stack([train_last[y == c].mean(0) for c in range(classes)]), dim=1)
    detail = pixel_detail(data.train.images)
    scales = tuple(float(knn_distance(x, x, metric=m, leave_self_out=True).median())
                   for x, m in ((train_every, "cosine"), (detail, "euclidean")))
    studio = FeatureStats(train_every, 0.0, "", detail, scales)  # the studio's FeatureStats.distance
    scores = {"class means, last stage": lambda f, x: 1.0 - (f[0] @ means.T).max(1).values,
              "k-NN, every stage": lambda f, x: knn_distance(f[1], train_every),
              "k-NN, every stage + pixel detail": lambda f, x: studio.distance(f[1], pixel_detail(x))[0]}
    out = {}
    for name, score in scores.items():
        bar = conformal_bar(score(both_features(model, data.val.images), data.val.images))
        out[name] = {s: float((score(both_features(model, imgs), imgs) > bar).float().mean())
                     for s, imgs in sets.items()}
    return out


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
