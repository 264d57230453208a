"""Process-wide engine, per-tab session state, and the guard around every engine call.

One `Engine` per server process (`st.cache_resource`): every tab and every refresh talks to the
same engine, so a running job survives them all. Everything a tab remembers (the run settings
being edited, the chosen dataset, the run it watches) lives in `st.session_state`.

The run settings are one `RunConfig` under the key "cfg". Widgets never own the truth: each
page seeds its widgets from the config and writes their values back, so leaving a page (which
makes Streamlit forget its widgets) loses nothing.

The next run being prepared (dataset, OOD set and config: the user's *draft*) is also written to
the engine's store, per user, on every change: a page refresh (a new session) or a server restart
starts from it again. Uploads are kept by content hash and named in configs as `upload:<sha256>`,
with the user's own file name beside it, so no server path reaches a config or a model card.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import secrets
import traceback
import typing
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import streamlit as st

from app import datasets
from app.datasets import config_names, upload_sha, user_words  # noqa: F401  (the pages use them as state.*)
from engine.backbones import WEIGHTS_TEXT, backbone_title
from engine.config import (CORE_SECTIONS, NEEDS_FIXING, RunConfig, is_list_type, validate, with_section,
                           without_setting_keys)
from engine.paths import (ASSETS_DIR, EXTRACTED_DIGITS, SAMPLE_DATASET, UPLOAD_PREFIX, default_data_dir, resolve_path,
                          upload_ref)
from engine.errors import StudioError
from engine.presets import DEFAULT_PRESET, PRESETS, config_changes, fit_to_data, is_recipe
from engine.words import plural  # noqa: F401  (the pages use it as state.plural)
from engine.worker import Engine

CFG_KEY = "cfg"
DATASET_KEY = "dataset"
WATCH_KEY = "watch"  # the run the Train page shows
WATCH_SELECT_KEY = "watch_select"  # the Train page's run picker
STARTED_KEY = "started_here"  # the run this tab started last (the note beside Start is about it)
FOLLOW_KEY = "follow"  # {"from": run shown when a run was queued behind it, "to": the queued run}: the Train page
# moves to the queued run when it starts, if it still shows the run it waited for
FOCUS_KEY = "focus_run"  # the run the user last looked at (Results, Explain): pages open on it
NOTE_KEY = "draft_note"  # a one-off message about the restored draft
TAB_KEY = "tab_token"  # this browser tab's own draft in the store
TAB_PARAM = "tab"  # ... and in the address, so that a refresh of the tab finds it
TAB_TOKEN = re.compile(r"[0-9a-f]{8}")
TRY_KEY = "try_inputs"  # Try it's last inputs: {"images" | "camera" | "zip": [[file name, upload ref], ...]},
# "source" (the radio's choice), "choices" (view choices of Try it, Results and Explain: widget key -> value)
# and "run_keys" (the choices that belong to one run, oldest first: the ones that age out)
TRY_INPUT_KINDS = ("images", "camera", "zip")
RUN_ID_IN_KEY = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")  # engine.checkpoints.new_run_id's ids, inside a widget key
TRY_CHOICES_KEPT = 48  # per-run view choices kept in a draft (Try it's, Results', Explain's), across runs: the latest
WIDGET_PREFIX = "w:"  # keys of widgets seeded from the config (cleared when a preset is applied)
INPUT_ERRORS_KEY = "input_errors"  # widget key -> (why its text was not taken, the text): app.widgets
# the Model page's memory of what a change did for the user (app_pages/model.py): cleared by a preset or sign-out
LP_WANTED_KEY = "lp_wanted"  # (linear-probe epochs chosen, what a shorter run lowered them to)
WEIGHTS_WANTED_KEY = "weights_wanted"  # (weights chosen, weights put in their place) after a backbone without them
WEIGHTS_NOTE_KEY = "weights_note"  # (what the last backbone switch did to the weights, the weights it chose)
PAGE_MEMORY_KEYS = (INPUT_ERRORS_KEY, LP_WANTED_KEY, WEIGHTS_WANTED_KEY, WEIGHTS_NOTE_KEY)
SAMPLE_LABEL = "Bundled sample: textures"


# ---- the engine ------------------------------------------------------------------------------

def data_dir() -> Path:
    """The engine's folder: env var STUDIO_DATA_DIR, else `runs/` under the project (as the CLI's)."""
    return default_data_dir()


@st.cache_resource(show_spinner=False)
def _engine_for(path: str) -> Engine:
    from app.auth import access_control_on
    from engine.security import DataRoots, Limits

    access = access_control_on()
    return Engine(path, limits=Limits.from_env(), access_control=access,
                  data_roots=DataRoots.from_env(default=default_data_roots(access, os.environ.get("STUDIO_HOST"))))


LOOPBACK = ("127.0.0.1", "localhost", "::1")  # addresses only this computer reaches


def default_data_roots(access_control: bool, host: str | None) -> tuple[Path, ...]:
    """The folders "Folder on this server" may read when STUDIO_DATA_ROOTS names none: the bundled assets, and on
    a studio only this computer reaches (access control off and `host`, STUDIO_HOST as run_app.py sets it, a
    loopback address) the user's home folder too, where their own images are (a new user's folder was refused
    beside a message to restart the studio). Not on a studio bound to a network address, even without sign-in
    (`--no-auth`), nor when the host is unknown (`streamlit run` without run_app.py), nor a home folder that is
    the file system's root. Raises nothing."""
    from engine.security import home_folder

    home = home_folder() if not access_control and host in LOOPBACK else None
    return (ASSETS_DIR,) + ((home,) if home is not None and home.is_dir() and home.parent != home else ())


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
    """Where the bundled sample dataset is (it may be missing from a trimmed install)."""
    return resolve_path(SAMPLE_DATASET)


def sample_available() -> bool:
    """True when the bundled sample dataset is on disk."""
    return sample_path().is_file()


# ---- errors ----------------------------------------------------------------------------------

def show_error(exc: BaseException, what: str) -> None:
    """A StudioError's own plain message, or a friendly note with the details folded away."""
    if isinstance(exc, StudioError):
        st.error(message_md(message_words(str(exc))), icon=":material/error:")
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
    """What `attempt` returns: ok, the call's value, or the error it raised (already shown to the user)."""

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
    """The dataset the next run trains on. `source` is an engine reference (`upload:<sha256>`, the
    sample's relative path, or a server folder the user typed), never a name the engine invented."""

    kind: str  # sample | upload | folder
    source: str
    label: str  # what the user recognises (the uploaded file's name, the folder)
    ood_source: str = ""
    ood_label: str = ""  # e.g. "street photos.zip (120 images)"
    ood_name: str = ""  # the OOD upload's own file name
    checks: dict = field(default_factory=dict)  # memo of validations: key -> (report, grid) or error

    @property
    def words(self) -> str:
        """The data of the next run in the user's names: 'photos.zip' or 'photos.zip, OOD set dusk.zip'
        (markdown, names in bold)."""
        ood = f", OOD set **{md_text(self.ood_name or self.ood_label)}**" if self.ood_source else ""
        return f"**{md_text(self.label)}**{ood}"

    def to_draft(self) -> dict:
        """The fields a draft keeps (kind, source, label and the OOD set's), as a dict."""
        return {k: getattr(self, k) for k in ("kind", "source", "label", "ood_source", "ood_label", "ood_name")}


