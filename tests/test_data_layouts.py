"""Datasets as users really bring them: pre-split exports, wrapper folders, zips without the UTF-8
flag, unwritable members, phone formats, duplicates, labels files, imbalanced classes, and the
`inspect` dry run. Every input is generated here, tiny."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import unicodedata
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from conftest import make_folder
from engine import data
from engine.data import (
    LAYOUT_CLASS_FOLDERS,
    LAYOUT_LABELS_FILE,
    LAYOUT_PRE_SPLIT,
    LAYOUT_PRE_SPLIT_LABELS,
    DatasetError,
    balanced_sample_indices,
    class_imbalance,
    class_weights,
    find_duplicate_groups,
    inspect_dataset,
    load_dataset,
    load_ood_dataset,
    normalise_class_name,
)
from engine.errors import StudioError
from engine.metrics import balanced_accuracy, macro_f1

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _fresh_cache():
    data.clear_cache()
    yield
    data.clear_cache()


@pytest.fixture
def work_dir(tmp_path) -> Path:
    return tmp_path / "work"


# ---------------------------------------------------------------------------- helpers


def picture(seed: int, size: int = 24) -> Image.Image:
    """A smooth random picture (6x6 colours upscaled): distinct pictures differ in ~30 of 64 hash bits."""
    cells = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(cells).resize((size, size), Image.Resampling.BICUBIC)


def encoded(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png(seed: int) -> bytes:
    return encoded(picture(seed))


def make_zip(path: Path, files: dict) -> Path:
    """`files`: name -> bytes; a name given as bytes is stored as is, without the UTF-8 flag."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, payload in files.items():
            zf.writestr(RawNameInfo(name) if isinstance(name, bytes) else name, payload)
    return path


class RawNameInfo(zipfile.ZipInfo):
    """A member whose name bytes are written verbatim with the UTF-8 flag clear (as old tools do)."""

    def __init__(self, raw: bytes):
        super().__init__(raw.decode("cp437"))
        self.raw_name = raw
        self.compress_type = zipfile.ZIP_DEFLATED

    def _encodeFilenameFlags(self):
        return self.raw_name, self.flag_bits & ~0x800


def class_files(counts: dict[str, int], prefix: str = "", start: int = 0) -> dict[str, bytes]:
    return {f"{prefix}{cls}/{i:03d}.png": png(start + 1000 * c + i)
            for c, (cls, n) in enumerate(counts.items()) for i in range(n)}


def presplit_files(val_name: str = "valid", prefix: str = "") -> dict[str, bytes]:
    files = {}
    for split, n, start in (("train", 6, 0), (val_name, 2, 100), ("test", 3, 200)):
        files.update(class_files({"cats": n, "dogs": n}, prefix=f"{prefix}{split}/", start=start))
    return files


# ---------------------------------------------------------------------------- 1. pre-split exports


@pytest.mark.parametrize("val_name", ["valid", "val", "validation"])
def test_pre_split_export_uses_the_given_split(tmp_path, work_dir, val_name):
    src = make_zip(tmp_path / "export.zip", presplit_files(val_name))
    splits = load_dataset(src, work_dir, image_size=16, seed=3)
    rep = splits.report
    assert splits.classes == ["cats", "dogs"]  # never "test", "train", "valid"
    assert rep.layout == LAYOUT_PRE_SPLIT and rep.split_given
    assert rep.split_counts == {"train": {"cats": 6, "dogs": 6}, "val": {"cats": 2, "dogs": 2},
                                "test": {"cats": 3, "dogs": 3}}
    assert (len(splits.train), len(splits.val), len(splits.test)) == (12, 4, 6)
    for split, folder in (("train", "train"), ("val", val_name), ("test", "test")):
        assert all(f.startswith(f"{folder}/") for f in rep.split_files[split])
    assert rep.split_files["val"] == [f"{val_name}/cats/000.png", f"{val_name}/cats/001.png",
                                      f"{val_name}/dogs/000.png", f"{val_name}/dogs/001.png"]
    assert any("used as is" in n for n in rep.notes)
    # The images of each split really are that folder's pictures (labels in folder order).
    expected = data.decode_image(make_folder(tmp_path / "one", {"x.png": png(100)}) / "x.png", 16)
    assert torch.equal(splits.val.images[0], expected) and splits.val.labels.tolist() == [0, 0, 1, 1]


def test_pre_split_split_does_not_depend_on_seed_and_reports_a_missing_class(tmp_path, work_dir):
    files = presplit_files()
    files = {k: v for k, v in files.items() if not k.startswith("test/dogs/")}
    files["test/README.txt"] = b"exported by a tool"
    src = make_zip(tmp_path / "e.zip", files)
    a = load_dataset(src, work_dir, image_size=16, seed=0).report
    b = load_dataset(src, work_dir, image_size=16, seed=9).report
    assert a.split_files == b.split_files
    assert any("'test/'" in w and "'dogs'" in w for w in a.warnings)
    assert a.split_counts["test"] == {"cats": 3, "dogs": 0}


def test_pre_split_without_val_carves_validation_from_train(tmp_path, work_dir):
    files = {k: v for k, v in presplit_files().items() if not k.startswith("valid/")}
    rep = load_dataset(make_zip(tmp_path / "e.zip", files), work_dir, image_size=16, val_fraction=0.34).report
    assert rep.split_given and rep.split_counts["val"] == {"cats": 2, "dogs": 2}
    assert rep.split_counts["train"] == {"cats": 4, "dogs": 4}
    assert all(f.startswith("train/") for f in rep.split_files["val"])
    assert set(rep.split_files["test"]) == {f"test/{c}/{i:03d}.png" for c in ("cats", "dogs") for i in range(3)}
    assert any("No validation folder" in n for n in rep.notes)


def test_pre_split_mixed_with_class_folders_is_refused_naming_the_layout(tmp_path, work_dir):
    files = presplit_files()
    files.update(class_files({"birds": 5}))
    with pytest.raises(StudioError, match=r"mixes split folders .*test/.*train/.*birds/"):
        load_dataset(make_zip(tmp_path / "mixed.zip", files), work_dir, image_size=16)


@pytest.mark.parametrize("split, others", [("train", ["extras"]), ("test", ["cats", "dogs"]), ("Validation", ["birds"])])
def test_one_split_folder_of_class_folders_beside_other_folders_is_refused(tmp_path, work_dir, split, others):
    """train/cats and train/dogs beside extras/ would otherwise read as class folders: one class called
    "train" holding two classes' images."""
    files = class_files({"cats": 4, "dogs": 4}, prefix=f"{split}/")
    files.update(class_files({o: 4 for o in others}))
    with pytest.raises(StudioError, match=rf"a split folder \({split}/, holding cats/, dogs/\) beside other folders"
                                          rf" \({others[0]}/.*If '{split}' is one of your classes"):
        load_dataset(make_zip(tmp_path / "one-split.zip", files), work_dir, image_size=16)


def test_a_class_named_like_a_split_with_its_images_directly_inside_is_a_class(tmp_path, work_dir):
    rep = load_dataset(make_zip(tmp_path / "c.zip", class_files({"test": 5, "cats": 5})), work_dir, image_size=16).report
    assert rep.classes == ["cats", "test"] and rep.layout == LAYOUT_CLASS_FOLDERS


def test_a_class_named_like_a_split_with_its_images_in_sub_folders_is_still_a_class(tmp_path, work_dir):
    """test/2019, test/2020 (a class "test" sorted by year) beside cats/: not a split, since its folders are
    not named like the classes beside it; one sub-folder is never a split."""
    files = class_files({"2019": 3, "2020": 3}, prefix="test/")
    files.update(class_files({"cats": 6}))
    rep = load_dataset(make_zip(tmp_path / "years.zip", files), work_dir, image_size=16).report
    assert rep.classes == ["cats", "test"] and rep.counts == {"cats": 6, "test": 6}
    files = class_files({"a": 6}, prefix="validation/")
    files.update(class_files({"a": 6}, prefix="cats/"))
    rep = load_dataset(make_zip(tmp_path / "one.zip", files), work_dir, image_size=16).report
    assert rep.classes == ["cats", "validation"]


