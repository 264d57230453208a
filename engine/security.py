"""Rules for a shared server: who may touch which run, which folders may be read, fair limits.

Checked by the engine (not only the page), so a crafted request through the UI cannot stop,
download or delete another user's run, read a folder outside the data roots, or starve the
other users of the machine.
"""

from __future__ import annotations

import hmac
import os
import threading
import time
import unicodedata
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
        """Limits read from STUDIO_<FIELD> variables of `env` (default: os.environ; e.g. STUDIO_MAX_UPLOAD_BYTES),
        the defaults for those not set. Raises StudioError for a value that is not a number."""
        env = os.environ if env is None else env
        kwargs = {}
        for f in Limits.__dataclass_fields__:
            key = "STUDIO_" + f.upper()
            if key in env:
                try:
                    kwargs[f] = int(float(env[key]))
                except (ValueError, OverflowError):  # "ten", or "inf" and "1e400", which no int holds
                    raise StudioError(f"{key} must be a whole number (got {env[key]!r}).") from None
        return Limits(**kwargs)


LOGIN_TTL_S = 12 * 3600  # a sign-in kept in the browser lasts a school day


def login_key(secret_file: Path, password: str) -> bytes:
    """The key that signs this server's sign-ins: HMAC-SHA256 of the shared `password` under a random
    32-byte secret kept in `secret_file` (created on first use, mode 0600), so that changing the
    password or deleting the file ends every kept sign-in. Raises OSError when the file can be neither
    read nor created."""
    try:
        secret = secret_file.read_bytes()
    except FileNotFoundError:
        secret_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(32))
        secret = secret_file.read_bytes()
    return hmac.new(secret, password.encode("utf-8"), "sha256").digest()


def login_token(user: str, key: bytes, now: float, ttl_s: float = LOGIN_TTL_S) -> str:
    """A signed sign-in for `user`, valid until `now` + `ttl_s` (seconds since the epoch):
    "<user as URL-safe base64>.<expiry, whole seconds>.<HMAC-SHA256 of both, hex>" (RFC 2104)."""
    import base64

    body = f"{base64.urlsafe_b64encode(user.encode('utf-8')).decode('ascii')}.{int(now + ttl_s)}"
    return f"{body}.{hmac.new(key, body.encode('ascii'), 'sha256').hexdigest()}"


def login_user(token: str | None, key: bytes, now: float) -> str | None:
    """The user a `login_token` signs for, or None when the token is missing, malformed, signed with
    another key (forged, or the password changed) or expired. The signature is compared in constant
    time. Raises nothing."""
    import base64
    import binascii

    try:
        name, expiry, signature = str(token or "").split(".")
        body = f"{name}.{expiry}"
        if not hmac.compare_digest(signature, hmac.new(key, body.encode("ascii"), "sha256").hexdigest()):
            return None
        if int(expiry) < now:
            return None
        return base64.urlsafe_b64decode(name.encode("ascii")).decode("utf-8") or None
    except (ValueError, TypeError, UnicodeError, binascii.Error):  # TypeError: a non-ASCII signature
        return None


def check_password(given: str, expected: str) -> bool:
    """Constant-time comparison: the time taken does not reveal how much of the guess was right."""
    if not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


NAME_PUNCTUATION = " .@-_'\u2019"  # besides letters, digits and their accents: O'Brien, Anne-Marie, a.b@school.org


def name_char(c: str) -> bool:
    """Whether a user name may hold the character `c`: a letter or digit of any script, a combining mark
    (the vowel signs of Hindi or Tamil, an accent typed separately), or one of NAME_PUNCTUATION."""
    return c.isalnum() or unicodedata.category(c).startswith("M") or c in NAME_PUNCTUATION


def user_name(typed: str) -> tuple[str, str]:
    """(the user name `typed` stands for, "" or a refusal in words): in Unicode's composed form (NFC: "Zoë"
    typed as e + accent is the Zoë typed as one letter), trimmed; refused when empty or holding characters
    `name_char` refuses (rewriting "<b>x</b>" into "bxb" would put two typed names in one account).
    Raises nothing."""
    name = unicodedata.normalize("NFC", str(typed)).strip()
    if not name:
        return "", "Please type your name."
    odd = "".join(dict.fromkeys(c for c in name if not name_char(c)))
    if odd:
        return "", (f"A name may use letters, digits, spaces, dots, @, dashes, underscores and apostrophes; "
                    f"yours has {' '.join(odd)}. Please type it without them.")
    return name, ""