def default_dataset() -> Dataset:
    """The dataset a new user starts with: the bundled sample, or none yet when it is missing."""
    label = SAMPLE_LABEL if sample_available() else "no dataset yet (upload one on the Data page)"
    return Dataset("sample", SAMPLE_DATASET, label)


def default_config() -> RunConfig:
    """A new user's settings: the default preset on the defaults."""
    return PRESETS[DEFAULT_PRESET].apply(RunConfig())


def bring_back_words(ds: "Dataset") -> str:
    """How the user brings back a dataset that is gone from the server, in a few words to end a sentence with:
    an upload is uploaded again, a folder on the server put back at its path (as code: no markdown inside it)."""
    return "upload it again on the Data page" if ds.kind == "upload" else f"put it back at `{ds.source}`"


def source_exists(source: str) -> bool:
    """Whether a dataset reference still points at something on this server."""
    if not source:
        return True
    try:
        return resolve_path(source).exists()
    except StudioError:  # an upload that was deleted
        return False


def _drawable(cfg: RunConfig) -> bool:
    """Whether the Model page can draw `cfg` for fixing: every value within its field's bounds and
    choices, a registered backbone and schedule (what is left to fix spans settings, like a pruning
    start after its end)."""
    from engine.backbones import BACKBONES
    from engine.config import check_bounds
    from engine.schedules import SCHEDULES

    sections = [(name, getattr(cfg, name)) for name in CORE_SECTIONS] + list(cfg.methods.items())
    return (cfg.backbone.name in BACKBONES and cfg.optim.schedule in SCHEDULES
            and not any(check_bounds(name, values) for name, values in sections))


def _restore_draft(draft: dict) -> tuple[RunConfig, Dataset, list[str]]:
    """The config and dataset of a stored draft, with what could not be restored (plain words)."""
    lost: list[str] = []
    try:  # settings still to fix come back as they were (the pages say what needs fixing), when the pages can draw them
        cfg = RunConfig.from_dict(draft.get("config") or {}, validated=False)
        if not _drawable(cfg):
            raise StudioError("out of the pages' range")
    except StudioError:  # made by another version: a section, setting or value this one does not know
        cfg, lost = default_config(), ["the run settings (this version of the studio cannot read them: defaults are used)"]
    d = draft.get("dataset") or {}
    try:
        ds = Dataset(**{k: str(d.get(k) or "") for k in ("kind", "source", "label", "ood_source", "ood_label",
                                                          "ood_name")})
    except TypeError:
        ds = default_dataset()
    if ds.kind not in ("sample", "upload", "folder") or not ds.source or not source_exists(ds.source):
        if ds.label and ds.kind != "sample":
            lost.append(f"the dataset {ds.label} (it is no longer on this server)")
        ds = default_dataset()
    if ds.ood_source and not source_exists(ds.ood_source):
        lost.append(f"the OOD set {ds.ood_name or ds.ood_label} (it is no longer on this server)")
        ds = Dataset(ds.kind, ds.source, ds.label)
    if cfg.backbone.pretrained == "checkpoint" and not source_exists(cfg.backbone.checkpoint):
        lost.append("the uploaded checkpoint (it is no longer on this server: the bundled weights are used)")
        cfg = with_section(cfg, "backbone", pretrained="bundled", checkpoint="")
    d = cfg.data
    if (d.source, d.ood_source) != (ds.source, ds.ood_source):
        cfg = with_section(cfg, "data", **_data_fields(ds))
    return cfg, ds, lost


def init_session() -> None:
    """Fill in this tab's state once: the draft this tab saved before a refresh (its token is in
    the address), else the user's newest draft, else the Quick demo preset on the bundled sample.
    A refresh keeps the tab's token; a second open tab with the same address (a duplicated tab)
    takes a new one, starting from a copy, so two tabs keep apart."""
    if CFG_KEY in st.session_state and DATASET_KEY in st.session_state:
        keep_tab_in_address()
        return
    draft = None
    earlier = str(st.query_params.get(TAB_PARAM, ""))
    earlier = earlier if TAB_TOKEN.fullmatch(earlier) else ""
    try:
        draft = get_engine().store.load_draft(user(), earlier)
    except Exception:  # the store is unreadable: start from the defaults rather than not at all
        draft = None
    if draft:
        cfg, ds, lost = _restore_draft(draft)
        if lost:
            st.session_state[NOTE_KEY] = "Your saved next run is back, except " + "; ".join(lost) + "."
        if draft.get("focus_run"):
            st.session_state.setdefault(FOCUS_KEY, str(draft["focus_run"]))
        if isinstance(draft.get("try_it"), dict):
            st.session_state.setdefault(TRY_KEY, draft["try_it"])
        if isinstance(draft.get("typed"), dict):  # text typed into a list setting that could not be read yet
            st.session_state[INPUT_ERRORS_KEY] = {k: tuple(v) for k, v in draft["typed"].items()
                                                  if isinstance(v, list) and len(v) == 2 and _list_setting(cfg, k)}
    else:
        cfg, ds = default_config(), default_dataset()
    st.session_state[CFG_KEY] = cfg
    st.session_state[DATASET_KEY] = ds
    st.session_state[TAB_KEY] = token = claim_tab_token(earlier)
    keep_tab_in_address()
    if draft and token != earlier:
        save_draft()  # under this tab's new token: a refresh before any change finds it too


@st.cache_resource(show_spinner=False)
def _tab_holders() -> dict[str, str]:
    """Draft token -> the session (browser tab) of this server process that holds it."""
    return {}


def _session_active(session_id: str) -> bool:
    """Whether a session of this server is connected (a tab open now)."""
    from streamlit.runtime import Runtime

    return bool(session_id) and Runtime.exists() and Runtime.instance().is_active_session(session_id)


def claim_tab_token(earlier: str) -> str:
    """This session's draft token: the address's (`earlier`, a refresh keeps its tab's token), unless
    another open tab holds it (a duplicated tab, a copied address): then a new one."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    me = ctx.session_id if ctx is not None else ""
    holders = _tab_holders()
    other = holders.get(earlier)
    token = earlier if earlier and not (other and other != me and _session_active(other)) else secrets.token_hex(4)
    if len(holders) > 1000:  # tabs long closed
        for t in [t for t, sid in holders.items() if not _session_active(sid)]:
            holders.pop(t, None)
    holders[token] = me
    return token


def forget_session() -> None:
    """What this tab holds of its user (draft, focus, Try it's inputs, its draft token), for a sign-out:
    the next user starts from their own."""
    for key in (CFG_KEY, DATASET_KEY, FOCUS_KEY, TRY_KEY, TAB_KEY, WATCH_KEY, STARTED_KEY, FOLLOW_KEY, NOTE_KEY,
                *PAGE_MEMORY_KEYS):
        st.session_state.pop(key, None)
    for key in [k for k in st.session_state if str(k).startswith("try_seen_")]:
        st.session_state.pop(key, None)


def keep_tab_in_address() -> None:
    """Put this tab's draft token in the address (?tab=...), and back after anything that cleared it
    (a page switch with st.switch_page, say)."""
    token = st.session_state.get(TAB_KEY)
    if token and st.query_params.get(TAB_PARAM) != token:
        st.query_params[TAB_PARAM] = token


def save_draft() -> None:
    """Write this user's draft (dataset, OOD set, config, the run in focus, Try it's inputs, text typed
    into a setting that could not be read) to the store, as this tab's and as the user's newest."""
    if CFG_KEY not in st.session_state or DATASET_KEY not in st.session_state:
        return
    draft = {"config": config().to_dict(), "dataset": dataset().to_draft(),
             "focus_run": st.session_state.get(FOCUS_KEY) or "", "try_it": st.session_state.get(TRY_KEY) or {},
             "typed": {k: list(v) for k, v in (st.session_state.get(INPUT_ERRORS_KEY) or {}).items()}}
    attempt("saving your settings", get_engine().store.save_draft, user(), draft, st.session_state.get(TAB_KEY) or "")


def config() -> RunConfig:
    """The user's current settings (the draft the pages edit)."""
    return st.session_state[CFG_KEY]


