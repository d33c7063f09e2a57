"""Runs every benchmark, prints one table, writes .bench/all.json and
regenerates BENCHMARKS.md (report.py): each budget beside the measured figure.

    scripts/bench            full run (~15-25 minutes on a quiet 2-core machine)
    scripts/bench --quick    smoke run: few repetitions, figures indicative only
    scripts/bench --only calls,sender   run some benchmarks, reuse the others' last JSON
    scripts/bench --compare REF [--rounds N]   the per-call benchmark, this tree's src/
        and REF's side by side in one run (compare.py)

Each benchmark is a module of this package, run as ``python -m benchmarks.<name>
--out .bench/<name>.json``. A missing or failing one is reported, never fatal.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks._common import BENCH_DIR, ROOT, clean_env, run_main
from benchmarks.compare import compare
from benchmarks.report import evaluate, load, markdown, print_compare, print_table

BENCHMARKS = ("startup", "calls", "http", "sender", "collector", "instructions", "control",
              "otlp", "console")
PACKAGES = ("openai", "anthropic", "litellm", "httpx2", "wrapt", "flightdeck-sensor")
TIMEOUT = {"startup": 1800, "calls": 2400, "http": 1200, "sender": 2400, "collector": 1200,
           "instructions": 1800, "control": 1200, "otlp": 1800, "console": 1200}


# -- running ---------------------------------------------------------------------

SPEED_CHECK = """
import time
def work():
    total = 0
    for i in range(200_000):
        total += i % 7
    return total
best = float("inf")
for _ in range(7):
    started = time.thread_time()
    work()
    best = min(best, time.thread_time() - started)
print(best * 1000)
"""


def speed_check() -> float | None:
    """CPU ms of a fixed pure-Python loop (best of 7) in a fresh interpreter. This
    machine's cores run at two speeds, about 2x apart, as the host lends them;
    each benchmark's figures are read with the check taken beside it."""
    try:
        done = subprocess.run([sys.executable, "-c", SPEED_CHECK], capture_output=True,
                              text=True, timeout=60, check=True)
        return round(float(done.stdout), 2)
    except (subprocess.SubprocessError, ValueError):
        return None


def run_benchmark(name: str, quick: bool) -> dict[str, Any]:
    before = speed_check()
    result = _run_benchmark(name, quick)
    result["speed_check_ms"] = {"before": before, "after": speed_check()}
    out = BENCH_DIR / f"{name}.json"
    if "error" not in result and out.exists():  # kept with the figures it explains
        saved = json.loads(out.read_text())
        saved["speed_check_ms"] = result["speed_check_ms"]
        out.write_text(json.dumps(saved, indent=1) + "\n")
    return result


def _run_benchmark(name: str, quick: bool) -> dict[str, Any]:
    out = BENCH_DIR / f"{name}.json"
    if not (ROOT / "benchmarks" / f"{name}.py").exists():
        return {"error": f"benchmarks/{name}.py does not exist"}
    args = [sys.executable, "-m", f"benchmarks.{name}", "--out", str(out)] + (
        ["--quick"] if quick else [])
    print(f"==> {name}: {' '.join(Path(a).name if '/' in a else a for a in args[1:])}",
          file=sys.stderr)
    started = time.monotonic()
    try:
        done = subprocess.run(args, cwd=ROOT, env=clean_env(), timeout=TIMEOUT[name],
                              stdout=subprocess.PIPE, stderr=None, text=True)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {TIMEOUT[name]} s"}
    took = time.monotonic() - started
    if done.returncode != 0:
        return {"error": f"exit status {done.returncode}", "seconds": took,
                "stdout_tail": done.stdout[-2000:]}
    return load(name) | {"seconds": took}


# -- the machine ---------------------------------------------------------------------

def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        load_avg = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load_avg = []
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": memory_gib,
            "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "implementation": platform.python_implementation(),
            "load_average_at_end": load_avg, "packages": versions,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fast smoke run")
    parser.add_argument("--only", default="",
                        help="comma-separated benchmarks to run; the others' last JSON is reused")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite BENCHMARKS.md")
    parser.add_argument("--compare", metavar="GITREF",
                        help="run only the per-call benchmark, GITREF's src/ and this tree's "
                             "side by side (ABBA rounds, one run); the others' last JSON is reused")
    parser.add_argument("--rounds", type=int, default=4,
                        help="with --compare: runs per tree (%(default)s)")
    parser.add_argument("--no-litellm", action="store_true",
                        help="with --compare: leave litellm's rows out (its import is slow)")
    args = parser.parse_args()
    BENCH_DIR.mkdir(exist_ok=True)
    if args.compare:
        return compare_only(args)
    chosen = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    results = {name: run_benchmark(name, args.quick) if name in chosen else load(name)
               for name in BENCHMARKS}
    host = machine()
    rows = evaluate(results)
    print()
    print_table(rows)
    for name, data in results.items():
        if "error" in data:
            print(f"  {name}: {data['error']}", file=sys.stderr)
    (BENCH_DIR / "all.json").write_text(json.dumps(
        {"machine": host, "quick": args.quick, "budgets": rows, "results": results},
        indent=1) + "\n")
    if not args.no_write:
        (ROOT / "BENCHMARKS.md").write_text(markdown(rows, results, host, args.quick))
        print("wrote BENCHMARKS.md and .bench/all.json", file=sys.stderr)
    return 0


def compare_only(args: argparse.Namespace) -> int:
    """``--compare``: the side-by-side run, then BENCHMARKS.md regenerated from the last
    figures of every benchmark plus the side-by-side section."""
    if args.only not in ("", "calls"):
        print("--compare measures the per-call benchmark only (--only calls)", file=sys.stderr)
        return 2
    options = (["--quick"] if args.quick else []) + (["--no-litellm"] if args.no_litellm else [])
    report = compare(args.compare, max(1, args.rounds), options, BENCH_DIR / "compare.json")
    print_compare(report)
    if not args.no_write:
        results = {name: load(name) for name in BENCHMARKS}
        last_quick = bool(load("all").get("quick"))
        (ROOT / "BENCHMARKS.md").write_text(
            markdown(evaluate(results), results, machine(), last_quick))
        print("wrote BENCHMARKS.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
