"""``flightdeck-sensor`` command line: one dispatcher; each command lives beside
the part it belongs to and exposes ``add_parser(subparsers)`` which sets
``func`` (returning the exit status)."""

from __future__ import annotations

import argparse
import importlib
import sys

_COMMAND_MODULES = (
    "flightdeck_sensor._doctor",            # doctor
    "flightdeck_sensor._launcher",          # run
    "flightdeck_sensor.collector._cli",     # collect, sessions, events
    "flightdeck_sensor.collector._control_cli",  # stop, degrade, budget, directive(s)
    "flightdeck_sensor.transport._spool_cli",  # spool flush / status
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flightdeck-sensor",
                                     description="In-process observability sensor for AI agents.")
    from ._version import __version__

    parser.add_argument("--version", action="version", version=f"flightdeck-sensor {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
