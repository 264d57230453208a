"""engine.data: ingestion of zips/folders of class folders, safety limits, decoding, split, cache."""

from __future__ import annotations

import io
import json
import stat
import struct
import time
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_folder
from engine import data
from engine.data import (
    DataReport,
    ImageSet,
    ZipLimits,
    decode_image,
    inspect_dataset,
    load_dataset,
    load_ood_dataset,
    safe_extract_zip,
    scan_class_folders,
    stratified_split,
)
from engine.errors import StudioError


@pytest.fixture(autouse=True)
def _fresh_cache():
    data.clear_cache()
    yield
    data.clear_cache()


# ---------------------------------------------------------------------------- helpers


def png_bytes(seed: int, size=(20, 16), mode="RGB", fmt="PNG") -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def make_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, payload in files.items():
            zf.writestr(name, payload)
    return path


def class_files(counts: dict[str, int], prefix: str = "") -> dict[str, bytes]:
    files = {}
    for c, (cls, n) in enumerate(counts.items()):
        for i in range(n):
            files[f"{prefix}{cls}/{i:03d}.png"] = png_bytes(100 * c + i)
    return files


@pytest.fixture
def work_dir(tmp_path) -> Path:
    return tmp_path / "work"


# ---------------------------------------------------------------------------- happy paths


def test_zip_of_class_folders_loads_split_and_reports(tmp_path, work_dir):
    src = make_zip(tmp_path / "d.zip", class_files({"dogs": 10, "cats": 10}))
    splits = load_dataset(src, work_dir, image_size=16)

    assert splits.classes == ["cats", "dogs"]
    for part, n in ((splits.train, 12), (splits.val, 4), (splits.test, 4)):
        assert part.images.shape == (n, 3, 16, 16) and part.images.dtype == torch.uint8
        assert part.labels.dtype == torch.int64 and len(part) == n
    report = splits.report
    assert report.counts == {"cats": 10, "dogs": 10}
    assert report.split_counts == {"train": {"cats": 6, "dogs": 6}, "val": {"cats": 2, "dogs": 2},
                                   "test": {"cats": 2, "dogs": 2}}
    assert report.skipped == [] and report.image_size == 16
    json.dumps(report.to_dict())
    # Extracted once, into work_dir/<content-hash>, with no temporary folders left behind.
    assert [p.name for p in work_dir.iterdir()] == [data._zip_digest(src)]


def test_nested_one_level_and_folder_source(tmp_path, work_dir):
    files = class_files({"cats": 5, "dogs": 5}, prefix="mydata/")
    from_zip = load_dataset(make_zip(tmp_path / "n.zip", files), work_dir, image_size=16)
    from_dir = load_dataset(make_folder(tmp_path / "folder", files), work_dir, image_size=16)
    assert from_zip.classes == from_dir.classes == ["cats", "dogs"]
    assert torch.equal(from_zip.train.images, from_dir.train.images)


def test_class_images_in_subfolders_and_loose_files(tmp_path):
    root = make_folder(tmp_path / "d", {"a/x/1.png": png_bytes(1), "a/2.png": png_bytes(2),
                                        "b/3.png": png_bytes(3), "readme.txt": b"hi"})
    classes, items, skipped = scan_class_folders(root)
    assert classes == ["a", "b"]
    assert sorted((p.relative_to(root).as_posix(), label) for p, label in items) == [
        ("a/2.png", 0), ("a/x/1.png", 0), ("b/3.png", 1)]
    assert [(s.path, s.reason) for s in skipped] == [("readme.txt", "not inside a class folder")]


def test_hidden_files_and_macosx_are_ignored(tmp_path, work_dir):
    files = class_files({"cats": 5, "dogs": 5})
    files.update({"__MACOSX/cats/._000.png": b"junk", "cats/.DS_Store": b"junk",
                  ".ipynb_checkpoints/x.png": png_bytes(7), "dogs/.hidden/1.png": png_bytes(8),
                  ".git/config": b"x"})
    splits = load_dataset(make_zip(tmp_path / "h.zip", files), work_dir, image_size=16)
    assert splits.classes == ["cats", "dogs"]
    assert splits.report.counts == {"cats": 5, "dogs": 5}
    assert splits.report.skipped == []
    # said, though, each hidden folder once (a geology instructor's 9 desktop.ini and Thumbs.db files went unsaid
    # beside "Skipped files 0"): the zip's, which are never extracted, and a folder's own
    said = ("5 hidden or system files or folders left out (.DS_Store, .git, .hidden, .ipynb_checkpoints, …): they "
            "hold no pictures for training.")
    assert said in splits.report.notes
    files.update({"dogs/Thumbs.db": b"x", "desktop.ini": b"x"})
    folder = load_dataset(make_folder(tmp_path / "folder", files), work_dir, image_size=16)
    assert ("7 hidden or system files or folders left out (.DS_Store, .git, .hidden, .ipynb_checkpoints, …): they "
            "hold no pictures for training.") in folder.report.notes, folder.report.notes
    clean = load_dataset(make_zip(tmp_path / "c.zip", class_files({"cats": 5, "dogs": 5})), work_dir, image_size=16)
    assert not any("hidden or system" in n for n in clean.report.notes)