def test_a_labels_file_beside_a_folder_named_like_a_split_is_read_as_labels(tmp_path, work_dir):
    files = {**class_files({"batch1": 4, "batch2": 4}, prefix="train/"), **class_files({"x": 4}, prefix="extra/")}
    names = sorted(files)
    files["labels.csv"] = ("file_name,label\n" + "".join(f"{n},{'cat' if i % 2 else 'dog'}\n"
                                                        for i, n in enumerate(names))).encode()
    rep = load_dataset(make_zip(tmp_path / "labelled.zip", files), work_dir, image_size=16,
                       min_images_per_class=3).report
    assert rep.classes == ["cat", "dog"], rep.layout


def test_pre_split_class_missing_from_train_is_refused(tmp_path, work_dir):
    files = presplit_files()
    files.update(class_files({"birds": 5}, prefix="test/"))
    with pytest.raises(StudioError, match="'birds' has no images in the train/ folder"):
        load_dataset(make_zip(tmp_path / "e.zip", files), work_dir, image_size=16, min_images_per_class=3)


# ---------------------------------------------------------------------------- 2. wrapper folders


def test_double_wrapper_and_stray_cover_image(tmp_path, work_dir):
    files = class_files({"cats": 5, "dogs": 5}, prefix="dataset/dataset/")
    rep = load_dataset(make_zip(tmp_path / "w.zip", files), work_dir, image_size=16).report
    assert rep.classes == ["cats", "dogs"] and rep.layout == LAYOUT_CLASS_FOLDERS

    files = class_files({"cats": 5, "dogs": 5}, prefix="dataset/")
    files["dataset/cover.jpg"] = encoded(picture(9), "JPEG")
    rep = load_dataset(make_zip(tmp_path / "c.zip", files), work_dir, image_size=16).report
    assert rep.classes == ["cats", "dogs"]
    assert [(s.path, s.reason) for s in rep.skipped] == [("dataset/cover.jpg", "not inside a class folder")]


# ---------------------------------------------------------------------------- 3. member names


def test_macos_zip_without_utf8_flag_gives_nfc_class_names(tmp_path, work_dir):
    files = {}
    for c, name in enumerate(("Äpfel", "Birnen")):
        for i in range(5):
            files[unicodedata.normalize("NFD", f"{name}/{i}.png").encode("utf-8")] = png(10 * c + i)
    splits = load_dataset(make_zip(tmp_path / "mac.zip", files), work_dir, image_size=16)
    assert splits.classes == ["Birnen", "Äpfel"] and unicodedata.is_normalized("NFC", splits.classes[1])
    assert splits.report.warnings == []  # valid UTF-8: no guess, no warning
    # The user's OOD set typed on another system (NFD class list, NFC folders) matches.
    ood = make_zip(tmp_path / "ood.zip", {"Äpfel/0.png": png(50), "Birnen/0.png": png(51)})
    ood_set = load_ood_dataset(ood, work_dir, 16, [unicodedata.normalize("NFD", c) for c in splits.classes])
    assert ood_set.classes == splits.classes and sorted(ood_set.labels.tolist()) == [0, 1]


@pytest.mark.parametrize("encoding, names, expected_word", [
    ("gbk", ("猫", "狗"), "GBK"),
    ("cp437", ("Äpfel", "Brötchen"), "437"),
    ("cp1252", ("Äpfel", "Brötchen"), "1252"),
])
def test_legacy_code_page_names_are_decoded_and_warned_about(tmp_path, work_dir, encoding, names, expected_word):
    files = {f"{name}/{i}.png".encode(encoding): png(10 * c + i) for c, name in enumerate(names) for i in range(5)}
    rep = load_dataset(make_zip(tmp_path / "win.zip", files), work_dir, image_size=16).report
    assert rep.classes == sorted(names)
    assert len(rep.warnings) == 1 and expected_word in rep.warnings[0] and "UTF-8" in rep.warnings[0]
    # about the names, not the figures: the model card says it as such, and Results with the run's data, not in
    # the box of warnings beside its figures (a geology instructor's accented names, read right, stood as "1 warning"
    # there and on the card)
    from dataclasses import asdict
    from types import SimpleNamespace

    from app.app_pages import results
    from engine.config import RunConfig
    from engine.data import is_names_warning
    from engine.export import data_card_section

    assert is_names_warning(rep.warnings[0]) and not is_names_warning("A picture is under two classes.")
    card = data_card_section(RunConfig(), asdict(rep))
    assert any(line.startswith("- File names: ") for line in card) and not any("- Warning:" in x for x in card)
    summary = {"data_report": {"warnings": [rep.warnings[0], "A picture is under two classes."]}}
    rec = SimpleNamespace(config={}, owner="local")
    assert results.data_warnings(rec, summary) == ["A picture is under two classes."]
    assert results.data_warnings(rec, summary, names=True) == [rep.warnings[0]]


def test_nfc_and_nfd_folders_of_one_name_are_one_class(tmp_path, work_dir):
    files = {f"Äpfel/{i}.png": png(i) for i in range(3)}  # UTF-8 flag, NFC
    files.update({unicodedata.normalize("NFD", f"Äpfel/n{i}.png").encode(): png(20 + i) for i in range(3)})
    files.update(class_files({"Birnen": 6}, start=40))
    rep = load_dataset(make_zip(tmp_path / "mix.zip", files), work_dir, image_size=16).report
    assert rep.classes == ["Birnen", "Äpfel"] and rep.counts == {"Birnen": 6, "Äpfel": 6}
    assert normalise_class_name(unicodedata.normalize("NFD", "Äpfel")) == "Äpfel"


# ---------------------------------------------------------------------------- 4. one bad member


def test_a_member_with_a_too_long_name_is_skipped_not_fatal(tmp_path, work_dir):
    files = class_files({"cats": 5, "dogs": 5})
    long_name = "cats/" + "x" * 300 + ".png"
    files[long_name] = png(99)
    rep = load_dataset(make_zip(tmp_path / "long.zip", files), work_dir, image_size=16).report
    assert rep.counts == {"cats": 5, "dogs": 5}
    [skip] = rep.skipped
    assert skip.path == long_name and "too long" in skip.reason and "disk" not in skip.reason


def test_an_unwritable_member_is_skipped_with_its_reason(tmp_path, work_dir):
    files = class_files({"cats": 5, "dogs": 5})
    files["dogs/notes"] = b"a file"
    files["dogs/notes/x.png"] = png(77)  # needs a folder where a file already is
    rep = load_dataset(make_zip(tmp_path / "clash.zip", files), work_dir, image_size=16).report
    reasons = {s.path: s.reason for s in rep.skipped}
    assert "same name" in reasons["dogs/notes/x.png"]
    assert rep.counts == {"cats": 5, "dogs": 5}


# ---------------------------------------------------------------------------- 5. formats


def test_jfif_jpe_heic_avif_and_extensionless_photos_are_read(tmp_path, work_dir):
    jpeg = lambda s: encoded(picture(s), "JPEG", quality=90)  # noqa: E731
    files = {"cats/a.jfif": jpeg(1), "cats/b.jpe": jpeg(2), "cats/c.JPG": jpeg(3), "cats/d": jpeg(4),
             "cats/e.heic": encoded(picture(5), "HEIF"), "dogs/f.avif": encoded(picture(6), "AVIF"),
             "dogs/g.ppm": encoded(picture(7), "PPM"), "dogs/h.txt": b"notes"}
    files.update({f"dogs/{i}.png": png(20 + i) for i in range(4)})
    rep = load_dataset(make_folder(tmp_path / "phone", files), work_dir, image_size=16, min_images_per_class=5).report
    assert rep.counts == {"cats": 5, "dogs": 5}
    reasons = {s.path: s.reason for s in rep.skipped}
    assert set(reasons) == {"dogs/g.ppm", "dogs/h.txt"}
    assert "not accepted" in reasons["dogs/g.ppm"] and reasons["dogs/h.txt"] == "not an image file (.txt)"


