"""Checkpoints and run-folder files written atomically (the helpers under every layer that saves).

A run folder holds `config.yaml`, `best.safetensors` and `last.safetensors` (state dicts with
the run config in their metadata, never pickled modules), `summary.json`, and whatever a
method exports. Run ids are made by the engine (time + random hex), never from user input.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from engine.errors import StudioError


def new_run_id() -> str:
    """A new run id: the local time (YYYYmmdd-HHMMSS) and 6 random hex digits, e.g. "20261205-192049-3fa2c1"; sorts
    by creation time."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def _proc_umask() -> int | None:
    """The process's umask from Linux's /proc/self/status (read-only, safe beside other threads), or None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _umask_by_setting() -> int:
    """The umask read the os module's only way, setting it and putting it back: once, at import."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_IMPORT_UMASK = mask if (mask := _proc_umask()) is not None else _umask_by_setting()


def _umask() -> int:
    """The umask now where the kernel says it (Linux), else the one at import: setting it to read it
    would race with threads creating files."""
    mask = _proc_umask()
    return _IMPORT_UMASK if mask is None else mask


def save_checkpoint(path: Path, state_dict: dict[str, torch.Tensor], config: Any, extra: dict | None = None) -> None:
    """safetensors state dict + the run config (and small extras) as string metadata."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    # safetensors refuses shared storage; clone tensors that alias another.
    seen: dict[int, str] = {}
    for k, v in tensors.items():
        ptr = v.untyped_storage().data_ptr() if v.numel() else -1
        if ptr in seen and ptr != -1:
            tensors[k] = v.clone()
        seen[ptr] = k
    meta = {"config": config.to_json() if hasattr(config, "to_json") else json.dumps(config)}
    for k, v in (extra or {}).items():
        meta[k] = json.dumps(v)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    # safetensors creates its file owner-only (0600); give it the mode every other file the studio
    # writes has (0666 less the umask), so a checkpoint is shared as its model card is
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)  # atomic: a crash never leaves half a checkpoint


def read_metadata(path: Path) -> dict[str, str]:
    """A safetensors file's metadata as written (JSON strings by key: `config`, `classes`, ...), read
    from its header alone. Raises StudioError for a file that is not a readable safetensors file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:
        raise StudioError(f"{Path(path).name} is not a readable checkpoint ({exc}).") from None


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, metadata with `config` parsed). Raises StudioError for an unreadable file."""
    meta = read_metadata(path)
    try:
        state = load_file(str(path))
    except Exception as exc:
        raise StudioError(f"{Path(path).name} is not a readable checkpoint ({exc}).") from None
    parsed = {k: json.loads(v) for k, v in meta.items()}
    return state, parsed


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, torch.Tensor):
        return _jsonable(x.tolist())
    return x


def write_json(path: Path, obj: Any) -> None:
    """Write `obj` as indented JSON to `path` atomically (a temporary file beside it, then os.replace), so a reader
    never sees half a file; tensors become lists and NaN or infinite floats null. Raises OSError
    when the folder cannot be written."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(_jsonable(obj), indent=2))
    os.replace(tmp, path)