def test_broken_and_non_image_files_are_skipped_with_reasons(tmp_path, work_dir):
    files = class_files({"cats": 5, "dogs": 5})
    files.update({"cats/broken.jpg": b"definitely not a jpeg", "dogs/notes.txt": b"hello",
                  "dogs/truncated.png": png_bytes(3)[:60]})
    report = load_dataset(make_zip(tmp_path / "b.zip", files), work_dir, image_size=16).report
    reasons = {s.path: s.reason for s in report.skipped}
    assert set(reasons) == {"cats/broken.jpg", "dogs/notes.txt", "dogs/truncated.png"}
    assert "not a readable image" in reasons["cats/broken.jpg"]
    assert reasons["dogs/notes.txt"] == "not an image file (.txt)"
    assert "damaged" in reasons["dogs/truncated.png"]
    assert report.counts == {"cats": 5, "dogs": 5}


def test_sound_and_video_files_are_named_as_such_with_what_to_make_of_them(tmp_path, work_dir):
    """A bioacoustics researcher's zip of recordings read "not an image file (.mp3), not an image file (.wav)", with
    no word that the studio wants their spectrograms."""
    from engine.data import DatasetError

    sounds = {f"{bird}/XC{i}.{ext}": b"RIFF....WAVE" for bird in ("wren", "cuckoo") for i, ext in
              enumerate(("wav", "mp3", "wav"))}
    with pytest.raises(DatasetError) as refused:
        load_dataset(make_zip(tmp_path / "audio.zip", sounds), work_dir, image_size=16)
    assert str(refused.value) == (
        "The class folders hold sound files (.mp3, .wav), not pictures: the studio learns from images. Make a "
        "spectrogram picture (PNG or JPEG) of each recording with your audio tool, put them in the same class folders "
        "and try again.")
    # a stray recording beside class folders of unreadable images is no zip of recordings
    stray = {"notes.wav": b"RIFF", **{f"{c}/{i}.txt": b"field notes" for c in ("a", "b") for i in range(3)}}
    with pytest.raises(DatasetError) as refused:
        load_dataset(make_zip(tmp_path / "stray.zip", stray), work_dir, image_size=16)
    assert "sound files" not in str(refused.value) and str(refused.value).startswith("No image files were found")
    files = {**class_files({"cats": 5, "dogs": 5}), "cats/purr.flac": b"fLaC", "dogs/walk.MP4": b"....ftypmp42"}
    reasons = {s.path: s.reason for s in load_dataset(make_zip(tmp_path / "mixed.zip", files), work_dir,
                                                      image_size=16).report.skipped}
    assert reasons == {"cats/purr.flac": "a sound file (.flac), not a picture: make a spectrogram image of each "
                                         "recording first",
                       "dogs/walk.MP4": "a video file (.mp4), not a picture: save the frames you want as images first"}


@pytest.mark.parametrize("fmt, keep", [("JPEG", 300), ("JPEG", 2000), ("PNG", 300), ("BMP", 30), ("TIFF", 300)])
def test_a_file_cut_short_is_named_in_plain_words(tmp_path, fmt, keep):
    """Pillow's "Truncated File Read" and "image file is truncated (17 bytes not processed)" read as
    what happened to the user's file."""
    from engine.data import decode_image

    buf = io.BytesIO()
    Image.effect_noise((64, 64), 50).convert("RGB").save(buf, format=fmt)
    (tmp_path / "cut.img").write_bytes(buf.getvalue()[:keep])
    with pytest.raises(ValueError) as err:
        decode_image(tmp_path / "cut.img", 32)
    assert str(err.value) == "damaged image (the file ends too early, as after an interrupted copy or download)"


def test_decompression_bomb_is_skipped(tmp_path, work_dir):
    big = io.BytesIO()
    Image.new("1", (8000, 8000)).save(big, format="PNG")  # 64 MP, a few KB on disk
    files = class_files({"cats": 5, "dogs": 5})
    files["cats/bomb.png"] = big.getvalue()
    report = load_dataset(make_zip(tmp_path / "bomb.zip", files), work_dir, image_size=16).report
    assert [s.path for s in report.skipped] == ["cats/bomb.png"]
    assert "too large" in report.skipped[0].reason


# ---------------------------------------------------------------------------- decoding


