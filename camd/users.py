"""The basic-auth users file: salted slow hashes, re-read when it changes, checked cheaply.

One ``user:hash`` a line, mode 0600. Checking a password costs a slow hash, so
a login that succeeded is remembered for a while as an HMAC of the credentials
under a key that exists only in this process: nothing stored can be turned back
into a password, and a changed password or user forgets it at once.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import hmac
import logging
import os
import secrets
import stat
import tempfile
import threading
import time
from pathlib import Path

from werkzeug.security import check_password_hash, generate_password_hash

log = logging.getLogger(__name__)

REMEMBER_SECONDS = 600.0
REMEMBER_MAX = 512
STAT_EVERY = 1.0
INITIAL_PASSWORD_FILE = "initial-password"
MAX_HASHES = 2  # slow hashes at once in the whole process: each takes tens of MiB (scrypt) and a core
HASH_WAIT = 2.0  # seconds a check waits for a hash slot before it gives up

# Process-wide on purpose: the memory and cores a hash uses are the process's, whatever Users asks.
HASH_SLOTS = threading.BoundedSemaphore(MAX_HASHES)

# Beside the password, the user it belongs to: only changing that user's password makes the file stale.
INITIAL_USER_FILE = "initial-password.user"
FIRST_USER = "admin"


class UsersError(ValueError):
    """A user name or the users file is not usable."""


class Busy(Exception):
    """Every hash slot stayed taken for ``HASH_WAIT`` seconds: the password was not checked (try again)."""


def check_name(name: str) -> str:
    if not name or ":" in name or any(ch.isspace() or not ch.isprintable() for ch in name) or len(name) > 64:
        raise UsersError(f"user name {name!r} is not valid: 1-64 printable characters, no spaces or ':'")
    return name


def parse(text: str) -> dict[str, str]:
    """The users in a file's text; raises UsersError on a malformed line."""
    users: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, hashed = line.partition(":")
        if not sep or not name or "$" not in hashed:
            raise UsersError(f"line {number} is not 'user:hash'")
        users[name] = hashed
    return users


def write_users(path: Path, users: dict[str, str]) -> None:
    """Replace the users file atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{name}:{hashed}\n" for name, hashed in sorted(users.items()))
    fd, tmp = tempfile.mkstemp(prefix=".users-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        _keep_owner(fd, path)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _keep_owner(fd: int, path: Path) -> None:
    """Root editing the file (sudo camd passwd) must leave it to the service user that reads it."""
    if os.geteuid() != 0:
        return
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    os.fchown(fd, info.st_uid, info.st_gid)


def read_users(path: Path) -> dict[str, str]:
    try:
        return parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError:
        raise UsersError("the file is not UTF-8 text") from None


def set_password(path: Path, name: str, password: str) -> None:
    users = read_users(path)
    users[check_name(name)] = generate_password_hash(password)
    write_users(path, users)


def delete_user(path: Path, name: str) -> bool:
    users = read_users(path)
    if users.pop(name, None) is None:
        return False
    write_users(path, users)
    return True


def check_private(path: Path) -> None:
    """Raise UsersError when the group or others may read or write the users file."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsersError(
            f"{path} is open to other users (mode {mode:04o}): anyone on the machine could read the password "
            f"hashes or add a user; fix it with: chmod 600 {path}"
        )


def new_password() -> str:
    """A random password that is safe to paste after a command: it never starts with ``-`` or ``_``."""
    while True:
        password = secrets.token_urlsafe(12)
        if password[0].isalnum():
            return password


def ensure_first_user(path: Path) -> str | None:
    """On a first start with no users, create ``admin`` and return its new password."""
    if read_users(path):
        return None
    password = new_password()
    set_password(path, FIRST_USER, password)
    return password


