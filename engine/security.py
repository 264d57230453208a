"""Rules for a shared server: who may touch which run, which folders may be read, fair limits.

Checked by the engine (not only the page), so a crafted request through the UI cannot stop,
download or delete another user's run, read a folder outside the data roots, or starve the
other users of the machine.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import StudioError


class AccessDenied(StudioError):
    """The current user may not do this (another user's run, a folder outside the data roots)."""


class LimitExceeded(StudioError):
    """A fair-use limit was hit; the message says which and what to do."""


@dataclass(frozen=True)
class Limits:
    """Fair-use limits for a shared server (0 = no limit). Read from STUDIO_* variables."""

    max_active_runs_per_user: int = 3  # queued + running
    max_upload_bytes: int = 500 * 1024 ** 2
    max_dataset_images: int = 50_000
    max_image_pixels: int = 50_000_000  # per image, before decoding (decompression bombs too)
    max_epoch_images: int = 5_000_000  # epochs x training images: the compute budget of one run
    max_runs_disk_bytes: int = 20 * 1024 ** 3  # all run folders together; oldest unpinned cleaned first

    @staticmethod
    def from_env(env: dict | None = None) -> "Limits":
        env = os.environ if env is None else env
        kwargs = {}
        for f in Limits.__dataclass_fields__:
            key = "STUDIO_" + f.upper()
            if key in env:
                try:
                    kwargs[f] = int(float(env[key]))
                except ValueError:
                    raise StudioError(f"{key} must be a whole number (got {env[key]!r}).") from None
        return Limits(**kwargs)


def check_password(given: str, expected: str) -> bool:
    """Constant-time comparison: the time taken does not reveal how much of the guess was right."""
    if not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


@dataclass(frozen=True)
class DataRoots:
    """Folders on the server that the "folder on the server" data source may read."""

    roots: tuple[Path, ...] = field(default_factory=tuple)

    @staticmethod
    def from_env(default: tuple[Path, ...] = ()) -> "DataRoots":
        raw = os.environ.get("STUDIO_DATA_ROOTS", "")
        roots = tuple(Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p.strip())
        return DataRoots(roots or tuple(Path(p).resolve() for p in default))

    def resolve(self, user_path: str) -> Path:
        """The real path of `user_path` if it lies inside a data root, else AccessDenied.

        The path is fully resolved first (every symbolic link followed), so a link inside an
        allowed root that points outside it is refused too.
        """
        if not self.roots:
            raise AccessDenied("Reading folders on the server is switched off here. Upload a zip instead, "
                               "or ask the administrator to set STUDIO_DATA_ROOTS.")
        raw = Path(user_path).expanduser()
        candidates = [raw] if raw.is_absolute() else [root / raw for root in self.roots]
        for cand in candidates:
            real = cand.resolve()
            if any(real == root or root in real.parents for root in self.roots):
                if not real.exists():
                    raise StudioError(f"The folder {user_path} does not exist.")
                # every file inside must resolve inside the roots too (links to elsewhere are refused)
                for p in ([real] if real.is_file() else real.rglob("*")):
                    if p.is_symlink():
                        target = p.resolve()
                        if not any(target == r or r in target.parents for r in self.roots):
                            raise AccessDenied(f"{p.name} inside {user_path} links to a place outside the allowed "
                                               "data folders, so the folder is refused.")
                return real
        allowed = ", ".join(str(r) for r in self.roots)
        raise AccessDenied(f"{user_path} is outside the folders this server may read ({allowed}).")
