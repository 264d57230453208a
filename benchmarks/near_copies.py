"""Try it's "copy of the run's own image" note: how many re-saved copies it recognises, and how
often it takes a picture for another (engine.predict.NearCopies).

Every image of a dataset is decoded at the run size, as a run holds it; then each is saved again
the ways a user's copy comes about (resized up or down, JPEG at quality 85 and 50, PNG, WebP),
decoded as Try it decodes an upload and looked up among all of the dataset's images. Printed per
kind of copy: the share found as its own image and the share taken for another image; and the
share of the dataset's images that match a *different* image of it (what a new picture much like
one of them would get). Datasets: the bundled sample at 64 px, and scikit-learn's 8 x 8 handwritten
digits at 32 px (`python benchmarks/digits.py` writes them; skipped when absent), whose different
digits are often nearly the same picture, and a fixed camera's generated machined parts (`tools.parts`), which
all look alike at a glance. First, the Data page's duplicate groups of those datasets and of generated drawn
letters (different pictures, so every file grouped is a false copy; the parts too).

    python benchmarks/near_copies.py
"""

from __future__ import annotations

import argparse
import io
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
from common import table
from PIL import Image

from engine.data import (COPY_MAX_PIXEL_DIFF, IMAGE_EXTENSIONS, MAX_COLOUR_DIFF, PHASH_MAX_DISTANCE, _to_rgb,
                         open_image, phash64, popcount64, thumbnails_close)
from engine.predict import NearCopies, copy_keys, decode_bytes

COPIES = {  # name -> (side: px, or a fraction of the original's; format, save options)
    "resized up to 128 px, JPEG 85": (128, "JPEG", {"quality": 85}),
    "resized up to 200 px, PNG": (200, "PNG", {}),
    "resized up to 300 px, WebP": (300, "WEBP", {}),
    "resized down to 3/4, JPEG 85": (0.75, "JPEG", {"quality": 85}),
    "same size, JPEG 50": (None, "JPEG", {"quality": 50}),
}


def resaved(raw: bytes, how: tuple, size: int) -> torch.Tensor:
    """A file saved again as `how` says (a COPIES value), decoded as Try it decodes an upload: uint8
    [3, size, size]."""
    side, fmt, options = how
    picture = _to_rgb(open_image(raw))  # as the studio reads it: a 16-bit picture scaled, not clipped to white
    if isinstance(side, float):
        picture = picture.resize((max(4, round(picture.width * side)), max(4, round(picture.height * side))),
                                 Image.Resampling.BICUBIC)
    elif side:
        picture = picture.resize((side, side), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    picture.save(buf, fmt, **options)
    return decode_bytes(buf.getvalue(), f"copy.{fmt.lower()}", size)[0]


def measure(path: str, size: int) -> list[list[str]]:
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if n.lower().endswith(tuple(IMAGE_EXTENSIONS))]
        raws = [zf.read(n) for n in names]
    images = torch.stack([decode_bytes(r, n, size)[0] for r, n in zip(raws, names)])
    print(f"== {path} at {size} px", flush=True)
    copy_keys(images[:8])  # warm-up
    t0 = time.perf_counter()
    hashes, thumbs = copy_keys(images)  # batched, as prediction hashes a batch
    ms = 1000 * (time.perf_counter() - t0) / len(names)
    copies = NearCopies(hashes, thumbs, list(names))  # each image its own name
    others = sum(1 for i, name in enumerate(names)
                 if NearCopies(np.delete(copies.hashes, i), np.delete(copies.thumbs, i, 0),
                               names[:i] + names[i + 1:]).find(images[i:i + 1])[0] is not None)
    # Different images under the hash and colour rule alone, and how far apart their thumbnails are
    # (the last check, COPY_MAX_PIXEL_DIFF, must stay under that and above the copies' below)
    colours = thumbs.mean((2, 3))
    close = popcount64(hashes[:, None] ^ hashes[None, :]) <= PHASH_MAX_DISTANCE
    close &= (np.abs(colours[:, None] - colours[None]) <= MAX_COLOUR_DIFF).all(-1)
    np.fill_diagonal(close, False)
    i, j = np.nonzero(close)
    apart = np.abs(thumbs[i] - thumbs[j]).mean((1, 2, 3))
    print(f"  hash and colour rule alone: {100 * close.any(1).mean():.1f}% of images match a different one"
          + (f"; those pairs' thumbnails differ by {apart.min():.1f} or more (median {np.median(apart):.1f}; "
             f"a copy needs at most {COPY_MAX_PIXEL_DIFF}); with the thumbnail rule "
             f"{100 * thumbnails_close(thumbs[i], thumbs[j]).mean():.2f}% of those pairs still match"
             if len(apart) else ""), flush=True)
    copy_diffs, copy_passes, copy_shares = [], [], []
    rows = []
    for kind, (side, fmt, options) in COPIES.items():
        found = wrong = 0
        for k, (raw, name) in enumerate(zip(raws, names)):
            copy = resaved(raw, (side, fmt, options), size)
            got = copies.find(copy[None])[0]
            copy_hash, copy_thumb = copy_keys(copy[None])
            if popcount64(copy_hash[0] ^ hashes[k]) <= PHASH_MAX_DISTANCE:  # past the hash check
                copy_diffs.append(float(np.abs(copy_thumb[0] - thumbs[k]).mean()))
                copy_passes.append(bool(thumbnails_close(copy_thumb, thumbs[k:k + 1])[0]))
                a, b = copy_thumb[0].ravel(), thumbs[k].ravel()
                copy_shares.append(float(np.abs(a - b).mean() / max(1e-6, 0.5 * (np.abs(a - a.mean()).mean()
                                                                                   + np.abs(b - b.mean()).mean()))))
            found += got == name
            wrong += got not in (None, name)
        rows.append([f"{Path(path).name} at {size} px", kind, f"{100 * found / len(names):.1f}%",
                     f"{100 * wrong / len(names):.1f}%"])
    rows.append([f"{Path(path).name} at {size} px", f"each of its {len(names)} images among the others", "",
                 f"{100 * others / len(names):.1f}%"])
    diffs = np.array(copy_diffs)
    print(f"  copies within the hash rule: thumbnails differ by {np.percentile(diffs, 95):.1f} at the 95th "
          f"percentile, {diffs.max():.1f} at most ({100 * (diffs <= COPY_MAX_PIXEL_DIFF).mean():.2f}% within "
          f"{COPY_MAX_PIXEL_DIFF}; {np.percentile(copy_shares, 95):.2f} of their contrast at the 95th percentile; "
          f"{100 * np.mean(copy_passes):.2f}% pass the whole thumbnail rule)", flush=True)
    t0 = time.perf_counter()
    library = np.array([phash64(Image.fromarray(im.permute(1, 2, 0).numpy())) for im in images], dtype=np.uint64)
    library_ms = 1000 * (time.perf_counter() - t0) / len(names)
    bits = popcount64(copy_keys(images)[0] ^ library)
    print(f"  {len(names)} images; keys {ms:.3f} ms per image, batched (imagehash.phash alone "
          f"{library_ms:.3f} ms); the studio's hash and imagehash's differ in {bits.mean():.1f} bits on average "
          f"(median {np.median(bits):.0f}, at most {bits.max()})", flush=True)
    return rows


