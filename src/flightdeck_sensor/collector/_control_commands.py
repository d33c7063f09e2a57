"""What ``stop``, ``degrade``, ``budget``, ``directive`` and ``directives`` do, given
their parsed arguments and an open database (``_control_cli.py`` builds the parsers
and opens it). Each refuses with :class:`CommandError`, whose message is printed
after the command's name.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import shlex
import sqlite3
from dataclasses import dataclass
from typing import Any

from . import _control
from ._control import DEFAULT_BLOCK_AT_PCT, DEFAULT_DEGRADE_AT_PCT, DEFAULT_WARN_AT_PCT
from ._report import (
    directive_state,
    lookup_session,
    printable_line,
    render_directives,
    render_registered,
)
from ._store import write_transaction
from ._validate import is_canonical_uuid

_PROG = "flightdeck-sensor"
_SHUTDOWN_REASON = "stopped from the command line"


class CommandError(Exception):
    """A refusal to print (after the command's name) with exit status 1."""


# --- stop, degrade ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    """What an operator's command issued: one directive per target session."""

    action: str
    sessions: list[str]
    ids: list[str]
    agent: str | None = None  # set when issued to a whole agent (flavor)

    def as_json(self) -> dict[str, Any]:
        return {"action": self.action, "agent": self.agent,
                "directives": [{"session_id": session, "directive_id": directive_id}
                               for session, directive_id in zip(self.sessions, self.ids,
                                                                strict=True)]}


def run_stop(args: argparse.Namespace, conn: sqlite3.Connection) -> None:
    _print_issued(stop(conn, args.session, args.agent, args.reason))


def stop(conn: sqlite3.Connection, session: str | None, agent: str | None,
         reason: str = "") -> Issued:
    """A shutdown to SESSION, or shutdown_flavor to each running session of AGENT (the
    command line's ``stop`` and the console's buttons)."""
    return _issue_to_target(conn, session, agent, _control.DirectiveSpec(
        "shutdown", reason=reason or _SHUTDOWN_REASON), flavor_action="shutdown_flavor")


def run_degrade(args: argparse.Namespace, conn: sqlite3.Connection) -> None:
    _print_issued(degrade(conn, args.session, args.agent, args.to, args.reason))


def degrade(conn: sqlite3.Connection, session: str | None, agent: str | None, to: str,
            reason: str = "") -> Issued:
    model = to.strip()
    if not model or len(model) > 256 or not model.isprintable():
        raise CommandError("--to: a model name (printable, at most 256 characters)")
    return _issue_to_target(conn, session, agent, _control.DirectiveSpec(
        "degrade", reason=reason, degrade_to=model))


def _issue_to_target(conn: sqlite3.Connection, session: str | None, agent: str | None,
                     spec: _control.DirectiveSpec, flavor_action: str | None = None) -> Issued:
    """``spec`` to the SESSION argument, or fanned out to the running sessions of --agent
    (as ``flavor_action`` when given: shutdown_flavor for stop)."""
    if (session is None) == (agent is None):
        raise CommandError("give a SESSION or --agent NAME (one of them)")
    if session is not None:
        target = _running_session(conn, session)
        with write_transaction(conn):
            ids = _control.issue(conn, spec, [target])
        return Issued(spec.action, [target], ids)
    assert agent is not None
    if flavor_action is not None:
        spec = _control.DirectiveSpec(flavor_action, spec.reason, spec.grace_period_ms,
                                      spec.degrade_to, spec.payload)
    with write_transaction(conn):
        sessions = _running_sessions_of(conn, agent)
        ids = _control.issue(conn, spec, sessions, flavor=agent)
    return Issued(spec.action, sessions, ids, agent=agent)


def _running_session(conn: sqlite3.Connection, prefix: str) -> str:
    """The id of the session SESSION names; refused when unknown, ambiguous or ended."""
    session = _known_session(conn, prefix)
    if session["state"] == "closed":
        raise CommandError(f"session {session['session_id']} has ended "
                           f"({session['close_reason'] or 'closed'}); nothing to act on")
    return str(session["session_id"])


def _known_session(conn: sqlite3.Connection, prefix: str) -> dict[str, Any]:
    session, problem = lookup_session(conn, prefix.strip().lower())
    if session is None:
        raise CommandError(problem)
    return session


def _running_sessions_of(conn: sqlite3.Connection, agent: str) -> list[str]:
    sessions = _control.running_sessions(conn, agent)
    if sessions:
        return sessions
    row = conn.execute("SELECT flavor FROM sessions WHERE agent_name = ? AND flavor != ?"
                       " ORDER BY started_at DESC LIMIT 1", (agent, agent)).fetchone()
    hint = f" (its sessions have the flavor {row['flavor']!r}: use --agent with that)" \
        if row and row["flavor"] else ""
    raise CommandError(f"no running session of agent {agent!r}{hint}")


def _print_issued(issued: Issued, action: str | None = None) -> None:
    action = action or issued.action
    sessions, ids, agent = issued.sessions, issued.ids, issued.agent
    target = f"{len(sessions)} running session{'s' if len(sessions) != 1 else ''} of agent " \
             f"{agent!r}" if agent is not None else f"session {sessions[0]}"
    lines = [f"Issued {action} to {target}:"]
    lines += [f"  session {session}  directive {directive_id}"
              for session, directive_id in zip(sessions, ids, strict=True)]
    lines.append("Each is handed to its agent in the answer to its next event or heartbeat. "
                 f"Follow them with: {_PROG} directives"
                 + (f" --agent {shlex.quote(agent)}" if agent is not None else
                    f" --session {sessions[0][:8]}"))
    print("\n".join(lines))


# --- budget ----------------------------------------------------------------------------------


def run_budget_set(args: argparse.Namespace, conn: sqlite3.Connection) -> None:
    policy, issued = set_budget(conn, args.session, args.agent, checked_budget(
        args.limit, args.warn, args.degrade, args.to, args.block))
    print(f"Budget of {_scope_text(policy['scope'], policy['scope_value'])}: "
          f"{_budget_text(policy)} (policy {policy['id']}).")
    _print_updates(issued.sessions, issued.ids)


def set_budget(conn: sqlite3.Connection, session: str | None, agent: str | None,
               budget: dict[str, Any]) -> tuple[dict[str, Any], Issued]:
    """Save the budget (``checked_budget``'s fields) of AGENT or SESSION and send it to
    the running sessions it covers: the policy, and the policy_update directives."""
    with write_transaction(conn):
        scope, value = _policy_scope(conn, session, agent)
        policy = _control.save_policy(conn, scope, value, budget)
        sessions = _covered_sessions(conn, scope, value)
        flavor = value if scope == "flavor" else None
        ids = _control.issue(conn, _control.DirectiveSpec("policy_update", payload=policy),
                             sessions, flavor=flavor)
    return policy, Issued("policy_update", sessions, ids, agent=flavor)


def checked_budget(limit: int, warn: int, degrade: int | None, degrade_to: str | None,
                   block: int) -> dict[str, Any]:
    """The policy fields, or CommandError naming the rule broken: limit > 0; each
    percentage in 1..100; warn <= degrade <= block (degrade only with a model to go to)."""
    if limit <= 0:
        raise CommandError("--limit must be a positive number of tokens")
    if degrade is not None and not degrade_to:
        raise CommandError("--degrade needs --to MODEL (the model to degrade to)")
    if degrade_to is not None and (not degrade_to.strip() or len(degrade_to) > 256
                                   or not degrade_to.isprintable()):
        raise CommandError("--to: a model name (printable, at most 256 characters)")
    if degrade_to and degrade is None:
        degrade = DEFAULT_DEGRADE_AT_PCT
    for flag, pct in (("--warn", warn), ("--degrade", degrade), ("--block", block)):
        if pct is not None and not 0 < pct <= 100:
            raise CommandError(f"{flag} {pct}: a percentage of --limit, 1 to 100")
    order = [("--warn", warn), ("--degrade", degrade), ("--block", block)]
    present = [(flag, pct) for flag, pct in order if pct is not None]
    for (low_flag, low), (high_flag, high) in itertools.pairwise(present):
        if low > high:
            raise CommandError(f"{low_flag} {low} is above {high_flag} {high}: the thresholds "
                               f"must satisfy warn <= degrade <= block (defaults: warn "
                               f"{DEFAULT_WARN_AT_PCT}, block "
                               f"{DEFAULT_BLOCK_AT_PCT})")
    return {"token_limit": limit, "warn_at_pct": warn,
            "degrade_at_pct": degrade if degrade_to else None,
            "degrade_to": degrade_to.strip() if degrade_to else None, "block_at_pct": block}


def _policy_scope(conn: sqlite3.Connection, session: str | None,
                  agent: str | None) -> tuple[str, str]:
    """("flavor", NAME), or ("session", id): a full id may name a session not seen yet."""
    if agent is not None:
        if not agent or len(agent) > 1024:
            raise CommandError("--agent: a flavor name, at most 1,024 characters")
        return "flavor", agent
    if session is None:
        raise CommandError("give --session SESSION or --agent NAME (one of them)")
    if is_canonical_uuid(session.strip()):
        return "session", session.strip().lower()
    return "session", str(_known_session(conn, session)["session_id"])


def _covered_sessions(conn: sqlite3.Connection, scope: str, value: str) -> list[str]:
    """The running sessions whose effective policy this scope's is: a session's own
    policy wins over its flavor's, so those sessions are left out of a flavor's."""
    if scope == "session":
        row = conn.execute("SELECT state FROM sessions WHERE session_id = ?", (value,)).fetchone()
        return [value] if row is not None and row["state"] != "closed" else []
    own = {row["scope_value"] for row in conn.execute(
        "SELECT scope_value FROM policies WHERE scope = 'session'")}
    return [session for session in _control.running_sessions(conn, value) if session not in own]


def _print_updates(sessions: list[str], ids: list[str]) -> None:
    if not sessions:
        print("No running session to update: new sessions fetch it when they start.")
        return
    print(f"policy_update issued to {len(sessions)} running "
          f"session{'s' if len(sessions) != 1 else ''}:")
    for session, directive_id in zip(sessions, ids, strict=True):
        print(f"  session {session}  directive {directive_id}")


def _scope_text(scope: str, value: str) -> str:
    return f"agent {value!r}" if scope == "flavor" else f"session {value}"


def _budget_text(policy: dict[str, Any]) -> str:
    text = f"limit {policy['token_limit']:,} tokens, warn at {policy['warn_at_pct']}%"
    if policy.get("degrade_to"):
        text += f", degrade to {policy['degrade_to']} at {policy['degrade_at_pct']}%"
    return text + f", block at {policy['block_at_pct']}%"


def run_budget_show(args: argparse.Namespace, conn: sqlite3.Connection) -> None:
    query = "SELECT * FROM policies"
    params: tuple[Any, ...] = ()
    if args.agent is not None:
        query += (" WHERE (scope = 'flavor' AND scope_value = ?) OR (scope = 'session' AND"
                  " scope_value IN (SELECT session_id FROM sessions WHERE flavor = ?))")
        params = (args.agent, args.agent)
    rows = conn.execute(query + " ORDER BY scope, scope_value", params).fetchall()
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print("No budgets set. Set one with: flightdeck-sensor budget set --agent NAME --limit N")
        return
    for row in rows:
        print(printable_line(f"{_scope_text(row['scope'], row['scope_value'])}: "
                             f"{_budget_text(row)}  (policy {row['id']})"))


def run_budget_clear(args: argparse.Namespace, conn: sqlite3.Connection) -> None:
    with write_transaction(conn):
        scope, value = _policy_scope(conn, args.session, args.agent)
        sessions = _covered_sessions(conn, scope, value)
        deleted = conn.execute("DELETE FROM policies WHERE scope = ? AND scope_value = ?",
                               (scope, value)).rowcount
        if not deleted:
            raise CommandError(f"no budget set for {_scope_text(scope, value)}")
        updates = _fallback_updates(conn, sessions)
    print(f"Budget of {_scope_text(scope, value)} removed.")
    if updates:
        print(f"policy_update issued to {len(updates)} running session(s) that now fall back "
              "to their agent's budget.")
    if len(updates) < len(sessions):
        print(f"{len(sessions) - len(updates)} running session(s) keep the budget they have "
              "until they end (new sessions start without one).")


def _fallback_updates(conn: sqlite3.Connection, sessions: list[str]) -> list[str]:
    """For each running session that still has an effective policy (its flavor's, after
    its own was removed), a policy_update with it; the directive ids."""
    ids = []
    for session in sessions:
        row = conn.execute("SELECT flavor FROM sessions WHERE session_id = ?",
                           (session,)).fetchone()
        policy = _control.effective_policy(conn, row["flavor"] if row else None, session)
        if policy is not None:
            ids += _control.issue(conn, _control.DirectiveSpec("policy_update", payload=policy),
                                  [session])
    return ids


# --- custom directives -----------------------------------------------------------------------


def run_directive_run(args: argparse.Namespace, conn: sqlite3.Connection) -> None:
    issued, parameters = run_custom(conn, args.name, args.session, args.agent, args.param)
    _print_issued(issued, f"custom directive {args.name!r} "
                          f"{json.dumps(parameters, sort_keys=True)}")


def run_custom(conn: sqlite3.Connection, name: str, session: str | None, agent: str | None,
               pairs: list[str]) -> tuple[Issued, dict[str, Any]]:
    """The custom directive NAME that the agent registered, with its KEY=VALUE parameters
    coerced to their registered types, to SESSION or each running session of AGENT."""
    if (session is None) == (agent is None):
        raise CommandError("give --session SESSION or --agent NAME (one of them)")
    if session is not None:
        session = _running_session(conn, session)
        flavor_row = conn.execute("SELECT flavor FROM sessions WHERE session_id = ?",
                                  (session,)).fetchone()
        flavor = flavor_row["flavor"] or ""
    else:
        assert agent is not None
        flavor = agent
    definition = _registered(conn, flavor, name)
    parameters = coerce_parameters(json.loads(definition["parameters"]), pairs)
    spec = _control.DirectiveSpec("custom", payload={
        "directive_name": definition["name"], "fingerprint": definition["fingerprint"],
        "parameters": parameters})
    with write_transaction(conn):
        if session is not None:
            sessions, target_flavor = [session], None
        else:
            sessions, target_flavor = _running_sessions_of(conn, flavor), flavor
        ids = _control.issue(conn, spec, sessions, flavor=target_flavor)
    return Issued("custom", sessions, ids, agent=target_flavor), parameters


def _registered(conn: sqlite3.Connection, flavor: str, name: str) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM custom_directives WHERE flavor = ? AND name = ?",
                       (flavor, name)).fetchone()
    if row is not None:
        found: dict[str, Any] = row
        return found
    names = [entry["name"] for entry in conn.execute(
        "SELECT name FROM custom_directives WHERE flavor = ? ORDER BY name", (flavor,))]
    known = f"it registered: {', '.join(names)}" if names else "it registered none"
    raise CommandError(f"agent {flavor!r} registered no directive {name!r} ({known})")


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def coerce_parameters(registered: list[dict[str, Any]], pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as the registered parameters' types, defaults filled in;
    CommandError for a malformed pair, an unknown or repeated key, a value of the wrong
    type or not among the options, or a required parameter missing."""
    by_name = {str(parameter.get("name")): parameter for parameter in registered}
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise CommandError(f"--param {pair!r}: expected KEY=VALUE")
        if key not in by_name:
            known = ", ".join(sorted(by_name)) or "none"
            raise CommandError(f"unknown parameter {key!r} (this directive takes: {known})")
        if key in values:
            raise CommandError(f"parameter {key!r} given twice")
        values[key] = _coerced(by_name[key], text)
    for name, parameter in by_name.items():
        if name in values:
            continue
        if parameter.get("required"):
            raise CommandError(f"missing required parameter {name!r} "
                               f"({parameter.get('type')}): add --param {name}=VALUE")
        if parameter.get("default") is not None:
            values[name] = parameter["default"]
    return values


def _coerced(parameter: dict[str, Any], text: str) -> Any:
    name, kind = parameter.get("name"), str(parameter.get("type") or "string").lower()
    value: Any
    if kind in ("string", "str"):
        value = text
    elif kind in ("integer", "int"):
        try:
            value = int(text.strip(), 10)
        except ValueError:
            raise CommandError(f"parameter {name!r}: {text!r} is not an integer") from None
    elif kind in ("float", "number"):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise CommandError(f"parameter {name!r}: {text!r} is not a finite number")
    elif kind in ("boolean", "bool"):
        word = text.strip().lower()
        if word not in _TRUE | _FALSE:
            raise CommandError(f"parameter {name!r}: {text!r} is not a boolean "
                               "(true/false, yes/no, 1/0, on/off)")
        value = word in _TRUE
    else:
        raise CommandError(f"parameter {name!r} has the type {kind!r}, which this command "
                           "cannot make from text")
    options = parameter.get("options")
    if options and value not in options:
        raise CommandError(f"parameter {name!r}: {value!r} is not one of {options!r}")
    return value


def run_directive_list(args: argparse.Namespace, conn: sqlite3.Connection) -> None:
    query = "SELECT * FROM custom_directives"
    params: tuple[Any, ...] = ()
    if args.agent is not None:
        query, params = query + " WHERE flavor = ?", (args.agent,)
    rows = conn.execute(query + " ORDER BY flavor, name", params).fetchall()
    for row in rows:
        row["parameters"] = json.loads(row["parameters"])
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print("No custom directives registered" + (f" by agent {args.agent!r}." if args.agent
                                                   else "."))
        return
    print(render_registered(rows))


def run_directives(args: argparse.Namespace, conn: sqlite3.Connection) -> None:
    query = "SELECT * FROM directives"
    params: tuple[Any, ...] = ()
    if args.session is not None:
        session = _known_session(conn, args.session)
        query, params = query + " WHERE session_id = ?", (session["session_id"],)
    elif args.agent is not None:
        query += " WHERE session_id IN (SELECT session_id FROM sessions WHERE flavor = ?)"
        params = (args.agent,)
    query += " ORDER BY seq DESC" + (" LIMIT ?" if args.limit > 0 else "")
    rows = conn.execute(query, params + ((args.limit,) if args.limit > 0 else ())).fetchall()
    rows.reverse()
    for row in rows:
        row["state"] = directive_state(row)
        row["payload"] = _control.read_back(row["payload"])
        row["result"] = _control.read_back(row["result"])
        del row["seq"]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print("No directives issued yet. Issue one with: flightdeck-sensor stop SESSION")
        return
    print(render_directives(rows))