def set_config(cfg: RunConfig) -> None:
    """Replace the user's settings with `cfg`; a change is saved as their draft (kept across refreshes)."""
    changed = st.session_state.get(CFG_KEY) != cfg
    st.session_state[CFG_KEY] = cfg
    if changed:
        save_draft()


def set_focus(run_id: str | None) -> None:
    """Remember the run the user is looking at, so the next page (or a refresh) opens on it."""
    if run_id and st.session_state.get(FOCUS_KEY) != run_id:
        st.session_state[FOCUS_KEY] = run_id
        save_draft()


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
    """The user's active dataset."""
    return st.session_state[DATASET_KEY]


def _data_fields(ds: Dataset) -> dict[str, str]:
    """The config's data fields for a dataset: the reference plus the user's own names."""
    return dict(source=ds.source, ood_source=ds.ood_source,
                source_name=ds.label if ds.kind == "upload" else "",
                ood_source_name=ds.ood_name if ds.ood_source else "")


def set_dataset(ds: Dataset) -> None:
    """Make `ds` the active dataset, put its fields into the settings and save the draft."""
    st.session_state[DATASET_KEY] = ds
    update_section("data", **_data_fields(ds))
    save_draft()  # also when only a label changed


# ---- uploads ---------------------------------------------------------------------------------

def remember_try_inputs(engine: Engine, kind: str, files: list[tuple[str, bytes]]) -> None:
    """Keep what the user gave Try it (`kind` "images", "camera" or "zip"; `files` as (their file
    name, bytes)) in the uploads folder and in their draft, so a refresh shows it again. An empty
    list forgets that kind. Files no longer kept are deleted from the server unless a listed upload
    or a run uses the same bytes (discard_refused_upload's rule). A file over the server's upload
    limit is simply not kept (the page still answers for it); nothing is written outside the
    engine's folder. The same files as the last call of this session are not hashed or written again."""
    kept = dict(st.session_state.get(TRY_KEY) or {})
    signature = [(name, len(data)) for name, data in files]
    seen = f"try_seen_{kind}"
    if files and st.session_state.get(seen) == signature and kind in kept:
        return  # e.g. a slider moved: the same files, already kept
    st.session_state[seen] = signature
    items = []
    for name, data in files:
        got = attempt("keeping your image for a refresh", store_upload, engine, data, Path(name).suffix, show=False)
        if got.ok:
            items.append([name, got.value])
    before = {str(ref) for _, ref in kept.get(kind, [])}
    if items:
        kept[kind] = items
    else:
        kept.pop(kind, None)
    if kept != (st.session_state.get(TRY_KEY) or {}):
        st.session_state[TRY_KEY] = kept
        save_draft()
    still = {str(ref) for k in TRY_INPUT_KINDS for _, ref in kept.get(k, [])}
    for ref in before - still:  # a photo the user cleared does not stay on the server
        attempt("removing a file no longer kept", discard_refused_upload, engine, ref, show=False)


def remember_try_source(source: str) -> None:
    """Keep where Try it's images come from (its radio's choice) in the draft, for a refresh."""
    kept = dict(st.session_state.get(TRY_KEY) or {})
    if kept.get("source") != source:
        kept["source"] = source
        st.session_state[TRY_KEY] = kept
        save_draft()


def remember_choice(key: str, value: Any, default: Any = None) -> None:
    """Keep one of Try it's, Results' or Explain's view choices (a widget's key and its JSON-able value)
    in the draft, for a refresh. A value equal to `default` (when given: the widget's own default) is not
    kept, so that merely visiting runs does not push the user's real choices out. Choices of one run
    (their keys hold its id, RUN_ID_IN_KEY) add up as runs are looked at: the newest TRY_CHOICES_KEPT
    of them are kept; the page-wide ones (Compare's runs, the open tab) are always kept."""
    kept = dict(st.session_state.get(TRY_KEY) or {})
    choices = dict(kept.get("choices") or {})
    if default is not None and value == default:
        if key in choices:
            del choices[key]
            kept["choices"] = choices
            st.session_state[TRY_KEY] = kept
            save_draft()
        return
    if choices.get(key) != value:
        choices.pop(key, None)
        choices[key] = value  # the newest last: the oldest run's choices go first past TRY_CHOICES_KEPT
        known = kept.get("run_keys")
        if known is None:  # a draft saved before run_keys
            known = [k for k in choices if RUN_ID_IN_KEY.search(k)]
        run_keys = [k for k in known if k in choices and k != key] + [key] * bool(RUN_ID_IN_KEY.search(key))
        for old in run_keys[:-TRY_CHOICES_KEPT]:
            del choices[old]
        kept["choices"], kept["run_keys"] = choices, run_keys[-TRY_CHOICES_KEPT:]
        st.session_state[TRY_KEY] = kept
        save_draft()


def kept_choice(key: str, default: Any = None) -> Any:
    """A choice remember_choice kept (`default` when none)."""
    return ((st.session_state.get(TRY_KEY) or {}).get("choices") or {}).get(key, default)


def seed_choice(key: str) -> None:
    """Before a Try it, Results or Explain widget is drawn in a new session (a refresh): its kept value, if any."""
    if key not in st.session_state and kept_choice(key) is not None:
        st.session_state[key] = kept_choice(key)


def kept_try_inputs(kind: str) -> list[tuple[str, bytes]]:
    """The files of `kind` remembered by remember_try_inputs that are still on this server, as
    (file name, bytes); ones deleted since are left out."""
    out = []
    for name, ref in (st.session_state.get(TRY_KEY) or {}).get(kind, []):
        try:
            out.append((str(name), resolve_path(str(ref)).read_bytes()))
        except (StudioError, OSError):
            continue
    return out


def store_upload(engine: Engine, data: bytes, suffix: str) -> str:
    """Keep uploaded bytes on the server (named by content hash); returns `upload:<sha256>`.
    Raises LimitExceeded (a StudioError) for an upload over the server's size limit."""
    engine.save_upload(data, suffix)  # the file is named by the hash's first 32 digits
    return upload_ref(hashlib.sha256(data).hexdigest())


def remember_upload(engine: Engine, ref: str, kind: str, name: str, size: int,
                    classes: int | None = None, images: int | None = None) -> None:
    """List a checked upload among this user's earlier uploads (name, size in bytes, classes, images)."""
    sha = upload_sha(ref)
    if sha:
        attempt("remembering the upload", engine.store.add_upload, user(), sha, kind, name, size, classes, images)


def relist_upload(ref: str, kind: str, name: str) -> None:
    """An upload taken up again from a run (its file still on the server) but no longer in this
    user's list, e.g. deleted from it while runs kept the file: listed again, so that the dataset in
    use is among the earlier uploads. Anything else is left as it is."""
    sha = upload_sha(ref)
    if not sha or not source_exists(ref):
        return
    engine = get_engine()
    if any(u["sha256"] == sha for u in engine.store.list_uploads(user(), kind)):
        return
    path = resolve_path(ref)  # the file, or a zip's extracted folder when only that is left: its files' bytes
    size = path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    remember_upload(engine, ref, kind, name or "upload", size)


