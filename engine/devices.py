"""Which device a run trains on and in which precision (helpers: no project imports but errors).

Sources: PyTorch's autocast documentation (bf16 on CUDA when supported, fp16 with a GradScaler
otherwise; CPU autocast in bf16); Intel's guidance for CPU training (bf16 pays on AVX512-BF16 / AMX
CPUs, with channels_last); torchrun's LOCAL_RANK convention (one GPU per process).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import platform
import time
from dataclasses import dataclass, field as dataclass_field
from pathlib import Path

import torch

from engine.config import ADVANCED_TITLE
from engine.errors import StudioError


def pick_device(name: str, distributed: bool = False) -> torch.device:
    """The torch device for a config's `train.device` (auto | cpu | cuda | cuda:N | mps).

    Under torchrun (`distributed`), `auto`/`cuda` means the GPU of this process's LOCAL_RANK.
    Raises StudioError when the asked-for device does not exist here, saying what to use instead."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))  # torchrun: one GPU per process
    if name in ("auto", "cuda") and torch.cuda.is_available() and distributed:
        if local_rank >= torch.cuda.device_count():
            raise StudioError(
                f"This machine has {torch.cuda.device_count()} GPU(s) but torchrun started a process for GPU "
                f"{local_rank}: use --nproc_per_node {torch.cuda.device_count()} (one process per GPU), "
                "or --device cpu to train with CPU processes."
            )
        return torch.device(f"cuda:{local_rank}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise StudioError("The config asks for a CUDA GPU but none is available here. Use device: auto or cpu.")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise StudioError("The config asks for Apple's MPS device but it is not available here. Use device: auto.")
    return torch.device(name)


def pick_amp(mode: str, device: torch.device, image_size: int | None = None) -> torch.dtype | None:
    """The autocast dtype for `train.amp` (auto | bf16 | fp16 | off) on `device`; None = fp32.

    CUDA: bf16 where supported, else fp16 (with a GradScaler). CPU: an explicit bf16 is used as
    asked; auto means bf16 where this CPU has bf16 instructions and a short measurement found it
    faster at the run's `image_size` px (`cpu_precision`), else fp32. Raises StudioError for fp16
    on the CPU (no fast fp16 training kernels there, and its gradients need loss scaling). MPS: fp32."""
    if mode == "off" or device.type not in ("cuda", "cpu"):
        return None
    if device.type == "cpu":
        if mode == "fp16":
            raise StudioError("Mixed precision fp16 is for GPUs: training on the CPU, choose bf16 (fast on CPUs "
                              "with bfloat16 support), auto (bf16 where it is faster here) or off.")
        if mode == "bf16":
            return torch.bfloat16
        return torch.bfloat16 if cpu_precision(precision_size(image_size)).bf16 else None
    if mode == "fp16":
        return torch.float16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast_ctx(device: torch.device, amp_dtype: torch.dtype | None):
    """torch.autocast for `device` in `amp_dtype`, or a disabled one (fp32) when it is None."""
    if amp_dtype is None:
        return torch.autocast(device_type=device.type, enabled=False)
    return torch.autocast(device_type=device.type, dtype=amp_dtype)


# ---- precision on the CPU -----------------------------------------------------------------------
# bf16 autocast pays on CPUs with bfloat16 instructions (x86 AVX512-BF16 / AMX, Arm BF16): oneDNN
# then runs convolutions in bf16. Without them autocast emulates bf16 and is slower than fp32.
# Even with them the gain depends on the CPU and the model (bf16 in the default NCHW layout was
# twice slower than fp32 at 64 px on a Xeon here; with channels_last on par or faster), so the
# capability only says "worth measuring"; a short measurement on a ResNet-18 stem decides, once
# per machine, cached in a small JSON file.

CPU_PRECISION_ENV = "STUDIO_CPU_PRECISION"  # auto (measure) | bf16 | fp32: skip the measurement
EVAL_LAYOUT_ENV = "STUDIO_EVAL_LAYOUT"  # auto (measure) | nchw | channels_last: evaluation's layout in fp32
BF16_CPU_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}  # /proc/cpuinfo: x86 flags, Arm "Features"
MIN_GAIN = 1.10  # a precision or layout must be this much faster per step to be chosen (noise margin)


