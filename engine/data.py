"""Dataset ingestion: an uploaded zip (or a folder) of class folders becomes decoded tensors.

Flow: `load_dataset(source, work_dir)`
  1. fingerprint the source (zip: content hash; folder: path + file sizes/mtimes), and if the same
     source was decoded at the same size recently, reuse it from an in-memory LRU (the dashboard
     re-reads the same upload on every rerun, so this must be instant);
  2. otherwise extract the zip safely into `work_dir/<content-hash>` (limits enforced while
     reading, because zip headers can lie), find the class-folder level, decode every image once
     at the run's resolution into one uint8 tensor, and note every skipped file with its reason;
  3. validate (>= 2 classes, enough images per class) and split stratified by class with a seed.

Small data lives decoded in memory (airbench style): augmentation happens later, in batches, on
the training device (`engine.augment`), so the loader is never the bottleneck.

Every problem the user can fix is a `StudioError` whose message says what to do next. Files that
cannot be read are never fatal on their own: they are skipped and listed in `DataReport.skipped`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import threading
import uuid
import warnings
import zipfile
import zlib
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.errors import StudioError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
# Only these PIL parsers may run on uploaded bytes (smaller attack surface than "any format").
# (Phone cameras' multi-picture JPEGs come back from the JPEG parser with format "MPO".)
PIL_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF")
# Decompression-bomb guard: ~50 megapixels (a 7000x7000 photo) is far above anything a 64-224 px
# training image needs, and below PIL's own warning threshold (89 MP), so our check fires first.
MAX_IMAGE_PIXELS = 50_000_000
# Files that operating systems drop into folders; skipped silently like hidden files.
JUNK_FILE_NAMES = frozenset({"thumbs.db", "desktop.ini", "__macosx"})
# Transparent pixels are composited onto white: transparent regions of icons/cut-outs are usually
# "background", and plain alpha dropping would expose arbitrary (often black) colour values.
ALPHA_BACKGROUND = (255, 255, 255)

ProgressFn = Callable[[int, int], None]  # (done, total)


# --------------------------------------------------------------------------------------------
# Public data types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZipLimits:
    """Caps for extracting an untrusted zip, enforced on the bytes actually read.

    The ratio cap only applies to members larger than `ratio_check_min_bytes`: small uniform
    images (a blank BMP) legitimately compress 100-1000x, while a zip bomb needs size to hurt.
    """

    max_members: int = 20_000
    max_total_bytes: int = 2 * 1024**3  # uncompressed, all members together
    max_ratio: float = 200.0  # uncompressed / compressed, per member
    max_member_bytes: int = 512 * 1024**2  # uncompressed, one member
    ratio_check_min_bytes: int = 1024**2
    max_image_pixels: int = 50_000_000  # per image, checked from its header before decoding


@dataclass
class SkippedFile:
    path: str  # relative to the dataset root, with '/' separators
    reason: str  # short, plain words


@dataclass
class DataReport:
    source: str
    classes: list[str]
    counts: dict[str, int]  # readable images per class
    skipped: list[SkippedFile]
    split_counts: dict[str, dict[str, int]]  # {"train": {cls: n}, "val": ..., "test": ...}
    image_size: int

    @property
    def num_images(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict:
        """JSON-serialisable form (for the run store and the dashboard)."""
        return asdict(self)


@dataclass
class ImageSet:
    images: torch.Tensor  # uint8 [N,3,S,S], CPU
    labels: torch.Tensor  # int64 [N]
    classes: list[str]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, idx) -> "ImageSet":
        """Rows `idx` (indices or a boolean mask) as a new ImageSet (copies, never views)."""
        idx = torch.as_tensor(idx)
        if idx.dtype != torch.bool:
            idx = idx.long()
        return ImageSet(self.images[idx], self.labels[idx], list(self.classes))

    def class_counts(self) -> dict[str, int]:
        counts = torch.bincount(self.labels, minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, counts))


@dataclass
class DataSplits:
    train: ImageSet
    val: ImageSet
    test: ImageSet
    classes: list[str]
    report: DataReport


# --------------------------------------------------------------------------------------------
# Safe zip extraction
# --------------------------------------------------------------------------------------------

_CHUNK_BYTES = 1024 * 1024


def _format_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _unsafe(member: str, why: str) -> StudioError:
    return StudioError(
        f"This zip cannot be opened safely: the entry '{member}' {why}. Nothing from it was used. "
        "Re-create the zip from your class folders (for example right-click the folder and "
        "choose Compress / Send to zip) and upload it again."
    )


def _too_big(what: str) -> StudioError:
    return StudioError(
        f"This zip is too large to process safely: {what}. Upload a smaller dataset "
        "(fewer or smaller images), or split it into several zips."
    )


def _is_junk_part(part: str) -> bool:
    """Hidden files/folders ('.DS_Store', '.ipynb_checkpoints') and OS clutter ('__MACOSX')."""
    return part.startswith(".") or part.lower() in JUNK_FILE_NAMES


def _member_parts(name: str) -> list[str]:
    return [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]


def _check_member_is_safe(info: zipfile.ZipInfo) -> None:
    """Refuse absolute paths, '..', links and special files, whether or not we'd extract them."""
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise _unsafe(info.filename, "has an absolute path")
    if ".." in name.split("/"):
        raise _unsafe(info.filename, "points outside the archive ('..' in its path)")
    mode = info.external_attr >> 16  # unix st_mode, when the zip was made on a unix system
    if stat.S_ISLNK(mode):
        raise _unsafe(info.filename, "is a symbolic link")
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise _unsafe(info.filename, "is a special file (device, pipe or socket)")
    if info.flag_bits & 0x1:
        raise StudioError(
            f"The zip is password-protected (entry '{info.filename}'). "
            "Create it again without a password and upload it."
        )


