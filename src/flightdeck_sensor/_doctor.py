"""``flightdeck-sensor doctor``: would events from here arrive, and if not, why not.

Checks this interpreter (is the ``.pth`` installed and processed, is ``-S`` in
effect), the FLIGHTDECK_* variables (secrets masked, a mistyped name given its
likely meaning), the resolved configuration and every warning (logged at once
here, not held as at start-up), the SDKs installed, the server (its
``/health``, and the token, checked the way the sender presents it) and that
the spool can be written. Exit status 1 when events would not arrive.

The token check POSTs ``{}`` to ``/v1/events``: Flightdeck (and the local
collector) check the token before the body, so a refused token answers 401
and an accepted one 400, and nothing is stored. No request follows a
redirect (the token would go with it), and each has a deadline for the whole
exchange, not only for each read.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import site
import sys
import tempfile
from typing import Any

from ._config import Config, mask_token, resolve_config
from ._printable import printable
from ._url import redact_url
from ._version import __version__

PTH_NAME = "flightdeck_sensor.pth"
SDK_DISTRIBUTIONS = ("anthropic", "openai", "litellm", "httpx", "wrapt")
_LEGACY_VARS = ("AGENT_FLAVOR", "AGENT_TYPE")
# Every FLIGHTDECK_* variable the package reads (a unit test keeps this list complete).
KNOWN_VARIABLES = (
    "FLIGHTDECK_SERVER", "FLIGHTDECK_TOKEN", "FLIGHTDECK_ENABLED", "FLIGHTDECK_SESSION_ID",
    "FLIGHTDECK_AGENT_NAME", "FLIGHTDECK_AGENT_TYPE", "FLIGHTDECK_AGENT_ROLE",
    "FLIGHTDECK_PARENT_SESSION_ID", "FLIGHTDECK_HOSTNAME", "FLIGHTDECK_CAPTURE_PROMPTS",
    "FLIGHTDECK_INJECT_STREAM_USAGE", "FLIGHTDECK_PROVIDERS", "FLIGHTDECK_LOG_LEVEL",
    "FLIGHTDECK_SHUTDOWN_TIMEOUT", "FLIGHTDECK_SPOOL", "FLIGHTDECK_SPOOL_DIR",
    "FLIGHTDECK_ALLOW_INSECURE", "FLIGHTDECK_MAX_QUEUE_EVENTS", "FLIGHTDECK_MAX_QUEUE_BYTES",
    "FLIGHTDECK_MAX_CONTENT_BYTES", "FLIGHTDECK_COMPRESSION", "FLIGHTDECK_COLLECTOR_DB",
    "FLIGHTDECK_API_URL", "FLIGHTDECK_HEARTBEAT_INTERVAL", "FLIGHTDECK_TOKEN_LIMIT",
    "FLIGHTDECK_WARN_AT", "FLIGHTDECK_EXPORT",
    "FLIGHTDECK_PYTHON",
)
_SECRET_NAME_PARTS = ("TOKEN", "KEY", "SECRET", "PASS")
_NOT_SECRET = ("FLIGHTDECK_TOKEN_LIMIT",)  # a number of LLM tokens, not a credential
# Secret-looking text anywhere in what doctor prints: a Flightdeck or provider key, a
# bearer credential, the user:password@ of a URL.
_SECRET_PATTERNS = (
    (re.compile(r"\b(ftd_|sk-)[A-Za-z0-9_\-.~+/=]+"), r"\1***"),
    (re.compile(r"\b(Bearer)\s+[^\s'\"]+", re.IGNORECASE), r"\1 ***"),
    (re.compile(r"(://)[^/@\s'\"]*@"), r"\1***@"),
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "doctor", help="check that events from this environment would arrive, and why not",
        description="Check the .pth, the FLIGHTDECK_* variables, the resolved configuration, "
                    "the SDKs, the server and the token (as the sensor presents it) and the "
                    "spool. Exit 1 when events would not arrive.")
    parser.add_argument("--timeout", type=float, default=3.0,
                        help="seconds allowed for each request to the server, in all "
                             "(default 3)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = diagnose(os.environ, timeout=args.timeout)
    token = str(os.environ.get("FLIGHTDECK_TOKEN", "")).strip()
    if args.json:
        print(mask_secrets(json.dumps(report, indent=2, default=str), token))
    else:
        print(mask_secrets(render(report), token))
    return 1 if report["problems"] else 0


def diagnose(env: Any, timeout: float = 3.0) -> dict[str, Any]:
    """Everything doctor shows, as data; ``problems`` lists why events would not arrive."""
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
    notes.extend(unknown_variable_notes(env))
    config, warnings = resolve_config(env)
    if not config.enabled:
        problems.append(_why_off(env))
    server = check_server(config, timeout) if config.enabled and config.server else None
    if server is not None and server["problem"]:
        problems.append(server["problem"])
    if server is not None and server["note"]:
        notes.append(server["note"])
    otlp = check_otlp(config, timeout) if config.enabled and config.to_otlp else None
    if otlp is not None and otlp["problem"]:
        problems.append(otlp["problem"])
    spool_report = spool(config) if config.enabled else None
    if spool_report is not None and spool_report.get("problem"):
        problems.append(spool_report["problem"])
    return {
        "sensor_version": __version__,
        "python": {"executable": sys.executable, "version": sys.version.split()[0]},
        "pth": pth,
        "environment": environment_variables(env),
        "config": config.as_dict(),
        "warnings": [w.removeprefix("flightdeck-sensor: ") for w in warnings],
        "sdks": installed_sdks(),
        "server": server,
        "otlp": otlp,
        "spool": spool_report,
        "problems": problems,
        "notes": notes,
    }


def _why_off(env: Any) -> str:
    if not str(env.get("FLIGHTDECK_SERVER", "")).strip():
        return "FLIGHTDECK_SERVER is not set: the sensor is off"
    enabled = str(env.get("FLIGHTDECK_ENABLED", "")).strip().lower()
    if enabled in ("0", "false", "no", "off", "n", "f"):
        return f"FLIGHTDECK_ENABLED={printable(enabled, 20)!r}: the sensor is off"
    return "the configuration turned the sensor off (see the warnings)"


# -- variables and secrets ---------------------------------------------------------


def environment_variables(env: Any) -> dict[str, str]:
    """The FLIGHTDECK_* (and legacy) variables set; a value that may be secret is masked,
    and so is that of an unknown name (a mistyped token is still a token)."""
    shown = {}
    for name in sorted(env):
        if name.startswith("FLIGHTDECK_") or name in _LEGACY_VARS:
            value = str(env[name])
            secret = (name not in KNOWN_VARIABLES and name not in _LEGACY_VARS) or (
                any(part in name for part in _SECRET_NAME_PARTS) and name not in _NOT_SECRET)
            shown[printable(name, 80)] = (str(mask_token(value)) if secret
                                          else printable(redact_url(value), 200))
    return shown


def unknown_variable_notes(env: Any) -> list[str]:
    """For each FLIGHTDECK_* name the sensor does not read: the known name it is closest to."""
    notes = []
    for name in sorted(env):
        if not name.startswith("FLIGHTDECK_") or name in KNOWN_VARIABLES:
            continue
        close = difflib.get_close_matches(name, KNOWN_VARIABLES, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        notes.append(f"{printable(name, 80)} is not a variable the sensor reads{hint}")
    return notes


def mask_secrets(text: str, token: str = "") -> str:
    """``text`` with the token and anything secret-looking replaced by ``***``."""
    if len(token) >= 4:
        text = text.replace(token, "***")
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


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


def installed_sdks() -> dict[str, str | None]:
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for name in SDK_DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


# -- the server ---------------------------------------------------------------------


def check_server(config: Config, timeout: float) -> dict[str, Any]:
    """The server's /health, then the token as the sender presents it; ``problem`` says
    why events would not arrive, ``note`` what else to know."""
    health = http_request("GET", f"{config.server}/health", None, {}, timeout)
    result: dict[str, Any] = {"health": health, "auth": None, "problem": None, "note": None}
    if health["status"] is None:
        result["problem"] = (f"the server does not answer at {config.server} "
                             f"({health['error']}): events would be retried and spooled, "
                             "not delivered")
        return result
    redirect = _redirect_problem(health)
    if redirect:
        result["problem"] = redirect
        return result
    headers = {"Content-Type": "application/json"}
    if config.token:
        headers["Authorization"] = f"Bearer {config.token}"
    auth = http_request("POST", f"{config.server}/v1/events", b"{}", headers, timeout)
    result["auth"] = auth
    result["problem"], result["note"] = _judge_token_check(auth, bool(config.token))
    return result


def check_otlp(config: Config, timeout: float) -> dict[str, Any]:
    """An empty export to the OTLP traces endpoint, with the configured headers (an
    empty protobuf message is a valid request): whether spans would be accepted."""
    protobuf = config.otlp_protocol == "http/protobuf"
    headers = {**dict(config.otlp_headers),
               "Content-Type": "application/x-protobuf" if protobuf else "application/json"}
    export = http_request("POST", config.otlp_endpoint, b"" if protobuf else b"{}", headers,
                          timeout)
    result: dict[str, Any] = {"export": export, "problem": None}
    status = export["status"]
    if status is None:
        result["problem"] = (f"the OTLP endpoint does not answer at {export['url']} "
                             f"({export['error']}): spans would be retried and spooled, "
                             "not delivered")
    elif not 200 <= status < 300:
        result["problem"] = (f"the OTLP endpoint {export['url']} answered HTTP {status} to an "
                             "empty export: spans would not be accepted")
    return result


def _redirect_problem(answer: dict[str, Any]) -> str | None:
    status = answer["status"]
    if status is None or not 300 <= status < 400:
        return None
    location = printable(redact_url(str(answer["location"] or "(none)")), 200)
    return (f"{answer['method']} {answer['url']} answered HTTP {status}, a redirect to "
            f"{location}: the sensor does not follow redirects (the token would go with "
            "them); set FLIGHTDECK_SERVER to the final URL")


def _judge_token_check(auth: dict[str, Any], has_token: bool) -> tuple[str | None, str | None]:
    """(problem, note) for the answer to POST /v1/events with body {}."""
    status = auth["status"]
    if status is None:
        return (f"POST {auth['url']} got no answer ({auth['error']}): events would not be "
                "delivered"), None
    if status == 400:
        return None, None  # the token was accepted; the empty event was not (nothing stored)
    if status in (401, 403):
        which = "the token was refused" if has_token else "FLIGHTDECK_TOKEN is not set"
        return f"POST {auth['url']} answered HTTP {status}: {which}", None
    redirect = _redirect_problem(auth)
    if redirect:
        return redirect, None
    if status == 429:
        return None, "the server is rate-limiting this token (HTTP 429): events will wait"
    if 200 <= status < 300:
        return None, (f"POST {auth['url']} accepted an empty event (HTTP {status}): this may "
                      "not be a Flightdeck ingest API")
    if status in (404, 405):
        return (f"POST {auth['url']} answered HTTP {status}: there is no ingest API at "
                "this URL"), None
    return (f"POST {auth['url']} answered HTTP {status} "
            f"({printable(auth['body'], 120)}): events would not be delivered"), None


def http_request(method: str, url: str, body: bytes | None, headers: dict[str, str],
                 timeout: float) -> dict[str, Any]:
    """One request as the sender makes it (``transport._http.request``): no redirect
    followed, the whole exchange within ``timeout`` seconds however the server paces
    its answer. ``{"method", "url", "status" (None: no answer), "location", "body",
    "error"}``, every text from the server made printable."""
    from .transport._http import request

    sent = {"User-Agent": f"flightdeck-sensor/{__version__}", **headers}
    got = request(url, method, body, sent, timeout=timeout, deadline=timeout, max_bytes=4096)
    answered = got.status != 0
    error = (f"no complete answer within {timeout:g} s" if got.error.startswith("timeout")
             else got.error)
    return {"method": method, "url": printable(redact_url(url), 300),
            "status": got.status if answered else None, "location": got.location,
            "body": printable(got.body.decode("utf-8", "replace"), 200) if answered else None,
            "error": None if answered else printable(error, 200)}


def _describe(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
    return printable(f"{type(exc).__name__}: {reason}", 200)


# -- the spool ----------------------------------------------------------------------


def spool(config: Config) -> dict[str, Any] | None:
    """The spool's summary, and whether this user can write there (a problem if not:
    what the sender cannot deliver in time would be lost)."""
    try:
        from . import transport

        summary = getattr(transport, "spool_summary", None)
        report: dict[str, Any] = dict(summary(config)) if summary is not None else {}
    except Exception as exc:
        return {"error": _describe(exc), "problem": f"the spool cannot be read ({_describe(exc)})"}
    report["problem"] = None
    if config.spool_enabled and report.get("directory"):
        error = spool_write_error(str(report["directory"]))
        report["writable"] = error is None
        if error is not None:
            report["problem"] = (f"the spool directory {report['directory']} cannot be "
                                 f"written ({error}): events not delivered in time would be "
                                 "lost")
    return report


def spool_write_error(directory: str) -> str | None:
    """None when a file can be made (and removed) in ``directory``, or in the nearest
    existing directory above it (the sensor makes the rest), else why not."""
    target = directory
    while not os.path.isdir(target):
        parent = os.path.dirname(target)
        if os.path.lexists(target) or parent == target:
            return f"{target} is not a directory"
        target = parent
    try:
        descriptor, path = tempfile.mkstemp(prefix=".doctor-", dir=target)
    except OSError as exc:
        return printable(exc.strerror or exc, 200)
    os.close(descriptor)
    os.unlink(path)
    return None


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
    for key in ("export", "otlp_endpoint", "otlp_protocol", "otlp_headers", "agent_name",
                "agent_type", "session_id_hint", "providers", "capture_prompts",
                "log_level", "shutdown_timeout", "spool_enabled", "spool_dir"):
        lines.append(f"             {key}={config[key]}")
    lines.append("warnings     " + ("(none)" if not report["warnings"] else ""))
    lines.extend(f"  - {w}" for w in report["warnings"])
    lines.append("SDKs         " + ", ".join(f"{k} {v or 'not installed'}"
                                             for k, v in report["sdks"].items()))
    lines.extend(_render_server(report["server"]))
    export = (report.get("otlp") or {}).get("export")
    if export is not None:
        result = f"HTTP {export['status']}" if export["status"] else export["error"]
        lines.append(f"otlp         {export['method']} {export['url']} -> {result}")
    if report["spool"] is not None:
        shown = {k: v for k, v in report["spool"].items() if k != "problem"}
        lines.append(f"spool        {json.dumps(shown, default=str)}")
    for note in report["notes"]:
        lines.append(f"note         {note}")
    if report["problems"]:
        lines.append("verdict      events from this environment would NOT arrive:")
        lines.extend(f"  - {p}" for p in report["problems"])
    else:
        lines.append("verdict      OK: Python processes of this environment will report "
                     "their LLM calls")
    return "\n".join(lines)


def _render_server(server: dict[str, Any] | None) -> list[str]:
    if server is None:
        return ["server       (not checked: the sensor is off, or sends to OTLP only)"]
    lines = []
    for label, answer in (("server      ", server["health"]), ("token       ", server["auth"])):
        if answer is not None:
            result = f"HTTP {answer['status']}" if answer["status"] else answer["error"]
            lines.append(f"{label} {answer['method']} {answer['url']} -> {result}")
    return lines
