"""The collector's limits and secrets (issue 18, item 6.9): a bounded number of
connections, a deadline for a whole request, and a token that is never on a
command line nor printed."""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fixtures.collector import CollectorProcess
from fixtures.collector_events import valid_event

SINGLE = "/ingest/v1/events"
LORIS_HEAD = b"POST /ingest/v1/events HTTP/1.1\r\nHost: x\r\n"


def thread_count(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Threads:"))
               .split()[1])


def drip(sockets: list[socket.socket]) -> None:
    """One more header byte on every loris connection still open."""
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.send(b"X")


@pytest.fixture
def capped_collector(collector_factory: Callable[..., CollectorProcess]) -> CollectorProcess:
    return collector_factory(extra_args=("--max-connections", "8", "--request-timeout", "2"))


def test_slow_loris_clients_cannot_grow_the_threads_past_the_cap(
        capped_collector: CollectorProcess) -> None:
    assert capped_collector.process is not None
    pid = capped_collector.process.pid
    lorises = [socket.create_connection(("127.0.0.1", capped_collector.port), timeout=10)
               for _ in range(60)]
    try:
        for sock in lorises:
            sock.sendall(LORIS_HEAD)
        most_threads = 0
        for _ in range(15):
            drip(lorises)
            most_threads = max(most_threads, thread_count(pid))
            time.sleep(0.1)

        assert most_threads <= 8 + 1  # the connections' threads and the accepting one
        refused = sum(1 for sock in lorises if _answer(sock).startswith(b"HTTP/1.1 503"))
        assert refused >= 60 - 8
    finally:
        for sock in lorises:
            sock.close()


def test_a_normal_client_is_served_once_the_slow_ones_run_out_of_time(
        capped_collector: CollectorProcess) -> None:
    lorises = [socket.create_connection(("127.0.0.1", capped_collector.port), timeout=10)
               for _ in range(8)]
    try:
        for sock in lorises:
            sock.sendall(LORIS_HEAD)
        statuses = []
        for _ in range(200):  # the lorises hold every slot until their 2 s run out
            drip(lorises)
            statuses.append(try_post(capped_collector))
            if statuses[-1] == 200:
                break
            time.sleep(0.05)

        assert statuses[-1] == 200 and set(statuses) <= {200, 503, 0}
        assert all(_answer(sock) == b"" for sock in lorises)  # cut off, no request to answer
        assert len(capped_collector.events()) == 1
    finally:
        for sock in lorises:
            sock.close()


def try_post(collector: CollectorProcess) -> int:
    """The status of one event's POST; 0 when the connection was closed on us (refused)."""
    try:
        return collector.post(SINGLE, valid_event(), timeout=10)[0]
    except OSError:
        return 0


def _answer(sock: socket.socket) -> bytes:
    """What the collector sent before closing (b"" when it closed without a word)."""
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except OSError:
        pass
    return data


# the token


def test_the_token_is_not_on_the_collectors_command_line(collector: CollectorProcess) -> None:
    assert collector.process is not None
    cmdline = Path(f"/proc/{collector.process.pid}/cmdline").read_bytes()
    listing = subprocess.run(["ps", "-ww", "-o", "args=", "-p", str(collector.process.pid)],
                             capture_output=True, text=True, check=True).stdout

    assert b"flightdeck_sensor\x00collect" in cmdline and "collect" in listing
    assert collector.token.encode() not in cmdline and collector.token not in listing


def test_token_on_the_command_line_is_refused_with_the_way_to_go(tmp_path: Path) -> None:
    result = run_collect("--token", "tok-SECRET", "--db", str(tmp_path / "c.db"))

    assert result.returncode == 2
    assert "--token was removed" in result.stderr and "FLIGHTDECK_TOKEN" in result.stderr
    assert "--token-file" in result.stderr and "tok-SECRET" not in result.stderr
    assert not (tmp_path / "c.db").exists()


def test_token_file_gives_the_token_and_the_banner_only_names_the_file(
        collector_factory: Callable[..., CollectorProcess], tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("ftd_from_file_0123456789\n")
    token_file.chmod(0o600)
    collector = collector_factory(token="ftd_from_file_0123456789",
                                  extra_args=("--token-file", str(token_file)))
    # the fixture also sets FLIGHTDECK_TOKEN: --token-file wins, so prove the file's is used
    assert collector.post(SINGLE, valid_event())[0] == 200

    output = collector.output()
    assert "ftd_from_file_0123456789" not in output
    assert f'export FLIGHTDECK_TOKEN="$(cat {shlex.quote(str(token_file))})"' in output


def test_an_unreadable_or_foreign_token_file_stops_collect_without_showing_it(
        tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere").write_text("tok-SECRET\n")

    missing = run_collect("--token-file", str(tmp_path / "absent"), "--db", str(tmp_path / "c.db"))
    linked = run_collect("--token-file", str(link), "--db", str(tmp_path / "c.db"))

    assert missing.returncode == 1 and "cannot read the token file" in missing.stderr
    assert linked.returncode == 1 and "tok-SECRET" not in linked.stdout + linked.stderr


def test_a_generated_token_is_kept_in_a_private_file_and_reused(tmp_path: Path) -> None:
    first = run_collect_once(tmp_path)
    token_file = tmp_path / "c.token"
    token = token_file.read_text().strip()

    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600 and len(token) >= 32
    assert token not in first
    export = next(line for line in first.splitlines() if "FLIGHTDECK_TOKEN" in line)
    evaluated = subprocess.run(["sh", "-c", f'{export}; printf %s "$FLIGHTDECK_TOKEN"'],
                               capture_output=True, text=True, check=True).stdout
    assert evaluated == token
    run_collect_once(tmp_path)
    assert token_file.read_text().strip() == token


# what doctor relies on


def test_an_empty_event_is_refused_401_for_a_bad_token_and_400_for_a_good_one(
        collector: CollectorProcess) -> None:
    assert collector.post(SINGLE, {}, token="wrong")[0] == 401
    assert collector.post(SINGLE, b"not even json", token="wrong")[0] == 401
    assert collector.post(SINGLE, {})[0] == 400
    assert collector.events() == [] and collector.sessions() == []


def run_collect(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COLLECT, "--port", "0", *args], capture_output=True, text=True,
                          timeout=30, env=no_flightdeck_env())


def run_collect_once(tmp_path: Path) -> str:
    """Start ``collect`` without any token, read its banner, stop it."""
    process = subprocess.Popen([*COLLECT, "--port", "0", "--db", str(tmp_path / "c.db")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=no_flightdeck_env())
    assert process.stdout is not None
    banner = "".join(process.stdout.readline() for _ in range(4))
    process.terminate()
    process.communicate(timeout=10)
    return banner


COLLECT = [sys.executable, "-m", "flightdeck_sensor", "collect"]


def no_flightdeck_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTDECK_")}
