"""The engine thread, the run store and the command line, end to end on tiny runs."""

import csv
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine.store import RunStore
from engine.worker import Engine

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def engine(tmp_path):
    eng = Engine(tmp_path / "engine")
    yield eng
    eng.shutdown()


def test_engine_runs_a_job_in_the_background_and_stores_everything(engine, tiny_cfg):
    run_id = engine.submit(tiny_cfg("train.epochs=1", "eval.ood=true"))
    assert engine.wait(run_id, 300) == "finished"
    rec = engine.run_record(run_id)
    summary = json.loads((Path(rec.run_dir) / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["run_id"] == run_id
    assert (Path(rec.run_dir) / "config.yaml").is_file()
    names = {m["name"] for m in engine.store.metrics(run_id)}
    assert {"loss", "lr", "val_acc", "ood_acc", "images_per_sec"} <= names
    snap = engine.snapshot(run_id)
    assert snap.status == "finished" and snap.epochs and snap.steps


def test_a_failing_run_is_marked_failed_and_the_next_one_runs(engine, tiny_cfg, tmp_path):
    bad = engine.submit(tiny_cfg(f"data.source={tmp_path / 'missing.zip'}", "train.epochs=1"))
    good = engine.submit(tiny_cfg("train.epochs=1", "eval.ood=false"))
    assert engine.wait(bad, 120) == "failed"
    assert "not" in (engine.run_record(bad).error or "").lower()
    assert engine.wait(good, 300) == "finished"


def test_a_crash_inside_a_method_fails_only_that_run(engine, tiny_cfg, monkeypatch):
    from engine.contract import MethodHook

    class Exploding(MethodHook):
        name = "exploding"

        def after_step(self, ctx):
            raise RuntimeError("method exploded")

    monkeypatch.setattr("engine.train.build_hooks", lambda cfg: [Exploding()])
    crashed = engine.submit(tiny_cfg("train.epochs=1"))
    assert engine.wait(crashed, 300) == "failed"
    assert "method exploded" in engine.run_record(crashed).error
    monkeypatch.undo()
    after = engine.submit(tiny_cfg("train.epochs=1", "eval.ood=false"))
    assert engine.wait(after, 300) == "finished"


def test_stop_a_running_job(engine, tiny_cfg):
    run_id = engine.submit(tiny_cfg("train.epochs=200"))
    deadline = time.time() + 60
    while engine.snapshot(run_id).progress.get("phase") != "training" and time.time() < deadline:
        time.sleep(0.05)
    t0 = time.time()
    assert engine.stop(run_id)
    assert engine.wait(run_id, 30) == "stopped"
    assert time.time() - t0 < 2.5


def test_a_process_that_exits_while_a_job_trains_stops_it_cleanly(tmp_path, tiny_zip):
    """A dashboard stopped (SIGTERM, Ctrl+C) or a script ending while the engine thread trains: the job
    stops at its next step, the process exits 0 (it aborted with "terminate called without an active
    exception" when the interpreter tore down a thread inside torch), and the run says why it stopped."""
    script = f"""
import sys, time
sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / "tests")!r})
from conftest import tiny_config
from engine.worker import Engine
engine = Engine({str(tmp_path / "e")!r})
run_id = engine.submit(tiny_config({str(tiny_zip)!r}, "train.epochs=500"))
deadline = time.time() + 120
while not engine.store.metrics(run_id, ["loss"]) and time.time() < deadline:
    time.sleep(0.05)
print(run_id, engine.snapshot(run_id).status, flush=True)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "terminate called" not in done.stderr
    run_id, status = done.stdout.split()
    assert status == "running", "the process ended while the job trained"
    store = RunStore(tmp_path / "e" / "studio.db")
    rec = store.get_run(run_id)
    assert rec.status == "stopped" and "Stopped when the server stopped" in rec.error, (rec.status, rec.error)
    store.close()


def test_restart_marks_interrupted_runs_failed_and_keeps_finished_ones(tmp_path):
    store = RunStore(tmp_path / "e" / "studio.db")
    store.create_run("a", "was running", {}, str(tmp_path / "a"), status="running")
    with store._conn:  # by a program that has ended since (this test's own process still runs)
        store._conn.execute("UPDATE runs SET process='' WHERE id='a'")
    store.create_run("b", "done", {}, str(tmp_path / "b"), status="finished")
    store.log_metrics("b", 1, 10, {"val_acc": 0.9})
    store.close()
    eng = Engine(tmp_path / "e")
    try:
        assert eng.run_record("a").status == "failed" and "Interrupted" in eng.run_record("a").error
        assert eng.run_record("b").status == "finished"
        assert eng.store.metrics("b")[0]["value"] == pytest.approx(0.9)
    finally:
        eng.shutdown()


def _cli(*args, cwd=ROOT, timeout=300):
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def test_cli_train_writes_summary(tiny_zip, tmp_path, capsys, monkeypatch):
    """The command in this process, on its one thread (a process's imports cost more than this run; the real
    `python -m engine train` process is run to its summary by tests/test_startup.py)."""
    from engine import paths
    from engine.cli import main

    monkeypatch.setattr(paths, "_UPLOAD_DIRS", list(paths._UPLOAD_DIRS))  # the command registers its folder
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # the command fits torch's threads to the CPUs
    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_zip), "--backbone", "resnet18", "--pretrained", "none", "--epochs", "1",
                 "--image-size", "32", "--batch-size", "8", "--out", str(out), "--data-dir", str(tmp_path / "d"),
                 "--set", "eval.ood_severity_each_epoch=0", "--device", "cpu"]) == 0  # bitwise reproducible on the CPU
    capsys.readouterr()  # the run's own lines: the listing below is read alone
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["val_acc"] is not None

    assert main(["runs", "--data-dir", str(tmp_path / "d")]) == 0  # the listing, in-process
    assert "finished" in capsys.readouterr().out
    # continuing a finished run is refused before anything is written: its results and status stay
    files = {f.name: f.read_bytes() for f in out.iterdir() if f.is_file()}
    assert main(["train", "--resume", str(out), "--data-dir", str(tmp_path / "d")]) == 2
    said = capsys.readouterr().err
    assert "This run finished: there is nothing left to continue" in said and "--epochs 2" in said, said
    # with the store: a new user ran the suggestion as printed and the run went to another store, unlisted
    assert f"--epochs 2 --data-dir {tmp_path / 'd'}" in said, said
    assert {f.name: f.read_bytes() for f in out.iterdir() if f.is_file()} == files
    assert [r.status for r in RunStore(tmp_path / "d" / "studio.db").list_runs()] == ["finished"]
    # the saved config reproduces the run through the CLI
    # (in this process, on its one thread as the command's on OMP_NUM_THREADS=1: imports cost seconds)
    assert main(["train", "--config", str(out / "config.yaml"), "--out", str(tmp_path / "again"),
                 "--data-dir", str(tmp_path / "d"), "--quiet"]) == 0
    assert json.loads((tmp_path / "again" / "summary.json").read_text())["val_acc"] == summary["val_acc"]


def test_a_dashboard_run_repeats_bit_for_bit_from_the_command_line(engine, tiny_cfg, tmp_path):
    """The dashboard's engine thread and `train --config` of the config it saved (the command Results shows
    under "To repeat this run") give the same weights, tensor for tensor, and the same figures, at the same
    CPU thread count: a claim measured in one is measured in the other."""
    from safetensors.torch import load_file

    from engine.cli import main

    run_id = engine.submit(tiny_cfg("train.epochs=1", "train.threads=1", "train.augment=true"))
    assert engine.wait(run_id, 300) == "finished", engine.run_record(run_id).error
    first = Path(engine.run_record(run_id).run_dir)
    assert main(["train", "--config", str(first / "config.yaml"), "--out", str(tmp_path / "again"),
                 "--data-dir", str(tmp_path / "engine"), "--quiet"]) == 0
    a, b = (load_file(d / "last.safetensors") for d in (first, tmp_path / "again"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    said = [json.loads((d / "summary.json").read_text()) for d in (first, tmp_path / "again")]
    assert said[0]["val_acc"] == said[1]["val_acc"] and said[0]["test_acc"] == said[1]["test_acc"]
    figures = [[{k: e[k] for k in ("train_loss", "train_acc", "val_acc", "val_loss")} for e in s["history"]] for s in said]
    assert figures[0] == figures[1] and len(figures[0]) == 1


@pytest.mark.parametrize("args, words", [
    (["--data", "/nonexistent.zip"], "Could not find '/nonexistent.zip'"),
    (["--lr", "-1"], "Learning rate (optim.lr) must be between"),
    (["--backbone", "alexnet"], "Unknown backbone"),
    (["--set", "optim.lr"], "section.field=value"),
    (["--epochs", "0"], "Epochs (train.epochs) must be between 1"),
    (["--pretrained", "checkpoint"], "give the file with --checkpoint FILE"),
])
def test_cli_bad_input_gives_a_clear_message_without_traceback(tiny_zip, tmp_path, args, words, capsys):
    """The CLI's own entry point, in this process (a fresh one per case cost 5 s of imports each;
    test_cli_bad_data_fails_the_run_with_a_message runs the real `python -m engine`): an exit code
    and the message, never an exception."""
    from engine.cli import main

    base = ["train", "--data", str(tiny_zip), "--image-size", "32", "--data-dir", str(tmp_path)]
    try:
        code = main([*base, *args])
    except SystemExit as exit_:  # argparse refuses malformed flags this way
        code = exit_.code
    assert code != 0
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_an_unreadable_ood_set_is_named_as_the_ood_set(tiny_zip, tmp_path, capsys):
    """"junk.zip is not a zip archive" read as the training data: the message now says it is the OOD set."""
    from engine.cli import main

    junk = tmp_path / "dusk photos.zip"
    junk.write_bytes(b"this is not a zip")
    code = main(["train", "--data", str(tiny_zip), "--image-size", "32", "--data-dir", str(tmp_path / "d"),
                 "--set", f"data.ood_source={junk}"])
    err = capsys.readouterr().err
    assert code == 2 and "The OOD set (" in err and "not a zip" in err and "Traceback" not in err, err
    assert not (tmp_path / "d" / "runs").exists() or not list((tmp_path / "d" / "runs").iterdir()), "nothing recorded"


def test_cli_bad_data_is_refused_with_a_message(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not a zip")
    p = _cli("train", "--data", str(junk), "--image-size", "32", "--data-dir", str(tmp_path), timeout=120)
    assert p.returncode != 0 and "zip" in p.stderr.lower() and "Traceback" not in p.stderr


def _unusable(kind: str, tmp_path: Path) -> tuple[list[str], str]:
    """(train flags, words of the message) for one kind of unusable input."""
    from conftest import write_tiny_zip

    if kind == "not a zip":
        (tmp_path / "photos.zip").write_bytes(b"this is not a zip")
        return ["--data", str(tmp_path / "photos.zip")], "'photos.zip' is not a zip archive"
    if kind == "one class":
        return ["--data", str(write_tiny_zip(tmp_path / "one.zip", classes=("red",)))], "only one class"
    if kind == "not a checkpoint":
        (tmp_path / "weights.pt").write_bytes(b"text, not weights")
        return ["--checkpoint", str(tmp_path / "weights.pt")], "weights.pt is not a model checkpoint"
    if kind == "another network":
        import torchvision

        torch.save(torchvision.models.mobilenet_v3_small().state_dict(), tmp_path / "mobile.pt")
        return ["--checkpoint", str(tmp_path / "mobile.pt")], "It looks like MobileNetV3-Small weights"
    import zipfile

    from conftest import tiny_image

    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:  # an OOD set of other classes
        for cls in ("cyan", "magenta"):
            for i in range(6):
                image = tmp_path / f"{cls}{i}.png"
                tiny_image("red", i).save(image)
                zf.write(image, f"{cls}/{i}.png")
    return ["--set", f"data.ood_source={tmp_path / 'other.zip'}"], "cyan"


@pytest.mark.parametrize("kind", ["not a zip", "one class", "not a checkpoint", "another network", "ood classes"])
def test_unusable_inputs_are_refused_before_a_run_is_recorded(tiny_zip, tmp_path, capsys, kind):
    """A dataset, OOD set or starting checkpoint the run cannot use is a message and an exit status,
    read before the run is created: `runs` does not list a failed run for a typo, and nothing is written."""
    from engine.cli import main

    flags, words = _unusable(kind, tmp_path)
    studio = tmp_path / "studio"
    code = main(["train", "--data", str(tiny_zip), "--image-size", "32", "--epochs", "1", "--data-dir", str(studio),
                 "--out", str(tmp_path / "run"), *flags])
    err = capsys.readouterr().err
    assert code == 2 and words in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists() and not RunStore(studio / "studio.db").list_runs()


def test_output_paths_that_would_replace_a_run_or_fail_late_are_refused_first(tiny_zip, tmp_path, capsys):
    """A new user's `train --out` into a finished run's folder replaced its files (the store still listed it as
    finished); `predict --out` into a missing folder or onto a folder, and `export --out` onto a file, ended in
    tracebacks, predict's after answering every image."""
    from engine.cli import main

    studio = tmp_path / "studio"
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text("{}")
    base = ["train", "--data", str(tiny_zip), "--image-size", "32", "--epochs", "1", "--data-dir", str(studio)]
    assert main([*base, "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"--out {run} already holds another run's files, which this run would replace" in err, err
    assert (run / "summary.json").read_text() == "{}" and not RunStore(studio / "studio.db").list_runs()
    script = tmp_path / "gen.py"
    script.write_text("print(1)")
    assert main([*base, "--out", str(script)]) == 2 and "is a file: a run needs a folder" in capsys.readouterr().err
    assert script.read_text() == "print(1)" and "Traceback" not in capsys.readouterr().err



def test_a_run_outlives_the_reader_of_its_output(tiny_zip, tmp_path, monkeypatch):
    """`train ... | head -3`: the pipe closed after three lines, and the next progress line's BrokenPipeError ended a new
    user's run as failed, twice."""
    import io

    import torch

    from engine.cli import main

    class ReaderGone(io.StringIO):
        def write(self, text):
            if self.getvalue().count("\n") >= 3:
                raise BrokenPipeError(32, "Broken pipe")
            return super().write(text)

    gone = ReaderGone()
    monkeypatch.setattr(sys, "stdout", gone)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    code = main(["train", "--data", str(tiny_zip), "--image-size", "32", "--epochs", "2", "--pretrained", "none",
                 "--set", "eval.ood=false", "--data-dir", str(tmp_path / "d")])
    assert sys.stdout is gone, "the command's stdout restored"
    (rec,) = RunStore(tmp_path / "d" / "studio.db").list_runs()
    assert code == 0 and rec.status == "finished", (code, rec.status, rec.error)
    assert gone.getvalue().count("\n") == 3


def test_the_command_line_uses_the_dashboards_folder_and_says_when_a_source_is_missing(tiny_zip, tmp_path,
                                                                                       monkeypatch, capsys):
    """Without --data-dir the command line reads and writes STUDIO_DATA_DIR, the folder a dashboard
    started with it uses: `runs` lists the dashboard's runs and `predict --run <id>` finds them. A
    config whose dataset is an upload this folder does not have, or a missing path, is refused with a
    message saying what to do on the command line, before a run is recorded."""
    from engine.paths import upload_ref
    from engine.worker import Engine

    studio = tmp_path / "studio"
    eng = Engine(studio)
    try:
        from conftest import TEST_DEVICE, tiny_config

        run_id = eng.submit(tiny_config(tiny_zip, "train.epochs=1", "name=dashboard run"))
        assert eng.wait(run_id, 300) == "finished"
    finally:
        eng.shutdown()
    monkeypatch.setenv("STUDIO_DATA_DIR", str(studio))
    import torch

    from engine import paths

    monkeypatch.setattr(paths, "_UPLOAD_DIRS", list(paths._UPLOAD_DIRS))  # the commands register theirs
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # the commands fit torch's threads to the CPUs
    from types import SimpleNamespace

    from engine.cli import main

    def cli(*args):  # in this process (ten commands: the imports of ten processes took most of this test)
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's refusals
            code = exc.code
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)

    listing = cli("runs")
    assert listing.returncode == 0 and run_id in listing.stdout and "dashboard run" in listing.stdout
    assert re.search(r"dashboard run  \[tiny\.zip, 1 epoch, test \d+\.\d%\]", listing.stdout), listing.stdout
    one = cli("runs", "--run", run_id[-6:])  # the run asked for alone (the whole list came back)
    assert one.returncode == 0 and one.stdout.count("\n") == 1 and run_id in one.stdout, one.stdout
    none = cli("runs", "--run", "zzzzzz")
    assert none.returncode == 2 and "No run matches zzzzzz" in none.stderr, none.stderr
    empty = cli("runs", "--data-dir", str(tmp_path / "elsewhere"))
    assert f"no runs yet in {tmp_path / 'elsewhere'}" in empty.stdout, "says where it looked"
    assert not (tmp_path / "elsewhere").exists(), "and creates nothing there"
    photos = tmp_path / "photos"
    photos.mkdir()
    import zipfile

    with zipfile.ZipFile(tiny_zip) as zf:
        first = next(n for n in zf.namelist() if n.endswith(".png"))
        (photos / "one.png").write_bytes(zf.read(first))
    # an --out that cannot be written is refused before any image is answered (a traceback came at the end)
    for out, words in ((tmp_path / "nowhere" / "p.csv", f"its folder {tmp_path / 'nowhere'} does not exist"),
                       (photos, f"is a folder: give a file in it, such as {photos / 'predictions.csv'}")):
        bad = cli("predict", "--run", run_id, "--data", str(photos), "--out", str(out))
        assert bad.returncode == 2 and words in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    bad = cli("export", "--run", run_id, "--out", str(photos / "one.png"))
    assert bad.returncode == 2 and "is a file: the export writes a folder of files" in bad.stderr, bad.stderr
    predicted = cli("predict", "--run", run_id, "--data", str(photos), "--out", str(tmp_path / "p.csv"))
    assert predicted.returncode == 0, predicted.stderr
    one = cli("predict", "--run", run_id, "--data", str(photos / "one.png"), "--out", str(tmp_path / "one.csv"))
    assert one.returncode == 0 and "1 image predicted" in one.stdout, one.stderr  # one image file is enough
    assert re.search(r"^  one\.png: (red|green|stripes) \d+%, ", one.stdout, re.M), "a few images: answered here too"
    # a copy of one of the run's images, out of its zip: found by its pixels
    assert re.search(r"one\.png: .*\[.*run's (training|validation|test) image, labelled \w+\]", one.stdout), \
        one.stdout  # with its label in the run's data: the answer can be checked against it
    assert re.search(r"note: This is one of the run's (training|validation|test) images.* In the run's data it is "
                     r"labelled (\w+): the model's answer(, \w+, is wrong| is right)\.", one.stdout), one.stdout
    assert "replaced" not in one.stdout
    short = cli("predict", "--run", run_id[-6:], "--data", str(photos / "one.png"), "--out", str(tmp_path / "one.csv"))
    assert short.returncode == 0, short.stderr  # the end of the id
    assert "(it replaced the file of that name)" in short.stdout, "said, not silent; --out given: no hint to give it"
    assert re.search(r"1 image predicted in (\d+ ms|\d+\.\d s) \(", short.stdout), "never \"0.0s\" beside an img/s"
    # without --out: predictions.csv in the current folder, and a file of that name there already (the user's own)
    # is kept, the answers going to the first free name beside it
    here = tmp_path / "here"
    here.mkdir()
    (here / "predictions.csv").write_text("the user's own notes\n")
    monkeypatch.chdir(here)
    for n in (2, 3):
        again = cli("predict", "--run", run_id, str(photos / "one.png"))
        assert again.returncode == 0 and f"predictions: {here / f'predictions-{n}.csv'} (predictions.csv was there " \
            "already and is kept; --out FILE names the file)" in again.stdout, again.stdout
    assert (here / "predictions.csv").read_text() == "the user's own notes\n", "never replaced unless named"
    assert "one.png" in (here / "predictions-3.csv").read_text(encoding="utf-8-sig")
    # images as bare arguments, several at once (a shell's *.png): each answered under the path given
    (tmp_path / "broken.png").write_bytes(b"not a png")
    bare = cli("predict", "--run", run_id, str(photos / "one.png"), "--out", str(tmp_path / "bare.csv"),
               str(tmp_path / "broken.png"))  # an image after an option too
    assert bare.returncode == 0 and "1 image predicted" in bare.stdout, bare.stderr
    assert re.search(rf"^  {re.escape(str(photos / 'one.png'))}: (red|green|stripes) \d+%", bare.stdout, re.M)
    assert "1 file skipped:" in bare.stdout and str(tmp_path / "broken.png") in bare.stdout, bare.stdout
    with open(tmp_path / "bare.csv", encoding="utf-8-sig") as fh:
        assert [r["path"] for r in csv.DictReader(fh)] == [str(photos / "one.png"), str(tmp_path / "broken.png")]
    for args, words in (([str(photos / "one.png"), str(photos)], "is a folder, not an image file"),
                        ([str(photos / "one.png"), str(tiny_zip)], "is a zip, not an image file"),
                        ([], "Give the images to answer after the run"),
                        ([str(photos / "one.png"), str(tmp_path / "none.png")], "Could not find"),
                        ([str(photos / "oen.png")], f"Did you mean '{photos / 'one.png'}'?"),  # a typo: the name meant
                        ([str(photos / "*.jpeg")], "matches *.jpeg (the shell passed the pattern on as typed)"),
                        ([str(tmp_path / "nowhere" / "a.png")], f"its folder {tmp_path / 'nowhere'} does not exist"),
                        (["--data", str(photos), str(photos / "one.png")], "is a folder, not an image file")):
        refused = cli("predict", "--run", run_id, *args, "--out", str(tmp_path / "r.csv"))
        assert refused.returncode == 2 and words in refused.stderr, (args, refused.stderr)
        assert "Traceback" not in refused.stderr and "model:" not in refused.stdout, "refused before the model loads"
    typo = cli("predict", "--run", run_id, str(photos / "one.png"), "--tpo-k", "2")
    assert typo.returncode == 2 and "unrecognized arguments: --tpo-k 2" in typo.stderr, typo.stderr
    unknown = cli("predict", "--run", "zzzzzz", "--data", str(photos / "one.png"), "--out", str(tmp_path / "u.csv"))
    assert unknown.returncode == 2 and "see `python -m engine runs`" in unknown.stderr, unknown.stderr
    own = cli("predict", "--run", run_id, "--data", str(tiny_zip), "--out", str(tmp_path / "own.csv"))
    assert own.returncode == 0, own.stderr
    assert re.search(r"note: (\d+) of these \1 images are the run's own \(\d+ training, \d+ validation, \d+ test\): "
                     r"the model learned from its training images, so an accuracy over them is not a test", own.stdout)
    assert re.search(r"without the run's training images: accuracy \d+\.\d%  balanced accuracy \d+\.\d%  "
                     r"\(\d+ images\)", own.stdout), own.stdout
    other = photos / "new.png"
    from conftest import tiny_image

    tiny_image("red", 777).save(other)
    (photos / "one.png").unlink()
    fresh = cli("predict", "--run", run_id, "--data", str(photos), "--out", str(tmp_path / "f.csv"))
    assert fresh.returncode == 0 and "note:" not in fresh.stdout, "other images: no such note"
    config = tmp_path / "gone.yaml"
    config.write_text(f"data:\n  source: {upload_ref('ab' * 32)}\n")
    gone = cli("train", "--config", str(config))
    assert gone.returncode == 2
    assert "upload of the dashboard's that is not in" in gone.stderr and "--data-dir" in gone.stderr, gone.stderr
    missing = cli("train", "--config", str(config), "--set", f"data.source={tmp_path / 'nowhere.zip'}")
    assert missing.returncode == 2 and "The dataset does not exist" in missing.stderr, missing.stderr
    assert [r.id for r in RunStore(studio / "studio.db").list_runs()] == [run_id], "no failed run was recorded"


def test_the_command_line_says_when_batches_leave_too_few_steps(tiny_zip, tmp_path, capsys, monkeypatch):
    """The Model page's warning about too few optimiser steps per epoch, from the engine: the command
    line prints it (also with --quiet) and the summary keeps it. (The command's main() in this process.)"""
    from engine import paths
    from engine.cli import main

    monkeypatch.setattr(paths, "_UPLOAD_DIRS", list(paths._UPLOAD_DIRS))  # the command registers its folder
    assert main(["train", "--data", str(tiny_zip), "--backbone", "resnet18", "--pretrained", "none", "--epochs", "1",
                 "--image-size", "32", "--batch-size", "64", "--out", str(tmp_path / "run"), "--data-dir",
                 str(tmp_path / "d"), "--quiet", "--set", "eval.ood=false"]) == 0
    err = capsys.readouterr().err
    assert "note: Batches of 64 from your" in err and "1 optimiser step per epoch" in err, err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["advice"] and summary["advice"][0].startswith("Batches of 64")


def test_continuing_a_run_whose_dataset_is_gone_says_so_before_recording_anything(tmp_path):
    """`train --resume` checks the run's dataset as a new run does: a plain message, no record."""
    from engine.config import RunConfig, apply_overrides

    run_dir = tmp_path / "old run"
    run_dir.mkdir()
    cfg = apply_overrides(RunConfig(), [f"data.source={tmp_path / 'moved away.zip'}"])
    (run_dir / "config.yaml").write_text(cfg.to_yaml())
    p = _cli("train", "--resume", str(run_dir), "--data-dir", str(tmp_path / "d"))
    assert p.returncode == 2 and "The dataset does not exist" in p.stderr and "moved away.zip" in p.stderr, p.stderr
    assert not (tmp_path / "d" / "studio.db").exists() or RunStore(tmp_path / "d" / "studio.db").list_runs() == []


def test_a_run_that_cannot_start_is_refused_before_it_is_recorded(tmp_path, tiny_zip, monkeypatch, capsys):
    """A GPU this machine lacks, or a backbone without bundled weights, is a message and exit status 2, and no
    run is recorded: both were listed by `runs` as failed runs of "0 of 4 epochs"."""
    from engine.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    studio = tmp_path / "d"
    base = ["train", "--data", str(tiny_zip), "--epochs", "1", "--image-size", "32", "--data-dir", str(studio)]
    assert main([*base, "--device", "cuda"]) == 2
    assert "asks for a CUDA GPU but none is available here" in capsys.readouterr().err
    assert main([*base, "--backbone", "resnet50", "--pretrained", "bundled"]) == 2
    assert "No bundled offline weights ship for resnet50" in capsys.readouterr().err
    assert not (studio / "studio.db").exists() or RunStore(studio / "studio.db").list_runs() == []


def test_the_run_list_names_the_data_and_the_epochs_a_stopped_run_did(tmp_path):
    """`runs` tells runs apart by their data (the user's file name) and says how far an unfinished run got."""
    from types import SimpleNamespace

    from engine.cli import _run_facts

    (tmp_path / "summary.json").write_text(json.dumps({"status": "stopped", "epochs": 1, "best_val_acc": 0.5}))
    config = {"data": {"source": "upload:" + "0" * 64, "source_name": "my shapes.zip"}, "train": {"epochs": 40}}
    stopped = SimpleNamespace(run_dir=str(tmp_path), config=config, status="stopped")
    assert _run_facts(stopped) == "[my shapes.zip, 1 of 40 epochs, best val 50.0%]"
    plain = SimpleNamespace(run_dir=str(tmp_path / "gone"), config={"data": {"source": "/data/cats.zip"},
                                                                   "train": {"epochs": 1}}, status="failed")
    # a run that failed before its first epoch did none: "[cats.zip, 1 epoch]" read as work done
    assert _run_facts(plain) == "[cats.zip, 0 of 1 epoch]"
    finished = SimpleNamespace(run_dir=str(tmp_path / "gone"), config=plain.config, status="finished")
    assert _run_facts(finished) == "[cats.zip, 1 epoch]"
    # a finished run a method ended early (adversarial training's guard): "20 epochs" read as the whole run
    (tmp_path / "early").mkdir()
    (tmp_path / "early" / "summary.json").write_text(json.dumps({"status": "finished", "epochs": 3, "test_acc": 0.42,
                                                                 "ended_early": {"after_epoch": 3, "planned": 20}}))
    early = SimpleNamespace(run_dir=str(tmp_path / "early"), config={**config, "train": {"epochs": 20}},
                            status="finished")
    assert _run_facts(early) == "[my shapes.zip, 3 of 20 epochs, test 42.0%]"



def test_the_command_line_gives_balanced_accuracy_for_imbalanced_classes(tmp_path):
    """A student's imbalanced 5-class run printed "test 44.4%" at its end and in `runs` while its balanced accuracy,
    the figure the Data page points to for such data, was 21.5%, at guessing."""
    from types import SimpleNamespace

    from engine.cli import _run_facts, finished_words

    summary = {"status": "finished", "test_acc": 8 / 18, "val_acc": 14 / 18, "test_balanced_acc": 0.215,
               "data_report": {"imbalance": {"imbalanced": True, "ratio": 8.0}}}
    assert finished_words(summary).startswith("finished: test 44.4%, test balanced 21.5%, validation 77.8%")
    balanced = {**summary, "data_report": {"imbalance": {"imbalanced": False}}}
    assert "balanced" not in finished_words(balanced), "classes of even size: the plain figure says it"
    no_test = {k: v for k, v in summary.items() if k not in ("test_acc", "test_balanced_acc")}
    assert finished_words({**no_test, "val_balanced_acc": 0.5}).startswith("finished: validation balanced 50.0%, "
                                                                            "validation 77.8%")
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    run = SimpleNamespace(run_dir=str(tmp_path), config={"data": {"source_name": "scans.zip"}, "train": {"epochs": 8}},
                          status="finished")
    assert _run_facts(run) == "[scans.zip, 8 epochs, test 44.4%, test balanced 21.5%]"


def test_imbalanced_classes_give_the_accuracy_always_answering_the_largest_class_gets():
    """A camera trap's run read "validation accuracy 72.5%" on Train with 60% of its validation frames empty."""
    from engine.chance import largest_class_words

    report = {"imbalance": {"imbalanced": True}, "split_counts": {"val": {"empty": 24, "deer": 8, "Red fox": 5,
                                                                          "Badger": 3},
                                                                  "test": {"empty": 25, "deer": 8, "Red fox": 4,
                                                                           "Badger": 3}}}
    assert largest_class_words({"data_report": report}) == (
        "Always answering 'empty' gets 60.0% of the validation images and 62.5% of the test images right.")
    report["split_counts"]["test"] = {"empty": 1, "deer": 3}
    assert largest_class_words({"data_report": report}) == (
        "Always answering the largest class gets 60.0% of the validation images ('empty') and 75.0% of the test "
        "images ('deer') right.")
    assert largest_class_words({"data_report": {**report, "imbalance": {"imbalanced": False}}}) == ""
    assert largest_class_words({"data_report": {"imbalance": {"imbalanced": True}}}) == "", "no split counts"


def _inspector_run(test_confusion, imbalanced=True):
    """A factory inspector's run summary: 30 'ok' test parts, 3 dented, 3 scratched (rows: true class)."""
    right = sum(test_confusion[i][i] for i in range(3))
    return {"classes": ["dent", "ok", "scratch"], "test_acc": right / 36, "test_confusion": test_confusion,
            "data_report": {"imbalance": {"imbalanced": imbalanced},
                            "split_counts": {"test": {"dent": 3, "ok": 30, "scratch": 3}}}}


def test_a_run_that_tells_imbalanced_classes_apart_is_not_said_to_have_learnt_nothing(capsys):
    """A class-weighted run finds every defect and takes 10 'ok' parts for defects: 26 of 36 right, below the 30 of
    always answering 'ok', yet its balanced accuracy is 88.9%. It read "may have learnt nothing"."""
    from scipy.stats import permutation_test

    from engine.chance import (accuracy_finding, by_class_clear, by_class_words, chance_finding, split_at_guessing,
                               weak_class_words)
    from engine.cli import _say_caution
    from engine.config import RunConfig
    from engine.predict import mix_warning

    weighted = _inspector_run([[3, 0, 0], [5, 20, 5], [0, 0, 3]])
    assert accuracy_finding(weighted).kind == "largest", "by accuracy alone it is no better than answering 'ok'"
    assert chance_finding(weighted) is None
    # Results' per-split finding says the same (it read "no better than always answering its largest class, ok")
    assert split_at_guessing(weighted, "test") is None and weak_class_words(weighted, "test") is None
    bal, p = by_class_clear(weighted, "test")
    assert abs(bal - (1 + 20 / 30 + 1) / 3) < 1e-9 and p < 0.01
    from engine.chance import balanced_p

    rows = tuple(map(tuple, weighted["test_confusion"]))
    assert balanced_p.__wrapped__(rows) == balanced_p.__wrapped__(rows) == (bal, p), "seeded, not only cached"
    words = by_class_words(weighted)
    assert words.startswith("Its balanced accuracy (each class's share right, averaged) on the test images is 88.9%, "
                            "against 33.3% for answers that ignore the picture: it tells the classes apart")
    _say_caution(weighted, RunConfig())
    err = capsys.readouterr().err
    assert f"note: {words}" in err and "learnt nothing" not in err
    # the test is the permutation test of the answers against the true classes (scipy's, compared here)
    truth = [0] * 3 + [1] * 30 + [2] * 3
    said = [0] * 3 + [0] * 5 + [1] * 20 + [2] * 5 + [2] * 3
    import numpy as np

    def balanced(x, axis=-1):
        return sum((x == np.array(truth))[..., np.array(truth) == k].mean(axis=-1) for k in range(3)) / 3

    ref = permutation_test((np.array(said),), balanced, permutation_type="pairings", vectorized=True,
                           n_resamples=9999, alternative="greater", rng=np.random.default_rng(1))
    assert abs(ref.pvalue - p) < 0.005 and abs(ref.statistic - bal) < 1e-12
    # answering 'ok' for every part: balanced accuracy 33.3%, the finding stays
    always_ok = _inspector_run([[0, 3, 0], [0, 30, 0], [0, 3, 0]])
    assert chance_finding(always_ok).kind == "largest" and by_class_words(always_ok) == ""
    assert "no better than always answering its largest class, ok" in split_at_guessing(always_ok, "test")
    # a few defects found by luck (1 of 3 dents, 5 'ok' parts taken for dents): within luck, the finding stays
    lucky = _inspector_run([[1, 2, 0], [5, 25, 0], [0, 3, 0]])
    assert by_class_clear(lucky, "test") is None and chance_finding(lucky) is not None
    # balanced classes: accuracy is the bar, as before; a confusion matrix of another model (its diagonal is not the
    # accuracy) is not read
    assert chance_finding(_inspector_run([[3, 0, 0], [5, 20, 5], [0, 0, 3]], imbalanced=False)).kind == "largest"
    assert chance_finding({**weighted, "test_acc": 25 / 36}) is not None
    # a WiSE-FT mix at the largest class's share on validation is not cleared by the fine-tuned model's matrix
    mixed = {**weighted, "val_acc": 26 / 36, "val_confusion": weighted["test_confusion"], "test_acc": None,
             "wise_curve": [{"alpha": 0.5, "val_acc": 26 / 36}, {"alpha": 1.0, "val_acc": 26 / 36}],
             "data_report": {**weighted["data_report"], "split_counts": {"val": {"dent": 3, "ok": 30, "scratch": 3}}}}
    assert chance_finding(mixed) is None and mix_warning(mixed, 0.5) is not None


def test_a_folder_of_new_images_not_named_as_a_class_is_said_with_the_class_it_may_mean():
    from engine.predict import unknown_folder_words

    classes = ["Badger", "Red fox", "deer", "empty"]
    assert unknown_folder_words("fox", classes) == "fox (perhaps 'Red fox')", "a word of the class's name"
    assert unknown_folder_words("badgr", classes) == "badgr (perhaps 'Badger')", "a near spelling, case ignored"
    assert unknown_folder_words("cars", classes) == "cars", "nothing near: the name alone"


def test_a_run_says_what_reading_its_data_found(capsys):
    """After a run the command line says what `inspect` would: notes, warnings and the files skipped."""
    from engine.cli import _print_data_report

    _print_data_report({"notes": ["File names were read as code page 437 (Western DOS/Windows)."],
                        "warnings": ["1 picture is labelled with more than one class"],
                        "skipped": [{"path": "cats/broken.jpg", "reason": "the file ends too early"},
                                    {"path": "dogs/x.txt", "reason": "not an image"}]}, "my data.zip")
    said = capsys.readouterr().err.splitlines()
    assert said == ["data: File names were read as code page 437 (Western DOS/Windows).",
                    "data: 1 picture is labelled with more than one class",
                    "data: 2 files skipped (e.g. cats/broken.jpg: the file ends too early); "
                    "python -m engine inspect --data 'my data.zip' lists them"]
    _print_data_report({}, "my data.zip")
    assert capsys.readouterr().err == ""


def test_the_finished_line_says_which_split_had_no_images(tiny_zip, tmp_path, monkeypatch, capsys):
    """An accuracy the run could not measure (no validation images left) is said in words, not as nan."""
    from engine import cli

    monkeypatch.setattr(cli, "execute_run", lambda *a, **k: {"status": "finished", "val_acc": float("nan"),
                                                              "test_acc": 0.75, "ood_user_acc": 0.5,
                                                              "train_images_per_sec": 12.5})
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # the command fits torch's threads to the CPUs
    monkeypatch.setattr(cli, "register_upload_dir", lambda folder: None)
    assert cli.main(["train", "--data", str(tiny_zip), "--image-size", "32", "--out", str(tmp_path / "run"),
                     "--data-dir", str(tmp_path / "d"), "--set", "pruning.enabled=true", "--set",
                     "pruning.structured=true", "--set", "pruning.structured_epochs=2"]) == 0
    out = capsys.readouterr().out.splitlines()
    (line,) = [t for t in out if t.startswith("finished:")]
    assert line == ("finished: test 75.0%, your OOD set 50.0%, trained at 12 img/s (validation not measured: no "
                    "images were left for that split; add images per class)"), line
    # the header counts the smaller model's epochs too, as the dashboard's run caption does
    assert any("5 epochs + 2 epochs fine-tuning the smaller model (structured pruning) at 32 px" in t for t in out), out


@pytest.mark.parametrize("case", ["few steps", "peaked", "many steps", "luck", "below", "one step", "clear"])
def test_the_command_line_says_when_a_run_learnt_nothing_and_when_its_splits_are_tiny(
        tiny_zip, tmp_path, monkeypatch, capsys, case):
    """What the Results page warns about (a run at guessing, above it by no more than luck, figures on a
    handful of images) the command line says too, with what to change in its own options."""
    split = {"val": {"a": 3, "b": 3, "c": 3}, "test": {"a": 3, "b": 3, "c": 3}}
    summary = {"classes": ["a", "b", "c"], "val_acc": 1 / 3, "test_acc": 1 / 3, "steps_per_epoch": 1,
               "train_images": 48, "data_report": {"split_counts": split}}
    summary = {"few steps": summary,
               "peaked": dict(summary, history=[{"epoch": 1, "val_acc": 1.0}, {"epoch": 2, "val_acc": 1 / 3}]),
               "many steps": dict(summary, steps_per_epoch=60),
               "luck": dict(summary, test_acc=4 / 9),
               "below": dict(summary, test_acc=0.0, steps_per_epoch=60),
               "one step": dict(summary, train_images=24),
               "clear": dict(summary, test_acc=0.9, val_acc=0.9, data_report={"split_counts": {
                   "val": {"a": 30, "b": 30, "c": 30}, "test": {"a": 30, "b": 30, "c": 30}}})}[case]
    from engine import cli

    monkeypatch.setattr(cli, "execute_run", lambda *a, **k: {"status": "finished", **summary})
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    monkeypatch.setattr(cli, "register_upload_dir", lambda folder: None)
    assert cli.main(["train", "--data", str(tiny_zip), "--image-size", "32", "--out", str(tmp_path / "run"),
                     "--data-dir", str(tmp_path / "d"), "--epochs", "2", "--batch-size", "32", "--lr", "0.01"]) == 0
    said = capsys.readouterr().err
    warning = [line for line in said.splitlines() if line.startswith("warning: This run's")]
    if case == "clear":
        assert not warning and "note: Measured on" not in said, said
        return
    (warning,) = warning
    assert "note: Measured on 9 validation images (one image is 11.1 points of accuracy) and 9 test " \
        "images" in said, said
    if case == "few steps":  # 48 images in batches of 32: one step an epoch; the fix in this command's options
        assert "at the level of guessing among 3 classes (33.3%): it learnt nothing yet" in warning
        assert "It took only 2 optimiser steps (2 epochs of 1 batch of 32)" in warning
        assert warning.endswith("(--batch-size 8 --lr 0.0025)"), warning
    elif case == "peaked":
        assert "reached 100.0% in epoch 1 and fell to 33.3%" in warning and "(--lr)" in warning, warning
        assert "predict --variant best" in warning and "optimiser steps" not in warning
    elif case == "many steps":
        assert ("It took 120 optimiser steps: lower the learning rate (--lr; it was 0.01) or let the studio find one "
                "(--set optim.lr_auto=true)") in warning, warning
    elif case == "below":  # the labels first, as the Results page says it
        assert "below the level of guessing" in warning and "Check that each class folder holds the images of its " \
            "class (python -m engine inspect --files lists each class's files). It took 120 optimiser steps" \
            in warning, warning
    elif case == "one step":
        assert "(the batch size (32) is not smaller than your 24 training images, so each epoch is a single step)" \
            in warning, warning
    else:
        assert "4 of 9 images" in warning and "may have learnt nothing yet" in warning and "binomial" in warning
        assert "More test images per class would tell. It took only 2 optimiser steps" in warning, warning
    assert "Model and methods page" not in said and "Data page" not in said, "the dashboard's words"


def test_the_caution_reads_the_split_that_was_measured(capsys):
    """An empty test split is NaN on the command line: the caution reads validation, not 'test accuracy (nan%)'."""
    from engine.cli import _say_caution
    from engine.config import RunConfig

    split = {"val": {"a": 40, "b": 40}, "test": {}}
    _say_caution({"classes": ["a", "b"], "val_acc": 0.95, "test_acc": float("nan"),
                  "data_report": {"split_counts": split}}, RunConfig())
    assert capsys.readouterr().err == ""
    _say_caution({"classes": ["a", "b"], "val_acc": 0.5, "test_acc": float("nan"),
                  "data_report": {"split_counts": split}}, RunConfig())
    assert "warning: This run's validation accuracy (50.0%) is at the level of guessing" in capsys.readouterr().err


def test_a_run_from_a_checkpoint_says_what_it_loaded(capsys):
    from engine.cli import _print_weights

    _print_weights({"source": "checkpoint wrapped.pth.tar", "matched": 120, "head_kept": False,
                    "note": "read from the file's `state_dict` entry; the prefix `module.` that a training wrapper "
                            "adds to every weight's name removed"})
    assert capsys.readouterr().err == ("weights: 120 weight tensors loaded from wrapped.pth.tar; read from the file's "
                                       "`state_dict` entry; the prefix `module.` that a training wrapper adds to "
                                       "every weight's name removed; a new classification head "
                                       "for your classes\n")
    _print_weights({"source": "bundled", "matched": 120})
    assert capsys.readouterr().err == "", "said only for the user's own weights"
    _print_weights({"source": "checkpoint run.safetensors", "matched": 120, "file_classes": list("abcde"),
                    "head_tensors": 2, "head_outputs": 5,
                    "note": "new classification head: the file was trained on 5 other classes"})
    assert capsys.readouterr().err.count("head") == 1, "the head said once"


def test_a_finished_run_is_never_continued_even_with_a_resume_point_left(tmp_path):
    from engine.errors import StudioError
    from engine.resume import check_resumable

    (tmp_path / "resume.pt").write_bytes(b"")
    check_resumable(tmp_path, "stopped")
    with pytest.raises(StudioError, match="This run finished: there is nothing left to continue"):
        check_resumable(tmp_path, "finished")


def test_ctrl_c_before_the_first_epoch_ends_says_to_start_again(tiny_zip, tmp_path, monkeypatch, capsys):
    """A run interrupted before its first epoch ended has no resume point: the command says to start
    it again from its config, not to continue it (which could only fail)."""
    from engine import cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "execute_run", interrupted)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # the command fits torch's threads to the CPUs
    monkeypatch.setattr(cli, "register_upload_dir", lambda folder: None)
    out = tmp_path / "run"
    assert cli.main(["train", "--data", str(tiny_zip), "--image-size", "32", "--out", str(out),
                     "--data-dir", str(tmp_path / "d")]) == 130
    said = capsys.readouterr().err
    assert "stopped before its first epoch ended" in said and f"--config {out / 'config.yaml'}" in said, said
    assert "--resume" not in said
    assert [r.status for r in RunStore(tmp_path / "d" / "studio.db").list_runs()] == ["stopped"]
    # continued anyway: the refusal knows it stopped (it hedged "or it finished") and gives the command to start again
    from engine.config import RunConfig, apply_overrides

    out.mkdir(exist_ok=True)
    (out / "config.yaml").write_text(apply_overrides(RunConfig(), [f"data.source={tiny_zip}"]).to_yaml())
    assert cli.main(["train", "--resume", str(out), "--data-dir", str(tmp_path / "d")]) == 2
    said = capsys.readouterr().err
    assert "(it stopped before its first epoch ended). Start it again instead: python -m engine train --config " \
           f"{out / 'config.yaml'} --data-dir" in said and "or it finished" not in said, said

    def after_one_epoch(store, run_id, cfg, run_dir, *args, **kwargs):  # a resume point and one epoch logged
        run_dir.mkdir(parents=True)
        (run_dir / "resume.pt").write_bytes(b"")
        store.log_metrics(run_id, 1, 4, {"val_acc": 0.5}, channel="epoch")
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "execute_run", after_one_epoch)
    later = tmp_path / "later run"
    assert cli.main(["train", "--data", str(tiny_zip), "--image-size", "32", "--epochs", "40", "--out", str(later),
                     "--data-dir", str(tmp_path / "d")]) == 130
    # with the store's folder: printed, the command works from a new terminal as it is
    assert (f"continue it with: python -m engine train --resume '{later}' --data-dir "
            f"{shlex.quote(str(tmp_path / 'd'))}") in capsys.readouterr().err
    (rec,) = [r for r in RunStore(tmp_path / "d" / "studio.db").list_runs() if r.run_dir == str(later)]
    assert cli._run_facts(rec) == "[tiny.zip, 1 of 40 epochs]", "runs says how far it got"