@dataclass(frozen=True)
class CpuPrecision:
    """What `auto` means on this CPU: `bf16` autocast or fp32, and channels_last in fp32 (bf16
    always goes with channels_last on the CPU). `source`: why (no_bf16, measured, cache, env);
    `step_ms`: the measured milliseconds per training step of each variant (empty if not measured)."""

    bf16: bool
    channels_last_fp32: bool
    source: str
    step_ms: dict[str, float] = dataclass_field(default_factory=dict)


def cpu_info() -> tuple[str, set[str]]:
    """The CPU's model name and its feature flags, from /proc/cpuinfo (empty where there is none)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key == "model name" and name in ("", platform.processor() or platform.machine()):
                name = value.strip()
            elif key in ("flags", "features"):
                flags |= set(value.split())
    except OSError:
        pass
    return name, flags


def cpu_has_bf16(flags: set[str] | None = None, capability: str | None = None) -> bool:
    """Whether this CPU has bfloat16 instructions: its flags (/proc/cpuinfo), or PyTorch's CPU
    capability naming them (torch.backends.cpu.get_cpu_capability(), e.g. "AVX512_BF16")."""
    flags = cpu_info()[1] if flags is None else flags
    capability = torch.backends.cpu.get_cpu_capability() if capability is None else capability
    return bool(flags & BF16_CPU_FLAGS) or "BF16" in capability.upper()


def cpu_precision_cache() -> Path:
    """The per-machine cache of measured CPU precision: $STUDIO_CACHE_DIR, else $XDG_CACHE_HOME or
    ~/.cache, under finetune-studio/cpu_precision.json (never inside the project)."""
    base = os.environ.get("STUDIO_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "finetune-studio" / "cpu_precision.json"


def _cache_key(name: str, flags: set[str], image_size: int, what: str = "resnet18") -> str:
    """The cache entry of a measurement of `what` ("resnet18": its training step) at `image_size` px on
    the CPU `name` with `flags`, this torch version and thread count."""
    digest = hashlib.sha256(" ".join(sorted(flags)).encode()).hexdigest()[:12]
    return (f"{name} | {digest} | torch {torch.__version__} | {torch.get_num_threads()} threads | "
            f"{what} at {image_size} px")


def precision_size(image_size: int | None) -> int:
    """The image size the precision is measured at for a run at `image_size` px: rounded to a
    multiple of 16 within 32-96 (None: 64). The gain of bf16 grows with the size (whole ResNet-18,
    batch 32, 2 threads, this project's Xeon: 0.80x at 32 px, 1.12x at 64, 1.50x at 96), so larger
    runs follow the 96 px measurement, which keeps the first-run cost near 10 s."""
    if not image_size:
        return 64
    return int(min(96, max(32, 16 * round(image_size / 16))))


@functools.lru_cache(maxsize=None)
def cpu_precision(image_size: int = 64) -> CpuPrecision:
    """What `train.amp: auto` and `train.channels_last` mean on this CPU for images of `image_size`
    px (see `precision_size`), decided once per process and size: $STUDIO_CPU_PRECISION when set
    (bf16 | fp32), fp32 on a CPU without bf16 instructions, else the cached measurement for this
    CPU, torch version, thread count and size, else a new measurement (a few seconds, saved to
    `cpu_precision_cache()`; a cache that cannot be written is skipped)."""
    forced = os.environ.get(CPU_PRECISION_ENV, "auto").strip().lower()
    if forced in ("bf16", "fp32"):
        return CpuPrecision(forced == "bf16", False, "env")
    name, flags = cpu_info()
    if not cpu_has_bf16(flags):
        return CpuPrecision(False, False, "no_bf16")
    step_ms, source = cached_measurement(_cache_key(name, flags, image_size), "step_ms",
                                         lambda: measure_cpu_precision(image_size))
    return choose_cpu_precision(step_ms, source)


def cached_measurement(key: str, field: str, measure) -> tuple[dict, str]:
    """(measurement, "cache" | "measured"): the dict `field` of entry `key` in `cpu_precision_cache()`,
    else `measure()` (its result saved there under `key`; a cache that cannot be read or written is
    skipped). Raises what `measure` raises."""
    path = cpu_precision_cache()
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = {}
    if isinstance(cached.get(key), dict) and isinstance(cached[key].get(field), dict):
        return cached[key][field], "cache"
    value = measure()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**cached, key: {field: value, "measured_at": time.time()}}, indent=1))
        tmp.replace(path)
    except OSError:
        pass
    return value, "measured"


def choose_cpu_precision(step_ms: dict[str, float], source: str) -> CpuPrecision:
    """bf16 when its step (with channels_last) is MIN_GAIN faster than the best fp32 step;
    channels_last in fp32 when it is MIN_GAIN faster than the default layout."""
    fp32 = step_ms["fp32"]
    fp32_cl = step_ms.get("fp32_channels_last", fp32)
    return CpuPrecision(bf16=min(fp32, fp32_cl) >= MIN_GAIN * step_ms["bf16_channels_last"],
                        channels_last_fp32=fp32 >= MIN_GAIN * fp32_cl, source=source, step_ms=dict(step_ms))


def measure_cpu_precision(image_size: int = 64, batch: int = 32, rounds: int = 5) -> dict[str, float]:
    """Milliseconds per training step (forward, backward, SGD) of a whole ResNet-18 on random
    `image_size` px images, in fp32, fp32 channels_last and bf16 channels_last; the variants
    alternate and each keeps its fastest round, so a busy machine slows all alike. The whole
    network, at the run's size: a stem-and-two-stages measurement at 48 px favoured bf16 while the
    whole network at 32 px trained at 0.78x the fp32 speed in it (README, Against the peers)."""
    import torchvision  # only when measuring: the helpers layer stays light

    g = torch.Generator().manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.rand(batch, 3, image_size, image_size, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    variants = {"fp32": (None, False), "fp32_channels_last": (None, True),
                "bf16_channels_last": (torch.bfloat16, True)}
    best = {k: math.inf for k in variants}
    for r_i in range(rounds + 1):  # round 0 is warm-up (oneDNN builds its kernels)
        for name, (dtype, cl) in variants.items():
            fmt = torch.channels_last if cl else torch.contiguous_format
            model.to(memory_format=fmt)
            t0 = time.perf_counter()
            with autocast_ctx(torch.device("cpu"), dtype):
                loss = torch.nn.functional.cross_entropy(model(x.contiguous(memory_format=fmt)).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if r_i:
                best[name] = min(best[name], 1000 * (time.perf_counter() - t0))
    return best


def forward_layout_size(image_size: int | None) -> int:
    """The image size the evaluation layout is measured at for images of `image_size` px: rounded to
    a multiple of 16 within 32-224 (None: 64). The gain of channels_last grows with the size
    (ResNet-18 forward, fp32, 2-core AMD EPYC: 0.97x at 32 px, 1.16x at 64, 1.37x at 224)."""
    if not image_size:
        return 64
    return int(min(224, max(32, 16 * round(image_size / 16))))


@functools.lru_cache(maxsize=None)
def cpu_eval_channels_last(backbone: str, image_size: int = 64) -> bool:
    """Whether evaluating backbone `backbone` (an engine.backbones.BACKBONES name) in fp32 on this CPU
    goes channels_last for images of `image_size` px (see `forward_layout_size`): where a forward
    pass measured MIN_GAIN faster so (`measure_forward_layout`). The gain depends on the CPU, the
    network and the size (1.44x for ResNet-18 at 64 px on a Zen 3 EPYC, 0.84x for MobileNetV3-Small
    at 224 px and 4.1x at 32 px on another EPYC: benchmarks/results/inference_layout_*.txt), so it is
    measured once per CPU, torch version, thread count, backbone and size (1-3 s here), cached
    with `cpu_precision`'s measurements. $STUDIO_EVAL_LAYOUT=nchw|channels_last decides without
    measuring; else $STUDIO_CPU_PRECISION=fp32 keeps NCHW without measuring (the test suite), bf16
    gives channels_last (bf16 models are channels_last on the CPU anyway).
    Raises nothing: a measurement that fails keeps NCHW."""
    layout = os.environ.get(EVAL_LAYOUT_ENV, "auto").strip().lower()
    if layout in ("nchw", "channels_last"):
        return layout == "channels_last"
    forced = os.environ.get(CPU_PRECISION_ENV, "auto").strip().lower()
    if forced in ("bf16", "fp32"):
        return forced == "bf16"
    name, flags = cpu_info()
    size = forward_layout_size(image_size)
    try:
        ms, _ = cached_measurement(_cache_key(name, flags, size, f"{backbone} forward pass"), "forward_ms",
                                   lambda: measure_forward_layout(backbone, size))
        return ms["nchw"] >= MIN_GAIN * ms["channels_last"]
    except Exception:  # an architecture that cannot run at this size, a kernel missing, a bad entry: NCHW
        return False


def measure_forward_layout(backbone: str, image_size: int, batch: int = 32, rounds: int = 3) -> dict[str, float]:
    """Milliseconds per no-grad fp32 forward pass of `backbone` (random weights, evaluation mode, 10
    classes) on `batch` random `image_size` px images, in the default layout ("nchw") and in
    channels_last; the two alternate after a warm-up round and each keeps its fastest round.
    Raises what the network raises for a size it cannot take."""
    from engine.backbones import build_model

    model, _ = build_model(backbone, 10, "none")
    model.eval()
    x = torch.rand(batch, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    best = {"nchw": math.inf, "channels_last": math.inf}
    with torch.no_grad():
        for r_i in range(rounds + 1):  # round 0 is warm-up (oneDNN builds its kernels)
            for layout, fmt in (("nchw", torch.contiguous_format), ("channels_last", torch.channels_last)):
                model.to(memory_format=fmt)
                t0 = time.perf_counter()
                model(x.contiguous(memory_format=fmt))
                if r_i:
                    best[layout] = min(best[layout], 1000 * (time.perf_counter() - t0))
    return best


def is_channels_last(model: torch.nn.Module) -> bool:
    """Whether `model`'s convolution weights are in channels_last (its first 4-D parameter whose
    layout tells: more than one input channel and a kernel larger than 1x1)."""
    for p in model.parameters():
        if p.dim() == 4 and p.shape[1] > 1 and p.shape[2] * p.shape[3] > 1:
            return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return False


@contextlib.contextmanager
def eval_layout(model: torch.nn.Module, device: torch.device, amp_dtype: torch.dtype | None, image_size: int):
    """Within the block, `model` (an engine.backbones.Classifier) is in channels_last where that
    evaluates faster on this CPU (`cpu_eval_channels_last`, fp32 only: bf16 models are already
    channels_last), then back in its own layout; elsewhere (CUDA, a model already channels_last,
    a model without `backbone_name`, a distributed run whose other processes share its buffers)
    nothing changes. The weights' values are untouched: an evaluation answers the same, faster."""
    convert = (device.type == "cpu" and amp_dtype is None and getattr(model, "backbone_name", None)
               and not (torch.distributed.is_available() and torch.distributed.is_initialized())
               and not is_channels_last(model) and cpu_eval_channels_last(model.backbone_name, image_size))
    if convert:
        model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        if convert:
            model.to(memory_format=torch.contiguous_format)


