"""The engine: one object per process owning the run store, a job queue and a worker thread.

The dashboard shares one `Engine` across sessions (st.cache_resource); start, stop and status
are methods on it. The worker thread runs one job at a time (a small GPU or CPU has no room
for two) and publishes what it sees into thread-safe snapshots that the UI polls. Nothing here
knows about Streamlit.
"""

from __future__ import annotations

import atexit
import copy
import queue
import shutil
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import RunConfig, validate
from engine.errors import StudioError
from engine.jobs import STOPPED_BY_SERVER, STOPPED_BY_USER, execute_run, interrupted_message, stopped_message
from engine.checkpoints import new_run_id
from engine.resume import RESUME_FILE, check_resumable, planned_epochs
from engine.paths import ASSETS_DIR, DATASETS_FOLDER, PROJECT_DIR, UPLOAD_PREFIX, register_upload_dir, resolve_path
from engine.security import AccessDenied, DataRoots, LimitExceeded, Limits
from engine.store import RunRecord, RunStore, process_alive
from engine.contract import Reporter
from engine.words import plural

MAX_STEP_POINTS = 2000  # per run, in the live snapshot (the store keeps them all)


@dataclass
class RunSnapshot:
    """What the dashboard shows of a run, read from the store: id, name, status, owner, live progress fields,
    per-epoch metrics, logged steps (loss, lr), methods' streams and the error of a failed run."""

    run_id: str
    name: str
    status: str
    owner: str = ""
    progress: dict[str, Any] = field(default_factory=dict)  # phase, epoch, step, images/s, ETA ...
    epochs: list[dict[str, Any]] = field(default_factory=list)  # one dict of metrics per epoch
    steps: list[dict[str, Any]] = field(default_factory=list)  # loss and lr per logged step
    extra: dict[str, list] = field(default_factory=dict)  # method streams (e.g. WiSE-FT curve points)
    error: str | None = None
    updated: float = field(default_factory=time.time)


def fold_metric_rows(rows, epochs: list[dict[str, Any]], steps: list[dict[str, Any]]) -> None:
    """Store metric rows (dicts of channel, epoch, step, name, value, in logging order) appended to
    the snapshot's per-epoch and per-step dicts: one dict per (epoch, step), one key per name. A step
    logged again (an epoch cut short by a stop, redone after Continue) appears twice; the charts keep
    its last value (app.charts.steps_frame)."""
    for r in rows:
        target = steps if r["channel"] == "step" else epochs
        if not target or target[-1]["step"] != r["step"] or target[-1]["epoch"] != r["epoch"]:
            target.append({"epoch": r["epoch"], "step": r["step"]})
        target[-1][r["name"]] = r["value"]


class _EngineReporter(Reporter):
    def __init__(self, engine: "Engine", run_id: str, stop_flag: threading.Event):
        self.engine, self.run_id, self.stop_flag = engine, run_id, stop_flag

    @property
    def stop_reason(self) -> str:
        """Why a stop came, in the stopped run's message: the engine shutting down, or the user."""
        return self.engine.stop_reason()

    def progress(self, **fields: Any) -> None:
        with self.engine._lock:
            snap = self.engine._snapshots[self.run_id]
            snap.progress.update(fields)
            snap.updated = time.time()

    def step_metrics(self, epoch: int, step: int, values: dict[str, float]) -> None:
        self._log("step", epoch, step, values)

    def epoch_metrics(self, epoch: int, step: int, values: dict[str, float]) -> None:
        self._log("epoch", epoch, step, values)

    def _log(self, channel: str, epoch: int, step: int, values: dict[str, float]) -> None:
        """Into the store (kept) and the live snapshot (the last MAX_STEP_POINTS steps, every epoch)."""
        self.engine.store.log_metrics(self.run_id, epoch, step, values, channel=channel)
        with self.engine._lock:
            snap = self.engine._snapshots[self.run_id]
            rows = snap.steps if channel == "step" else snap.epochs
            rows.append({"epoch": epoch, "step": step, **values})
            del rows[:-MAX_STEP_POINTS]
            snap.updated = time.time()

    def stream(self, key: str, point: dict[str, Any]) -> None:
        """Methods publish points that arrive after training (e.g. WiSE-FT's alpha curve)."""
        with self.engine._lock:
            self.engine._snapshots[self.run_id].extra.setdefault(key, []).append(point)

    def should_stop(self) -> bool:
        return self.stop_flag.is_set()


