"""Dataset ingestion: an uploaded zip (or a folder) of images becomes decoded tensors.

Flow: `load_dataset(source, work_dir)`
  1. fingerprint the source (zip: content hash; folder: path + file sizes/mtimes), and if the same
     source was decoded at the same size recently, reuse it from an in-memory LRU (the dashboard
     re-reads the same upload on every rerun, so this must be instant);
  2. otherwise extract the zip safely into `work_dir/<content-hash>` (limits enforced while
     reading, because zip headers can lie; member names without the UTF-8 flag decoded as UTF-8
     or a guessed legacy code page; a member that cannot be written is skipped, not fatal), find
     the layout (`scan_dataset`: class folders, pre-split train/val/test folders, or a labels
     file, below any single wrapper folders), decode every image once at the run's resolution
     into one uint8 tensor (hashing each file's bytes and its picture on the way), and note every
     skipped file with its reason;
  3. validate (>= 2 classes, enough images per class), group exact and near duplicates, and use
     the split the folders give, or split stratified by class with a seed, a duplicate group
     never straddling two splits.

Small data lives decoded in memory (airbench style): augmentation happens later, in batches, on
the training device (`engine.augment`), so the loader is never the bottleneck.

Every problem the user can fix is a `StudioError` whose message says what to do next. Files that
cannot be read are never fatal on their own: they are skipped and listed in `DataReport.skipped`.
Class names are Unicode NFC everywhere (`normalise_class_name`), so a macOS zip (NFD) and a
Windows zip (NFC) of the same folders give the same classes.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import re
import shutil
import stat
import threading
import unicodedata
import uuid
import warnings
import zipfile
import zlib
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.backbones import IMAGENET_MEAN
from engine.bursts import burst_groups, burst_words, linked, moments_apart, shot_times, with_bursts
from engine.devices import usable_cpus
from engine.errors import StudioError
from engine.paths import EXTRACTED_DIGITS
from engine.words import first_and_more, plural

try:  # HEIC/HEIF, the iPhone camera's default format (AVIF is built into Pillow >= 11.2)
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # optional at import time; requirements.txt installs it
    pillow_heif = None

Image.init()
# Only these PIL parsers may run on uploaded bytes (smaller attack surface than "any format").
# Phone cameras' multi-picture JPEGs come back from the JPEG parser with format "MPO".
PIL_FORMATS = tuple(f for f in ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF", "HEIF", "AVIF") if f in Image.OPEN)
# Every extension Pillow registers for those formats: .jfif/.jpe/.jpg/.jpeg, .heic/.heif, .avif ...
IMAGE_EXTENSIONS = frozenset(ext for ext, fmt in Image.registered_extensions().items()
                             if fmt in PIL_FORMATS + ("MPO",))
# Extensions Pillow knows for formats we do not parse (PSD, ICO, PPM, ...): named in the skip reason.
OTHER_IMAGE_EXTENSIONS = frozenset(Image.registered_extensions()) - IMAGE_EXTENSIONS
SOUND_EXTENSIONS = frozenset({".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aif", ".aiff",
                              ".wma"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".wmv", ".mts"})
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
    """A file left out of a dataset: its path relative to the dataset's root ('/' separators) and the reason in
    plain words ("not an image", "could not be decoded")."""

    path: str  # relative to the dataset root, with '/' separators
    reason: str  # short, plain words


# Layouts `scan_dataset` recognises (the value of `DataReport.layout`).
LAYOUT_CLASS_FOLDERS = "class folders"
LAYOUT_PRE_SPLIT = "pre-split folders (train/val/test), class folders inside"
LAYOUT_LABELS_FILE = "labels file"
LAYOUT_PRE_SPLIT_LABELS = "pre-split folders (train/val/test), a labels file in each"


@dataclass
class DataReport:
    """What the studio made of a dataset: layout, classes, counts, split, skipped files, duplicates.

    `split_files` lists the files (relative to the dataset root, '/' separators) of each split;
    `duplicate_groups` the groups of two or more files showing the same picture (exact copies
    by content hash, near copies by perceptual hash, see `find_duplicate_groups`), each group
    kept inside one split; `imbalance` the ratio largest/smallest class (see `class_imbalance`).
    """

    source: str
    classes: list[str]
    counts: dict[str, int]  # readable images per class (after dropped duplicates)
    skipped: list[SkippedFile]
    split_counts: dict[str, dict[str, int]]  # {"train": {cls: n}, "val": ..., "test": ...}
    image_size: int
    layout: str = LAYOUT_CLASS_FOLDERS
    split_given: bool = False  # True: the folders gave the split and it was used as is
    val_carved: bool = False  # split_given without a validation folder: val_fraction of train/ held out (seeded)
    notes: list[str] = field(default_factory=list)  # what was detected, in plain words
    warnings: list[str] = field(default_factory=list)  # what the user should check
    split_files: dict[str, list[str]] = field(default_factory=dict)
    duplicate_groups: list[list[str]] = field(default_factory=list)
    # per duplicate group: True when its files are byte-identical, False when its pictures only look alike (a new
    # user's exact copies and look-alike leaves were counted as one kind)
    duplicate_identical: list[bool] = field(default_factory=list)
    duplicates_dropped: list[str] = field(default_factory=list)
    bursts: list[list[str]] = field(default_factory=list)  # files taken moments apart by one camera (engine.bursts)
    imbalance: dict = field(default_factory=dict)
    picture_shape: dict = field(default_factory=dict)  # the pictures' typical size and what the square keeps
    greyscale: int = 0  # the kept pictures that are greyscale (`is_greyscale`): Results counts them apart
    content_sha256: str = ""  # the readable images' bytes and classes (`content_digest`): one dataset, however packed

    @property
    def num_images(self) -> int:
        """Images kept in the dataset, all classes together."""
        return sum(self.counts.values())

    def to_dict(self) -> dict:
        """JSON-serialisable form (for the run store and the dashboard)."""
        return asdict(self)

    def group_kinds(self) -> list[bool]:
        """`duplicate_identical`, one flag per duplicate group, or [] when the report does not say (made before it
        was recorded, or not one flag per group): the Data page and `inspect` then leave the kinds out."""
        flags = getattr(self, "duplicate_identical", None) or []  # a report kept from before has no such field
        return list(flags) if len(flags) == len(self.duplicate_groups) else []


class EmptyArchiveError(StudioError):
    """A zip with no files (or only hidden or system ones)."""


class DatasetError(StudioError):
    """A dataset was refused; `skipped` lists the files that were left out and why, `notes` the layout seen."""

    def __init__(self, message: str, skipped: Sequence[SkippedFile] = (), notes: Sequence[str] = ()):
        super().__init__(message)
        self.skipped = list(skipped)
        self.notes = list(notes)


@dataclass
class ImageSet:
    """Decoded images of one split: `images` uint8 [N, 3, S, S] on the CPU, `labels` int64 [N] (indices into
    `classes`), `classes` the class names in label order."""

    images: torch.Tensor  # uint8 [N,3,S,S], CPU
    labels: torch.Tensor  # int64 [N]
    classes: list[str]
    _grey: torch.Tensor | None = field(default=None, repr=False, compare=False)  # `greyscale`'s, once measured

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def greyscale(self) -> torch.Tensor:
        """Which images are greyscale [N] (bool, `is_greyscale`), measured once per set: the final evaluation, the
        smaller model's and each WiSE-FT mix's figures read the same splits."""
        if self._grey is None or len(self._grey) != len(self.images):
            self._grey = is_greyscale(self.images)
        return self._grey

    def subset(self, idx) -> "ImageSet":
        """Rows `idx` (indices or a boolean mask) as a new ImageSet (copies, never views)."""
        idx = torch.as_tensor(idx)
        if idx.dtype != torch.bool:
            idx = idx.long()
        grey = None if self._grey is None else self._grey[idx]  # measured already: not again for a split
        return ImageSet(self.images[idx], self.labels[idx], list(self.classes), grey)

    def class_counts(self) -> dict[str, int]:
        """Class name -> images of that class in this set (0 for a class without any). Raises nothing."""
        counts = torch.bincount(self.labels, minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, counts))


@dataclass
class DataSplits:
    """A dataset split into train, validation and test ImageSets with the same `classes`, and the report of what was
    read, skipped and how it was split."""

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
        "choose Compress / Send to zip) and try again."
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


NAMES_NOT_UTF8 = "not marked as UTF-8 and not valid UTF-8"  # the words of the warning on guessed name code pages
ZIP_UTF8_FLAG = 0x800  # general-purpose bit 11: "the name is UTF-8" (PKWARE APPNOTE 4.4.4)
# Tried, in this order on ties, for names neither flagged nor valid UTF-8. Windows' own zip writes
# the system's OEM code page (437 Western, 936 = GBK Chinese, 932 = Shift_JIS, 866 Cyrillic);
# other tools write the ANSI one (1252 Western, 1251 Cyrillic).
LEGACY_NAME_ENCODINGS = ("gbk", "cp437", "cp1252", "shift_jis", "cp866", "cp1251")
_ENCODING_LABELS = {"gbk": "GBK (Chinese Windows)", "cp437": "code page 437 (Western DOS/Windows)",
                    "cp1252": "Windows-1252 (Western)", "shift_jis": "Shift_JIS (Japanese Windows)",
                    "cp866": "code page 866 (Cyrillic DOS/Windows)", "cp1251": "Windows-1251 (Cyrillic)"}
MAX_NAME_BYTES = 255  # per file or folder name: ext4, XFS, APFS and NTFS all stop near here
EXTRACT_MANIFEST = ".studio-extract.json"  # skipped members and name warnings, beside the files


def normalise_class_name(name: str) -> str:
    """Unicode NFC form of a class name or path (macOS writes NFD: 'A' + combining diaeresis for 'Ä').

    Apply it wherever class names are read, stored or compared, so the same folder name typed
    on macOS and on Windows is one class.
    """
    return unicodedata.normalize("NFC", name)


def _flagless_raw_name(info: zipfile.ZipInfo) -> bytes | None:
    """The stored bytes of a name without the UTF-8 flag (zipfile decoded them as cp437)."""
    if info.flag_bits & ZIP_UTF8_FLAG:
        return None
    try:
        raw = info.orig_filename.encode("cp437")
    except UnicodeEncodeError:
        return None
    return None if raw.isascii() else raw


def _name_plausibility(text: str) -> int:
    """How much decoded names look like words: letters score, box drawing and symbols cost.

    A CJK character glued to a Latin letter ("紳fel") is what a double-byte code page makes of
    a Western name (its second byte is ASCII), so it costs instead of scoring.
    """
    score = 0
    for k, ch in enumerate(text):
        if ch.isascii():
            continue
        if "\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff":  # kana, CJK ideographs
            glued = any(0 <= j < len(text) and text[j].isascii() and text[j].isalpha() for j in (k - 1, k + 1))
            try:  # common ideographs are in GB2312; rare ones are what a wrong code page produces
                common = ch >= "\u4e00" and bool(ch.encode("gb2312")) or ch < "\u4e00"
            except UnicodeEncodeError:
                common = False
            score += -3 if glued else (3 if common else -1)
        elif unicodedata.category(ch).startswith("L") and ("\u00c0" <= ch <= "\u00ff" or "\u0400" <= ch <= "\u04ff"):
            score += 2  # Latin-1 letters (ä é ñ ß), Cyrillic
        elif unicodedata.category(ch).startswith("L") and not "\uff61" <= ch <= "\uff9f":
            score += 0  # Greek in cp437, Latin Extended: possible, not evidence
        else:
            score -= 2  # box drawing, symbols, controls, half-width katakana: a wrong code page's mark
    return score


def guess_name_encoding(raw_names: Sequence[bytes]) -> tuple[str, bool]:
    """(encoding, sure) for zip member names that are neither UTF-8-flagged nor valid UTF-8.

    Every candidate of LEGACY_NAME_ENCODINGS that decodes all names is scored by how much the
    result looks like words (`_name_plausibility`); ties go to the earlier candidate. `sure` is
    False when the runner-up scores more than half the winner's score (or nothing scores).
    """
    scored = []
    for order, enc in enumerate(LEGACY_NAME_ENCODINGS):
        try:
            text = "\n".join(r.decode(enc) for r in raw_names)
        except UnicodeDecodeError:
            continue
        scored.append((_name_plausibility(text), -order, enc))
    if not scored:
        return "cp437", False  # decodes any byte: names stay readable enough to be found
    scored.sort(reverse=True)
    best = scored[0][0]
    sure = best > 0 and (len(scored) == 1 or scored[1][0] <= best / 2)
    return scored[0][2], sure


def decode_member_names(infos: Sequence[zipfile.ZipInfo]) -> tuple[list[str], list[str]]:
    """Each member's name as the user wrote it (NFC), and warnings about guessed code pages.

    Names with the UTF-8 flag are UTF-8. Names without it are UTF-8 when all of them are valid
    UTF-8 (macOS Archive Utility, Linux zip), else one legacy code page guessed for the whole
    archive (`guess_name_encoding`), with a warning that names the code page.
    """
    raws = [_flagless_raw_name(i) for i in infos]
    names: list[str | None] = [None if r is not None else i.filename for i, r in zip(infos, raws)]
    legacy = []
    for k, raw in enumerate(raws):
        if raw is None:
            continue
        try:
            names[k] = raw.decode("utf-8")
        except UnicodeDecodeError:
            legacy.append(k)
    warnings_out = []
    if legacy:
        # One tool wrote the whole archive with one encoding: a GBK name can happen to be valid
        # UTF-8 ('猫' = C3 A8 = 'è'), so once one name is not UTF-8, none of them is taken as UTF-8.
        legacy = [k for k, raw in enumerate(raws) if raw is not None]
        enc, sure = guess_name_encoding([raws[k] for k in legacy])
        for k in legacy:
            names[k] = raws[k].decode(enc, errors="replace")
        example = names[legacy[0]]
        hint = ("Check that the class names look right" if sure else
                "This is a guess: check that the class names look right")
        warnings_out.append(
            f"{plural(len(legacy), 'file name')} in the zip (e.g. '{example}') "
            f"{'are' if len(legacy) != 1 else 'is'} {NAMES_NOT_UTF8}; they were read as "
            f"{_ENCODING_LABELS.get(enc, enc)}. {hint}; if they do not, make the zip with 7-Zip or "
            "another tool that writes UTF-8 names and try again.")
    return [normalise_class_name(n.replace(os.sep, "/")) for n in names], warnings_out


def is_names_warning(text: str) -> bool:
    """Whether a data report's warning is `decode_member_names`' on file names read in a guessed code page: about the
    names the user sees, not about the figures (Results and the model card keep it apart from the warnings that
    qualify them; a geology instructor's correctly read accented names stood as "1 warning" beside every figure)."""
    return NAMES_NOT_UTF8 in str(text)


def _check_member_is_safe(info: zipfile.ZipInfo, name: str | None = None) -> None:
    """Refuse absolute paths, '..', links and special files, whether or not we'd extract them."""
    for candidate in {info.filename.replace("\\", "/"), (name or info.filename).replace("\\", "/")}:
        if candidate.startswith("/") or re.match(r"^[A-Za-z]:", candidate):
            raise _unsafe(info.filename, "has an absolute path")
        if ".." in candidate.split("/"):
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


@dataclass
class ZipMembers:
    """The members of a zip worth extracting, with their decoded path parts, and name warnings."""

    members: list[tuple[zipfile.ZipInfo, list[str]]]
    warnings: list[str]
    ignored_names: list[str] = field(default_factory=list)  # hidden files and folders and OS clutter left out
    ignored: int = 0  # ... how many (Thumbs.db, desktop.ini, a __MACOSX/ folder: each once)


def check_zip_headers(zf: zipfile.ZipFile, limits: ZipLimits) -> ZipMembers:
    """All checks that need only the central directory; returns the members worth extracting."""
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise _too_big(f"it has {len(infos):,} entries, the limit is {limits.max_members:,}")
    names, name_warnings = decode_member_names(infos)
    for info, name in zip(infos, names):
        _check_member_is_safe(info, name)
    files = [(info, _member_parts(name)) for info, name in zip(infos, names) if not info.is_dir()]
    members = [(info, parts) for info, parts in files if parts and not any(map(_is_junk_part, parts))]
    junk = {tuple(parts[:next(i for i, part in enumerate(parts) if _is_junk_part(part)) + 1])
            for _, parts in files if any(map(_is_junk_part, parts))}  # a __MACOSX/ folder counts once
    if not members:
        raise EmptyArchiveError(
            "The zip archive is empty (no files, or only hidden/system files). "
            "Put one folder per class with images inside (e.g. cats/, dogs/), zip them and try again."
        )
    _check_declared_sizes([info for info, _ in members], limits)
    return ZipMembers(members, name_warnings, sorted({p[-1] for p in junk}), len(junk))


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


_DISK_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EROFS}


