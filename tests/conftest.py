"""Shared fixtures: tiny datasets and tiny run configs, so the suite stays fast on 2 cores."""

from __future__ import annotations

import contextlib
import io
import zipfile
from pathlib import Path

import os

# The tests that give a run two threads share the cores with the other worker: OpenMP threads that
# sleep while they wait (instead of spinning) cost those tests a quarter less time on a busy machine.
# (Read when torch loads OpenMP: set before torch is imported, for this process and its children.)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from engine.config import RunConfig, apply_overrides  # noqa: E402

# Tiny models gain nothing from a second thread, and OpenMP threads that spin against another
# busy process make a step 30x slower: one thread keeps the suite fast on a shared 2-core box.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")
# `train.amp: auto` on the CPU follows a per-machine measurement (engine.devices.cpu_precision); the
# suite pins fp32 so its results are the same on every machine. tests/test_precision.py tests the choice.
os.environ.setdefault("STUDIO_CPU_PRECISION", "fp32")

TINY_CLASSES = ("red", "green", "stripes")

# The engine tests train on the CPU; STUDIO_TEST_DEVICE=cuda runs the same tests through the GPU path
# (benchmarks/gpu_check.sh does that on a machine with a GPU).
TEST_DEVICE = os.environ.get("STUDIO_TEST_DEVICE", "cpu")


# ---- the suite writes only in its temporary folders -----------------------------------------------
# A test that runs a command with its default output (predict's predictions.csv) or the default engine
# folder (runs/) would write into the project. The controller compares the project's files before
# and after the session and fails the run when a test left one behind.
ROOT = Path(__file__).resolve().parent.parent
_SKIP_DIRS = {".git", "__pycache__", ".pytest_cache", "_artifacts", ".whl", ".gl", ".venv", ".mypy_cache",
              ".ruff_cache"}  # caches and environments; tests/_artifacts: the browser test's screenshots


def project_files() -> set[str]:
    """Files under the project (runs/ to two levels, runs/benchmarks left out: benchmarks write there)."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(ROOT):
        top = Path(dirpath) == ROOT
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS and not (top and d == "runs")]
        out.update(str(Path(dirpath, f).relative_to(ROOT)) for f in filenames)
    runs = ROOT / "runs"
    if runs.is_dir():
        out.update(str(p.relative_to(ROOT)) for p in [*runs.glob("*"), *runs.glob("*/*")]
                   if not p.relative_to(runs).parts[0] == "benchmarks")
    return out


# Work a Streamlit server does once at its start, every AppTest did again: scan the installed packages'
# metadata for components (0.25-0.45 s an app, about 150 apps a run) and compile each page with its
# "magic" (a third of the pages' run time in tests/test_app.py). Done once per test process here, the
# compiled page kept until its file changes; what the pages do is unchanged.
def _once_per_process():
    import functools

    from streamlit.components.v2 import manifest_scanner
    from streamlit.runtime.scriptrunner import script_cache

    manifest_scanner.scan_component_manifests = functools.lru_cache(maxsize=None)(
        manifest_scanner.scan_component_manifests)
    compiled: dict = {}
    get_bytecode = script_cache.ScriptCache.get_bytecode

    def shared_bytecode(self, script_path: str):
        st_ = os.stat(script_path)
        key = (os.path.abspath(script_path), st_.st_mtime_ns, st_.st_size)
        if key not in compiled:
            compiled[key] = get_bytecode(self, script_path)
        return compiled[key]

    script_cache.ScriptCache.get_bytecode = shared_bytecode


_once_per_process()


# The dashboard draws its charts without Altair's Vega-Lite schema check (app/vega.py: more than half of the
# conversion on every rerun). The suite checks them instead: the first chart of each kind that a line of the
# pages draws in a test process is converted as st.altair_chart converts it, with the check, and a test whose
# page drew an invalid one errors at its teardown.
_CHECKED_CHARTS: set[tuple] = set()
_INVALID_CHARTS: list[str] = []


def chart_kind(chart) -> tuple:
    """What tells apart the charts one line of a page draws (a loop draws several builders' charts; a builder
    adds a layer or not): the chart's class, its layers' and sub-charts' count, and the properties it sets."""
    import altair as alt

    parts = tuple(len(getattr(chart, k, None) or ()) if getattr(chart, k, alt.Undefined) is not alt.Undefined else -1
                  for k in ("layer", "hconcat", "vconcat", "concat"))
    return type(chart).__name__, parts, tuple(sorted(k for k, v in chart._kwds.items() if v is not alt.Undefined))


