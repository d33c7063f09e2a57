"""``flightdeck-sensor run [--server URL] [--token-file PATH] [--session-id ID] -- CMD ...``

Sets the FLIGHTDECK_* variables and execs the command, so that every Python
process it starts boots the sensor from the ``.pth``. The token reaches it in
its environment (readable by its user only), never on a command line. The
options are checked first: a bad server URL or session id is an error here
(exit 2), not a warning in a process that has already started.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping

from ._config import resolve_config
from ._env_values import canonical_uuid
from ._token_file import (
    TokenError,
    add_token_options,
    environment_with_token,
    token_option_refused,
)

USAGE_ERROR = 2
COMMAND_NOT_FOUND = 127
COMMAND_NOT_EXECUTABLE = 126


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run", help="run a command with the sensor switched on for its Python processes",
        description="Run CMD with FLIGHTDECK_* set, so every Python process it starts reports "
                    "its LLM calls. Options override the environment.",
        usage="flightdeck-sensor run [--server URL] [--token-file PATH] [--session-id ID] "
              "-- CMD ...")
    parser.add_argument("--server", help="ingest URL (FLIGHTDECK_SERVER)")
    add_token_options(parser, "read the bearer token from the first line of PATH "
                              "(default: FLIGHTDECK_TOKEN)")
    parser.add_argument("--session-id", help="session-id hint, a UUID (FLIGHTDECK_SESSION_ID)")
    parser.add_argument("--agent-name", help="agent name (FLIGHTDECK_AGENT_NAME)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if token_option_refused(args, "run"):
        return USAGE_ERROR
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        return _fail("no command given (usage: flightdeck-sensor run [options] -- CMD ...)")
    try:
        env = child_environment(os.environ, args)
    except TokenError as error:
        return _fail(str(error))
    problem = _validate(env, args)
    if problem:
        return _fail(problem)
    try:
        os.execvpe(command[0], command, env)
    except FileNotFoundError:
        return _fail(f"command not found: {command[0]}", COMMAND_NOT_FOUND)
    except PermissionError:
        return _fail(f"command not executable: {command[0]}", COMMAND_NOT_EXECUTABLE)
    except OSError as exc:
        return _fail(f"cannot run {command[0]}: {exc.strerror or exc}", COMMAND_NOT_EXECUTABLE)
    return 0  # not reached: exec replaced this process


def child_environment(base: Mapping[str, str],
                      args: argparse.Namespace) -> dict[str, str]:
    """``base`` with the options' variables; raises TokenError for an unusable token file."""
    env = environment_with_token(base, getattr(args, "token_file", None))
    for option, variable in (("server", "FLIGHTDECK_SERVER"),
                             ("session_id", "FLIGHTDECK_SESSION_ID"),
                             ("agent_name", "FLIGHTDECK_AGENT_NAME")):
        value = getattr(args, option, None)
        if value is not None:
            env[variable] = value
    return env


def _validate(env: dict[str, str], args: argparse.Namespace) -> str | None:
    """An error message when the command would run without the sensor, else None."""
    hint = env.get("FLIGHTDECK_SESSION_ID", "").strip()
    if hint and canonical_uuid(hint) is None:
        source = "--session-id" if args.session_id is not None else "FLIGHTDECK_SESSION_ID"
        return (f"{source} {hint!r} is not a UUID (hash string identifiers with "
                "uuid.uuid5, e.g. python -c 'import uuid; print(uuid.uuid5(uuid.NAMESPACE_URL, "
                "\"my-workflow\"))')")
    if not env.get("FLIGHTDECK_SERVER", "").strip():
        return "no server: pass --server URL or set FLIGHTDECK_SERVER"
    config, warnings = resolve_config(env)
    if not config.enabled:
        reasons = "; ".join(w.removeprefix("flightdeck-sensor: ") for w in warnings)
        return reasons or "FLIGHTDECK_ENABLED is false: the sensor would stay off"
    for message in warnings:
        print(f"flightdeck-sensor run: warning: {message.removeprefix('flightdeck-sensor: ')}",
              file=sys.stderr)
    return None


def _fail(message: str, status: int = USAGE_ERROR) -> int:
    print(f"flightdeck-sensor run: error: {message}", file=sys.stderr)
    return status
