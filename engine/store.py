"""The run store: an embedded SQLite database (stdlib) of runs and their metrics.

Everything the dashboard shows about runs is read from here (or from the engine's in-memory
snapshot of the same records), so a server restart loses no finished run. Writes are
transactional (one `with conn:` block each). One connection is shared by the engine's threads
behind a lock; SQLite's WAL mode lets another process (the CLI) write at the same time.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATUSES = ("queued", "running", "finished", "failed", "stopped")
INTERRUPTED = "Interrupted: the program training it ended (a restart, a crash or a kill) before it finished."

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    error TEXT,
    run_dir TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT '',
    pinned INTEGER NOT NULL DEFAULT 0,
    shared INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL,
    ts REAL NOT NULL,
    channel TEXT NOT NULL DEFAULT 'epoch'
);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run_id, name);
CREATE TABLE IF NOT EXISTS live (
    run_id TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    progress TEXT NOT NULL DEFAULT '{}',
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS streams (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    point TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS drafts (
    owner TEXT PRIMARY KEY,
    draft TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tab_drafts (
    owner TEXT NOT NULL,
    tab TEXT NOT NULL,
    draft TEXT NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (owner, tab)
);
CREATE TABLE IF NOT EXISTS uploads (
    owner TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    classes INTEGER,
    images INTEGER,
    created REAL NOT NULL,
    PRIMARY KEY (owner, sha256, kind)
);
"""
CHANNELS = ("step", "epoch")  # a logged training step (loss, lr) | an epoch's evaluation

UPLOAD_KINDS = ("dataset", "ood", "checkpoint")
TAB_DRAFTS_KEPT = 20  # per user: the drafts of their newest browser tabs (older tabs fall back to the newest draft)
TAB_DRAFT_TTL_S = 7 * 86400  # a tab's own draft is given back this long after its last change, not to an old bookmark


@dataclass
class RunRecord:
    """One run as the store keeps it: id, the user's name for it, its config (dict), status (queued, running,
    finished, failed, stopped), times (seconds since the epoch), the error message of a failed run, its folder,
    owner, the pinned and shared flags, the WiSE-FT alpha chosen on Results, and the program that trains it."""

    id: str
    name: str
    config: dict
    status: str
    created: float
    started: float | None
    finished: float | None
    error: str | None
    run_dir: str
    owner: str = ""
    pinned: int = 0  # pinned runs are never cleaned up to free disk space
    shared: int = 0  # shared runs are visible (read-only) to every user
    wise_ft_alpha: float | None = None  # the WiSE-FT mix the user chose on Results (None: not chosen yet)
    process: str = ""  # the program that queued or trains it: "host pid start-time" (this_process)

    def to_dict(self) -> dict[str, Any]:
        """The record's fields as a plain dict. Raises nothing."""
        return dict(self.__dict__)


