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

from flightdeck_sensor.transport._spool import MAX_FILE_BYTES, Spool, spool_dir_for


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


# -- a spool someone else prepared ------------------------------------------------------
needs_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="needs root to give files away")
NOBODY = 65534


def test_a_symlinked_spool_directory_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o755)
    (tmp_path / "spool").symlink_to(target)
    spool = Spool(tmp_path / "spool")

    assert not spool.write([event()])

    assert not spool.enabled
    assert stat.S_IMODE(target.stat().st_mode) == 0o755 and not list(target.iterdir())
    assert spool.claim_next() is None


@needs_root
def test_a_spool_directory_owned_by_another_user_is_not_used(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o755)
    os.chown(directory, NOBODY, NOBODY)
    spool = Spool(directory)

    assert not spool.write([event()])

    assert stat.S_IMODE(directory.stat().st_mode) == 0o755 and not list(directory.iterdir())


@needs_root
def test_files_planted_by_another_user_are_not_claimed(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.write([event()])
    (planted,) = tmp_path.glob("*.batch")
    os.chown(planted, NOBODY, NOBODY)

    assert spool.claim_next() is None

    assert spool.foreign == 1 and planted.exists()


def test_a_symlink_among_the_files_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.gz"
    outside.write_bytes(gzip.compress(event() + b"\n"))
    spool = Spool(tmp_path / "spool")
    spool.write([event()])
    (tmp_path / "spool" / "00000000000000000001-1-abcd-1.batch").symlink_to(outside)

    claim = spool.claim_next()

    assert claim is not None and "abcd" not in claim.path.name
    assert spool.claim_next() is None and spool.foreign == 1


def test_a_file_that_inflates_past_the_cap_is_quarantined_not_read(tmp_path: Path) -> None:
    bomb = gzip.compress(b" " * (MAX_FILE_BYTES + 1), compresslevel=9)
    (tmp_path / "00000000000000000001-1-abcd-1.batch").write_bytes(bomb)
    spool = Spool(tmp_path)

    assert len(bomb) < 100_000
    assert spool.claim_next() is None

    assert spool.quarantined == 1
    assert (tmp_path / "00000000000000000001-1-abcd-1.bad").exists()


def test_a_corrupt_deflate_stream_is_quarantined(tmp_path: Path) -> None:
    packed = bytearray(gzip.compress(b"\n".join(event() for _ in range(20))))
    packed[12:20] = b"\xff" * 8
    (tmp_path / "00000000000000000001-1-abcd-20.batch").write_bytes(bytes(packed))
    spool = Spool(tmp_path)

    assert spool.claim_next() is None

    assert spool.quarantined == 1


def test_lines_that_are_not_events_are_counted_and_the_rest_read(tmp_path: Path) -> None:
    good = event()
    lines = [b"[" * 100_000 + b"]" * 100_000, b'{"torn', good, b"[1]"]
    (tmp_path / "00000000000000000001-1-abcd-4.batch").write_bytes(
        gzip.compress(b"\n".join(lines)))
    spool = Spool(tmp_path)

    claim = spool.claim_next()

    assert claim is not None and claim.events == parsed([good]) and claim.unreadable == 3


def test_a_large_write_is_split_into_files_a_reader_accepts(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    batch = [event(padding="x" * 100_000) for _ in range(100)]  # about 10 MB

    assert spool.write(batch)

    assert len(list(tmp_path.glob("*.batch"))) >= 3
    read: list[dict[str, object]] = []
    while (claim := spool.claim_next()) is not None:
        read += claim.events
        spool.done(claim)
    assert read == parsed(batch)