def uploads(engine: Engine, kind: str) -> list[dict]:
    """This user's earlier uploads of one kind (dataset, ood, checkpoint) that are still on the server, each the
    store's record with "extracted_only": True when it is read from the studio's extracted copy because its zip
    is gone (engine.paths.resolve_path). Each is resolved once (the Data page resolved each twice per redraw)."""
    out = []
    for u in engine.store.list_uploads(user(), kind):
        try:
            path = resolve_path(upload_ref(u["sha256"]))
        except StudioError:  # deleted
            continue
        if path.exists():
            out.append({**u, "extracted_only": path.is_dir()})
    return out


def runs_using(engine: Engine, ref: str) -> list:
    """Runs (of any user) whose config reads the upload `ref`."""
    out = []
    for rec in engine.store.list_runs():
        d, b = rec.config.get("data", {}), rec.config.get("backbone", {})
        if ref in (d.get("source"), d.get("ood_source"), b.get("checkpoint")):
            out.append(rec)
    return out


def next_run_words(ref: str, done: bool) -> str:
    """What deleting upload `ref` does to the next run, in words (" The next run now uses ... instead."
    once `done`, " The next run would use ..." before), "" when the next run does not use it. Said before
    the deletion (`delete_upload_question`) and after it (`delete_upload`), in one place."""
    def verb(now: str, then: str) -> str:
        return now if done else then

    if config().backbone.checkpoint == ref:
        return f" The next run {verb('starts', 'would start')} from the bundled weights instead."
    if dataset().source == ref:
        ood = " (and no OOD set of yours: it was for that dataset)." if dataset().ood_source else "."
        if sample_available():
            return f" The next run {verb('now uses', 'would use')} {default_dataset().label} instead{ood}"
        return f" The next run {verb('has no dataset now', 'would have no dataset')}: upload one{ood}"
    if dataset().ood_source == ref:
        return f" The next run {verb('is', 'would be')} evaluated without an OOD set of yours."
    return ""


def delete_upload_question(engine: Engine, sha: str) -> str:
    """What deleting upload `sha` will do, asked before it is done (`delete_upload` does it and says the
    same in the past tense): whether the file leaves the server, and what the next run uses instead."""
    ref = upload_ref(sha)
    instead = next_run_words(ref, done=False)
    if engine.store.others_have_upload(user(), sha):
        return ("Remove it from your list? Another user uploaded the same file, so it stays on the server."
                + instead)
    using = runs_using(engine, ref)
    if using:
        return (f"Delete it from your list? The file stays on the server for the {plural(len(using), 'run')} "
                f"that used it." + instead)
    return "Delete it for good? No run used it, so the file is removed from the server: this cannot be undone." + instead


def delete_upload(engine: Engine, sha: str) -> str:
    """Remove an upload from this user's list; its file (and its extracted copy) too unless another
    user has it or a run reads it. Returns what happened, in plain words."""
    ref = upload_ref(sha)
    instead = next_run_words(ref, done=True)  # said before the next run's settings change below
    if dataset().source == ref:
        set_dataset(default_dataset())
    elif dataset().ood_source == ref:
        set_dataset(Dataset(dataset().kind, dataset().source, dataset().label))
    if config().backbone.checkpoint == ref:
        update_section("backbone", pretrained="bundled", checkpoint="")
    nobody_else = engine.store.delete_upload(user(), sha)
    using = runs_using(engine, ref)
    if not nobody_else:
        return "Removed from your list (another user uploaded the same file, so it stays on the server)." + instead
    if using:
        return (f"Removed from your list. The file stays on the server because {plural(len(using), 'run')} "
                "used it (their results and explanations need it); delete those runs to free the space." + instead)
    remove_upload_files(engine, sha)
    return "Deleted: the file is gone from the server." + instead


def remove_upload_files(engine: Engine, sha: str) -> None:
    """The stored bytes of upload `sha` (any suffix) and the zip's extracted copy, from the disk."""
    import shutil

    for path in (engine.data_dir / "uploads").glob(sha[:32] + ".*"):
        path.unlink(missing_ok=True)
    extracted = engine.datasets_dir / sha[:EXTRACTED_DIGITS]  # engine.data extracts a zip there
    if extracted.is_dir():
        shutil.rmtree(extracted, ignore_errors=True)


def discard_refused_upload(engine: Engine, ref: str) -> None:
    """A refused upload (not a zip, the wrong classes, another architecture...), or a Try it input
    the user cleared, leaves nothing on the server, unless some user has the same bytes listed or a
    run reads them."""
    sha = upload_sha(ref)
    if sha and not engine.store.upload_known(sha) and not runs_using(engine, ref):
        remove_upload_files(engine, sha)


def dataset_of_config(cfg: dict) -> Dataset:
    """The Dataset a stored run config trained on (for "use these settings on this data")."""
    d = cfg.get("data", {})
    source = str(d.get("source") or SAMPLE_DATASET)
    if source.startswith(UPLOAD_PREFIX):
        kind, label = "upload", str(d.get("source_name") or "your upload")
    elif source == SAMPLE_DATASET:
        kind, label = "sample", SAMPLE_LABEL
    else:
        kind, label = "folder", source
    ood, ood_name = str(d.get("ood_source") or ""), str(d.get("ood_source_name") or "")
    return Dataset(kind, source, label, ood, ood_name or (Path(ood).name if ood else ""), ood_name)


def dataset_name(cfg: dict) -> str:
    """A short name of a run config's dataset for tables and run names ("digits.zip", "sample")."""
    return short_name(dataset_of_config(cfg))


def short_name(ds: Dataset) -> str:
    """A dataset's short name (run names, tables): "sample textures", an upload's own file name, else
    the file or folder name of its path."""
    if ds.kind == "sample":
        return "sample textures"
    if ds.kind == "upload":
        return ds.label
    return Path(ds.source).name or ds.source


def wrapper_folders(paths: list[str]) -> list[str]:
    """The folders every one of `paths` ('/'-separated) starts with, outermost first (a zip's wrapper
    folder: ["pets"]); [] when the paths share none."""
    parts = [p.split("/") for p in paths]
    common = 0
    while parts and all(len(q) > common + 1 and q[common] == parts[0][common] for q in parts):
        common += 1
    return parts[0][:common] if parts else []


def without_wrapper(path: str, wrapper: list[str]) -> str:
    """`path` without the `wrapper` folders (wrapper_folders of the answered images) when it starts with them:
    a skipped file named as the answered ones are ("bird/broken.jpg", not "pets/bird/broken.jpg")."""
    parts, n = path.split("/"), len(wrapper)
    inside = n and parts[:n] == wrapper and len(parts) > n  # the wrapper itself, or a file beside it: kept whole
    return "/".join(parts[n:]) if inside else path


