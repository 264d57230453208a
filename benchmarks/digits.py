"""A 10-class digits dataset for the 32 px benchmarks, written as an ordinary class-folder zip.

The images are scikit-learn's copy of the UCI "Optical Recognition of Handwritten Digits" set
(1797 grey 8x8 images, 16 grey levels, about 180 per digit), which ships inside the scikit-learn
package, so nothing is downloaded. scikit-learn is a benchmark-only dependency (`pip install
scikit-learn`), like timm. Each image is written as an 8x8 greyscale PNG (0-16 scaled to 0-255)
into `<digit>/<index>.png`; the studio decodes and resizes them like any user's upload (bilinear
to the run's image size, grey to RGB).

    python benchmarks/digits.py [--out runs/benchmarks/digits.zip]

Prints the path; `benchmarks/peers.py --data <path> --image-size 32` uses it.
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def write_digits_zip(out: Path) -> Path:
    """Write scikit-learn's 8x8 digits into `out` (a zip of `<digit>/<index>.png`) and return it.

    Raises ImportError with the install command when scikit-learn is missing.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # benchmark-only dependency
        raise ImportError("the digits benchmark data come from scikit-learn: pip install scikit-learn") from e
    digits = load_digits()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
        for i, (img, label) in enumerate(zip(digits.images, digits.target)):
            buf = io.BytesIO()
            Image.fromarray(np.round(img * (255 / 16)).astype(np.uint8), mode="L").save(buf, format="PNG")
            z.writestr(f"{int(label)}/{i:04d}.png", buf.getvalue())
    tmp.replace(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "benchmarks" / "digits.zip")
    print(write_digits_zip(ap.parse_args().out))


if __name__ == "__main__":
    main()