def _members_to_extract(infos: Sequence[zipfile.ZipInfo]) -> list[zipfile.ZipInfo]:
    return [i for i in infos if not i.is_dir() and not any(map(_is_junk_part, _member_parts(i.filename)))]


def _check_declared_sizes(members: Sequence[zipfile.ZipInfo], limits: ZipLimits) -> None:
    """Fail fast on what the headers claim; the same caps are enforced again while reading."""
    total = 0
    for info in members:
        if info.file_size > limits.max_member_bytes:
            raise _too_big(
                f"'{info.filename}' unpacks to {_format_bytes(info.file_size)}, "
                f"the limit per file is {_format_bytes(limits.max_member_bytes)}"
            )
        if info.file_size > limits.ratio_check_min_bytes and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise _unsafe(info.filename, f"is compressed more than {limits.max_ratio:.0f}x (a possible zip bomb)")
        total += info.file_size
    if total > limits.max_total_bytes:
        raise _too_big(f"it unpacks to {_format_bytes(total)}, the limit is {_format_bytes(limits.max_total_bytes)}")


def check_zip_headers(zf: zipfile.ZipFile, limits: ZipLimits) -> list[zipfile.ZipInfo]:
    """All checks that need only the central directory; returns the members worth extracting."""
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise _too_big(f"it has {len(infos):,} entries, the limit is {limits.max_members:,}")
    for info in infos:
        _check_member_is_safe(info)
    members = _members_to_extract(infos)
    if not members:
        raise StudioError(
            "The zip archive is empty (no files, or only hidden/system files). "
            "Put one folder per class with images inside (e.g. cats/, dogs/), zip them and upload again."
        )
    _check_declared_sizes(members, limits)
    return members


