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
import hashlib
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from .._printable import printable
from ._spool_files import (
    BATCH_SUFFIX,
    MAX_FILE_BYTES,
    NOFOLLOW,
    QUARANTINE_SUFFIX,
    UnreadableFile,
    batch_name,
    chunks,
    event_count,
    events_in,
    inflate,
    is_own_file,
    opened_directory,
)

logger = logging.getLogger("flightdeck_sensor")

SPOOL_CAP_BYTES = 64 * 1024 * 1024
FILE_BYTES = 4 * 1024 * 1024  # events (uncompressed) per file written
STALE_CLAIM_SECONDS = 600.0  # a claim older than this belonged to a crashed process


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
                with opened_directory(self.directory, create=True) as fd:
                    for chunk in chunks(events, FILE_BYTES):
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
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW
        file = os.open(self._at(fd, temporary), flags, 0o600, dir_fd=fd)
        with os.fdopen(file, "wb") as raw:
            raw.write(gzip.compress(b"\n".join(events) + b"\n", compresslevel=1))
        os.replace(self._at(fd, temporary), self._at(fd, name + BATCH_SUFFIX),
                   src_dir_fd=fd, dst_dir_fd=fd)
        self._written.add(name + BATCH_SUFFIX)

    def waiting_from_this_process(self) -> int:
        """Events this process wrote that still wait in the spool (not shipped
        since, by this process or another)."""
        with self._lock:
            names = list(self._written)
        return sum(event_count(name) for name in names
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
            self.dropped_oldest += event_count(path.name)

    # -- reading ------------------------------------------------------------
    def claim_next(self) -> Claim | None:
        """Atomically take the oldest unclaimed (or stale) file, or None.
        A file that cannot be read is quarantined and the next one taken."""
        try:
            with opened_directory(self.directory) as fd:
                return self._claim_in(fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._warn_once("directory", "flightdeck-sensor spool at %s is not read (%s)",
                            printable(self.directory, 300), exc.strerror or type(exc).__name__)
            return None

    def _claim_in(self, fd: int | None) -> Claim | None:
        for name in self._claimable(fd):
            claimed = f"{batch_name(name)}.claimed-{os.getpid()}"
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
            file = os.open(self._at(fd, name), os.O_RDONLY | NOFOLLOW, dir_fd=fd)
        except OSError as exc:
            raise UnreadableFile(exc.strerror or type(exc).__name__) from None
        with os.fdopen(file, "rb") as raw:
            info = os.fstat(raw.fileno())
            if not is_own_file(info):
                raise UnreadableFile("not a file of this user")
            if info.st_size > MAX_FILE_BYTES:
                raise UnreadableFile("larger than a spool file can be")
            packed = raw.read(MAX_FILE_BYTES + 1)
        return events_in(inflate(packed))

    def release(self, claim: Claim) -> None:
        """Give a claimed file back, untouched, for a later process."""
        self._rename_claim(claim, BATCH_SUFFIX)

    def quarantine(self, claim: Claim) -> None:
        """Set a claimed file aside (``*.bad``): it will not be sent again."""
        with contextlib.suppress(OSError), opened_directory(self.directory) as fd:
            self._quarantine_name(fd, claim.path.name, "the sender failed on it")

    def _quarantine_name(self, fd: int | None, name: str, why: str) -> None:
        with contextlib.suppress(OSError):
            os.rename(self._at(fd, name), self._at(fd, batch_name(name) + QUARANTINE_SUFFIX),
                      src_dir_fd=fd, dst_dir_fd=fd)
        self.quarantined += 1
        self._warn_once("quarantine", "flightdeck-sensor spool file %s set aside as %s (%s); "
                        "further ones are counted in get_status()['spool_quarantined']",
                        batch_name(name), QUARANTINE_SUFFIX, why)

    def _rename_claim(self, claim: Claim, suffix: str) -> None:
        with contextlib.suppress(OSError), opened_directory(self.directory) as fd:
            os.rename(self._at(fd, claim.path.name),
                      self._at(fd, batch_name(claim.path.name) + suffix),
                      src_dir_fd=fd, dst_dir_fd=fd)

    def done(self, claim: Claim) -> None:
        with contextlib.suppress(OSError), opened_directory(self.directory) as fd:
            os.unlink(self._at(fd, claim.path.name), dir_fd=fd)

    def _claimable(self, fd: int | None) -> list[str]:
        """Names of this user's batch files and stale claims, oldest first;
        anything else (another user's file, a symlink) is left alone, counted."""
        now = time.time()
        found = []
        try:
            entries = list(os.scandir(fd if fd is not None else self.directory))
        except OSError:
            return []
        for entry in entries:
            name = entry.name
            if not (name.endswith(BATCH_SUFFIX) or ".claimed-" in name):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if not is_own_file(info):
                self._skip_foreign(name)
                continue
            if name.endswith(BATCH_SUFFIX) or now - info.st_mtime > STALE_CLAIM_SECONDS:
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
            if entry.name.endswith(BATCH_SUFFIX):
                try:
                    files.append((Path(entry.path), entry.stat(follow_symlinks=False).st_size))
                except OSError:
                    continue
        return files

    def summary(self) -> dict[str, object]:
        files = self._batch_files()
        try:
            bad = sum(1 for e in os.scandir(self.directory)
                      if e.name.endswith(QUARANTINE_SUFFIX))
        except OSError:
            bad = 0
        return {"directory": str(self.directory), "enabled": self.enabled,
                "files": len(files), "events": sum(event_count(p.name) for p, _ in files),
                "bytes": sum(size for _, size in files), "quarantined": bad}


