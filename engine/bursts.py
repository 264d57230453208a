"""Bursts: frames one camera took moments apart (a camera trap's frames of one animal), read from EXIF times.

Frames of one moment are near copies of one another: with one in training and its neighbour in validation, the
validation figure measures recall of the moment, not the model. `load_dataset` keeps each burst in one split, as it
keeps copies of one picture (engine.data.find_duplicate_groups), and where the user's folders give the split, says
which bursts they cut. Split frame by frame, a generated camera-trap export (benchmarks/bursts.py) had 98 of its
120 bursts in two splits, and its held-out figures stood about 3 points above the accuracy on new bursts.

A burst is a chain of pictures from one camera (EXIF Make, Model and BodySerialNumber), each taken at most
BURST_GAP_S seconds after the one before (EXIF DateTimeOriginal with SubsecTimeOriginal, else DateTime; read by
Pillow's ExifTags), of 2 to BURST_MAX_FILES pictures. A longer chain is a time-lapse, a production line or a copied
timestamp, not one moment, and is left as separate pictures. Pictures without a readable time form no burst.
"""

from __future__ import annotations

import math
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import ExifTags, Image

BURST_GAP_S = 3.0  # seconds: a camera trap's frames of one trigger come 0.2-2 s apart; phone photos of two subjects
# rarely come closer than this
MOMENT_GAP_S = 60.0  # seconds: near copies further apart than this are two exposures, not copies (moments_apart);
# a trap re-triggering on a lingering animal, or a leaf shot again, comes within it
BURST_MAX_FILES = 20  # pictures: a chain longer than this is not one moment (a time-lapse, a copied timestamp)
EXIF_TIME = "%Y:%m:%d %H:%M:%S"  # EXIF 2.3, section 4.6.5: "YYYY:MM:DD HH:MM:SS"


def _seconds(stamp, subsec) -> float:
    """Seconds since 1970 of an EXIF time string and its sub-second digits, read as UTC (a camera's clock has no
    zone; only differences within one camera count); NaN for a missing or malformed one ("0000:00:00 00:00:00")."""
    try:
        when = datetime.strptime(str(stamp).strip("\x00 "), EXIF_TIME)
    except (TypeError, ValueError):
        return math.nan
    digits = "".join(ch for ch in str(subsec or "") if ch.isdigit())
    return when.replace(tzinfo=timezone.utc).timestamp() + (float(f"0.{digits}") if digits else 0.0)


