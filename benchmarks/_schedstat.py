"""What each process of the soak did around a slow call: its CPU time and its wait
for a core, sampled from /proc/PID/task/*/schedstat."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any


class SchedSampler:
    """Every ``interval`` s, each process's CPU time and run-queue wait (all its
    threads, from /proc/PID/task/*/schedstat, in ns): for a slow call, whether
    a process was starved of a core (waiting to run) or busy. Linux only; on
    another system it records nothing."""

    def __init__(self, interval: float = 0.025) -> None:
        self.interval = interval
        self.pids: dict[str, int] = {}
        self.samples: list[tuple[float, dict[str, tuple[int, int]]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="soak-sched")

    def start(self) -> None:
        if os.path.exists(f"/proc/{os.getpid()}/task"):
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            sample = {name: _schedstat(pid) for name, pid in list(self.pids.items())}
            self.samples.append((time.time(), sample))

    def window(self, start: float, end: float) -> dict[str, Any] | None:
        """CPU and wait per process, in ms, between the last sample at or before
        ``start`` and the first at or after ``end``."""
        before = [s for s in self.samples if s[0] <= start]
        after = [s for s in self.samples if s[0] >= end]
        if not before or not after:
            return None
        (t0, first), (t1, last) = before[-1], after[0]
        used = {name: [round((last[name][i] - first[name][i]) / 1e6, 1) for i in (0, 1)]
                for name in last if name in first}
        return {"from": t0, "to": t1, "cpu_wait_ms": used}


def _schedstat(pid: int) -> tuple[int, int]:
    run = wait = 0
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                    fields = f.read().split()
                run, wait = run + int(fields[0]), wait + int(fields[1])
    return run, wait