def test_refused_dataset_lists_skipped_files_in_the_error_and_the_cli(tmp_path, work_dir, capsys):
    files = class_files({"cats": 5})
    files.update({f"dogs/{i}.psd": b"8BPS not really" for i in range(3)})
    src = make_zip(tmp_path / "few.zip", files)
    with pytest.raises(DatasetError) as err:
        load_dataset(src, work_dir, image_size=16)
    assert "'dogs' has 0 readable images" in str(err.value) and "dogs/0.psd" in str(err.value)
    assert {s.path for s in err.value.skipped} == {f"dogs/{i}.psd" for i in range(3)}

    from engine.cli import main

    assert main(["inspect", "--data", str(src), "--data-dir", str(tmp_path / "cli")]) == 2
    out = capsys.readouterr().err
    assert "skipped files (3):" in out and "dogs/2.psd: image format not accepted here (.psd)" in out


# ---------------------------------------------------------------------------- 6. duplicates


def copies_dataset() -> dict[str, bytes]:
    """10 pictures per class; 7 of each appear again as exact copies and as resized JPEG re-exports."""
    files = {}
    for c, cls in enumerate(("cats", "dogs")):
        for i in range(10):
            img = picture(100 * c + i, size=40)
            files[f"{cls}/{i}.png"] = encoded(img)
            if i < 7:
                files[f"{cls}/{i}_copy.png"] = encoded(img)
                files[f"{cls}/{i}_export.jpg"] = encoded(img.resize((33, 33)), "JPEG", quality=75)
    return files


def _group_of(rep) -> dict[str, int]:
    return {f: g for g, group in enumerate(rep.duplicate_groups) for f in group}


def test_copies_never_straddle_splits(tmp_path, work_dir):
    src = make_zip(tmp_path / "copies.zip", copies_dataset())
    for seed in range(4):
        rep = load_dataset(src, work_dir, image_size=16, seed=seed).report
        assert len(rep.duplicate_groups) == 14 and all(len(g) == 3 for g in rep.duplicate_groups)
        group_of = _group_of(rep)
        split_of_group: dict[int, set] = {}
        for split, names in rep.split_files.items():
            for name in names:
                if name in group_of:
                    split_of_group.setdefault(group_of[name], set()).add(split)
        assert all(len(s) == 1 for s in split_of_group.values())
        assert sum(len(v) for v in rep.split_files.values()) == 2 * (10 + 14)
        assert len(rep.split_files["val"]) > 0 and len(rep.split_files["test"]) > 0


def test_split_is_the_same_at_any_decode_size(tmp_path, work_dir):
    src = make_zip(tmp_path / "copies.zip", copies_dataset())
    small = load_dataset(src, work_dir, image_size=12, seed=1).report
    large = load_dataset(src, work_dir, image_size=32, seed=1).report
    assert small.split_files == large.split_files and small.duplicate_groups == large.duplicate_groups


def test_each_duplicate_group_says_whether_its_files_are_identical_or_only_look_alike(tmp_path, work_dir):
    """A new user's exact copies and look-alike leaves were counted as one kind: the report marks each group, and the
    Data page's words count the two kinds."""
    from app.datasets import identical_words

    files = copies_dataset()
    files = {k: v for k, v in files.items() if not (k.endswith("_copy.png") and k[-10] in "3456")}  # 0-2: 3 files
    files = {k: v for k, v in files.items() if not (k.endswith("_export.jpg") and k[-12] in "012")}  # 3-6: a JPEG
    rep = load_dataset(make_zip(tmp_path / "kinds.zip", files), work_dir, image_size=16).report
    kinds = dict(zip(map(tuple, rep.duplicate_groups), rep.duplicate_identical))
    assert kinds[("cats/0.png", "cats/0_copy.png")] is True and kinds[("cats/3.png", "cats/3_export.jpg")] is False
    assert len(rep.duplicate_identical) == len(rep.duplicate_groups) == 14
    assert identical_words(rep.duplicate_identical) == "; 6 groups of identical files, 8 of pictures that look alike"
    assert identical_words([True]) == "; all identical files" and identical_words([]) == ""
    # before dropping: look-alikes may be different pictures (a bioacoustics researcher's 6 groups of look-alike
    # spectrograms were 14 different recordings, beside the advice to drop copies)
    from app.datasets import lookalike_caution

    assert lookalike_caution(rep.duplicate_identical).startswith("8 of these groups are pictures that only look "
                                                                 "alike, not identical files: look at them below")
    assert lookalike_caution([False, False]).startswith("They are pictures that only look alike")
    assert lookalike_caution([True, True]) == "" and lookalike_caution([]) == ""


def test_drop_duplicates_keeps_one_copy(tmp_path, work_dir):
    src = make_zip(tmp_path / "copies.zip", copies_dataset())
    splits = load_dataset(src, work_dir, image_size=16, drop_duplicates=True)
    rep = splits.report
    assert rep.counts == {"cats": 10, "dogs": 10} and len(rep.duplicates_dropped) == 28
    assert len(splits.train) + len(splits.val) + len(splits.test) == 20
    kept = {f for names in rep.split_files.values() for f in names}
    assert all(f.split("/")[1] in {f"{i}.png" for i in range(10)} for f in kept)


def test_copies_across_given_splits_are_warned_about_and_can_be_dropped(tmp_path, work_dir):
    files = presplit_files()
    files["valid/cats/leak.png"] = files["train/cats/000.png"]
    src = make_zip(tmp_path / "leak.zip", files)
    rep = load_dataset(src, work_dir, image_size=16).report
    assert ["train/cats/000.png", "valid/cats/leak.png"] in rep.duplicate_groups
    assert any("more than one of your split folders" in w for w in rep.warnings)
    dropped = load_dataset(src, work_dir, image_size=16, drop_duplicates=True).report
    assert dropped.duplicates_dropped == ["valid/cats/leak.png"] and "train/cats/000.png" in dropped.split_files["train"]


def test_a_class_left_without_validation_or_test_images_is_warned_about(tmp_path, work_dir):
    # a new user's class of 12 copies of one picture went whole to training: val 0 / test 0, and nothing said
    files = class_files({"cats": 12})
    files.update({f"dogs/{i:03d}.png": png(777) for i in range(12)})  # one picture, twelve copies
    rep = load_dataset(make_zip(tmp_path / "copies.zip", files), work_dir, image_size=16).report
    assert rep.split_counts["val"].get("dogs", 0) == 0 and rep.split_counts["test"].get("dogs", 0) == 0
    said = [w for w in rep.warnings if w.startswith("1 class has no ")]
    assert [w.split(" images")[0] for w in said] == ["1 class has no validation", "1 class has no test"], rep.warnings
    assert all("('dogs')" in w and "copies of one another" in w for w in said)
    files = presplit_files()  # the user's own split, whose test/ folder lacks a class
    files = {k: v for k, v in files.items() if not k.startswith("test/dogs/")}
    rep = load_dataset(make_zip(tmp_path / "given.zip", files), work_dir, image_size=16).report
    (said,) = [w for w in rep.warnings if "no test images" in w]
    assert "('dogs')" in said and "Add pictures of it to your test folder." in said and "copies" not in said
    varied = load_dataset(make_zip(tmp_path / "varied.zip", class_files({"cats": 12, "dogs": 12})), work_dir,
                          image_size=16).report
    assert not any("no validation image" in w or "no test image" in w for w in varied.warnings)


def test_duplicate_groups_function_thresholds():
    sha = ["a", "b", "a", "c", "d"]
    phash = np.array([0, 0b111, 2**63, 0, 0], dtype=np.uint64)  # rows 0-1: 3 bits apart
    colours = np.array([[10, 10, 10], [12, 11, 10], [200, 0, 0], [10, 10, 200], [10, 10, 10]], dtype=np.float32)
    groups = find_duplicate_groups(sha, phash, colours)
    # 0~1 near (3 bits, close colour), 0=2 exact bytes, 3 same hash but another colour (a flat
    # blue vs a flat grey square), 4 identical hash and colour to 0.
    assert groups.tolist() == [0, 0, 0, 3, 0]
    assert find_duplicate_groups(sha, phash, colours, max_distance=2).tolist() == [0, 1, 0, 3, 0]