def test_continuing_under_torchrun_is_refused_before_anything_starts(tmp_path, monkeypatch, capsys):
    """Under torchrun every process would continue the run alone, all writing one folder: `train
    --resume` says to continue in one process, before any process group or record."""
    from engine.cli import main

    run_dir = tmp_path / "old run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("{}")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # the command fits torch's threads to the CPUs
    assert main(["train", "--resume", str(run_dir), "--data-dir", str(tmp_path / "d")]) == 2
    assert "A run continues in one process" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_the_runs_own_dataset_is_recognised_by_path_folder_or_bytes(tmp_path):
    import hashlib

    from engine.cli import _same_file
    from engine.paths import upload_ref

    a, b, c = (tmp_path / n for n in ("a.zip", "b.zip", "c.zip"))
    a.write_bytes(b"0123456789")
    b.write_bytes(b"0123456789")  # a copy elsewhere
    c.write_bytes(b"0123456780")  # the same size, other bytes: only the hash tells
    assert _same_file(b, str(a)) and not _same_file(c, str(a))
    assert _same_file(a, upload_ref(hashlib.sha256(a.read_bytes()).hexdigest())), "an upload: its reference's hash"
    assert not _same_file(c, upload_ref(hashlib.sha256(a.read_bytes()).hexdigest()))
    (tmp_path / "images").mkdir()
    assert _same_file(tmp_path / "images", str(tmp_path / "images")), "the run's own folder"
    assert not _same_file(tmp_path / "images", str(a)) and not _same_file(tmp_path / "gone.zip", str(a))