def reuse_run(rec: Any, with_data: bool) -> None:
    """Make a finished run's settings the next run's (and its dataset and OOD set with `with_data`).
    Raises StudioError when the run's settings no longer work in this version."""
    cfg = RunConfig.from_dict({**rec.config, "name": ""})
    if with_data:
        ds = dataset_of_config(rec.config)
        if not source_exists(ds.source):
            raise StudioError(f"The data of this run ({ds.label}) is no longer on this server: upload it again, "
                              "or use the settings on the current data.")
        if ds.ood_source and not source_exists(ds.ood_source):
            ds = Dataset(ds.kind, ds.source, ds.label)
        for ref, kind, name in ((ds.source, "dataset", ds.label), (ds.ood_source, "ood", ds.ood_name)):
            relist_upload(ref, kind, name)
    else:
        ds = dataset()
    st.session_state[CFG_KEY] = with_section(cfg, "data", **_data_fields(ds))
    st.session_state[DATASET_KEY] = ds
    reset_widgets()
    save_draft()


def preset_for_data(preset, cfg: RunConfig, train_images: int | None = None) -> tuple[RunConfig, str]:
    """`preset` (engine.presets.Preset) applied to `cfg`, its batch size fitted to the chosen dataset
    (`train_images` training images; default: `known_classes_and_train_size`) by
    engine.presets.fit_to_data; and the words that say so, with a leading space ("" when nothing was fitted)."""
    after = preset.apply(cfg)
    fitted, words = fit_to_data(after, known_classes_and_train_size(after)[1] if train_images is None else train_images)
    return fitted, (" " + words if words else "")


def is_preset(preset, cfg: RunConfig, train_images: int | None = None) -> bool:
    """engine.presets.is_recipe for the draft: the chosen dataset's training images are `train_images`,
    else looked up (`known_classes_and_train_size`) only when the recipe's fitting has to be checked."""
    return is_recipe(preset, cfg, train_images if train_images is not None else
                     lambda: known_classes_and_train_size(preset.apply(cfg))[1])


def refit_preset(before: RunConfig, before_images: int) -> str:
    """After the dataset changed: a draft that was a preset's recipe on the old data (`before`, with
    `before_images` training images; fitted to them or not) becomes that preset fitted to the new data
    (`preset_for_data`), so that a small upload does not keep the batch of 32 the page then warns
    against, nor a large one the batch fitted to a small one. Returns what was done, in words ("" when
    nothing changed)."""
    preset = preset_of(before, before_images)
    if preset is None:
        return ""
    now = config()
    fitted, words = preset_for_data(preset, now)
    changed = config_changes(now, fitted)  # the batch size and learning rate
    if not changed:
        return ""
    set_config(fitted)
    for key in changed:  # those widgets drawn again from the config (others, on the page drawn now, keep theirs)
        st.session_state.pop(f"{WIDGET_PREFIX}{key}", None)
    # a new user who had chosen nothing read of "the Quick demo preset": the starting settings are said to be it
    start = ", the studio's starting settings" if preset.name == DEFAULT_PRESET else ""
    return (f"The settings in use (the {preset.title} preset{start}) are fitted to this dataset."
            + (words + STEP_WORDS if words else " Its own batch size is back: this dataset is large enough for it."))


# after a note on batches fitted to a small dataset (engine.presets.fit_to_data's words), its terms in plain words
STEP_WORDS = (" An optimiser step updates the model once from a batch of images; an epoch is one pass over the "
              "training images.")


def preset_of(cfg: RunConfig, train_images: int | None = None, among=None):
    """The preset (engine.presets.Preset) whose recipe `cfg` is (`is_preset`, on `train_images` training
    images; `among`: the presets already found to match, if known), the most specific one when several
    match; None when the user changed something after choosing one."""
    found = list(among) if among is not None else [p for p in PRESETS.values() if is_preset(p, cfg, train_images)]
    return max(found, key=lambda p: len(p.sets())) if found else None


def matching_preset(cfg: RunConfig, train_images: int | None = None) -> str | None:
    """The title of `preset_of(cfg, train_images)`, or None."""
    preset = preset_of(cfg, train_images)
    return preset.title if preset is not None else None


def default_run_name(cfg: RunConfig, ds: Dataset, train_images: int | None = None) -> str:
    """What a run is called when the user gave no name: the preset it is exactly (`matching_preset`, on
    `train_images` training images; default: the chosen dataset's), with its backbone ("Standard demo
    (ResNet-18) on ..."), else backbone and methods; where it starts when that is not the bundled weights
    (ImageNet weights, your checkpoint by the name you gave it, scratch); and the data."""
    from engine.presets import fitted_to, run_name

    count = train_images if train_images is not None else lambda: known_classes_and_train_size(cfg)[1]
    own = checkpoint_name(cfg.backbone.checkpoint) if cfg.backbone.pretrained == "checkpoint" and \
        cfg.backbone.checkpoint else None
    return run_name(cfg, short_name(ds), matching_preset(cfg, train_images), fitted_to(count), own)


def start_run(engine: Engine, gpus: tuple[int, ...] = ()) -> str:
    """Check the draft's data and submit it (named by `default_run_name` unless the user named it:
    the preset it is exactly, or its backbone and methods, and its data; a name given is used once, then
    cleared from the draft); the Train page then follows the new run, or keeps the run it shows while the new
    one waits behind it (state FOLLOW_KEY). Raises the check's or the engine's
    error (a StudioError for anything the user can fix)."""
    import dataclasses

    cfg, ds = config(), dataset()
    check = datasets.check_dataset(engine, cfg)
    if not check.ok:
        raise check.error
    named = bool(cfg.name)
    if not named:
        cfg = dataclasses.replace(cfg, name=default_run_name(cfg, ds))
    shown = st.session_state.get(WATCH_KEY)  # the run the Train page shows (also when another page started this)
    run_id = engine.submit(cfg, owner=user(), gpus=gpus)
    if named:  # the name was this run's: the next one is named afresh unless named again (a new user's next
        set_config(dataclasses.replace(config(), name=""))  # run, with WiSE-FT on, was saved as "... plain")
        st.session_state.pop(f"{WIDGET_PREFIX}run.name", None)
    st.session_state[STARTED_KEY] = run_id
    active = engine.active_runs()
    if engine.current_run != run_id and shown in active:
        # queued behind the run on screen: the Train page keeps showing it (a new user saw the queued run's empty
        # charts instead of the one training) and moves to the new run when it starts (app_pages/train.py)
        follow = st.session_state.get(FOLLOW_KEY) or {}
        if follow.get("from") != shown or follow.get("to") not in active:  # else the first queued starts first
            st.session_state[FOLLOW_KEY] = {"from": shown, "to": run_id}
    else:
        st.session_state[WATCH_KEY] = run_id
        st.session_state.pop(FOLLOW_KEY, None)
    set_focus(run_id)  # Results opens on the new run
    return run_id


def same_settings_active(engine: Engine, cfg: RunConfig) -> Any | None:
    """The record (id, name ...) of this user's running or queued run with exactly `cfg`'s settings (its
    name aside), else None: pressing Start again would train a second copy of it. Raises nothing."""
    return next((rec for rec in map(engine.run_record, engine.active_runs_of(user()))
                 if rec is not None and _same_settings(rec, cfg)), None)


SAME_FINISHED_LOOKBACK = 20  # finished runs compared with the draft on each redraw of the Train page


def same_settings_finished(cfg: RunConfig, visible: list) -> Any | None:
    """The record of the latest finished run with exactly `cfg`'s settings (its name aside) among the last
    SAME_FINISHED_LOOKBACK finished ones of `visible` (the runs this user may see, newest first: `runs`),
    else None: pressing Start would train about the same model again. Raises nothing."""
    done = [r for r in visible if r.status == "finished"][:SAME_FINISHED_LOOKBACK]
    return next((rec for rec in done if _same_settings(rec, cfg)), None)