def _check_drawn_charts():
    import functools
    import sys

    from altair.utils.schemapi import SchemaValidationError
    from streamlit.elements.vega_charts import _convert_altair_to_vega_lite_spec as streamlit_spec

    from app import vega

    unvalidated = vega._unvalidated

    @functools.wraps(unvalidated)  # checked.__wrapped__: the dashboard's own, for tests/test_charts.py
    def checked(chart):
        caller = sys._getframe(2)  # vega.altair_chart's caller: the page's line
        seen = (caller.f_code.co_filename, caller.f_lineno, chart_kind(chart))
        if seen not in _CHECKED_CHARTS:
            _CHECKED_CHARTS.add(seen)
            try:
                streamlit_spec(chart)  # Streamlit's conversion (its data as Arrow), to_dict() with the check
            except SchemaValidationError as exc:
                _INVALID_CHARTS.append(f"{Path(seen[0]).name}:{seen[1]}: {exc}"[:2000])
        return unvalidated(chart)

    vega._unvalidated = checked


_check_drawn_charts()


@pytest.fixture(autouse=True)
def charts_drawn_are_valid():
    """An error at a test's teardown when its pages (or a fixture before it) drew a chart that is not a valid
    Vega-Lite spec (see _check_drawn_charts)."""
    yield
    invalid = list(_INVALID_CHARTS)
    _INVALID_CHARTS.clear()
    assert not invalid, invalid


# pytest.ini sends whole files to the two workers in collection order (--dist loadfile): the longest files
# first leave the small ones for the end, so that neither worker waits long for the other at the end of the
# run (the browser file alone is about three minutes; started late, the other worker had gone idle).
LONG_FIRST = ("test_e2e_browser.py", "test_app.py", "test_distributed.py", "test_predict.py", "test_resume.py",
              "test_engine_cli.py", "test_app_drafts.py", "test_adafilter.py", "test_try_it_page.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FIRST)))  # stable: each file keeps its order


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):  # the controller (or a run without xdist)
        session.config._project_files = project_files()


def pytest_sessionfinish(session, exitstatus):
    before = getattr(session.config, "_project_files", None)
    if before is None:
        return
    left = sorted(project_files() - before)
    if left:
        session.config._left_in_project = left
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    left = getattr(config, "_left_in_project", None)
    if left:
        terminalreporter.section("files the tests left in the project", red=True)
        terminalreporter.line("A test wrote outside its temporary folders (write in tmp_path instead); the run "
                              "fails for it: " + ", ".join(left[:20]))


def tiny_image(cls: str, i: int, size: int = 24) -> Image.Image:
    rng = np.random.default_rng(i + 1000 * TINY_CLASSES.index(cls))
    arr = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
    if cls == "red":
        arr[..., 0] += 180
    elif cls == "green":
        arr[..., 1] += 180
    else:
        arr[:, :: 4] += 180
    return Image.fromarray(arr)


def write_tiny_zip(path: Path, per_class: int = 20, classes=TINY_CLASSES, nested: str = "") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for cls in classes:
            for i in range(per_class):
                buf = io.BytesIO()
                tiny_image(cls, i).save(buf, format="PNG")
                zf.writestr(f"{nested}{cls}/{i}.png", buf.getvalue())
    return path


def make_folder(root: Path, files: dict[str, bytes]) -> Path:
    """Writes {relative path: bytes} below `root` (folders made as needed) and returns `root`."""
    for name, payload in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(payload)
    return root


@pytest.fixture(scope="session")
def tiny_zip(tmp_path_factory) -> Path:
    return write_tiny_zip(tmp_path_factory.mktemp("data") / "tiny.zip")


def tiny_config(data: Path, *overrides: str) -> RunConfig:
    """A 2-epoch MobileNetV3-Small run at 32 px from its bundled weights on `data`, then `overrides`. It takes a
    third to two fifths of the time of a ResNet-18 from random weights (0.6-0.7 against 1.6-2.2 s a run on the Zen 3
    EPYC), whose weights file is seven times the size, and it learns the tiny classes on every seed, where the random
    ResNet-18 sometimes does not (`python benchmarks/tiny_runs.py`). A test of something ResNet-specific (AdaFilter,
    a layer's name) or of a start from random weights adds RANDOM_RESNET18 (resnet_config, resnet_cfg). OOD accuracy is
    off (it doubled the time of these runs): a test of the corruption suite or of a method's OOD figures says
    "eval.ood=true"."""
    base = [
        f"data.source={data}", "data.image_size=32", "backbone.name=mobilenet_v3_small", "backbone.pretrained=bundled",
        "train.epochs=2", "train.batch_size=8", "optim.lr=0.01", "eval.eval_batch_size=64", f"train.device={TEST_DEVICE}",
        "eval.ood=false",
    ]
    return apply_overrides(RunConfig(), base + list(overrides))