def test_methods_streams_and_wise_ft_choice_are_said_in_words(capsys):
    """The command line printed WiSE-FT's curve as raw JSON in the order it was computed and never said which
    alpha the run chose (predict --variant wise used it silently)."""
    from engine.cli import _say_wise, stream_words

    assert stream_words("wise_ft", {"alpha": 0.25, "val_acc": 0.3333333432674408, "ood_acc": 0.5,
                                    "robust_acc": None}) == "WiSE-FT curve, alpha 0.25: validation 33.3%, OOD 50.0%"
    assert stream_words("pruning_sparsity", {"epoch": 3, "sparsity": 0.35, "target": 0.7, "val_acc": 0.5}) == \
        "pruning, epoch 3: sparsity 35.0% (the schedule's target now 70.0%)"
    assert stream_words("pruning_trials", {"trial": 2, "val_acc": 0.8, "sparsity": 0.6, "best_so_far": 2,
                                           "feasible": False}) == ("pruning search, trial 2: validation 80.0%, "
                                                                   "sparsity 60.0%, the best so far (below the accuracy floor)")
    # the smaller model's fine-tune in words and percent (a new user read raw JSON of fractions there)
    from engine.methods.pruning import FINE_TUNE_STREAM

    assert stream_words(FINE_TUNE_STREAM, {"epoch": 0, "val_acc": 0.5555555820465088, "before": 0.7777777910232544,
                                           "epochs": 10}) == ("structured pruning: the smaller model at validation "
                                                              "55.6% after its channels were cut (the full-size model: "
                                                              "77.8%)")
    assert stream_words(FINE_TUNE_STREAM, {"epoch": 3, "val_acc": 0.7, "before": 0.78, "epochs": 10}) == \
        "structured pruning: the smaller model's fine-tune, epoch 3 of 10: validation 70.0%"
    assert stream_words("other", {"x": 1}) == 'other: {"x": 1}'
    curve = [{"alpha": a, "val_acc": v, "ood_acc": o} for a, v, o in
             ((0.0, 0.6, 0.50), (0.5, 0.795, 0.58), (0.9, 0.8, 0.58), (1.0, 0.8, 0.55))]
    _say_wise({"wise_curve": [curve[i] for i in (3, 0, 1, 2)]})  # in computing order: ends first
    out = capsys.readouterr().out.splitlines()
    assert out.pop(0) == "WiSE-FT curve by alpha (validation / OOD):"
    assert out.pop(0) == ("  0: 60.0% / 50.0% · 0.5: 79.5% / 58.0% · 0.9: 80.0% / 58.0% · 1: 80.0% / 55.0%"), \
        "by alpha, not in the order computed"
    _say_wise({"wise_curve": [dict(curve[0], alpha=a / 20) for a in range(21)]})
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines[:6])) < 120 and lines[2].startswith("  0.25: ") and lines[5] == "  1: 60.0% / 50.0%", lines
    assert out[0].startswith("WiSE-FT: alpha 0.9 chosen (validation 80.0%, OOD 58.0% on the curve's images)"), out
    assert out[1].startswith("WiSE-FT: the paper's claim shown in this run"), out
    assert "alpha 0.9 (the same OOD as at alpha 0.5) beats both ends" in out[1], out
    assert out[2] == ("In plain words: Of the mixes measured, the best on corrupted images, at alpha 0.9, beats the "
                      "fine-tuned model by 3.0 points and the starting model by 8.0, at no cost on your data."), \
        "the panel's reading after the paper's terms, each end's margin its own (a teacher read 'both ends by 0.8')"
    # the user's OOD set: a third figure per alpha, four to a line, and its reading after the suite's
    _say_wise({"wise_curve": [dict(p, ood_user_acc=u) for p, u in zip(curve, (0.5, 0.75, 0.5, 0.25))]})
    own = capsys.readouterr().out.splitlines()
    assert own[0] == "WiSE-FT curve by alpha (validation / OOD / your OOD set):"
    assert own[1] == "  0: 60.0% / 50.0% / 50.0% · 0.5: 79.5% / 58.0% / 75.0% · 0.9: 80.0% / 58.0% / 50.0% · " \
                     "1: 80.0% / 55.0% / 25.0%"
    assert "On your OOD set the mix at alpha 0.5 does best: 75.0% against 50.0% for the starting model" in own[-1]
    _say_wise({})
    assert capsys.readouterr().out == "", "nothing for a run without WiSE-FT"
    # the run's own figures at guessing (the warning printed before): the claim line says it compares noise
    _say_wise({"wise_curve": curve, "classes": ["a", "b"], "val_acc": 0.5,
               "data_report": {"split_counts": {"val": {"a": 50, "b": 50}}}})
    said = capsys.readouterr().out.rstrip().splitlines()
    assert said[-2].startswith("In plain words: ") and said[-1] == (
        "(This run learnt nothing, as its warning says: these lines compare noise.)"), said
    # the fine-tuned end at guessing on validation: the lines say it themselves, no third time
    _say_wise({"wise_curve": [dict(p, val_acc=0.5) for p in curve], "classes": ["a", "b"], "val_acc": 0.5,
               "data_report": {"split_counts": {"val": {"a": 50, "b": 50}}}})
    said = capsys.readouterr().out.rstrip().splitlines()
    assert "compare noise" in said[-2] and said[-1].startswith("In plain words: The fine-tuned model is at or "
                                                               "below guessing"), said
    for p in curve[1:3]:
        p["val_acc"] = 0.7
    _say_wise({"wise_curve": curve})
    assert "alpha 1 chosen (the fine-tuned model itself" in capsys.readouterr().out


