"""Process-wide engine, per-tab session state, and the guard around every engine call.

One `Engine` per server process (`st.cache_resource`): every tab and every refresh talks to the
same engine, so a running job survives them all. Everything a tab remembers (the run settings
being edited, the chosen dataset, the run it watches) lives in `st.session_state`.

The run settings are one `RunConfig` under the key "cfg". Widgets never own the truth: each
page seeds its widgets from the config and writes their values back, so leaving a page (which
makes Streamlit forget its widgets) loses nothing.
"""

from __future__ import annotations

import os
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import streamlit as st

from engine.config import CORE_SECTIONS, RunConfig, validate, with_section
from engine.paths import ASSETS_DIR, PROJECT_DIR, SAMPLE_DATASET, resolve_path
from engine.errors import StudioError
from engine.worker import Engine

CFG_KEY = "cfg"
DATASET_KEY = "dataset"
WATCH_KEY = "watch"  # the run the Train page shows
WIDGET_PREFIX = "w:"  # keys of widgets seeded from the config (cleared when a preset is applied)
SAMPLE_LABEL = "Bundled sample: textures"


# ---- the engine ------------------------------------------------------------------------------

def data_dir() -> Path:
    """The engine's folder: env var STUDIO_DATA_DIR, else `runs/` under the project."""
    return Path(os.environ.get("STUDIO_DATA_DIR") or PROJECT_DIR / "runs").expanduser().resolve()


@st.cache_resource(show_spinner=False)
def _engine_for(path: str) -> Engine:
    from app.auth import access_control_on
    from engine.security import DataRoots, Limits

    return Engine(path, limits=Limits.from_env(), access_control=access_control_on(),
                  data_roots=DataRoots.from_env(default=(ASSETS_DIR,)))


def user() -> str:
    """Who is using this tab ("" when access control is off)."""
    from app.auth import current_user

    return current_user()


def runs(engine: Engine) -> list:
    """The runs this user may see (all of them when access control is off)."""
    return engine.visible_runs(user())


def record(engine: Engine, run_id: str):
    """A run's record if this user may open it, else None."""
    try:
        return engine.authorize(run_id, user())
    except Exception:
        return None


def get_engine() -> Engine:
    """The one engine of this server process (created on first use, shared by all sessions)."""
    return _engine_for(str(data_dir()))


def sample_path() -> Path:
    return resolve_path(SAMPLE_DATASET)


def sample_available() -> bool:
    return sample_path().is_file()


# ---- errors ----------------------------------------------------------------------------------

def show_error(exc: BaseException, what: str) -> None:
    """A StudioError's own plain message, or a friendly note with the details folded away."""
    if isinstance(exc, StudioError):
        st.error(str(exc), icon=":material/error:")
        return
    st.error(
        f"Something unexpected went wrong while {what}. Nothing was lost and the studio keeps "
        "working: check your input and try again. If it happens again, send the details below "
        "to whoever maintains this studio.",
        icon=":material/error:",
    )
    with st.expander("Technical details"):
        st.code("".join(traceback.format_exception(exc)), language="text")


@dataclass
class Outcome:
    ok: bool
    value: Any = None
    error: BaseException | None = None


def attempt(what: str, fn: Callable[..., Any], *args: Any, show: bool = True, **kwargs: Any) -> Outcome:
    """Call an engine function; on failure show its message (never a traceback) and go on."""
    try:
        return Outcome(True, fn(*args, **kwargs))
    except Exception as exc:  # StudioError: the user's to fix; anything else: ours, shown politely
        if show:
            show_error(exc, what)
        return Outcome(False, None, exc)


@contextmanager
def guarded(what: str) -> Iterator[None]:
    """`with guarded("drawing the charts"): ...` shows a failure inside instead of crashing the page."""
    try:
        yield
    except Exception as exc:  # st.rerun()/st.stop() raise BaseExceptions and pass through
        show_error(exc, what)


# ---- session state ---------------------------------------------------------------------------

@dataclass
class Dataset:
    """The dataset the next run trains on. `source` is an engine path, never a user file name."""

    kind: str  # sample | upload | folder
    source: str
    label: str  # what the user recognises (the uploaded file's name, the folder)
    ood_source: str = ""
    ood_label: str = ""
    checks: dict = field(default_factory=dict)  # memo of validations: key -> (report, grid) or error


def init_session() -> None:
    """Fill in this tab's defaults once: the Quick demo preset on the bundled sample."""
    from app.presets import PRESETS, DEFAULT_PRESET

    if CFG_KEY not in st.session_state:
        st.session_state[CFG_KEY] = PRESETS[DEFAULT_PRESET].apply(RunConfig())
    if DATASET_KEY not in st.session_state:
        label = SAMPLE_LABEL if sample_available() else "no dataset yet (upload one on the Data page)"
        st.session_state[DATASET_KEY] = Dataset("sample", SAMPLE_DATASET, label)


def config() -> RunConfig:
    return st.session_state[CFG_KEY]


def set_config(cfg: RunConfig) -> None:
    st.session_state[CFG_KEY] = cfg


def update_section(section: str, **changes: Any) -> RunConfig:
    """Change fields of one config section (core or method) when they differ; returns the config."""
    cfg = config()
    current = getattr(cfg, section) if section in CORE_SECTIONS else cfg.methods[section]
    changed = {k: v for k, v in changes.items() if getattr(current, k) != v}
    if changed:
        cfg = with_section(cfg, section, **changed)
        set_config(cfg)
    return cfg


def dataset() -> Dataset:
    return st.session_state[DATASET_KEY]


def set_dataset(ds: Dataset) -> None:
    st.session_state[DATASET_KEY] = ds
    update_section("data", source=ds.source, ood_source=ds.ood_source)


def reset_widgets() -> None:
    """Forget the seeded widget values so they are drawn again from the config (after a preset)."""
    for key in [k for k in st.session_state if isinstance(k, str) and k.startswith(WIDGET_PREFIX)]:
        del st.session_state[key]


def config_problems(cfg: RunConfig) -> str | None:
    """The engine's validation message for `cfg`, or None when it can run."""
    try:
        validate(cfg)
    except StudioError as exc:
        return str(exc)
    return None


# ---- runs ------------------------------------------------------------------------------------

# Material icons render in markdown everywhere (emoji need a font the server's users may lack).
STATUS_ICONS = {"queued": ":material/schedule:", "running": ":material/directions_run:",
                "finished": ":material/check_circle:", "failed": ":material/error:", "stopped": ":material/stop_circle:"}


def run_label(rec: Any, with_status: bool = True) -> str:
    """Plain text (for select boxes): name, start time, short id, and the status when asked."""
    import time

    when = time.strftime("%d %b %H:%M", time.localtime(rec.created))
    label = f"{rec.name} · {when} · {rec.id[-6:]}"
    return f"{label} · {rec.status}" if with_status else label


def watched_run(engine: Engine) -> str | None:
    """The run this tab follows: the one it started, else the running one, else the newest."""
    wanted = st.session_state.get(WATCH_KEY)
    if wanted and record(engine, wanted) is not None:
        return wanted
    active = engine.active_runs_of(user())
    if engine.current_run in active:
        return engine.current_run
    if active:
        return active[0]
    mine = runs(engine)
    return mine[0].id if mine else None


# ---- words -----------------------------------------------------------------------------------

WEIGHTS_TEXT = {"bundled": "bundled weights", "imagenet": "ImageNet weights", "none": "no pretraining",
                "checkpoint": "your checkpoint"}


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