def write_initial_password(state_dir: Path, user: str, password: str) -> Path:
    """Keep the first password where its owner can find it (mode 0600) until it is changed."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / INITIAL_PASSWORD_FILE
    for name, text in ((INITIAL_USER_FILE, user), (INITIAL_PASSWORD_FILE, password)):
        fd = os.open(state_dir / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text + "\n")
    return path


def initial_password_user(state_dir: Path) -> str | None:
    """The user whose first password is still in the state directory, or None when there is none."""
    if not (state_dir / INITIAL_PASSWORD_FILE).is_file():
        return None
    try:
        return (state_dir / INITIAL_USER_FILE).read_text(encoding="utf-8").strip() or FIRST_USER
    except (OSError, UnicodeDecodeError):
        return FIRST_USER  # written before the owner was recorded beside it: always the first user


def forget_initial_password(state_dir: Path, user: str) -> bool:
    """Remove the first password once ``user``, its owner, has a new one; other users leave it alone."""
    if initial_password_user(state_dir) != user:
        return False
    (state_dir / INITIAL_PASSWORD_FILE).unlink(missing_ok=True)
    (state_dir / INITIAL_USER_FILE).unlink(missing_ok=True)
    return True


class Users:
    """The users that may log in, kept in step with the file, with remembered logins."""

    def __init__(self, path: Path, *, slots: threading.Semaphore = HASH_SLOTS, hash_wait: float = HASH_WAIT) -> None:
        self.path = path
        self.slots, self.hash_wait = slots, hash_wait
        self._users: dict[str, str] = {}
        self._signature: tuple[int, int, int, int] | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self._key = secrets.token_bytes(32)
        self._remembered: collections.OrderedDict[bytes, tuple[float, str, str]] = collections.OrderedDict()
        self._inflight: dict[bytes, threading.Lock] = {}
        check_private(path)  # refuse to start on a file others can read: its hashes would be out
        self.reload()

    def reload(self, force: bool = False) -> bool:
        """Re-read the file if it changed (always with ``force``: SIGHUP); keep the last good users when unreadable."""
        self._checked_at = time.monotonic()
        try:
            info = self.path.stat()
        except FileNotFoundError:
            if self._users and self._signature is not None:  # said once, not on every check
                log.error("users file %s is gone; keeping the %d users read before", self.path, len(self._users))
            self._signature = None
            return False
        signature = (info.st_mtime_ns, info.st_size, info.st_ino, info.st_mode)
        if signature == self._signature and not force:
            return False
        try:
            check_private(self.path)
            users = read_users(self.path)
        except (UsersError, OSError) as exc:
            log.error("users file %s is unreadable (%s); keeping the users read before", self.path, exc)
            self._signature = signature
            return False
        with self._lock:
            self._users = users
            self._signature = signature
            self._remembered.clear()
        log.info("loaded %d user(s) from %s", len(users), self.path)
        return True

    def _fresh(self) -> dict[str, str]:
        if time.monotonic() - self._checked_at >= STAT_EVERY:
            self.reload()
        return self._users

    def verify(self, name: str, password: str) -> bool:
        """True when the credentials match; costs a slow hash only on a first login.

        At most ``MAX_HASHES`` slow hashes run at once in the process; a check
        that gets no slot within ``hash_wait`` seconds raises Busy.
        """
        users = self._fresh()
        digest = self._digest(name, password)
        if self._remembered_ok(digest, name, users):
            return True
        deadline = time.monotonic() + self.hash_wait
        # One slow hash per set of credentials at a time: a page of viewers that
        # connect together wait for the first check and then find it remembered.
        with self._lock:
            gate = self._inflight.setdefault(digest, threading.Lock())
        if not gate.acquire(timeout=self.hash_wait):
            raise Busy("another check of the same credentials is still running")
        try:
            if self._remembered_ok(digest, name, users):
                return True
            if not self.slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise Busy(f"{MAX_HASHES} password checks are already running")
            try:
                stored = users.get(name)
                # An unknown user costs the same slow hash as a wrong password.
                ok = check_password_hash(stored or _dummy_hash(), password) and stored is not None
            finally:
                self.slots.release()
            if ok and stored is not None:
                with self._lock:
                    self._remembered[digest] = (time.monotonic() + REMEMBER_SECONDS, name, stored)
                    while len(self._remembered) > REMEMBER_MAX:
                        self._remembered.popitem(last=False)
            return ok
        finally:
            with self._lock:
                if self._inflight.get(digest) is gate:
                    del self._inflight[digest]
            gate.release()

    def _digest(self, name: str, password: str) -> bytes:
        return hmac.new(self._key, f"{name}\0{password}".encode("utf-8", "surrogatepass"), hashlib.sha256).digest()

    def remembered(self, name: str, password: str) -> bool:
        """True when these credentials were verified a short while ago (an HMAC, no slow hash)."""
        digest = self._digest(name, password)
        return self._remembered_ok(digest, name, self._fresh())

    def _remembered_ok(self, digest: bytes, name: str, users: dict[str, str]) -> bool:
        with self._lock:
            entry = self._remembered.get(digest)
            if entry is None:
                return False
            expires, remembered_name, stored = entry
            if expires < time.monotonic() or remembered_name != name or users.get(name) != stored:
                del self._remembered[digest]
                return False
            return True


@functools.cache
def _dummy_hash() -> str:
    return generate_password_hash(secrets.token_urlsafe(16))