def test_a_gap_between_validation_and_test_beyond_chance_is_said_with_the_commands_way_to_check(capsys):
    from engine.cli import _say_caution
    from engine.config import RunConfig

    split = {"val": {"a": 64, "b": 64}, "test": {"a": 64, "b": 64}}
    _say_caution({"classes": ["a", "b"], "val_acc": 120 / 128, "test_acc": 90 / 128,
                  "data_report": {"split_counts": split}}, RunConfig())
    said = capsys.readouterr().err
    assert "note: Validation (93.8%) and test (70.3%) differ by 23.5 points" in said and "another --seed" in said, said
    assert "Model page" not in said
    _say_caution({"classes": ["cat", "dog", "fox"], "val_acc": 0.8, "test_acc": 0.8,
                  "test_confusion": [[18, 1, 1], [0, 20, 0], [2, 8, 10]],  # fox: half right, often a dog
                  "data_report": {"split_counts": {"val": {"cat": 20, "dog": 20, "fox": 20},
                                                   "test": {"cat": 20, "dog": 20, "fox": 20}}}}, RunConfig())
    said = capsys.readouterr().err
    assert "note: Weaker than the other classes on the test images" in said and \
        "fox, 10 of 20 right (50%, against 95% for the others), most often taken for dog (8 of 20)" in said, said