class RunStore:
    """The run store: a SQLite database (WAL mode, safe across threads and processes) of runs, their per-step and
    per-epoch metrics, live progress and methods' streams, shared by the dashboard and the CLI. Older stores gain
    missing columns when opened."""

    def __init__(self, db_path: str | Path):
        self.path = Path(db_path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self._conn.row_factory = sqlite3.Row
        with self._lock, self._conn:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(SCHEMA)
            cols = {r["name"] for r in self._conn.execute("PRAGMA table_info(runs)")}
            for col in ("pinned", "shared"):  # stores made by an older version
                if col not in cols:
                    self._conn.execute(f"ALTER TABLE runs ADD COLUMN {col} INTEGER NOT NULL DEFAULT 0")
            if "channel" not in {r["name"] for r in self._conn.execute("PRAGMA table_info(metrics)")}:
                self._conn.execute("ALTER TABLE metrics ADD COLUMN channel TEXT NOT NULL DEFAULT 'epoch'")
                self._conn.execute("UPDATE metrics SET channel='step' WHERE name IN ('loss', 'lr')")
            if "wise_ft_alpha" not in cols:
                self._conn.execute("ALTER TABLE runs ADD COLUMN wise_ft_alpha REAL")
            if "process" not in cols:
                self._conn.execute("ALTER TABLE runs ADD COLUMN process TEXT NOT NULL DEFAULT ''")

    def close(self) -> None:
        """Close the database connection. Raises nothing on a closed store."""
        with self._lock:
            self._conn.close()

    # ---- runs ----------------------------------------------------------------------------
    def create_run(self, run_id: str, name: str, config: dict, run_dir: str, owner: str = "", status: str = "queued") -> None:
        """Add a run with its config (dict, stored as JSON), folder, owner and status (default queued), created now
        by this program. Raises sqlite3.IntegrityError when the id exists."""
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT INTO runs (id, name, config, status, created, run_dir, owner, process) VALUES (?,?,?,?,?,?,?,?)",
                (run_id, name, json.dumps(config), status, time.time(), run_dir, owner, this_process()),
            )

    def set_status(self, run_id: str, status: str, error: str | None = None) -> None:
        """Set a run's status; running also records its start time and the program that trains it, queued the
        program that queued it, finished/failed/stopped the end time and `error` (a plain message or None).
        Raises AssertionError for an unknown status."""
        assert status in STATUSES, status
        now = time.time()
        with self._lock, self._conn:
            if status == "running":  # the program that trains it now (the CLI, the dashboard, a torchrun child)
                self._conn.execute("UPDATE runs SET status=?, started=?, process=? WHERE id=?",
                                   (status, now, this_process(), run_id))
            elif status == "queued":  # queued again (Continue): by this program
                self._conn.execute("UPDATE runs SET status=?, process=? WHERE id=?", (status, this_process(), run_id))
            elif status in ("finished", "failed", "stopped"):
                self._conn.execute(
                    "UPDATE runs SET status=?, finished=?, error=? WHERE id=?", (status, now, error, run_id)
                )
            else:
                self._conn.execute("UPDATE runs SET status=? WHERE id=?", (status, run_id))

    def get_run(self, run_id: str) -> RunRecord | None:
        """The run's record, or None when there is no run with that id."""
        with self._lock:
            row = self._conn.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        return _record(row) if row else None

    def known_owner(self, name: str) -> str | None:
        """The spelling of an owner this store already knows (runs, drafts, uploads) that is `name` whatever
        its letter case ("Alice" for "alice"), the most recently active first; None for a new name."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT owner, MAX(t) FROM (SELECT owner, created AS t FROM runs UNION ALL SELECT owner, updated FROM "
                "drafts UNION ALL SELECT owner, created FROM uploads) GROUP BY owner ORDER BY MAX(t) DESC").fetchall()
        if any(owner == name for owner, _ in rows):  # an account of exactly this name is that account, never another
            return name
        wanted = name.casefold()
        return next((owner for owner, _ in rows if owner and owner.casefold() == wanted), None)

    def list_runs(self, owner: str | None = None) -> list[RunRecord]:
        """Every run's record (only `owner`'s when given), newest first."""
        with self._lock:
            if owner is None:
                rows = self._conn.execute("SELECT * FROM runs ORDER BY created DESC").fetchall()
            else:
                rows = self._conn.execute("SELECT * FROM runs WHERE owner=? ORDER BY created DESC", (owner,)).fetchall()
        return [_record(r) for r in rows]

    def unfinished_runs(self) -> list[RunRecord]:
        """The runs queued or running (by any program), newest first."""
        with self._lock:
            rows = self._conn.execute("SELECT * FROM runs WHERE status IN ('running','queued') "
                                      "ORDER BY created DESC").fetchall()
        return [_record(r) for r in rows]

    def unowned_runs(self) -> list[RunRecord]:
        """The runs that belong to no signed-in user, newest first: made while the dashboard had no sign-in
        (owner "") or from the command line (owner "cli")."""
        with self._lock:
            rows = self._conn.execute("SELECT * FROM runs WHERE owner IN ('', 'cli') ORDER BY created DESC").fetchall()
        return [_record(r) for r in rows]

    def give_runs(self, owner: str, run_ids: list[str]) -> int:
        """Make `owner` the owner of the runs `run_ids` (their Results, Explain, exports and controls are then
        theirs on a studio with sign-in). Returns how many runs changed hands."""
        with self._lock, self._conn:
            return sum(self._conn.execute("UPDATE runs SET owner=? WHERE id=? AND owner<>?", (owner, r, owner)).rowcount
                       for r in run_ids)

    def set_flag(self, run_id: str, flag: str, value: bool) -> None:
        """Set the run's `pinned` or `shared` flag. Raises AssertionError for another flag name."""
        assert flag in ("pinned", "shared"), flag
        with self._lock, self._conn:
            self._conn.execute(f"UPDATE runs SET {flag}=? WHERE id=?", (int(value), run_id))

    def set_wise_ft_alpha(self, run_id: str, alpha: float | None) -> None:
        """Remember the WiSE-FT alpha (in [0, 1]) chosen for a run; Results, Explain and Export use it."""
        if alpha is not None and not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        with self._lock, self._conn:
            self._conn.execute("UPDATE runs SET wise_ft_alpha=? WHERE id=?",
                               (None if alpha is None else float(alpha), run_id))

    def delete_run(self, run_id: str) -> None:
        """Remove the run and its metrics, live progress and streams from the store (its folder is the caller's:
        Engine.delete_run)."""
        with self._lock, self._conn:
            for table in ("metrics", "live", "streams"):
                self._conn.execute(f"DELETE FROM {table} WHERE run_id=?", (run_id,))
            self._conn.execute("DELETE FROM runs WHERE id=?", (run_id,))

    def mark_interrupted(self, message: Callable[[RunRecord], str] | None = None) -> list[str]:
        """Runs left queued or running by a program that has ended (a crash, a restart, a killed command
        line) are marked failed with `message(record)` as their error (default: INTERRUPTED); runs whose
        program is still alive (a command-line run training beside the dashboard, a torchrun child) are
        left alone (process_alive). Returns the ids marked."""
        ended = [rec for rec in self.unfinished_runs() if not process_alive(rec.process)]
        with self._lock, self._conn:
            for rec in ended:
                self._conn.execute("UPDATE runs SET status='failed', finished=?, error=? WHERE id=? AND "
                                   "status IN ('running','queued')",
                                   (time.time(), (message or (lambda r: INTERRUPTED))(rec), rec.id))
        return [rec.id for rec in ended]

    # ---- metrics -------------------------------------------------------------------------
    def log_metrics(self, run_id: str, epoch: int, step: int, values: dict[str, float],
                    channel: str = "epoch") -> None:
        """Store `values` (name -> float or None) of one step or epoch; `channel` is "step" or "epoch"."""
        assert channel in CHANNELS, channel
        now = time.time()
        rows = [(run_id, epoch, step, k, None if v is None else float(v), now, channel) for k, v in values.items()]
        with self._lock, self._conn:
            self._conn.executemany(
                "INSERT INTO metrics (run_id, epoch, step, name, value, ts, channel) VALUES (?,?,?,?,?,?,?)", rows)

    def metrics(self, run_id: str, names: list[str] | None = None) -> list[dict]:
        """Rows {epoch, step, name, value, ts, channel} of a run, in the order they were logged."""
        q = "SELECT epoch, step, name, value, ts, channel FROM metrics WHERE run_id=?"
        args: list[Any] = [run_id]
        if names:
            q += f" AND name IN ({','.join('?' * len(names))})"
            args += names
        with self._lock:
            rows = self._conn.execute(q + " ORDER BY rowid", args).fetchall()
        return [dict(r) for r in rows]

    def epochs_logged(self, run_id: str) -> int:
        """How many distinct epochs `run_id` logged per-epoch figures for (those it finished, a continued run's
        earlier parts included)."""
        with self._lock:
            row = self._conn.execute("SELECT COUNT(DISTINCT epoch) FROM metrics WHERE run_id=? AND channel='epoch'",
                                     (run_id,)).fetchone()
        return int(row[0])

    # ---- live state of a running job: written by the process that trains (a torchrun child too),
    # ---- read by the engine that supervises it ---------------------------------------------
    def set_progress(self, run_id: str, progress: dict[str, Any]) -> None:
        """The latest progress fields of a run (phase, epoch, step, images/s, ETA ...), replaced whole."""
        with self._lock, self._conn:
            self._conn.execute("INSERT INTO live (run_id, progress, updated) VALUES (?,?,?) ON CONFLICT(run_id) "
                               "DO UPDATE SET progress=excluded.progress, updated=excluded.updated",
                               (run_id, json.dumps(progress), time.time()))

    def progress(self, run_id: str) -> dict[str, Any]:
        """The run's latest progress fields (phase, epoch, step, images_per_sec, eta_s, ...); {} when none was
        written."""
        with self._lock:
            row = self._conn.execute("SELECT progress FROM live WHERE run_id=?", (run_id,)).fetchone()
        return json.loads(row["progress"]) if row else {}

    def add_stream_point(self, run_id: str, key: str, point: dict[str, Any]) -> None:
        """One point a method publishes (e.g. key "wise_ft": {"alpha", "val_acc", ...})."""
        with self._lock, self._conn:
            self._conn.execute("INSERT INTO streams (run_id, key, point) VALUES (?,?,?)",
                               (run_id, key, json.dumps(point)))

    def stream_points(self, run_id: str) -> dict[str, list[dict[str, Any]]]:
        """key -> the points published under it, in order."""
        with self._lock:
            rows = self._conn.execute("SELECT key, point FROM streams WHERE run_id=? ORDER BY rowid", (run_id,))
            out: dict[str, list] = {}
            for r in rows.fetchall():
                out.setdefault(r["key"], []).append(json.loads(r["point"]))
        return out


    # ---- drafts: the next run each user is preparing -----------------------------------------
    def save_draft(self, owner: str, draft: dict, tab: str = "") -> None:
        """Keep `owner`'s draft (the next run's dataset, OOD set and config, as JSON) across
        page refreshes and server restarts. One draft per user, the newest wins; with `tab` (a
        browser tab's token) also that tab's own, so a refresh of one tab does not bring back what
        another tab of the same user did. The newest TAB_DRAFTS_KEPT tabs per user are kept."""
        text, now = json.dumps(draft), time.time()
        with self._lock, self._conn:
            self._conn.execute("INSERT INTO drafts (owner, draft, updated) VALUES (?,?,?) "
                               "ON CONFLICT(owner) DO UPDATE SET draft=excluded.draft, updated=excluded.updated",
                               (owner, text, now))
            if not tab:
                return
            self._conn.execute("INSERT INTO tab_drafts (owner, tab, draft, updated) VALUES (?,?,?,?) "
                               "ON CONFLICT(owner, tab) DO UPDATE SET draft=excluded.draft, updated=excluded.updated",
                               (owner, tab, text, now))
            self._conn.execute("DELETE FROM tab_drafts WHERE owner=? AND tab NOT IN (SELECT tab FROM tab_drafts "
                               "WHERE owner=? ORDER BY updated DESC, rowid DESC LIMIT ?)", (owner, owner, TAB_DRAFTS_KEPT))

    def load_draft(self, owner: str, tab: str = "") -> dict | None:
        """`owner`'s saved draft: `tab`'s own when that tab saved one in the last TAB_DRAFT_TTL_S
        seconds and it is still kept (a refresh), else the user's newest (a new tab, or an address
        bookmarked long ago); None when there is none (or it is unreadable)."""
        with self._lock:
            row = self._conn.execute("SELECT draft FROM tab_drafts WHERE owner=? AND tab=? AND updated>=?",
                                     (owner, tab, time.time() - TAB_DRAFT_TTL_S)).fetchone() if tab else None
            if row is None:
                row = self._conn.execute("SELECT draft FROM drafts WHERE owner=?", (owner,)).fetchone()
        if row is None:
            return None
        try:
            draft = json.loads(row["draft"])
        except ValueError:
            return None
        return draft if isinstance(draft, dict) else None

    # ---- uploads: what each user uploaded, by content hash ------------------------------------
    def add_upload(self, owner: str, sha256: str, kind: str, name: str, size: int,
                   classes: int | None = None, images: int | None = None) -> None:
        """Record an upload of `owner` (`kind`: dataset, ood or checkpoint; `size` in bytes).

        The same bytes uploaded again under another name keep one row, with the newest name."""
        assert kind in UPLOAD_KINDS, kind
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT INTO uploads (owner, sha256, kind, name, size, classes, images, created) "
                "VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(owner, sha256, kind) DO UPDATE SET name=excluded.name, "
                "classes=COALESCE(excluded.classes, classes), images=COALESCE(excluded.images, images), "
                "created=excluded.created",
                (owner, sha256, kind, name, int(size), classes, images, time.time()))

    def list_uploads(self, owner: str, kind: str | None = None) -> list[dict]:
        """`owner`'s uploads, newest first: dicts of sha256, kind, name, size, classes, images, created."""
        q, args = "SELECT * FROM uploads WHERE owner=?", [owner]
        if kind is not None:
            q, args = q + " AND kind=?", args + [kind]
        with self._lock:
            rows = self._conn.execute(q + " ORDER BY created DESC", args).fetchall()
        return [dict(r) for r in rows]

    def upload_known(self, sha256: str) -> bool:
        """Whether any user has these bytes among their uploads."""
        with self._lock:
            return self._conn.execute("SELECT 1 FROM uploads WHERE sha256=? LIMIT 1", (sha256,)).fetchone() is not None

    def others_have_upload(self, owner: str, sha256: str) -> bool:
        """Whether a user other than `owner` has these bytes among their uploads."""
        with self._lock:
            return self._conn.execute("SELECT 1 FROM uploads WHERE sha256=? AND owner<>? LIMIT 1",
                                      (sha256, owner)).fetchone() is not None

    def delete_upload(self, owner: str, sha256: str) -> bool:
        """Forget `owner`'s upload; True when no user has those bytes recorded any more."""
        with self._lock, self._conn:
            self._conn.execute("DELETE FROM uploads WHERE owner=? AND sha256=?", (owner, sha256))
            left = self._conn.execute("SELECT COUNT(*) FROM uploads WHERE sha256=?", (sha256,)).fetchone()[0]
        return left == 0