def _write_problem(err: OSError) -> str:
    """A per-file write failure in plain words (the file is then skipped, not the archive)."""
    if err.errno == errno.ENAMETOOLONG:
        return "its name is too long for this computer's file system"
    if err.errno in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
        return "a file and a folder in the zip have the same name"
    if err.errno == errno.EILSEQ:
        return "its name has characters this computer's file system cannot store"
    return f"could not be written ({err.strerror or err})"


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, parts: list[str], dest_root: Path,
                    budget: _ByteBudget) -> str | None:
    """Write one member under `dest_root`; returns why it was skipped, or None when written."""
    long_parts = [p for p in parts if len(p.encode("utf-8")) > MAX_NAME_BYTES]
    if long_parts:
        n = len(long_parts[0].encode("utf-8"))
        return f"its name is too long for the file system ({n} bytes; at most {MAX_NAME_BYTES})"
    target = dest_root.joinpath(*parts)
    if not target.resolve().is_relative_to(dest_root) or target == dest_root:
        raise _unsafe(info.filename, "would be written outside the destination folder")
    if target.exists():
        return "another file in the zip has the same name (names are compared after Unicode normalisation)"
    member_bytes = 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
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
            "Re-create the zip and try again."
        ) from err
    except ValueError as err:  # e.g. a NUL character in the name: no file system stores it
        if target.is_file():
            target.unlink(missing_ok=True)
        return f"its name has characters this computer's file system cannot store ({err})"
    except NotImplementedError as err:
        raise StudioError(
            f"The zip uses a compression method this tool cannot read (entry '{info.filename}'). "
            "Re-create it with your system's standard zip tool and try again."
        ) from err
    except OSError as err:
        if err.errno in _DISK_ERRNOS:
            raise StudioError(
                f"Could not write '{'/'.join(parts)}' while unpacking the zip: the disk is full or read-only "
                f"({err.strerror or err}). Free some disk space on the server, then try again."
            ) from err
        if target.is_file():  # a partial file must not be mistaken for a readable image later
            target.unlink(missing_ok=True)
        return _write_problem(err)
    return None