def test_digit_or_letter_classes_get_the_mirroring_note_the_data_page_gives(capsys):
    """The Data page warned that a mirrored digit or letter is another symbol; the command line mirrored
    them without a word."""
    import dataclasses

    from engine.cli import _say_mirroring
    from engine.config import RunConfig

    cfg = RunConfig()
    _say_mirroring(cfg, ["0", "1", "2", "3"])
    err = capsys.readouterr().err
    assert err.startswith("note: your class names are digits or letters ('0', '1', '2', ...)"), err
    assert "--set train.flip=false" in err
    _say_mirroring(cfg, ["cat", "dog"])  # photos: mirroring is right
    _say_mirroring(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, flip=False)), ["a", "b", "c"])
    assert capsys.readouterr().err == "", "said only where the run mirrors symbols"


def test_an_epochs_figures_are_printed_in_the_pages_words_and_units():
    """The command line printed "val_acc=0.2500 images_per_sec=199.0720" beside warnings in percent."""
    from engine.cli import epoch_words

    line = epoch_words(2, {"train_loss": 1.1, "train_acc": 0.3, "images_per_sec": 199.07, "val_loss": float("nan"),
                           "val_acc": 0.25, "ood_acc": 0.2, "ood/blur": 0.1, "lr": 0.0025, "sparsity": 0.7,
                           "co_rollback": 1.0, "adafilter_gate_grad": 0.001})
    assert line == ("epoch 2: validation 25.0%, OOD 20.0%, sparsity 70.0%, train 30.0%, train loss 1.100, validation "
                    "loss n/a, lr 0.0025, 199 img/s"), "internal names and per-corruption figures left to the pages"