class _ByteBudget:
    """Counts real decompressed bytes across members, so lying headers cannot bypass the caps."""

    def __init__(self, limits: ZipLimits):
        self.limits = limits
        self.total = 0

    def add(self, info: zipfile.ZipInfo, member_bytes: int, chunk_bytes: int) -> None:
        limits = self.limits
        self.total += chunk_bytes
        if member_bytes > limits.max_member_bytes:
            raise _too_big(f"'{info.filename}' unpacks to more than {_format_bytes(limits.max_member_bytes)}")
        if member_bytes > limits.ratio_check_min_bytes and member_bytes > limits.max_ratio * max(info.compress_size, 1):
            raise _unsafe(info.filename, f"is compressed more than {limits.max_ratio:.0f}x (a possible zip bomb)")
        if self.total > limits.max_total_bytes:
            raise _too_big(f"it unpacks to more than {_format_bytes(limits.max_total_bytes)}")


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest_root: Path, budget: _ByteBudget) -> None:
    target = dest_root.joinpath(*_member_parts(info.filename)).resolve()
    if not target.is_relative_to(dest_root) or target == dest_root:
        raise _unsafe(info.filename, "would be written outside the destination folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    member_bytes = 0
    try:
        with zf.open(info) as src, open(target, "wb") as out:
            while chunk := src.read(_CHUNK_BYTES):
                member_bytes += len(chunk)
                budget.add(info, member_bytes, len(chunk))
                out.write(chunk)
    except StudioError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        # A CRC mismatch here is also what a forged size header produces (zipfile truncates at the
        # declared size), so this message covers damaged and tampered archives alike.
        raise StudioError(
            f"The zip is damaged or has been altered: the entry '{info.filename}' could not be "
            f"unpacked ({err}). "
            "Re-create the zip and upload it again."
        ) from err
    except NotImplementedError as err:
        raise StudioError(
            f"The zip uses a compression method this tool cannot read (entry '{info.filename}'). "
            "Re-create it with your system's standard zip tool and upload it again."
        ) from err
    except OSError as err:
        raise StudioError(
            f"Could not write '{info.filename}' while unpacking the zip ({err.strerror or err}). "
            "Check that the disk has free space, then try again."
        ) from err


def safe_extract_zip(zip_path, dest_dir, limits: ZipLimits = ZipLimits()) -> Path:
    """Extract an untrusted zip into `dest_dir` (created if needed) and return `dest_dir`.

    Refuses absolute paths, '..', links and special files (naming the entry), password-protected
    zips, and archives over `limits`. Sizes are checked on the headers first (fast failure) and
    then on the bytes actually decompressed, chunk by chunk (headers can lie). Hidden files,
    `__MACOSX` and similar clutter are not extracted. Nothing is written outside `dest_dir`; on
    error a partial extraction may remain there, so extract into a fresh folder.
    """
    zip_path, dest = Path(zip_path), Path(dest_dir)
    zf = _open_zip(zip_path)
    with zf:
        members = check_zip_headers(zf, limits)
        dest.mkdir(parents=True, exist_ok=True)
        dest_root = dest.resolve()
        budget = _ByteBudget(limits)
        for info in members:
            _extract_member(zf, info, dest_root, budget)
    return dest


def _not_a_dataset(path: Path) -> StudioError:
    return StudioError(
        f"'{path.name}' is not a zip archive or a folder. Upload a .zip file that contains one "
        "folder per class with the images inside (for example cats/ and dogs/)."
    )


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as err:
        raise _not_a_dataset(path) from err
    except OSError as err:
        raise StudioError(f"Could not open '{path}' ({err.strerror or err}). Check the file and try again.") from err


# --------------------------------------------------------------------------------------------
# Finding class folders
# --------------------------------------------------------------------------------------------


def _visible_subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not _is_junk_part(p.name))


def _visible_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not _is_junk_part(p.name))