def _record(row: sqlite3.Row) -> RunRecord:
    d = dict(row)
    d["config"] = json.loads(d["config"])
    return RunRecord(**d)


_THIS_PROCESS: dict[int, str] = {}


def this_process() -> str:
    """This program's identity in the store: "host pid start-time" (start in seconds since the epoch,
    psutil; "host pid" when psutil cannot read it), so that a later program can tell whether the one
    that queued or trains a run still runs (process_alive) even after its pid was reused."""
    pid = os.getpid()
    if pid not in _THIS_PROCESS:
        try:
            import psutil

            started = f" {psutil.Process(pid).create_time():.2f}"
        except Exception:  # noqa: BLE001 - no psutil or no /proc: the pid alone
            started = ""
        _THIS_PROCESS[pid] = f"{socket.gethostname()} {pid}{started}"
    return _THIS_PROCESS[pid]


def process_alive(ident: str) -> bool:
    """Whether the program `ident` (this_process's words) still runs: on this host, its pid exists with the
    same start time (to 0.05 s); a program on another host (a store on a shared folder) counts as alive,
    since nothing here can see it; an empty `ident` (a store written before programs were recorded) or one
    that cannot be read counts as ended, as such runs always were."""
    parts = ident.split()
    if len(parts) not in (2, 3) or not parts[1].isdigit():
        return False
    if parts[0] != socket.gethostname():
        return True
    try:
        import psutil

        if not psutil.pid_exists(int(parts[1])):
            return False
        return len(parts) == 2 or abs(psutil.Process(int(parts[1])).create_time() - float(parts[2])) < 0.05
    except Exception:  # noqa: BLE001 - the process ended while asked, or psutil is missing
        return False
