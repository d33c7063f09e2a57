"""Interpreter start-up cost of the sensor (DESIGN.md budgets), in fresh virtualenvs.

Scenarios, each ``python -c pass`` (wall time of the whole process):

- ``bare``: a virtualenv with the sensor's dependencies but not the sensor;
- ``bare_env_set``: the same with FLIGHTDECK_SERVER set (a control: should be ``bare``);
- ``installed_env_unset``: the wheel installed, FLIGHTDECK_SERVER unset;
- ``env_set_no_sdk``: the wheel installed, FLIGHTDECK_SERVER set, no SDK imported.

Runs are interleaved (each round runs every scenario once, in a shuffled
order) so drifts of a busy machine hit all scenarios alike; the overhead of a
scenario is the median of its per-round difference to ``bare``. The budget
figures (``overheads``) are CPU time (user + sys) of the child, which a
loaded machine inflates far less than wall time; wall time is reported too
(``wall``). Also reports the bootstrap's own import time from
``-X importtime``.

    .venv/bin/python scripts/bench_startup.py [--rounds 300] [--python 3.12] [--out FILE] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fixtures.venvs import base_venv, build_wheel, clean_env, create_venv, find_python  # noqa: E402

SERVER_ENV = {"FLIGHTDECK_SERVER": "http://127.0.0.1:9", "FLIGHTDECK_TOKEN": "bench-token"}
DEPENDENCIES = ("wrapt>=1.16", "httpx>=0.27")


def time_one(python: str, env: dict[str, str]) -> tuple[float, float]:
    """(wall ms, CPU ms) of one ``python -c pass``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter_ns()
    subprocess.run([python, "-c", "pass"], env=env, check=True)
    wall = (time.perf_counter_ns() - started) / 1e6
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1e3
    return wall, cpu


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def bootstrap_import_us(python: str, rounds: int) -> float:
    """Median of the summed -X importtime of what the .pth imports (env set)."""
    totals = []
    for _ in range(rounds):
        stderr = subprocess.run([python, "-X", "importtime", "-c", "pass"],
                                env=clean_env(SERVER_ENV), capture_output=True, text=True,
                                check=True).stderr
        total = 0
        for line in stderr.splitlines():
            if not line.startswith("import time:") or "|" not in line:
                continue
            _, cumulative, name = line.split("|")
            depth = len(name) - len(name.lstrip())  # 3: imported by site's .pth processing
            module = name.strip()
            if depth == 3 and (module.startswith("flightdeck_sensor") or module == "pwd"):
                total += int(cumulative)
        totals.append(total)
    return statistics.median(totals)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--python", default="3.12")
    parser.add_argument("--out", default=str(ROOT / ".bench" / "startup.json"))
    parser.add_argument("--quick", action="store_true", help="40 rounds (indicative only)")
    args = parser.parse_args()
    rounds = 40 if args.quick else args.rounds
    interpreter = find_python(args.python) if os.sep not in args.python else args.python
    if interpreter is None:
        print(f"Python {args.python} not found", file=sys.stderr)
        return 2

    print("==> building the wheel and the virtualenvs (cached)", file=sys.stderr)
    bare = base_venv(interpreter, DEPENDENCIES)
    installed = create_venv(interpreter, build_wheel())
    scenarios = {
        "bare": (bare.python, clean_env()),
        "bare_env_set": (bare.python, clean_env(SERVER_ENV)),
        "installed_env_unset": (installed.python, clean_env()),
        "env_set_no_sdk": (installed.python, clean_env(SERVER_ENV)),
    }
    for python, env in scenarios.values():  # warm the page cache and the .pyc files
        for _ in range(5):
            time_one(python, env)

    print(f"==> {rounds} interleaved rounds of {len(scenarios)} scenarios", file=sys.stderr)
    wall: dict[str, list[float]] = {name: [] for name in scenarios}
    cpu: dict[str, list[float]] = {name: [] for name in scenarios}
    for _ in range(rounds):
        order = list(scenarios)
        random.shuffle(order)
        for name in order:
            wall_ms, cpu_ms = time_one(*scenarios[name])
            wall[name].append(wall_ms)
            cpu[name].append(cpu_ms)

    result = report(cpu, interpreter, rounds)
    result["wall"] = report(wall, interpreter, rounds)
    result["load_average"] = os.getloadavg()
    result["bootstrap_import_us_median"] = bootstrap_import_us(installed.python,
                                                               max(10, rounds // 10))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print_table(result)
    return 0


def report(samples: dict[str, list[float]], interpreter: str, rounds: int) -> dict[str, Any]:
    bare_median = statistics.median(samples["bare"])
    scenarios = {}
    overheads = {}
    for name, values in samples.items():
        scenarios[name] = {"median_ms": statistics.median(values),
                           "p10_ms": percentile(values, 0.1), "p90_ms": percentile(values, 0.9),
                           "ratio_to_bare": statistics.median(values) / bare_median}
        if name != "bare":
            differences = [v - b for v, b in zip(values, samples["bare"], strict=True)]
            overheads[name] = {"overhead_median_ms": statistics.median(differences),
                               "overhead_p10_ms": percentile(differences, 0.1),
                               "overhead_p90_ms": percentile(differences, 0.9),
                               "ratio_to_bare": scenarios[name]["ratio_to_bare"]}
    version = subprocess.run([interpreter, "--version"], capture_output=True, text=True).stdout
    return {"python": version.strip(), "rounds": rounds, "command": "python -c pass",
            "measure": "CPU time (user + sys) of the child process", "scenarios": scenarios,
            "overheads": overheads}


def print_table(result: dict[str, Any]) -> None:
    print(f"\nInterpreter start-up, {result['python']}, {result['rounds']} interleaved rounds "
          f"(python -c pass), load average {result['load_average'][0]:.1f}")
    for title, data in (("CPU time (user + sys) of the process", result),
                        ("wall time", result["wall"])):
        print(f"\n{title}")
        print_rows(data)
    print(f"\nbootstrap imports (-X importtime, env set): "
          f"{result['bootstrap_import_us_median'] / 1000:.2f} ms median")


def print_rows(result: dict[str, Any]) -> None:
    print(f"{'scenario':<22}{'median ms':>10}{'p10':>8}{'p90':>8}{'ratio':>8}"
          f"{'overhead ms (p10..p90)':>28}")
    for name, row in result["scenarios"].items():
        extra = ""
        if name in result["overheads"]:
            o = result["overheads"][name]
            extra = (f"{o['overhead_median_ms']:+.2f} ({o['overhead_p10_ms']:+.2f}.."
                     f"{o['overhead_p90_ms']:+.2f})")
        print(f"{name:<22}{row['median_ms']:>10.2f}{row['p10_ms']:>8.2f}{row['p90_ms']:>8.2f}"
              f"{row['ratio_to_bare']:>8.3f}{extra:>28}")


if __name__ == "__main__":
    sys.exit(main())