def _walk_visible_files(folder: Path) -> Iterator[Path]:
    """All non-hidden files under `folder`, in a stable order (sorted names, depth first)."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not _is_junk_part(d))
        for name in sorted(filenames):
            if not _is_junk_part(name):
                yield Path(dirpath) / name


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _find_class_level(root: Path) -> Path:
    """`root` itself, or its single sub-folder when the zip wraps everything in one folder.

    A zip made by compressing a folder `mydata/` holds `mydata/cats/...`: one visible folder
    with sub-folders and no images of its own. A single-class upload (`cats/*.jpg`) has images
    directly in its only folder, so it stays at `root` (and is then refused as one class).
    """
    subdirs = _visible_subdirs(root)
    if len(subdirs) == 1:
        only = subdirs[0]
        if _visible_subdirs(only) and not any(_is_image_name(p) for p in _visible_files(only)):
            return only
    return root


def scan_class_folders(root: Path) -> tuple[list[str], list[tuple[Path, int]], list[SkippedFile]]:
    """Find the classes under `root` (or one level down) and their image files.

    Returns (sorted class names, [(image path, label)], skipped files). A class folder's images
    may sit in sub-folders of it. Files outside class folders and files without an image
    extension are reported as skipped; hidden files and OS clutter are ignored silently.
    Readability is not checked here (that happens while decoding).
    """
    root = Path(root)
    if not root.is_dir():
        raise StudioError(f"Could not find the folder '{root}'. Check the path and try again.")
    level = _find_class_level(root)
    rel = lambda p: p.relative_to(root).as_posix()  # noqa: E731
    skipped = [SkippedFile(rel(p), "not inside a class folder") for p in _visible_files(root)]
    if level != root:
        skipped += [SkippedFile(rel(p), "not inside a class folder") for p in _visible_files(level)]
    classes = [d.name for d in _visible_subdirs(level)]
    items: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        for path in _walk_visible_files(level / name):
            if _is_image_name(path):
                items.append((path, label))
            else:
                suffix = path.suffix.lower() or "no extension"
                skipped.append(SkippedFile(rel(path), f"not an image file ({suffix})"))
    return classes, items, skipped


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


def _high_depth_to_l(img: Image.Image) -> Image.Image:
    """16/32-bit integer or float greyscale -> 8-bit, scaled (not clipped) to keep the contrast."""
    arr = np.asarray(img)
    values = arr.astype(np.float64)
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if img.mode.startswith("I;16"):
        scaled = values / 257.0  # 65535 -> 255 exactly
    elif img.mode == "I" and lo >= 0 and hi <= 255:
        scaled = values
    elif img.mode == "I" and lo >= 0 and hi <= 65535:
        scaled = values / 257.0  # 16-bit data that PIL opened as 32-bit
    elif img.mode == "F" and lo >= 0 and hi <= 1:
        scaled = values * 255.0
    else:  # arbitrary range (signed, float HDR): stretch min..max to 0..255
        scaled = (values - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(values)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        img = _high_depth_to_l(img)
    if img.mode == "RGB":
        return img
    if img.has_transparency_data:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, ALPHA_BACKGROUND + (255,))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return img.convert("RGB")  # L, 1, P, CMYK, YCbCr, ...


def _centre_square(width: int, height: int) -> tuple[int, int, int, int]:
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def _decode(path: Path, size: int, max_pixels: int) -> torch.Tensor:
    with Image.open(path, formats=PIL_FORMATS) as img:
        width, height = img.size
        if width * height > max_pixels:
            raise ValueError(f"image is too large ({width}x{height} pixels, limit {max_pixels:,})")
        if img.format in ("JPEG", "MPO"):
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: much faster for big photos. Keep at
            # least twice the target on the shorter side so the final resize still antialiases.
            shorter = min(width, height)
            img.draft(None, (max(1, width * 2 * size // shorter), max(1, height * 2 * size // shorter)))
        img.load()
        try:
            img = ImageOps.exif_transpose(img)  # phone photos store their rotation in EXIF
        except Exception:  # a broken EXIF block should not cost us the image
            pass
        rgb = _to_rgb(img)
        # Crop the centre square and resize it in one step: the same as "shorter side to S, then
        # centre crop S". Bilinear (antialiased by PIL) matches torchvision's Resize default.
        small = rgb.resize((size, size), Image.Resampling.BILINEAR, box=_centre_square(*rgb.size), reducing_gap=3.0)
    return torch.from_numpy(np.array(small, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def decode_image(path, size: int, max_pixels: int = MAX_IMAGE_PIXELS) -> torch.Tensor:
    """Decode one image file to uint8 [3,size,size] (any mode -> RGB; shorter side to `size`, centre crop).

    Raises ValueError with a short, plain reason (shown in the skipped-files report) for anything
    that is not a readable image, including decompression bombs.
    """
    try:
        return _decode(Path(path), size, max_pixels)
    except ValueError:
        raise
    except UnidentifiedImageError as err:
        raise ValueError("not a readable image (unknown format or damaged file)") from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ValueError("image is too large (possible decompression bomb)") from err
    except Exception as err:  # truncated data, decoder errors, odd modes: skip, never crash
        detail = str(err).strip().rstrip(".") or type(err).__name__
        raise ValueError(f"damaged or unsupported image ({detail})") from err


def _decode_or_reason(args: tuple[Path, int, int]) -> torch.Tensor | str:
    path, size, max_pixels = args
    try:
        return decode_image(path, size, max_pixels)
    except ValueError as err:
        return str(err)


def _decode_all(
    paths: Sequence[Path], size: int, progress: ProgressFn | None, max_pixels: int = MAX_IMAGE_PIXELS
) -> tuple[torch.Tensor, list[bool], list[str | None]]:
    """Decode `paths` into one preallocated uint8 [N,3,S,S] tensor with a small thread pool.

    PIL releases the GIL while decoding, so a few threads give a real speed-up. Returns the
    tensor, which rows succeeded, and the failure reason per row (None when it succeeded).
    """
    images = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    ok = [False] * len(paths)
    reasons: list[str | None] = [None] * len(paths)
    workers = max(1, min(8, os.cpu_count() or 1))
    # The warnings filter is process-wide; setting it once here (not per thread) avoids races
    # between threads entering/leaving catch_warnings. PIL then raises instead of warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
            for i, result in enumerate(pool.map(_decode_or_reason, [(p, size, max_pixels) for p in paths])):
                if isinstance(result, str):
                    reasons[i] = result
                else:
                    images[i] = result
                    ok[i] = True
                if progress is not None and ((i + 1) % 64 == 0 or i + 1 == len(paths)):
                    progress(i + 1, len(paths))
    return images, ok, reasons


# --------------------------------------------------------------------------------------------
# Sources, fingerprints and the decoded-dataset cache
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Decoded:
    """One source decoded at one size: everything before validation and splitting."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    skipped: tuple[SkippedFile, ...]


