"""The side-by-side table of ``scripts/bench --compare``: how the runs of two source
trees become one row per call (benchmarks/compare.py). No timing is measured here:
the runs are the per-call benchmark's JSON, written out."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.compare import side_by_side  # noqa: E402 - benchmarks/ is not on the tests' path


def run(chat_added: float, stream_added: float | None = None) -> dict[str, Any]:
    """One run's JSON as benchmarks/calls.py writes it, reduced to what the table reads."""
    calls = [{"label": "OpenAI chat", "streamed": False, "deltas": 0,
              "cpu": {"added_median_us": chat_added}}]
    if stream_added is not None:
        calls.append({"label": "OpenAI chat", "streamed": True, "deltas": 4,
                      "cpu": {"added_median_us": stream_added}})
    return {"calls": calls, "per_chunk": [],
            "isolated": [{"label": "OpenAI chat", "streamed": False, "deltas": 0,
                          "cpu": {"added_median_us": chat_added / 10}}],
            "isolated_per_chunk": [{"label": "OpenAI chat", "cpu": {"added_per_chunk_us": 0.3}}]}


def row(table: list[dict[str, Any]], section: str, deltas: int) -> dict[str, Any]:
    return next(r for r in table if r["section"] == section and r["deltas"] == deltas)


def test_each_row_is_the_median_of_each_trees_runs_and_their_ratio() -> None:
    # Given three runs of each tree
    before = [run(30.0), run(10.0), run(20.0)]
    after = [run(12.0), run(16.0), run(14.0)]

    # When they are put side by side
    table = side_by_side(before, after)

    # Then each row holds each tree's median and after / before
    chat = row(table, "calls", 0)
    assert (chat["before_us"], chat["after_us"]) == (20.0, 14.0)
    assert chat["ratio"] == 14.0 / 20.0
    assert chat["before_runs_us"] == [30.0, 10.0, 20.0]
    # and the isolated rows and the per-chunk slopes are rows of their own
    assert row(table, "isolated", 0)["after_us"] == 1.4
    assert row(table, "isolated", -1)["ratio"] == 1.0


def test_a_row_only_one_tree_measured_has_no_ratio() -> None:
    # Given a streamed case the older tree did not intercept (no row in its runs)
    table = side_by_side([run(20.0)], [run(20.0, stream_added=50.0)])

    streamed = row(table, "calls", 4)

    assert streamed["before_us"] is None
    assert streamed["after_us"] == 50.0
    assert streamed["ratio"] is None


def test_a_difference_at_or_below_zero_has_no_ratio() -> None:
    # Given a run whose on-off difference is negative: below what it resolved
    table = side_by_side([run(-4.0)], [run(30.0)])

    assert row(table, "calls", 0)["ratio"] is None
