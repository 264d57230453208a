"""Where the project lives and how a user's path is read (the bottom layer: imports nothing).

Configs keep paths relative to the project where they can, so a saved config works on another
machine with the same checkout.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
ASSETS_DIR = PROJECT_DIR / "assets"
SAMPLE_DATASET = "assets/sample_textures.zip"  # relative to the project: configs stay portable


def resolve_path(p: str) -> Path:
    """A user path as given; a relative one that does not exist here is tried from the project root.

    Raises nothing: a path that exists nowhere is returned as given, and the caller that opens it
    says which file is missing."""
    path = Path(p).expanduser()
    if not path.is_absolute() and not path.exists() and (PROJECT_DIR / path).exists():
        return PROJECT_DIR / path
    return path
