"""Commands that act on running agents through the collector's database: ``stop``,
``degrade``, ``budget``, ``directive`` and ``directives``.

They write the directive rows the collector hands out in its next answer to each
target session (an event post or a heartbeat), so they work while a collector
runs on the same database (WAL, busy timeout), and before one starts. ``--agent``
names a flavor (``AGENT_FLAVOR``, else the agent's name): a directive for it goes
to each of its sessions not ended, one row each, as Flightdeck fans them out.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._cli import _db_help
from ._control import DEFAULT_BLOCK_AT_PCT, DEFAULT_DEGRADE_AT_PCT, DEFAULT_WARN_AT_PCT

# The dispatcher builds every command's parser on each run: what the commands do, and
# the database code, load when one runs (_control_commands.py).
_PROG = "flightdeck-sensor"


def add_parser(subparsers: Any) -> None:
    stop = subparsers.add_parser(
        "stop", help="stop a running session, or every running session of an agent",
        description="Issue a shutdown directive: each intercepted call of the agent then "
                    "raises DirectiveError, and its session ends with directive_shutdown.")
    _add_target(stop)
    stop.add_argument("--reason", default="", help="shown to the agent and in its log")
    stop.set_defaults(func=_command("run_stop"))

    degrade = subparsers.add_parser(
        "degrade", help="move a running session, or an agent's sessions, to another model",
        description="Issue a degrade directive: the agent's later calls go to MODEL.")
    _add_target(degrade)
    degrade.add_argument("--to", required=True, metavar="MODEL", help="the model to use instead")
    degrade.add_argument("--reason", default="", help="shown to the agent and in its log")
    degrade.set_defaults(func=_command("run_degrade"))

    _add_budget_parsers(subparsers)
    _add_directive_parsers(subparsers)

    directives = subparsers.add_parser(
        "directives", help="list the directives issued and what became of each",
        description="Each directive: issued, delivered (handed to the agent), then "
                    "acknowledged, success or error as the agent reported, with its result.")
    scope = directives.add_mutually_exclusive_group()
    scope.add_argument("--session", metavar="SESSION", help="one session (id or unique prefix)")
    scope.add_argument("--agent", metavar="NAME", help="one agent (flavor)")
    directives.add_argument("--limit", type=int, default=50,
                            help="newest N directives, 0 for all (%(default)s)")
    directives.add_argument("--json", action="store_true", help="print JSON instead of a table")
    directives.add_argument("--db", type=Path, help=_db_help())
    directives.set_defaults(func=_command("run_directives"))


def _add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session", nargs="?", metavar="SESSION",
                        help="the session id, or a unique prefix of it")
    parser.add_argument("--agent", metavar="NAME",
                        help="every running session of this agent (its flavor: AGENT_FLAVOR, "
                             "else its agent name)")
    parser.add_argument("--db", type=Path, help=_db_help())


def _add_budget_parsers(subparsers: Any) -> None:
    budget = subparsers.add_parser(
        "budget", help="set, show or clear token budgets",
        description="Token budgets (policies) the collector serves to sensors at session "
                    "start; setting one also updates the agent's running sessions at once.")
    commands = budget.add_subparsers(dest="budget_command", metavar="COMMAND", required=True)
    set_ = commands.add_parser(
        "set", help="set the budget of an agent or of one session",
        description="Percentages are of --limit and must satisfy warn <= degrade <= block "
                    "(degrade only with --to). A session's own budget wins over its agent's.")
    _add_scope(set_)
    set_.add_argument("--limit", type=int, required=True, metavar="N",
                      help="token limit of each session (tokens_used_session)")
    set_.add_argument("--warn", type=int, default=DEFAULT_WARN_AT_PCT, metavar="PCT",
                      help="warn at this percentage (%(default)s)")
    set_.add_argument("--degrade", type=int, metavar="PCT",
                      help=f"switch to --to at this percentage "
                           f"({DEFAULT_DEGRADE_AT_PCT} with --to)")
    set_.add_argument("--to", metavar="MODEL", help="the cheaper model to degrade to")
    set_.add_argument("--block", type=int, default=DEFAULT_BLOCK_AT_PCT, metavar="PCT",
                      help="refuse calls at this percentage (%(default)s)")
    set_.set_defaults(func=_command("run_budget_set"))
    show = commands.add_parser("show", help="list the budgets")
    show.add_argument("--agent", metavar="NAME", help="only this agent's (and its sessions')")
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show.add_argument("--db", type=Path, help=_db_help())
    show.set_defaults(func=_command("run_budget_show"))
    clear = commands.add_parser("clear", help="remove the budget of an agent or of one session")
    _add_scope(clear)
    clear.set_defaults(func=_command("run_budget_clear"))


def _add_scope(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--agent", metavar="NAME", help="the agent (flavor)")
    scope.add_argument("--session", metavar="SESSION",
                       help="one session (its id, or a unique prefix of a known one)")
    parser.add_argument("--db", type=Path, help=_db_help())


def _add_directive_parsers(subparsers: Any) -> None:
    directive = subparsers.add_parser(
        "directive", help="run or list the custom directives agents registered")
    commands = directive.add_subparsers(dest="directive_command", metavar="COMMAND",
                                        required=True)
    run = commands.add_parser(
        "run", help="run a registered custom directive in an agent's running sessions",
        description="Each --param is coerced to the type the agent registered for it.")
    run.add_argument("name", metavar="NAME", help="the directive's registered name")
    target = run.add_mutually_exclusive_group(required=True)
    target.add_argument("--agent", metavar="NAME", help="every running session of this agent")
    target.add_argument("--session", metavar="SESSION", help="one session (id or unique prefix)")
    run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                     help="a parameter (repeat for each)")
    run.add_argument("--db", type=Path, help=_db_help())
    run.set_defaults(func=_command("run_directive_run"))
    list_ = commands.add_parser("list", help="the custom directives an agent registered")
    list_.add_argument("--agent", metavar="NAME", help="only this agent's")
    list_.add_argument("--json", action="store_true", help="print JSON instead of text")
    list_.add_argument("--db", type=Path, help=_db_help())
    list_.set_defaults(func=_command("run_directive_list"))


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    """The command ``_control_commands.<name>`` with its database open (and closed after),
    a refusal printed as one line on stderr with exit status 1."""

    def command(args: argparse.Namespace) -> int:
        import sqlite3

        from . import _control_commands
        from ._store import default_db_path, open_for_commands

        path = args.db or default_db_path()
        try:
            conn = open_for_commands(path)
        except (FileNotFoundError, sqlite3.Error) as error:
            print(f"{_PROG} {args.command}: no collector database at {path} ({error}). "
                  f"Start one with: {_PROG} collect", file=sys.stderr)
            return 1
        try:
            getattr(_control_commands, name)(args, conn)
        except _control_commands.CommandError as refusal:
            print(f"{_PROG} {args.command}: {refusal}", file=sys.stderr)
            return 1
        except sqlite3.Error as error:
            print(f"{_PROG} {args.command}: database error: {error}", file=sys.stderr)
            return 1
        finally:
            conn.close()
        return 0

    return command
