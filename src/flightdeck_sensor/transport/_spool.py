"""The spool: undelivered events on disk, shipped by a later process.

One directory per user and server (``<base>/u<uid>-<hash of server>``, 0700).
The directory is trusted only if it is a real directory (not a symlink) owned
by this user, and only files this user owns are read back: another user's
files would otherwise be sent with our token. On POSIX every file operation
goes through a descriptor of the directory opened with ``O_NOFOLLOW``, so a
directory swapped for a symlink after the check is not followed either.
Each file is one gzipped batch, one JSON event per line, written under a
temporary name and renamed into place so readers never see half a file. A
reader claims a file by renaming it to ``*.claimed-<pid>``: rename is atomic,
so two processes never ship the same file. Events carry their ``id``; a resend
after a crash is deduplicated by the server. The token is never written here.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import stat
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .._printable import printable

logger = logging.getLogger("flightdeck_sensor")

SPOOL_CAP_BYTES = 64 * 1024 * 1024
FILE_BYTES = 4 * 1024 * 1024  # events (uncompressed) per file written
# A file is read back whole into memory: past this size (uncompressed) it is not
# a file we wrote (a few KiB of deflate can inflate to gigabytes) and it is
# quarantined instead. Files of 0.6.0 were not split, hence the margin.
MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_EVENT_AGE = timedelta(hours=48) - timedelta(minutes=5)  # the server's window, with margin
STALE_CLAIM_SECONDS = 600.0  # a claim older than this belonged to a crashed process
_BATCH_SUFFIX = ".batch"
_QUARANTINE_SUFFIX = ".bad"  # a file that could not be read: kept for a human, never sent
# The directory's descriptor, where the platform can work relative to one.
_DIR_FD = (hasattr(os, "O_NOFOLLOW") and hasattr(os, "O_DIRECTORY")
           and {os.open, os.rename, os.unlink, os.utime} <= os.supports_dir_fd
           and os.scandir in os.supports_fd)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _euid() -> int | None:
    return os.geteuid() if hasattr(os, "geteuid") else None


class UnreadableFile(Exception):
    """A spool file that cannot be read back: quarantined, not retried."""


def default_spool_base() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "flightdeck-sensor" / "spool"


def spool_dir_for(server: str, base: str | None) -> Path:
    """The per-user, per-server spool directory."""
    user = str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    digest = hashlib.sha256(server.encode()).hexdigest()[:16]
    return (Path(base) if base else default_spool_base()) / f"u{user}-{digest}"


class Claim:
    """A spool file this process took, with its events still worth sending."""

    def __init__(self, path: Path, events: list[dict[str, Any]], expired: int,
                 unreadable: int = 0) -> None:
        self.path = path
        self.events = events
        self.expired = expired  # dropped for being older than the server accepts
        self.unreadable = unreadable  # lines that were not an event (torn, too deep)


class Spool:
    """Append batches, claim them back. Every method is bounded and never raises."""

    def __init__(self, directory: Path, cap_bytes: int = SPOOL_CAP_BYTES) -> None:
        self.directory = directory
        self.cap_bytes = cap_bytes
        self.enabled = True
        self.dropped_oldest = 0  # events deleted to keep the spool under its cap
        self.quarantined = 0  # files renamed *.bad: unreadable, oversized
        self.foreign = 0  # files found here that this user does not own: never sent
        self._warned: set[str] = set()
        self._written: set[str] = set()  # names of the files this process wrote
        self._lock = threading.RLock()

    # -- the directory ---------------------------------------------------------
    @contextlib.contextmanager
    def _opened(self, create: bool = False) -> Iterator[int | None]:
        """The verified directory: its descriptor (None where the platform has
        no ``dir_fd``); raises OSError when it is missing or not to be trusted."""
        if create:
            self._make_directory()
        if os.path.islink(self.directory):
            raise OSError(errno.ELOOP, "it is a symbolic link")
        if not _DIR_FD:
            self._check_owner(os.stat(self.directory), fix_mode=create)
            yield None
            return
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW)
        try:
            self._check_owner(os.fstat(fd), fix_mode=create, fd=fd)
            yield fd
        finally:
            os.close(fd)

    def _check_owner(self, info: os.stat_result, fix_mode: bool, fd: int | None = None) -> None:
        if not stat.S_ISDIR(info.st_mode):
            raise OSError(errno.ENOTDIR, "it is not a directory")
        euid = _euid()
        if euid is not None and info.st_uid != euid:
            raise OSError(errno.EPERM, f"it is owned by uid {info.st_uid}, not by this user")
        if fix_mode and info.st_mode & 0o077:
            if fd is not None:
                os.fchmod(fd, 0o700)
            else:
                os.chmod(self.directory, 0o700)

    def _make_directory(self) -> None:
        """Create what is missing of the path, 0700. As root in another user's
        home (``sudo`` keeps HOME), the parents we create are given to the owner
        of the directory they are made in: a root-owned ``~/.cache`` would
        otherwise break that user's own runs (their spool directory is a
        sibling of ours, ``u<uid>-...``)."""
        missing: list[Path] = []
        path = self.directory
        while not os.path.lexists(path) and path != path.parent:
            missing.append(path)
            path = path.parent
        owner = os.stat(path) if missing and _euid() == 0 else None
        for component in reversed(missing):
            try:
                os.mkdir(component, 0o700)
            except FileExistsError:
                continue
            if owner is not None and owner.st_uid != 0 and component != self.directory:
                os.chown(component, owner.st_uid, owner.st_gid, follow_symlinks=False)

    def _at(self, fd: int | None, name: str) -> str:
        """``name`` for an ``os`` call with ``dir_fd=fd``."""
        return name if fd is not None else str(self.directory / name)

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message, *args)

    # -- writing ------------------------------------------------------------
    def write(self, events: list[bytes]) -> bool:
        """Store one batch; False when the spool is off or unusable (warned once)."""
        if not events or not self.enabled:
            return False
        with self._lock:
            try:
                with self._opened(create=True) as fd:
                    for chunk in _chunks(events, FILE_BYTES):
                        self._write_file(fd, chunk)
            except OSError as exc:
                self._disable(exc)
                return False
            self._enforce_cap()
            return True

    def _write_file(self, fd: int | None, events: list[bytes]) -> None:
        import gzip

        name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}-{len(events)}"
        temporary = f".{name}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
        file = os.open(self._at(fd, temporary), flags, 0o600, dir_fd=fd)
        with os.fdopen(file, "wb") as raw:
            raw.write(gzip.compress(b"\n".join(events) + b"\n", compresslevel=1))
        os.replace(self._at(fd, temporary), self._at(fd, name + _BATCH_SUFFIX),
                   src_dir_fd=fd, dst_dir_fd=fd)
        self._written.add(name + _BATCH_SUFFIX)

    def waiting_from_this_process(self) -> int:
        """Events this process wrote that still wait in the spool (not shipped
        since, by this process or another)."""
        with self._lock:
            names = list(self._written)
        return sum(_event_count(name) for name in names
                   if os.path.lexists(self.directory / name))

    def _disable(self, exc: OSError) -> None:
        self.enabled = False
        logger.warning("flightdeck-sensor spool at %s is unusable (%s); undelivered events "
                       "will be dropped and counted, the program runs on",
                       printable(self.directory, 300), exc.strerror or type(exc).__name__)

    def _enforce_cap(self) -> None:
        files = self._batch_files()
        total = sum(size for _, size in files)
        for path, size in files:
            if total <= self.cap_bytes:
                break
            try:
                path.unlink()
            except OSError:
                continue
            total -= size
            self.dropped_oldest += _event_count(path.name)

    # -- reading ------------------------------------------------------------
    def claim_next(self) -> Claim | None:
        """Atomically take the oldest unclaimed (or stale) file, or None.
        A file that cannot be read is quarantined and the next one taken."""
        try:
            with self._opened() as fd:
                return self._claim_in(fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._warn_once("directory", "flightdeck-sensor spool at %s is not read (%s)",
                            printable(self.directory, 300), exc.strerror or type(exc).__name__)
            return None

    def _claim_in(self, fd: int | None) -> Claim | None:
        for name in self._claimable(fd):
            claimed = f"{_batch_name(name)}.claimed-{os.getpid()}"
            try:
                os.rename(self._at(fd, name), self._at(fd, claimed), src_dir_fd=fd,
                          dst_dir_fd=fd)
                os.utime(self._at(fd, claimed), dir_fd=fd)
            except OSError:
                continue  # another process got it first
            try:
                events, expired, unreadable = self._read_events(fd, claimed)
            except UnreadableFile as exc:
                self._quarantine_name(fd, claimed, str(exc))
                continue
            except Exception as exc:  # whatever else a file can do to a reader
                self._quarantine_name(fd, claimed, type(exc).__name__)
                continue
            return Claim(self.directory / claimed, events, expired, unreadable)
        return None

    def _read_events(self, fd: int | None,
                     name: str) -> tuple[list[dict[str, Any]], int, int]:
        try:
            file = os.open(self._at(fd, name), os.O_RDONLY | _NOFOLLOW, dir_fd=fd)
        except OSError as exc:
            raise UnreadableFile(exc.strerror or type(exc).__name__) from None
        with os.fdopen(file, "rb") as raw:
            info = os.fstat(raw.fileno())
            euid = _euid()
            if not stat.S_ISREG(info.st_mode) or (euid is not None and info.st_uid != euid):
                raise UnreadableFile("not a file of this user")
            if info.st_size > MAX_FILE_BYTES:
                raise UnreadableFile("larger than a spool file can be")
            packed = raw.read(MAX_FILE_BYTES + 1)
        return _events_in(_inflate(packed))

    def release(self, claim: Claim) -> None:
        """Give a claimed file back, untouched, for a later process."""
        self._rename_claim(claim, _BATCH_SUFFIX)

    def quarantine(self, claim: Claim) -> None:
        """Set a claimed file aside (``*.bad``): it will not be sent again."""
        with contextlib.suppress(OSError), self._opened() as fd:
            self._quarantine_name(fd, claim.path.name, "the sender failed on it")

    def _quarantine_name(self, fd: int | None, name: str, why: str) -> None:
        with contextlib.suppress(OSError):
            os.rename(self._at(fd, name), self._at(fd, _batch_name(name) + _QUARANTINE_SUFFIX),
                      src_dir_fd=fd, dst_dir_fd=fd)
        self.quarantined += 1
        self._warn_once("quarantine", "flightdeck-sensor spool file %s set aside as %s (%s); "
                        "further ones are counted in get_status()['spool_quarantined']",
                        _batch_name(name), _QUARANTINE_SUFFIX, why)

    def _rename_claim(self, claim: Claim, suffix: str) -> None:
        with contextlib.suppress(OSError), self._opened() as fd:
            os.rename(self._at(fd, claim.path.name),
                      self._at(fd, _batch_name(claim.path.name) + suffix),
                      src_dir_fd=fd, dst_dir_fd=fd)

    def done(self, claim: Claim) -> None:
        with contextlib.suppress(OSError), self._opened() as fd:
            os.unlink(self._at(fd, claim.path.name), dir_fd=fd)

    def _claimable(self, fd: int | None) -> list[str]:
        """Names of this user's batch files and stale claims, oldest first;
        anything else (another user's file, a symlink) is left alone, counted."""
        now = time.time()
        found = []
        euid = _euid()
        try:
            entries = list(os.scandir(fd if fd is not None else self.directory))
        except OSError:
            return []
        for entry in entries:
            name = entry.name
            if not (name.endswith(_BATCH_SUFFIX) or ".claimed-" in name):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode) or (euid is not None and info.st_uid != euid):
                self._skip_foreign(name)
                continue
            if name.endswith(_BATCH_SUFFIX) or now - info.st_mtime > STALE_CLAIM_SECONDS:
                found.append(name)
        return sorted(found)

    def _skip_foreign(self, name: str) -> None:
        if name in self._warned:
            return
        self._warned.add(name)
        self.foreign += 1
        self._warn_once("foreign", "flightdeck-sensor spool at %s holds files this user does "
                        "not own (%s); they are not sent", printable(self.directory, 300),
                        printable(name))

    def _batch_files(self) -> list[tuple[Path, int]]:
        files = []
        try:
            entries = sorted(os.scandir(self.directory), key=lambda e: e.name)
        except OSError:
            return []
        for entry in entries:
            if entry.name.endswith(_BATCH_SUFFIX):
                try:
                    files.append((Path(entry.path), entry.stat(follow_symlinks=False).st_size))
                except OSError:
                    continue
        return files

    def summary(self) -> dict[str, object]:
        files = self._batch_files()
        try:
            bad = sum(1 for e in os.scandir(self.directory)
                      if e.name.endswith(_QUARANTINE_SUFFIX))
        except OSError:
            bad = 0
        return {"directory": str(self.directory), "enabled": self.enabled,
                "files": len(files), "events": sum(_event_count(p.name) for p, _ in files),
                "bytes": sum(size for _, size in files), "quarantined": bad}


