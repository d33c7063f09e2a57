"""``flightdeck-sensor doctor``: would the sensor run here, and if not, why not.

Checks this interpreter (is the ``.pth`` installed and processed, is ``-S`` in
effect), the FLIGHTDECK_* variables (token masked), the resolved configuration
and every warning (logged at once here, not held as at start-up), the SDKs
installed, the server's ``/health`` and the spool. Exit status 1 when the
sensor would not run, else 0 (an unreachable server is a warning: the sensor
runs and spools).
"""

from __future__ import annotations

import argparse
import json
import os
import site
import sys
from typing import Any

from ._config import Config, mask_token, resolve_config
from ._version import __version__

PTH_NAME = "flightdeck_sensor.pth"
SDK_DISTRIBUTIONS = ("anthropic", "openai", "litellm", "httpx", "wrapt")
_LEGACY_VARS = ("AGENT_FLAVOR", "AGENT_TYPE")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "doctor", help="check that the sensor would run in this environment, and why not",
        description="Check the .pth, the FLIGHTDECK_* variables, the resolved configuration, "
                    "the SDKs, the server's /health and the spool. Exit 1 when the sensor "
                    "would not run.")
    parser.add_argument("--timeout", type=float, default=3.0,
                        help="seconds to wait for the server's /health (default 3)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = diagnose(os.environ, timeout=args.timeout)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(render(report))
    return 1 if report["problems"] else 0


def diagnose(env: Any, timeout: float = 3.0) -> dict[str, Any]:
    """Everything doctor shows, as data; ``problems`` lists why the sensor would not run."""
    problems: list[str] = []
    notes: list[str] = []
    pth = pth_status()
    if not pth["installed"]:
        problems.append(f"{PTH_NAME} is not installed in this interpreter's site-packages: "
                        "reinstall flightdeck-sensor")
    elif not pth["current"]:
        problems.append(f"{pth['path']} is not this version's line: reinstall flightdeck-sensor")
    if pth["no_site"]:
        problems.append("python -S is in effect: site-packages .pth files are not processed")
    elif pth["installed"] and not pth["on_path"]:
        problems.append(f"{pth['directory']} is not processed as a site directory here")
    config, warnings = resolve_config(env)
    if not config.enabled:
        problems.append(_why_off(env))
    health = check_health(config, timeout) if config.server else None
    if health is not None and not health["ok"]:
        notes.append(f"the server's /health did not answer ({health['error']}): events will be "
                     "retried and spooled until it does")
    return {
        "sensor_version": __version__,
        "python": {"executable": sys.executable, "version": sys.version.split()[0]},
        "pth": pth,
        "environment": environment_variables(env),
        "config": config.as_dict(),
        "warnings": [w.removeprefix("flightdeck-sensor: ") for w in warnings],
        "sdks": installed_sdks(),
        "health": health,
        "spool": spool(config),
        "problems": problems,
        "notes": notes,
    }


def _why_off(env: Any) -> str:
    if not str(env.get("FLIGHTDECK_SERVER", "")).strip():
        return "FLIGHTDECK_SERVER is not set: the sensor is off"
    enabled = str(env.get("FLIGHTDECK_ENABLED", "")).strip().lower()
    if enabled in ("0", "false", "no", "off", "n", "f"):
        return f"FLIGHTDECK_ENABLED={enabled!r}: the sensor is off"
    return "the configuration turned the sensor off (see the warnings)"


def pth_status() -> dict[str, Any]:
    from ._bootstrap import PTH_LINE, booted

    directories = _site_directories()
    path = next((os.path.join(d, PTH_NAME) for d in directories
                 if os.path.isfile(os.path.join(d, PTH_NAME))), None)
    content = _read(path) if path else None
    directory = os.path.dirname(path) if path else None
    return {
        "installed": path is not None,
        "path": path,
        "directory": directory,
        "current": content is not None and content.strip() == PTH_LINE,
        "no_site": bool(sys.flags.no_site),
        "on_path": directory is not None and directory in sys.path,
        "booted_at_startup": booted,
    }


def _site_directories() -> list[str]:
    directories: list[str] = []
    if hasattr(site, "getsitepackages"):  # missing from very old virtualenv site.py
        directories.extend(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        directories.append(site.getusersitepackages())
    directories.extend(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))
    return list(dict.fromkeys(directories))


def environment_variables(env: Any) -> dict[str, str]:
    shown = {}
    for name in sorted(env):
        if name.startswith("FLIGHTDECK_") or name in _LEGACY_VARS:
            value = str(env[name])
            shown[name] = str(mask_token(value)) if name == "FLIGHTDECK_TOKEN" else value
    return shown


def installed_sdks() -> dict[str, str | None]:
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for name in SDK_DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def check_health(config: Config, timeout: float) -> dict[str, Any]:
    import urllib.error
    import urllib.request

    url = f"{config.server}/health"
    agent = {"User-Agent": f"flightdeck-sensor/{__version__}"}
    request = urllib.request.Request(url, headers=agent)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(4096).decode("utf-8", "replace")
            return {"url": url, "ok": response.status == 200, "status": response.status,
                    "body": body[:200], "error": None if response.status == 200 else
                    f"HTTP {response.status}"}
    except urllib.error.HTTPError as exc:
        return {"url": url, "ok": False, "status": exc.code, "body": None,
                "error": f"HTTP {exc.code}"}
    except Exception as exc:
        reason = getattr(exc, "reason", None) or exc
        return {"url": url, "ok": False, "status": None, "body": None,
                "error": f"{type(exc).__name__}: {reason}"}


def spool(config: Config) -> dict[str, Any] | None:
    try:
        from . import transport

        summary = getattr(transport, "spool_summary", None)
        return dict(summary(config)) if summary is not None and config.server else None
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


# -- text rendering -------------------------------------------------------------


def render(report: dict[str, Any]) -> str:
    pth = report["pth"]
    lines = [f"flightdeck-sensor {report['sensor_version']} doctor",
             f"python       {report['python']['executable']} ({report['python']['version']})"]
    if pth["installed"]:
        state = "current" if pth["current"] else "OUTDATED"
        lines.append(f".pth         {pth['path']} ({state})")
    else:
        lines.append(".pth         NOT INSTALLED")
    lines.append(f"             site processing: {'OFF (-S)' if pth['no_site'] else 'on'}; "
                 f"booted at start-up: {'yes' if pth['booted_at_startup'] else 'no'}")
    lines.append("environment  " + (", ".join(f"{k}={v}" for k, v in
                                              report["environment"].items()) or "(none set)"))
    config = report["config"]
    lines.append(f"config       server={config['server'] or '(none)'} "
                 f"enabled={config['enabled']} token={config['token'] or '(none)'}")
    for key in ("agent_name", "agent_type", "session_id_hint", "providers", "capture_prompts",
                "log_level", "shutdown_timeout", "spool_enabled", "spool_dir"):
        lines.append(f"             {key}={config[key]}")
    lines.append("warnings     " + ("(none)" if not report["warnings"] else ""))
    lines.extend(f"  - {w}" for w in report["warnings"])
    lines.append("SDKs         " + ", ".join(f"{k} {v or 'not installed'}"
                                             for k, v in report["sdks"].items()))
    health = report["health"]
    if health is None:
        lines.append("server       (no server configured)")
    else:
        answer = f"HTTP {health['status']}" if health["status"] else health["error"]
        lines.append(f"server       GET {health['url']} -> {answer}")
    if report["spool"] is not None:
        lines.append(f"spool        {json.dumps(report['spool'], default=str)}")
    for note in report["notes"]:
        lines.append(f"note         {note}")
    if report["problems"]:
        lines.append("verdict      the sensor would NOT run:")
        lines.extend(f"  - {p}" for p in report["problems"])
    else:
        lines.append("verdict      OK: Python processes of this environment will report "
                     "their LLM calls")
    return "\n".join(lines)