def test_the_example_of_a_picture_under_two_classes_names_both_classes():
    from engine.data import _duplicate_warnings

    (said,) = _duplicate_warnings(["B/1.png", "B/2.png", "B/3.png", "D/1.png", "D/2.png"], [0, 0, 0, 1, 1], None,
                                  np.array([0, 0, 0, 0, 4]), ["B", "D"])
    assert said.startswith("1 picture is labelled with more than one class, e.g. B/1.png (B) = D/1.png (D). "), said


def test_copies_across_split_folders_are_said_with_the_control_that_drops_them():
    """The warning said "switch on 'drop duplicate copies'" where the Data page shows a button of that name (the
    switch sits in the split settings): it names the control as the page and the command line call it."""
    from engine.data import _duplicate_warnings

    (said,) = _duplicate_warnings(["train/A/1.jpg", "test/A/1.jpg", "train/B/2.jpg"], [0, 0, 1],
                                  ["train", "test", "train"], np.array([0, 0, 2]), ["A", "B"])
    assert said.startswith("1 duplicate group has copies in more than one of your split folders, e.g. train/A/1.jpg = "
                           "test/A/1.jpg"), said
    assert "'Drop duplicate copies' on the Data page; --set data.drop_duplicates=true on the command line" in said


def drawn_letters() -> dict[str, bytes]:
    """A new user's letters.zip (`tools.letters`), whose different letters the hash and colour rule
    joined, and a resized JPEG copy of one of them."""
    from tools.letters import drawn_letters as letters

    files = letters()
    first = Image.open(io.BytesIO(files["letters/A/A_00.png"]))
    files["letters/A/A_00 copy.jpg"] = encoded(first.resize((100, 100)), "JPEG", quality=85)
    return files


def test_different_drawn_letters_are_not_copies_but_a_resized_copy_is(tmp_path, work_dir):
    src = make_zip(tmp_path / "letters.zip", drawn_letters())
    splits = load_dataset(src, work_dir, image_size=64)
    rep = splits.report
    assert ["letters/A/A_00 copy.jpg", "letters/A/A_00.png"] in [sorted(g) for g in rep.duplicate_groups]
    assert all(len({f.split("/")[1] for f in g}) == 1 for g in rep.duplicate_groups), rep.duplicate_groups
    # the same pictures under the hash and colour rule alone: different letters joined (what this guards)
    decoded = data._decoded(src, work_dir, 64, data.ZipLimits(), 4 * 1024**3, None)
    loose = find_duplicate_groups(decoded.sha256, decoded.phash, data._mean_colours(decoded.images))
    letter = np.array([p.split("/")[1] for p in decoded.paths])
    assert any(len(set(letter[loose == g])) > 1 for g in np.unique(loose))
    grouped_loosely = sum(c for c in np.unique(loose, return_counts=True)[1] if c > 1)
    assert sum(len(g) for g in rep.duplicate_groups) < grouped_loosely / 2, (rep.duplicate_groups, grouped_loosely)


# ---------------------------------------------------------------------------- labels files


def test_labels_csv_in_a_flat_folder(tmp_path, work_dir):
    files = {f"img/{i}.png": png(i) for i in range(12)}
    files["img/unlisted.png"] = png(50)
    rows = ["file_name,label"] + [f"img/{i}.png,{'defect' if i % 3 == 0 else 'normal'}" for i in range(12)]
    files["labels.csv"] = ("\n".join(rows + ["img/gone.png,normal"]) + "\n").encode()
    rep = load_dataset(make_zip(tmp_path / "csv.zip", files), work_dir, image_size=16, min_images_per_class=3).report
    assert rep.layout == LAYOUT_LABELS_FILE and rep.classes == ["defect", "normal"]
    assert rep.counts == {"defect": 4, "normal": 8}
    reasons = {s.path: s.reason for s in rep.skipped}
    assert reasons == {"img/gone.png": "listed in labels.csv but not found",
                       "img/unlisted.png": "not listed in labels.csv"}


def test_hugging_face_imagefolder_metadata_jsonl_per_split(tmp_path, work_dir):
    files = {}
    for split, n in (("train", 6), ("validation", 2), ("test", 2)):
        lines = []
        for i in range(2 * n):
            files[f"{split}/{i}.png"] = png(hash((split, i)) % 10_000)
            lines.append(json.dumps({"file_name": f"{i}.png", "label": "cat" if i % 2 else "dog"}))
        files[f"{split}/metadata.jsonl"] = "\n".join(lines).encode()
    splits = load_dataset(make_folder(tmp_path / "hf", files), work_dir, image_size=16, min_images_per_class=3)
    rep = splits.report
    assert rep.layout == LAYOUT_PRE_SPLIT_LABELS and rep.split_given and rep.classes == ["cat", "dog"]
    assert rep.split_counts == {"train": {"cat": 6, "dog": 6}, "val": {"cat": 2, "dog": 2},
                                "test": {"cat": 2, "dog": 2}}
    assert rep.skipped == []


def test_labels_file_with_unknown_columns_is_refused_naming_them(tmp_path, work_dir):
    files = {f"{i}.png": png(i) for i in range(4)}
    files["metadata.csv"] = b"picture,kind,extra\n0.png,a,1\n"
    with pytest.raises(StudioError, match="'picture', 'kind', 'extra'"):
        load_dataset(make_folder(tmp_path / "bad", files), work_dir, image_size=16)


# ---------------------------------------------------------------------------- imbalance


def test_imbalance_is_reported_and_weights_and_sampling_even_it_out(tmp_path, work_dir):
    rep = load_dataset(make_zip(tmp_path / "imb.zip", class_files({"normal": 20, "defect": 5})), work_dir,
                       image_size=16).report
    assert rep.imbalance == {"ratio": 4.0, "largest": "normal", "smallest": "defect", "imbalanced": True}
    assert class_imbalance({"a": 10, "b": 9})["imbalanced"] is False
    # balanced: no class is the largest ("largest": "Red apple", "smallest": "Red apple" in inspect's JSON)
    assert class_imbalance({"Red apple": 20, "banana": 20}) == {"ratio": 1.0, "largest": "", "smallest": "",
                                                                 "imbalanced": False}

    labels = torch.tensor([0] * 15 + [1] * 5 + [2] * 0)
    w = class_weights(labels, 3)
    assert w.dtype == torch.float32 and torch.allclose(w, torch.tensor([20 / 30, 20 / 10, 0.0]))
    drawn = balanced_sample_indices(labels, 3, 4000, torch.Generator().manual_seed(0))
    share = torch.bincount(labels[drawn], minlength=3).float() / 4000
    assert abs(share[0] - 0.5) < 0.05 and abs(share[1] - 0.5) < 0.05 and share[2] == 0


def test_balanced_accuracy_and_macro_f1_expose_a_majority_guesser():
    labels = torch.tensor([0] * 18 + [1] * 2)
    always_normal = torch.zeros(20, dtype=torch.long)
    assert balanced_accuracy(labels, always_normal) == pytest.approx(0.5)
    assert macro_f1(labels, always_normal) == pytest.approx((2 * 18 / (18 + 20) + 0) / 2)
    # Hand-checked against scikit-learn's definitions: recalls 2/3, 1/2, 1 -> 13/18;
    # F1 per class 2tp/(support+predicted): 2*2/(3+3), 2*1/(2+2), 2*1/(1+1).
    y, p = [0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 0, 2]
    assert balanced_accuracy(y, p, 3) == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert macro_f1(y, p, 3) == pytest.approx((4 / 6 + 2 / 4 + 2 / 2) / 3)
    assert macro_f1([0, 1], [0, 1], 4) == pytest.approx(1.0)  # classes absent from both are ignored