def same_settings_stopped(cfg: RunConfig, visible: list) -> Any | None:
    """The record of the latest stopped or interrupted run with exactly `cfg`'s settings (its name aside) that
    can be continued (its resume point is there), among the last SAME_FINISHED_LOOKBACK such runs of `visible`
    (newest first), else None: pressing Start would train it again from the first epoch. Raises nothing."""
    from engine.jobs import was_interrupted
    from engine.resume import RESUME_FILE

    paused = [r for r in visible if r.status == "stopped" or was_interrupted(r.status, r.error)]
    return next((rec for rec in paused[:SAME_FINISHED_LOOKBACK]
                 if _same_settings(rec, cfg) and (Path(rec.run_dir) / RESUME_FILE).is_file()), None)


def _same_settings(rec: Any, cfg: RunConfig) -> bool:
    """Whether the run `rec` was given exactly `cfg`'s settings, names aside. A run placed on one chosen
    GPU at submit (cuda:N) counts as the draft's automatic or CUDA device; a config this version cannot
    read is not this one."""
    import dataclasses

    want = dataclasses.replace(cfg, name="")
    try:  # the stored config went through JSON (lists for tuples): compared as a config
        stored = dataclasses.replace(RunConfig.from_dict(rec.config), name="")
        if stored.train.device.startswith("cuda:") and want.train.device in ("auto", "cuda"):
            stored = with_section(stored, "train", device=want.train.device)
        return stored == want
    except Exception:
        return False


# ---- WiSE-FT: the alpha chosen for a run -------------------------------------------------------

def wise_alpha(engine: Engine, rec: Any) -> tuple[float, bool]:
    """(alpha, chosen): the WiSE-FT alpha stored for a run, else this tab's choice for a run the
    user may only read, else (with chosen False) the run's own pick: the curve's best OOD accuracy
    within a point of the fine-tuned model's validation accuracy (engine.predict.chosen_alpha)."""
    from engine.predict import chosen_alpha, run_summary

    fresh = engine.store.get_run(rec.id)
    stored = getattr(fresh, "wise_ft_alpha", None) if fresh is not None else None
    if stored is None:
        stored = st.session_state.get(f"wise_alpha_choice_{rec.id}")
    if stored is not None:
        return round(float(stored), 2), True
    try:
        summary = run_summary(Path(rec.run_dir))
    except (StudioError, OSError, ValueError):  # a run without a readable summary: the fine-tuned end
        summary = {}
    return round(chosen_alpha(summary), 2), False


def set_wise_alpha(engine: Engine, rec: Any, alpha: float) -> None:
    """Store the alpha chosen for a run (the owner's choice); for a run shared read-only, this tab only."""
    alpha = round(float(alpha), 2)
    may_write = attempt("checking your access to this run", engine.authorize, rec.id, user(), write=True,
                        show=False).ok
    if may_write:
        attempt("saving the chosen alpha", engine.store.set_wise_ft_alpha, rec.id, alpha)
    else:
        st.session_state[f"wise_alpha_choice_{rec.id}"] = alpha


def reset_widgets() -> None:
    """Forget the seeded widget values so they are drawn again from the config (after a preset)."""
    for key in [k for k in st.session_state if isinstance(k, str) and k.startswith(WIDGET_PREFIX)]:
        del st.session_state[key]
    for key in PAGE_MEMORY_KEYS:  # the preset's values replace whatever was typed or remembered
        st.session_state.pop(key, None)


def config_problems(cfg: RunConfig) -> str | None:
    """The engine's validation message for `cfg` in the dashboard's words (`message_words`), with any
    setting of a section in use whose typed text could not be read (app.widgets: the config keeps the
    old value, not what the box shows, until the text is fixed), or None when it can run."""
    typed = [m for k, (m, _) in (st.session_state.get(INPUT_ERRORS_KEY) or {}).items() if _setting_in_use(cfg, k)]
    try:
        validate(cfg)
    except StudioError as exc:
        return message_words(str(exc)) + "".join(f"\n- {m}" for m in typed)
    return (NEEDS_FIXING + "".join(f"\n- {m}" for m in typed)) if typed else None


def _list_setting(cfg: RunConfig, widget: str) -> bool:
    """Whether a widget key ("w:wise_ft.alphas") names a list setting of this config (a draft's typed
    text for a setting since renamed or removed is dropped)."""
    section, _, name = widget.removeprefix(WIDGET_PREFIX).partition(".")
    values = cfg.methods.get(section) if section not in CORE_SECTIONS else getattr(cfg, section)
    return values is not None and is_list_type(typing.get_type_hints(type(values)).get(name))


def _setting_in_use(cfg: RunConfig, widget: str) -> bool:
    """Whether the setting behind a widget key ("w:wise_ft.alphas") matters to the run: a list setting
    of this config, a core one always, a method's while the method is on."""
    section = widget.removeprefix(WIDGET_PREFIX).split(".", 1)[0]
    return _list_setting(cfg, widget) and (section not in cfg.methods
                                           or bool(getattr(cfg.methods[section], "enabled", True)))


def message_words(text: str, names: dict[str, str] | None = None) -> str:
    """An engine message as the dashboard shows it: the user's names for their files (`user_words`)
    and settings named by their labels, without the keys the command line needs ("CPU threads
    (train.threads)" -> "CPU threads")."""
    return user_words(without_setting_keys(text), names or {})  # keys first: a file named like one stays


# ---- runs ------------------------------------------------------------------------------------

# Material icons render in markdown everywhere (emoji need a font the server's users may lack).
STATUS_ICONS = {"queued": ":material/schedule:", "running": ":material/directions_run:",
                "finished": ":material/check_circle:", "failed": ":material/error:", "stopped": ":material/stop_circle:"}


LABEL_SETTINGS = (("train", "epochs", lambda v: plural(v, "epoch")), ("optim", "lr", "lr {:g}".format),
                  ("train", "batch_size", "batch {}".format), ("data", "image_size", "{} px".format),
                  ("", "seed", "seed {}".format))  # what tells same-named runs apart


def setting_differences(recs: list[Any]) -> dict[str, str]:
    """For runs that share a name, the LABEL_SETTINGS in which they differ, as words per run id
    ("3 epochs, lr 0.01"); runs whose name is their own get none."""
    def value(r, section, key):
        return (r.config or {}).get(key) if not section else ((r.config or {}).get(section) or {}).get(key)

    out: dict[str, str] = {}
    for name in [n for n, k in Counter(r.name for r in recs).items() if k > 1]:
        group = [r for r in recs if r.name == name]
        keys = [(sec, key, fmt) for sec, key, fmt in LABEL_SETTINGS
                if len({repr(value(r, sec, key)) for r in group}) > 1]
        for r in group:
            words = [fmt(value(r, sec, key)) for sec, key, fmt in keys if value(r, sec, key) is not None]
            if words:
                out[r.id] = ", ".join(words)
    return out


