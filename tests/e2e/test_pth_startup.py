"""The installed wheel's ``.pth``, in fresh virtualenvs of every supported Python.

Specification (issue 2): with FLIGHTDECK_SERVER unset the ``.pth`` imports
nothing; with it set the bootstrap installs the import finder and nothing
heavy until a hooked module is imported; ``-I`` and ``-E`` still boot, ``-S``
does not; uninstalled, half-installed or misconfigured, every interpreter
starts silently and works.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

from fixtures.collector import CollectorProcess
from fixtures.venvs import PYTHON_VERSIONS, Venv
from flightdeck_sensor._bootstrap import PTH_LINE

pytestmark = pytest.mark.e2e

SERVER_ENV = {"FLIGHTDECK_SERVER": "http://127.0.0.1:9", "FLIGHTDECK_TOKEN": "tok-SECRET-123"}

# Modules the bootstrap may add to a bare interpreter: small stdlib ones only.
BOOT_MAY_IMPORT = {"__future__", "pwd"}

PROBE = r"""
import sys
modules = sorted(sys.modules)
import json
boot = sys.modules.get("flightdeck_sensor._bootstrap")
hooks = sys.modules.get("flightdeck_sensor._hooks")
print(json.dumps({
    "modules": modules,
    "booted": bool(boot and boot.booted),
    "finders": sum(type(f).__name__ == "PostImportFinder" for f in sys.meta_path),
    "pending": hooks.finder().pending() if hooks else None,
}))
"""

IMPORT_FAKE_LITELLM = r"""
import sys, json, importlib.util
sys.path.insert(0, sys.argv[-1] if len(sys.argv) > 1 else FAKE)
heavy_before = sorted(m for m in ("wrapt", "http.client", "logging", "threading")
                      if m in sys.modules)
import litellm
import litellm  # a second import must not fire again
from flightdeck_sensor import _hooks, _sensor
sensor = _sensor.current()
print(json.dumps({
    "heavy_before": heavy_before,
    "fired": _hooks.finder().fired,
    "finder_left": not any(type(f).__name__ == "PostImportFinder" for f in sys.meta_path),
    "sensor_origin": sensor.origin if sensor else None,
    "module_complete": litellm.COMPLETE,
    "installed": sorted(m for m in ("wrapt",) if importlib.util.find_spec(m)),
}))
"""


@pytest.fixture(scope="module", params=PYTHON_VERSIONS)
def venv(request: pytest.FixtureRequest, make_venv: Any) -> Venv:
    venv: Venv = make_venv(request.param)
    return venv


@pytest.fixture(scope="module")
def fake_litellm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in ``litellm`` package: importing it triggers the litellm hook."""
    root = tmp_path_factory.mktemp("fake_sdk")
    (root / "litellm").mkdir()
    (root / "litellm" / "__init__.py").write_text(
        "__version__ = '0.0.fake'\nCOMPLETE = True  # last line: set once fully loaded\n")
    return root


def probe(venv: Venv, env: dict[str, str] | None = None, flags: tuple[str, ...] = ()
          ) -> dict[str, Any]:
    result = venv.run(PROBE, env=env, flags=flags)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def sensor_modules(modules: list[str]) -> list[str]:
    return [m for m in modules if m.split(".")[0] == "flightdeck_sensor"]


def test_wheel_installs_the_one_line_pth_at_site_packages_root(venv: Venv) -> None:
    pth = venv.site_packages / "flightdeck_sensor.pth"

    assert pth.is_file()
    assert pth.read_text().splitlines() == [PTH_LINE]
    assert PTH_LINE.startswith("import ")


CONSOLE_FILES = ("index.html", "app.js", "app.css", "favicon.svg")


def test_wheel_ships_the_web_console_files(sensor_wheel: Path) -> None:
    with zipfile.ZipFile(sensor_wheel) as wheel:
        names = set(wheel.namelist())

    assert {f"flightdeck_sensor/collector/console/{name}" for name in CONSOLE_FILES} <= names


def test_installed_collector_serves_the_console_page(venv: Venv) -> None:
    served = venv.run(
        "from pathlib import Path\n"
        "from flightdeck_sensor.collector import _console\n"
        "console = _console.Console('t' * 16, Path('unused.db'))\n"
        "reply = console.handle('GET', '/', {}, False, lambda: None)\n"
        "print(reply.status, b'/console/app.js' in reply.body)\n")

    assert served.returncode == 0, served.stderr
    assert served.stdout.split() == ["200", "True"]