def test_each_class_says_its_missed_images_and_false_alarms():
    """An inspector asked how many defects the model lets through and how many good parts it flags: the confusion
    matrix held it, unsaid. Recall and precision per class match scikit-learn's definitions, hand-checked."""
    from app.app_pages.results import class_errors_frame
    from engine.metrics import class_errors

    classes = ["dent", "ok", "scratch"]
    rows = [[2, 1, 0], [3, 25, 2], [0, 0, 3]]  # rows: the true class; columns: the model's answer
    dent, ok, scratch = class_errors(rows, classes)
    assert (dent.images, dent.found, dent.missed_as, dent.answered, dent.false_from) == (3, 2, [("ok", 1)], 5,
                                                                                         [("ok", 3)])
    assert dent.recall == pytest.approx(2 / 3) and dent.precision == pytest.approx(2 / 5)
    assert ok.missed_as == [("dent", 3), ("scratch", 2)], "most first"
    assert scratch.recall == 1 and scratch.precision == pytest.approx(3 / 5) and scratch.missed_as == []
    # a class never answered has no precision; one without images no recall
    never = class_errors([[0, 2], [0, 0]], ["rare", "common"])
    assert never[0].precision is None and never[1].recall is None and never[1].precision == 0
    frame = class_errors_frame(rows, classes)
    assert frame.iloc[0].to_dict() == {"class": "dent", "found (recall)": "66.7% (2 of 3)",
                                       "missed: taken for": "ok (1)",
                                       "right when it says so (precision)": "40.0% (2 of 5)",
                                       "false alarms: were": "ok (3)"}
    assert frame.iloc[1]["missed: taken for"] == "dent (3), scratch (2)"
    assert frame.iloc[2]["missed: taken for"] == "none"
    assert class_errors_frame([[0, 2], [0, 0]], ["rare", "common"]).iloc[0]["right when it says so (precision)"] \
        == "never said"
    with pytest.raises(ValueError, match="2 classes"):
        class_errors([[1, 2, 3]], ["a", "b"])


# ---------------------------------------------------------------------------- the dry run


def test_inspect_json_from_a_fresh_process(tmp_path, capsys):
    pre = make_zip(tmp_path / "pre.zip", presplit_files(prefix="export/"))
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    out = subprocess.run([sys.executable, "-m", "engine", "inspect", "--data", str(pre), "--json",
                          "--data-dir", str(tmp_path / "eng")], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    assert rep["layout"] == LAYOUT_PRE_SPLIT and rep["split_given"] is True
    assert rep["split_counts"]["test"] == {"cats": 3, "dogs": 3}
    assert rep["split_files"]["val"][0] == "export/valid/cats/000.png"
    assert rep["image_size"] == 64, "the size a run trains at, not a smaller check size that read as the images' own"

    copies = make_zip(tmp_path / "copies.zip", copies_dataset())  # the same command in this process
    from engine.cli import main

    assert main(["inspect", "--data", str(copies), "--json", "--data-dir", str(tmp_path / "eng")]) == 0
    rep = json.loads(capsys.readouterr().out)
    where = {f: s for s, names in rep["split_files"].items() for f in names}
    assert rep["duplicate_groups"] and all(len({where[f] for f in g}) == 1 for g in rep["duplicate_groups"])


def test_inspect_text_lists_layout_split_files_and_skips(tmp_path, capsys):
    files = presplit_files()
    files["train/cats/notes.txt"] = b"x"
    files["train/cats/copy.png"] = files["train/cats/000.png"]
    src = make_folder(tmp_path / "pre", files)
    from engine.cli import main

    assert main(["inspect", "--data", str(src), "--data-dir", str(tmp_path / "eng")]) == 0
    out = capsys.readouterr().out
    assert f"layout: {LAYOUT_PRE_SPLIT}" in out and "train/cats/notes.txt: not an image file (.txt)" in out
    # the file names only with --files: a student's 640 names scrolled the summary away
    assert "val files (4):" not in out and out.rstrip().endswith(": --files lists them"), out
    assert main(["inspect", "--data", str(src), "--data-dir", str(tmp_path / "eng"), "--files"]) == 0
    out = capsys.readouterr().out
    assert "val files (4):" in out and "  valid/dogs/001.png" in out
    # each group says whether its files are identical, as the Data page does
    assert "  train/cats/000.png = train/cats/copy.png  (identical files)" in out, out


def test_inspect_says_what_the_held_out_splits_will_measure_with_as_the_data_page_does(tmp_path, capsys):
    """`inspect` left out the Data page's notes on few held-out images: a small split, and a rare class among
    larger ones (a clinician's 9 melanoma pictures beside 70 others)."""
    src = make_folder(tmp_path / "rare", class_files({"naevus": 40, "melanoma": 6}))
    from engine.cli import main

    assert main(["inspect", "--data", str(src), "--data-dir", str(tmp_path / "eng")]) == 0
    out = capsys.readouterr().out
    assert "note: Few images to measure on: 9 validation images (one image is 11.1 points of accuracy) and 9 test " \
        "images" in out
    assert "note: Few images to judge this class by. melanoma: 1 validation image, 1 test image. One image is 100 " \
           "points" in out, out


def test_inspect_dataset_matches_the_training_split(tmp_path, work_dir):
    src = make_zip(tmp_path / "copies.zip", copies_dataset())
    report = inspect_dataset(src, work_dir, seed=5)
    assert report.split_files == load_dataset(src, work_dir, image_size=24, seed=5).report.split_files


# ---------------------------------------------------------------------------- the switches reach a run


@pytest.mark.parametrize("balance", ["weighted_loss", "balanced_sampling"])
def test_class_balance_switch_changes_training_and_runs_report_imbalance_scores(tmp_path, balance):
    from conftest import tiny_config, tiny_image  # the same tiny pictures as the engine tests
    from engine.train import train

    src = tmp_path / "imb.zip"
    with zipfile.ZipFile(src, "w") as zf:  # 20 "red" to 6 "green"
        for cls, n in (("red", 20), ("green", 6)):
            for i in range(n):
                zf.writestr(f"{cls}/{i}.png", encoded(tiny_image(cls, i)))
    common = ("train.epochs=1", "eval.ood=false", "data.min_images_per_class=3")
    plain = train(tiny_config(src, *common), work_dir=tmp_path / "d")
    balanced = train(tiny_config(src, *common, f"data.class_balance={balance}"), work_dir=tmp_path / "d")
    a, b = plain.context.model.state_dict(), balanced.context.model.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())
    s = balanced.summary
    for key in ("val_balanced_acc", "val_macro_f1", "test_balanced_acc", "test_macro_f1"):
        assert 0.0 <= s[key] <= 1.0, key
    assert s["data_report"]["imbalance"]["imbalanced"] is True
    assert {"val_balanced_acc", "val_macro_f1"} <= set(s["history"][-1])  # per epoch too: the accuracy chart

    from app import charts

    chart = charts.accuracy_chart(pd.DataFrame([{"epoch": 1, **s["history"][-1]}]))
    assert "Balanced accuracy (validation)" in json.dumps(chart.to_dict())


def test_unlabelled_test_folder_and_top_level_readme_are_reported(tmp_path, work_dir):
    files = {k: v for k, v in presplit_files().items() if not k.startswith("test/")}
    files.update({f"test/{i}.png": png(500 + i) for i in range(4)})  # Kaggle style: no labels
    files["README.roboflow.txt"] = b"exported"
    rep = load_dataset(make_zip(tmp_path / "k.zip", files), work_dir, image_size=16).report
    assert rep.split_given and sum(rep.split_counts["test"].values()) == 0
    assert any("'test/' was not used" in w and "4 files" in w for w in rep.warnings)
    reasons = {s.path: s.reason for s in rep.skipped}
    assert reasons["README.roboflow.txt"] == "not inside a split folder"
    assert reasons["test/0.png"] == "not inside a class folder"


# ---------------------------------------------------------------------------- the Data page


@pytest.fixture
def studio(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path / "studio"))
    yield
    import streamlit as st

    from app.state import get_engine

    get_engine().shutdown(5)
    st.cache_resource.clear()