# The runs of tests of something ResNet-specific (AdaFilter, a layer's name, a ResNet-18 checkpoint) or of a
# start from random weights (what a run does without a pretrained start)
RANDOM_RESNET18 = ("backbone.name=resnet18", "backbone.pretrained=none")


@pytest.fixture
def tiny_cfg(tiny_zip):
    return lambda *overrides: tiny_config(tiny_zip, *overrides)


def resnet_config(data: Path, *overrides: str) -> RunConfig:
    """tiny_config's run on a ResNet-18 from random weights (RANDOM_RESNET18), then `overrides`."""
    return tiny_config(data, *RANDOM_RESNET18, *overrides)


@pytest.fixture
def resnet_cfg(tiny_zip):
    return lambda *overrides: resnet_config(tiny_zip, *overrides)


@contextlib.contextmanager
def dashboard_studio(root: Path, start_checkpoint: bool = False, per_class: int = 10):
    """A studio folder under `root` for one test module, with the dashboard's engine and the tiny
    dataset (`per_class` images a class) saved as an upload; with `start_checkpoint`, also a seeded random
    ResNet-18 saved as a safetensors upload (a "pretrained" start: WiSE-FT refuses random init, and no
    download is needed; a run from it names "backbone.name=resnet18"). Yields {"engine", "dir", "data", "ckpt"};
    the engine is shut down and the dashboard's caches cleared afterwards."""
    import streamlit as st
    from safetensors.torch import save_file

    from app.state import get_engine
    from engine.backbones import build_model

    patch = pytest.MonkeyPatch()
    patch.setenv("STUDIO_DATA_DIR", str(root / "studio"))
    eng = get_engine()
    try:
        studio = {"engine": eng, "dir": root / "studio", "ckpt": None,
                  "data": eng.save_upload(write_tiny_zip(root / "tiny.zip", per_class=per_class).read_bytes(), ".zip")}
        if start_checkpoint:
            torch.manual_seed(0)
            start, _ = build_model("resnet18", 3, "none")
            save_file({k: v.contiguous() for k, v in start.net.state_dict().items()}, str(root / "start.safetensors"))
            studio["ckpt"] = eng.save_upload((root / "start.safetensors").read_bytes(), ".safetensors")
        yield studio
    finally:
        eng.shutdown(5)
        st.cache_resource.clear()
        st.cache_data.clear()
        from app import datasets

        datasets._SHAPES.clear()  # the server's memory of checked datasets, as a restart clears it
        patch.undo()


def finished_run(eng, cfg: RunConfig, timeout: float = 300) -> str:
    """Submit `cfg` to the engine, wait for it and return the run id; fails the test with the run's
    error when it does not finish."""
    run_id = eng.submit(cfg)
    assert eng.wait(run_id, timeout) == "finished", eng.run_record(run_id).error
    return run_id


def texts(elements) -> list[str]:
    """The values of AppTest elements (st.info, st.error, st.title, …) as strings."""
    return [str(e.value) for e in elements]


def says_stopped_best(at, key: str, run_id: str, summary: dict, what: str) -> None:
    """A page's run picker (`key`) is on the stopped run `run_id`, labelled so, and the page's note says its best
    epoch so far (epoch 1, with the validation accuracy in `summary`'s history) `what` ("answers", ...)."""
    picker = at.selectbox(key=key)
    assert picker.value == run_id and "(stopped: its best epoch so far)" in picker.format_func(run_id)
    val = summary["history"][0]["val_acc"]
    assert any(i.startswith("This run was stopped after 1 epoch")
               and f"epoch 1, its best so far (validation {100 * val:.1f}%) {what}" in i
               for i in texts(at.info)), texts(at.info)


def no_problems(at) -> None:
    """Fails with the page's messages when an AppTest run raised or showed an error."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, texts(at.error)


def drop_view_choices(at) -> None:
    """Forget the view choices (Explain's methods and tab, Results' tab ...) that an AppTest session took
    from the user's newest draft: another test made them."""
    if "try_inputs" in at.session_state:
        kept = dict(at.session_state["try_inputs"] or {})
        kept.pop("choices", None)
        at.session_state["try_inputs"] = kept


def open_app_page(page: str, keep_view_choices: bool = True, **session_state):
    """An AppTest of the dashboard switched to `page` (e.g. "app_pages/explain.py"), with the given
    session-state keys set (None values skipped) before the page's first run; fails on any error.
    A new session starts from the user's newest draft, view choices included (Try it's models, the
    Explain methods, a Results tab): without `keep_view_choices`, those an earlier test made are
    dropped, so that the page opens as it first shows."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app" / "main.py"), default_timeout=180)
    at.run()
    if not keep_view_choices:
        drop_view_choices(at)
    at.switch_page(page)
    for key, value in session_state.items():
        if value is not None:
            at.session_state[key] = value
    at.run()
    no_problems(at)
    return at