class SignInThrottle:
    """Wrong passwords counted per (client, name) and per client (a client is an address, or "" when unknown):
    after `attempts` wrong ones for one name within `window_s` seconds, that name from that client waits
    `wait_s` seconds before its next try; after `address_attempts` wrong ones from the client, whatever the
    names, the whole client waits. A class behind one school address thus shares only the high address count:
    one person guessing makes their own name wait, not the class, and guessing with many names still meets
    the address wait. Past a limit one more try follows each wait, so a guessing run of thousands takes days.
    A right password clears only its own name's count (never the address's, which a guesser shares).
    Follows OWASP's authentication cheat sheet (throttle, do not lock accounts). Names compare without
    letter case. Thread-safe; times in seconds from `time.monotonic` unless a clock is given."""

    def __init__(self, attempts: int = 5, address_attempts: int = 30, window_s: float = 300.0,
                 wait_s: float = 60.0, clock=time.monotonic):
        self.attempts, self.address_attempts = attempts, address_attempts
        self.window_s, self.wait_s, self.clock = window_s, wait_s, clock
        self._failures: dict[tuple[str, str | None], list[float]] = {}
        self._lock = threading.Lock()

    def _wait(self, key: tuple[str, str | None], limit: int, now: float) -> float:
        recent = [t for t in self._failures.get(key, []) if now - t < self.window_s]
        if recent:
            self._failures[key] = recent
        else:
            self._failures.pop(key, None)  # nothing kept for clients that stopped failing
        return 0.0 if len(recent) < limit else max(0.0, recent[-1] + self.wait_s - now)

    def wait_left(self, client: str, name: str = "") -> tuple[float, str]:
        """(seconds `name` from `client` must still wait before its next try, 0.0 when it may try now; and
        whose count makes it wait: "name", "address" or "")."""
        with self._lock:
            now = self.clock()
            by_address = self._wait((client, None), self.address_attempts, now)
            by_name = self._wait((client, name.casefold()), self.attempts, now)
        if by_address >= by_name:
            return by_address, "address" if by_address > 0 else ""
        return by_name, "name"

    def failed(self, client: str, name: str = "") -> None:
        """Record a wrong password for `name` from `client`."""
        with self._lock:
            now = self.clock()
            for key in ((client, None), (client, name.casefold())):
                self._failures.setdefault(key, []).append(now)

    def succeeded(self, client: str, name: str = "") -> None:
        """A right password for `name`: that name's count from `client` starts again (the address's stays)."""
        with self._lock:
            self._failures.pop((client, name.casefold()), None)


def home_folder() -> Path | None:
    """The user's home folder, resolved; None when it cannot be determined. Raises nothing."""
    try:
        return Path.home().resolve()
    except (RuntimeError, KeyError, OSError):
        return None


@dataclass(frozen=True)
class DataRoots:
    """Folders on the server that the "folder on the server" data source may read."""

    roots: tuple[Path, ...] = field(default_factory=tuple)

    @staticmethod
    def from_env(default: tuple[Path, ...] = ()) -> "DataRoots":
        """The folders in STUDIO_DATA_ROOTS (separated by os.pathsep, "~" expanded, made absolute), or `default`
        when it is empty. Raises nothing."""
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
        inside = [real for real in (cand.resolve() for cand in candidates)
                  if any(real == root or root in real.parents for root in self.roots)]
        if inside and not any(real.exists() for real in inside):  # a relative path: tried under every root first
            raise StudioError(f"The folder {user_path} does not exist.")
        real = next((r for r in inside if r.exists()), None)
        if real is not None:
            if real in self.roots and real == home_folder():  # a home folder is no dataset, and walking it takes minutes
                raise StudioError(f"{user_path} is your whole home folder: choose the folder of your images inside it.")
            # every file inside must resolve inside the roots too (links to elsewhere are refused)
            for p in ([real] if real.is_file() else real.rglob("*")):
                if p.is_symlink():
                    target = p.resolve()
                    if not any(target == r or r in target.parents for r in self.roots):
                        raise AccessDenied(f"{p.name} inside {user_path} links to a place outside the allowed "
                                           "data folders, so the folder is refused.")
            return real
        allowed = ", ".join(str(r) for r in self.roots)
        raise AccessDenied(f"{user_path} is outside the folders this server may read ({allowed}). Upload it as a "
                           "zip, or have the studio started with `STUDIO_DATA_ROOTS` naming the folders it may "
                           f"read (separated by '{os.pathsep}').")