def _data_page(zip_bytes: bytes):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(PROJECT / "app" / "main.py"), default_timeout=120)
    at.run()
    at.radio(key="w:data.kind").set_value("upload").run()
    at.file_uploader[0].set_value(("export.zip", zip_bytes, "application/zip")).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_data_page_shows_layout_duplicates_and_the_skipped_files_of_a_refused_upload(tmp_path, studio):
    files = presplit_files()
    files["train/cats/copy.png"] = files["train/cats/000.png"]
    at = _data_page(make_zip(tmp_path / "pre.zip", files).read_bytes())
    captions = " ".join(c.value for c in at.caption)
    assert LAYOUT_PRE_SPLIT in captions and "used as is" in captions
    assert any("duplicate pictures" in e.label for e in at.expander)
    # each group is shown: every file name (none cut off in a cell) and its pictures, to judge by eye
    group = [m.value for m in at.markdown if m.value.startswith("**Group 1**")]
    assert group and "train/cats/000.png = train/cats/copy.png" in group[0], group
    assert any(len(img.proto.imgs) == 2 for img in at.image), "the group's two pictures"
    assert at.toggle(key="w:data.drop_duplicates") is not None
    assert at.selectbox(key="w:data.class_balance").value == "none"
    assert not [b for b in at.button if b.key == "drop_dupes"], "copies within one split folder: no button"
    # said as it is: these copies lie in one folder, so nothing is tested on a picture it trained on (a new user's
    # two copies in train/ read "a group across train and validation or test lets the model be tested on ...")
    assert "each group's copies lie in one of its folders, so no picture is both trained on and tested on" in captions
    assert "across" not in group[0]
    # a copy across the given train and test folders: the warning comes with a one-click fix
    files["test/cats/leak.png"] = files["train/cats/001.png"]
    at.file_uploader[0].set_value(("leak.zip", make_zip(tmp_path / "leak.zip", files).read_bytes(),
                                   "application/zip")).run()
    assert any("more than one of your split folders" in w.value for w in at.warning)
    captions = " ".join(c.value for c in at.caption)
    assert "1 of these groups lies across train and validation or test, so the model can be tested on a picture " \
           "it trained on (marked below)" in captions, captions
    assert any(m.value.startswith("**Group 2** (2 identical files, across train and test)")
               for m in at.markdown), \
        [m.value for m in at.markdown if m.value.startswith("**Group")]
    # a copy in validation and another in test: counted twice among the held-out images, not a leak
    files["test/cats/twice.png"] = files["valid/cats/000.png"]
    at.file_uploader[0].set_value(("twice.zip", make_zip(tmp_path / "twice.zip", files).read_bytes(),
                                   "application/zip")).run()
    captions = " ".join(c.value for c in at.caption)
    assert "; 1 across validation and test, so a picture counts twice among the held-out ones (marked below)" \
        in captions, captions
    files.pop("test/cats/leak.png")  # the held-out pair alone: said as a whole sentence
    at.file_uploader[0].set_value(("pair.zip", make_zip(tmp_path / "pair.zip", files).read_bytes(),
                                   "application/zip")).run()
    assert "stay where they are: 1 of these groups lies across validation and test, so a picture counts twice" in \
        " ".join(c.value for c in at.caption)
    files["test/cats/leak.png"] = files["train/cats/001.png"]
    at.file_uploader[0].set_value(("twice.zip", make_zip(tmp_path / "twice.zip", files).read_bytes(),
                                   "application/zip")).run()
    at.button(key="drop_dupes").click().run()
    assert at.session_state["cfg"].data.drop_duplicates is True
    assert "3 extra copies were dropped (*Drop duplicate copies*)." in " ".join(c.value for c in at.caption)

    bad = class_files({"cats": 5})
    bad.update({f"dogs/{i}.psd": b"8BPS" for i in range(3)})
    at.file_uploader[0].set_value(("bad.zip", make_zip(tmp_path / "bad.zip", bad).read_bytes(), "application/zip")).run()
    assert any("'dogs' has 0 readable images" in e.value for e in at.error)
    tables = [df.value for df in at.dataframe]
    assert any("dogs/1.psd" in set(t["file"]) for t in tables if "file" in t.columns)


def test_model_card_says_the_split_was_given_and_counts_duplicate_groups(tmp_path, work_dir):
    from engine.config import RunConfig
    from engine.export import model_card

    files = presplit_files()
    files["train/cats/copy.png"] = files["train/cats/000.png"]
    rep = load_dataset(make_zip(tmp_path / "pre.zip", files), work_dir, image_size=16).report
    card = model_card(RunConfig(), {"classes": rep.classes, "data_report": rep.to_dict()})
    assert "Split (given by the dataset's folders): train 13, val 4, test 6" in card
    assert f"Layout: {LAYOUT_PRE_SPLIT}" in card and "duplicate groups: 1" in card

    imb = load_dataset(make_zip(tmp_path / "imb.zip", class_files({"normal": 20, "defect": 5})), work_dir,
                       image_size=16).report
    card = model_card(RunConfig(), {"classes": imb.classes, "data_report": imb.to_dict(), "test_acc": 0.8,
                                    "test_balanced_acc": 0.5, "test_macro_f1": 0.44})
    assert "Imbalanced classes ('normal' 4.0x 'defect'): test balanced accuracy 50.0%, macro-F1 44.0%" in card


def test_without_imagehash_only_exact_copies_are_grouped(tmp_path, work_dir, monkeypatch):
    monkeypatch.setattr(data, "_imagehash", lambda: None)
    rep = load_dataset(make_zip(tmp_path / "copies.zip", copies_dataset()), work_dir, image_size=16).report
    assert len(rep.duplicate_groups) == 14 and all(len(g) == 2 for g in rep.duplicate_groups)  # png + exact copy
    assert rep.counts == {"cats": 24, "dogs": 24} and any("imagehash" in w for w in rep.warnings)


def test_config_refuses_an_unknown_class_balance():
    from engine.config import RunConfig, apply_overrides, validate

    with pytest.raises(StudioError, match=r"Imbalanced classes \(data.class_balance\): `oversample` is not a choice; choose none, weighted_loss"):
        validate(apply_overrides(RunConfig(), ["data.class_balance=oversample"]))
    validate(apply_overrides(RunConfig(), ["data.class_balance=balanced_sampling", "data.drop_duplicates=true"]))


def test_one_dataset_has_one_content_digest_however_it_is_packed(tmp_path, work_dir):
    """Compare tells datasets apart by their content: the same images under the same classes, zipped
    under another name with a wrapper folder, other file names and a pre-split layout, give the same
    digest; a changed image or a renamed class gives another."""
    files = class_files({"cats": 6, "dogs": 6})
    first = load_dataset(make_zip(tmp_path / "pets.zip", files), work_dir, image_size=16).report.content_sha256
    renamed = {f"export/{k.replace('.png', '_x.png')}": v for k, v in files.items()}
    again = load_dataset(make_zip(tmp_path / "pets copy.zip", renamed), work_dir, image_size=16, seed=3).report
    assert len(first) == 64 and again.content_sha256 == first
    split = {f"{'train' if int(k[-7:-4]) < 4 else 'test'}/{k}": v for k, v in files.items()}
    assert load_dataset(make_zip(tmp_path / "split.zip", split), work_dir, image_size=16).report.content_sha256 == first
    changed = dict(files, **{"cats/000.png": png(99_999)})
    assert load_dataset(make_zip(tmp_path / "c.zip", changed), work_dir, image_size=16).report.content_sha256 != first
    other_class = {k.replace("dogs/", "puppies/"): v for k, v in files.items()}
    assert load_dataset(make_zip(tmp_path / "o.zip", other_class), work_dir, image_size=16).report.content_sha256 != first


