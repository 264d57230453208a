"""Bursts (engine.bursts): frames one camera took moments apart stay in one split, read from their EXIF times."""

from __future__ import annotations

import io
import math
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image

from engine.bursts import BURST_GAP_S, BURST_MAX_FILES, burst_groups, burst_words, shot_time, with_bursts
from engine.data import load_dataset

START = datetime(2024, 5, 24, 9, 27, 0)


def frame(seed: int, when: datetime | None = None, camera: tuple[str, str] = ("Browning", "BTC-8E"),
          fmt: str = "JPEG", original: bool = True) -> bytes:
    """A 24 px picture of noise (no two alike: never near copies), with its EXIF time and camera when `when` is
    given: DateTimeOriginal (`original`) or only DateTime."""
    rgb = np.random.default_rng(seed).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    exif = Image.Exif()
    if when is not None:
        exif[ExifTags.Base.Make], exif[ExifTags.Base.Model] = camera
        if original:
            exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = when.strftime("%Y:%m:%d %H:%M:%S")
        else:
            exif[ExifTags.Base.DateTime] = when.strftime("%Y:%m:%d %H:%M:%S")
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt, exif=exif)
    return buf.getvalue()


def camera_trap(path: Path, timed: bool = True, prefix: str = "", bursts: int = 6, frames: int = 3) -> Path:
    """A camera trap's export: 3 classes, `bursts` bursts each of `frames` frames 1 s apart, bursts 10 minutes
    apart, numbered as a camera numbers them; `timed` False: the same pictures without EXIF times."""
    n = 0
    with zipfile.ZipFile(path, "w") as zf:
        for c, cls in enumerate(("deer", "empty", "fox")):
            for b in range(bursts):
                for k in range(frames):
                    when = START + timedelta(minutes=10 * (c * bursts + b), seconds=k) if timed else None
                    zf.writestr(f"{prefix}{cls}/IMG_{n:04d}.JPG", frame(n, when))
                    n += 1
    return path


def burst_of(name: str, frames: int = 3) -> int:
    return int(name.rsplit("IMG_", 1)[1][:4]) // frames


def test_a_pictures_time_and_camera_are_read_from_its_exif(tmp_path, monkeypatch):
    (tmp_path / "a.jpg").write_bytes(frame(0, START))
    assert shot_time(tmp_path / "a.jpg") == (datetime(2024, 5, 24, 9, 27, 0).replace(
        tzinfo=__import__("datetime").timezone.utc).timestamp(), "Browning/BTC-8E", True)
    (tmp_path / "b.jpg").write_bytes(frame(1, START + timedelta(seconds=2), original=False))
    assert shot_time(tmp_path / "b.jpg")[0] - shot_time(tmp_path / "a.jpg")[0] == 2, "DateTime when no original"
    assert shot_time(tmp_path / "b.jpg")[2] is False, "an editor's time, not the shutter's"
    (tmp_path / "c.png").write_bytes(frame(2, None, fmt="PNG"))
    from PIL import PngImagePlugin

    with monkeypatch.context() as m:  # a PNG without EXIF before its pixels is not decoded to look for one
        m.setattr(PngImagePlugin.PngImageFile, "load", lambda self: pytest.fail("the PNG was decoded"))
        t, cam, _ = shot_time(tmp_path / "c.png")
    assert math.isnan(t) and cam == ""
    (tmp_path / "f.png").write_bytes(frame(3, START, fmt="PNG"))
    assert shot_time(tmp_path / "f.png") == shot_time(tmp_path / "a.jpg"), "a PNG's eXIf chunk is read"
    (tmp_path / "d.jpg").write_bytes(b"\xff\xd8\xff broken")
    assert math.isnan(shot_time(tmp_path / "d.jpg")[0]), "an unreadable header: no time, no error"
    blank = Image.Exif()
    blank.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "0000:00:00 00:00:00"
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "JPEG", exif=blank)
    (tmp_path / "e.jpg").write_bytes(buf.getvalue())
    assert math.isnan(shot_time(tmp_path / "e.jpg")[0]), "a camera's blank clock"