def _saved(tmp_path: Path, img: Image.Image, name: str, **kw) -> Path:
    path = tmp_path / name
    img.save(path, **kw)
    return path


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "1", "CMYK", "I;16", "I", "F"])
def test_every_image_mode_becomes_rgb_uint8(tmp_path, mode):
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 28, 3), dtype=np.uint8))
    if mode == "I;16":
        img = Image.fromarray((np.arange(20 * 28, dtype=np.uint16).reshape(20, 28) * 100))
    elif mode in ("I", "F"):
        img = rgb.convert("L").convert(mode)
    else:
        img = rgb.convert(mode)
    assert img.mode == mode
    fmt, ext = ("JPEG", "jpg") if mode == "CMYK" else ("TIFF", "tif") if mode in ("I", "F", "I;16") else ("PNG", "png")
    out = decode_image(_saved(tmp_path, img, f"img.{ext}", format=fmt), 16)
    assert out.shape == (3, 16, 16) and out.dtype == torch.uint8


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    levels = np.tile(np.array([[0, 128 * 257, 65535]], dtype=np.uint16), (3, 1))
    path = _saved(tmp_path, Image.fromarray(levels), "g16.png")
    assert Image.open(path).mode == "I;16"
    out = decode_image(path, 3)
    assert out[0, 1].tolist() == [0, 128, 255]  # clipping would give [0, 255, 255]
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])


def test_transparency_is_composited_on_white(tmp_path):
    img = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    out = decode_image(_saved(tmp_path, img, "t.png"), 8)
    assert bool((out == 255).all())


@pytest.mark.parametrize("fmt,ext", [("JPEG", "jpeg"), ("BMP", "bmp"), ("GIF", "gif"), ("WEBP", "webp"), ("TIFF", "tiff")])
def test_supported_formats_decode(tmp_path, fmt, ext):
    path = tmp_path / f"x.{ext}"
    path.write_bytes(png_bytes(1, fmt=fmt))
    assert decode_image(path, 12).shape == (3, 12, 12)


def test_shorter_side_resize_then_centre_crop(tmp_path):
    arr = np.zeros((20, 60, 3), dtype=np.uint8)
    arr[:, :20, 0] = 255  # red left third
    arr[:, 20:40, 1] = 255  # green centre third
    arr[:, 40:, 2] = 255  # blue right third
    out = decode_image(_saved(tmp_path, Image.fromarray(arr), "wide.png"), 10)
    assert out.shape == (3, 10, 10)
    inner = out[:, :, 1:-1]  # the edge columns see a little of the neighbours through the filter
    assert bool((inner[1] == 255).all()) and bool((inner[0] == 0).all()) and bool((inner[2] == 0).all())