_CACHE_ENTRIES = 4  # a few uploads x sizes; each entry is at most max_cache_bytes
_cache: OrderedDict[tuple, _Decoded] = OrderedDict()
_zip_digests: dict[tuple, str] = {}  # (path, size, mtime) -> content hash, so re-hashing is skipped
_cache_lock = threading.Lock()


def clear_cache() -> None:
    """Drop all decoded datasets held in memory (tests; freeing memory)."""
    with _cache_lock:
        _cache.clear()
        _zip_digests.clear()


def _cache_get(key: tuple) -> _Decoded | None:
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
        return hit


def _cache_put(key: tuple, value: _Decoded) -> None:
    with _cache_lock:
        _cache[key] = value
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_ENTRIES:
            _cache.popitem(last=False)


def _zip_digest(path: Path) -> str:
    st = path.stat()
    memo_key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _cache_lock:
        if memo_key in _zip_digests:
            return _zip_digests[memo_key]
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()[:24]
    with _cache_lock:
        if len(_zip_digests) > 256:
            _zip_digests.clear()
        _zip_digests[memo_key] = digest
    return digest


def _folder_fingerprint(folder: Path) -> str:
    """Hash of every file's relative path, size and mtime: changes whenever the folder does."""
    h = hashlib.sha256(str(folder.resolve()).encode())
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            try:
                st = path.stat()
            except OSError:
                continue
            h.update(f"{path.relative_to(folder)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


@dataclass(frozen=True)
class _Source:
    path: Path
    kind: str  # "zip" | "dir"
    fingerprint: str


def _identify_source(source) -> _Source:
    path = Path(source).expanduser()
    if not path.exists():
        raise StudioError(f"Could not find '{source}'. Check the path, or upload the zip again.")
    if path.is_dir():
        return _Source(path, "dir", _folder_fingerprint(path))
    if not zipfile.is_zipfile(path):
        raise _not_a_dataset(path)
    return _Source(path, "zip", _zip_digest(path))


def _materialise(src: _Source, work_dir, limits: ZipLimits) -> Path:
    """The folder holding the source's files: the folder itself, or the zip extracted once.

    Zips go to `work_dir/<content-hash>` via a temporary folder renamed at the end, so a folder
    with that name is always a complete extraction and can be reused. On reuse the header
    checks are repeated (cheap) so stricter limits still apply.
    """
    if src.kind == "dir":
        return src.path
    dest = Path(work_dir) / src.fingerprint
    if dest.is_dir():
        with _open_zip(src.path) as zf:
            check_zip_headers(zf, limits)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".extract-{src.fingerprint}-{uuid.uuid4().hex[:8]}"
    try:
        safe_extract_zip(src.path, tmp, limits)
        try:
            tmp.rename(dest)
        except OSError:
            if not dest.is_dir():  # another thread finished the same extraction first: fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _check_cache_bytes(n_images: int, image_size: int, max_cache_bytes: int) -> None:
    needed = n_images * 3 * image_size * image_size
    if needed > max_cache_bytes:
        raise StudioError(
            f"Holding {n_images:,} images at {image_size}x{image_size} pixels in memory needs "
            f"about {_format_bytes(needed)}, above the limit of {_format_bytes(max_cache_bytes)}. "
            "Choose a smaller image size or use fewer images."
        )


def _require_class_folders(classes: list[str], items: list, skipped: list[SkippedFile]) -> None:
    """Refuse, before any decoding, uploads that cannot form at least two classes of images."""
    if not classes:
        loose_images = [s for s in skipped if _is_image_name(Path(s.path))]
        if loose_images:
            raise StudioError(
                "The images are not inside class folders. Put the images of each class in its own "
                "folder (for example cats/ and dogs/), zip those folders and upload again."
            )
        what = "the upload is empty" if not skipped else "the upload holds no folders"
        raise StudioError(
            f"No class folders were found ({what}). Put one folder per class with images "
            "inside (for example cats/ and dogs/), zip them and upload again."
        )
    if not items:
        found = ", ".join(sorted({s.reason for s in skipped})) or "the folders are empty"
        raise StudioError(
            f"No image files were found in the class folders ({found}). Supported formats: "
            f"{', '.join(sorted(e.lstrip('.') for e in IMAGE_EXTENSIONS))}. Add images and upload again."
        )
    if len(classes) < 2:
        raise StudioError(
            f"Found only one class folder ('{classes[0]}'). Training needs at least 2 classes: put "
            "the images of each class in its own folder (for example cats/ and dogs/), zip those "
            "folders and upload again."
        )


def _decoded(source, work_dir, image_size: int, limits: ZipLimits, max_cache_bytes: int,
             progress: ProgressFn | None, expected_classes: Sequence[str] | None = None) -> _Decoded:
    """Scan + decode `source` at `image_size`, from the LRU when this exact source was seen."""
    if image_size < 1:
        raise StudioError(f"The image size must be a positive number of pixels (got {image_size}); 64 is a good start.")
    src = _identify_source(source)
    key = (src.kind, src.fingerprint, image_size, limits)
    hit = _cache_get(key)
    if hit is not None:
        if expected_classes is not None:
            _check_class_match(list(hit.classes), expected_classes)
        _check_cache_bytes(len(hit.labels), image_size, max_cache_bytes)
        return hit

    root = _materialise(src, work_dir, limits)
    classes, items, skipped = scan_class_folders(root)
    if expected_classes is not None and classes:
        _check_class_match(classes, expected_classes)
    _require_class_folders(classes, items, skipped)
    _check_cache_bytes(len(items), image_size, max_cache_bytes)

    paths = [p for p, _ in items]
    images, ok, reasons = _decode_all(paths, image_size, progress, limits.max_image_pixels)
    for (path, _), reason in zip(items, reasons):
        if reason is not None:
            skipped.append(SkippedFile(path.relative_to(root).as_posix(), reason))
    labels = torch.tensor([label for _, label in items], dtype=torch.int64)
    if not all(ok):  # drop failed rows (a copy; skipped when everything decoded, to save memory)
        keep = torch.tensor(ok, dtype=torch.bool)
        images, labels = images[keep], labels[keep]
    decoded = _Decoded(images, labels, tuple(classes), tuple(skipped))
    _cache_put(key, decoded)
    return decoded


# --------------------------------------------------------------------------------------------
# Validation and splitting
# --------------------------------------------------------------------------------------------


def _require_readable(decoded: _Decoded) -> None:
    if len(decoded.labels) > 0:
        return
    examples = "; ".join(f"{s.path}: {s.reason}" for s in decoded.skipped[:3])
    raise StudioError(
        f"None of the image files could be read ({examples}). Check that the files are real "
        "images (jpg, png, ...) that open on your computer, then upload again."
    )


def _require_enough_per_class(decoded: _Decoded, min_images_per_class: int) -> None:
    classes = list(decoded.classes)
    counts = torch.bincount(decoded.labels, minlength=len(classes)).tolist()
    too_few = [(name, n) for name, n in zip(classes, counts) if n < min_images_per_class]
    if too_few:
        listed = "; ".join(f"class '{name}' has {n} readable image{'s' if n != 1 else ''}" for name, n in too_few)
        raise StudioError(
            f"Each class needs at least {min_images_per_class} readable images, but {listed}. "
            "Add more images to those folders (or remove them), then upload again."
        )


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise StudioError(
            f"The validation ({val_fraction}) and test ({test_fraction}) fractions must each be "
            "between 0 and 1 and together leave images for training (e.g. 0.2 and 0.2)."
        )


def _split_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """(train, val, test) sizes for one class: rounded fractions, >= 1 per used split if possible."""
    n_val, n_test = int(n * val_fraction + 0.5), int(n * test_fraction + 0.5)
    splits_in_use = 1 + (val_fraction > 0) + (test_fraction > 0)
    if n >= splits_in_use:
        n_val = max(n_val, 1) if val_fraction > 0 else 0
        n_test = max(n_test, 1) if test_fraction > 0 else 0
    while n_val + n_test > max(n - 1, 0):  # training keeps at least one image
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    return n - n_val - n_test, n_val, n_test


def stratified_split(labels: torch.Tensor, num_classes: int, val_fraction: float = 0.2,
                     test_fraction: float = 0.2, seed: int = 0) -> dict[str, torch.Tensor]:
    """Indices for train/val/test, split within each class so class balance is preserved.

    Deterministic for a seed (a CPU torch.Generator); indices within each split are sorted.
    """
    _check_fractions(val_fraction, test_fraction)
    generator = torch.Generator().manual_seed(seed)
    parts: dict[str, list[torch.Tensor]] = {"train": [], "val": [], "test": []}
    for cls in range(num_classes):
        members = torch.nonzero(labels == cls).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        n_train, n_val, _ = _split_sizes(len(members), val_fraction, test_fraction)
        parts["train"].append(members[:n_train])
        parts["val"].append(members[n_train:n_train + n_val])
        parts["test"].append(members[n_train + n_val:])
    return {name: torch.sort(torch.cat(chunks))[0] if chunks else torch.empty(0, dtype=torch.long)
            for name, chunks in parts.items()}


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def load_dataset(source, work_dir, image_size: int = 64, val_fraction: float = 0.2,
                 test_fraction: float = 0.2, seed: int = 0, min_images_per_class: int = 5,
                 limits: ZipLimits = ZipLimits(), max_cache_bytes: int = 4 * 1024**3,
                 progress: ProgressFn | None = None) -> DataSplits:
    """Validate, decode and split a dataset (a .zip of class folders, or a folder).

    Zips are extracted into `work_dir/<content-hash>` and nowhere else. Images are decoded once
    into uint8 [N,3,S,S] tensors (S = `image_size`: shorter side resized to S, centre crop), so
    memory is N*3*S*S bytes (1,000 images at 64 px = 12 MB; at 224 px = 150 MB); a dataset
    needing more than `max_cache_bytes` is refused with a StudioError before decoding. Decoded
    data is kept in a small in-memory LRU keyed by (source content, size, limits), so loading
    the same upload again is instant. `progress(done, total)` is called while decoding.
    """
    _check_fractions(val_fraction, test_fraction)
    decoded = _decoded(source, work_dir, image_size, limits, max_cache_bytes, progress)
    _require_readable(decoded)
    _require_enough_per_class(decoded, min_images_per_class)

    classes = list(decoded.classes)
    full = ImageSet(decoded.images, decoded.labels, classes)
    indices = stratified_split(decoded.labels, len(classes), val_fraction, test_fraction, seed)
    splits = {name: full.subset(idx) for name, idx in indices.items()}
    report = DataReport(
        source=str(source),
        classes=classes,
        counts=full.class_counts(),
        skipped=list(decoded.skipped),
        split_counts={name: s.class_counts() for name, s in splits.items()},
        image_size=image_size,
    )
    return DataSplits(splits["train"], splits["val"], splits["test"], classes, report)


def _check_class_match(found: Sequence[str], expected: Sequence[str]) -> None:
    missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if not (missing or extra):
        return
    parts = []
    if missing:
        parts.append("missing: " + ", ".join(f"'{c}'" for c in missing))
    if extra:
        parts.append("not in the training data: " + ", ".join(f"'{c}'" for c in extra))
    raise StudioError(
        f"The out-of-distribution dataset's class folders do not match the training classes "
        f"({'; '.join(parts)}). Name its folders exactly like the training classes "
        f"({', '.join(expected)}) and upload it again."
    )


def load_ood_dataset(source, work_dir, image_size: int, classes: list[str],
                     limits: ZipLimits = ZipLimits(), max_cache_bytes: int = 4 * 1024**3,
                     progress: ProgressFn | None = None) -> ImageSet:
    """A user-provided evaluation set with the same classes as training, decoded like `load_dataset`.

    Its class folder names must equal `classes` as a set; labels follow the order of `classes`.
    A class may have few images here (it is only evaluated), but at least one image must be readable.
    """
    decoded = _decoded(source, work_dir, image_size, limits, max_cache_bytes, progress,
                       expected_classes=classes)
    _check_class_match(list(decoded.classes), classes)
    _require_readable(decoded)
    position = {name: i for i, name in enumerate(classes)}
    remap = torch.tensor([position[name] for name in decoded.classes], dtype=torch.int64)
    # Clone: the cached tensor must stay untouched whatever the caller does with the result.
    return ImageSet(decoded.images.clone(), remap[decoded.labels], list(classes))


def inspect_dataset(source, work_dir, limits: ZipLimits = ZipLimits(), *, image_size: int = 32,
                    min_images_per_class: int = 5, val_fraction: float = 0.2,
                    test_fraction: float = 0.2, seed: int = 0,
                    progress: ProgressFn | None = None) -> DataReport:
    """Validate an upload before training and describe it (classes, counts, skipped files, split).

    Runs exactly the checks of `load_dataset` (so "valid here" means "trainable"), decoding at a
    small size; the decoded result stays in the LRU, so repeated inspection is instant.
    Raises StudioError for the same problems `load_dataset` would.
    """
    return load_dataset(source, work_dir, image_size=image_size, val_fraction=val_fraction,
                        test_fraction=test_fraction, seed=seed,
                        min_images_per_class=min_images_per_class, limits=limits,
                        progress=progress).report
