"""Interpreter start-up cost of the sensor (the start-up budgets), in fresh virtualenvs.

Scenarios, each ``python -c pass`` (wall time of the whole process):

- ``bare``: a virtualenv with the sensor's dependencies but not the sensor;
- ``bare_env_set``: the same with FLIGHTDECK_SERVER set (a control: should be ``bare``);
- ``installed_env_unset``: the wheel installed, FLIGHTDECK_SERVER unset;
- ``env_set_no_sdk``: the wheel installed, FLIGHTDECK_SERVER set, no SDK imported.

And the cost of the sensor to a process that imports an SDK, in a second
interleaved group (each process imports openai, about a second of CPU: fewer
rounds), reported as two sub-dicts of the JSON, one per command:

- ``import_openai``, ``python -c "import openai"``:
  - ``openai_bare``: a virtualenv with the same dependencies plus openai, the
    sensor not installed, FLIGHTDECK_* unset (the baseline);
  - ``openai_env_set``: the same plus the wheel, FLIGHTDECK_SERVER set. Recent
    openai releases load their resources lazily, so ``import openai`` alone
    does not import the modules the sensor hooks: this measures the bootstrap
    and the import finder consulted on each of openai's ~800 imports, not the
    hook (the ``checks`` record, per scenario, whether it fired);
- ``openai_client``, the same with
  ``openai.OpenAI(api_key=...).chat.completions`` after the import, which
  imports the chat completions module: the post-import hook fires, creates
  the sensor and patches openai (no request is made):
  - ``openai_client_bare`` (the baseline) and ``openai_client_env_set``.

(Sensor installed with the env unset is not repeated with openai: the .pth
then installs nothing, so its cost is ``installed_env_unset``'s.)

Runs are interleaved (each round runs every scenario of its group once, in a
shuffled order) so drifts of a busy machine hit all scenarios alike; the
overhead of a scenario is the median of its per-round difference to its
baseline (``bare``, ``openai_bare``, ``openai_client_bare``). The budget figures
(``overheads``) are CPU time (user + sys) of the child, which a loaded
machine inflates far less than wall time; wall time is reported too
(``wall``). Also reports the bootstrap's own import time from
``-X importtime``. No FLIGHTDECK_* variable of the caller reaches a child:
each gets a clean environment plus what its scenario sets.

    .venv/bin/python -m benchmarks.startup [--rounds 300] [--openai-rounds 30]
        [--python 3.12] [--out FILE] [--quick]
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
import tempfile
import time
from typing import Any

from benchmarks._common import ROOT, percentile, run_main, write_report
from fixtures.venvs import base_venv, build_wheel, clean_env, create_venv, find_python

SERVER_ENV = {"FLIGHTDECK_SERVER": "http://127.0.0.1:9", "FLIGHTDECK_TOKEN": "bench-token"}
DEPENDENCIES = ("wrapt>=1.16", "httpx>=0.27")
# create_venv(..., extras=("openai",)) is a copy of base_venv(OPENAI_DEPENDENCIES) plus
# the wheel: the two virtualenvs of the openai group differ by the sensor only.
OPENAI_EXTRAS = ("openai",)
OPENAI_DEPENDENCIES = (*DEPENDENCIES, *OPENAI_EXTRAS)
IMPORT_OPENAI = "import openai"
OPENAI_CLIENT = 'import openai; openai.OpenAI(api_key="bench").chat.completions'
# Run after a command: what it did, without importing anything the sensor hooks.
OPENAI_CHECK = """
import json, sys
hooked = sys.modules.get("openai.resources.chat.completions.completions")
wrapt = sys.modules.get("wrapt")
print(json.dumps({"openai_version": sys.modules["openai"].__version__,
                  "sensor_imported": "flightdeck_sensor" in sys.modules,
                  "hooked_module_imported": hooked is not None,
                  "hook_fired": "flightdeck_sensor.interceptors._openai" in sys.modules,
                  "openai_patched": hooked is not None and wrapt is not None
                  and isinstance(hooked.Completions.__dict__["create"], wrapt.FunctionWrapper)}))