def test_the_report_says_what_the_square_crop_keeps_of_wide_pictures_and_how_far_they_shrink(tmp_path, work_dir,
                                                                                          capsys):
    """A student's 320 x 200 scans lost 37.5% of their width to the centre square and were shrunk 3x at 64 px, and
    nothing said so before a run: the report keeps the pictures' typical shape (upright: an EXIF-turned photo counts
    as it is seen), and the Data page and `inspect` say what the model will see; phone photos that mix both ways are
    said to."""
    from engine.cli import main
    from engine.data import _decode, picture_shape
    from engine.words import picture_shape_words

    exif = Image.Exif()
    exif[0x0112] = 6  # stored 48 x 96, seen 96 x 48 once turned
    turned = encoded(picture(99).resize((48, 96)), "JPEG", exif=exif.tobytes(), quality=95)
    assert _decode(turned, 16, 10**9)[3] == (96, 48), "as it is seen"
    near_square = encoded(picture(98).resize((999, 1000)), "JPEG", quality=90)  # its draft comes out square
    assert _decode(near_square, 64, 10**9)[3] == (999, 1000)
    files = {}
    for cls in ("scan a", "scan b"):
        for i in range(6):  # most of them stored sideways: counted as seen
            files[f"{cls}/{i}.jpg"] = turned if i < 4 else encoded(picture(i + len(cls)).resize((96, 48)))
    src = make_zip(tmp_path / "scans.zip", files)
    shape = load_dataset(src, work_dir, image_size=16, seed=0).report.picture_shape
    assert shape == {"long": 96, "short": 48, "square_share": 0.5, "wide": 1.0, "tall": 0.0}, shape
    words = picture_shape_words(shape, 16)
    assert words.startswith("Your pictures are mostly wider than tall (about 96 x 48 px): the model sees the middle "
                            "square of each, 50% of its width (the left and right edges are cut away), resized to "
                            "16 x 16 px. At 16 px they are shrunk about 3x"), words
    assert picture_shape_words(shape, 48) == words.split(" At 16 px")[0].replace("16 x 16", "48 x 48"), "no shrink"
    assert picture_shape_words(picture_shape(np.array([[64, 64]] * 3)), 64) == ""
    assert picture_shape_words({}, 64) == "" and picture_shape_words({"width": 320, "height": 200}, 64) == "", \
        "a report from before has no shape, or another one"
    mixed = picture_shape(np.array([[4032, 3024]] * 3 + [[3024, 4032]] * 3))  # phone photos, both ways
    assert picture_shape_words(mixed, 64).startswith("Your pictures are wider or taller than square, both ways (about "
                                                     "4032 by 3024 px): the model sees the middle square of each, 75% "
                                                     "of its longer side"), "not \"mostly wider\" of a square median"
    assert "shrunk about 47x" in picture_shape_words(mixed, 64), "by the shorter side"
    assert main(["inspect", "--data", str(src), "--data-dir", str(tmp_path / "eng"), "--image-size", "16"]) == 0
    out = capsys.readouterr().out
    assert "pictures: Your pictures are mostly wider than tall (about 96 x 48 px)" in out
    assert "a larger --image-size (train and inspect) keeps finer detail (not more of the picture)" in out, "the command line's own words"
    assert "Training with --set data.fit=pad or data.fit=stretch keeps the whole picture instead, on grey bars or " \
        "stretched to the square (the usual way for spectrograms and other plots)." in out, \
        "a train option, said so"


def test_whole_pictures_are_padded_to_squares_so_a_subject_at_one_end_stays_in(tmp_path, work_dir):
    """Training kept a wide picture's middle square only, so a subject at one end was cut away (a teacher's phone
    photos; only Try it offered another square). data.fit "pad" keeps the whole picture, its longer side at the
    image size, centred on ImageNet's mean grey (0 once normalised); both ways are kept apart in the decode cache,
    and `inspect`'s words and the Data page's say which the model sees."""
    from engine.data import PAD_RGB, fit_square, is_decoded
    from engine.words import data_extras, fit_words, oblong, picture_shape_words

    wide = Image.new("RGB", (60, 30), (0, 0, 255))
    wide.paste((255, 0, 0), (0, 0, 10, 30))  # the subject: red, at the left end
    crop = np.asarray(fit_square(wide, 16))
    pad = np.asarray(fit_square(wide, 16, "pad"))
    assert crop.shape == pad.shape == (16, 16, 3)
    assert crop[..., 0].max() < 50, "the middle square cuts the red end away"
    assert (pad[:4] == PAD_RGB).all() and (pad[-4:] == PAD_RGB).all(), "grey bars above and below (16 x 8 inside)"
    assert pad[8, 0, 0] > 200 and pad[8, -1, 2] > 200, "the red end on the left, the blue on the right"
    tall = np.asarray(fit_square(wide.rotate(90, expand=True), 16, "pad"))
    assert (tall[:, :4] == PAD_RGB).all() and (tall[:, -4:] == PAD_RGB).all(), "bars left and right of a tall one"
    assert np.array_equal(np.asarray(fit_square(Image.new("RGB", (40, 40), (9, 9, 9)), 16, "pad")),
                          np.asarray(fit_square(Image.new("RGB", (40, 40), (9, 9, 9)), 16))), "a square: the same"
    with pytest.raises(ValueError, match="fit must be one of crop, pad, stretch"):
        fit_square(wide, 16, "squash")

    files = {f"{c}/{i}.png": encoded(picture(i + 10 * k).resize((48, 24)))
             for k, c in enumerate("ab") for i in range(6)}
    src = make_zip(tmp_path / "wide.zip", files)
    cropped = load_dataset(src, work_dir, image_size=16, seed=0)
    padded = load_dataset(src, work_dir, image_size=16, seed=0, fit="pad")
    assert is_decoded(src, 16) and is_decoded(src, 16, fit="pad"), "one cache entry each"
    assert (padded.train.images[:, :, :4] == torch.tensor(PAD_RGB).view(1, 3, 1, 1)).all()
    assert not torch.equal(padded.train.images, cropped.train.images)
    assert torch.equal(padded.train.labels, cropped.train.labels), "the same split either way"
    with pytest.raises(StudioError, match="data.fit must be one of"):
        load_dataset(src, work_dir, image_size=16, fit="squash")

    shape = padded.report.picture_shape
    assert oblong(shape) and not oblong({}) and not oblong({"long": 64, "short": 60, "wide": 1.0, "square_share": 0.94})
    words = picture_shape_words(shape, 16, fit="pad")
    assert words.startswith("Your pictures are mostly wider than tall (about 48 x 24 px): the model sees each whole, "
                            "resized to fit 16 x 16 px; each fills the square's width and 50% of its height, grey bars "
                            "above and below. "
                            "At 16 px they are shrunk about 3x"), "shrunk by the longer side"
    said = picture_shape_words(shape, 16, whole="*Wide and tall pictures* below")
    assert "(the left and right edges are cut away), resized to 16 x 16 px. *Wide and tall pictures* below keeps " \
           "the whole picture instead, on grey bars or stretched to the square" in said
    # a photographer's 28 portrait photos among 73 landscape ones went unsaid
    both = {"long": 1600, "short": 1200, "square_share": 0.75, "wide": 0.72, "tall": 0.28}
    assert "(the left and right edges are cut away; 28% of them are taller than wide and lose their top and " \
           "bottom)" in picture_shape_words(both, 64)
    assert "grey bars above and below (28% of them are taller than wide: their bars are left and right)" in \
           picture_shape_words(both, 64, fit="pad")
    assert fit_words("pad") == "whole pictures" and fit_words("crop") == fit_words(None) == ""
    assert data_extras({"fit": "pad", "class_balance": "weighted_loss"}) == ["loss weighted by class", "whole pictures"]
    assert data_extras({}) == []