def test_bursts_are_chains_of_one_cameras_frames_moments_apart():
    t = np.array([0, 1, 2, 100, 101, 200, 1000, np.nan, 1, 300], dtype=float)
    cams = ["a"] * 8 + ["b", "a"]
    assert burst_groups(t, cams) == [[0, 1, 2], [3, 4]], "another camera's frame at 1 s is not in the burst"
    assert burst_groups(t, cams, gap=100) == [[0, 1, 2, 3, 4, 5, 9]], "each frame within the gap of the one before"
    # a chain longer than BURST_MAX_FILES (a time-lapse at 1 s, a copied timestamp) is no burst
    assert burst_groups(np.arange(BURST_MAX_FILES + 1, dtype=float), ["a"] * (BURST_MAX_FILES + 1)) == []
    assert burst_groups(np.zeros(BURST_MAX_FILES), ["a"] * BURST_MAX_FILES) == [list(range(BURST_MAX_FILES))]
    # phone photos of one subject after another, 10 s apart: no bursts
    assert burst_groups(np.arange(0, 100, 10, dtype=float), ["phone"] * 10) == []
    assert BURST_GAP_S < 10
    # joined with copy groups: a copy in one burst of a frame of another joins the two
    assert with_bursts(np.array([0, 1, 2, 1, 4]), [[0, 1], [2, 4]]).tolist() == [0, 0, 2, 0, 2]
    # groups labelled by rows no longer there (copies dropped): read as labels, not as indices
    assert with_bursts(np.array([7, 9, 7, 30]), [[1, 3]]).tolist() == [0, 1, 0, 1]
    assert with_bursts(np.array([7, 9]), []).tolist() == [7, 9], "no bursts: the groups as they were"


