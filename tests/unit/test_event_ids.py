"""Event ids: random version-4 UUIDs in canonical form, never repeated across
threads or between a forked child and its parent (the server deduplicates on
them, so a repeat would silently drop an event)."""

from __future__ import annotations

import os
import threading
import uuid

import pytest

from flightdeck_sensor.transport._wire import new_event_id


def test_ids_are_canonical_version_4_uuids() -> None:
    for _ in range(500):
        value = new_event_id()
        parsed = uuid.UUID(value)
        assert str(parsed) == value
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_every_random_digit_of_an_id_varies() -> None:
    # Only the version digit is fixed, and the variant digit keeps two random
    # bits: a mask that cleared more would still give canonical version 4 ids.
    ids = [new_event_id().replace("-", "") for _ in range(2_000)]

    seen = [{value[position] for value in ids} for position in range(32)]

    assert seen[12] == {"4"} and seen[16] == set("89ab")
    assert all(len(digits) == 16 for position, digits in enumerate(seen)
               if position not in (12, 16))


def test_threads_never_get_the_same_id() -> None:
    seen: list[list[str]] = [[] for _ in range(16)]

    def take(out: list[str]) -> None:
        out.extend(new_event_id() for _ in range(5_000))

    threads = [threading.Thread(target=take, args=(out,)) for out in seen]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    every = [value for out in seen for value in out]
    assert len(set(every)) == len(every) == 80_000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_repeat_its_parents_next_ids() -> None:
    new_event_id()  # the parent now holds ready-made ids
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write_end, " ".join(new_event_id() for _ in range(100)).encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end) as pipe:
        child = set(pipe.read().split())
    parent = {new_event_id() for _ in range(100)}
    assert len(child) == 100
    assert not child & parent
