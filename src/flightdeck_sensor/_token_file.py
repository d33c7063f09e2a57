"""A command's bearer token: from ``$FLIGHTDECK_TOKEN`` or ``--token-file PATH``.

Never from the command line itself: every user of the machine can read it
(``ps``, ``/proc/PID/cmdline``). ``collect``, ``run`` and ``spool flush`` share
these options and this reader.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path


class TokenError(Exception):
    """No usable token; the message never contains one."""


def add_token_options(parser: argparse.ArgumentParser, token_file_help: str) -> None:
    parser.add_argument("--token-file", type=Path, metavar="PATH", help=token_file_help)
    # Removed, not deprecated: a deprecated flag would still put the token where all can read it.
    parser.add_argument("--token", help=argparse.SUPPRESS)


def token_option_refused(args: argparse.Namespace, command: str) -> bool:
    """True (and why, on stderr) when ``--token`` was given; the value is not repeated."""
    if getattr(args, "token", None) is None:
        return False
    print(f"flightdeck-sensor {command}: --token was removed, because every user of this "
          "machine can read a command line; put the token in FLIGHTDECK_TOKEN or in a file "
          "given with --token-file", file=sys.stderr)
    return True


def environment_with_token(env: Mapping[str, str], token_file: Path | None) -> dict[str, str]:
    """A copy of ``env`` whose FLIGHTDECK_TOKEN comes from ``token_file`` when one is given
    (named on purpose, it wins over the variable); raises TokenError for an unusable file."""
    result = dict(env)
    if token_file is not None:
        result["FLIGHTDECK_TOKEN"] = read_token_file(token_file)
    return result


def read_token_file(path: Path) -> str:
    """The first line of ``path``; a symlink, or a file of another user, is refused."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as error:
        raise TokenError(f"cannot read the token file {path}: {error.strerror or error}") from None
    with os.fdopen(descriptor, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or (hasattr(os, "getuid")
                                              and info.st_uid != os.getuid()):
            raise TokenError(f"the token file {path} is not a regular file of this user")
        first_line = file.read(4096).decode("utf-8", "replace").partition("\n")[0]
    return checked_token(first_line.strip(), f"the token file {path}")


def checked_token(token: str, source: str) -> str:
    if not token:
        raise TokenError(f"{source} is empty")
    if not token.isprintable() or any(c.isspace() for c in token) or not token.isascii():
        raise TokenError(f"{source} holds spaces, control or non-ASCII characters "
                         "(value not shown)")
    return token