"""


def time_one(python: str, env: dict[str, str], code: str = "pass") -> tuple[float, float]:
    """(wall ms, CPU ms) of one ``python -c code``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter_ns()
    subprocess.run([python, "-c", code], env=env, check=True)
    wall = (time.perf_counter_ns() - started) / 1e6
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1e3
    return wall, cpu


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
    parser.add_argument("--openai-rounds", type=int, default=None,
                        help="rounds of the openai group (default 30, 4 with --quick; "
                             "0 skips it)")
    parser.add_argument("--quick", action="store_true",
                        help="40 rounds, 4 of the openai group (indicative only)")
    args = parser.parse_args()
    rounds = 40 if args.quick else args.rounds
    openai_rounds = args.openai_rounds if args.openai_rounds is not None else (
        4 if args.quick else 30)
    interpreter = find_python(args.python) if os.sep not in args.python else args.python
    if interpreter is None:
        print(f"Python {args.python} not found", file=sys.stderr)
        return 2

    print("==> building the wheel and the virtualenvs (cached)", file=sys.stderr)
    bare = base_venv(interpreter, DEPENDENCIES)
    installed = create_venv(interpreter, build_wheel())
    scenarios = {
        "bare": (bare.python, clean_env(), "pass"),
        "bare_env_set": (bare.python, clean_env(SERVER_ENV), "pass"),
        "installed_env_unset": (installed.python, clean_env(), "pass"),
        "env_set_no_sdk": (installed.python, clean_env(SERVER_ENV), "pass"),
    }
    print(f"==> {rounds} interleaved rounds of {len(scenarios)} scenarios", file=sys.stderr)
    wall, cpu = interleaved(scenarios, rounds, warmups=5)

    result = report(cpu, interpreter, rounds)
    result["wall"] = report(wall, interpreter, rounds, measure=WALL)
    result["load_average"] = os.getloadavg()
    result["bootstrap_import_us_median"] = bootstrap_import_us(installed.python,
                                                               max(10, rounds // 10))
    if openai_rounds > 0:
        result.update(openai_groups(interpreter, openai_rounds))
    write_report(result, args.out)
    print_table(result)
    return 0


Samples = dict[str, list[float]]
Scenario = tuple[str, dict[str, str], str]  # python, environment, code


def interleaved(scenarios: dict[str, Scenario], rounds: int,
                warmups: int) -> tuple[Samples, Samples]:
    """(wall, CPU) samples of each ``python -c code``: each round runs every scenario once,
    in a shuffled order, so sample i of every scenario comes from the same round."""
    for scenario in scenarios.values():  # warm the page cache and the .pyc files
        for _ in range(warmups):
            time_one(*scenario)
    wall: Samples = {name: [] for name in scenarios}
    cpu: Samples = {name: [] for name in scenarios}
    for _ in range(rounds):
        order = list(scenarios)
        random.shuffle(order)
        for name in order:
            wall_ms, cpu_ms = time_one(*scenarios[name])
            wall[name].append(wall_ms)
            cpu[name].append(cpu_ms)
    return wall, cpu


def openai_groups(interpreter: str, rounds: int) -> dict[str, dict[str, Any]]:
    """``import_openai`` and ``openai_client``: the sensor's cost to a process importing
    openai, measured in one interleaved group of rounds."""
    print("==> the openai virtualenvs (cached)", file=sys.stderr)
    bare = base_venv(interpreter, OPENAI_DEPENDENCIES)
    installed = create_venv(interpreter, build_wheel(), OPENAI_EXTRAS)
    with tempfile.TemporaryDirectory(prefix="bench-startup-spool-") as spool:
        # Nothing listens on the server's port: whatever the sensor sent would be spooled,
        # here rather than in the user's cache dir, and counted below.
        server_env = clean_env(SERVER_ENV | {"FLIGHTDECK_SPOOL_DIR": spool})
        groups = {
            "import_openai": ("openai_bare", {
                "openai_bare": (bare.python, clean_env(), IMPORT_OPENAI),
                "openai_env_set": (installed.python, server_env, IMPORT_OPENAI)}),
            "openai_client": ("openai_client_bare", {
                "openai_client_bare": (bare.python, clean_env(), OPENAI_CLIENT),
                "openai_client_env_set": (installed.python, server_env, OPENAI_CLIENT)}),
        }
        scenarios = {name: scenario for _, members in groups.values()
                     for name, scenario in members.items()}
        checks = {}
        for name, (python, env, code) in scenarios.items():
            done = subprocess.run([python, "-c", code + "\n" + OPENAI_CHECK], env=env,
                                  capture_output=True, text=True, check=True)
            checks[name] = json.loads(done.stdout)
        if not checks["openai_client_env_set"]["openai_patched"]:
            print("WARNING: openai_client_env_set: the sensor did not patch openai; "
                  "openai_client does not measure the hook", file=sys.stderr)
        print(f"==> {rounds} interleaved rounds of {len(scenarios)} scenarios (openai)",
              file=sys.stderr)
        # no warm-up: the checks just ran every scenario's command once
        wall, cpu = interleaved(scenarios, rounds, warmups=0)
        hook_imports = sensor_imports_us(scenarios["openai_client_env_set"],
                                         scenarios["openai_client_bare"], max(2, rounds // 8))
        spooled = sum(len(files) for _, _, files in os.walk(spool))
    results = {}
    for key, (baseline, members) in groups.items():
        command = f"python -c '{next(iter(members.values()))[2]}'"
        result = report({n: cpu[n] for n in members}, interpreter, rounds, baseline, command)
        result["wall"] = report({n: wall[n] for n in members}, interpreter, rounds, baseline,
                                command, WALL)
        result["openai_version"] = checks[baseline]["openai_version"]
        result["without_sensor"] = (f"{baseline}: the sensor not installed (a virtualenv with "
                                    "the same packages except the wheel), FLIGHTDECK_* unset")
        result["env_set"] = (f"FLIGHTDECK_SERVER={SERVER_ENV['FLIGHTDECK_SERVER']} (nothing "
                             "listens), FLIGHTDECK_TOKEN set, FLIGHTDECK_SPOOL_DIR a temporary "
                             "directory")
        result["interleaved_with"] = [n for n in scenarios if n not in members]
        result["checks"] = {n: checks[n] for n in members}
        result["files_spooled_in_the_run"] = spooled
        result["load_average"] = os.getloadavg()
        results[key] = result
    results["openai_client"]["sensor_imports_us_median"] = hook_imports
    return results


def importtime(python: str, env: dict[str, str], code: str) -> dict[str, int]:
    """Self import time (us) of every module ``python -X importtime -c code`` imports."""
    stderr = subprocess.run([python, "-X", "importtime", "-c", code], env=env,
                            capture_output=True, text=True, check=True).stderr
    modules = {}
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            self_us, _, name = line[len("import time:"):].split("|")
            if self_us.strip().isdigit():
                modules[name.strip()] = int(self_us)
    return modules


def sensor_imports_us(with_sensor: Scenario, without: Scenario, runs: int) -> float:
    """Median over ``runs`` of the summed self import time of the modules imported
    only with the sensor (bootstrap, then the hook's: wrapt, the interceptor, the
    transport...): a lower bound of the sensor's cost, far less noisy than the
    difference of two ~1 s processes; it leaves out the patching and the finder."""
    baseline = importtime(*without)
    totals = []
    for _ in range(runs):
        modules = importtime(*with_sensor)
        totals.append(sum(us for name, us in modules.items() if name not in baseline))
    return statistics.median(totals)


CPU = "CPU time (user + sys) of the child process"
WALL = "wall time of the child process"


def report(samples: Samples, interpreter: str, rounds: int, baseline: str = "bare",
           command: str = "python -c pass", measure: str = CPU) -> dict[str, Any]:
    """Medians and p10/p90 of each scenario; overheads are the median (p10, p90) of the
    per-round differences to ``baseline``; ratios are of medians."""
    ratio = f"ratio_to_{baseline}"
    base_median = statistics.median(samples[baseline])
    scenarios = {}
    overheads = {}
    for name, values in samples.items():
        scenarios[name] = {"median_ms": statistics.median(values),
                           "p10_ms": percentile(values, 0.1), "p90_ms": percentile(values, 0.9),
                           ratio: statistics.median(values) / base_median}
        if name != baseline:
            differences = [v - b for v, b in zip(values, samples[baseline], strict=True)]
            overheads[name] = {"overhead_median_ms": statistics.median(differences),
                               "overhead_p10_ms": percentile(differences, 0.1),
                               "overhead_p90_ms": percentile(differences, 0.9),
                               ratio: scenarios[name][ratio]}
    version = subprocess.run([interpreter, "--version"], capture_output=True, text=True).stdout
    return {"python": version.strip(), "rounds": rounds, "command": command,
            "measure": measure, "baseline": baseline,
            "scenarios": scenarios, "overheads": overheads}


def print_table(result: dict[str, Any]) -> None:
    print(f"\nInterpreter start-up, {result['python']}, {result['rounds']} interleaved rounds "
          f"(python -c pass), load average {result['load_average'][0]:.1f}")
    print_clocks(result)
    print(f"\nbootstrap imports (-X importtime, env set): "
          f"{result['bootstrap_import_us_median'] / 1000:.2f} ms median")
    for key in ("import_openai", "openai_client"):
        group = result.get(key)
        if not group:
            continue
        print(f"\n{key}: {group['command']}, openai {group['openai_version']}, "
              f"{group['rounds']} interleaved rounds, load average "
              f"{group['load_average'][0]:.1f}; openai patched: "
              + ", ".join(f"{name} {check['openai_patched']}"
                          for name, check in group["checks"].items())
              + f"; files spooled: {group['files_spooled_in_the_run']}")
        if "sensor_imports_us_median" in group:
            print(f"imports only with the sensor (-X importtime): "
                  f"{group['sensor_imports_us_median'] / 1000:.2f} ms median")
        print_clocks(group)


def print_clocks(result: dict[str, Any]) -> None:
    for title, data in (("CPU time (user + sys) of the process", result),
                        ("wall time", result["wall"])):
        print(f"\n{title}")
        print_rows(data)


def print_rows(result: dict[str, Any]) -> None:
    ratio = f"ratio_to_{result.get('baseline', 'bare')}"
    print(f"{'scenario':<28}{'median ms':>10}{'p10':>9}{'p90':>9}{'ratio':>8}"
          f"{'overhead ms (p10..p90)':>30}")
    for name, row in result["scenarios"].items():
        extra = ""
        if name in result["overheads"]:
            o = result["overheads"][name]
            extra = (f"{o['overhead_median_ms']:+.2f} ({o['overhead_p10_ms']:+.2f}.."
                     f"{o['overhead_p90_ms']:+.2f})")
        print(f"{name:<28}{row['median_ms']:>10.2f}{row['p10_ms']:>9.2f}{row['p90_ms']:>9.2f}"
              f"{row[ratio]:>8.3f}{extra:>30}")


if __name__ == "__main__":
    sys.exit(run_main(main))