def safe_extract_zip(zip_path, dest_dir, limits: ZipLimits = ZipLimits()) -> Path:
    """Extract an untrusted zip into `dest_dir` (created if needed) and return `dest_dir`.

    Refuses absolute paths, '..', links and special files (naming the entry), password-protected
    zips, damaged archives, and archives over `limits`. Sizes are checked on the headers first
    (fast failure) and then on the bytes actually decompressed, chunk by chunk (headers can lie).
    Hidden files, `__MACOSX` and similar clutter are not extracted. Member names are decoded
    with `decode_member_names` (NFC). A member that cannot be written for a reason of its own
    (name too long, a name clash) is skipped and recorded, with any name-encoding warning, in
    `dest_dir/.studio-extract.json` (read back by `read_extract_manifest`); a full disk is fatal.
    Nothing is written outside `dest_dir`; on error a partial extraction may remain there, so
    extract into a fresh folder.
    """
    zip_path, dest = Path(zip_path), Path(dest_dir)
    zf = _open_zip(zip_path)
    with zf:
        checked = check_zip_headers(zf, limits)
        dest.mkdir(parents=True, exist_ok=True)
        dest_root = dest.resolve()
        budget = _ByteBudget(limits)
        skipped = []
        for info, parts in checked.members:
            reason = _extract_member(zf, info, parts, dest_root, budget)
            if reason is not None:
                skipped.append(SkippedFile("/".join(parts), reason))
    if skipped or checked.warnings or checked.ignored:
        manifest = {"skipped": [asdict(s) for s in skipped], "warnings": checked.warnings, "ignored": checked.ignored,
                    "ignored_names": checked.ignored_names}
        (dest / EXTRACT_MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    return dest


def read_extract_manifest(folder: Path) -> tuple[list[SkippedFile], list[str]]:
    """(skipped members, warnings) that `safe_extract_zip` recorded in `folder` (none for a plain folder)."""
    raw = _manifest(folder)
    try:
        return [SkippedFile(**s) for s in raw.get("skipped", [])], list(raw.get("warnings", []))
    except (ValueError, TypeError):
        return [], []


def _manifest(folder: Path) -> dict:
    """`safe_extract_zip`'s record in `folder`, {} where there is none or it cannot be read."""
    path = Path(folder) / EXTRACT_MANIFEST
    try:
        raw = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def ignored_files(root: Path) -> tuple[int, list[str]]:
    """(how many, their distinct names sorted) hidden or system files and folders (Thumbs.db, desktop.ini, .DS_Store,
    a __MACOSX/ or .git/ folder, each folder once) the scan of `root` leaves out: those left unextracted from its zip
    (`safe_extract_zip`'s record) plus those in the folder itself (that record aside). A geology instructor's zip
    held 9 desktop.ini and Thumbs.db files beside "Skipped files 0", and nothing said they had been seen."""
    found: list[str] = []
    for _, dirnames, filenames in os.walk(root):
        found += [n for n in dirnames + filenames if _is_junk_part(n) and n != EXTRACT_MANIFEST]
        dirnames[:] = [d for d in dirnames if not _is_junk_part(d)]  # not into __MACOSX/ or .git/
    record = _manifest(root)
    stored, names = record.get("ignored", 0), record.get("ignored_names", [])
    stored = stored if isinstance(stored, int) else 0
    return len(found) + stored, sorted(set(found) | {str(n) for n in names if isinstance(names, list)})


IGNORED_NAMED = 4  # names an ignored-files note gives


def ignored_note(count: int, names: Sequence[str]) -> str | None:
    """The scan's note on `ignored_files`' (`count`, `names`): "9 hidden or system files or folders left out
    (desktop.ini, Thumbs.db): they hold no pictures for training."; None for none."""
    if not count:
        return None
    what = "file or folder" if count == 1 else "files or folders"
    shown = ", ".join(list(names)[:IGNORED_NAMED]) + (", …" if len(names) > IGNORED_NAMED else "")
    return (f"{count} hidden or system {what} left out" + (f" ({shown})" if shown else "")
            + f": {'it holds' if count == 1 else 'they hold'} no pictures for training.")


OTHER_ARCHIVES = (".tar", ".tgz", ".gz", ".bz2", ".xz", ".rar", ".7z")  # archives the studio does not read


def not_a_zip_reason(path: Path, other: str = "is not a zip archive or a folder of class folders") -> str:
    """Why `path`, a file that is not a readable zip, cannot be read, by what it looks like: a .zip
    name whose bytes are not zip (a renamed file, a cut-short download), another archive format
    (.tar.gz, .rar, .7z ...), or any other file (`other`: the words for that case, after its name)."""
    suffix = path.suffix.lower()
    if suffix == ".zip":
        return ("is not a zip archive: its contents are not in zip format (another kind of file with a .zip name, "
                "or a download cut short)")
    if suffix in OTHER_ARCHIVES:
        return (f"is a {''.join(path.suffixes[-2:]).lower() if suffix == '.gz' else suffix} archive, which the "
                "studio does not read: repack it as a .zip instead")
    return other


def _not_a_dataset(path: Path) -> StudioError:
    """The message for a training source that is neither a readable zip nor a folder (see `not_a_zip_reason`)."""
    return StudioError(f"'{path.name}' {not_a_zip_reason(path)}. Use a .zip file that contains one folder per "
                       "class with the images inside (for example cats/ and dogs/).")


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


def kind_reason(name: str | Path) -> str | None:
    """Why a file named `name` is not read, by its extension alone, in the words every page gives for it (the Data
    page's skipped files, Try it's uploads, `predict`): a PDF document, another image format (JPEG 2000, ...), a
    sound or a video file; None for an image extension we read or one that says nothing (sniffed by content
    elsewhere). An archivist's .jp2 scan was "not accepted here" on the Data page and "not a readable image
    (unknown format or damaged file)" on Try it."""
    suffix = Path(name).suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return None
    if suffix == ".pdf":  # Pillow writes PDFs (so it lists .pdf) but reads none
        return "a PDF document (.pdf), not a picture: save its pages as PNG or JPEG images first"
    if suffix in OTHER_IMAGE_EXTENSIONS:
        return f"image format not accepted here ({suffix}); save it as JPEG or PNG"
    if suffix in SOUND_EXTENSIONS:  # a bioacoustics researcher's zip of recordings read only "not an image file"
        return f"a sound file ({suffix}), not a picture: make a spectrogram image of each recording first"
    if suffix in VIDEO_EXTENSIONS:
        return f"a video file ({suffix}), not a picture: save the frames you want as images first"
    return None


def _image_file_problem(path: Path) -> str | None:
    """None when `path` is an image we read, else why not (`kind_reason`). Unknown extensions are sniffed by
    content."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return None
    if kind := kind_reason(path):
        return kind
    try:  # a photo saved without (or with a wrong) extension is still a photo
        with Image.open(path, formats=PIL_FORMATS):
            return None
    except Exception:
        return f"not an image file ({suffix or 'no extension'})"


def image_files(root: Path) -> tuple[list[tuple[str, Path]], list[SkippedFile]]:
    """([(path relative to `root` with '/', path)], skipped) for every image under `root` at any
    depth, in a stable order (sorted names, depth first), read as training reads them: hidden files
    and OS clutter (__MACOSX, Thumbs.db) ignored silently, a photo without an image extension sniffed
    by content, anything else listed as skipped with the reason. Used for folders with no class
    structure to trust (prediction)."""
    items: list[tuple[str, Path]] = []
    skipped: list[SkippedFile] = []
    for path in _walk_visible_files(root):
        rel = path.relative_to(root).as_posix()
        problem = _image_file_problem(path)
        if problem is None:
            items.append((rel, path))
        else:
            skipped.append(SkippedFile(rel, problem))
    return items, skipped


# Split folder names (lower case) as exporters write them: Roboflow (train/valid/test), Keras and
# Hugging Face (train/validation/test), ImageNet-style (train/val).
SPLIT_FOLDER_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                      "dev": "val", "test": "test", "testing": "test"}
SPLITS = ("train", "val", "test")
# Label files, as Hugging Face's `imagefolder` reads them (file_name + a label column), and the
# plainer labels.csv many tools export.
LABEL_FILE_NAMES = ("metadata.csv", "metadata.jsonl", "labels.csv", "labels.jsonl")
FILE_NAME_COLUMNS = ("file_name", "filename", "file", "image", "image_path", "path", "filepath")
LABEL_COLUMNS = ("label", "labels", "class", "class_name", "category", "target")
MAX_WRAPPER_DEPTH = 8


@dataclass
class DatasetScan:
    """What `scan_dataset` found: the layout, classes (NFC, sorted) and the image files.

    `splits[i]` is the split ("train" | "val" | "test") the folders give item i, or None for all
    items when no split is given.
    """

    layout: str
    classes: list[str]
    items: list[tuple[Path, int]]  # (image path, label)
    skipped: list[SkippedFile]
    splits: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _labels_file(folder: Path) -> Path | None:
    for name in LABEL_FILE_NAMES:
        if (folder / name).is_file():
            return folder / name
    return None


def _pick_column(columns: Sequence[str], wanted: Sequence[str]) -> str | None:
    lower = {c.strip().lower(): c for c in columns if c}
    return next((lower[w] for w in wanted if w in lower), None)


def read_labels_file(path: Path) -> list[tuple[str, str]]:
    """(file name, label) rows of a labels file: CSV with a header, or JSON lines.

    The file-name column is one of FILE_NAME_COLUMNS (Hugging Face: `file_name`), the label
    column one of LABEL_COLUMNS; a CSV with exactly two unrecognised columns is read as
    (file, label) without a header. Raises StudioError naming the columns it found otherwise.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise StudioError(f"'{path.name}' is not UTF-8 text. Save it as UTF-8 CSV and try again.") from err
    if path.suffix.lower() == ".jsonl":
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rec = json.loads(line)
                except ValueError as err:
                    raise StudioError(f"Line {n} of '{path.name}' is not valid JSON ({err}).") from err
                if isinstance(rec, dict):
                    records.append(rec)
        columns = list(dict.fromkeys(k for r in records for k in r))
        rows_of = lambda fc, lc: [(r.get(fc), r.get(lc)) for r in records]  # noqa: E731
    else:
        table = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
        columns = table[0] if table else []
        body = table[1:]
        if _pick_column(columns, FILE_NAME_COLUMNS) is None and len(columns) == 2:
            columns, body = ["file_name", "label"], table  # no header: (file, label) rows
        index = {c: i for i, c in enumerate(columns)}
        rows_of = lambda fc, lc: [(row[index[fc]] if len(row) > index[fc] else None,  # noqa: E731
                                   row[index[lc]] if len(row) > index[lc] else None) for row in body]
    file_col, label_col = _pick_column(columns, FILE_NAME_COLUMNS), _pick_column(columns, LABEL_COLUMNS)
    if file_col is None or label_col is None:
        found = ", ".join(f"'{c}'" for c in columns) or "none"
        raise StudioError(
            f"'{path.name}' needs a file-name column ({' or '.join(FILE_NAME_COLUMNS[:2])}) and a label column "
            f"({' or '.join(LABEL_COLUMNS[:3])}); its columns are {found}. Rename them and try again.")
    return [("" if f is None else str(f).strip(), "" if lab is None else str(lab).strip())
            for f, lab in rows_of(file_col, label_col)]


def _scan_labels_file(folder: Path, labels_path: Path, rel) -> tuple[list[tuple[Path, str]], list[SkippedFile]]:
    """Images named in a labels file (paths relative to its folder) with their class names."""
    pairs: list[tuple[Path, str]] = []
    skipped: list[SkippedFile] = []
    seen: set[Path] = set()
    base = folder.resolve()
    for file_name, label in read_labels_file(labels_path):
        parts = _member_parts(normalise_class_name(file_name))
        if not parts or ".." in parts:
            skipped.append(SkippedFile(file_name or "(empty)", f"file name in {labels_path.name} is empty or leaves the folder"))
            continue
        path = folder.joinpath(*parts)
        if not path.resolve().is_relative_to(base):
            skipped.append(SkippedFile(file_name, f"file name in {labels_path.name} leaves the folder"))
            continue
        if path in seen:
            skipped.append(SkippedFile(rel(path), f"listed more than once in {labels_path.name} (first row used)"))
            continue
        if not path.is_file():
            skipped.append(SkippedFile(rel(path), f"listed in {labels_path.name} but not found"))
            continue
        seen.add(path)
        if not label:
            skipped.append(SkippedFile(rel(path), f"has no label in {labels_path.name}"))
            continue
        problem = _image_file_problem(path)
        if problem:
            skipped.append(SkippedFile(rel(path), problem))
            continue
        pairs.append((path, normalise_class_name(label)))
    for path in _walk_visible_files(folder):
        if path not in seen and path.name not in LABEL_FILE_NAMES:
            skipped.append(SkippedFile(rel(path), f"not listed in {labels_path.name}"))
    return pairs, skipped


def _scan_class_dirs(folder: Path, rel) -> tuple[list[tuple[Path, str]], list[SkippedFile], list[str]]:
    """Images in the class folders of `folder` (any depth inside a class folder), by class name;
    and every class folder's name (NFC), those without images included."""
    pairs: list[tuple[Path, str]] = []
    skipped = [SkippedFile(rel(p), "not inside a class folder") for p in _visible_files(folder)]
    for d in _visible_subdirs(folder):
        name = normalise_class_name(d.name)
        for path in _walk_visible_files(d):
            problem = _image_file_problem(path)
            if problem:
                skipped.append(SkippedFile(rel(path), problem))
            else:
                pairs.append((path, name))
    return pairs, skipped, [normalise_class_name(d.name) for d in _visible_subdirs(folder)]


def _scan_labelled(folder: Path, rel) -> tuple[list[tuple[Path, str]], list[SkippedFile], bool, set[str]]:
    """Either a labels file's images or the class folders' images; True when a labels file was used;
    and the class names found (class folders without images count)."""
    labels_path = _labels_file(folder)
    if labels_path is not None:
        pairs, skipped = _scan_labels_file(folder, labels_path, rel)
        return pairs, skipped, True, {n for _, n in pairs}
    pairs, skipped, names = _scan_class_dirs(folder, rel)
    return pairs, skipped, False, set(names)


def _descend_wrappers(root: Path, rel, skipped: list[SkippedFile], notes: list[str]) -> Path:
    """Go down through single wrapper folders (`dataset/dataset/cats/...`) to the level with the data.

    A level is a wrapper when it has no labels file and exactly one visible folder, which itself
    holds folders (or a labels file). A single class folder of images stays put (and is then
    refused as one class). Stray files beside a wrapper are listed as skipped.
    """
    level = root
    for _ in range(MAX_WRAPPER_DEPTH):
        if _labels_file(level) is not None:
            break
        subdirs = _visible_subdirs(level)
        if len(subdirs) != 1 or not (_visible_subdirs(subdirs[0]) or _labels_file(subdirs[0])):
            break
        skipped += [SkippedFile(rel(p), "not inside a class folder") for p in _visible_files(level)]
        level = subdirs[0]
    if level != root:
        notes.append(f"Images found inside the wrapper folder '{rel(level)}/'.")
    return level


def _looks_like_a_lone_split(folder: Path, split: str, subdirs: list[Path], level: Path) -> bool:
    """Whether `folder`, the one folder at `level` named like a split (`split`: "train", "val" or
    "test"), is a split folder of class folders rather than a class whose images sit in sub-folders: it
    holds two or more folders, no labels file names the classes at `level`, and it is named like a
    training or validation split (train/, valid/, dev/ ...: rarely a class's name) or its folders are
    named like the folders beside it (test/cats beside cats/; a class "test" sorted into test/2019 and
    test/2020 stays a class)."""
    inner = {d.name.lower() for d in _visible_subdirs(folder)}
    if len(inner) < 2 or _labels_file(level):
        return False
    return split != "test" or bool(inner & {d.name.lower() for d in subdirs if d is not folder})


def _split_folders(level: Path) -> dict[str, Path] | None:
    """{"train": path, "val": ..., "test": ...} when `level` holds split folders, else None.

    Raises StudioError for layouts that mix split folders with other folders, name one split
    twice (val/ and valid/), or give no train/ folder.
    """
    subdirs = _visible_subdirs(level)
    named = {d: SPLIT_FOLDER_NAMES.get(d.name.lower()) for d in subdirs}
    split_dirs = [d for d in subdirs if named[d]]
    if len(split_dirs) == 1 and len(subdirs) > 1 and _looks_like_a_lone_split(split_dirs[0], named[split_dirs[0]], subdirs,
                                                                           level):
        # one split folder holding class folders beside other folders: read as class folders, its classes
        # would become one class named after the split (train/cats and train/dogs both "train")
        d, others = split_dirs[0], [o.name + "/" for o in subdirs if o is not split_dirs[0]]
        inner = [f"{i.name}/" for i in _visible_subdirs(d)]
        raise StudioError(
            f"This dataset has a split folder ({d.name}/, holding {', '.join(inner[:4])}{' ...' if len(inner) > 4 else ''}) "
            f"beside other folders ({', '.join(others[:4])}{' ...' if len(others) > 4 else ''}) at the same level. Use either "
            "split folders (train/, val/, test/, each holding the same class folders) or class folders only, then try "
            f"again. If '{d.name}' is one of your classes, put its images directly in {d.name}/, not in sub-folders.")
    if len(split_dirs) < 2:
        return None  # at most one folder named like a split: class folders (a class may be called "test")
    if not any(_visible_subdirs(d) or _labels_file(d) for d in split_dirs):
        return None  # "train"/"test" hold images directly: they are classes, not splits
    others = [d.name for d in subdirs if not named[d]]
    shown = ", ".join(f"{d.name}/" for d in split_dirs)
    if others:
        raise StudioError(
            f"This dataset mixes split folders ({shown}) with other folders "
            f"({', '.join(o + '/' for o in others)}) at the same level. Use either split folders "
            "(train/, val/, test/, each holding the same class folders) or class folders only, then try again.")
    result: dict[str, Path] = {}
    for d in split_dirs:
        if named[d] in result:
            raise StudioError(
                f"The split folders '{result[named[d]].name}/' and '{d.name}/' both look like the "
                f"{'validation' if named[d] == 'val' else named[d]} split. Keep one of them (merge the images), then try again.")
        result[named[d]] = d
    if "train" not in result:
        raise StudioError(
            f"This dataset has split folders ({shown}) but no train/ folder: the studio needs training "
            "images. Rename the folder that holds them to train/ (each split holding the same class folders).")
    return result


def scan_dataset(root: Path) -> DatasetScan:
    """Find the dataset's layout under `root`, its classes (NFC, sorted) and image files.

    Layouts, below any single wrapper folders (`_descend_wrappers`):
      - class folders: `cats/…`, `dogs/…` (images may sit in sub-folders of a class folder);
      - pre-split: `train/`, `val/` (or `valid/`, `validation/`), `test/`, each with the same
        class folders, or each with its own labels file; the given split is returned per item;
      - a labels file (`metadata.csv`, `metadata.jsonl`, `labels.csv`) naming each image and its
        label, as Hugging Face's `imagefolder` reads it.
    Files that are not images (by extension, else by content) and files outside class folders
    are listed as skipped; hidden files and OS clutter are ignored silently; so are
    `safe_extract_zip`'s own manifest entries, which are added to the skipped files and warnings.
    Readability is not checked here (that happens while decoding).
    """
    root = Path(root)
    if not root.is_dir():
        raise StudioError(f"Could not find the folder '{root}'. Check the path and try again.")
    skipped, warnings_out = read_extract_manifest(root)
    notes: list[str] = [n for n in (ignored_note(*ignored_files(root)),) if n]
    rel = lambda p: p.relative_to(root).as_posix()  # noqa: E731
    level = _descend_wrappers(root, rel, skipped, notes)
    split_dirs = _split_folders(level)
    if split_dirs is None:
        pairs, found_skipped, used_labels, names = _scan_labelled(level, rel)
        skipped += found_skipped
        classes = sorted(names)
        position = {c: i for i, c in enumerate(classes)}
        layout = LAYOUT_LABELS_FILE if used_labels else LAYOUT_CLASS_FOLDERS
        if used_labels:
            notes.append(f"Labels read from '{rel(_labels_file(level))}'.")
        else:
            notes += _nested_class_notes(level, pairs)
        return DatasetScan(layout, classes, [(p, position[n]) for p, n in pairs], skipped, None, notes, warnings_out)

    per_split: dict[str, list[tuple[Path, str]]] = {}
    any_labels = False
    skipped += [SkippedFile(rel(p), "not inside a split folder") for p in _visible_files(level)]
    for split in SPLITS:
        if split not in split_dirs:
            continue
        pairs, found_skipped, used_labels, _ = _scan_labelled(split_dirs[split], rel)
        any_labels |= used_labels
        per_split[split] = pairs
        skipped += found_skipped
        if not pairs:
            loose = sum(1 for s in found_skipped if s.reason == "not inside a class folder")
            what = f"its {loose} files are not in class folders (unlabelled)" if loose else "it holds no images"
            warnings_out.append(f"The split folder '{split_dirs[split].name}/' was not used: {what}.")
    classes = sorted({name for pairs in per_split.values() for _, name in pairs})
    position = {c: i for i, c in enumerate(classes)}
    given = ", ".join(f"{split_dirs[s].name}/" for s in SPLITS if s in split_dirs)
    notes.append(f"The split given by the folders {given} is used as is.")
    for split, pairs in per_split.items():
        present = {n for _, n in pairs}
        missing = [c for c in classes if c not in present]
        if pairs and missing:
            warnings_out.append(f"The split folder '{split_dirs[split].name}/' has no images of class "
                                f"{', '.join(repr(c) for c in missing)}.")
    items = [(p, position[n]) for s in SPLITS for p, n in per_split.get(s, [])]
    splits = [s for s in SPLITS for _ in per_split.get(s, [])]
    layout = LAYOUT_PRE_SPLIT_LABELS if any_labels else LAYOUT_PRE_SPLIT
    return DatasetScan(layout, classes, items, skipped, splits, notes, warnings_out)


def _nested_class_notes(level: Path, pairs: list[tuple[Path, str]], shown: int = 4) -> list[str]:
    """One note on the class folders whose images sit in sub-folders of their own (animals/cats/, animals/dogs/):
    they form one class, named after the top folder, which a user who meant each sub-folder as a class should
    be told; when every class holds the same sub-folders (2019/, 2020/ in each: a grouping such as a year or a
    place), the note says that reads as a grouping inside each class, and gives no advice to move them.
    `pairs`: (image path, class name) under `level`, the folder holding the class folders. [] when no class
    has sub-folders."""
    subs: dict[str, set[str]] = {}
    for path, name in pairs:
        parts = path.relative_to(level).parts
        if len(parts) > 2:  # class/sub/.../image
            subs.setdefault(name, set()).add(parts[1])
    if not subs:
        return []

    def folders(found: set[str]) -> str:
        return first_and_more([f"{d}/" for d in sorted(found)], shown)

    classes = {name for _, name in pairs}
    kinds = {frozenset(found) for found in subs.values()}
    if len(subs) == len(classes) > 1 and len(kinds) == 1:  # the same grouping in every class
        return [f"Every class holds the same sub-folders ({folders(set(next(iter(kinds))))}): their images count "
                "for the class folder above them, so these sub-folders group images within each class (a year, a "
                "place, a camera), which is fine."]
    listed = first_and_more([f"'{name}' ({folders(found)})" for name, found in sorted(subs.items())], shown, "; ",
                            "; and {} more classes")
    return [f"{plural(len(subs), 'class', 'classes')} hold{'s' if len(subs) == 1 else ''} images in sub-folders: "
            f"{listed}. Each such class takes its sub-folders' images as one class. To train a sub-folder as a "
            "class of its own, put it beside the other class folders."]


def scan_class_folders(root: Path) -> tuple[list[str], list[tuple[Path, int]], list[SkippedFile]]:
    """(sorted class names, [(image path, label)], skipped files) of `scan_dataset(root)`, any layout."""
    scan = scan_dataset(root)
    return scan.classes, scan.items, scan.skipped


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


def _centre_square(width: int, height: int, at: float = 0.5) -> tuple[int, int, int, int]:
    """The box (left, top, right, bottom; pixels) of the largest square of a width x height picture, placed `at`
    along its longer side (0 the left or top end, 0.5 the centre, as training crops, 1 the right or bottom end)."""
    side = min(width, height)
    left, top = int((width - side) * at), int((height - side) * at)  # at 0.5: (width - side) // 2, as before
    return left, top, left + side, top + side


FITS = ("crop", "pad", "stretch")  # how a picture becomes the model's square: its middle square, the whole picture
# padded with grey bars, or the whole picture stretched to the square (a spectrogram's usual treatment)
PAD_RGB = tuple(round(255 * m) for m in IMAGENET_MEAN)  # the pad's colour, (124, 116, 104): 0 once normalised


def fitted_size(width: int, height: int, side: int) -> tuple[int, int]:
    """(width, height) in pixels of a width x height picture resized so that its longer side is `side`, each side at
    least 1: the size `fit_square` pads, `upright_preview` shows and engine.predict.describe_decoding words."""
    scale = side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def fit_square(rgb: Image.Image, size: int, fit: str = "crop", crop_at: float = 0.5) -> Image.Image:
    """`rgb` as the model's size x size square (PIL RGB), resized bilinearly (antialiased, as torchvision's
    Resize): `fit` "crop" keeps its largest square, placed `crop_at` along the longer side (`_centre_square`; the
    same as "shorter side to size, then centre crop"); "pad" keeps the whole picture, its longer side at `size`,
    centred on a square of PAD_RGB (letterboxing: a wide photo's subject at one end stays in); "stretch" resizes the
    whole picture to the square, each side by its own factor (a 4:1 spectrogram's time axis is squeezed 4 times more
    than its frequency axis, and no pixel of the square is grey). Raises ValueError for another `fit`."""
    if fit == "crop":
        return rgb.resize((size, size), Image.Resampling.BILINEAR, box=_centre_square(*rgb.size, at=crop_at),
                          reducing_gap=3.0)
    if fit == "stretch":
        return rgb.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    if fit != "pad":
        raise ValueError(f"fit must be one of {', '.join(FITS)} (got {fit!r})")
    w, h = fitted_size(rgb.width, rgb.height, size)
    square = Image.new("RGB", (size, size), PAD_RGB)
    square.paste(rgb.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=3.0), ((size - w) // 2, (size - h) // 2))
    return square


def pad_mask(images_u8: torch.Tensor) -> torch.Tensor:
    """Which pixels of uint8 images [N, 3, H, W] are exactly PAD_RGB [N, H, W] (bool, on the images' device): a
    padded picture's bars (`fit_square`), which `picture_boxes` and `is_greyscale` leave out and greyscale copies
    keep in colour (`engine.augment.training_batch`)."""
    return (images_u8 == torch.tensor(PAD_RGB, dtype=torch.uint8, device=images_u8.device).view(1, 3, 1, 1)).all(1)


def picture_boxes(images_u8: torch.Tensor) -> list[tuple[int, int, int, int]]:
    """(top, bottom, left, right) pixel bounds (bottom and right exclusive) of the picture inside each square that
    `fit_square` padded ("pad"), for uint8 images [N, 3, H, W], in one pass: rows and columns at the edges wholly of
    PAD_RGB (`pad_mask`) are the bars. The whole image for one that is all PAD_RGB (or has no bars)."""
    bar = pad_mask(images_u8)
    h, w = int(images_u8.shape[-2]), int(images_u8.shape[-1])
    rows, cols = (~bar.all(2)).int(), (~bar.all(1)).int()  # [N, H], [N, W]: 1 where a row or column shows picture
    top, bottom = rows.argmax(1), h - rows.flip(1).argmax(1)
    left, right = cols.argmax(1), w - cols.flip(1).argmax(1)
    return [(int(t), int(b), int(lo), int(r)) if shown else (0, h, 0, w)
            for t, b, lo, r, shown in zip(top, bottom, left, right, rows.any(1).tolist())]


def picture_box(image_u8: torch.Tensor) -> tuple[int, int, int, int]:
    """`picture_boxes` of one uint8 image [3, S, S]."""
    return picture_boxes(image_u8[None])[0]


GREY_STEP = 6  # grey levels: a pixel whose R, G and B differ by at most this is grey (JPEG's colour wobble)
GREY_SHARE = 0.98  # a picture with at least this share of grey pixels is greyscale (a night shot, a scan)


def is_greyscale(images_u8: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Which uint8 images [N, 3, S, S] are greyscale [N] (bool): at least GREY_SHARE of their pixels have R, G and
    B within GREY_STEP of each other, as an infrared night shot, a black-and-white photo or a scan saved in colour.
    Pixels of exactly PAD_RGB (a padded picture's bars, `fit_square`) are left out; an image of nothing else is
    not greyscale."""
    out = []
    for i in range(0, len(images_u8), chunk):
        x = images_u8[i:i + chunk].cpu()
        grey = (x.amax(1).to(torch.int16) - x.amin(1).to(torch.int16)) <= GREY_STEP  # [n, S, S]
        picture = ~pad_mask(x)
        shown = picture.flatten(1).sum(1)
        out.append((grey & picture).flatten(1).sum(1) >= (GREY_SHARE * shown).clamp_min(1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def _imagehash():
    """The imagehash module, or None when it is not installed (near duplicates are then not searched)."""
    try:
        import imagehash  # imports scipy: only when a dataset is decoded
    except ImportError:
        return None
    return imagehash


def phash64(img: Image.Image) -> int:
    """64-bit DCT perceptual hash (imagehash.phash, Zauner 2010: 32x32 greyscale, 8x8 low frequencies vs
    their median; the first bit the lowest frequency) as an int; 0 without imagehash."""
    imagehash = _imagehash()
    if imagehash is None:
        return 0
    bits = imagehash.phash(img).hash.flatten()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def _oriented_rgb(img: Image.Image) -> Image.Image:
    img.load()
    try:
        img = ImageOps.exif_transpose(img)  # phone photos store their rotation in EXIF
    except Exception:  # a broken EXIF block should not cost us the image
        pass
    return _to_rgb(img)


def upright_preview(raw: bytes, max_px: int = 192) -> np.ndarray:
    """The whole picture of an image file's bytes, upright (EXIF) and in RGB as `decode_image` reads it, shrunk to at
    most `max_px` on its longer side: uint8 [H, W, 3]. Raises ValueError with the decoder's plain reason for bytes
    that are not a readable image."""
    try:
        with open_image(raw) as img:
            if img.format in ("JPEG", "MPO"):  # a phone photo: decoded at a fraction of its size, as _decode does
                img.draft(None, (2 * max_px, 2 * max_px))
            rgb = _oriented_rgb(img)
    except Exception as err:  # noqa: BLE001 - as decode_image says it
        raise ValueError(_decode_reason(err)) from err
    small = rgb.resize(fitted_size(rgb.width, rgb.height, min(max_px, max(rgb.size))), Image.Resampling.BILINEAR,
                       reducing_gap=3.0)
    return np.asarray(small, dtype=np.uint8).copy()


def outline_square(preview: np.ndarray, crop_at: float = 0.5) -> np.ndarray:
    """A copy of `preview` (`upright_preview`: uint8 [H, W, 3]) with the square the model sees (`_centre_square` at
    `crop_at`) outlined in red, 2 px: Try it showed only the square, and a teacher could not show a class what was
    cut away. Drawn per call (microseconds), so one preview serves every crop position."""
    from PIL import ImageDraw

    small = Image.fromarray(preview)
    left, top, right, bottom = _centre_square(*small.size, at=crop_at)
    ImageDraw.Draw(small).rectangle((left, top, right - 1, bottom - 1), outline=(230, 30, 30), width=2)
    return np.asarray(small, dtype=np.uint8).copy()


def exif_turned(img: Image.Image) -> bool:
    """Whether the picture's EXIF orientation turns it by 90 degrees (tags 5-8), so that it is seen with its width
    and height swapped; False without a readable tag."""
    try:
        return img.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    except Exception:  # a broken EXIF block: _oriented_rgb keeps the picture as stored
        return False


def _thumbnail(rgb: Image.Image) -> np.ndarray:
    """float32 [3, COPY_THUMB, COPY_THUMB]: the centre square's area means (0-255), whatever data.fit (duplicate
    groups, and so the split, are the same both ways), from
    a 64 px decode of it (the hash's fixed size; Try it's copy search takes its thumbnails from the run-size
    decode, `engine.predict.copy_keys`)."""
    square = rgb.resize((64, 64), Image.Resampling.BILINEAR, box=_centre_square(*rgb.size), reducing_gap=3.0)
    small = square.resize((COPY_THUMB, COPY_THUMB), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32).transpose(2, 0, 1).copy()


def open_image(raw: bytes) -> Image.Image:
    """Pillow's image of `raw` (any of PIL_FORMATS). A JPEG is opened by Pillow's JPEG plugin itself, without
    Image.open's decompression-bomb check (about 89 million pixels: 108 and 200 MP phone photos failed it, or
    put its warning in the server's log): libjpeg decodes it at up to 1/8 scale per side (draft), and `_decode`
    checks that picture's size against its own limit. Other formats keep Pillow's check."""
    if raw[:3] == b"\xff\xd8\xff":
        from PIL import JpegImagePlugin

        try:
            return JpegImagePlugin.JpegImageFile(io.BytesIO(raw))
        except Exception:  # noqa: BLE001 - a damaged JPEG: Image.open below says why in its own words
            pass
    return Image.open(io.BytesIO(raw), formats=PIL_FORMATS)


def _decode(raw: bytes, size: int, max_pixels: int, want_hash: bool = False, crop_at: float = 0.5,
            fit: str = "crop") -> tuple[torch.Tensor, int, np.ndarray | None, tuple[int, int]]:
    """(uint8 [3,size,size] image, perceptual hash, thumbnail (`_thumbnail`), the picture's (width, height) in
    pixels, upright, and how many pictures the file holds (MULTI_PAGE_FORMATS; 1 for others)) from a file's bytes;
    the hash and thumbnail with `want_hash` only (else 0 and None), both from the same picture whatever `size` and
    `fit` are. The square is made by `fit_square` (`fit` "crop": the square kept sits `crop_at` along the longer
    side, training's 0.5; "pad" and "stretch": the whole picture)."""
    phash, thumb = 0, None
    if not raw:  # said as it is: "not a readable image (unknown format or damaged file)" sent a student looking
        raise ValueError("empty file (0 bytes)")
    with open_image(raw) as img:
        width, height = img.size
        is_jpeg = img.format in ("JPEG", "MPO")
        if is_jpeg:
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: much faster for big photos. Keep at
            # least twice the target on the shorter side so the final resize still antialiases.
            # (a padded picture, `fit` "pad", is resized by its longer side: that side is kept at twice the target;
            # a stretched one keeps both sides at twice the target or more, as a crop does)
            shorter = max(width, height) if fit == "pad" else min(width, height)
            img.draft(None, (max(1, width * 2 * size // shorter), max(1, height * 2 * size // shorter)))
        if img.size[0] * img.size[1] > max_pixels:  # what is decoded: a JPEG's draft, else the whole image
            scaled = f"; decoded at reduced scale still {img.size[0]}x{img.size[1]}" if img.size != (width, height) else ""
            raise ValueError(f"image is too large ({width}x{height} pixels{scaled}, limit {max_pixels:,})")
        turned = exif_turned(img)  # read before decoding: an EXIF turn of 90 degrees swaps the sides
        rgb = _oriented_rgb(img)
        upright = (height, width) if turned else (width, height)  # the file's own size, as it is seen
        pages = max(1, int(getattr(img, "n_frames", 1))) if img.format in MULTI_PAGE_FORMATS else 1
        if want_hash and not is_jpeg:
            phash, thumb = phash64(rgb), _thumbnail(rgb)
        small = fit_square(rgb, size, fit, crop_at)
    if want_hash and is_jpeg:
        # Hash a fixed draft (not the size-dependent one above), so the hash, and so the duplicate
        # groups and the split, are the same whatever image size a run decodes at.
        with open_image(raw) as img:
            img.draft(None, (64, 64))
            fixed = _oriented_rgb(img)
            phash, thumb = phash64(fixed), _thumbnail(fixed)
    image = torch.from_numpy(np.array(small, dtype=np.uint8)).permute(2, 0, 1).contiguous()
    return image, phash, thumb, upright, pages


def _decode_reason(err: Exception) -> str:
    if isinstance(err, ValueError) and not isinstance(err, UnicodeError):
        return str(err)
    if isinstance(err, UnidentifiedImageError):
        return "not a readable image (unknown format or damaged file)"
    if isinstance(err, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return "image is too large (possible decompression bomb)"
    if isinstance(err, OSError) and not str(err).strip().startswith(("image file is truncated", "broken data")) \
            and err.errno is not None:
        return f"could not be read ({err.strerror or err})"
    detail = str(err).strip().rstrip(".") or type(err).__name__
    for start, words in _DECODER_WORDS:
        if detail.lower().startswith(start):
            return words
    return f"damaged or unsupported image ({detail})"


# Pillow's messages for damaged files, in plain words (the reasons list shows them beside the user's file name)
_DECODER_WORDS = (
    ("truncated file read", "damaged image (the file ends too early, as after an interrupted copy or download)"),
    ("image file is truncated", "damaged image (the file ends too early, as after an interrupted copy or download)"),
    ("broken data stream", "damaged image (its data is broken)"),
    ("could not create decoder object", "damaged image (its data could not be decoded)"),
)


def decode_image(path, size: int, max_pixels: int = MAX_IMAGE_PIXELS, crop_at: float = 0.5,
                 fit: str = "crop") -> torch.Tensor:
    """Decode one image file to uint8 [3,size,size] (any mode -> RGB; shorter side to `size`, centre crop; with
    `fit` "pad" the whole picture, longer side to `size`, padded to a square; "stretch" the whole picture resized to
    the square: `fit_square`).

    `crop_at` places the square along a non-square picture's longer side: 0 its left (or top) end, 0.5 the
    centre (training's crop), 1 its right (or bottom) end; Try it lets a user pick it for a photo whose subject
    is off centre. The format is found from the content (any of PIL_FORMATS, whatever the extension). Raises
    ValueError with a short, plain reason (shown in the skipped-files report) for anything that
    is not a readable image, including decompression bombs.
    """
    return decode_with_header(path, size, max_pixels, crop_at, fit)[0]


def decode_with_header(path, size: int, max_pixels: int = MAX_IMAGE_PIXELS, crop_at: float = 0.5,
                       fit: str = "crop") -> tuple[torch.Tensor, tuple[int, int], int]:
    """`decode_image`'s uint8 [3, size, size] square, the picture's own (width, height) in pixels, upright (EXIF),
    and how many pictures (pages, frames) the file holds, read in the same pass: `predict` says of a file inside a
    zip, gone once answered, that it is several times larger or smaller than the training pictures, or that only
    its first page was answered. Raises ValueError as `decode_image` does."""
    try:
        image, _, _, upright, pages = _decode(Path(path).read_bytes(), size, max_pixels, crop_at=crop_at, fit=fit)
    except Exception as err:  # truncated data, decoder errors, odd modes: skip, never crash
        raise ValueError(_decode_reason(err)) from err
    return image, upright, pages


def _decode_or_reason(args: tuple[Path, int, int, str]) -> tuple[torch.Tensor, str, int, np.ndarray, tuple, int] | str:
    """(image, sha256 of the file's bytes, perceptual hash, thumbnail, upright (width, height), pictures in the file),
    or why the file was skipped. `args`: (path, size, max_pixels, fit)."""
    path, size, max_pixels, fit = args
    try:
        raw = path.read_bytes()
        image, phash, thumb, upright, pages = _decode(raw, size, max_pixels, want_hash=True, fit=fit)
        return image, hashlib.sha256(raw).hexdigest(), phash, thumb, upright, pages
    except Exception as err:
        return _decode_reason(err)


def _decode_all(
    paths: Sequence[Path], size: int, progress: ProgressFn | None, max_pixels: int = MAX_IMAGE_PIXELS,
    fit: str = "crop",
) -> tuple[torch.Tensor, list[bool], list[str | None], list[str], np.ndarray, np.ndarray, np.ndarray,
           np.ndarray]:
    """Decode `paths` into one preallocated uint8 [N,3,S,S] tensor with a small thread pool, each picture made
    square by `fit_square` with `fit`.

    PIL releases the GIL while decoding, so a few threads give a real speed-up. Returns the
    tensor, which rows succeeded, the failure reason per row (None when it succeeded), and per
    row the sha256 of the file's bytes ("" on failure), its 64-bit perceptual hash (uint64), its
    thumbnail (float32 [N, 3, COPY_THUMB, COPY_THUMB], zeros on failure), the picture's upright
    (width, height) in pixels (int64 [N, 2], zeros on failure) and how many pictures (pages, frames) the file holds
    (int64 [N], MULTI_PAGE_FORMATS; 1 for others, 0 on failure).
    """
    images = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    ok = [False] * len(paths)
    reasons: list[str | None] = [None] * len(paths)
    shas = [""] * len(paths)
    phashes = np.zeros(len(paths), dtype=np.uint64)
    thumbs = np.zeros((len(paths), 3, COPY_THUMB, COPY_THUMB), dtype=np.float32)
    sizes = np.zeros((len(paths), 2), dtype=np.int64)
    pages = np.zeros(len(paths), dtype=np.int64)
    workers = min(8, usable_cpus())  # a container's quota counted
    # The warnings filter is process-wide; setting it once here (not per thread) avoids races
    # between threads entering/leaving catch_warnings. PIL then raises instead of warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
            for i, result in enumerate(pool.map(_decode_or_reason, [(p, size, max_pixels, fit) for p in paths])):
                if isinstance(result, str):
                    reasons[i] = result
                else:
                    images[i], shas[i], phashes[i], thumbs[i], sizes[i], pages[i] = result
                    ok[i] = True
                if progress is not None and ((i + 1) % 64 == 0 or i + 1 == len(paths)):
                    progress(i + 1, len(paths))
    return images, ok, reasons, shas, phashes, thumbs, sizes, pages


# --------------------------------------------------------------------------------------------
# Sources, fingerprints and the decoded-dataset cache
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Decoded:
    """One source decoded at one size: everything before validation and splitting (rows = readable images)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    skipped: tuple[SkippedFile, ...]
    paths: tuple[str, ...] = ()  # relative to the dataset root, '/' separators
    splits: tuple[str, ...] | None = None  # the split the folders give each row, or None
    sha256: tuple[str, ...] = ()
    phash: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    thumbs: np.ndarray | None = None  # float32 [N, 3, COPY_THUMB, COPY_THUMB], from the picture (not the run size)
    sizes: np.ndarray | None = None  # int64 [N, 2]: each picture's upright (width, height) in pixels
    taken: np.ndarray | None = None  # float64 [N]: when each picture was taken, seconds (NaN: unknown; bursts.shot_time)
    cameras: tuple[str, ...] = ()  # the camera of each picture ("" unknown)
    original: np.ndarray | None = None  # bool [N]: each time is the shutter's (DateTimeOriginal), not an editor's
    layout: str = LAYOUT_CLASS_FOLDERS
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    # what is measured from these pictures alone, once for every load of the cached decoding (the Data page loads
    # the dataset on each rerun): the copy groups (`_copy_groups`) and which pictures are greyscale
    memo: dict = field(default_factory=dict, repr=False, compare=False)


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


class NotDecoded(StudioError):
    """`load_dataset(..., cached_only=True)` on a source this process does not hold decoded."""


def _memoised_fingerprint(source) -> tuple[str, str] | None:
    """(kind, fingerprint) of a zip whose content hash this process has already computed, read
    without hashing; None for anything else (a folder's fingerprint needs a walk of its files)."""
    try:
        memo_key = _digest_key(Path(source).expanduser())
    except OSError:
        return None
    with _cache_lock:
        digest = _zip_digests.get(memo_key)
    return None if digest is None else ("zip", digest)


def is_decoded(source, image_size: int, limits: ZipLimits = ZipLimits(), fit: str = "crop") -> bool:
    """Whether `source` (a zip path) is held decoded at `image_size` px (and `fit`) in this process, so
    `load_dataset` with those settings returns without decoding an image. Costs a stat: it hashes
    nothing and walks no folder (a folder, or a zip not hashed yet in this process, is False).
    Never raises."""
    known = _memoised_fingerprint(source)
    if known is None:
        return False
    with _cache_lock:
        return (*known, image_size, limits, fit) in _cache


def _digest_key(path: Path) -> tuple[str, int, int]:
    """What a zip's memoised content hash is filed under: its resolved path, size and mtime. OSError if gone."""
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def _zip_digest(path: Path) -> str:
    memo_key = _digest_key(path)
    with _cache_lock:
        if memo_key in _zip_digests:
            return _zip_digests[memo_key]
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()[:EXTRACTED_DIGITS]  # its extraction's folder name
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
        raise StudioError(f"Could not find '{source}': check the path (a dataset moved, renamed or deleted since it "
                          "was used is not found there).")
    if path.is_dir():
        return _Source(path, "dir", _folder_fingerprint(path))
    if not zipfile.is_zipfile(path):
        raise _not_a_dataset(path)
    return _Source(path, "zip", _zip_digest(path))


def source_fingerprint(source) -> str:
    """A dataset source's content fingerprint, as the decode cache keys it (24 hex digits): a zip's SHA-256, a
    folder's files' relative paths, sizes and modification times. Raises StudioError when `source` is missing
    or neither a folder nor a zip."""
    return _identify_source(source).fingerprint


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


def _skipped_summary(skipped: Sequence[SkippedFile], limit: int = 5) -> str:
    """' Skipped: a.jfif (reason); ... and N more.' for a refusal message ('' when nothing was skipped)."""
    if not skipped:
        return ""
    shown = first_and_more([f"{s.path} ({s.reason})" for s in skipped], limit, "; ", "; and {} more")
    return f" Skipped files: {shown}."


def _require_class_folders(scan: DatasetScan, kind: str = "zip") -> None:
    """Refuse, before any decoding, uploads that cannot form at least two classes of images; the advice
    fits where they came from (`kind`: "zip" or "dir", a folder on the server)."""
    classes, items, skipped = scan.classes, scan.items, scan.skipped
    folder = kind == "dir"
    what_it_is, again = ("the folder", "and try again") if folder else ("the upload", "zip them and try again")
    if not classes:
        loose_images = [s for s in skipped if s.reason == "not inside a class folder" and _is_image_name(Path(s.path))]
        if loose_images:
            raise DatasetError(
                "The images are not inside class folders. Put the images of each class in its own "
                "folder (for example cats/ and dogs/), or add a labels.csv with the columns file_name and "
                f"label, {again}.", skipped, scan.notes)
        if skipped and not any(s.reason == "not inside a class folder" for s in skipped):
            raise DatasetError(
                "No usable image was found." + _skipped_summary(skipped) + " Supported formats: "
                f"{', '.join(sorted(e.lstrip('.') for e in IMAGE_EXTENSIONS))}.", skipped, scan.notes)
        what = f"{what_it_is} is empty" if not skipped else f"{what_it_is} holds no folders"
        raise DatasetError(
            f"No class folders were found ({what}). Put one folder per class with images "
            f"inside (for example cats/ and dogs/), {again}.", skipped, scan.notes)
    if not items:
        inside = [s for s in skipped if s.reason.startswith("a sound file")]  # in a class folder (not "not inside")
        sounds = sorted({Path(s.path).suffix.lower() for s in inside})
        if 2 * len(inside) > len(skipped):  # a bioacoustics researcher's zip of recordings: what to make of them
            raise DatasetError(
                f"The class folders hold sound files ({', '.join(sounds)}), not pictures: the studio learns from "
                "images. Make a spectrogram picture (PNG or JPEG) of each recording with your audio tool, put them "
                "in the same class folders and try again.", skipped, scan.notes)
        found = ", ".join(sorted({s.reason for s in skipped})) or "the folders are empty"
        raise DatasetError(
            f"No image files were found in the class folders ({found}). Supported formats: "
            f"{', '.join(sorted(e.lstrip('.') for e in IMAGE_EXTENSIONS))}. Add images and "
            + "try again.",
            skipped, scan.notes)
    if len(classes) < 2:
        raise DatasetError(  # a teacher's zip of unsorted pictures in one folder read as one class
            f"Found only one class folder ('{classes[0]}'). Training needs at least 2 classes, each in its own "
            f"folder (for example cats/ and dogs/): if '{classes[0]}' holds pictures of several kinds, sort them "
            "into one folder per kind; if it is one class, add a folder for each other class; "
            + ("then try again." if folder else "zip those folders and try again.")
            + _skipped_summary(skipped), skipped, scan.notes)


# the formats whose extra pictures are the user's own (pages, frames), by the format Pillow finds in a file's content:
# a phone's JPEG (MPO) carries a second picture that is a depth or gain map, not a page
MULTI_PAGE_FORMATS = ("TIFF", "GIF", "WEBP")
MULTI_PAGE_NAMED = 3  # files a multi-page note names


def multi_page_note(files: Sequence[tuple[str, int]]) -> str | None:
    """For (the user's name, pictures in the file) of each decoded file, as the decoding counted them (Pillow's
    n_frames for MULTI_PAGE_FORMATS, whatever the file's name): which hold more than one picture, of which only the
    first is used (decoding reads a file's first page or frame, as Pillow opens it), in words; None when none does.
    A geology instructor's 3-page TIFF (crossed and plane polarised light, a focus stack) was read as one picture
    without a word."""
    many = [(name, n) for name, n in files if n > 1]
    if not many:
        return None
    kind = "pages of a TIFF, frames of an animation"
    if len(many) == 1:
        return (f"{many[0][0]} holds {many[0][1]} pictures ({kind}): only the first is used. To train on the others, "
                "save each as a file of its own.")
    named = first_and_more([f"{name}, {n} pictures" for name, n in many], MULTI_PAGE_NAMED, "; ", "; and {} more")
    return (f"{len(many)} files hold more than one picture ({kind}): only the first of each is used ({named}). "
            "To train on the others, save each as a file of its own.")


def _decoded(source, work_dir, image_size: int, limits: ZipLimits, max_cache_bytes: int,
             progress: ProgressFn | None, expected_classes: Sequence[str] | None = None,
             cached_only: bool = False, fit: str = "crop") -> _Decoded:
    """Scan + decode `source` at `image_size`, squares made by `fit` (`fit_square`), from the LRU when this exact
    source was seen (`cached_only`: from the LRU or not at all, NotDecoded)."""
    if image_size < 1:
        raise StudioError(f"The image size must be a positive number of pixels (got {image_size}); 64 is a good start.")
    src = _identify_source(source)
    if fit not in FITS:
        raise StudioError(f"data.fit must be one of {', '.join(FITS)} (got {fit!r}).")
    key = (src.kind, src.fingerprint, image_size, limits, fit)
    hit = _cache_get(key)
    if hit is not None:
        if expected_classes is not None:
            _check_class_match(list(hit.classes), expected_classes)
        _check_cache_bytes(len(hit.labels), image_size, max_cache_bytes)
        return hit
    if cached_only:
        raise NotDecoded(f"{Path(source).name} is not decoded at {image_size} px in this process.")

    root = _materialise(src, work_dir, limits)
    scan = scan_dataset(root)
    if expected_classes is not None and scan.classes:
        _check_class_match(scan.classes, expected_classes)
    _require_class_folders(scan, src.kind)
    _check_cache_bytes(len(scan.items), image_size, max_cache_bytes)

    items, skipped = scan.items, list(scan.skipped)
    paths = [p for p, _ in items]
    images, ok, reasons, shas, phashes, thumbs, sizes, pages = _decode_all(paths, image_size, progress,
                                                                           limits.max_image_pixels, fit)
    for (path, _), reason in zip(items, reasons):
        if reason is not None:
            skipped.append(SkippedFile(path.relative_to(root).as_posix(), reason))
    labels = torch.tensor([label for _, label in items], dtype=torch.int64)
    if not all(ok):  # drop failed rows (a copy; skipped when everything decoded, to save memory)
        keep = torch.tensor(ok, dtype=torch.bool)
        images, labels = images[keep], labels[keep]
    rows = [i for i, good in enumerate(ok) if good]
    taken, cameras, original = shot_times([paths[i] for i in rows])  # bursts: frames of one moment, one split
    many = multi_page_note([(paths[i].relative_to(root).as_posix(), int(pages[i])) for i in rows])
    decoded = _Decoded(
        images, labels, tuple(scan.classes), tuple(skipped),
        paths=tuple(paths[i].relative_to(root).as_posix() for i in rows),
        splits=None if scan.splits is None else tuple(scan.splits[i] for i in rows),
        sha256=tuple(shas[i] for i in rows), phash=phashes[rows], thumbs=thumbs[rows], sizes=sizes[rows],
        taken=taken, cameras=tuple(cameras), original=original, layout=scan.layout,
        notes=tuple(scan.notes) + ((many,) if many else ()), warnings=tuple(scan.warnings))
    _cache_put(key, decoded)
    return decoded


# --------------------------------------------------------------------------------------------
# Duplicates and class balance
# --------------------------------------------------------------------------------------------

# Near duplicates: perceptual hashes (64-bit DCT hash, imagehash.phash) at most this many bits
# apart AND mean colours at most MAX_COLOUR_DIFF apart (0-255, per channel). Resized, re-encoded
# or slightly edited copies of a photo stay within ~4 bits; unrelated photos differ by ~32 bits.
# The colour check keeps flat, featureless pictures (a plain red and a plain blue square share a
# perceptual hash) apart.
PHASH_MAX_DISTANCE = 6
MAX_COLOUR_DIFF = 12.0
# Last check of a near copy: 8 x 8 thumbnails (each cell's mean, RGB, 0-255) at most this far apart
# on average. The hash and colour rule alone took 18.6% of scikit-learn's 8 x 8 digits at 32 px for
# another digit, whose thumbnails differ by 7.1 or more (and different letters drawn black on white
# alike); 99.97% of the sample's re-saved copies that pass the hash are within 6
# (benchmarks/near_copies.py prints both). Try it's copy search (engine.predict) uses the same rule.
COPY_THUMB = 8
COPY_MAX_PIXEL_DIFF = 6.0
# ... and at most this share of the thumbnails' contrast (the mean |deviation| of their values): small
# dark strokes on white (letters, digits) differ by few grey levels on average, which the plain limit
# lets through. Re-saved copies of the sample differ by 0.10 of their contrast at the 95th percentile
# (99.90% pass both limits); generated drawn letters of different classes that pass the hash and colour
# by 0.28 or more (benchmarks/near_copies.py). Pictures with almost no contrast (flat grey) keep
# COPY_FLAT_PIXEL_DIFF.
COPY_MAX_CONTRAST_SHARE = 0.2
COPY_FLAT_PIXEL_DIFF = 2.0


def thumbnails_close(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """bool [M]: whether thumbnails `a` and `b` (float [M, 3, COPY_THUMB, COPY_THUMB], 0-255; rows
    paired) are close enough for a copy: mean |a - b| at most COPY_MAX_PIXEL_DIFF and at most
    COPY_MAX_CONTRAST_SHARE of their contrast (the mean |deviation| of all their values from their
    mean; COPY_FLAT_PIXEL_DIFF for pictures with almost none, such as flat grey ones). The last
    check of a near copy, after the hash and the mean colours (engine.data's duplicate groups and
    Try it's copy search, engine.predict.NearCopies)."""
    if not len(a):
        return np.zeros(0, dtype=bool)
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    diff = np.abs(a - b).mean(1)
    # over all values, so colour counts as contrast: per channel (or in grey) the sample's re-saved copies
    # passed at 97.1% (96.3%) instead of 99.9% (benchmarks/near_copies_contrast.py); coloured drawings then
    # keep about the plain 6 limit
    contrast = 0.5 * (np.abs(a - a.mean(1, keepdims=True)).mean(1) + np.abs(b - b.mean(1, keepdims=True)).mean(1))
    return diff <= np.minimum(COPY_MAX_PIXEL_DIFF, np.maximum(COPY_MAX_CONTRAST_SHARE * contrast,
                                                              COPY_FLAT_PIXEL_DIFF))


# Classes are "imbalanced" when the largest has at least this many times the images of the smallest.
IMBALANCE_RATIO = 2.0


def popcount64(x: np.ndarray) -> np.ndarray:
    """The number of set bits of each uint64 of `x` (any shape; same shape out)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
    return table[x.view(np.uint8)].reshape(*x.shape, 8).sum(-1)


def find_duplicate_groups(sha256: Sequence[str], phash: np.ndarray, colours: np.ndarray,
                          max_distance: int = PHASH_MAX_DISTANCE, max_colour_diff: float = MAX_COLOUR_DIFF,
                          thumbs: np.ndarray | None = None) -> np.ndarray:
    """Group images showing the same picture; returns int64 [N], the smallest member index of each row's group.

    Rows are joined (connected components: engine.bursts.linked) when their file bytes are identical (same
    `sha256`), or when their 64-bit perceptual hashes (`phash`, uint64 [N]) differ in at most `max_distance` bits,
    their mean colours (`colours`, float [N,3], 0-255) differ by at most `max_colour_diff` on every
    channel and, where `thumbs` (float [N,3,8,8], 0-255: each picture's, as decoded) are given, those are close
    (`thumbnails_close`): simple drawings (digits, letters) that differ can share a hash and colour.
    Compares all pairs in blocks (O(N^2) bit counts, a few seconds for 50,000 images).
    """
    n = len(sha256)
    first: dict[str, int] = {}
    links: list[tuple[np.ndarray, np.ndarray]] = [(np.arange(n), np.array([first.setdefault(d, i)
                                                                           for i, d in enumerate(sha256)]))]
    phash = np.asarray(phash, dtype=np.uint64)
    colours = np.asarray(colours, dtype=np.float32).reshape(n, 3)
    block = max(1, 4_000_000 // max(n, 1))
    for start in range(0, n, block):
        stop = min(n, start + block)
        rows, cols = np.nonzero(popcount64(phash[start:stop, None] ^ phash[None, start + 1:]) <= max_distance)
        rows, cols = rows + start, cols + start + 1  # only pairs j > i
        same = (np.abs(colours[rows] - colours[cols]) <= max_colour_diff).all(-1)
        rows, cols = rows[same], cols[same]
        if thumbs is not None and len(rows):
            close = thumbnails_close(thumbs[rows], thumbs[cols])
            rows, cols = rows[close], cols[close]
        links.append((rows, cols))
    return linked(n, np.concatenate([r for r, _ in links]), np.concatenate([c for _, c in links]))


# A group of near copies (not byte-identical) of more distinct files than this is a crowd of look-alike pictures, not
# copies of one picture: a fixed camera's parts, ok and defective, share a hash, colour and 8 x 8 thumbnail, and a
# factory inspector's 180 pictures fell into four groups of 39-45 (across their three classes), each kept in one split,
# leaving one validation image and a warning that pictures were "labelled with more than one class". The sample,
# digits and drawn letters form no group larger than 3 (benchmarks/near_copies.py prints the largest).
LOOKALIKE_FILES = 10


# Within a crowd of look-alikes, a copy is a picture with the same pixels: thumbnails (`_thumbnail`, 0-255) at most this
# far apart on average. The same file decoded again gives 0 (under 0.07 from Try it's float16 store), while different
# generated parts came as close as 0.2 (benchmarks/near_copies.py).
SAME_PIXELS_THUMB_DIFF = 0.1


def split_crowds(groups: np.ndarray, sha256: Sequence[str], phash: np.ndarray | None = None,
                 thumbs: np.ndarray | None = None,
                 most: int = LOOKALIKE_FILES) -> tuple[np.ndarray, list[list[int]]]:
    """Duplicate groups (`find_duplicate_groups`: int64 [N], each row's smallest member index) with each group of
    more than `most` distinct files (by `sha256`) split back into its copies, files with the same bytes or (with
    `phash`, uint64 [N], and `thumbs`, float [N, 3, COPY_THUMB, COPY_THUMB]) the same pixels: the same hash and
    thumbnails within SAME_PIXELS_THUMB_DIFF. Such a group holds look-alike pictures, not copies of one picture
    (LOOKALIKE_FILES). Returns (the new groups int64 [N], each crowd's row indices, ascending, the largest crowd
    first)."""
    groups = np.asarray(groups, dtype=np.int64).copy()
    crowds: list[list[int]] = []
    ids, counts = np.unique(groups, return_counts=True)
    for g in ids[counts > most]:
        rows = np.flatnonzero(groups == g)
        if len({sha256[i] for i in rows}) <= most:
            continue
        first: dict[str, int] = {}
        for i in rows.tolist():
            groups[i] = first.setdefault(sha256[i], i)
        if phash is not None and thumbs is not None:  # the same pixels in other bytes (a lossless re-save)
            by_hash: dict[int, list[int]] = {}
            for i in rows.tolist():  # the same pixels give the same hash: only those are compared
                by_hash.setdefault(int(phash[i]), []).append(i)
            for same in (b for b in by_hash.values() if len(b) > 1):
                flat = np.asarray(thumbs, dtype=np.float32)[same].reshape(len(same), -1)
                for a, b in zip(*np.nonzero(np.triu(np.abs(flat[:, None] - flat[None]).mean(-1)
                                                    <= SAME_PIXELS_THUMB_DIFF, 1))):
                    old, new = max(groups[same[a]], groups[same[b]]), min(groups[same[a]], groups[same[b]])
                    groups[rows[groups[rows] == old]] = new
        crowds.append(rows.tolist())
    return groups, sorted(crowds, key=len, reverse=True)


def lookalike_note(paths: Sequence[str], labels: Sequence[int], classes: Sequence[str],
                   crowds: Sequence[Sequence[int]], timed: bool = False) -> str:
    """The Data page's words for the pictures of `crowds` (`split_crowds`' rows into `paths` and `labels`): how many
    look alike at a glance, an example pair from the largest crowd (of two classes where it has several), and that
    they are split as different pictures, with what to do about bursts unless (`timed`) their files' times found
    them (engine.bursts: the bursts' own note says so); "" for fewer than two pictures (none look alike)."""
    rows = [i for crowd in crowds for i in crowd]
    if len(rows) < 2 or not crowds[0]:
        return ""
    named = sorted({classes[labels[i]] for i in rows})
    across = f" (in {len(named)} classes: {', '.join(named)})" if len(named) > 1 else ""
    largest = crowds[0]
    other = next((i for i in largest if labels[i] != labels[largest[0]]), largest[-1])  # across classes, if any
    pair = f", such as {paths[largest[0]]} and {paths[other]}," if other != largest[0] else ","
    return (f"{len(rows)} pictures look almost alike at a glance{across}{pair} as a fixed camera's pictures do. "
            "They are split as different pictures, not as copies of one another (only files with the same pixels "
            "are kept together), and the model must learn the details that tell them apart. Pictures of one moment "
            "in two splits flatter the validation and test figures: remove re-saved copies of a photo." + ("" if timed
            else " Bursts (a camera trap's frames of one animal) are kept in one split where each file records when it "
            "was taken; where they do not, split them yourself into train/, val/ and test/ folders, each burst in one "
            "folder: the studio then uses your split as it is."))


def class_imbalance(counts: dict[str, int]) -> dict:
    """{"ratio", "largest", "smallest", "imbalanced"}: largest class / smallest class (images); the names are
    "" when every class has as many images.

    `imbalanced` is True at IMBALANCE_RATIO or more, when accuracy alone flatters a model that
    favours the large class (report balanced accuracy and macro-F1 too, see engine.metrics).
    """
    if not counts or len(set(counts.values())) == 1:  # no class larger than another ("" for both: inspect's JSON
        return {"ratio": 1.0, "largest": "", "smallest": "", "imbalanced": False}  # named one class as both)
    largest = max(counts, key=counts.get)
    smallest = min(counts, key=counts.get)
    ratio = counts[largest] / max(counts[smallest], 1)
    return {"ratio": round(ratio, 2), "largest": largest, "smallest": smallest, "imbalanced": ratio >= IMBALANCE_RATIO}


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """float32 [num_classes] loss weights n_samples / (num_classes * n_c), as scikit-learn's "balanced".

    `labels`: int64 [N] training labels. A class with no image gets weight 0 (it cannot be
    learnt). With `F.cross_entropy(logits, y, weight=class_weights(...))` each class then
    contributes equally to the loss, whatever its size.
    """
    counts = torch.bincount(labels.long().cpu(), minlength=num_classes).float()
    weights = torch.zeros(num_classes, dtype=torch.float32)
    present = counts > 0
    weights[present] = counts.sum() / (int(present.sum()) * counts[present])
    return weights


def balanced_sample_indices(labels: torch.Tensor, num_classes: int, num_samples: int,
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """int64 [num_samples] training indices drawn with replacement so every class is drawn equally often.

    Each image's probability is 1 / (number of classes present * its class's size), as
    `torch.utils.data.WeightedRandomSampler` with inverse-frequency weights. Use it in place of
    the epoch's permutation when classes should be sampled evenly.
    """
    counts = torch.bincount(labels.long().cpu(), minlength=num_classes).double()
    per_image = 1.0 / counts[labels.long().cpu()]
    return torch.multinomial(per_image, num_samples, replacement=True, generator=generator)


# --------------------------------------------------------------------------------------------
# Validation and splitting
# --------------------------------------------------------------------------------------------


def _require_readable(decoded: _Decoded) -> None:
    if len(decoded.labels) > 0:
        return
    examples = "; ".join(f"{s.path}: {s.reason}" for s in decoded.skipped[:3])
    raise DatasetError(
        f"None of the image files could be read ({examples}). Check that the files are real "
        "images (jpg, png, ...) that open on your computer, then try again.", decoded.skipped, decoded.notes)


def _require_enough_per_class(classes: list[str], labels: torch.Tensor, min_images_per_class: int,
                              skipped: Sequence[SkippedFile], notes: Sequence[str] = ()) -> None:
    counts = torch.bincount(labels, minlength=len(classes)).tolist()
    too_few = [(name, n) for name, n in zip(classes, counts) if n < min_images_per_class]
    if too_few:
        listed = "; ".join(f"class '{name}' has {plural(n, 'readable image')}" for name, n in too_few)
        raise DatasetError(
            f"Each class needs at least {min_images_per_class} readable images, but {listed}. "
            "Add more images to those folders (or remove them), then try again." + _skipped_summary(skipped),
            skipped, notes)


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


def _grouped_split(labels: torch.Tensor, num_classes: int, val_fraction: float, test_fraction: float,
                   generator: torch.Generator, groups: torch.Tensor) -> dict[str, list[torch.Tensor]]:
    """Per class (of each group's first member), whole groups in random order: test and val take
    a group while it fits their share, training takes the rest (so it is never left empty). A share of at least one
    image that no group fitted gets the smallest of training's groups while training keeps another: an agronomist's
    12 photos a class in bursts of 3-4 left no validation image at all."""
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups.tolist()):
        members.setdefault(g, []).append(i)
    parts: dict[str, list[torch.Tensor]] = {"train": [], "val": [], "test": []}
    for cls in range(num_classes):
        cls_groups = [g for g, rows in members.items() if int(labels[rows[0]]) == cls]
        order = torch.randperm(len(cls_groups), generator=generator).tolist()
        n = sum(len(members[g]) for g in cls_groups)
        _, n_val, n_test = _split_sizes(n, val_fraction, test_fraction)
        filled = {"val": 0, "test": 0}
        placed: dict[str, list[list[int]]] = {"train": [], "val": [], "test": []}
        for k in order:
            rows = members[cls_groups[k]]
            target = next((s for s, cap in (("test", n_test), ("val", n_val)) if filled[s] + len(rows) <= cap), "train")
            if target != "train":
                filled[target] += len(rows)
            placed[target].append(rows)
        for split, share in (("val", n_val), ("test", n_test)):  # groups larger than a share (bursts of 3-4
            # against 2 validation images of 12) left it empty: its smallest group goes there, training keeping one
            if share and not placed[split] and len(placed["train"]) > 1:
                smallest = min(placed["train"], key=len)
                placed["train"].remove(smallest)
                placed[split].append(smallest)
        for split, groups_of in placed.items():
            parts[split] += [torch.tensor(rows, dtype=torch.long) for rows in groups_of]
    return parts


def stratified_split(labels: torch.Tensor, num_classes: int, val_fraction: float = 0.2,
                     test_fraction: float = 0.2, seed: int = 0,
                     groups: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Indices for train/val/test, split within each class so class balance is preserved.

    `groups` (int64 [N], optional): rows with the same value (copies of one picture, see
    `find_duplicate_groups`) always land in the same split. Deterministic for a seed (a CPU
    torch.Generator); indices within each split are sorted.
    """
    _check_fractions(val_fraction, test_fraction)
    generator = torch.Generator().manual_seed(seed)
    if groups is not None and len(torch.unique(groups)) < len(groups):
        parts = _grouped_split(labels, num_classes, val_fraction, test_fraction, generator, groups)
    else:
        parts = {"train": [], "val": [], "test": []}
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


def _drop_copies(decoded: _Decoded, groups: np.ndarray) -> np.ndarray:
    """Boolean [N] rows to keep: one image per duplicate group (a training copy first, then the first file)."""
    rank = {"train": 0, "val": 1, "test": 2}
    keep = np.zeros(len(groups), dtype=bool)
    best: dict[int, int] = {}
    for i, g in enumerate(groups.tolist()):
        split_rank = rank[decoded.splits[i]] if decoded.splits else 0
        if g not in best or split_rank < (rank[decoded.splits[best[g]]] if decoded.splits else 0):
            best[g] = i
    keep[list(best.values())] = True
    return keep


def _unscored_class_warnings(splits: dict[str, ImageSet], classes: Sequence[str], given: bool) -> list[str]:
    """A warning per held-out split (val, test) that has images but none of some class: its
    accuracy says nothing about that class. With a split given by the user's folders, that folder
    lacks the class; otherwise the class's pictures are copies of one another (all copies of a
    picture stay in one split, so none is trained on and scored at once) or too few to share out."""
    out = []
    for name, words in (("val", "validation"), ("test", "test")):
        split = splits.get(name)
        if split is None or len(split) == 0:
            continue
        missing = [c for c, n in zip(classes, torch.bincount(split.labels, minlength=len(classes)).tolist()) if n == 0]
        if not missing:
            continue
        it, its = ("it", "its") if len(missing) == 1 else ("them", "their")
        fix = (f"Add pictures of {it} to your {words} folder." if given else
               f"{its.capitalize()} pictures are copies of one another (all copies of a picture stay in one split, "
               f"so that none is trained on and scored at once) or too few to share out: add more, varied "
               f"pictures of {it}.")
        out.append(f"{_count(len(missing), 'class has', 'classes have')} no {words} images "
                   f"({', '.join(repr(c) for c in missing)}): the {words} accuracy says nothing about {it}. {fix}")
    return out


def _duplicate_warnings(paths: Sequence[str], labels: Sequence[int], splits: Sequence[str] | None,
                        groups: np.ndarray, classes: Sequence[str]) -> list[str]:
    """Warnings for groups whose copies carry different labels, or sit in different given splits."""
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups.tolist()):
        members.setdefault(g, []).append(i)
    multi = [rows for rows in members.values() if len(rows) > 1]
    mixed = [rows for rows in multi if len({labels[i] for i in rows}) > 1]
    across = [rows for rows in multi if splits is not None and len({splits[i] for i in rows}) > 1]
    out = []
    if mixed:
        first: dict[int, int] = {}  # the example names a file of each class, not three of one
        for i in mixed[0]:
            first.setdefault(labels[i], i)
        shown = list(first.values())[:3]
        out.append(f"{_count(len(mixed), 'picture is', 'pictures are')} labelled with more than one class, e.g. "
                   f"{' = '.join(f'{paths[i]} ({classes[labels[i]]})' for i in shown)}. Keep each picture "
                   "in one class only.")
    if across:
        out.append(f"{_count(len(across), 'duplicate group has', 'duplicate groups have')} copies in more than one "
                   f"of your split folders, e.g. {' = '.join(paths[i] for i in across[0][:3])}: validation and test "
                   "accuracy are then inflated. Remove the copies, or have the studio drop them ('Drop duplicate copies' on "
                   "the Data page; --set data.drop_duplicates=true on the command line).")
    return out


def _count(n: int, one: str, many: str) -> str:
    """'1 picture is' / '3 pictures are'."""
    return f"{n} {one if n == 1 else many}"


def _copy_groups(decoded: _Decoded, near: bool) -> tuple[np.ndarray, list[list[int]]]:
    """(each picture's copy group: `find_duplicate_groups`, near copies where `near` (imagehash is installed), else
    files with the same bytes; crowds of look-alikes split back (`split_crowds`) and groups split by the moment
    their pictures were taken (engine.bursts.moments_apart); the crowds, as `split_crowds` gives them). Found once per
    decoding (`_Decoded.memo`); each call gets its own copies."""
    if ("copies", near) not in decoded.memo:
        decoded.memo[("copies", near)] = _find_copy_groups(decoded, near)
    groups, crowds = decoded.memo[("copies", near)]
    return groups.copy(), [list(crowd) for crowd in crowds]


def _find_copy_groups(decoded: _Decoded, near: bool) -> tuple[np.ndarray, list[list[int]]]:
    """`_copy_groups`' work."""
    groups, crowds = split_crowds(find_duplicate_groups(
        decoded.sha256, decoded.phash, _mean_colours(decoded.images),
        max_distance=PHASH_MAX_DISTANCE if near else -1, thumbs=decoded.thumbs),  # -1: exact copies only
        decoded.sha256, decoded.phash, decoded.thumbs)
    if decoded.taken is not None and len(decoded.taken) == len(groups):  # look-alikes of other moments: not copies
        groups, _ = moments_apart(groups, decoded.taken, decoded.cameras, decoded.original)
    return groups, crowds


def _greyscale_of(decoded: _Decoded) -> torch.Tensor:
    """Which decoded pictures are greyscale (bool [N], `is_greyscale`), measured once per decoding (`_Decoded.memo`)."""
    if "grey" not in decoded.memo:
        decoded.memo["grey"] = is_greyscale(decoded.images)
    return decoded.memo["grey"]


def _kept_bursts(decoded: _Decoded, rows: np.ndarray) -> list[list[int]]:
    """The bursts (engine.bursts.burst_groups) among the decoded pictures, as indices into `rows` (the rows kept:
    all, or one per copy group), bursts left with one picture dropped; [] when no picture's time is known."""
    if decoded.taken is None or len(decoded.taken) != len(decoded.paths):
        return []
    at = {int(r): k for k, r in enumerate(rows)}
    kept = [[at[i] for i in b if i in at] for b in burst_groups(decoded.taken, decoded.cameras)]
    return [b for b in kept if len(b) > 1]


def _given_split(full: ImageSet, given: list[str], kept_groups: np.ndarray, val_fraction: float, seed: int,
                 skipped: list, notes: list[str]) -> dict[str, torch.Tensor]:
    """Indices per split from the split folders (`given`: each image's split name). A missing val/
    is carved from train/ with the seed (copies kept together); a missing test/ stays empty. Adds
    what it did to `notes`. Raises DatasetError when a class has no training image."""
    classes = full.classes
    indices = {s: torch.tensor([i for i, g in enumerate(given) if g == s], dtype=torch.long) for s in SPLITS}
    per_class = torch.bincount(full.labels[indices["train"]], minlength=len(classes)).tolist()
    no_train = [c for c, n in zip(classes, per_class) if n == 0]
    if no_train:
        raise DatasetError(
            f"Class {', '.join(repr(c) for c in no_train)} has no images in the train/ folder, so the model "
            "cannot learn it. Add training images of it (or remove it from the other split folders).",
            skipped, notes)
    if len(indices["val"]) == 0:
        train_idx = indices["train"]
        carved = stratified_split(full.labels[train_idx], len(classes), val_fraction, 0.0, seed,
                                  groups=torch.from_numpy(kept_groups[train_idx.numpy()]))
        indices["val"], indices["train"] = train_idx[carved["val"]], train_idx[carved["train"]]
        notes.append(f"No validation folder was given: {val_fraction:.0%} of each class in train/ is held out "
                     "for validation (seeded).")
    if len(indices["test"]) == 0:
        notes.append("No test folder was given: the final score is the validation score.")
    return indices


def _mean_colours(images: torch.Tensor) -> np.ndarray:
    """float32 [N, 3]: each uint8 image's [N, 3, S, S] mean colour (0-255), in chunks: a float copy of the
    whole tensor would take 4x its memory."""
    if not len(images):
        return np.zeros((0, 3), dtype=np.float32)
    return torch.cat([chunk.float().mean(dim=(2, 3)) for chunk in images.split(1024)]).numpy()


# a zip's way out, and a folder's: a folder is fixed where it is, not zipped (nor uploaded); "try again" fits the
# dashboard and the command line alike (a command-line user read "upload again" and "choose the folder again")
_ZIP_WORDS = re.compile(r"zip (?:them|those folders) and try again")


def folder_words(text: str) -> str:
    """A refusal written for a zip ("... zip them and try again") in the words for a folder ("... try
    again")."""
    return _ZIP_WORDS.sub("try again", text)


@contextmanager
def _for_folders(source) -> Iterator[None]:
    """Re-raise a StudioError about `source`, when it is a folder, with `folder_words` (same error, same
    skipped files and notes)."""
    try:
        yield
    except StudioError as exc:
        if exc.args and isinstance(exc.args[0], str) and Path(source).expanduser().is_dir():
            exc.args = (folder_words(exc.args[0]), *exc.args[1:])
        raise


def load_dataset(source, work_dir, image_size: int = 64, val_fraction: float = 0.2,
                 test_fraction: float = 0.2, seed: int = 0, min_images_per_class: int = 5,
                 limits: ZipLimits = ZipLimits(), max_cache_bytes: int = 4 * 1024**3,
                 progress: ProgressFn | None = None, drop_duplicates: bool = False,
                 cached_only: bool = False, fit: str = "crop") -> DataSplits:
    """Validate, decode and split a dataset (a .zip or a folder in any layout `scan_dataset` reads).

    Zips are extracted into `work_dir/<content-hash>` and nowhere else. Images are decoded once
    into uint8 [N,3,S,S] tensors (S = `image_size`: shorter side resized to S, centre crop; with `fit` "pad" the
    whole picture, padded, with "stretch" the whole picture stretched: `fit_square`), so
    memory is N*3*S*S bytes (1,000 images at 64 px = 12 MB; at 224 px = 150 MB); a dataset
    needing more than `max_cache_bytes` is refused with a StudioError before decoding. Decoded
    data is kept in a small in-memory LRU keyed by (source content, size, limits, fit), so loading
    the same upload again is instant. `progress(done, total)` is called while decoding.

    Split: a split given by train/val/test folders is used as is (a missing val/ is carved from
    train/ with the seed and `val_fraction`; a missing test/ leaves the test split empty);
    otherwise each class is split with `stratified_split`, copies of one picture
    (`find_duplicate_groups`) kept in one split. `drop_duplicates` keeps one image per group.
    Raises DatasetError (a StudioError listing the skipped files) when the data cannot train, and
    NotDecoded with `cached_only` when the source is not in the LRU (nothing is decoded then). For a
    folder the messages leave out a zip's advice to zip the images (`_for_folders`).
    """
    with _for_folders(source):
        return _load_dataset(source, work_dir, image_size, val_fraction, test_fraction, seed, min_images_per_class,
                             limits, max_cache_bytes, progress, drop_duplicates, cached_only, fit)


def _load_dataset(source, work_dir, image_size, val_fraction, test_fraction, seed, min_images_per_class, limits,
                  max_cache_bytes, progress, drop_duplicates, cached_only, fit) -> DataSplits:
    """`load_dataset`'s work, its arguments in its order."""
    _check_fractions(val_fraction, test_fraction)
    decoded = _decoded(source, work_dir, image_size, limits, max_cache_bytes, progress, cached_only=cached_only,
                       fit=fit)
    _require_readable(decoded)

    classes = list(decoded.classes)
    near = _imagehash() is not None
    groups, crowds = _copy_groups(decoded, near)
    rows = np.arange(len(groups))
    dropped: list[str] = []
    if drop_duplicates:
        keep = _drop_copies(decoded, groups)
        dropped = [decoded.paths[i] for i in np.nonzero(~keep)[0]]
        rows = rows[keep]
    labels = decoded.labels[torch.from_numpy(rows)]
    _require_enough_per_class(classes, labels, min_images_per_class, decoded.skipped, decoded.notes)

    every = ImageSet(decoded.images, decoded.labels, classes, _grey=_greyscale_of(decoded))
    full = every.subset(torch.from_numpy(rows)) if drop_duplicates else every
    paths = [decoded.paths[i] for i in rows]
    kept_groups = groups[rows]
    given = None if decoded.splits is None else [decoded.splits[i] for i in rows]
    notes, warnings_out = list(decoded.notes), list(decoded.warnings)
    bursts = _kept_bursts(decoded, rows)  # frames of one moment (engine.bursts): one split each
    crowd_rows = [i for crowd in crowds for i in crowd]  # their bursts found by time only where each has a time
    timed = bool(bursts) and decoded.taken is not None and not np.isnan(decoded.taken[crowd_rows]).any()
    notes += [lookalike_note(decoded.paths, decoded.labels.tolist(), classes, crowds, timed)] if crowds else []
    if not near:
        warnings_out.append("Near-duplicate pictures were not searched (the imagehash package is missing); "
                            "only identical files are kept together. Install the requirements to fix this.")
    together = with_bursts(kept_groups, bursts)  # copies and each burst's frames: one split each
    if given is None:
        indices = stratified_split(full.labels, len(classes), val_fraction, test_fraction, seed,
                                   groups=torch.from_numpy(together))
    else:
        indices = _given_split(full, given, together, val_fraction, seed, decoded.skipped, notes)
    warnings_out += _duplicate_warnings(paths, full.labels.tolist(), given, kept_groups, classes)
    where = None  # each row's split, for the bursts your folders cut: a split the studio draws cuts none
    if given is not None and bursts:
        where = [""] * len(paths)
        for name, idx in indices.items():
            for i in idx.tolist():
                where[i] = name
    said = burst_words(paths, bursts, where)  # without bursts, nothing
    (notes if given is None else warnings_out).extend([said] if said else [])

    full.greyscale()  # measured once, for the report and every split (`subset` carries it)
    splits = {name: full.subset(idx) for name, idx in indices.items()}
    members: dict[int, list[str]] = {}
    hashes: dict[int, set[str]] = {}
    for g, path, sha in zip(groups.tolist(), decoded.paths, decoded.sha256):
        members.setdefault(g, []).append(path)
        hashes.setdefault(g, set()).add(sha)
    counts = full.class_counts()
    report = DataReport(
        source=str(source),
        classes=classes,
        counts=counts,
        skipped=list(decoded.skipped),
        split_counts={name: s.class_counts() for name, s in splits.items()},
        image_size=image_size,
        layout=decoded.layout,
        split_given=given is not None,
        val_carved=given is not None and "val" not in given,
        notes=notes,
        warnings=warnings_out + _unscored_class_warnings(splits, classes, given is not None),
        split_files={name: [paths[i] for i in idx.tolist()] for name, idx in indices.items()},
        duplicate_groups=[sorted(m) for m in members.values() if len(m) > 1],
        duplicate_identical=[len(hashes[g]) == 1 for g, m in members.items() if len(m) > 1],
        duplicates_dropped=dropped,
        bursts=[[paths[i] for i in b] for b in bursts],
        imbalance=class_imbalance(counts),
        picture_shape=picture_shape(decoded.sizes),
        greyscale=int(full.greyscale().sum()),
        content_sha256=content_digest([classes[i] for i in decoded.labels.tolist()], decoded.sha256),
    )
    return DataSplits(splits["train"], splits["val"], splits["test"], classes, report)


def picture_shape(sizes: np.ndarray | None) -> dict:
    """The pictures' typical shape from their upright (width, height) in pixels (int [N, 2]): "long" and "short"
    the medians of their longer and shorter sides, "square_share" the median share of the longer side the centre
    square keeps (1.0 for square pictures; 0.625 for 320 x 200), "wide" and "tall" the fractions of pictures more
    than 10% wider than tall and taller than wide. {} without sizes. The Data page says what a wide picture loses
    before a run (a student's 320 x 200 scans lost 37.5% of their width unsaid); phone photos mix both ways."""
    if sizes is None or len(sizes) == 0:
        return {}
    w, h = sizes[:, 0].astype(float), sizes[:, 1].astype(float)
    short, long = np.minimum(w, h), np.maximum(w, h)
    keep = short / np.maximum(long, 1.0)
    return {"long": int(np.median(long)), "short": int(np.median(short)),
            "square_share": round(float(np.median(keep)), 3),
            "wide": round(float(np.mean(w > 1.1 * h)), 3),
            "tall": round(float(np.mean(h > 1.1 * w)), 3)}


def content_digest(labels: Sequence[str], file_sha256: Sequence[str]) -> str:
    """SHA-256 (hex) of a dataset's content: each readable image's class name and the SHA-256 of its
    file's bytes, in sorted order. The same images under the same classes give the same digest however
    they were packed (an upload or a file on disk, another zip name, another folder order, a wrapper
    folder); a renamed class or a changed image gives another. File names do not count."""
    lines = sorted(f"{label}\t{sha}" for label, sha in zip(labels, file_sha256))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _check_class_match(found: Sequence[str], expected: Sequence[str]) -> None:
    found = [normalise_class_name(c) for c in found]
    expected = [normalise_class_name(c) for c in expected]
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
        f"({', '.join(expected)}) and try again."
    )


def load_ood_dataset(source, work_dir, image_size: int, classes: list[str],
                     limits: ZipLimits = ZipLimits(), max_cache_bytes: int = 4 * 1024**3,
                     progress: ProgressFn | None = None, fit: str = "crop") -> ImageSet:
    """A user-provided evaluation set with the same classes as training, decoded like `load_dataset` (`fit`).

    Its class names (folders or labels file; split folders, if any, are pooled) must equal
    `classes` as a set after Unicode NFC normalisation; labels follow the order of `classes`.
    A class may have few images here (it is only evaluated), but at least one image must be readable.
    """
    classes = [normalise_class_name(c) for c in classes]
    decoded = _ood_decoded(source, work_dir, image_size, classes, limits, max_cache_bytes, progress, fit)
    position = {name: i for i, name in enumerate(classes)}
    remap = torch.tensor([position[name] for name in decoded.classes], dtype=torch.int64)
    # Clone: the cached tensor must stay untouched whatever the caller does with the result.
    return ImageSet(decoded.images.clone(), remap[decoded.labels], list(classes))


def _ood_decoded(source, work_dir, image_size: int, classes: list[str], limits: ZipLimits, max_cache_bytes: int,
                 progress: ProgressFn | None, fit: str = "crop") -> _Decoded:
    """`source` decoded (`fit`) and checked as an OOD set of `classes` (NFC-normalised); StudioError otherwise."""
    with _for_folders(source):
        decoded = _decoded(source, work_dir, image_size, limits, max_cache_bytes, progress, expected_classes=classes,
                           fit=fit)
        _check_class_match(list(decoded.classes), classes)
        _require_readable(decoded)
    return decoded


def inspect_ood_dataset(source, work_dir, image_size: int, classes: list[str], limits: ZipLimits = ZipLimits(),
                        progress: ProgressFn | None = None) -> tuple[int, list[SkippedFile]]:
    """(readable images, the files skipped and why) of an OOD set, checked exactly as `load_ood_dataset`
    checks it (same StudioError for a class mismatch or no readable image): a broken image in it is
    skipped, as in training data, and the user is told which."""
    decoded = _ood_decoded(source, work_dir, image_size, [normalise_class_name(c) for c in classes], limits,
                           4 * 1024**3, progress)
    return int(decoded.labels.shape[0]), list(decoded.skipped)


def inspect_dataset(source, work_dir, limits: ZipLimits = ZipLimits(), *, image_size: int = 32,
                    min_images_per_class: int = 5, val_fraction: float = 0.2,
                    test_fraction: float = 0.2, seed: int = 0, drop_duplicates: bool = False,
                    progress: ProgressFn | None = None) -> DataReport:
    """Validate an upload before training and describe it (layout, classes, counts, split, skipped files, duplicates).

    Runs exactly the checks of `load_dataset` (so "valid here" means "trainable"), decoding at a
    small size; the split does not depend on the size, so it is the split a run with the same
    seed and fractions uses. The decoded result stays in the LRU, so repeated inspection is
    instant. Raises StudioError (DatasetError, with the skipped files) like `load_dataset`.
    """
    return load_dataset(source, work_dir, image_size=image_size, val_fraction=val_fraction,
                        test_fraction=test_fraction, seed=seed,
                        min_images_per_class=min_images_per_class, limits=limits,
                        progress=progress, drop_duplicates=drop_duplicates).report