def check_gpus(cfg: RunConfig, gpus: tuple[int, ...]) -> None:
    """GPUs chosen for a run must exist, be distinct, and fit the run's device setting."""
    import torch

    if cfg.train.device not in ("auto", "cuda"):
        raise StudioError(f"GPUs were chosen but the run's device is set to `{cfg.train.device}`: set Device to "
                          "auto or cuda (Model and methods page), or choose a single GPU.")
    count = torch.cuda.device_count()  # 0 without CUDA
    missing = [g for g in gpus if not 0 <= g < count]
    if missing:
        raise StudioError(f"GPU {missing[0]} is not on this machine (it has {count} GPU(s)).")
    if len(set(gpus)) != len(gpus):
        raise StudioError("The same GPU was chosen twice: choose each GPU once.")


SHUTDOWN_WAIT_S = 30.0  # at exit, how long the running job gets to stop (a step; a stop is honoured within 2 s)


def _shutdown_at_exit(ref: "weakref.ref[Engine]") -> None:
    """At interpreter exit (a dashboard stopped with SIGTERM or Ctrl+C, the end of a script): stop the
    running job at its next step and wait for the worker thread, so that no torch operation is still
    running in it while the process tears down, and the run is recorded as stopped, with the epochs it
    finished and its Continue, instead of left "running". Without it the process aborted ("terminate
    called without an active exception", exit code -6 or 134)."""
    engine = ref()
    if engine is not None and not engine._closed:
        engine.shutdown(timeout=SHUTDOWN_WAIT_S)