def use_channels_last(requested: bool, device: torch.device, amp_dtype: torch.dtype | None,
                      image_size: int | None = None) -> bool:
    """Whether the model and its inputs go channels_last: on CUDA as `train.channels_last` says; on
    the CPU only where it was measured faster (always with bf16, whose CPU kernels want it)."""
    if not requested or device.type not in ("cuda", "cpu"):
        return False
    if device.type == "cuda":
        return True
    return amp_dtype == torch.bfloat16 or cpu_precision(precision_size(image_size)).channels_last_fp32


def inference_channels_last(requested: bool, device: torch.device, amp_dtype: torch.dtype | None) -> bool:
    """Whether a model answering images without training (`engine.predict.Predictor`) goes
    channels_last: where `train.channels_last` allows it, on CUDA as in training (not measured for
    answering alone), and on the CPU when it answers in bf16 autocast. A bf16 forward pass ran
    1.31-1.61x faster in channels_last than in NCHW here (ResNet-18 and MobileNetV3-Small at 32, 64
    and 224 px; 2-core AMD EPYC), while fp32 ranged from 0.84x (MobileNetV3-Small at 224 px) to 4.1x
    (`benchmarks/inference_layout.py`), so fp32 stays NCHW on the CPU. Never measures; raises nothing."""
    if not requested or device.type not in ("cuda", "cpu"):
        return False
    return device.type == "cuda" or amp_dtype == torch.bfloat16