def run_labels(recs: list[Any], with_status: bool = True, compact: bool = False,
               among: list[Any] | None = None) -> dict[str, str]:
    """Plain-text labels (select boxes, the Compare table's run column), one per run id of `recs`:
    the run's name, the settings that tell it from runs of the same name (`setting_differences`), and
    when it started (local time), the status when asked. Where two runs would still read the same
    (same name and settings shown, same minute), a number in start order among `among` (default:
    `recs`; pass all the runs the user sees, so a run has the same number in every picker) tells
    them apart ("(2)"): the internal run id is never shown. `compact` puts the start first, as HH:MM
    alone when every run started the same day, and leaves "finished" out, for a narrow column."""
    import time

    recs = list(recs)
    days = {time.strftime("%Y%m%d", time.localtime(r.created)) for r in recs}
    when_fmt = "%H:%M" if compact and len(days) <= 1 else "%d %b %H:%M"
    ids = {r.id for r in recs}
    recs_all = recs + [r for r in (among or []) if r.id not in ids]
    differ = setting_differences(recs_all)
    base = {}
    for r in recs_all:
        when = time.strftime(when_fmt, time.localtime(r.created))
        what = differ.get(r.id)
        base[r.id] = (f"{when} · {what + ' · ' if what else ''}{r.name}" if compact
                      else f"{r.name}{f' ({what})' if what else ''} · {when}")
    seen: dict[str, int] = {}
    clashes = {b for b, n in Counter(base.values()).items() if n > 1}
    labels = {}
    for r in sorted(recs_all, key=lambda r: (r.created, r.id)):
        label = base[r.id]
        if label in clashes:
            seen[label] = seen.get(label, 0) + 1
            label = f"{label} ({seen[label]})"
        if with_status and not (compact and r.status == "finished"):
            label = f"{label} · {r.status}"
        labels[r.id] = label
    return {r.id: labels[r.id] for r in recs}


def without_backbone(labels: dict[str, str], backbones: dict[str, str]) -> dict[str, str]:
    """The Compare table's run labels without the " (ResNet-18)" that preset run names carry (a seed beside it
    kept: "(seed 1)"), when every
    run trained the same backbone (the setup table below names it), unless two labels would then read
    the same: "15:24 · Quick demo" fits the run column at 1280 px, "15:24 · Quick demo (ResNe" was cut."""
    if len(set(backbones.values())) != 1 or not next(iter(backbones.values())):
        return labels
    title = re.escape(next(iter(backbones.values())))
    # "Quick demo (ResNet-18, seed 1)" keeps its seed: "Quick demo (seed 1)"
    # "Quick demo (ResNet-18), loss weighted by class": before the data's settings, once the dataset is left out
    seeded = {i: re.sub(rf" \({title}, (seed \d+\))(?=( \(\d+\))?( · \w+)?$| ·|, )", r" (\1", label, count=1)
              for i, label in labels.items()}
    short = {i: re.sub(rf" \({title}\)(?=( \(\d+\))?( · \w+)?$| ·|, )", "", label, count=1)
             for i, label in seeded.items()}
    return short if len(set(short.values())) == len(short) else labels


def without_dataset(labels: dict[str, str], datasets: dict[str, str],
                    extras: dict[str, str] | None = None) -> dict[str, str]:
    """The Compare table's run labels without the " on <dataset>" that default run names end with (the
    table names the dataset in its own column or above it), before the data's settings the name goes on with
    (`extras`: ", loss weighted by class", engine.words.data_extras, which stay), unless two labels would then
    read the same."""
    extras = extras or {}
    # the settings optional: a name from before they went into names, or the user's own, ends with the dataset
    short = {i: re.sub(rf" on {re.escape(datasets[i])}(?=({re.escape(extras.get(i, ''))})?( \(\d+\))?( · \w+)?$)",
                       "", label) for i, label in labels.items()}
    return short if len(set(short.values())) == len(short) else labels


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



def weights_words(cfg: RunConfig) -> str:
    """What the next run starts from, in words (`start_words`), saying when "your checkpoint" has no
    accepted file yet (a refused upload is not kept)."""
    if cfg.backbone.pretrained == "checkpoint" and not cfg.backbone.checkpoint:
        return "your checkpoint, none accepted yet"
    # which file: after a refused upload the earlier one stays chosen
    return start_words(cfg.backbone.pretrained, cfg.backbone.checkpoint)


def start_words(pretrained: str, checkpoint: str, owner: str | None = None) -> str:
    """What a run starts from, in words (WEIGHTS_TEXT): "bundled weights", or "your checkpoint my_leaf_model.ckpt"
    with the file's name as its user knows it (`checkpoint_name`, uploads of `owner`, by default the current user),
    in markdown. The next run's line (Data, Model, Train) and a run's line on Results both say it."""
    words = WEIGHTS_TEXT.get(pretrained or "bundled", str(pretrained))  # a config without it: the default
    name = checkpoint_name(checkpoint, owner) if pretrained == "checkpoint" and checkpoint else ""
    return f"{words} {md_text(name)}" if name else words


def checkpoint_name(ref: str, owner: str | None = None) -> str:
    """The user's own name of the checkpoint `ref` (an upload's file name among the uploads of `owner`, by default
    the current user; or a server path's file name); "" when unknown (another user's upload)."""
    if not ref.startswith(UPLOAD_PREFIX):
        return Path(ref).name
    return next((u["name"] for u in get_engine().store.list_uploads(user() if owner is None else owner, "checkpoint")
                 if upload_ref(u["sha256"]) == ref), "")


def kept_head(cfg: RunConfig) -> bool:
    """Whether the next run keeps its checkpoint's classification head (a model this studio trained on the
    chosen dataset's classes; engine.train._continue_with_kept_head), so that it skips the head-only epochs:
    only when the dataset's classes are known here without decoding images (state.last_check) and WiSE-FT,
    which fits its own head, is off."""
    if cfg.backbone.pretrained != "checkpoint" or not cfg.backbone.checkpoint or "wise_ft" in cfg.enabled_methods():
        return False
    check = last_check(cfg)
    if check is None:
        return False
    return _head_kept(cfg.backbone.checkpoint, cfg.backbone.name, tuple(check.report.classes))


@st.cache_data(max_entries=16, show_spinner=False)
def _head_kept(ref: str, backbone: str, classes: tuple[str, ...]) -> bool:
    """engine.backbones.build_model's own decision for this file, backbone and classes (False when it refuses
    the file); kept per server, as the file behind an upload reference never changes."""
    from engine.backbones import build_model

    try:
        _, report = build_model(backbone, len(classes), "checkpoint", ref, classes=list(classes))
    except Exception:  # noqa: BLE001 - a refused file keeps no head; the Model page says why
        return False
    return bool(report.head_kept)


def last_check(cfg: RunConfig):
    """This tab's last successful check of the chosen dataset (the Data page's), else the check redone
    when the engine still holds the dataset decoded (after a refresh), else None: a check that would
    decode images is never run here."""
    for key, check in reversed(list(st.session_state.get("data_checks", {}).items())):
        if key[0] == cfg.data.source and check.ok:
            return check
    check = datasets.cheap_check(get_engine(), cfg)
    return check if check is not None and check.ok else None


def known_classes_and_train_size(cfg: RunConfig) -> tuple[int, int]:
    """(classes, training images) of the chosen dataset: from this server's last check of it with the
    same split settings at any image size (also after a refresh, or once the image size changed), else
    from this tab's last check of it (the Data page; maybe with other split settings), else the bundled
    sample's shape."""
    from app.presets import SAMPLE_CLASSES, SAMPLE_TRAIN_IMAGES

    shape = datasets.known_shape(cfg)
    if shape is None:
        check = last_check(cfg)
        shape = check.report if check is not None else None
    if shape is None:
        return SAMPLE_CLASSES, SAMPLE_TRAIN_IMAGES
    split, _ = datasets.capped_split(shape.split_counts, cfg.data.train_per_class)  # as the Data page counts
    return len(shape.classes), sum(split.get("train", {}).values())