def test_decode_image_reasons(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG nonsense")
    with pytest.raises(ValueError, match="not a readable image"):
        decode_image(bad, 8)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")  # a student's zero-byte file was "unknown format or damaged file"
    with pytest.raises(ValueError, match=r"^empty file \(0 bytes\)$"):
        decode_image(empty, 8)
    with pytest.raises(ValueError, match="too large"):
        decode_image(_saved(tmp_path, Image.new("RGB", (40, 40)), "ok.png"), 8, max_pixels=100)


# ---------------------------------------------------------------------------- user errors


@pytest.mark.parametrize("name, said", [
    ("data.zip", "'data.zip' is not a zip archive: its contents are not in zip format"),  # renamed, or cut short
    ("data.ZIP", "'data.ZIP' is not a zip archive: its contents are not in zip format"),
    ("photos.tar.gz", "'photos.tar.gz' is a .tar.gz archive, which the studio does not read"),
    ("photos.rar", "'photos.rar' is a .rar archive, which the studio does not read"),
    ("photos.7z", "'photos.7z' is a .7z archive"),
    ("notes.txt", "'notes.txt' is not a zip archive or a folder of class folders"),
])
def test_not_a_zip(tmp_path, work_dir, name, said):
    """Every kind of file that is not a zip gets a message for what it is, naming the user's file."""
    bad = tmp_path / name
    bad.write_bytes(b"\x1f\x8b\x08 this is not a zip" if name.endswith(".gz") else b"this is not a zip")
    with pytest.raises(StudioError, match=re.escape(said)) as err:
        load_dataset(bad, work_dir)
    assert "Use a .zip file that contains one folder per class" in str(err.value)
    cut = tmp_path / "cut.zip"  # a real zip cut short: the same plain message, not a traceback
    cut.write_bytes(make_zip(tmp_path / "whole.zip", class_files({"a": 3, "b": 3})).read_bytes()[:-30])
    with pytest.raises(StudioError, match="'cut.zip' is not a zip archive"):
        load_dataset(cut, work_dir)


def test_missing_source(tmp_path, work_dir):
    with pytest.raises(StudioError, match="Could not find"):
        load_dataset(tmp_path / "nope.zip", work_dir)


def test_empty_zip(tmp_path, work_dir):
    with pytest.raises(StudioError, match="empty"):
        load_dataset(make_zip(tmp_path / "e.zip", {}), work_dir)
    with pytest.raises(StudioError, match="empty"):
        load_dataset(make_zip(tmp_path / "e2.zip", {"__MACOSX/._x": b"", ".DS_Store": b""}), work_dir)


def test_a_folder_on_the_server_is_advised_as_a_folder_not_as_an_upload(tmp_path, work_dir):
    """An empty server folder read "(the upload is empty) ... zip them and upload again"."""
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    with pytest.raises(StudioError) as err:
        load_dataset(empty, work_dir)
    # "try again" on the command line and the dashboard alike (a command-line user read "choose the folder again")
    assert "(the folder is empty)" in str(err.value) and str(err.value).endswith("and try again.")
    assert "upload" not in str(err.value) and "zip" not in str(err.value)
    (empty / "cats").mkdir()
    for i in range(6):
        (empty / "cats" / f"{i}.png").write_bytes(png_bytes(i))
    with pytest.raises(StudioError, match=r"only one class folder \('cats'\).*then try again"):
        load_dataset(empty, work_dir)
    with pytest.raises(StudioError, match="zip them and try again"):  # a zip keeps its advice to zip
        load_dataset(make_zip(tmp_path / "e.zip", {}), work_dir)
    # every other refusal of a folder too: too few images in a class, no readable image, a mixed layout
    (empty / "dogs").mkdir()
    (empty / "dogs" / "0.png").write_bytes(png_bytes(0))
    with pytest.raises(StudioError) as err:
        load_dataset(empty, work_dir)
    assert "needs at least 5 readable images" in str(err.value) and "then try again" in str(err.value)
    assert "upload" not in str(err.value), str(err.value)
    broken = tmp_path / "broken_folder"
    for c in ("a", "b"):
        (broken / c).mkdir(parents=True)
        (broken / c / "x.png").write_bytes(b"not a picture")
    with pytest.raises(StudioError) as err:
        load_dataset(broken, work_dir)
    assert "None of the image files could be read" in str(err.value) and "upload" not in str(err.value), str(err.value)
    assert err.value.skipped, "the same error, its skipped files kept"
    mixed = tmp_path / "mixed_folder"
    for d in ("train/cats", "train/dogs", "extras"):
        (mixed / d).mkdir(parents=True)
        for i in range(5):
            (mixed / d / f"{i}.png").write_bytes(png_bytes(i))
    with pytest.raises(StudioError) as err:
        load_dataset(mixed, work_dir)
    assert "upload" not in str(err.value) and "try again" in str(err.value), str(err.value)
    with pytest.raises(StudioError) as err:  # an OOD set from a folder: its class mismatch said for a folder
        load_ood_dataset(broken, work_dir, 16, ["cats", "dogs"])
    assert "do not match the training classes" in str(err.value) and "upload" not in str(err.value), str(err.value)


def test_images_without_class_folders(tmp_path, work_dir):
    with pytest.raises(StudioError, match="not inside class folders"):
        load_dataset(make_zip(tmp_path / "flat.zip", {"a.png": png_bytes(1), "b.png": png_bytes(2)}), work_dir)


def test_single_class(tmp_path, work_dir):
    with pytest.raises(StudioError, match="only one class folder \\('cats'\\).*at least 2 classes"):
        load_dataset(make_zip(tmp_path / "one.zip", class_files({"cats": 6})), work_dir)
    # a zip of unsorted pictures in one folder is told to sort them, not only to add classes
    with pytest.raises(StudioError, match="if 'my pictures' holds pictures of several kinds, sort them into one "
                                          "folder per kind; if it is one class, add a folder for each other class"):
        load_dataset(make_zip(tmp_path / "loose.zip", class_files({"my pictures": 6})), work_dir)


def test_too_few_images_names_class_minimum_and_count(tmp_path, work_dir):
    src = make_zip(tmp_path / "few.zip", class_files({"cats": 6, "dogs": 3}))
    with pytest.raises(StudioError) as err:
        load_dataset(src, work_dir, min_images_per_class=5)
    message = str(err.value)
    assert "'dogs' has 3 readable images" in message and "at least 5" in message and "cats" not in message


def test_nothing_readable(tmp_path, work_dir):
    files = {f"{c}/{i}.jpg": b"garbage" for c in ("cats", "dogs") for i in range(5)}
    with pytest.raises(StudioError, match="None of the image files could be read"):
        load_dataset(make_zip(tmp_path / "junk.zip", files), work_dir)


def test_class_folders_without_images(tmp_path, work_dir):
    files = {"cats/a.txt": b"x", "dogs/b.doc": b"y"}
    with pytest.raises(StudioError, match="No image files were found"):
        load_dataset(make_zip(tmp_path / "txt.zip", files), work_dir)


def test_bad_fractions(tmp_path, work_dir):
    src = make_zip(tmp_path / "d.zip", class_files({"cats": 5, "dogs": 5}))
    with pytest.raises(StudioError, match="fractions"):
        load_dataset(src, work_dir, val_fraction=0.6, test_fraction=0.5)


def test_memory_cap_refuses_before_decoding(tmp_path, work_dir, monkeypatch):
    src = make_zip(tmp_path / "d.zip", class_files({"cats": 5, "dogs": 5}))
    monkeypatch.setattr(data, "_decode_all", lambda *a, **k: pytest.fail("decoded anyway"))
    with pytest.raises(StudioError, match="smaller image size"):
        load_dataset(src, work_dir, image_size=64, max_cache_bytes=10 * 3 * 64 * 64 - 1)


# ---------------------------------------------------------------------------- unsafe archives


def _zip_with_info(path: Path, info: zipfile.ZipInfo, payload: bytes = b"x") -> Path:
    files = class_files({"cats": 5, "dogs": 5})
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
        zf.writestr(info, payload)
    return path


@pytest.mark.parametrize("name,why", [
    ("/etc/evil.png", "absolute path"),
    ("C:/evil.png", "absolute path"),
    ("cats/../../evil.png", "outside the archive"),
    ("..\\evil.png", "outside the archive"),
])
def test_unsafe_paths_are_refused(tmp_path, work_dir, name, why):
    src = _zip_with_info(tmp_path / "evil.zip", zipfile.ZipInfo(name))
    with pytest.raises(StudioError, match=why) as err:
        load_dataset(src, work_dir)
    assert name in str(err.value)
    assert not (tmp_path / "evil.png").exists()
    assert not any(work_dir.iterdir())  # nothing kept from a refused zip


def test_symlink_member_is_refused(tmp_path, work_dir):
    link = zipfile.ZipInfo("cats/link.png")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    src = _zip_with_info(tmp_path / "link.zip", link, b"/etc/passwd")
    with pytest.raises(StudioError, match="symbolic link") as err:
        safe_extract_zip(src, tmp_path / "out")
    assert "cats/link.png" in str(err.value)


def test_too_many_members(tmp_path, work_dir):
    src = make_zip(tmp_path / "many.zip", class_files({"cats": 5, "dogs": 5}))
    with pytest.raises(StudioError, match="10 entries, the limit is 9"):
        load_dataset(src, work_dir, limits=ZipLimits(max_members=9))


def test_highly_compressible_member_over_ratio_cap(tmp_path, work_dir):
    files = class_files({"cats": 5, "dogs": 5})
    files["cats/zeros.bmp"] = bytes(4 * 1024**2)
    with pytest.raises(StudioError, match="zip bomb") as err:
        load_dataset(make_zip(tmp_path / "bomb.zip", files), work_dir)
    assert "cats/zeros.bmp" in str(err.value)


def _patch_central_file_size(path: Path, member: str, new_size: int) -> None:
    """Make the central directory lie about a member's uncompressed size."""
    raw = bytearray(path.read_bytes())
    pos = raw.index(b"PK\x01\x02")  # first central directory header
    while True:
        name_len = struct.unpack_from("<H", raw, pos + 28)[0]
        if raw[pos + 46: pos + 46 + name_len].decode() == member:
            struct.pack_into("<I", raw, pos + 24, new_size)  # uncompressed size field
            break
        pos = raw.index(b"PK\x01\x02", pos + 4)
    path.write_bytes(bytes(raw))


def test_zip_bomb_with_lying_header_is_refused(tmp_path, work_dir):
    files = class_files({"cats": 5, "dogs": 5})
    files["cats/zeros.bmp"] = bytes(4 * 1024**2)
    src = make_zip(tmp_path / "liar.zip", files)
    _patch_central_file_size(src, "cats/zeros.bmp", 1000)  # passes every header check
    assert zipfile.ZipFile(src).getinfo("cats/zeros.bmp").file_size == 1000
    with pytest.raises(StudioError, match="cats/zeros.bmp"):
        load_dataset(src, work_dir)
    assert not any(work_dir.iterdir())


def test_caps_are_enforced_on_bytes_read_not_headers(tmp_path, monkeypatch):
    """Even if the header checks are fooled (here: switched off), reading stops at the caps."""
    monkeypatch.setattr(data, "_check_declared_sizes", lambda members, limits: None)
    files = class_files({"cats": 5, "dogs": 5})
    files["cats/zeros.bmp"] = bytes(4 * 1024**2)
    src = make_zip(tmp_path / "bomb.zip", files)
    with pytest.raises(StudioError, match="zip bomb"):
        safe_extract_zip(src, tmp_path / "out1")
    with pytest.raises(StudioError, match="more than"):
        safe_extract_zip(src, tmp_path / "out2", ZipLimits(max_total_bytes=1024**2, max_ratio=1e9))
    with pytest.raises(StudioError, match="more than"):
        safe_extract_zip(src, tmp_path / "out3", ZipLimits(max_member_bytes=1024**2, max_ratio=1e9))


def test_safe_extract_writes_only_inside_destination(tmp_path):
    from engine.data import EXTRACT_MANIFEST

    src = make_zip(tmp_path / "ok.zip", {"cats/a.png": b"1", "deep/er/b.png": b"2", ".hidden": b"3"})
    dest = safe_extract_zip(src, tmp_path / "dest")
    assert dest == tmp_path / "dest"
    written = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert written == [EXTRACT_MANIFEST, "cats/a.png", "deep/er/b.png"], "the hidden file only counted, in the record"
    assert json.loads((dest / EXTRACT_MANIFEST).read_text())["ignored_names"] == [".hidden"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "ok.zip"]


# ---------------------------------------------------------------------------- split


@pytest.mark.parametrize("n,expected", [(0, (0, 0, 0)), (1, (1, 0, 0)), (2, (2, 0, 0)), (3, (1, 1, 1)),
                                        (5, (3, 1, 1)), (10, (6, 2, 2)), (11, (7, 2, 2))])
def test_split_sizes_give_each_split_an_image_when_possible(n, expected):
    assert data._split_sizes(n, 0.2, 0.2) == expected


def test_split_with_no_test_fraction():
    assert data._split_sizes(10, 0.2, 0.0) == (8, 2, 0)


def test_stratified_split_is_seeded_and_disjoint():
    labels = torch.tensor([0] * 10 + [1] * 5 + [2] * 3)
    a = stratified_split(labels, 3, 0.2, 0.2, seed=1)
    b = stratified_split(labels, 3, 0.2, 0.2, seed=1)
    c = stratified_split(labels, 3, 0.2, 0.2, seed=2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    everything = torch.cat([a["train"], a["val"], a["test"]])
    assert sorted(everything.tolist()) == list(range(18))
    assert torch.bincount(labels[a["val"]], minlength=3).tolist() == [2, 1, 1]
    assert torch.bincount(labels[a["test"]], minlength=3).tolist() == [2, 1, 1]


def test_load_dataset_seed_determinism(tmp_path, work_dir):
    src = make_zip(tmp_path / "d.zip", class_files({"cats": 8, "dogs": 8}))
    first = load_dataset(src, work_dir, image_size=16, seed=3)
    again = load_dataset(src, work_dir, image_size=16, seed=3)
    other = load_dataset(src, work_dir, image_size=16, seed=4)
    assert torch.equal(first.test.images, again.test.images)
    assert not torch.equal(first.test.images, other.test.images)
    assert first.report.split_counts == other.report.split_counts


def test_image_set_subset():
    s = ImageSet(torch.zeros(4, 3, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 0, 1]), ["a", "b"])
    assert len(s.subset([1, 3])) == 2 and s.subset([1, 3]).labels.tolist() == [1, 1]
    assert len(s.subset(torch.tensor([True, False, False, True]))) == 2
    assert len(s.subset([])) == 0 and s.subset([]).images.shape == (0, 3, 2, 2)


# ---------------------------------------------------------------------------- cache, OOD, inspect


def test_reloading_same_upload_uses_memory_cache(tmp_path, work_dir, monkeypatch):
    files = class_files({"cats": 5, "dogs": 5})
    files["dogs/copy.png"] = files["dogs/000.png"]  # a copy group, and a greyscale picture, to be measured
    files["cats/grey.png"] = png_bytes(3, mode="L")
    src = make_zip(tmp_path / "d.zip", files)
    first = load_dataset(src, work_dir, image_size=16)
    assert first.report.duplicate_groups and first.report.greyscale == 1
    monkeypatch.setattr(data, "_decode_all", lambda *a, **k: pytest.fail("decoded again"))
    monkeypatch.setattr(data, "_materialise", lambda *a, **k: pytest.fail("extracted again"))
    real_greyscale = data.is_greyscale
    # nor measured again: the copy groups and the greyscale pictures (the Data page loads the dataset every rerun)
    monkeypatch.setattr(data, "_find_copy_groups", lambda *a, **k: pytest.fail("copies searched again"))
    monkeypatch.setattr(data, "is_greyscale", lambda *a, **k: pytest.fail("greyscale measured again"))
    start = time.perf_counter()
    second = load_dataset(src, work_dir, image_size=16, seed=0)
    assert time.perf_counter() - start < 0.5
    assert torch.equal(first.train.images, second.train.images)
    assert first.report == second.report
    other = load_dataset(src, work_dir, image_size=16, seed=1)  # another split: the measures follow its rows
    assert torch.equal(other.train.greyscale(), real_greyscale(other.train.images))
    assert other.report.duplicate_groups == first.report.duplicate_groups
    # A copy of the same bytes under another name is the same upload.
    copy = tmp_path / "copy.zip"
    copy.write_bytes(src.read_bytes())
    load_dataset(copy, work_dir, image_size=16)


def test_folder_cache_notices_changes(tmp_path, work_dir):
    root = make_folder(tmp_path / "f", class_files({"cats": 5, "dogs": 5}))
    assert load_dataset(root, work_dir, image_size=16).report.counts["cats"] == 5
    (root / "cats" / "new.png").write_bytes(png_bytes(99))
    assert load_dataset(root, work_dir, image_size=16).report.counts["cats"] == 6


def test_ood_dataset_maps_labels_to_training_order(tmp_path, work_dir):
    files = {"zebra/0.png": png_bytes(1), "ant/0.png": png_bytes(2), "ant/1.png": png_bytes(3)}
    ood = load_ood_dataset(make_zip(tmp_path / "ood.zip", files), work_dir, 16, ["zebra", "ant"])
    assert ood.classes == ["zebra", "ant"]
    assert sorted(ood.labels.tolist()) == [0, 1, 1]
    assert ood.images.shape == (3, 3, 16, 16)


def test_ood_class_mismatch_names_missing_and_extra(tmp_path, work_dir):
    files = {"cats/0.png": png_bytes(1), "horses/0.png": png_bytes(2)}
    with pytest.raises(StudioError) as err:
        load_ood_dataset(make_zip(tmp_path / "ood.zip", files), work_dir, 16, ["cats", "dogs"])
    message = str(err.value)
    assert "missing: 'dogs'" in message and "'horses'" in message


def test_inspect_dataset_reports_without_training(tmp_path, work_dir):
    files = class_files({"cats": 5, "dogs": 6})
    files["cats/readme.md"] = b"# notes"
    report = inspect_dataset(make_zip(tmp_path / "d.zip", files), work_dir)
    assert isinstance(report, DataReport)
    assert report.counts == {"cats": 5, "dogs": 6}
    assert [s.path for s in report.skipped] == ["cats/readme.md"]
    assert sum(report.split_counts["train"].values()) + sum(report.split_counts["val"].values()) \
        + sum(report.split_counts["test"].values()) == 11


def test_decoding_a_thousand_small_images_is_fast(tmp_path, work_dir):
    payload = {f"{c}/{i}.png": png_bytes(i, size=(64, 64)) for c in ("a", "b") for i in range(250)}
    root = make_folder(tmp_path / "many", payload)
    start = time.perf_counter()
    splits = load_dataset(root, work_dir, image_size=64)
    assert len(splits.train) + len(splits.val) + len(splits.test) == 500
    assert time.perf_counter() - start < 10  # ~1 s on 2 cores; generous for slow CI


def test_is_decoded_says_whether_load_dataset_would_decode_anything(tmp_path):
    # the Model page redoes a dataset check after a refresh only when this says no image would be decoded
    from conftest import write_tiny_zip

    from engine.data import NotDecoded, clear_cache, is_decoded, load_dataset

    clear_cache()
    z = write_tiny_zip(tmp_path / "d.zip", per_class=6)
    assert not is_decoded(z, 16) and not is_decoded(tmp_path / "gone.zip", 16)
    load_dataset(z, tmp_path / "work", image_size=16)
    assert is_decoded(z, 16) and not is_decoded(z, 32), "one entry per image size"
    z.write_bytes(write_tiny_zip(tmp_path / "other.zip", per_class=7).read_bytes())  # new content, same name
    assert not is_decoded(z, 16)
    with pytest.raises(NotDecoded):  # and asked for cached data only, nothing is decoded
        load_dataset(z, tmp_path / "work", image_size=16, cached_only=True)
    folder = tmp_path / "work" / next(p.name for p in (tmp_path / "work").iterdir())
    load_dataset(folder, tmp_path / "work", image_size=16)
    assert not is_decoded(folder, 16), "a folder would need a walk of its files: never said to be cheap"
    clear_cache()


def test_a_phone_photo_over_pillows_bomb_limit_is_decoded_at_reduced_scale_and_a_png_is_not(tmp_path):
    """A 108 or 200 MP phone JPEG was refused ("image is too large (12000x10000 pixels ...). Try a JPEG")
    although libjpeg decodes it at 1/8 scale per side; a PNG of that size still has to be decoded whole."""
    import warnings

    from engine.predict import decode_bytes, describe_decoding

    big = Image.new("RGB", (10000, 9000), (200, 30, 30))  # 90 MP: over Pillow's 89.5 MP warning
    raw = io.BytesIO()
    big.save(raw, format="JPEG", quality=30)
    path = tmp_path / "phone photo.jpg"
    path.write_bytes(raw.getvalue())
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # nor a warning (Try it logged one)
        image = decode_image(path, 32)
        assert image.shape == (3, 32, 32) and abs(int(image[0, 16, 16]) - 200) < 8
        assert describe_decoding(path, 32)[0] == "JPEG image, 10000 x 9000 pixels, colour mode RGB"
        with pytest.raises(ValueError, match=r"too large \(10000x9000 pixels; decoded at reduced scale still "
                                             r"1250x1125, limit 1,000,000\)"):
            decode_image(path, 32, max_pixels=1_000_000)  # the limit applies to what is decoded
    png = tmp_path / "scan.png"
    Image.new("1", (10000, 9000)).save(png)
    with pytest.raises(StudioError, match="too large.*Scale it down"):
        decode_bytes(png.read_bytes(), "scan.png", 32)


def test_class_folders_with_sub_folders_are_said_to_form_one_class(tmp_path, work_dir):
    """angular/square/ and angular/triangle/ became one class 'angular' without a word to a user who meant three."""
    files = {f"{c}/{i}.png": png_bytes(i + 7 * n) for n, c in enumerate(("round/circle", "angular/square",
                                                                         "angular/triangle/small")) for i in range(6)}
    data = load_dataset(make_zip(tmp_path / "nested.zip", files), work_dir, min_images_per_class=5)
    assert data.report.classes == ["angular", "round"]
    notes = [n for n in data.report.notes if "sub-folders" in n]
    assert notes == ["2 classes hold images in sub-folders: 'angular' (square/, triangle/); 'round' (circle/). Each "
                     "such class takes its sub-folders' images as one class. To train a sub-folder as a class of its "
                     "own, put it beside the other class folders."], "one note for all classes, not one each"
    # the same sub-folders in every class are a grouping (years), not classes put one level too deep
    years = {f"{c}/{y}/{i}.png": png_bytes(i + 7 * n + 50 * k) for n, c in enumerate(("cats", "dogs"))
             for k, y in enumerate(("2019", "2020")) for i in range(3)}
    grouped = load_dataset(make_zip(tmp_path / "years.zip", years), work_dir, min_images_per_class=5)
    (note,) = [n for n in grouped.report.notes if "sub-folders" in n]
    assert note.startswith("Every class holds the same sub-folders (2019/, 2020/)") and "put it beside" not in note
    flat = load_dataset(make_zip(tmp_path / "flat.zip", class_files({"cats": 6, "dogs": 6})), work_dir)
    assert not any("sub-folder" in n for n in flat.report.notes)


def test_a_file_holding_several_pictures_is_said_with_the_page_used(tmp_path, work_dir):
    """A geology instructor's 3-page TIFF (crossed and plane polarised light) was read as one picture without a
    word, on the Data page and on Try it: both now say only its first page is used."""
    from engine.predict import describe_decoding

    def pages(n: int, fmt: str) -> bytes:
        frames = [Image.fromarray(np.full((16, 20, 3), 40 * i, dtype=np.uint8)) for i in range(n)]
        buf = io.BytesIO()
        frames[0].save(buf, format=fmt, save_all=True, append_images=frames[1:])
        return buf.getvalue()

    files = class_files({"quartz": 5, "biotite": 5})
    files["quartz/stack.tif"] = pages(3, "TIFF")
    one = load_dataset(make_zip(tmp_path / "one.zip", files), work_dir, image_size=16)
    assert one.report.counts == {"biotite": 5, "quartz": 6}, "read, its first page"
    assert ("quartz/stack.tif holds 3 pictures (pages of a TIFF, frames of an animation): only the first is used. To "
            "train on the others, save each as a file of its own.") in one.report.notes
    files.update({"biotite/turn.gif": pages(4, "GIF"), "biotite/single.tif": pages(1, "TIFF"),
                  **{f"quartz/s{i}.tif": pages(2, "TIFF") for i in range(3)}})
    many = load_dataset(make_zip(tmp_path / "many.zip", files), work_dir, image_size=16)
    (note,) = [n for n in many.report.notes if "more than one picture" in n]
    assert note.startswith("5 files hold more than one picture (pages of a TIFF, frames of an animation): only the "
                           "first of each is used (biotite/turn.gif, 4 pictures; quartz/s0.tif, 2 pictures; "
                           "quartz/s1.tif, 2 pictures; and 2 more)."), note
    plain = load_dataset(make_zip(tmp_path / "plain.zip", class_files({"a": 5, "b": 5})), work_dir, image_size=16)
    assert not any("picture (pages" in n or "pictures (pages" in n for n in plain.report.notes)
    misnamed = class_files({"a": 5, "b": 5})  # counted in the decoding pass, by the content's format, not the name's
    misnamed["a/scan.png"] = pages(2, "TIFF")
    renamed = load_dataset(make_zip(tmp_path / "misnamed.zip", misnamed), work_dir, image_size=16)
    assert any(n.startswith("a/scan.png holds 2 pictures") for n in renamed.report.notes), renamed.report.notes
    (tmp_path / "stack.tif").write_bytes(pages(3, "TIFF"))
    said = describe_decoding(tmp_path / "stack.tif", 16)
    assert said[1] == ("page 1 of its 3 used (the model answers one picture; save another page as a file of its own "
                       "to try it)"), said
    (tmp_path / "one.tif").write_bytes(pages(1, "TIFF"))
    assert not any("page 1" in n for n in describe_decoding(tmp_path / "one.tif", 16))
    # a phone's JPEG with a second picture (MPO: a depth or gain map) is one photo, not pages
    (tmp_path / "phone.jpg").write_bytes(pages(2, "MPO"))
    assert Image.open(tmp_path / "phone.jpg").n_frames == 2
    assert not any("page 1" in n for n in describe_decoding(tmp_path / "phone.jpg", 16))
    phone = load_dataset(make_zip(tmp_path / "phone.zip", {**class_files({"a": 5, "b": 5}),
                                                           "a/phone.jpg": pages(2, "MPO")}), work_dir, image_size=16)
    assert phone.report.counts == {"a": 6, "b": 5} and not any("pictures (pages" in n for n in phone.report.notes)