def test_whole_pictures_can_be_stretched_to_squares_as_spectrograms_usually_are(tmp_path, work_dir):
    """A bioacoustics researcher's 4:1 spectrograms filled a quarter of the square with grey bars around them when
    kept whole, and lost their ends when cropped; stretching the whole picture to the square, the usual treatment
    of a spectrogram, was not offered. data.fit "stretch" resizes each side by its own factor: both ends stay in,
    no pixel is grey, and the words say how much more the longer side is squeezed."""
    from engine.chance import finer_detail_words
    from engine.data import PAD_RGB, fit_square, is_decoded, pad_mask
    from engine.words import fit_words, picture_shape_words, shrink_factor

    wide = Image.new("RGB", (80, 20), (0, 0, 255))
    wide.paste((255, 0, 0), (0, 0, 10, 20))  # red at the left end, blue on the right
    square = np.asarray(fit_square(wide, 16, "stretch"))
    assert square.shape == (16, 16, 3)
    assert square[:, 0, 0].min() > 200 and square[:, -1, 2].min() > 200, "both ends, from top to bottom"
    assert not (square == PAD_RGB).all(-1).any(), "no grey bar"
    assert np.array_equal(square, np.asarray(wide.resize((16, 16), Image.Resampling.BILINEAR, reducing_gap=3.0)))
    same = Image.new("RGB", (40, 40), (9, 9, 9))
    assert np.array_equal(np.asarray(fit_square(same, 16, "stretch")), np.asarray(fit_square(same, 16)))

    files = {f"{c}/{i}.png": encoded(picture(i + 10 * k).resize((96, 24)))
             for k, c in enumerate("ab") for i in range(6)}
    src = make_zip(tmp_path / "calls.zip", files)
    padded = load_dataset(src, work_dir, image_size=16, seed=0, fit="pad")
    stretched = load_dataset(src, work_dir, image_size=16, seed=0, fit="stretch")
    assert is_decoded(src, 16, fit="pad") and is_decoded(src, 16, fit="stretch"), "one cache entry each"
    assert not pad_mask(stretched.train.images).any() and pad_mask(padded.train.images).any()
    assert torch.equal(stretched.train.labels, padded.train.labels), "the same split either way"

    shape = stretched.report.picture_shape
    words = picture_shape_words(shape, 16, fit="stretch", whole="*Wide and tall pictures* below")
    assert words.startswith("Your pictures are mostly wider than tall (about 96 x 24 px): the model sees each whole, "
                            "stretched to 16 x 16 px; its width is squeezed about 4.0 times more than its height"), \
        words
    assert "keeps the whole picture instead" not in words, "already whole"
    assert "At 16 px they are shrunk about 6x" in words, "by the longer side, which is squeezed the most"
    assert shrink_factor(shape, 16, "stretch") == shrink_factor(shape, 16, "pad") == 6.0
    tall = {"long": 400, "short": 100, "square_share": 0.25, "wide": 0.0, "tall": 1.0}
    assert "its height is squeezed about 4.0 times more than its width" in picture_shape_words(tall, 64, fit="stretch")
    assert fit_words("stretch") == "stretched pictures"
    # an archivist's portrait letters beside landscape maps: both ways said, and the bars' place named as a cue
    both = {"long": 1754, "short": 1240, "square_share": 0.707, "wide": 0.43, "tall": 0.57}
    assert "its height is squeezed about 1.4 times more than its width; 43% of them are wider than tall: their " \
           "width is squeezed instead, so shapes" in picture_shape_words(both, 64, fit="stretch")
    padded = picture_shape_words(both, 64, fit="pad")
    assert "it alone can tell classes of different shapes apart" in padded, padded
    assert "bars' place" not in picture_shape_words(tall, 64, fit="pad"), "one shape: the bars tell nothing"
    summary = {"val_acc": 0.5, "data_report": {"picture_shape": shape}}
    assert "about 6x along their longer side to 16 px, so detail finer than about 6 of their pixels" in \
        finer_detail_words(summary, {"data": {"image_size": 16, "fit": "stretch"}}, "{size}")
    assert "At 16 px they are shrunk about 6x along their longer side, so" in words


# ---------------------------------------------------------------------------- look-alike pictures


def test_a_fixed_cameras_look_alike_pictures_are_split_as_different_pictures_not_copies(tmp_path, work_dir):
    """A factory inspector's parts, ok and defective, shared a hash, mean colour and thumbnail: they fell into a few
    large "copy" groups across the classes, each kept in one split (one validation image), with a warning that
    pictures were "labelled with more than one class". A crowd of look-alikes is not copies of one picture."""
    from tools.parts import machined_part, machined_parts

    files = machined_parts()
    decoded = data._decoded(make_zip(tmp_path / "parts.zip", files), work_dir, 64, data.ZipLimits(), 4 * 1024**3,
                            None)
    loose = find_duplicate_groups(decoded.sha256, decoded.phash, data._mean_colours(decoded.images),
                                  thumbs=decoded.thumbs)
    assert np.unique(loose, return_counts=True)[1].max() > data.LOOKALIKE_FILES, "the copy rule alone: one crowd"
    files["Export 2026-12-01/dent/IMG_ok_0000 again.png"] = files["Export 2026-12-01/ok/IMG_ok_0000.png"]
    data.clear_cache()
    splits = load_dataset(make_zip(tmp_path / "parts.zip", files), work_dir, image_size=64, seed=0)
    rep = splits.report
    # the identical file under two classes: still one group, and still said; a few look-alikes (three scratched
    # parts) may still be taken for copies, within a class
    identical = ["Export 2026-12-01/dent/IMG_ok_0000 again.png", "Export 2026-12-01/ok/IMG_ok_0000.png"]
    assert identical in rep.duplicate_groups
    assert all(len(g) <= data.LOOKALIKE_FILES and len({f.split("/")[1] for f in g}) == 1
               for g in rep.duplicate_groups if g != identical), rep.duplicate_groups
    assert sum("labelled with more than one class" in w for w in rep.warnings) == 1, rep.warnings
    assert all(n > 0 for c in ("val", "test") for n in rep.split_counts[c].values()), rep.split_counts
    (note,) = [n for n in rep.notes if "look almost alike at a glance" in n]
    assert note.startswith("2") and "(in 3 classes: dent, ok, scratch)" in note, note
    assert re.search(r"such as Export 2026-12-01/(\w+)/IMG_\w+\.png and Export 2026-12-01/(?!\1/)\w+/", note), \
        "an example pair across two classes"
    # Try it: a new part from the line is not "one of the run's images"; one of the run's own pictures still is
    from engine.predict import NearCopies, decode_bytes

    copies = NearCopies.of([("training", splits.train.images), ("validation", splits.val.images),
                            ("test", splits.test.images)])
    new = torch.stack([decode_bytes(machined_part(seed, "ok"), "new.png", 64)[0] for seed in (900, 901)])
    assert copies.find(new) == [None, None]
    own = decode_bytes(files[rep.split_files["val"][0]], "again.png", 64)[0]
    assert copies.find(own[None]) == ["validation"]
    # in a run of look-alikes a picture that only looks like one of them is not called it, however close: a camera
    # trap's new frame was "a copy of a test image, labelled deer: the model's answer is right"
    assert copies.has_crowds
    smaller = Image.open(io.BytesIO(files[rep.split_files["val"][0]]))
    buf = io.BytesIO()
    smaller.resize((72, 72), Image.Resampling.BILINEAR).save(buf, "PNG")
    assert copies.find(decode_bytes(buf.getvalue(), "smaller.png", 64)[0][None]) == [None]


def test_split_crowds_keeps_small_groups_and_identical_files():
    groups = np.array([0] * 12 + [12, 12, 12] + [15])
    sha = [f"s{i}" for i in range(11)] + ["s0"] + ["a", "b", "c", "d"]
    out, crowds = data.split_crowds(groups, sha, most=10)
    assert crowds == [list(range(12))], "12 files, 11 distinct: a crowd"
    assert out[11] == out[0] == 0 and len(set(out[:11].tolist())) == 11, "its identical files stay together"
    assert out[12:].tolist() == [12, 12, 12, 15], "a group of three look-alikes stays a group"
    assert data.split_crowds(groups, sha, most=11)[1] == [], "11 distinct files are not more than 11"
    # the same pixels in other bytes (a lossless re-save: the same hash, the same thumbnail) stay one picture too
    thumbs = np.arange(16, dtype=np.float32)[:, None, None, None] * np.ones((1, 3, 8, 8), np.float32)
    thumbs[5] = thumbs[3] + 0.05
    phash = np.arange(16, dtype=np.uint64)
    phash[5] = phash[3]
    out = data.split_crowds(groups, sha, phash, thumbs, most=10)[0]
    assert out[5] == out[3] == 3 and len(set(out[:11].tolist())) == 10, out
    thumbs[5] = thumbs[3] + 0.5  # the same hash, other pixels: two pictures
    assert data.split_crowds(groups, sha, phash, thumbs, most=10)[0][5] == 5
    labels, classes = [0] * 12 + [1] * 4, ["ok", "dent"]
    note = data.lookalike_note([f"p{i}.png" for i in range(16)], labels, classes, [list(range(12)), [12, 13]])
    assert note.startswith("14 pictures look almost alike at a glance (in 2 classes: dent, ok), such as p0.png and ")
    assert data.lookalike_note(["a.png"], [0], classes, [[0]]) == "", "one picture looks like nothing"
    assert data.lookalike_note([], [], classes, []) == ""