def test_env_unset_imports_nothing(venv: Venv) -> None:
    state = probe(venv)

    assert sensor_modules(state["modules"]) == []
    assert state["booted"] is False


def test_env_unset_pth_line_leaves_sys_modules_unchanged(venv: Venv) -> None:
    code = ("import sys\nbefore = set(sys.modules)\n"
            f"exec(open({str(venv.site_packages / 'flightdeck_sensor.pth')!r}).read())\n"
            "print(sorted(set(sys.modules) - before))")
    for env in ({}, {"FLIGHTDECK_SERVER": ""}, {"FLIGHTDECK_SERVER": "   "},
                {"FLIGHTDECK_EXPORT": ""}, {"FLIGHTDECK_EXPORT": "  ", "FLIGHTDECK_SERVER": ""},
                {"FLIGHTDECK_EXPORT": "otlp", "FLIGHTDECK_ENABLED": "false"},
                {**SERVER_ENV, "FLIGHTDECK_ENABLED": "false"},
                {**SERVER_ENV, "FLIGHTDECK_ENABLED": "0"}):
        result = venv.run(code, env=env)

        assert (result.returncode, result.stdout, result.stderr) == (0, "[]\n", ""), env


def test_otlp_export_alone_installs_the_finder_without_a_server(venv: Venv) -> None:
    bare = set(probe(venv)["modules"])

    state = probe(venv, {"FLIGHTDECK_EXPORT": "otlp",
                         "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})

    added = set(state["modules"]) - bare
    assert state["booted"] is True
    assert state["finders"] == 1
    assert "openai.resources.chat.completions.completions" in state["pending"]
    assert {m for m in added if not m.startswith("flightdeck_sensor")} <= BOOT_MAY_IMPORT


def test_env_set_installs_the_finder_and_only_small_stdlib_modules(venv: Venv) -> None:
    bare = set(probe(venv)["modules"])

    state = probe(venv, SERVER_ENV)

    added = set(state["modules"]) - bare
    assert state["booted"] is True
    assert state["finders"] == 1  # the .pth runs twice in a venv: still one finder
    assert "litellm" in state["pending"]
    assert "openai.resources.chat.completions.completions" in state["pending"]
    assert {m for m in added if not m.startswith("flightdeck_sensor")} <= BOOT_MAY_IMPORT
    assert "flightdeck_sensor._bootstrap" in added


def test_hooked_import_fires_once_and_creates_the_sensor(venv: Venv, fake_litellm: Path) -> None:
    env = {**SERVER_ENV, "FLIGHTDECK_PROVIDERS": "litellm"}

    result = venv.run(IMPORT_FAKE_LITELLM.replace("FAKE", repr(str(fake_litellm))), env=env)

    assert result.returncode == 0, result.stderr
    state = json.loads(result.stdout)
    assert state["installed"] == ["wrapt"]
    assert state["heavy_before"] == []
    assert state["fired"] == ["litellm"]
    assert state["module_complete"] is True
    assert state["sensor_origin"] == "env"
    assert state["finder_left"] is True  # every target fired: it removed itself
    assert "tok-SECRET-123" not in result.stderr


@pytest.mark.parametrize("flag", ["-I", "-E"])
def test_isolated_and_ignore_environment_flags_still_boot(venv: Venv, flag: str) -> None:
    state = probe(venv, SERVER_ENV, flags=(flag,))

    assert state["booted"] is True
    assert state["finders"] == 1


def test_no_site_flag_does_not_boot(venv: Venv) -> None:
    state = probe(venv, SERVER_ENV, flags=("-S",))

    assert sensor_modules(state["modules"]) == []


BROKEN_ENVS = {
    "not_http": {"FLIGHTDECK_SERVER": "ftp://collector.example",
                 "FLIGHTDECK_TOKEN": "tok-SECRET-123", "FLIGHTDECK_SHUTDOWN_TIMEOUT": "soon"},
    "bad_values": {**SERVER_ENV, "FLIGHTDECK_SHUTDOWN_TIMEOUT": "soon",
                   "FLIGHTDECK_AGENT_TYPE": "robot", "FLIGHTDECK_SESSION_ID": "not-a-uuid",
                   "FLIGHTDECK_PROVIDERS": "bogus", "FLIGHTDECK_LOG_LEVEL": "loud",
                   "FLIGHTDECK_CAPTURE_PROMPTS": "maybe", "FLIGHTDECK_SPOOL": "sometimes"},
    "insecure_public_http": {"FLIGHTDECK_SERVER": "http://flightdeck.example.com",
                             "FLIGHTDECK_TOKEN": "tok-SECRET-123"},
}


@pytest.mark.parametrize("broken", sorted(BROKEN_ENVS))
def test_broken_configuration_starts_silently_and_works(venv: Venv, broken: str) -> None:
    result = venv.run("print(sum(range(5)))", env=BROKEN_ENVS[broken])

    assert (result.returncode, result.stdout, result.stderr) == (0, "10\n", "")


def test_turned_off_configuration_warns_once_when_an_sdk_is_imported(
        venv: Venv, fake_litellm: Path) -> None:
    result = venv.run(IMPORT_FAKE_LITELLM.replace("FAKE", repr(str(fake_litellm))),
                      env=BROKEN_ENVS["not_http"])

    assert result.returncode == 0
    assert result.stderr.count("FLIGHTDECK_SERVER='ftp://collector.example'") == 1
    assert result.stderr.count("FLIGHTDECK_SHUTDOWN_TIMEOUT='soon'") == 1
    assert "tok-SECRET-123" not in result.stderr
    assert json.loads(result.stdout)["sensor_origin"] is None


def test_doctor_reports_a_working_setup_and_shows_warnings_at_once(
        venv: Venv, collector: CollectorProcess) -> None:
    result = venv.run_module("flightdeck_sensor", "doctor", "--timeout", "5",
                             env={**BROKEN_ENVS["bad_values"], **collector.env()})

    assert result.returncode == 0, result.stdout
    assert "(current)" in result.stdout
    assert "FLIGHTDECK_SHUTDOWN_TIMEOUT='soon' is not a number of seconds" in result.stdout
    assert "FLIGHTDECK_AGENT_TYPE='robot'" in result.stdout
    assert collector.token not in result.stdout + result.stderr
    assert f"POST {collector.ingest_url}/v1/events -> HTTP 400" in result.stdout  # token good


def test_doctor_console_script_fails_when_the_sensor_would_not_run(venv: Venv) -> None:
    import subprocess

    from fixtures.venvs import clean_env

    unset = subprocess.run([venv.script("flightdeck-sensor"), "doctor"], env=clean_env(),
                           capture_output=True, text=True, timeout=60)
    not_http = subprocess.run([venv.script("flightdeck-sensor"), "doctor"],
                              env=clean_env(BROKEN_ENVS["not_http"]),
                              capture_output=True, text=True, timeout=60)

    assert unset.returncode == 1
    assert "FLIGHTDECK_SERVER is not set" in unset.stdout
    assert not_http.returncode == 1
    assert "is not an http:// or https:// URL" in not_http.stdout


# -- private copies: uninstalled, half-installed, a bootstrap that raises -----


@pytest.fixture
def private_venv(venv: Venv, tmp_path: Path) -> Venv:
    return venv.copy_to(tmp_path / "venv")


def test_uninstall_leaves_an_interpreter_that_starts_silently(private_venv: Venv) -> None:
    private_venv.pip("uninstall", "--yes", "flightdeck-sensor")

    result = private_venv.run("print('ok')", env=SERVER_ENV)

    assert not (private_venv.site_packages / "flightdeck_sensor.pth").exists()
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok\n", "")


@pytest.mark.parametrize("damage", ["package_removed", "raises_SystemExit",
                                    "raises_KeyboardInterrupt", "syntax_error"])
def test_half_installed_package_starts_silently(private_venv: Venv, damage: str) -> None:
    package = private_venv.site_packages / "flightdeck_sensor"
    if damage == "package_removed":
        shutil.rmtree(package)
    else:
        body = {"raises_SystemExit": "raise SystemExit(3)\n",
                "raises_KeyboardInterrupt": "raise KeyboardInterrupt\n",
                "syntax_error": "def (:\n"}[damage]
        (package / "_bootstrap.py").write_text(body)
        shutil.rmtree(package / "__pycache__", ignore_errors=True)

    result = private_venv.run("print('ok')", env=SERVER_ENV)

    assert (result.returncode, result.stdout, result.stderr) == (0, "ok\n", "")