def write_letters(path: Path) -> Path:
    """A new user's letters.zip (`tools.letters.drawn_letters`), written to `path`."""
    from tools.letters import drawn_letters

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in drawn_letters().items():
            zf.writestr(name, data)
    return path


def write_parts(path: Path) -> Path:
    """A factory inspector's parts.zip (`tools.parts.machined_parts`: a fixed camera's look-alike 16-bit pictures,
    60 ok, 20 scratched, 20 dented), written to `path`."""
    from tools.parts import machined_parts

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, payload in machined_parts({"ok": 60, "scratch": 20, "dent": 20}).items():
            zf.writestr(name, payload)
    return path


def data_groups(path: str, size: int) -> list[str]:
    """The Data page's duplicate groups (engine.data.find_duplicate_groups on the picture's own hash
    and thumbnail) of a dataset of different pictures: files grouped, and groups mixing classes, under
    the hash and colour rule alone and with the thumbnail rule."""
    import tempfile

    from engine import data

    with tempfile.TemporaryDirectory() as work:
        decoded = data._decoded(path, work, size, data.ZipLimits(), 4 * 1024**3, None)
    labels, colours = decoded.labels.numpy(), data._mean_colours(decoded.images)
    out = []
    for rule, thumbs, crowds in (("hash and colour", None, False), ("with thumbnails", decoded.thumbs, False),
                                 ("crowds of look-alikes split", decoded.thumbs, True)):
        groups = data.find_duplicate_groups(decoded.sha256, decoded.phash, colours, thumbs=thumbs)
        if crowds:  # as the Data page groups them (engine.data.split_crowds)
            groups = data.split_crowds(groups, decoded.sha256, decoded.phash, decoded.thumbs)[0]
        ids, counts = np.unique(groups, return_counts=True)
        multi = ids[counts > 1]
        mixed = sum(1 for g in multi if len(set(labels[groups == g].tolist())) > 1)
        out.append(f"{rule}: {int(counts[counts > 1].sum())} of {len(groups)} files in {len(multi)} groups "
                   f"(the largest {counts.max()}), {mixed} mixing classes")
    # pairs of different classes within the hash and colour rule: how far apart their thumbnails are
    close = popcount64(decoded.phash[:, None] ^ decoded.phash[None, :]) <= PHASH_MAX_DISTANCE
    close &= (np.abs(colours[:, None] - colours[None]) <= MAX_COLOUR_DIFF).all(-1)
    i, j = np.nonzero(np.triu(close & (labels[:, None] != labels[None, :]), 1))
    if len(i):
        a, b = decoded.thumbs[i].reshape(len(i), -1), decoded.thumbs[j].reshape(len(j), -1)
        diff = np.abs(a - b).mean(1)
        share = diff / (0.5 * (np.abs(a - a.mean(1, keepdims=True)).mean(1) + np.abs(b - b.mean(1, keepdims=True)).mean(1)))
        out.append(f"{len(i)} pairs of different classes pass the hash and colour: thumbnails {diff.min():.1f} or more "
                   f"apart, {share.min():.2f} or more of their contrast")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.parse_args()
    print("== the Data page's duplicate groups (different pictures: every grouped file is a false copy)")
    letters = write_letters(Path("runs/benchmarks/letters.zip"))
    parts = write_parts(Path("runs/benchmarks/parts.zip"))
    for path, size in (("assets/sample_textures.zip", 64), ("runs/benchmarks/digits.zip", 32), (str(letters), 64),
                       (str(parts), 64)):
        if Path(path).is_file():
            print(f"  {Path(path).name} at {size} px: " + "; ".join(data_groups(path, size)), flush=True)
    rows = measure("assets/sample_textures.zip", 64)
    digits = Path("runs/benchmarks/digits.zip")
    if digits.is_file():
        rows += measure(str(digits), 32)
    else:
        print("runs/benchmarks/digits.zip missing (python benchmarks/digits.py needs scikit-learn): digits skipped")
    rows += measure(str(parts), 64)
    print(table(["dataset", "copy", "found as its own image", "taken for another image"], rows))


if __name__ == "__main__":
    main()