def run_amp_dtype(summary: dict, requested: str, device: torch.device, image_size: int) -> torch.dtype | None:
    """The autocast dtype to answer in for a finished run (None: float32), so that Explain, Try it and
    `predict` give the answers its Results report: the precision its summary records (`precision`, e.g.
    "bfloat16") when `device` is the kind it ran on, else `pick_amp`'s choice here (a GPU run's fp16 on
    a CPU, say); a summary without both fields also falls back to `pick_amp`. Raises nothing."""
    if not evaluated_precision_here(summary, device):
        return pick_amp(requested, device, image_size)
    recorded = summary["precision"]
    return None if recorded == "float32" else getattr(torch, recorded)


def evaluated_precision_here(summary: dict, device: torch.device) -> bool:
    """Whether `run_amp_dtype` answers on `device` in the precision the run was evaluated in: the summary records
    its device, of `device`'s kind, and its precision (a torch dtype's name). False for a run from before precision
    was recorded, or from another kind of device (then `pick_amp`'s choice here): "as the run was evaluated" is not
    said of it. Raises nothing."""
    ran_on, recorded = str(summary.get("device") or "").split(":")[0], summary.get("precision")
    return ran_on == device.type and isinstance(recorded, str) and isinstance(getattr(torch, recorded, None),
                                                                             torch.dtype)


