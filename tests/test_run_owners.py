"""A run belongs to the program that trains it: a dashboard (re)started beside a command-line run leaves
that run alone, a run whose program has ended (killed, crashed) is released with a reason that says what
Continue does, and a command-line run ended by SIGTERM is recorded as stopped, as Ctrl+C's is."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import threading
from pathlib import Path

import psutil
import torch

from engine.checkpoints import save_checkpoint
from engine.jobs import interrupted_message
from engine.store import INTERRUPTED, RunStore, process_alive, this_process


def dead_pid() -> int:
    """A pid no process has now."""
    pid = 4_000_000
    while psutil.pid_exists(pid):
        pid += 1
    return pid


def test_a_program_is_alive_only_while_its_pid_runs_with_its_own_start_time():
    me = this_process()
    host, pid, started = me.split()
    assert host == socket.gethostname() and int(pid) == os.getpid() and process_alive(me)
    assert not process_alive(f"{host} {pid} {float(started) - 5:.2f}"), "a reused pid is another program"
    assert not process_alive(f"{host} {dead_pid()} {started}")
    assert not process_alive(""), "a store from before programs were recorded: as it always was, ended"
    assert process_alive(f"not-{host} 12 3.00"), "another host's program cannot be seen from here"


def test_a_restart_releases_only_the_runs_whose_program_has_ended(tmp_path):
    store = RunStore(tmp_path / "s.db")
    for run_id in ("cli", "killed", "queued", "old"):
        store.create_run(run_id, run_id, {}, str(tmp_path / run_id), status="queued")
        (tmp_path / run_id).mkdir()
    for run_id in ("cli", "killed", "old"):
        store.set_status(run_id, "running")
    host, _, started = this_process().split()
    with store._conn:  # three programs that have ended; "cli" is this one, still training
        store._conn.execute("UPDATE runs SET process=? WHERE id IN ('killed', 'queued')",
                            (f"{host} {dead_pid()} {started}",))
        store._conn.execute("UPDATE runs SET process='' WHERE id='old'")
    (tmp_path / "killed" / "resume.pt").write_bytes(b"")
    store.log_metrics("killed", 1, 4, {"val_acc": 0.5})
    store.log_metrics("killed", 2, 8, {"val_acc": 0.6})

    released = store.mark_interrupted(lambda rec: interrupted_message(store, rec))
    assert sorted(released) == ["killed", "old", "queued"]
    runs = {r.id: r for r in store.list_runs()}
    assert runs["cli"].status == "running" and runs["cli"].error is None
    assert runs["killed"].status == "failed"
    assert runs["killed"].error == ("Interrupted: the program training it ended (a restart, a crash or a kill) "
                                    "after epoch 2. Continue picks up at epoch 3 with the same schedule.")
    assert runs["old"].error.endswith("before the first epoch ended. Start it again."), "no resume point"
    assert runs["queued"].error.startswith("Interrupted: the program it was queued in ended"), runs["queued"].error
    assert store.mark_interrupted() == [], "released once"
    # its epochs were over (the smaller model's fine-tune, the final evaluation): no "picks up at epoch 3" of 2
    store.create_run("after", "after", {"train": {"epochs": 2}}, str(tmp_path / "after"), status="running")
    (tmp_path / "after").mkdir()
    (tmp_path / "after" / "resume.pt").write_bytes(b"")
    with store._conn:
        store._conn.execute("UPDATE runs SET process=? WHERE id='after'", (f"{host} {dead_pid()} {started}",))
    for epoch in (1, 2):
        store.log_metrics("after", epoch, 4 * epoch, {"val_acc": 0.5})
    assert store.mark_interrupted(lambda rec: interrupted_message(store, rec)) == ["after"]
    assert store.get_run("after").error == ("Interrupted: the program training it ended (a restart, a crash or a "
                                            "kill) after its 2 epochs, in the work that follows them. Continue "
                                            "does that work and the final evaluation again.")
    store.set_status("cli", "failed")
    store.create_run("later", "later", {}, str(tmp_path / "later"), status="running")
    with store._conn:
        store._conn.execute("UPDATE runs SET process='' WHERE id='later'")
    assert store.mark_interrupted() == ["later"] and store.get_run("later").error == INTERRUPTED


def test_sigterm_stops_a_command_line_run_as_ctrl_c_does(tiny_zip, tmp_path, monkeypatch, capsys):
    """`kill` (a scheduler, a time limit) during `train`: exit 143, the run stopped with its epochs and the
    command that continues it, and SIGTERM's own handler back afterwards. Before, the process ended at once
    and the store said "running" for good."""
    from engine import cli

    assert threading.current_thread() is threading.main_thread(), "signal handlers run in the main thread"

    def killed_after_one_epoch(store, run_id, cfg, run_dir, *args, **kwargs):
        run_dir.mkdir(parents=True)
        (run_dir / "resume.pt").write_bytes(b"")
        store.log_metrics(run_id, 1, 4, {"val_acc": 0.5, "val_loss": 0.75}, channel="epoch")
        store.log_metrics(run_id, 1, 3, {"train_loss": 0.9}, channel="step")  # not an epoch's figure
        save_checkpoint(run_dir / "best.safetensors", {"w": torch.zeros(1)}, cfg, {"classes": ["a", "b"], "epoch": 1})
        signal.raise_signal(signal.SIGTERM)
        raise AssertionError("SIGTERM did not interrupt the run")

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(cli, "execute_run", killed_after_one_epoch)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    monkeypatch.setattr(cli, "register_upload_dir", lambda folder: None)
    out = tmp_path / "run"
    assert cli.main(["train", "--data", str(tiny_zip), "--image-size", "32", "--epochs", "9", "--out", str(out),
                     "--data-dir", str(tmp_path / "d")]) == 143
    assert signal.getsignal(signal.SIGTERM) is before
    assert (f"continue it with: python -m engine train --resume {shlex.quote(str(out))} --data-dir "
            f"{shlex.quote(str(tmp_path / 'd'))}") in capsys.readouterr().err
    (rec,) = RunStore(tmp_path / "d" / "studio.db").list_runs()
    assert rec.status == "stopped"  # with the epochs and where Continue picks up, as the dashboard's stops say
    assert rec.error == ("Stopped by a request to end the program (SIGTERM: kill, a scheduler's time limit) after "
                         "epoch 1 of 9. Continue picks up at epoch 2 with the same schedule; until then the results "
                         "are those of epoch 1.")
    assert cli._run_facts(rec) == "[tiny.zip, 1 of 9 epochs]"
    # its summary names its epochs' figures and its classes, as a dashboard stop's does: its best epoch can be named
    summary = json.loads((out / "summary.json").read_text())
    assert summary["history"] == [{"epoch": 1, "val_acc": 0.5, "val_loss": 0.75}] and summary["classes"] == ["a", "b"]


def test_resume_refuses_a_run_its_program_still_trains_and_continues_one_whose_program_ended(
        tiny_zip, tmp_path, monkeypatch, capsys):
    from engine import cli

    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    monkeypatch.setattr(cli, "register_upload_dir", lambda folder: None)
    out, data_dir = tmp_path / "run", tmp_path / "d"

    def one_epoch_then_killed(store, run_id, cfg, run_dir, *args, **kwargs):  # left "running", as a SIGKILL leaves it
        run_dir.mkdir(parents=True)
        (run_dir / "config.yaml").write_text(cfg.to_yaml())
        (run_dir / "resume.pt").write_bytes(b"")
        store.set_status(run_id, "running")
        raise SystemExit(137)

    monkeypatch.setattr(cli, "execute_run", one_epoch_then_killed)
    try:
        cli.main(["train", "--data", str(tiny_zip), "--image-size", "32", "--out", str(out),
                  "--data-dir", str(data_dir)])
    except SystemExit:
        pass
    store = RunStore(data_dir / "studio.db")
    (rec,) = store.list_runs()
    assert rec.status == "running" and process_alive(rec.process), "this test's process trains it"
    assert cli.main(["train", "--resume", str(out), "--data-dir", str(data_dir)]) == 2
    assert (f"is running already, in another program (process {os.getpid()}): stop it there first (Ctrl+C in its "
            "terminal)") in capsys.readouterr().err

    with store._conn:  # its program has ended since
        store._conn.execute("UPDATE runs SET process=? WHERE id=?", (f"{socket.gethostname()} {dead_pid()}", rec.id))
    resumed = []
    monkeypatch.setattr(cli, "execute_run", lambda *a, **k: resumed.append(k.get("resume")) or {
        "status": "finished", "error": None})
    monkeypatch.setattr(cli, "_say_after_run", lambda *a: 0)
    assert cli.main(["train", "--resume", str(out), "--data-dir", str(data_dir)]) == 0
    assert resumed == [True]


def test_the_train_page_follows_a_command_line_run_and_releases_it_when_its_program_ends(tmp_path, monkeypatch):
    """A run the command line trains shows its progress on the Train page (written to the store) with a
    way to stop it there instead of a Stop button this server cannot honour; once its program has ended,
    the page says so and offers Continue, without a restart of the server."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from app.state import get_engine
    from engine.config import RunConfig

    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path / "studio"))
    try:
        engine = get_engine()
        run_dir = tmp_path / "studio" / "runs" / "cli-run"
        run_dir.mkdir(parents=True)
        engine.store.create_run("cli-run", "my command-line run", RunConfig().to_dict(), str(run_dir), owner="cli")
        engine.store.set_status("cli-run", "running")  # by this test's process: alive
        engine.store.log_metrics("cli-run", 1, 4, {"val_acc": 0.5, "train_acc": 0.4})
        engine.store.set_progress("cli-run", {"phase": "training", "epoch": 2, "epochs": 5, "step": 3,
                                              "total_steps": 8, "head_lr_note": "The new head learns at a rate of "
                                              "0.0059, not the 0.02 set: ..."})
        at = AppTest.from_file(str(Path(__file__).parents[1] / "app" / "main.py"), default_timeout=120)
        at.run()
        at.switch_page("app_pages/train.py").run()
        assert not at.exception, at.exception
        said = " ".join(c.value for c in at.caption)
        assert f"Trained by another program (process {os.getpid()}" in said, said
        assert not [b for b in at.button if b.key == "stop_cli-run"], "this server cannot stop it"
        assert [m.value for m in at.metric if m.label == "Epoch"] == ["2 / 5"]
        assert "The new head learns at a rate of 0.0059, not the 0.02 set" in said, "the live view says it too"
        # the sidebar and the start box say the CPU is busy: "Engine idle: ready for a run." read as free
        assert any("**Training elsewhere:** my command-line run" in m.value for m in at.sidebar.markdown)
        assert not any("ready for a run" in c.value for c in at.sidebar.caption)
        assert any("is training in another program" in c.value for c in at.caption), "beside Start"

        (run_dir / "resume.pt").write_bytes(b"")
        with engine.store._conn:  # the command line was killed
            engine.store._conn.execute("UPDATE runs SET process=? WHERE id='cli-run'",
                                       (f"{socket.gethostname()} {dead_pid()}",))
        at.run()
        assert not at.exception, at.exception
        rec = engine.store.get_run("cli-run")
        assert rec.status == "failed" and "after epoch 1. Continue picks up at epoch 2" in rec.error
        assert [b for b in at.button if b.key == "continue_cli-run"]
        assert "after epoch 1. Continue picks up at epoch 2" in " ".join(w.value for w in at.warning)
        assert any(w.value.startswith("This run was interrupted: the program training it ended") for w in at.warning)
        assert not any("This run failed" in e.value for e in at.error), "interrupted, not failed of its own"
        assert any(m.value.startswith("#### :material/pause_circle: my command-line run") for m in at.markdown)
        said = " ".join(c.value for c in at.caption)
        assert "Nothing was wrong with its settings" in said and "Fix the setting" not in said, said
    finally:
        get_engine().shutdown(5)
        st.cache_resource.clear()


