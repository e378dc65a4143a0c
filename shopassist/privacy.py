"""Privacy primitives: pseudonymous session ids, private files and folders, retention.

* **Pseudonyms.** What a client calls its session (an ``X-Session-Id`` header, the OpenAI
  ``user`` field, ``--session``) may be personal: an e-mail address, a customer number. It is
  never written anywhere: files and event rows name a session by its pseudonym, ``anon-`` and 32
  hex digits of HMAC-SHA256(secret, raw id). The secret is created once per home
  (``HOME/secret.key``, 0600), so the same raw id maps to the same pseudonym across restarts and
  nobody without the secret can test a guess. A pseudonym maps to itself, so code may pass either.
* **One secret for many hosts.** Workers on different machines (different homes) that share a
  Redis and a PostgreSQL must name a session alike, or a turn on one host cannot find the state
  another host saved. ``SHOPASSIST_PSEUDONYM_SECRET`` gives them one secret: at least 16 bytes
  (32 recommended), written as hex (``python -c "import secrets; print(secrets.token_hex(32))"``)
  or base64 (standard or URL-safe, padding optional; a value that is valid hex is read as hex).
  When it is set, ``HOME/secret.key`` is neither read nor created; a malformed or short value is
  a ``UsageError`` that names the variable (never the value). Changing it orphans every stored
  session and event, exactly as a new ``secret.key`` would.
* **Private files.** Files that hold what shoppers wrote or did are created 0600 and their
  folders 0700; an existing one with looser permissions is tightened when it is opened.
* **Retention.** ``Retention`` says which records are too old to keep, and when the next sweep
  is due (at start, then at most once per ``every_s`` on the next write), so enforcing it costs a
  clock read per write.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
import stat
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shopassist.errors import UsageError, folder_error

log = logging.getLogger(__name__)

PSEUDONYM_PREFIX = "anon-"
PSEUDONYM = re.compile(r"anon-[0-9a-f]{32}")
SECRET_FILE = "secret.key"
SECRET_ENV = "SHOPASSIST_PSEUDONYM_SECRET"
MIN_SECRET_BYTES = 16
PURGE_EVERY_S = 3600.0
DAY_S = 86400.0


def is_pseudonym(session_id: str) -> bool:
    return PSEUDONYM.fullmatch(session_id) is not None


class Pseudonyms:
    """Raw session id -> pseudonym (keyed hash); a pseudonym maps to itself."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the pseudonym secret must be at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret

    @classmethod
    def for_home(cls, home: Path) -> Pseudonyms:
        """The pseudonyms of one home: ``SHOPASSIST_PSEUDONYM_SECRET`` when set, else the home's
        secret file (created on first use)."""
        return cls(load_secret(Path(home)))

    def __call__(self, session_id: str) -> str:
        if is_pseudonym(session_id):
            return session_id
        digest = hmac.new(self._secret, session_id.encode("utf-8"), hashlib.sha256).hexdigest()
        return PSEUDONYM_PREFIX + digest[:32]

    def __repr__(self) -> str:  # never the secret
        return "Pseudonyms(<secret>)"


# -- files and folders ------------------------------------------------------------------------------
def private_dir(path: Path, *, fix: bool = False) -> Path:
    """``path`` as a folder, created 0700 (its missing parents too). An existing one is left as it
    is, unless ``fix`` (a folder that is ours alone, such as HOME/sessions): then it is made 0700."""
    path = Path(path)
    missing = [p for p in (path, *path.parents) if not p.exists()]
    if missing:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        for created in missing:
            tighten(created, 0o700)  # mkdir's mode is filtered by the umask (and not given to parents)
    elif fix:
        tighten(path, 0o700)
    return path


