"""How the near-copy rule's contrast is measured decides how many re-saved copies it recognises:
over all thumbnail values (the rule, engine.data.thumbnails_close), per channel, or in grey. Every
image of the bundled sample at 64 px, saved again five ways (benchmarks/near_copies.py's COPIES),
decoded as Try it decodes an upload; for the copies within the hash limit, the share that pass the
thumbnail limits (6/255 on average and the contrast share) with each contrast.

    python benchmarks/near_copies_contrast.py
"""

from __future__ import annotations

import zipfile

import numpy as np
import torch
from near_copies import COPIES, resaved

from engine.data import COPY_FLAT_PIXEL_DIFF, COPY_MAX_PIXEL_DIFF, IMAGE_EXTENSIONS, PHASH_MAX_DISTANCE, popcount64
from engine.predict import copy_keys, decode_bytes

GREY = np.array([0.299, 0.587, 0.114])[None, :, None]


def contrasts(t: np.ndarray) -> dict[str, np.ndarray]:
    """Per thumbnail ([M, 3, 64]): mean |deviation| over all values, per channel, and in grey."""
    flat = t.reshape(len(t), -1)
    grey = (t * GREY).sum(1)
    return {"all values": np.abs(flat - flat.mean(1, keepdims=True)).mean(1),
            "per channel": np.abs(t - t.mean(2, keepdims=True)).mean((1, 2)),
            "grey": np.abs(grey - grey.mean(1, keepdims=True)).mean(1)}


def main() -> None:
    with zipfile.ZipFile("assets/sample_textures.zip") as zf:
        names = [n for n in zf.namelist() if n.lower().endswith(tuple(IMAGE_EXTENSIONS))]
        raws = [zf.read(n) for n in names]
    images = torch.stack([decode_bytes(r, n, 64)[0] for r, n in zip(raws, names)])
    hashes, thumbs = copy_keys(images)
    copies, originals = [], []
    for k, raw in enumerate(raws):
        for how in COPIES.values():
            copy = resaved(raw, how, 64)
            copy_hash, copy_thumb = copy_keys(copy[None])
            if popcount64(copy_hash[0] ^ hashes[k]) <= PHASH_MAX_DISTANCE:
                copies.append(copy_thumb[0])
                originals.append(thumbs[k])
    a, b = np.array(copies).reshape(len(copies), 3, -1), np.array(originals).reshape(len(originals), 3, -1)
    diff = np.abs(a - b).mean((1, 2))
    ca, cb = contrasts(a), contrasts(b)
    for name in ca:
        contrast = 0.5 * (ca[name] + cb[name])
        for share in (0.2, 0.25):
            ok = diff <= np.minimum(COPY_MAX_PIXEL_DIFF, np.maximum(share * contrast, COPY_FLAT_PIXEL_DIFF))
            print(f"{name} {share} copies pass {ok.mean():.4f}")


if __name__ == "__main__":
    main()