def test_a_failed_runs_advice_fits_why_it_failed():
    """A crash names no setting, so "fix the setting the message names" was advice nobody could follow."""
    from app.components import failed_advice

    assert "Fix the setting the message names" in failed_advice("The image size must be at least 16 px.")
    crash = failed_advice("The run crashed (FileNotFoundError: x). Details are in runs/a/error.log.")
    assert "not in your settings" in crash and "Fix the setting" not in crash
    assert "smaller" in failed_advice("The GPU ran out of memory: use a smaller batch size, image size or backbone.")


def test_engine_messages_show_as_written_in_the_dashboard_with_their_code_spans_kept():
    """A refusal listing "__builtin__.set" read "builtin.set" in bold: engine messages are plain text."""
    from app.state import message_md

    said = message_md("r.pth was refused (torchvision.models.resnet.ResNet, __builtin__.set): use `torch.save(m.state_dict())`.")
    assert said == ("r.pth was refused (torchvision.models.resnet.ResNet, \\_\\_builtin\\_\\_.set): use "
                    "`torch.save(m.state_dict())`.")
    assert message_md("*draft* [1].zip") == "\\*draft\\* \\[1\\].zip"


def test_runs_speaks_the_command_lines_words_and_names_a_run_its_program_left_running(tmp_path, capsys):
    from engine import cli
    from engine.jobs import stopped_message

    store = RunStore(tmp_path / "studio.db")
    for run_id in ("stopped", "killed", "live"):
        (tmp_path / run_id).mkdir()
        (tmp_path / run_id / "resume.pt").write_bytes(b"")
        store.create_run(run_id, run_id, {}, str(tmp_path / run_id), status="running")
    store.set_status("stopped", "stopped", stopped_message(6, 20, True))
    for epoch in (1, 2, 3):  # the killed run logged epochs after its last summary (none yet)
        store.log_metrics("killed", epoch, 4 * epoch, {"val_acc": 0.5})
    with store._conn:
        store._conn.execute("UPDATE runs SET config=? WHERE id='killed'", ('{"train": {"epochs": 9}}',))
    with store._conn:
        store._conn.execute("UPDATE runs SET process=? WHERE id='killed'", (f"{socket.gethostname()} {dead_pid()}",))
    assert cli.main(["runs", "--data-dir", str(tmp_path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    resume = "python -m engine train --resume {} --data-dir " + shlex.quote(str(tmp_path))  # not the default store
    assert f"{resume.format('stopped')} picks up at epoch 7" in lines["stopped"], lines["stopped"]
    assert "Continue" not in lines["stopped"], "the dashboard's button is not on the command line"
    # the killed run is marked interrupted by the listing too, as the dashboard marks it, with how far it got
    assert lines["killed"].split()[1] == "failed" and store.get_run("killed").status == "failed"
    assert (f"(Interrupted: the program training it ended (a restart, a crash or a kill) after epoch 3. "
            f"{resume.format('killed')} picks up at epoch 4") in lines["killed"], lines["killed"]
    assert "3 of 9 epochs" in lines["killed"], "how far it got, from the epochs it logged"
    assert "(" not in lines["live"], "a run still training has nothing to say"


def test_a_run_folder_continues_under_the_store_that_holds_it(tiny_zip, tmp_path, monkeypatch):
    """`train --resume <folder>` from a terminal without the dashboard's STUDIO_DATA_DIR trained the run to its
    end under a new id in the default store, while the dashboard's store still read "interrupted"."""
    from engine import cli
    from engine.config import RunConfig, apply_overrides

    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    monkeypatch.setattr(cli, "register_upload_dir", lambda folder: None)
    home = tmp_path / "studio"
    folder = home / "runs" / "20261204-000000-abcdef"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(apply_overrides(RunConfig(), [f"data.source={tiny_zip}"]).to_yaml())
    (folder / "resume.pt").write_bytes(b"")
    store = RunStore(home / "studio.db")
    store.create_run(folder.name, "mine", {}, str(folder), status="stopped")
    used = []
    monkeypatch.setattr(cli, "execute_run", lambda store, run_id, cfg, run_dir, datasets, *a, **k: used.append(
        (store.path, run_id, datasets)) or {"status": "finished", "error": None})
    monkeypatch.setattr(cli, "_say_after_run", lambda *a: 0)
    assert cli.main(["train", "--resume", str(folder), "--data-dir", str(tmp_path / "elsewhere")]) == 0
    assert used == [(home / "studio.db", folder.name, home / "datasets")], used
    assert not (tmp_path / "elsewhere" / "studio.db").exists()