def tighten(path: Path, mode: int) -> bool:
    """Take group/other permissions away from ``path`` (to ``mode``) when it has any; True when
    changed. A file owned by someone else is left alone (with a warning)."""
    try:
        current = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return False
    if not current & 0o077:
        return False
    try:
        os.chmod(path, mode)
    except PermissionError:
        log.warning("cannot restrict the permissions of %s (not its owner): it stays readable by others", path)
        return False
    return True


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + rename), the file 0600."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)  # mkstemp: 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- the secret -----------------------------------------------------------------------------------
def configured_secret(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The pseudonym secret ``SHOPASSIST_PSEUDONYM_SECRET`` gives (hex or base64), or None when it
    is unset or empty. A value that decodes to nothing usable is a ``UsageError``: a worker that
    silently fell back to its own ``secret.key`` would name every session differently from its
    peers, and shoppers would lose their conversations at random."""
    raw = (os.environ if environ is None else environ).get(SECRET_ENV, "").strip()
    if not raw:
        return None
    how = (
        f"{SECRET_ENV} must be at least {MIN_SECRET_BYTES} random bytes written as hex or base64, "
        'e.g. the output of python -c "import secrets; print(secrets.token_hex(32))"'
    )
    if re.fullmatch(r"(?:[0-9a-fA-F]{2})+", raw):
        secret = bytes.fromhex(raw)
    else:
        text = raw.replace("-", "+").replace("_", "/")  # URL-safe -> standard alphabet
        try:
            secret = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise UsageError(f"{how}; the value set is neither (the value is not shown).") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise UsageError(f"{how}; the value set decodes to only {len(secret)} bytes.")
    return secret


def secret_source(home: Path) -> str:
    """Where the pseudonym secret comes from, for status output: the environment variable, or
    the home's secret file (never the secret itself)."""
    return f"${SECRET_ENV}" if configured_secret() is not None else str(Path(home) / SECRET_FILE)


def load_secret(home: Path) -> bytes:
    """The pseudonym secret: ``SHOPASSIST_PSEUDONYM_SECRET`` when set (the home is then left
    untouched), else the home's, created (0600, atomically) when there is none.

    A damaged secret file (not 64 hex digits) is moved aside and a new secret made, with a warning:
    the service keeps working, but sessions stored under the old secret are no longer found by
    their ids (retention removes them in time)."""
    configured = configured_secret()
    if configured is not None:
        return configured
    try:
        private_dir(home)
    except OSError as exc:
        raise folder_error(home, exc) from exc
    path = home / SECRET_FILE
    for _ in range(3):
        try:
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            _create_secret(path)
            continue
        except (OSError, UnicodeDecodeError) as exc:
            if isinstance(exc, PermissionError):
                raise UsageError(
                    f"Cannot read the pseudonym secret {path}: permission denied. "
                    "Run shopassist as the user that owns the data folder, or fix the file's owner."
                ) from exc
            text = ""
        if re.fullmatch(r"[0-9a-f]{64}", text):
            tighten(path, 0o600)
            return bytes.fromhex(text)
        aside = path.with_name(f"{SECRET_FILE}.damaged-{int(time.time())}")
        log.warning("the pseudonym secret %s is damaged; moved to %s and a new one made", path, aside.name)
        path.replace(aside)
    raise UsageError(f"Cannot create the pseudonym secret {path}: check that the data folder is writable.")


def _create_secret(path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-secret-")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        # the secret appears complete or not at all, and never replaces another process's
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links: a rename (a race here is only theoretical)
            if not path.exists():
                os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


# -- retention ------------------------------------------------------------------------------------
@dataclass
class Retention:
    """Keep records ``days`` days (None or 0: keep them until deleted); sweeps are due at start
    and then at most once every ``every_s`` seconds."""

    days: float | None = None
    every_s: float = PURGE_EVERY_S
    clock: Callable[[], float] = time.time
    _last: float | None = field(default=None, repr=False)

    @property
    def enabled(self) -> bool:
        return bool(self.days)

    def cutoff(self) -> float | None:
        """Records last updated before this time (seconds since the epoch) are too old."""
        return self.clock() - float(self.days) * DAY_S if self.days else None

    def due(self) -> bool:
        """True at most once per ``every_s`` (the first call included); marks the sweep as done."""
        if not self.days:
            return False
        now = self.clock()
        if self._last is not None and now - self._last < self.every_s:
            return False
        self._last = now
        return True


def purge_files(folder: Path, before: float, suffix: str = ".json") -> int:
    """Delete the files in ``folder`` ending in ``suffix`` last modified before ``before``."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if not entry.name.endswith(suffix) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime < before:
                os.unlink(entry.path)
                removed += 1
        except FileNotFoundError:
            continue  # another process removed it first
    return removed
