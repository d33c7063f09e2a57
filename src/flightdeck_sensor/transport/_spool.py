"""The spool: undelivered events on disk, shipped by a later process.

One directory per user and server (``<base>/u<uid>-<hash of server>``, 0700).
Each file is one gzipped batch, one JSON event per line, written under a
temporary name and renamed into place so readers never see half a file. A
reader claims a file by renaming it to ``*.claimed-<pid>``: rename is atomic,
so two processes never ship the same file. Events carry their ``id``; a resend
after a crash is deduplicated by the server. The token is never written here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

logger = logging.getLogger("flightdeck_sensor")

SPOOL_CAP_BYTES = 64 * 1024 * 1024
MAX_EVENT_AGE = timedelta(hours=48) - timedelta(minutes=5)  # the server's window, with margin
STALE_CLAIM_SECONDS = 600.0  # a claim older than this belonged to a crashed process
_BATCH_SUFFIX = ".batch"


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

    def __init__(self, path: Path, events: list[dict[str, Any]], expired: int) -> None:
        self.path = path
        self.events = events
        self.expired = expired  # dropped for being older than the server accepts


class Spool:
    """Append batches, claim them back. Every method is bounded and never raises."""

    def __init__(self, directory: Path, cap_bytes: int = SPOOL_CAP_BYTES) -> None:
        self.directory = directory
        self.cap_bytes = cap_bytes
        self.enabled = True
        self.dropped_oldest = 0  # events deleted to keep the spool under its cap
        self._lock = threading.RLock()

    def after_fork(self) -> None:
        self._lock = threading.RLock()

    # -- writing ------------------------------------------------------------
    def write(self, events: list[bytes]) -> bool:
        """Store one batch; False when the spool is off or unusable (warned once)."""
        if not events or not self.enabled:
            return False
        import gzip

        with self._lock:
            try:
                self._ensure_directory()
                name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}-{len(events)}"
                temporary = self.directory / f".{name}.tmp"
                fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as raw:
                    raw.write(gzip.compress(b"\n".join(events) + b"\n", compresslevel=1))
                os.replace(temporary, self.directory / (name + _BATCH_SUFFIX))
            except OSError as exc:
                self._disable(exc)
                return False
            self._enforce_cap()
            return True

    def _ensure_directory(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.directory.stat().st_mode & 0o077:
            os.chmod(self.directory, 0o700)

    def _disable(self, exc: OSError) -> None:
        self.enabled = False
        logger.warning("flightdeck-sensor spool at %s is unusable (%s); undelivered events "
                       "will be dropped and counted, the program runs on",
                       self.directory, exc.strerror or type(exc).__name__)

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
            self.dropped_oldest += _event_count(path)

    # -- reading ------------------------------------------------------------
    def claim_next(self) -> Claim | None:
        """Atomically take the oldest unclaimed (or stale) file, or None."""
        if not self.directory.is_dir():
            return None
        for path in self._claimable():
            claimed = path.with_name(f"{_batch_name(path)}.claimed-{os.getpid()}")
            try:
                os.rename(path, claimed)
                os.utime(claimed)
            except OSError:
                continue  # another process got it first
            events, expired = _read_events(claimed)
            return Claim(claimed, events, expired)
        return None

    def release(self, claim: Claim) -> None:
        """Give a claimed file back, untouched, for a later process."""
        with contextlib.suppress(OSError):
            os.rename(claim.path, claim.path.with_name(_batch_name(claim.path) + _BATCH_SUFFIX))

    def done(self, claim: Claim) -> None:
        with contextlib.suppress(OSError):
            claim.path.unlink()

    def _claimable(self) -> list[Path]:
        now = time.time()
        found = []
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return []
        for entry in entries:
            if entry.name.endswith(_BATCH_SUFFIX):
                found.append(Path(entry.path))
            elif ".claimed-" in entry.name:
                try:
                    if now - entry.stat().st_mtime > STALE_CLAIM_SECONDS:
                        found.append(Path(entry.path))
                except OSError:
                    continue
        return sorted(found, key=lambda p: p.name)

    def _batch_files(self) -> list[tuple[Path, int]]:
        files = []
        try:
            entries = sorted(os.scandir(self.directory), key=lambda e: e.name)
        except OSError:
            return []
        for entry in entries:
            if entry.name.endswith(_BATCH_SUFFIX):
                try:
                    files.append((Path(entry.path), entry.stat().st_size))
                except OSError:
                    continue
        return files

    def summary(self) -> dict[str, object]:
        files = self._batch_files()
        return {"directory": str(self.directory), "enabled": self.enabled,
                "files": len(files), "events": sum(_event_count(p) for p, _ in files),
                "bytes": sum(size for _, size in files)}


def _batch_name(path: Path) -> str:
    name = path.name
    for marker in (".claimed-", _BATCH_SUFFIX):
        if marker in name:
            name = name[: name.index(marker)]
    return name


def _event_count(path: Path) -> int:
    try:
        return int(_batch_name(path).rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def _read_events(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The file's events still inside the server's window, and how many were too old."""
    import gzip

    try:
        lines = gzip.decompress(path.read_bytes()).splitlines()
    except (OSError, EOFError, gzip.BadGzipFile):
        logger.warning("flightdeck-sensor spool file %s is unreadable; skipped", path.name)
        return [], 0
    oldest = datetime.now(timezone.utc) - MAX_EVENT_AGE
    fresh, expired = [], 0
    for event in _parsed(lines):
        if _is_fresh(event, oldest):
            fresh.append(event)
        else:
            expired += 1
    return fresh, expired


def _parsed(lines: list[bytes]) -> Iterator[dict[str, Any]]:
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a torn line: nothing we could send
        if isinstance(event, dict):
            yield event


def _is_fresh(event: dict[str, Any], oldest: datetime) -> bool:
    try:
        stamp = datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00"))
    except (ValueError, KeyError):
        return True  # not ours to judge: let the server decide
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp >= oldest
