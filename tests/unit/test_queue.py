"""The bounded event queue: FIFO, bounded by count and by bytes, drops counted."""

from __future__ import annotations

import threading

from flightdeck_sensor.transport._queue import BASE_EVENT_BYTES, EventQueue, estimate_size


def test_events_come_out_in_the_order_they_went_in() -> None:
    queue = EventQueue(max_events=10, max_bytes=1 << 20)
    for n in range(5):
        assert queue.put({"n": n})

    assert [queue.pop()["n"] for _ in range(5)] == [0, 1, 2, 3, 4]  # type: ignore[index]
    assert queue.pop() is None
    assert queue.bytes == 0


def test_a_full_queue_refuses_and_counts_the_overflow() -> None:
    queue = EventQueue(max_events=3, max_bytes=1 << 20)

    waiting = [queue.put({"n": n}) for n in range(5)]

    assert waiting == [1, 2, 3, 0, 0]  # how many wait after each put; 0: refused
    assert len(queue) == 3
    assert queue.dropped_full == 2


def test_the_byte_bound_refuses_large_events_but_always_takes_one() -> None:
    queue = EventQueue(max_events=100, max_bytes=10_000)
    big = {"content": "x" * 6_000}

    assert queue.put(big)
    assert not queue.put(big)
    assert queue.dropped_bytes == 1
    queue.pop()
    huge = {"content": "x" * 50_000}
    assert queue.put(huge)  # alone in the queue: accepted, or it could never be sent


def test_size_estimate_counts_content_only() -> None:
    assert estimate_size({"model": "gpt"}) == BASE_EVENT_BYTES
    nested = {"content": {"request": [{"role": "user", "content": "y" * 1000}]}}
    assert 1000 < estimate_size(nested) - BASE_EVENT_BYTES < 1200


def test_concurrent_producers_lose_nothing_below_the_bound() -> None:
    queue = EventQueue(max_events=100_000, max_bytes=1 << 30)

    def produce(thread: int) -> None:
        for n in range(2_000):
            queue.put({"t": thread, "n": n})

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(queue) == 32_000
    assert queue.bytes == 32_000 * BASE_EVENT_BYTES
