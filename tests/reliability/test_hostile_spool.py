"""The spool as an attacker or a broken disk leaves it, read by the real
sender: a corrupt file, a file of deep JSON, a sensor run as root in a user's
home. The sender goes on delivering, sets the bad file aside, counts it, and
a process ending in an outage says where its events went.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from fakes.ingest_server import IngestServer
from fakes.sensor_program import TOKEN, program_env, program_source, run_program
from flightdeck_sensor._config import resolve_config
from flightdeck_sensor.transport import Transport
from flightdeck_sensor.transport._spool import Spool, spool_dir_for

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]

NOBODY = 65534


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def sensor_warnings() -> Iterator[list[str]]:
    handler = Records()
    logger = logging.getLogger("flightdeck_sensor")
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


def spooled_event() -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "event_type": "post_call",
            "session_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
            "timestamp": datetime.now(timezone.utc).isoformat(), "tokens_total": 1}


def plant(directory: Path, name: str, content: bytes) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    (directory / name).write_bytes(content)


def corrupt_deflate(lines: bytes) -> bytes:
    packed = bytearray(gzip.compress(lines))
    packed[12:20] = b"\xff" * 8  # inside the deflate stream, past the gzip header
    return bytes(packed)


def ids(events: list[dict[str, Any]]) -> list[str]:
    return [str(e["id"]) for e in events]


def test_a_corrupt_spool_file_is_quarantined_and_delivery_goes_on(
        tmp_path: Path, sensor_warnings: list[str]) -> None:
    with IngestServer() as server:
        config, _ = resolve_config({}, server=server.url, token=TOKEN)
        config = config.replace(spool_dir=str(tmp_path))
        directory = spool_dir_for(config.server, config.spool_dir)
        # Given a spool holding a file with a corrupt deflate stream, then a good
        # file, then a file with one line of JSON nested 100,000 deep
        good, beside_deep = [spooled_event() for _ in range(3)], [spooled_event()]
        lines = b"\n".join(json.dumps(e).encode() for e in good)
        plant(directory, "00000000000000000001-1-aaaa-3.batch", corrupt_deflate(lines))
        plant(directory, "00000000000000000002-1-bbbb-3.batch", gzip.compress(lines))
        deep = b"[" * 100_000 + b"]" * 100_000
        plant(directory, "00000000000000000003-1-cccc-2.batch",
              gzip.compress(deep + b"\n" + json.dumps(beside_deep[0]).encode()))
        transport = Transport(config)
        live = [spooled_event() for _ in range(2)]
        # When the sender replays the spool, then ships live events
        for event in live:
            transport.submit(event)
        delivered = transport.flush(15)
        transport.close(2.0)
        status = transport.status()

    # Then every readable event arrived once, the corrupt file is set aside, all counted
    assert delivered
    assert sorted(ids(server.events())) == sorted(ids(good + beside_deep + live))
    assert status["spool_quarantined"] == 1 and status["sender_errors"] == 0
    assert status["dropped"] == {"spool_unreadable": 1}
    assert (directory / "00000000000000000001-1-aaaa-3.bad").exists()
    assert not list(directory.glob("*.batch")) and not list(directory.glob("*.claimed-*"))
    assert len(sensor_warnings) == 1 and "set aside" in sensor_warnings[0]


def test_a_process_ending_in_an_outage_says_how_many_events_were_spooled_and_where(
        tmp_path: Path) -> None:
    # Given a server that is down
    down = IngestServer()
    url = down.url
    down.stop()
    # When a program records three calls and exits
    result = run_program("call(); call(); call()", server=url, spool_dir=tmp_path)

    # Then its last line counts the events spooled (with session_start and
    # session_end) and names the spool; the token is nowhere
    last = result.stderr.strip().splitlines()[-1]
    directory = spool_dir_for(url, str(tmp_path))
    assert result.returncode == 0
    assert f"5 events spooled to {directory}" in last, result.stderr
    assert "server unreachable" in last and "next run" in last
    assert TOKEN not in result.stderr


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
def test_root_in_a_users_home_leaves_a_spool_the_user_can_still_use(nobodys_home: Path) -> None:
    # Given a user's home, and a server that is down
    home = nobodys_home
    down = IngestServer()
    url = down.url
    down.stop()
    # When a program run as root with that HOME spools its events at exit
    env = program_env(url, "", HOME=str(home))
    for name in ("FLIGHTDECK_SPOOL_DIR", "XDG_CACHE_HOME"):
        env.pop(name, None)
    root_run = subprocess.run([sys.executable, "-c", program_source("call()")], env=env,
                              capture_output=True, text=True, timeout=60)
    cache = home / ".cache"
    assert list(cache.glob("flightdeck-sensor/spool/u0-*/*.batch")), root_run.stderr

    # Then the directories made in the user's home are the user's
    assert {(p.stat().st_uid, p.name) for p in (cache, cache / "flightdeck-sensor",
                                                cache / "flightdeck-sensor" / "spool")} == {
        (NOBODY, "spool"), (NOBODY, "flightdeck-sensor"), (NOBODY, ".cache")}
    # And the user's own later run spools there too
    assert spooled_as_user(url, home, NOBODY)


@pytest.fixture
def nobodys_home() -> Iterator[Path]:
    """A home directory of user ``nobody``, where that user can reach it (not
    under pytest's root-only temporary directory)."""
    home = Path(tempfile.mkdtemp(prefix="flightdeck-home-"))
    os.chmod(home, 0o755)
    os.chown(home, NOBODY, NOBODY)
    yield home
    shutil.rmtree(home, ignore_errors=True)


def spooled_as_user(server: str, home: Path, uid: int) -> bool:
    """Spool one event from a child process running as ``uid`` with that HOME
    (a fork: the interpreter lives under /root, which that user cannot read)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            os.environ["HOME"] = str(home)
            os.environ.pop("XDG_CACHE_HOME", None)
            spool = Spool(spool_dir_for(server, None))
            code = 0 if spool.write([json.dumps(spooled_event()).encode()]) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0