def test_the_finished_line_gives_the_figures_in_percent_and_the_split_without_images():
    from engine.cli import finished_words

    assert finished_words({"val_acc": 2 / 3, "test_acc": 0.5, "ood_acc": 0.5167, "train_images_per_sec": 55.82}) == (
        "finished: test 50.0%, validation 66.7%, OOD (corrupted, severities 1-5) 51.7%, trained at 56 img/s")
    # eval.ood off (the Fastest model): the line says so rather than leave OOD out unexplained
    assert finished_words({"val_acc": 0.5, "test_acc": 0.5, "ood_acc": None}) == \
        "finished: test 50.0%, validation 50.0%, OOD not measured"
    # a run a method ended early: the console said "finished" with the kept model's figures and nothing else
    early = {"val_acc": 0.75, "ended_early": {"after_epoch": 3, "planned": 20, "weights_epoch": 2,
                                              "reason": "catastrophic overfitting: ..., so the weights of epoch 2 were kept"}}
    assert finished_words(early) == ("finished: validation 75.0%\n  Training ended after epoch 3 of 20: catastrophic "
                                     "overfitting: ..., so the weights of epoch 2 were kept.")
    # "epoch 8: robust 62.5%" then "finished: robust 33.3%": the final attack is stronger, on other images
    attacked = {"test_acc": 0.5, "robust_acc": 1 / 3, "robust_eval": {"attack": "PGD-20", "eps": 4 / 255, "split": "test"}}
    assert finished_words(attacked) == "finished: test 50.0%, robust (PGD-20 at eps 4/255 on the test images) 33.3%"