# ---- CPU threads ----------------------------------------------------------------------------------
# PyTorch's default is one thread per physical core. When other programs keep cores busy, its OpenMP
# threads wait on each other: on a 2-core CPU with one core busy, a 2-thread run trained at 12-16
# img/s against 97-102 img/s with one thread (ResNet-18, 64 px; benchmarks/threads_under_load.py).
DEFAULT_CPU_THREADS = torch.get_num_threads()  # at import: PyTorch's default, one per physical core it sees


@functools.lru_cache(maxsize=None)
def usable_cpus() -> int:
    """Logical CPUs this process may keep busy: the fewest of the machine's, this process's CPU affinity
    (taskset), a container's CPU quota (Linux cgroups v1/v2, e.g. `docker run --cpus=2`, rounded up) and
    the LOKY_MAX_CPU_COUNT environment variable, as joblib's loky `cpu_count` reads them; os.cpu_count()
    when it cannot tell. At least 1; cached per process. Raises nothing.

    PyTorch's default thread count sees neither the affinity nor the quota: in a container allowed 2
    CPUs on a 16-core host it starts 16 threads that take turns on 2 CPUs, each step waiting on the
    slowest (benchmarks/threads_under_load.py measures what waiting threads cost)."""
    try:  # loky's count, not joblib.cpu_count: that one says 1 where joblib cannot use processes (no /dev/shm)
        from joblib.externals.loky import cpu_count

        return max(1, int(cpu_count()))
    except Exception:  # joblib missing or its probes failing: the machine's count
        return max(1, os.cpu_count() or 1)


