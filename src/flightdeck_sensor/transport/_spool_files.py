"""The spool's files and the directory that holds them: which directory is
trusted (a real directory of this user, opened without following a link),
and what a file holds (gzipped batches of JSON lines, bounded when read back,
events older than the server's window left out). Stdlib only."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import zlib
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .._printable import printable

# A file is read back whole into memory: past this size (uncompressed) it is not
# a file we wrote (a few KiB of deflate can inflate to gigabytes) and it is
# quarantined instead. Files of 0.6.0 were not split, hence the margin.
MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_EVENT_AGE = timedelta(hours=48) - timedelta(minutes=5)  # the server's window, with margin
BATCH_SUFFIX = ".batch"
QUARANTINE_SUFFIX = ".bad"  # a file that could not be read: kept for a human, never sent
# The directory's descriptor, where the platform can work relative to one.
DIR_FD = (hasattr(os, "O_NOFOLLOW") and hasattr(os, "O_DIRECTORY")
          and {os.open, os.rename, os.unlink, os.utime} <= os.supports_dir_fd
          and os.scandir in os.supports_fd)
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def effective_uid() -> int | None:
    return os.geteuid() if hasattr(os, "geteuid") else None


def is_own_file(info: os.stat_result) -> bool:
    """A regular file (not a link, not a device) of this user: what the spool sends."""
    euid = effective_uid()
    return stat.S_ISREG(info.st_mode) and (euid is None or info.st_uid == euid)


class UnreadableFile(Exception):
    """A spool file that cannot be read back: quarantined, not retried."""


@contextlib.contextmanager
def opened_directory(directory: Path, create: bool = False) -> Iterator[int | None]:
    """The verified directory: its descriptor (None where the platform has
    no ``dir_fd``); raises OSError when it is missing or not to be trusted."""
    if create:
        _make_directory(directory)
    if os.path.islink(directory):
        raise OSError(errno.ELOOP, "it is a symbolic link")
    if not DIR_FD:
        _check_owner(directory, os.stat(directory), fix_mode=create)
        yield None
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | NOFOLLOW)
    try:
        _check_owner(directory, os.fstat(fd), fix_mode=create, fd=fd)
        yield fd
    finally:
        os.close(fd)


def _check_owner(directory: Path, info: os.stat_result, fix_mode: bool,
                 fd: int | None = None) -> None:
    if not stat.S_ISDIR(info.st_mode):
        raise OSError(errno.ENOTDIR, "it is not a directory")
    euid = effective_uid()
    if euid is not None and info.st_uid != euid:
        raise OSError(errno.EPERM, f"it is owned by uid {info.st_uid}, not by this user")
    if fix_mode and info.st_mode & 0o077:
        if fd is not None:
            os.fchmod(fd, 0o700)
        else:
            os.chmod(directory, 0o700)


def _make_directory(directory: Path) -> None:
    """Create what is missing of the path, 0700. As root in another user's
    home (``sudo`` keeps HOME), the parents we create are given to the owner
    of the directory they are made in: a root-owned ``~/.cache`` would
    otherwise break that user's own runs (their spool directory is a
    sibling of ours, ``u<uid>-...``)."""
    missing: list[Path] = []
    path = directory
    while not os.path.lexists(path) and path != path.parent:
        missing.append(path)
        path = path.parent
    owner = os.stat(path) if missing and effective_uid() == 0 else None
    for component in reversed(missing):
        try:
            os.mkdir(component, 0o700)
        except FileExistsError:
            continue
        if owner is not None and owner.st_uid != 0 and component != directory:
            os.chown(component, owner.st_uid, owner.st_gid, follow_symlinks=False)


def chunks(events: list[bytes], limit: int) -> Iterator[list[bytes]]:
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


def inflate(packed: bytes) -> bytes:
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


def batch_name(name: str) -> str:
    for marker in (".claimed-", BATCH_SUFFIX, QUARANTINE_SUFFIX):
        if marker in name:
            name = name[: name.index(marker)]
    return name


def event_count(name: str) -> int:
    try:
        return int(batch_name(name).rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def events_in(text: bytes) -> tuple[list[dict[str, Any]], int, int]:
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