def _header(path: Path) -> Image.Image:
    """The picture at `path` opened lazily (its header read, not its pixels). A JPEG is opened by Pillow's JPEG
    plugin itself, without Image.open's decompression-bomb check, as engine.data.open_image does: a 200 MP phone
    photo's time counts too; other formats keep the check (its warning silenced: no pixels are decoded here)."""
    with open(path, "rb") as f:
        jpeg = f.read(3) == b"\xff\xd8\xff"
    if jpeg:
        from PIL import JpegImagePlugin

        return JpegImagePlugin.JpegImageFile(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(path)


def shot_time(path: Path) -> tuple[float, str, bool]:
    """(when the picture at `path` was taken, in seconds (float; NaN when its file carries no readable time), the
    camera that took it: its EXIF Make, Model and BodySerialNumber joined by "/", "" when none, and whether the time
    is DateTimeOriginal's, when the shutter fired, rather than DateTime's, which an editor rewrites when it saves a
    copy). Reads the file's header only (Pillow opens lazily); never raises for a file Pillow cannot read (NaN, "",
    False)."""
    try:
        with _header(path) as img:
            if img.format == "PNG" and "exif" not in img.info:  # getexif would decode the whole picture to look
                return math.nan, "", False  # for an eXIf chunk after the pixels: none before them is none at all
            exif = img.getexif()
            sub = exif.get_ifd(ExifTags.IFD.Exif)
    except Exception:  # noqa: BLE001 - an unreadable header: no time, as for a picture without one
        return math.nan, "", False
    when = _seconds(sub.get(ExifTags.Base.DateTimeOriginal), sub.get(ExifTags.Base.SubsecTimeOriginal))
    original = not math.isnan(when)
    if not original:
        when = _seconds(exif.get(ExifTags.Base.DateTime), sub.get(ExifTags.Base.SubsecTime))
    camera = "/".join(str(v).strip("\x00 ") for v in (exif.get(ExifTags.Base.Make), exif.get(ExifTags.Base.Model),
                                                       sub.get(ExifTags.Base.BodySerialNumber)) if v)
    return when, camera, original


def shot_times(paths: Sequence[Path]) -> tuple[np.ndarray, list[str], np.ndarray]:
    """`shot_time` of each of `paths`: (float64 [N] seconds, NaN where unknown; N camera names; bool [N], whether each
    time is the shutter's, DateTimeOriginal)."""
    found = [shot_time(Path(p)) for p in paths]
    return (np.array([t for t, _, _ in found], dtype=np.float64), [c for _, c, _ in found],
            np.array([o for _, _, o in found], dtype=bool))


def burst_groups(taken: np.ndarray, cameras: Sequence[str], gap: float = BURST_GAP_S,
                 most: int = BURST_MAX_FILES) -> list[list[int]]:
    """The bursts among N pictures taken at `taken` (float64 [N] seconds, NaN: unknown) by `cameras` (N names):
    each a list of row indices (ascending), the pictures of one camera each at most `gap` seconds after the one
    before, 2 to `most` of them (a longer chain is not one moment: left out). In order of their first row."""
    taken = np.asarray(taken, dtype=np.float64)
    by_camera: dict[str, list[int]] = {}
    for i in np.flatnonzero(~np.isnan(taken)).tolist():
        by_camera.setdefault(cameras[i], []).append(i)
    bursts: list[list[int]] = []
    for rows in by_camera.values():
        rows.sort(key=lambda i: (taken[i], i))
        chain = [rows[0]]
        for i in rows[1:] + [-1]:  # -1: the end closes the last chain
            if i >= 0 and taken[i] - taken[chain[-1]] <= gap:
                chain.append(i)
                continue
            if 2 <= len(chain) <= most:
                bursts.append(sorted(chain))
            chain = [i]
    return sorted(bursts, key=lambda b: b[0])


def linked(n: int, rows: Sequence[int] | np.ndarray, cols: Sequence[int] | np.ndarray) -> np.ndarray:
    """N rows joined into groups by the pairs (`rows[k]`, `cols[k]`: indices into the N rows), and by every pair
    that links through others: int64 [N], each row's group as its smallest member index (a row in no pair is its own
    group). Connected components of the pairs' graph (scipy.sparse.csgraph.connected_components)."""
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    if not np.any(rows != cols):  # no pair joins two rows (most datasets' copies): without scipy's import, 0.14 s
        return np.arange(n, dtype=np.int64)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    smallest = np.full(int(component.max()) + 1, n, dtype=np.int64)
    np.minimum.at(smallest, component, np.arange(n))
    return smallest[component]


def with_bursts(groups: np.ndarray, bursts: Sequence[Sequence[int]]) -> np.ndarray:
    """Split groups (int64 [N], any label per group: engine.data.find_duplicate_groups') with each burst's rows
    (indices into the N rows) joined into one group, with every row grouped with any of them: int64 [N], each row's
    smallest member index (`linked`); `groups` itself when there are no bursts. A copy of a burst's frame in another
    burst joins the two."""
    groups = np.asarray(groups, dtype=np.int64)
    if not bursts:
        return groups
    _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    same = first[inverse.reshape(-1)]  # each row's group as the index of its first row
    pairs = [(burst[0], i) for burst in bursts for i in burst[1:]]
    rows = np.concatenate([np.arange(len(groups)), [a for a, _ in pairs]]).astype(np.int64)
    cols = np.concatenate([same, [b for _, b in pairs]]).astype(np.int64)
    return linked(len(groups), rows, cols)


def moments_apart(groups: np.ndarray, taken: np.ndarray, cameras: Sequence[str], original: np.ndarray | None = None,
                  gap: float = MOMENT_GAP_S) -> tuple[np.ndarray, int]:
    """Copy groups (int64 [N], each row's smallest member index: engine.data.find_duplicate_groups) split by the
    moment each picture was taken, where every member's shutter time is known (`taken`, float64 [N] seconds;
    `original`, bool [N]: the time is DateTimeOriginal's, not an editor's DateTime; `cameras`): pictures one camera
    took more than `gap` seconds apart are two exposures that look alike (a clearing at night with a small fox and
    without, two wheat plants photographed two hours apart), not copies of one picture, which keep their file's
    time. Night frames of a fox and of a deer read "labelled with more than one class"; an agronomist's two plants
    were offered to be dropped as duplicates. Members within `gap` of one another (a chain: a lingering animal's
    frames, a leaf shot again) stay together. Returns (the new groups, int64 [N], each row's smallest member index;
    how many pictures left their group). A group with any picture without a shutter time (a copy whose EXIF was
    stripped or rewritten could be of any of them) stays as it is."""
    groups = np.asarray(groups, dtype=np.int64).copy()
    taken = np.asarray(taken, dtype=np.float64)
    moved = 0
    ids, counts = np.unique(groups, return_counts=True)
    for g in ids[counts > 1].tolist():
        rows = np.flatnonzero(groups == g).tolist()
        if np.isnan(taken[rows]).any() or (original is not None and not np.asarray(original)[rows].all()):
            continue
        rows.sort(key=lambda i: (cameras[i], taken[i], i))
        head = rows[0]
        parts: list[list[int]] = [[head]]
        for prev, i in zip(rows, rows[1:]):
            if cameras[i] == cameras[prev] and taken[i] - taken[prev] <= gap:
                parts[-1].append(i)
            else:
                parts.append([i])
        if len(parts) > 1:
            moved += sum(len(p) for p in parts) - max(len(p) for p in parts)
            for part in parts:
                groups[part] = min(part)
    return groups, moved


def cut_bursts(bursts: Sequence[Sequence[int]], splits: Sequence[str]) -> list[list[int]]:
    """The bursts (`burst_groups`) whose pictures lie in more than one split (`splits`: each row's split name), in
    their order."""
    return [list(b) for b in bursts if len({splits[i] for i in b}) > 1]


def burst_words(paths: Sequence[str], bursts: Sequence[Sequence[int]], splits: Sequence[str] | None = None) -> str:
    """The Data page's words on `bursts` (rows into `paths`): how many pictures came in how many bursts and that
    each is kept in one split; where the user's folders gave the split (`splits`: each row's split name), the
    bursts those folders cut (`cut_bursts`), with two frames of one in two folders, as a warning's text. "" when
    there are no bursts, or with `splits` none cut."""
    if not bursts:
        return ""
    rule = f"frames of one camera at most {BURST_GAP_S:g} s apart, by the time each file records"
    if splits is None:
        return (f"{sum(map(len, bursts))} pictures came in {len(bursts)} bursts ({rule}). Each burst is kept in one "
                f"split, as copies are: its frames show one moment, and one of them in training would flatter the "
                f"others' validation and test figures.")
    cut = cut_bursts(bursts, splits)
    if not cut:
        return ""
    a = cut[0][0]
    b = next(i for i in cut[0] if splits[i] != splits[a])
    return (f"{len(cut)} of {len(bursts)} bursts ({rule}) have frames in two of your split folders, such as "
            f"{paths[a]} and {paths[b]}: one moment on both sides flatters the held-out figures. Move each "
            f"burst's frames into one folder.")