def default_cpu_threads() -> int:
    """PyTorch's default intra-op thread count at import, capped at `usable_cpus()`: the most a run's
    automatic thread choice starts from (the sidebar's "up to N")."""
    return max(1, min(DEFAULT_CPU_THREADS, usable_cpus()))


def fit_threads_to_cpus() -> int:
    """Lower torch's intra-op thread count to `usable_cpus()` when it is above it (never raises it);
    returns the count now in use. The command line and the dashboard call it once at start, so that
    predicting, explaining and exporting do not oversubscribe a container's CPU quota either."""
    if torch.get_num_threads() > usable_cpus():
        torch.set_num_threads(usable_cpus())
    return torch.get_num_threads()


THREAD_SAMPLE_S = 0.3  # the shortest window the load is measured over
# A thread is given up when other programs keep more than `keep` of a CPU busy. Before the run a busy
# program shows as 0.84-0.92 of a CPU (a browser drawing the page as 0.5-0.7: the threads are kept);
# during training the run's own threads take their share, so one busy program shows as about 0.66.
KEEP_AT_START, KEEP_DURING_RUN = 0.75, 0.6
# The first check during the run, this many seconds into its first epoch: a burst at the start (the
# dashboard's browser drawing the Train page after the click on Start held a thread back in 3 of 4
# runs of benchmarks/dashboard_refresh.py) then costs seconds, not a long first epoch, on fewer threads.
EARLY_THREADS_CHECK_S = 2.0


@dataclass(frozen=True)
class CpuThreads:
    """`threads` for this run; `limit`: the most it may use (the thread count before the run);
    `busy`: logical CPUs that other programs kept busy during the sample (0 when not measured), out of
    the `cpus` logical CPUs this process may use."""
    threads: int
    busy: float
    limit: int
    cpus: int = 0
    when: str = "when the run started"  # or "during epoch N": what the measurement covered

    def note(self) -> str:
        """Plain words for the UI and the run summary; empty when nothing was held back."""
        if self.threads >= self.limit:
            return ""
        # short: a class reads it under the live figures (a paragraph of how the count is checked was too much)
        return (f"Training on {self.threads} of {self.limit} CPU threads: other programs kept about "
                f"{self.busy:.1f} of the {self.cpus} CPUs busy {self.when}, and a thread waiting for a busy CPU "
                "slows every step. The count is checked again as the run goes; another count can end a few points "
                f"apart with the same seed. To choose it: CPU threads, under {ADVANCED_TITLE} on the Model and "
                "methods page (train.threads).")