class Engine:
    """The background engine behind the dashboard: a queue of runs trained one at a time in a worker thread (or a
    torchrun child), with per-user access control, the run store, snapshots for the pages, stop/continue/delete
    and disk limits. Everything it writes stays under `data_dir`."""

    def __init__(self, data_dir: str | Path = "runs", limits: Limits | None = None, access_control: bool = False,
                 data_roots: DataRoots | None = None):
        """`access_control`: each user sees and controls only their own (and shared) runs.
        `data_roots`: when given, runs may read only uploads, the bundled assets and these folders."""
        from engine.devices import fit_threads_to_cpus

        fit_threads_to_cpus()  # a container's CPU quota: no more torch threads than CPUs to run them
        self.limits = limits or Limits()
        self.data_roots = data_roots
        self.access_control = access_control
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.datasets_dir = self.data_dir / DATASETS_FOLDER  # extracted uploads, named by content hash
        register_upload_dir(self.data_dir / "uploads")  # configs name uploads as upload:<sha256>
        self.store = RunStore(self.data_dir / "studio.db")
        self.interrupted = self.release_ended()  # a crash or restart left these (not a command-line run training)
        self._lock = threading.RLock()
        self._snapshots: dict[str, RunSnapshot] = {}
        self._stop_flags: dict[str, threading.Event] = {}
        self._queue: "queue.Queue[tuple[str, RunConfig] | None]" = queue.Queue()
        self._current: str | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="engine-worker", daemon=True)
        self._thread.start()
        atexit.register(_shutdown_at_exit, weakref.ref(self))

    # ---- commands --------------------------------------------------------------------------
    def submit(self, cfg: RunConfig, owner: str = "", processes: int = 1, gpus: tuple[int, ...] = ()) -> str:
        """Queue a run; returns its id. Raises StudioError for a config that cannot work.

        `processes` > 1 runs it as a torchrun child process (DistributedDataParallel), one process
        per GPU in `gpus` (or CPU processes with Gloo when `gpus` is empty), supervised here. A
        single GPU in `gpus` runs here, on that GPU (the config's device becomes `cuda:N`).
        """
        if gpus:
            check_gpus(cfg, gpus)
            processes = len(gpus)
            if processes == 1:
                from engine.config import with_section

                cfg, gpus = with_section(cfg, "train", device=f"cuda:{gpus[0]}"), ()
        if processes < 1:
            raise StudioError("A run needs at least one process.")
        if self._closed:
            raise StudioError("The engine is shutting down; start the run again in a moment.")
        validate(cfg)
        self.check_data_access(cfg)
        if self.limits.max_active_runs_per_user:
            mine = [r for r in self.active_runs() if self._snapshots[r].owner == owner]
            if len(mine) >= self.limits.max_active_runs_per_user:
                raise LimitExceeded(
                    f"You already have {plural(len(mine), 'run')} queued or running (the limit is "
                    f"{self.limits.max_active_runs_per_user}). Wait for one to finish or stop one.")
        run_id = new_run_id()
        name = cfg.name or f"{cfg.backbone.name} {'+'.join(cfg.enabled_methods()) or 'plain'}"
        run_dir = self.data_dir / "runs" / run_id
        self.store.create_run(run_id, name, cfg.to_dict(), str(run_dir), owner=owner)
        with self._lock:
            self._snapshots[run_id] = RunSnapshot(run_id, name, "queued", owner)
            self._stop_flags[run_id] = threading.Event()
        self._queue.put((run_id, cfg, processes, tuple(gpus), False))
        return run_id

    def resume(self, run_id: str, user: str | None = None) -> None:
        """Queue a stopped, interrupted or failed run to continue from its last finished epoch, with
        its own settings, optimiser and schedule state (engine.resume), in this process. Raises
        StudioError when it is still active or has nothing to continue from."""
        rec = self.authorize(run_id, user, write=True)
        if rec.status in ("queued", "running"):
            raise StudioError("This run is still queued or running: nothing to continue.")
        check_resumable(Path(rec.run_dir), rec.status)
        if self._closed:
            raise StudioError("The engine is shutting down; continue the run in a moment.")
        cfg = RunConfig.from_dict(rec.config)
        epochs: list[dict[str, Any]] = []  # the charts keep the epochs and steps done before the stop
        steps: list[dict[str, Any]] = []
        fold_metric_rows(self.store.metrics(run_id), epochs, steps)
        del steps[:-MAX_STEP_POINTS]
        self.store.set_status(run_id, "queued")
        with self._lock:
            self._snapshots[run_id] = RunSnapshot(run_id, rec.name, "queued", rec.owner, epochs=epochs, steps=steps,
                                                  progress={"epoch": len(epochs), "epochs": cfg.train.epochs})
            self._stop_flags[run_id] = threading.Event()
        self._queue.put((run_id, cfg, 1, (), True))

    def check_data_access(self, cfg: RunConfig) -> None:
        """With data roots set, a run reads only uploads (or an upload's extracted copy when its zip is gone), the
        bundled assets, or folders under the roots. Raises AccessDenied for anything else."""
        if self.data_roots is None:
            return

        for source in (cfg.data.source, cfg.data.ood_source, cfg.backbone.checkpoint):
            if not source:
                continue
            real = resolve_path(source).resolve()
            own = [self.data_dir / "uploads", ASSETS_DIR.resolve()]
            if source.startswith(UPLOAD_PREFIX):  # an upload read from its extracted copy (engine.paths); a path
                own.append(self.datasets_dir)  # typed into the datasets folder is not an upload
            if any(real == d or d in real.parents for d in own):
                continue
            self.data_roots.resolve(str(real))  # AccessDenied outside the roots (links followed)

    def active_runs_of(self, user: str | None) -> list[str]:
        """Active runs `user` may see."""
        ids = self.active_runs()
        if not self.access_control:
            return ids
        with self._lock:
            return [r for r in ids if self._snapshots[r].owner == (user or "")]

    def authorize(self, run_id: str, user: str | None, write: bool = False) -> RunRecord:
        """The run's record if `user` may see it (write: stop, delete, pin), else AccessDenied."""
        rec = self.store.get_run(run_id)
        if rec is None:
            raise StudioError("That run does not exist (any more).")
        if self.access_control and rec.owner != (user or ""):
            if write or not rec.shared:
                raise AccessDenied("This run belongs to another user: you cannot "
                                   + ("change it." if write else "open it."))
        return rec

    def visible_runs(self, user: str | None) -> list[RunRecord]:
        """The runs `user` may see: all without access control, else their own and shared ones."""
        runs = self.store.list_runs()
        if not self.access_control:
            return runs
        return [r for r in runs if r.owner == (user or "") or r.shared]

    def set_flag(self, run_id: str, user: str | None, flag: str, value: bool) -> None:
        """Set a run's `pinned` or `shared` flag for `user`. Raises StudioError when the run is missing or not
        theirs."""
        self.authorize(run_id, user, write=True)
        self.store.set_flag(run_id, flag, value)

    def stop(self, run_id: str, user: str | None = None) -> bool:
        """Ask a queued or running run to stop; the loop honours it within a step."""
        self.authorize(run_id, user, write=True)
        with self._lock:
            flag = self._stop_flags.get(run_id)
            snap = self._snapshots.get(run_id)
            if flag is None or snap is None or snap.status not in ("queued", "running"):
                return False
            flag.set()
            if snap.status == "queued":
                snap.status = "stopped"
                snap.error = "Stopped before it started."
                self.store.set_status(run_id, "stopped", snap.error)
        return True

    def stopping(self, run_id: str) -> bool:
        """Whether `run_id` was asked to stop (`stop`) and is still running: it ends within a step or an
        evaluation batch, keeping its finished epochs."""
        with self._lock:
            flag, snap = self._stop_flags.get(run_id), self._snapshots.get(run_id)
            return flag is not None and flag.is_set() and snap is not None and snap.status == "running"

    def delete_run(self, run_id: str, user: str | None = None) -> None:
        """Delete a finished, failed or stopped run: its folder (only inside the data folder) and its records.
        Raises StudioError when the run is queued or running, missing, or not `user`'s."""
        rec = self.authorize(run_id, user, write=True)
        if rec.status in ("queued", "running"):
            raise StudioError("Stop the run before deleting it.")
        run_dir = Path(rec.run_dir).resolve()
        if run_dir.is_dir() and self.data_dir in run_dir.parents:  # never delete outside our folder
            shutil.rmtree(run_dir, ignore_errors=True)
        self.store.delete_run(run_id)
        with self._lock:
            self._snapshots.pop(run_id, None)

    def save_upload(self, data: bytes, suffix: str) -> Path:
        """Store uploaded bytes inside the engine's folder, named by content hash, never by the
        user's file name. Returns the path (the same bytes always land on the same path)."""
        import hashlib

        if self.limits.max_upload_bytes and len(data) > self.limits.max_upload_bytes:
            raise LimitExceeded(f"The upload is {len(data) / 1024 ** 2:.0f} MB; this server accepts at most "
                                f"{self.limits.max_upload_bytes / 1024 ** 2:.0f} MB per upload.")
        suffix = suffix.lower() if suffix.lower() in (".zip", ".pt", ".pth", ".safetensors") else ".bin"
        uploads = self.data_dir / "uploads"
        uploads.mkdir(parents=True, exist_ok=True)
        path = uploads / (hashlib.sha256(data).hexdigest()[:32] + suffix)
        if not path.exists():
            tmp = path.with_suffix(".part")
            tmp.write_bytes(data)
            tmp.replace(path)
        return path

    # ---- reading ---------------------------------------------------------------------------
    def release_ended(self) -> list[str]:
        """Mark failed, with interrupted_message's reason, the runs left queued or running by a program that
        has ended since (a command-line run killed while this server runs); returns their ids."""
        return self.store.mark_interrupted(lambda rec: interrupted_message(self.store, rec))

    def runs_elsewhere(self, user: str | None = None) -> list[RunRecord]:
        """Runs `user` may see that another live program trains or queued (a command-line run beside this
        server, a torchrun child it no longer supervises): they share this computer with this engine's runs."""
        with self._lock:
            here = set(self._snapshots)
        return [r for r in self.store.unfinished_runs() if r.id not in here and process_alive(r.process)
                and (not self.access_control or r.owner == (user or "") or r.shared)]  # as visible_runs

    def snapshot(self, run_id: str) -> RunSnapshot | None:
        """A copy of the live state of a run of this process, or None (then read the store)."""
        with self._lock:
            snap = self._snapshots.get(run_id)
            return copy.deepcopy(snap) if snap else None

    def active_runs(self) -> list[str]:
        """Ids of the runs queued or running in this engine."""
        with self._lock:
            return [r for r, s in self._snapshots.items() if s.status in ("queued", "running")]

    @property
    def current_run(self) -> str | None:
        """Id of the run the worker trains now, or None."""
        return self._current

    def list_runs(self, owner: str | None = None) -> list[RunRecord]:
        """Every run's record (only `owner`'s when given), newest first."""
        return self.store.list_runs(owner)

    def run_record(self, run_id: str) -> RunRecord | None:
        """The run's record, or None when there is none."""
        return self.store.get_run(run_id)

    def wait(self, run_id: str, timeout: float = 600.0) -> str:
        """Block until the run leaves queued/running; returns its final status (tests, scripts)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            snap = self.snapshot(run_id)  # this process's runs: the snapshot is updated last
            rec = self.store.get_run(run_id) if snap is None else None
            status = snap.status if snap is not None else (rec.status if rec else None)
            if status is not None and status not in ("queued", "running"):
                return status
            time.sleep(0.05)
        raise TimeoutError(f"run {run_id} still running after {timeout} s")

    def stop_reason(self) -> str:
        """Why a run stops now, for its message: the engine shutting down, or its user."""
        return STOPPED_BY_SERVER if self._closed else STOPPED_BY_USER

    def shutdown(self, timeout: float = 10.0) -> None:
        """Ask every run to stop, end the worker thread and wait for it at most `timeout` seconds."""
        self._closed = True
        with self._lock:
            for flag in self._stop_flags.values():
                flag.set()
        self._queue.put(None)
        self._thread.join(timeout)

    # ---- the worker thread -----------------------------------------------------------------
    def _serve(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            run_id, cfg, processes, gpus, resume = item
            with self._lock:
                snap = self._snapshots[run_id]
                if snap.status != "queued":  # stopped while waiting
                    continue
                snap.status = "running"
                self._current = run_id
            reporter = _EngineReporter(self, run_id, self._stop_flags[run_id])
            try:
                if processes > 1:
                    status, error = self._supervise_child(run_id, cfg, processes, gpus)
                else:
                    summary = execute_run(self.store, run_id, cfg, self.data_dir / "runs" / run_id,
                                          self.datasets_dir, reporter, self.limits, resume=resume)
                    status, error = summary["status"], summary.get("error")
            except Exception as exc:  # execute_run already catches everything; belt and braces
                status, error = "failed", f"The engine could not run this job: {exc}"
                self.store.set_status(run_id, status, error)
            with self._lock:
                snap.status, snap.error = status, error
                snap.updated = time.time()
                self._current = None
            self.enforce_disk_quota()

    def _supervise_child(self, run_id: str, cfg: RunConfig, processes: int, gpus: tuple[int, ...]) -> tuple[str, str | None]:
        """Run a DistributedDataParallel job under torchrun as a child process and mirror what its
        rank 0 writes to the store (metrics, progress, method streams) into the live snapshot."""
        import os
        import signal
        import socket
        import subprocess
        import sys

        run_dir = self.data_dir / "runs" / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(cfg.to_yaml())
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
               "--master_addr=127.0.0.1", f"--master_port={port}", "-m", "engine", "train",
               "--config", str(run_dir / "config.yaml"), "--run-id", run_id, "--out", str(run_dir),
               "--data-dir", str(self.data_dir), "--quiet"]
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus)
        log_path = run_dir / "torchrun.log"
        seen = 0
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # its own process group: stop kills every rank
            stopped = False
            while True:
                done = proc.poll() is not None
                if not done and self._stop_flags[run_id].is_set() and not stopped:
                    os.killpg(proc.pid, signal.SIGTERM)
                    stopped = True
                rows = self.store.metrics(run_id)
                progress, streams = self.store.progress(run_id), self.store.stream_points(run_id)
                with self._lock:
                    snap = self._snapshots[run_id]
                    fold_metric_rows(rows[seen:], snap.epochs, snap.steps)
                    snap.extra.update(streams)
                    snap.progress.update(progress, processes=processes)
                    snap.updated = time.time()
                seen = len(rows)
                if done:
                    break
                time.sleep(0.5)
        rec = self.store.get_run(run_id)
        if stopped:
            with self._lock:  # the epochs rank 0 finished, as mirrored from the store
                done = len(self._snapshots[run_id].epochs)
            said = stopped_message(done, planned_epochs(run_dir, cfg.train.epochs), (run_dir / RESUME_FILE).is_file(),
                                   self.stop_reason())
            self.store.set_status(run_id, "stopped", said)
            return "stopped", said
        if rec is not None and rec.status in ("finished", "failed", "stopped"):
            return rec.status, rec.error
        tail = log_path.read_text()[-800:] if log_path.is_file() else ""
        error = f"The distributed job exited with code {proc.returncode}. Last output:\n{tail}"
        self.store.set_status(run_id, "failed", error)
        return "failed", error

    def runs_disk_bytes(self) -> int:
        """Bytes the runs' folders take on disk (every file under <data dir>/runs)."""
        root = self.data_dir / "runs"
        return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.is_dir() else 0

    def enforce_disk_quota(self) -> list[str]:
        """Delete the oldest unpinned finished runs until all runs fit the disk limit."""
        limit = self.limits.max_runs_disk_bytes
        removed: list[str] = []
        if not limit:
            return removed
        used = self.runs_disk_bytes()
        for rec in sorted(self.store.list_runs(), key=lambda r: r.created):
            if used <= limit:
                break
            if rec.pinned or rec.status in ("queued", "running"):
                continue
            d = Path(rec.run_dir)
            size = sum(p.stat().st_size for p in d.rglob("*") if p.is_file()) if d.is_dir() else 0
            self.delete_run(rec.id, rec.owner)
            used -= size
            removed.append(rec.id)
        return removed