def _chunks(events: list[bytes], limit: int) -> Iterator[list[bytes]]:
    """``events`` in runs of about ``limit`` bytes: each file stays well under
    what a reader accepts."""
    chunk: list[bytes] = []
    size = 0
    for line in events:
        if chunk and size + len(line) > limit:
            yield chunk
            chunk, size = [], 0
        chunk.append(line)
        size += len(line) + 1
    if chunk:
        yield chunk


def _inflate(packed: bytes) -> bytes:
    """The gzip members of ``packed``, inflated to at most MAX_FILE_BYTES."""
    out: list[bytes] = []
    total = 0
    try:
        while packed:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            piece = inflater.decompress(packed, MAX_FILE_BYTES - total + 1)
            total += len(piece)
            if total > MAX_FILE_BYTES or inflater.unconsumed_tail:
                raise UnreadableFile(f"inflates past {MAX_FILE_BYTES} bytes")
            if not inflater.eof:
                raise UnreadableFile("truncated")
            out.append(piece)
            packed = inflater.unused_data
    except zlib.error as exc:
        raise UnreadableFile(f"corrupt: {printable(exc, 80)}") from None
    return b"".join(out)


def _batch_name(name: str) -> str:
    for marker in (".claimed-", _BATCH_SUFFIX, _QUARANTINE_SUFFIX):
        if marker in name:
            name = name[: name.index(marker)]
    return name


def _event_count(name: str) -> int:
    try:
        return int(_batch_name(name).rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def _events_in(text: bytes) -> tuple[list[dict[str, Any]], int, int]:
    """The events still inside the server's window, how many were too old, and
    how many lines were not an event (a torn line, or JSON nested too deep)."""
    oldest = datetime.now(timezone.utc) - MAX_EVENT_AGE
    fresh: list[dict[str, Any]] = []
    expired = unreadable = 0
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except (ValueError, RecursionError):
            unreadable += 1
            continue
        if not isinstance(event, dict):
            unreadable += 1
        elif _is_fresh(event, oldest):
            fresh.append(event)
        else:
            expired += 1
    return fresh, expired, unreadable


def _is_fresh(event: dict[str, Any], oldest: datetime) -> bool:
    try:
        stamp = datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00"))
    except (ValueError, KeyError):
        return True  # not ours to judge: let the server decide
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp >= oldest