def test_the_console_says_what_the_epochs_robust_accuracy_attacks(capsys):
    from types import SimpleNamespace

    from engine.cli import ConsoleReporter
    from engine.config import RunConfig, with_section

    cfg = with_section(RunConfig(), "eval", robust=True, robust_subset=16, robust_steps_each_epoch=5, robust_steps=20)
    r = ConsoleReporter(SimpleNamespace(log_metrics=lambda *a, **k: None), "r1", cfg=cfg)
    r.epoch_metrics(1, 10, {"val_acc": 0.5, "ood_acc": 0.4, "robust_acc": 0.625})
    assert ("; robust: accuracy under attack, PGD-5 at eps 4/255 on at most 16 validation images each epoch; the "
            "final figure: PGD-20 on the test images (validation ones without a test split))") in capsys.readouterr().out


def test_the_console_says_once_what_the_curve_and_ood_lines_mean(capsys):
    """A new user read 21 curve lines in computing order (0, 1, 0.5, 0.25, ...) and an "OOD" never explained, whose
    final figure (five severities) differed from the epochs' (one)."""
    from types import SimpleNamespace

    from engine.cli import ConsoleReporter

    store = SimpleNamespace(log_metrics=lambda *a, **k: None)
    r = ConsoleReporter(store, "r1")
    for alpha in (0.0, 1.0, 0.5):
        r.stream("wise_ft", {"alpha": alpha, "val_acc": 0.5, "ood_acc": 0.4})
    for epoch in (1, 2):
        r.epoch_metrics(epoch, 10 * epoch, {"val_acc": 0.5, "ood_acc": 0.4})
    out = capsys.readouterr().out
    assert out.count("WiSE-FT: measuring the curve between the starting model (alpha 0)") == 1, out
    assert "WiSE-FT curve, alpha" not in out, "one line while it measures; the table by alpha at the end"
    assert out.count("(OOD: accuracy on corrupted copies of the validation images") == 1, out
    assert "at one severity each epoch; the final figure averages all five" in out


