"""Where the project lives and how a user's path or upload reference is read (the bottom layer).

Configs keep paths relative to the project where they can, so a saved config works on another
machine with the same checkout.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from engine.errors import StudioError, UploadGone

PROJECT_DIR = Path(__file__).resolve().parent.parent
ASSETS_DIR = PROJECT_DIR / "assets"
SAMPLE_DATASET = "assets/sample_textures.zip"  # relative to the project: configs stay portable


def default_data_dir() -> Path:
    """The engine's folder (run store, runs, uploads, extracted data) when none is given: the
    environment variable STUDIO_DATA_DIR, else `runs/` in the project. The dashboard and the command
    line both use it, so that they read and write the same store."""
    return Path(os.environ.get("STUDIO_DATA_DIR") or PROJECT_DIR / "runs").expanduser().resolve()


UPLOAD_PREFIX = "upload:"  # `upload:<sha256 of the file>`: an upload, wherever this server keeps its uploads
UPLOAD_SUFFIXES = (".zip", ".safetensors", ".pt", ".pth", ".bin")
_UPLOAD_DIRS: list[Path] = []  # filled by each Engine (and the CLI) with its own uploads folder


def register_upload_dir(folder: str | Path) -> None:
    """Look for `upload:<sha256>` sources in `folder` (an engine's uploads folder) too."""
    folder = Path(folder).resolve()
    if folder not in _UPLOAD_DIRS:
        _UPLOAD_DIRS.insert(0, folder)


def upload_ref(sha256: str) -> str:
    """The portable reference to uploaded bytes of this SHA-256 (64 hex digits) kept in configs."""
    return UPLOAD_PREFIX + sha256.lower()


def upload_sha(ref: str) -> str:
    """The SHA-256 of an upload reference `upload:<sha256>`; "" for anything else (a path)."""
    return ref[len(UPLOAD_PREFIX):] if ref.startswith(UPLOAD_PREFIX) else ""


DATASETS_FOLDER = "datasets"  # in an engine's folder, beside uploads/: the extracted zips and the decode cache
EXTRACTED_DIGITS = 24  # engine.data extracts a zip into <datasets folder>/<first 24 digits of its SHA-256>


def _resolve_upload(ref: str) -> Path:
    """Where the server keeps the upload `upload:<sha256>` (files are named by the hash's first 32
    digits, as Engine.save_upload writes them); for a zip whose file is gone (moved off the server, a
    clean-up) but whose complete extraction the studio still holds (`datasets/<first 24 digits>` beside
    the uploads folder, renamed into place only once whole), that folder: it holds the same files, so a
    run reads the same images and splits, and the Data page keeps the upload. Raises StudioError when
    neither is there (any more)."""
    digest = ref[len(UPLOAD_PREFIX):].strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise StudioError(f"`{ref}` is not a valid upload reference (upload: and 64 hexadecimal digits).")
    folders = list(_UPLOAD_DIRS)
    if os.environ.get("STUDIO_DATA_DIR"):
        folders.append(Path(os.environ["STUDIO_DATA_DIR"]).expanduser() / "uploads")
    folders.append(PROJECT_DIR / "runs" / "uploads")
    for folder in folders:
        for suffix in UPLOAD_SUFFIXES:
            candidate = folder / (digest[:32] + suffix)
            if candidate.is_file():
                return candidate
    for folder in folders:
        extracted = folder.parent / DATASETS_FOLDER / digest[:EXTRACTED_DIGITS]
        if extracted.is_dir():
            return extracted
    raise UploadGone("The uploaded file this run uses is no longer in this studio's uploads folder: it was deleted, "
                      "or the run comes from another studio. Upload it again on the Data page.")


def resolve_path(p: str) -> Path:
    """A user path as given; a relative one that does not exist here is tried from the project root;
    `upload:<sha256>` is the upload of that content in this server's uploads folder, or a zip's extracted
    folder when only that is left (StudioError if both are gone)."""
    if p.startswith(UPLOAD_PREFIX):
        return _resolve_upload(p)
    path = Path(p).expanduser()
    if not path.is_absolute() and not path.exists() and (PROJECT_DIR / path).exists():
        return PROJECT_DIR / path
    return path
