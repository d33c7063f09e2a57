"""The per-call benchmark on two source trees side by side, in one run: this
tree's ``src/`` ("after") and a git ref's ("before"), checked out into a
temporary git worktree.

Each round runs ``benchmarks/calls.py`` once per tree, each run a process of
its own with ``PYTHONPATH=<tree>/src`` ahead of the editable install: the same
benchmark code, fakes and process layout for both, only the sensor's source
differs (each run reports the source it imported, and a run that imported the
other tree's is refused). The trees alternate ABBA across rounds (before,
after, after, before, ...) so a drift of a shared machine hits both alike.
A row's figure for a tree is the median over its runs of that run's added time
(sensor on minus off, the caller's CPU time); the ratio is after / before, both
measured in this run.

    scripts/bench --compare REF [--rounds 4] [--quick] [--no-litellm]
"""

from __future__ import annotations

import contextlib
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks._common import ROOT, abba_order, clean_env, write_report

SECTIONS = ("calls", "isolated", "isolated_busy")  # the calls benchmark's row lists
TIMEOUT_SECONDS = 2400  # one run of the per-call benchmark


def git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()


@contextlib.contextmanager
def checked_out(ref: str) -> Iterator[Path]:
    """``ref`` checked out (detached) into a temporary git worktree, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="fd-bench-compare-") as parent:
        tree = Path(parent) / "before"
        git("worktree", "add", "--detach", "--quiet", str(tree), ref)
        try:
            yield tree
        finally:
            git("worktree", "remove", "--force", str(tree))


def run_calls(tree: Path, out: Path, options: list[str]) -> dict[str, Any]:
    """One run of the per-call benchmark with ``tree``'s sensor; its JSON."""
    source = tree / "src"
    subprocess.run([sys.executable, "-m", "benchmarks.calls", "--out", str(out), *options],
                   cwd=ROOT, env=clean_env(PYTHONPATH=str(source)), check=True,
                   timeout=TIMEOUT_SECONDS, stdout=subprocess.DEVNULL)
    data: dict[str, Any] = json.loads(out.read_text())
    imported = Path(data.get("sensor_source", "")).resolve()
    if not imported.is_relative_to(source.resolve()):
        raise RuntimeError(f"the run for {tree} imported the sensor from {imported}")
    return data


def rows_of(data: dict[str, Any]) -> dict[tuple[str, str, int], float]:
    """Added CPU time (us) of each row of one run: per call, and per chunk (slope)."""
    found = {}
    for section in SECTIONS:
        for row in data.get(section) or []:
            deltas = row["deltas"] if row["streamed"] else 0
            found[(section, row["label"], deltas)] = row["cpu"]["added_median_us"]
        chunk_key = "per_chunk" if section == "calls" else section + "_per_chunk"
        for row in data.get(chunk_key) or []:
            found[(section, row["label"] + ", per chunk", -1)] = row["cpu"]["added_per_chunk_us"]
    return found


def side_by_side(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (section, call, deltas) either side measured."""
    runs = {"before": [rows_of(d) for d in before], "after": [rows_of(d) for d in after]}
    keys = list(dict.fromkeys(k for side in runs.values() for run in side for k in run))
    table = []
    for section, label, deltas in keys:
        values = {side: [run[(section, label, deltas)] for run in side_runs
                         if (section, label, deltas) in run]
                  for side, side_runs in runs.items()}
        medians = {side: statistics.median(v) if v else None for side, v in values.items()}
        b, a = medians["before"], medians["after"]
        table.append({"section": section, "label": label, "deltas": deltas,
                      "before_us": b, "after_us": a,
                      "ratio": a / b if a is not None and b is not None and a > 0 and b > 0
                      else None,
                      "before_runs_us": values["before"], "after_runs_us": values["after"]})
    return table


def compare(ref: str, rounds: int, options: list[str], out: Path) -> dict[str, Any]:
    """``rounds`` rounds of the per-call benchmark on ``ref``'s tree and this one."""
    commit = git("rev-parse", "--verify", f"{ref}^{{commit}}")
    runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    with checked_out(commit) as old, tempfile.TemporaryDirectory(prefix="fd-compare-") as tmp:
        trees = {"before": old, "after": ROOT}
        for round_ in range(rounds):
            # abba_order's True goes first in even rounds: "before" then "after".
            for first in abba_order(round_):
                side = "before" if first else "after"
                print(f"==> compare round {round_ + 1}/{rounds}: {side}", file=sys.stderr)
                runs[side].append(run_calls(trees[side], Path(tmp) / f"{side}-{round_}.json",
                                            options))
    report = {
        "benchmark": "compare", "ref": ref, "before_commit": commit,
        "after_commit": git("rev-parse", "HEAD"),
        "after_uncommitted_changes": bool(git("status", "--porcelain", "--", "src")),
        "rounds": rounds, "options": options,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "rows": side_by_side(runs["before"], runs["after"]),
    }
    write_report(report, out)
    return report