def test_output_sent_to_a_file_keeps_the_order_it_was_printed_in(tiny_zip, tmp_path):
    """`> log 2>&1` without PYTHONUNBUFFERED: stdout was block-buffered, so the epoch lines (stdout) landed
    after the warning and note printed when the run ended (stderr)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    log = tmp_path / "log.txt"
    with log.open("w") as f:
        p = subprocess.run([sys.executable, "-m", "engine", "train", "--data", str(tiny_zip), "--backbone", "resnet18",
                            "--pretrained", "none", "--epochs", "2", "--image-size", "32", "--batch-size", "8", "--out",
                            str(tmp_path / "run"), "--data-dir", str(tmp_path / "d"), "--device", "cpu",
                            "--set", "eval.ood=false"],  # its figures are not what is checked: seconds less
                           cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env, timeout=300)
    lines = log.read_text().splitlines()
    assert p.returncode == 0, lines
    first = lambda prefix: next((i for i, line in enumerate(lines) if line.startswith(prefix)), None)  # noqa: E731
    # the note on the tiny splits' few images is printed after the run, on stderr
    order = [first(p) for p in ("run ", "epoch 1/2, step 1/", "epoch 1: ", "epoch 2: ", "finished: ", "note: Measured on")]
    assert None not in order and order == sorted(order), lines


def test_output_sent_to_a_file_gets_whole_progress_lines_and_no_redrawn_bar(capsys, monkeypatch):
    """With `> log 2>&1` tqdm's redrawn bar (carriage returns on stderr) and the epoch lines (stdout) shared
    lines in the file; a terminal shows them apart. Without a terminal: a whole progress line at the first
    step, then at most every PLAIN_PROGRESS_EVERY_S; on a terminal, the bar."""
    from types import SimpleNamespace

    import engine.cli as cli

    store = SimpleNamespace(log_metrics=lambda *a, **k: None)
    now = [1000.0]
    monkeypatch.setattr(cli.time, "monotonic", lambda: now[0])
    step = dict(phase="training", epoch=2, epochs=10, total_steps=120, images_per_sec=152.4, loss=0.8123, eta_s=65.2)
    r = cli.ConsoleReporter(store, "r1")  # capsys: stderr is no terminal
    assert not r.bar_drawn
    for s in (30, 31, 32):
        r.progress(step=s, **{k: v for k, v in step.items()})
        now[0] += 1.0
    r.epoch_metrics(2, 32, {"val_acc": 0.5})
    now[0] += cli.PLAIN_PROGRESS_EVERY_S
    r.progress(step=40, **step)
    out, err = capsys.readouterr()
    assert "\r" not in err and "\r" not in out
    assert err.splitlines() == ["epoch 2/10, step 30/120 in all, 152 img/s, loss 0.812, about 1 min 5 s left",
                                "epoch 2/10, step 40/120 in all, 152 img/s, loss 0.812, about 1 min 5 s left"], err
    assert out == "epoch 2: validation 50.0%\n"
    assert cli.progress_words({"phase": "training", "step": 3}) == "epoch ?/?, step 3/?"  # fields may be missing

    monkeypatch.setattr(cli.sys.stderr, "isatty", lambda: True)
    shown = cli.ConsoleReporter(store, "r2")
    shown.progress(step=30, **step)
    assert shown.bar_drawn and shown._bar is not None  # on a terminal: tqdm's bar
    shown.close_bar()


def test_the_users_weights_are_read_once_and_the_run_trains_what_the_check_built(tiny_zip, tmp_path, monkeypatch):
    """`train --checkpoint FILE` reads the file before a run is recorded (a wrong file is a message, not a failed
    run) and hands the model it built to the run, which does not read the file again; the model and the random
    state after it are those the run would have built itself with the same seed (the dashboard's way)."""
    from conftest import TEST_DEVICE
    from safetensors.torch import save_file

    from engine import backbones, cli, train as train_module
    from engine.backbones import build_model
    from engine.config import apply_overrides, RunConfig
    from engine.run_data import prepare_data

    torch.manual_seed(0)
    net, _ = build_model("resnet18", 3, "none")
    ckpt = tmp_path / "start.safetensors"
    save_file({k: v.contiguous() for k, v in net.net.state_dict().items()}, str(ckpt))
    reads, handed = [], {}
    real_read = backbones.read_checkpoint
    monkeypatch.setattr(backbones, "read_checkpoint", lambda *a, **k: reads.append(a[0]) or real_read(*a, **k))
    monkeypatch.setattr(cli, "execute_run", lambda *a, **k: handed.update(k) or {"status": "finished"})
    monkeypatch.setattr(cli, "_say_after_run", lambda *a, **k: 0)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # the command fits torch's threads to the CPUs
    monkeypatch.setattr(cli, "register_upload_dir", lambda folder: None)
    assert cli.main(["train", "--data", str(tiny_zip), "--image-size", "32", "--checkpoint", str(ckpt), "--seed", "3",
                     "--out", str(tmp_path / "run"), "--data-dir", str(tmp_path / "d")]) == 0
    assert len(reads) == 1 and isinstance(handed["start"], train_module.StartModel), (reads, handed)
    cfg = apply_overrides(RunConfig(), [f"data.source={tiny_zip}", "data.image_size=32", "seed=3",
                                        f"backbone.checkpoint={ckpt}", "backbone.pretrained=checkpoint"])
    data = prepare_data(cfg, tmp_path / "w")
    torch.manual_seed(99)  # whatever ran between the check and the run
    model, report = handed["start"].take()
    after_take = torch.rand(4)
    own = train_module.build_start(cfg, data)
    assert report.to_dict() == own.load_report.to_dict()
    assert torch.equal(torch.rand(4), after_take), "the random state continues as if the run had built it"
    for (k, a), b in zip(model.state_dict().items(), own.model.state_dict().values()):
        assert torch.equal(a, b), k
    # the run trains the model handed to it, without building one (a second read of the file)
    handed_over = train_module.build_start(cfg, data)
    monkeypatch.setattr(train_module, "build_model", lambda *a, **k: pytest.fail("the weights were read again"))
    short = apply_overrides(cfg, ["train.epochs=1", "train.batch_size=12", "eval.ood=false", f"train.device={TEST_DEVICE}"])
    result = train_module.train(short, data=data, start=handed_over, work_dir=tmp_path / "w")
    assert result.summary["load_report"]["source"].startswith("checkpoint")


def test_the_command_line_says_each_methods_claim_against_the_same_runs_as_results(tiny_zip, tmp_path, capsys):
    """A new user's pruning run printed WiSE-FT's claim line but not Pruning's, which Results showed."""
    from engine.cli import main

    base = ["train", "--data", str(tiny_zip), "--backbone", "resnet18", "--pretrained", "none", "--epochs", "1",
            "--image-size", "32", "--batch-size", "8", "--data-dir", str(tmp_path / "d"), "--quiet",
            "--set", "eval.ood=false"]
    pruned = [*base, "--set", "pruning.enabled=true", "--set", "pruning.target_sparsity=0.5"]
    assert main(pruned) == 0
    out = capsys.readouterr().out
    assert "Pruning: 50.0% sparse at" in out and "(run the same settings without pruning to compare)" in out, out
    assert main(base) == 0 and "Pruning" not in capsys.readouterr().out, "standard fine-tuning has no claim"
    assert main(pruned) == 0
    out = capsys.readouterr().out
    (line,) = [t for t in out.splitlines() if t.startswith("Pruning")]
    assert "dense (" in line, line
    plain = next(r for r in RunStore(tmp_path / "d" / "studio.db").list_runs() if not r.config["pruning"]["enabled"])
    assert f"compared with {plain.name} ({plain.id}, standard fine-tuning, same settings)" in out
    # a run at guessing: the claim line compares noise, said above it as Results says it (a real finding of this
    # tiny run's own summary is luck; the two outcomes are made here)
    import engine.cli as cli_module
    from engine.chance import ChanceFinding

    store = RunStore(tmp_path / "d" / "studio.db")
    last = next(r for r in store.list_runs() if r.config["pruning"]["enabled"])
    summary = json.loads((Path(last.run_dir) / "summary.json").read_text())
    for finding, said in ((ChanceFinding("nothing", "test", "at guessing"), "compares noise.)"),
                          (ChanceFinding("luck", "test", "within luck"), "may compare noise.)"), (None, None)):
        capsys.readouterr()
        cli_module.chance_finding, before = (lambda s, f=finding: f), cli_module.chance_finding
        try:
            cli_module._say_claims(summary, store)
        finally:
            cli_module.chance_finding = before
        lines = capsys.readouterr().out.splitlines()
        assert lines[1 if said else 0].startswith("Pruning"), lines
        assert (said is None and "noise" not in " ".join(lines)) or (lines[0].startswith("(This run") and
                                                                   lines[0].endswith(said)), lines


def test_the_command_line_prints_a_line_per_epoch_of_work_inside_a_run(capsys):
    """The smaller model's fine-tune printed nothing between the run's last epoch and its end."""
    from engine.cli import ConsoleReporter
    from engine.contract import SubReporter

    class Store:
        def set_progress(self, *a): pass

    sub = SubReporter(ConsoleReporter(Store(), "r1"), "structured pruning: fine-tuning the smaller model")
    for epoch in (1, 1, 2):
        sub.progress(phase="training", epoch=epoch, epochs=2, step=3, total_steps=6)
    assert capsys.readouterr().err.splitlines() == ["structured pruning: fine-tuning the smaller model: epoch 1 of 2",
                                                    "structured pruning: fine-tuning the smaller model: epoch 2 of 2"]


def test_a_mistyped_option_gets_the_commands_usage_and_its_closest_name(capsys, tmp_path):
    """A student's `train --image_size 128` got the top-level usage and "unrecognized arguments" without a word of
    `--image-size`: the command's own usage and the closest option are said."""
    from engine.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["train", "--image_size", "128"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "usage: python -m engine train" in err, err
    assert "unrecognized arguments: --image_size 128 (--image_size: did you mean --image-size?)" in err
    with pytest.raises(SystemExit):
        main(["inspect", "--colour"])
    assert "did you mean" not in capsys.readouterr().err, "nothing close: no guess"
    # a photographer's typos: a command, an option meant to be a required one, a run id (letter o for zero)
    with pytest.raises(SystemExit) as exited:
        main(["predcit", "--run", "x", "a.jpg"])
    assert exited.value.code == 2 and "unknown command 'predcit': did you mean predict?" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["predict", "--rn", "4bc8b2", "a.jpg"])
    err = capsys.readouterr().err
    assert "--rn: did you mean --run?" in err and "the following arguments are required" not in err, err
    # `--` ends the options: what follows is an image, however it is named
    assert main(["predict", "--run", "x", "--data-dir", str(tmp_path), "--", "--odd.png", "--rn"]) == 2
    err = capsys.readouterr().err
    assert "unrecognized" not in err and "No run 'x'" in err, err
    from engine.cli import _closest_ids

    ids = ["20261207-000706-5cd305", "20261207-001410-4bc8b2"]
    assert _closest_ids("5cd3o5", ids) == ["20261207-000706-5cd305"] and _closest_ids("zzzzzz", ids) == []
    assert _closest_ids("", ids) == []


def test_a_mistyped_data_path_gets_the_closest_names_in_its_folder(tmp_path, capsys):
    """`train --data .../tissue_scan.zip` said only "The data path does not exist", while `predict` named the file
    meant: `train` and `inspect` now name it too."""
    from engine.cli import main

    (tmp_path / "tissue_scans.zip").write_bytes(b"")
    for command in ("train", "inspect"):
        assert main([command, "--data", str(tmp_path / "tissue_scan.zip"), "--data-dir", str(tmp_path / "d")]) == 2
        err = capsys.readouterr().err
        assert f"Did you mean '{tmp_path / 'tissue_scans.zip'}'?" in err, (command, err)
