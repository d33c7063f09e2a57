"""The spool: private files, a byte cap that drops the oldest (counted), atomic
claims, expiry at replay, and a clear single warning when the disk refuses."""

from __future__ import annotations

import gzip
import json
import logging
import os
import stat
import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from flightdeck_sensor.transport._spool import Spool, spool_dir_for


def event(age: timedelta = timedelta(0), padding: str = "") -> bytes:
    stamp = (datetime.now(timezone.utc) - age).isoformat()
    return json.dumps({"id": str(uuid.uuid4()), "timestamp": stamp, "pad": padding}).encode()


def parsed(batch: list[bytes]) -> list[dict[str, object]]:
    return [json.loads(line) for line in batch]


def test_directory_is_per_user_and_per_server(tmp_path: Path) -> None:
    one = spool_dir_for("http://a.example/ingest", str(tmp_path))
    other = spool_dir_for("http://b.example/ingest", str(tmp_path))

    assert one != other and one.parent == other.parent == tmp_path
    assert str(os.getuid()) in one.name


def test_default_location_is_the_users_cache_dir(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    directory = spool_dir_for("http://a.example/ingest", None)

    assert directory.parent == tmp_path / "flightdeck-sensor" / "spool"


def test_written_batches_are_private_and_read_back_whole(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    batch = [event() for _ in range(3)]

    assert spool.write(batch)

    assert stat.S_IMODE((tmp_path / "spool").stat().st_mode) == 0o700
    (path,) = (tmp_path / "spool").glob("*.batch")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    claim = spool.claim_next()
    assert claim is not None and claim.events == parsed(batch)
    spool.done(claim)
    assert spool.claim_next() is None
    assert not list((tmp_path / "spool").iterdir())


def test_claims_come_oldest_first_and_a_released_claim_comes_back(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    first, second = [event()], [event()]
    spool.write(first)
    spool.write(second)

    claim = spool.claim_next()
    assert claim is not None and claim.events == parsed(first)
    spool.release(claim)

    again = spool.claim_next()
    assert again is not None and again.events == parsed(first)


def test_two_claimers_never_get_the_same_file(tmp_path: Path) -> None:
    writer = Spool(tmp_path)
    for _ in range(200):
        writer.write([event()])
    claimed: list[list[object]] = [[], []]

    def claim_all(slot: int) -> None:
        spool = Spool(tmp_path)
        while (claim := spool.claim_next()) is not None:
            claimed[slot] += [e["id"] for e in claim.events]
            spool.done(claim)

    threads = [threading.Thread(target=claim_all, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    everything = claimed[0] + claimed[1]
    assert len(everything) == 200 == len(set(everything))


def test_the_cap_drops_the_oldest_files_and_counts_their_events(tmp_path: Path) -> None:
    spool = Spool(tmp_path, cap_bytes=3_000)
    batches = [[event(padding=os.urandom(400).hex()) for _ in range(2)] for _ in range(6)]

    for batch in batches:
        spool.write(batch)

    summary = spool.summary()
    assert summary["bytes"] <= 3_000  # type: ignore[operator]
    assert spool.dropped_oldest == 12 - summary["events"]  # type: ignore[operator]
    assert spool.dropped_oldest > 0
    claim = spool.claim_next()
    assert claim is not None and claim.events != parsed(batches[0])


def test_events_older_than_the_servers_window_are_dropped_at_replay(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    fresh, stale = event(timedelta(hours=1)), event(timedelta(hours=49))
    spool.write([stale, fresh])

    claim = spool.claim_next()

    assert claim is not None
    assert claim.events == parsed([fresh])
    assert claim.expired == 1


def test_an_unwritable_directory_disables_the_spool_with_one_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    spool = Spool(blocker / "spool")

    assert not spool.write([event()])
    assert not spool.write([event()])

    assert not spool.enabled
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "spool" in warnings[0].getMessage()


def test_a_corrupt_file_is_quarantined_and_the_next_one_claimed(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    (tmp_path / "00000000000000000001-1-abcd-3.batch").write_bytes(b"not gzip")
    spool.write([event()])

    first = spool.claim_next()

    assert first is not None and len(first.events) == 1
    assert spool.quarantined == 1
    assert (tmp_path / "00000000000000000001-1-abcd-3.bad").exists()
    spool.done(first)
    assert spool.claim_next() is None


def test_spool_files_hold_events_only(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.write([event()])

    (path,) = tmp_path.glob("*.batch")
    text = gzip.decompress(path.read_bytes()).decode()
    assert "Bearer" not in text and "token" not in text