def test_pairs_link_rows_into_groups_named_by_their_smallest_member():
    """The one grouping both copies and bursts use (engine.bursts.linked), against a plain union-find on random
    pairs: the same groups, each row named by its group's smallest index."""
    from engine.bursts import linked

    assert linked(5, [4, 1], [2, 3]).tolist() == [0, 1, 2, 1, 2], "a pair joins; a row in none stays alone"
    assert linked(4, [3, 2, 1], [2, 1, 0]).tolist() == [0, 0, 0, 0], "a chain links through its middle"
    assert linked(0, [], []).tolist() == [] and linked(3, [], []).tolist() == [0, 1, 2]
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(1, 60))
        rows, cols = rng.integers(0, n, 2 * n // 3), rng.integers(0, n, 2 * n // 3)
        parent = list(range(n))

        def find(i):
            while parent[i] != i:
                i = parent[i]
            return i

        for a, b in zip(rows, cols):
            ra, rb = find(a), find(b)
            parent[max(ra, rb)] = min(ra, rb)
        assert linked(n, rows, cols).tolist() == [find(i) for i in range(n)]


def test_each_burst_stays_in_one_split_and_the_data_report_says_so(tmp_path):
    """A camera trap's bursts had frames in two splits, validation flattered by the frames beside it in training."""
    timed = load_dataset(camera_trap(tmp_path / "trap.zip"), tmp_path / "w", image_size=16)
    rep = timed.report
    assert len(rep.bursts) == 18 and all(len(b) == 3 for b in rep.bursts)
    split_of = {f: s for s, files in rep.split_files.items() for f in files}
    assert all(len({split_of[f] for f in b}) == 1 for b in rep.bursts), "each burst in one split"
    assert sum(rep.split_counts["val"].values()) and sum(rep.split_counts["test"].values())
    assert any("54 pictures came in 18 bursts (frames of one camera at most 3 s apart" in n for n in rep.notes)
    from engine.data import lookalike_note  # bursts found by their times: their own note speaks of them

    assert "split them yourself" in lookalike_note(["a", "b"], [0, 1], ["x", "y"], [[0, 1]])
    assert "split them yourself" not in lookalike_note(["a", "b"], [0, 1], ["x", "y"], [[0, 1]], timed=True)
    # the same pictures without times: bursts straddle the splits (the split this data had before)
    plain = load_dataset(camera_trap(tmp_path / "plain.zip", timed=False), tmp_path / "w", image_size=16).report
    split_of = {f: s for s, files in plain.split_files.items() for f in files}
    groups: dict[int, set[str]] = {}
    for f, s in split_of.items():
        groups.setdefault(burst_of(f), set()).add(s)
    assert plain.bursts == [] and sum(len(s) > 1 for s in groups.values()) >= 3
    assert not any("bursts" in n for n in plain.notes)


def test_split_folders_that_cut_bursts_are_warned_about_with_two_of_its_frames(tmp_path):
    files = {}
    with zipfile.ZipFile(camera_trap(tmp_path / "src.zip")) as zf:
        for name in zf.namelist():
            cls, base = name.split("/")
            n = int(base[4:8])
            split = "test" if n % 9 == 2 else "val" if n % 9 == 5 else "train"  # a frame of every burst taken out
            files[f"{split}/{cls}/{base}"] = zf.read(name)
    with zipfile.ZipFile(tmp_path / "given.zip", "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    rep = load_dataset(tmp_path / "given.zip", tmp_path / "w", image_size=16).report
    assert rep.split_given
    said = [w for w in rep.warnings if "bursts" in w]
    assert len(said) == 1 and said[0].startswith("12 of 18 bursts (frames of one camera at most 3 s apart")
    assert "such as train/deer/IMG_0000.JPG and test/deer/IMG_0002.JPG" in said[0], said
    assert "Move each burst's frames into one folder." in said[0]
    assert burst_words(["a", "b"], [[0, 1]], ["train", "train"]) == "", "no burst cut: nothing to say"
    assert burst_words([], []) == ""


@pytest.mark.parametrize("drop", [False, True])
def test_bursts_with_a_dropped_copy_keep_their_other_frames_together(tmp_path, drop):
    """A burst frame copied into another class folder: with copies dropped, the burst's indices still hold."""
    with zipfile.ZipFile(camera_trap(tmp_path / "trap.zip"), "a") as zf:
        zf.writestr("fox/copy_of_IMG_0000.JPG", frame(0, START))
    rep = load_dataset(tmp_path / "trap.zip", tmp_path / "w", image_size=16, drop_duplicates=drop).report
    split_of = {f: s for s, files in rep.split_files.items() for f in files}
    assert all(len({split_of[f] for f in b}) == 1 for b in rep.bursts)
    assert len(rep.bursts) == 18


def test_look_alikes_taken_at_different_moments_are_not_copies(tmp_path):
    """An ecologist's night frames of a fox and of a deer at one clearing read "labelled with more than one class";
    an agronomist's two wheat plants photographed two hours apart were offered to be dropped as duplicates."""
    from engine.bursts import moments_apart

    groups, moved = moments_apart(np.array([0, 0, 0, 3, 3]), np.array([0.0, 30, 1000, 5, 5000]), ["cam"] * 5)
    assert groups.tolist() == [0, 0, 2, 3, 4] and moved == 2, "within a minute: together; hours apart: two exposures"
    kept, moved = moments_apart(np.array([0, 0]), np.array([0.0, np.nan]), ["cam"] * 2)
    assert kept.tolist() == [0, 0] and moved == 0, "a time unknown: it could be a copy of either"
    edited, _ = moments_apart(np.array([0, 0]), np.array([0.0, 3600]), ["cam"] * 2, np.array([True, False]))
    assert edited.tolist() == [0, 0], "an editor's DateTime on a resized copy: still a copy of the original"
    other, _ = moments_apart(np.array([0, 0]), np.array([0.0, 1.0]), ["cam a", "cam b"])
    assert other.tolist() == [0, 1], "two cameras: two exposures"
    # the same pictures in two class folders, their times an hour apart: no copies, no warning
    files = {}
    for k in range(6):
        for cls, hour in (("deer", 0), ("fox", 1)):
            files[f"{cls}/IMG_{hour}{k}.JPG"] = frame(k, START + timedelta(hours=hour, minutes=10 * k))
    with zipfile.ZipFile(tmp_path / "night.zip", "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    rep = load_dataset(tmp_path / "night.zip", tmp_path / "w", image_size=16).report
    assert rep.duplicate_groups == [] and not any("more than one class" in w for w in rep.warnings)
    with zipfile.ZipFile(tmp_path / "untimed.zip", "w") as zf:  # without times: copies, as before
        for name in files:
            zf.writestr(name, frame(int(name[-5])))
    rep = load_dataset(tmp_path / "untimed.zip", tmp_path / "w", image_size=16).report
    assert len(rep.duplicate_groups) == 6 and any("more than one class" in w for w in rep.warnings)


def test_the_model_card_says_how_the_bursts_were_split():
    from engine.config import RunConfig
    from engine.export import data_card_section

    rep = {"counts": {"deer": 5}, "bursts": [["deer/1.jpg", "deer/2.jpg"], ["deer/3.jpg", "deer/4.jpg", "deer/5.jpg"]]}
    assert "- Bursts: 5 pictures in 2 bursts (frames of one camera at most 3 s apart), each kept within one split" \
        in data_card_section(RunConfig(), rep)
    assert "- Bursts: 5 pictures in 2 bursts (frames of one camera at most 3 s apart), where the split folders put " \
           "them" in data_card_section(RunConfig(), {**rep, "split_given": True})
    assert not any(line.startswith("- Bursts") for line in data_card_section(RunConfig(), {"counts": {"deer": 5}}))


def test_a_small_class_in_bursts_still_gets_validation_and_test_images(tmp_path):
    """An agronomist's 12 photos a class, each plant shot 3-4 times: no burst fitted 2 validation images, and the
    run had none at all."""
    rep = load_dataset(camera_trap(tmp_path / "small.zip", bursts=4, frames=3), tmp_path / "w", image_size=16).report
    for split in ("val", "test"):
        assert all(n >= 3 for n in rep.split_counts[split].values()), rep.split_counts
    assert all(n >= 3 for n in rep.split_counts["train"].values()), "training keeps a burst of each class"
    split_of = {f: s for s, files in rep.split_files.items() for f in files}
    assert all(len({split_of[f] for f in b}) == 1 for b in rep.bursts), "still one split per burst"
    assert not any("no validation" in w or "no test" in w for w in rep.warnings), rep.warnings


def test_the_data_page_marks_duplicate_groups_that_are_frames_of_one_burst(tmp_path):
    """An agronomist's repeat shots of one leaf were listed as duplicate pictures to drop, beside a note that they
    came in bursts kept together."""
    from types import SimpleNamespace

    from app.datasets import burst_groups_of

    rep = SimpleNamespace(bursts=[["a1", "a2", "a3"], ["b1", "b2"]],
                          duplicate_groups=[["a1", "a2"], ["a3", "b1"], ["c1", "c2"], ["b1", "b2"]])
    assert burst_groups_of(rep) == [True, False, False, True]
    assert burst_groups_of(SimpleNamespace(duplicate_groups=[["a", "b"]])) == [False], "a report from before bursts"
    # two plants two hours apart that look alike are not a group at all (moments_apart)
    with zipfile.ZipFile(tmp_path / "leaves.zip", "w") as zf:
        for k in range(6):
            zf.writestr(f"healthy/PXL_{k}a.jpg", frame(k, START + timedelta(hours=k)))
            zf.writestr(f"healthy/PXL_{k}b.jpg", frame(k, START + timedelta(hours=k, minutes=30)))
            zf.writestr(f"rust/PXL_{k}.jpg", frame(100 + k, START + timedelta(hours=k, minutes=10)))
    rep = load_dataset(tmp_path / "leaves.zip", tmp_path / "w", image_size=16).report
    assert rep.duplicate_groups == [], rep.duplicate_groups


def test_held_out_figures_say_how_many_moments_they_rest_on():
    """An agronomist read "one image is 2.4 points", while 7 of 8 validation misses were two leaves shot 4 times."""
    from engine.chance import few_held_out_words, moments_words, small_split_words

    rep = {"bursts": [["v1", "v2", "v3", "v4"], ["v5", "v6"], ["t1", "t2"], ["x1", "x2"]],
           "split_files": {"val": ["v1", "v2", "v3", "v4", "v5", "v6", "v7"], "test": ["t1", "t2", "t3"],
                           "train": ["x1", "x2"]}}
    said = moments_words(rep)
    assert said == ("The 7 validation images are 3 separate moments and the 3 test images 2 (a burst counts once): a "
                    "burst's frames are mostly right or wrong together, so a figure moves by about 50.0 points with "
                    "one moment, not 33.3 with one image.")
    assert moments_words({**rep, "bursts": [["x1", "x2"]]}) == "", "bursts in training only: nothing to say"
    # bursts your folders cut: only each burst's frames in a split count there (it read "-3 separate moments", or
    # divided by zero)
    cut = {"bursts": [["a1", "a2", "a3", "a4"], ["b1", "b2", "b3", "b4"]],
           "split_files": {"val": ["a1", "b1", "c"], "test": ["a2", "a3"], "train": ["a4", "b2", "b3", "b4"]}}
    assert moments_words(cut).startswith("The 2 test images are 1 separate moment (a burst"), moments_words(cut)
    assert moments_words({**cut, "split_files": {"val": ["a1"], "train": ["a2", "a3", "a4"]}}) == ""
    counts = {"val": {"a": 4, "b": 3}, "test": {"a": 2, "b": 1}}
    assert few_held_out_words(counts, rep).endswith(said) and few_held_out_words(counts).endswith("firmer.")
    summary = {"classes": ["a", "b"], "data_report": {**rep, "split_counts": counts}}
    assert small_split_words(summary).endswith(said)
    big = {"val": {"a": 40, "b": 30}, "test": {"a": 40, "b": 30}}  # large splits: the moments alone
    assert few_held_out_words(big, rep) == said