def few_steps_warning(cfg: RunConfig) -> str | None:
    """engine.config.few_batches for the chosen dataset: a warning when the batch size leaves at most
    two optimiser steps an epoch (the Model page, the Data page's Train now and the Train page show it)."""
    from engine.config import few_batches

    return few_batches(cfg, known_classes_and_train_size(cfg)[1])


def batch_size_fix(cfg: RunConfig) -> tuple[int, float] | None:
    """The (batch size, learning rate) `few_steps_warning`'s advice gives for the chosen dataset
    (engine.config.smaller_batch; asked where the warning is shown), or None when it has none."""
    from engine.config import smaller_batch

    return smaller_batch(cfg, known_classes_and_train_size(cfg)[1])


def set_settings(changes: dict[str, Any]) -> None:
    """Set settings from a button's callback ({"section.field": value}): the config, and their widgets
    redrawn from it (their keys dropped, so the next run seeds them from the config)."""
    for key, value in changes.items():
        section, name = key.split(".", 1)
        update_section(section, **{name: value})
        st.session_state.pop(f"{WIDGET_PREFIX}{key}", None)


def another_seed(seed: int) -> int:
    """The seed the "Use seed N instead" button offers after `seed` (int): the next one, or the one before
    at the largest seed the settings allow (engine.config's bound; the next would be refused)."""
    import dataclasses

    from engine.config import RunConfig

    top = next(f for f in dataclasses.fields(RunConfig) if f.name == "seed").metadata["max"]
    return seed + 1 if seed < top else seed - 1


def use_another_seed() -> None:
    """Another seed for the draft (`another_seed`; a button's callback, beside a note that the settings
    shown are already training or have finished): a second run worth comparing, one click away (the seed lives
    on the Data page). A toast on the next draw says so (the note beside the button goes with the change)."""
    import dataclasses

    seed = another_seed(config().seed)
    set_config(dataclasses.replace(config(), seed=seed))
    st.session_state.pop(f"{WIDGET_PREFIX}run.seed", None)
    st.session_state[SEED_CHANGED_KEY] = seed


SEED_CHANGED_KEY = "seed_changed"  # the seed use_another_seed just set, for the Train page's toast


def use_batch_size(size: int, lr: float) -> None:
    """Set the batch size and learning rate (a button's callback)."""
    set_settings({"train.batch_size": int(size), "optim.lr": float(lr)})
    auto = config().optim.lr_auto
    st.toast((f"Batch size {size} set; the learning rate is found automatically" if auto else
              f"Batch size {size} and learning rate {lr:g} set") + " (Model and methods page).", icon=":material/check:")


def drop_copies() -> None:
    """Switch on 'Drop duplicate copies' (a button's callback)."""
    set_settings({"data.drop_duplicates": True})
    st.toast("Duplicate copies dropped: one image of each group is kept.", icon=":material/check:")


def use_image_size(px: int) -> None:
    """Set the image size (data.image_size, px) for the next run (a button's callback)."""
    set_settings({"data.image_size": int(px)})
    st.toast(f"Image size {px} px for the next run: finer detail, slower epochs.", icon=":material/check:")


def stop_mirroring() -> None:
    """Switch off mirroring in training and flip TTA, the mirror-image averaging (a button's callback)."""
    set_settings({"train.flip": False, "eval.tta_flip": False})
    st.toast("Mirroring off: training keeps its random crops.", icon=":material/check:")


MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]|$~<>&])")  # what changes a name inside a line of markdown


CODE_SPANS = re.compile(r"(`[^`\n]+`)")


def message_md(text: str) -> str:
    """An engine message (plain text, as the command line prints it) for st.markdown: its `code` spans
    stay code, everything else shows as itself (md_text), so that "__builtin__.set" or a file named
    "*draft*.zip" is not turned into bold or italics."""
    return "".join(part if CODE_SPANS.fullmatch(part) else md_text(part) for part in CODE_SPANS.split(text))


def md_text(text: str) -> str:
    """`text` (a user's file, dataset or class name) escaped for st.markdown inside a line: `*`, `_`,
    `` ` ``, `$` (LaTeX), `[`/`]` (links), `~`, `|`, `<`/`>`, `&` (entities) and backslashes show as
    themselves."""
    return MARKDOWN_SPECIALS.sub(r"\\\1", str(text))


def head_only_words(cfg) -> str:
    """"the first 2 epochs train only the new head" (the linear-probe epochs the run will do, at most
    its epochs; "the first epoch trains ..." for one), or "" without any, and says so when a checkpoint's
    head is kept instead (kept_head: the engine then skips them); with pruning starting inside
    those epochs, it says that pruning already zeroes trunk weights meanwhile."""
    probe = min(int(cfg.optim.linear_probe_epochs), int(cfg.train.epochs))
    if probe <= 0:
        return ""
    if kept_head(cfg):  # the engine skips them: the kept head is trained already (the Model page says so too)
        return "its checkpoint's own head kept, so no head-only epochs"
    words = "the first epoch trains only the new head" if probe == 1 else \
        f"the first {probe} epochs train only the new head"
    pruning = cfg.methods.get("pruning")
    if (pruning is not None and pruning.enabled and pruning.target_sparsity > 0
            and pruning.start_fraction * cfg.train.epochs < probe):  # structured alone prunes at the end
        # measured: starting the ramp after the probe epochs did worse (README, Pruning)
        words += ", while pruning already zeroes trunk weights"  # no parentheses: it is said inside some
    return words


def epochs_words(config: dict, summary: dict | None = None) -> str:
    """"20 epochs", with the training a method adds after them (`extra_epochs_words`): the run's
    length wherever a page sums a run or the next one up (`config` as saved: sections -> fields).
    With a finished run's `summary`, a run a method ended early says so: "3 of 20 epochs"."""
    from engine.words import epochs_run_words, extra_epochs_words

    return epochs_run_words(summary or {}, int((config.get("train") or {}).get("epochs") or 0)) + extra_epochs_words(config)


def file_stem(run_name: str, limit: int = 60) -> str:
    """A run's name as the start of a file name: its words (letters, digits, '-') joined by one underscore, cut after
    a whole word at `limit` characters and before a small word that would begin a cut phrase ("..._from_your");
    "run" when nothing is left. A new user's ONNX file was named "Quick_demo__image_size_224__epochs_30__ResNet-18__
    from_your_-..."."""
    words = [w for w in "".join(ch if ch.isalnum() or ch == "-" else " " for ch in run_name).split() if w.strip("-")]
    kept: list[str] = []
    for word in words:
        if kept and len("_".join(kept + [word])) > limit:
            break
        kept.append(word[:limit])
    while len(kept) < len(words) and len(kept) > 1 and kept[-1].lower() in CUT_WORDS:
        kept.pop()
    return "_".join(kept) or "run"


CUT_WORDS = {"a", "an", "and", "at", "by", "for", "from", "in", "of", "on", "or", "the", "to", "with", "your"}


def download_name(run_name: str, run_id: str, out_dir: Path, fname: str) -> str:
    """The name an exported file downloads under: the run's name (`file_stem`) and id, which weights when they are
    not the fine-tuned model (engine.export.export_dir's sub-folder: "wise_alpha_0.42", "structured"; a mix's
    and the full-size model's files met in one Downloads folder under one name), then the file's own name."""
    weights = "" if out_dir.name == "exports" else f"{out_dir.name}-"
    return f"{file_stem(run_name)}-{run_id}-{weights}{fname}"