class LoadSample:
    """CPU time of the CPUs this process may use and of the process itself, from now on (psutil);
    `busy()` is the number of CPUs other programs kept busy over the window. Start it before the
    run's setup (decoding, building the model) and the setup's own time is the window. Raises
    ImportError/OSError/psutil errors when the load cannot be read."""

    def __init__(self):
        import psutil

        self._psutil, self._me = psutil, psutil.Process()
        n = len(psutil.cpu_times(percpu=True))
        allowed = self._me.cpu_affinity() if hasattr(self._me, "cpu_affinity") else []
        # /proc/stat numbers the CPUs it lists from 0; affinity gives CPU ids. They agree only when every
        # CPU is listed (none offline, no renumbering container); otherwise all listed CPUs are counted.
        self.cpus = allowed if allowed and n == psutil.cpu_count() and max(allowed) < n else list(range(n))
        self._t0, self._cpu0, self._own0 = time.perf_counter(), self._busy_seconds(), self._own_seconds()

    def _busy_seconds(self) -> float:
        times = self._psutil.cpu_times(percpu=True)
        busy = 0.0
        for i in self.cpus:  # as psutil's own busy time: guest time is already inside user and nice
            t = times[i]
            busy += (sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0)
                     - getattr(t, "guest_nice", 0.0))
        return busy

    def _own_seconds(self) -> float:
        t = self._me.cpu_times()
        return t.user + t.system

    def busy(self, min_s: float = THREAD_SAMPLE_S) -> float:
        """CPUs other programs kept busy since the start (waits until `min_s` seconds have passed)."""
        time.sleep(max(0.0, min_s - (time.perf_counter() - self._t0)))
        wall = time.perf_counter() - self._t0
        others = (self._busy_seconds() - self._cpu0) - (self._own_seconds() - self._own0)
        return max(0.0, others / wall)


@contextlib.contextmanager
def kept_threads():
    """Restores torch's intra-op thread count on exit (a run may set its own; the caller's comes back)."""
    before = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(before)


def start_load_sample() -> LoadSample | None:
    """A LoadSample from now, or None when the load cannot be read here (no psutil, no /proc)."""
    try:
        return LoadSample()
    except Exception:
        return None


def auto_cpu_threads(limit: int | None = None, sample: LoadSample | None = None, busy: float | None = None,
                     cpus: int | None = None, min_s: float = THREAD_SAMPLE_S, keep: float = KEEP_AT_START,
                     when: str = "when the run started", threads_per_cpu: float | None = None) -> CpuThreads:
    """CPU threads for a run whose `train.threads` is 0 (automatic): `limit` (default: the current
    torch.get_num_threads(), PyTorch's one per physical core unless the caller set it, capped at
    `usable_cpus()`: a container's CPU quota and this process's affinity), less the CPUs
    other programs keep busy, measured by `sample` (started earlier, e.g. before the run's setup) or
    over `min_s` seconds from now; this process's own CPU time is not counted. `busy` and `cpus`
    (logical CPUs) skip the measurement (tests). A limit of 1 is never measured. Threads =
    floor(free CPUs in threads + `keep`): a thread is given up only for more than `keep` of a CPU
    kept busy. Never fewer than 1 thread or more than `limit`; when the load cannot be read the
    limit is kept. `when` words the measurement for the note. `threads_per_cpu`: PyTorch threads per
    logical CPU (default: its uncapped thread count over the CPUs, e.g. 0.5 with SMT); tests set it.
    Raises nothing."""
    uncapped = max(1, torch.get_num_threads() if limit is None else limit)  # threads before any CPU cap
    limit = max(1, min(uncapped, usable_cpus()) if limit is None else limit)
    if limit == 1:
        return CpuThreads(1, 0.0, 1, cpus or 1)
    if busy is None:
        sample = sample or start_load_sample()
        try:
            busy, cpus = sample.busy(min_s), len(sample.cpus)
        except Exception:  # no sample, or the load cannot be read here
            return CpuThreads(limit, 0.0, limit, cpus or limit, when)
    cpus = cpus or limit
    # logical CPUs to PyTorch's (physical-core) threads: its uncapped count over the CPUs; under a quota
    # the cap then applies to what is free on the machine (limit / cpus would count 16 free CPUs as 2)
    ratio = min(1.0, max(uncapped, DEFAULT_CPU_THREADS) / cpus) if threads_per_cpu is None else threads_per_cpu
    free = max(0.0, cpus - busy) * ratio
    return CpuThreads(max(1, min(limit, math.floor(free + keep))), round(busy, 2), limit, cpus, when)
