"""``flightdeck-sensor spool status|flush``: look at and ship the spool of a server."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from .._config import Config, resolve_config
from .._token_file import (
    TokenError,
    add_token_options,
    environment_with_token,
    token_option_refused,
)


def add_parser(subparsers: Any) -> None:
    spool = subparsers.add_parser(
        "spool", help="show or ship events that could not be delivered",
        description="Events a process could not deliver wait in a per-server spool; any later "
                    "process with the same server ships them first. These commands do it now.")
    commands = spool.add_subparsers(dest="spool_command", metavar="ACTION")
    status = commands.add_parser("status", help="files, events and bytes waiting")
    flush = commands.add_parser("flush", help="send the spooled events now")
    for command in (status, flush):
        command.add_argument("--server", help="ingest URL (default: $FLIGHTDECK_SERVER)")
        command.add_argument("--json", action="store_true", help="print JSON")
    add_token_options(flush, "read the bearer token from the first line of PATH "
                             "(default: $FLIGHTDECK_TOKEN)")
    flush.add_argument("--timeout", type=float, default=60.0,
                       help="give up after this many seconds (%(default)s)")
    status.set_defaults(func=run_status)
    flush.set_defaults(func=run_flush)
    spool.set_defaults(func=lambda args: (spool.print_help(), 2)[1])


def _config(args: argparse.Namespace) -> Config | None:
    if token_option_refused(args, "spool flush"):
        return None
    try:
        env = environment_with_token(os.environ, getattr(args, "token_file", None))
    except TokenError as error:
        print(f"flightdeck-sensor spool: {error}", file=sys.stderr)
        return None
    if args.server is not None:  # the command line wins over the environment
        env["FLIGHTDECK_SERVER"] = args.server
    config, _ = resolve_config(env)
    if not config.server:
        print("flightdeck-sensor spool: no server: set FLIGHTDECK_SERVER or pass --server",
              file=sys.stderr)
        return None
    return config


def run_status(args: argparse.Namespace) -> int:
    config = _config(args)
    if config is None:
        return 2
    from . import spool_summary

    summary = spool_summary(config)
    if args.json:
        print(json.dumps(summary))
    else:
        state = "on" if summary["enabled"] else "off"
        print(f"spool ({state}) {summary['directory']}: {summary['events']} events in "
              f"{summary['files']} files, {summary['bytes']} bytes")
    return 0


def run_flush(args: argparse.Namespace) -> int:
    config = _config(args)
    if config is None:
        return 2
    from ._queue import EventQueue
    from ._sender import Sender
    from ._spool import Spool, spool_dir_for

    spool = Spool(spool_dir_for(config.server, config.spool_dir))
    sender = Sender(config, EventQueue(1, 1), spool, on_envelope=None)
    sender.begin_close(time.monotonic() + max(0.0, args.timeout))
    sender.run(replay=True)  # ships the spool, stops at the first failure or the deadline
    sender.leftovers()
    sender.close_client()
    stats = sender.stats
    left = spool.summary()["events"]
    result = {"sent": stats.sent, "dropped": stats.dropped, "left": left,
              "last_error": stats.last_error}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"sent {stats.sent} events; dropped {sum(stats.dropped.values())} "
              f"{stats.dropped or ''}; {left} left in the spool"
              + (f" (last error: {stats.last_error})" if stats.last_error else ""))
    return 0 if not left else 1
