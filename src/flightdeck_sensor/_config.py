"""Resolved sensor configuration.

Stdlib only, and only the cheapest of it: the ``.pth`` bootstrap imports this
module at interpreter start, where ``dataclasses``, ``uuid``, ``socket``,
``urllib.parse`` or ``typing`` would each cost more than the whole start-up
budget (BENCHMARKS.md, start-up). Hence the hand-written ``Config`` class, and
the hand-written parsers of values (``_env_values``) and of the server URL
(``_url``).

``resolve_config`` turns the environment plus ``init()`` keyword arguments
(environment wins) into one frozen :class:`Config` and a list of warning
messages; it never raises. Every bad value gives one warning naming the
variable, the bad value (never the token's) and what is used instead.
"""

from __future__ import annotations

import os

from ._env_values import (
    MAX_AGENT_ROLE_BYTES,
    canonical_uuid,
    parse_agent_type,
    parse_bool,
    parse_compression,
    parse_fraction,
    parse_log_level,
    parse_path,
    parse_positive_int,
    parse_role,
    parse_seconds,
    parse_text,
    parse_uuid,
)
from ._otel_env import (
    DEFAULT_ENDPOINT,
    parse_export,
    parse_pairs,
    parse_protocol,
    traces_url,
)
from ._providers import PROVIDER_NAMES as PROVIDER_NAMES  # each provider is named once there
from ._url import api_url_for, normalize_server_url, redact_url

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, TypeVar

    T = TypeVar("T")

DEFAULT_SHUTDOWN_TIMEOUT = 2.0
# Beyond this an exit flush is no longer a budget; and past about 1e9 s the
# thread join it bounds raises OverflowError and the exit flush never runs.
MAX_SHUTDOWN_TIMEOUT = 300.0
DEFAULT_HEARTBEAT_INTERVAL = 30.0
MAX_HEARTBEAT_INTERVAL = 3600.0
MIN_HEARTBEAT_INTERVAL = 1.0  # the sender's tick: it cannot beat faster
DEFAULT_WARN_AT = 0.8



_FIELDS: tuple[str, ...] = (
    "server", "token", "enabled", "session_id_hint", "agent_name", "agent_type", "user",
    "hostname", "flavor", "agent_role", "parent_session_id", "capture_prompts",
    "inject_stream_usage", "providers", "log_level", "shutdown_timeout", "spool_enabled",
    "spool_dir", "allow_insecure", "max_queue_events", "max_queue_bytes", "max_content_bytes",
    "compression", "api_url", "heartbeat_interval", "token_limit", "warn_at",
    "export", "otlp_endpoint", "otlp_headers", "otlp_protocol", "otlp_resource",
)
_SECRET_FIELDS = ("token", "otlp_headers")


class Config:
    """The sensor's settings for this process; immutable, ``token`` never in ``repr``."""

    __slots__ = _FIELDS

    server: str  # normalized ingest base URL, always containing /ingest, no trailing slash
    token: str | None
    enabled: bool
    session_id_hint: str | None  # canonical lowercase UUID, or None
    agent_name: str
    agent_type: str
    user: str
    hostname: str
    flavor: str
    agent_role: str | None
    parent_session_id: str | None
    capture_prompts: bool
    inject_stream_usage: bool
    providers: frozenset[str]
    log_level: int | None  # set only when FLIGHTDECK_LOG_LEVEL (or log_level=) was given
    shutdown_timeout: float
    spool_enabled: bool
    spool_dir: str | None  # None: the user's cache dir
    allow_insecure: bool
    max_queue_events: int
    max_queue_bytes: int
    max_content_bytes: int
    compression: str  # auto (gzip unless the server is on loopback) | gzip | none
    api_url: str  # control-plane API base (policy, directive registration); "" with no server
    heartbeat_interval: float  # seconds between heartbeats of an idle session; 0: none
    token_limit: int | None  # the local budget (warns only)
    warn_at: float  # fraction of token_limit at which the local budget warns
    export: str  # flightdeck | otlp | both: where events go (FLIGHTDECK_EXPORT)
    otlp_endpoint: str  # the OTLP/HTTP traces URL; "" when nothing goes to OTLP
    otlp_headers: tuple[tuple[str, str], ...]  # sent with every OTLP request: may hold secrets
    otlp_protocol: str  # http/protobuf | http/json
    otlp_resource: tuple[tuple[str, str], ...]  # OTEL_RESOURCE_ATTRIBUTES, service.name resolved

    def __init__(
        self,
        server: str,
        token: str | None = None,
        enabled: bool = True,
        session_id_hint: str | None = None,
        agent_name: str = "",
        agent_type: str = "production",
        user: str = "",
        hostname: str = "",
        flavor: str = "",
        agent_role: str | None = None,
        parent_session_id: str | None = None,
        capture_prompts: bool = False,
        inject_stream_usage: bool = False,
        providers: frozenset[str] = frozenset(PROVIDER_NAMES),
        log_level: int | None = None,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        spool_enabled: bool = True,
        spool_dir: str | None = None,
        allow_insecure: bool = False,
        max_queue_events: int = 10_000,
        max_queue_bytes: int = 16 * 1024 * 1024,
        max_content_bytes: int = 64 * 1024,
        compression: str = "auto",
        api_url: str = "",
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
        token_limit: int | None = None,
        warn_at: float = DEFAULT_WARN_AT,
        export: str = "flightdeck",
        otlp_endpoint: str = "",
        otlp_headers: tuple[tuple[str, str], ...] = (),
        otlp_protocol: str = "http/protobuf",
        otlp_resource: tuple[tuple[str, str], ...] = (),
    ) -> None:
        values = locals()
        for name in _FIELDS:
            object.__setattr__(self, name, values[name])

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Config is immutable; use config.replace({name}=...)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Config is immutable")

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied (the ``dataclasses.replace`` of this class)."""
        values = {name: getattr(self, name) for name in _FIELDS}
        values.update(changes)
        return Config(**values)

    def as_dict(self) -> dict[str, object]:
        """Every field, the token masked (for ``doctor`` and logs)."""
        values = {name: getattr(self, name) for name in _FIELDS}
        values["token"] = mask_token(self.token)
        values["otlp_headers"] = masked_headers(self.otlp_headers)
        values["providers"] = sorted(self.providers)
        return values

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Config):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in _FIELDS)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, n) for n in _FIELDS))

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in _FIELDS if n not in _SECRET_FIELDS)
        return f"Config({shown}, otlp_headers={masked_headers(self.otlp_headers)!r})"

    @property
    def to_otlp(self) -> bool:
        """Every LLM call goes as a span to an OTLP endpoint (``server`` is
        set when events go to Flightdeck too)."""
        return bool(self.otlp_endpoint)


def mask_token(token: str | None) -> str | None:
    return None if token is None else f"<set, {len(token)} characters>"


def masked_headers(headers: tuple[tuple[str, str], ...]) -> list[str]:
    """The names of the OTLP headers, never their values (an API key is one)."""
    return [f"{name}: <set, {len(value)} characters>" for name, value in headers]


def resolve_config(
    env: Mapping[str, str] | None = None, **kwargs: object
) -> tuple[Config, list[str]]:
    """Resolve env + kwargs into a Config; return it with the warnings to log."""
    try:
        return _resolve(os.environ if env is None else env, kwargs)
    except Exception as exc:  # a bug here must not stop the user's program
        return Config(server="", enabled=False), [
            f"flightdeck-sensor: could not read its configuration ({type(exc).__name__}: "
            f"{exc}); the sensor stays off"]


_KNOWN_KWARGS = frozenset((
    "server", "token", "enabled", "session_id", "agent_name", "agent_type", "hostname",
    "capture_prompts", "inject_stream_usage", "providers", "log_level", "shutdown_timeout",
    "spool", "spool_dir", "allow_insecure", "agent_role", "parent_session_id",
    "max_queue_events", "max_queue_bytes", "max_content_bytes", "compression",
    "api_url", "heartbeat_interval", "limit", "warn_at",
))


class _Sources:
    """Looks a setting up in the environment first, then in the init() keywords,
    and collects a warning for every value it cannot use."""

    def __init__(self, env: Mapping[str, str], kwargs: Mapping[str, object]) -> None:
        self.env = env
        self.kwargs = kwargs
        self.warnings: list[str] = []

    def candidates(self, env_names: tuple[str, ...], kwarg: str | None) -> list[tuple[str, object]]:
        found: list[tuple[str, object]] = []
        for name in env_names:
            value = self.env.get(name)
            if value is not None and value.strip():
                found.append((name, value.strip()))
        if kwarg is not None and self.kwargs.get(kwarg) is not None:
            found.append((f"init({kwarg}=...)", self.kwargs[kwarg]))
        return found

    def first_valid(
        self,
        env_names: tuple[str, ...],
        kwarg: str | None,
        parse: Callable[[object], T | None],
        expected: str,
        default: T,
    ) -> T:
        """The first candidate that parses; each bad one before it is warned about."""
        return self._first_valid(env_names, kwarg, parse, expected, default)[0]

    def at_most(
        self,
        env_names: tuple[str, ...],
        kwarg: str | None,
        parse: Callable[[object], float | None],
        expected: str,
        default: float,
        maximum: float,
    ) -> float:
        """``first_valid``, then cut down to ``maximum`` with a warning when above it."""
        value, source, raw = self._first_valid(env_names, kwarg, parse, expected, default)
        if value <= maximum:
            return value
        self.warn(f"{source}={_shown(raw)} is above the maximum of {maximum:g}; using {maximum!r} "
                  "instead")
        return maximum

    def _first_valid(
        self,
        env_names: tuple[str, ...],
        kwarg: str | None,
        parse: Callable[[object], T | None],
        expected: str,
        default: T,
    ) -> tuple[T, str | None, object]:
        """``(value, where it came from, the raw value)``; ``(default, None, None)``
        when no candidate parses."""
        bad: list[tuple[str, object]] = []
        result: tuple[T, str | None, object] = (default, None, None)
        for source, raw in self.candidates(env_names, kwarg):
            value = parse(raw)
            if value is not None:
                result = (value, source, raw)
                break
            bad.append((source, raw))
        for source, raw in bad:
            self.warn(f"{source}={_shown(raw)} is not {expected}; using {_shown(result[0])} "
                      "instead")
        return result

    def warn(self, message: str) -> None:
        self.warnings.append(f"flightdeck-sensor: {message}")


def _shown(value: object, limit: int = 120) -> str:
    """``repr`` of a value (control characters escaped), cut after ``limit`` characters."""
    cut = isinstance(value, str) and len(value) > limit
    if cut:
        value = str(value)[:limit]  # before repr: a 100 KB value makes no 100 KB string
    text = repr(value if not isinstance(value, frozenset) else ",".join(sorted(value)))
    return text[:limit - 3] + "..." if cut or len(text) > limit else text


def _resolve(env: Mapping[str, str], kwargs: Mapping[str, object]) -> tuple[Config, list[str]]:
    from ._identity import current_user, default_agent_name, system_hostname

    src = _Sources(env, kwargs)
    for name in sorted(set(kwargs) - _KNOWN_KWARGS):
        src.warn(f"init() got an unknown option {name!r}; it is ignored")

    enabled = src.first_valid(("FLIGHTDECK_ENABLED",), "enabled", parse_bool, "true or false",
                              True)
    allow_insecure = src.first_valid(("FLIGHTDECK_ALLOW_INSECURE",), "allow_insecure",
                                     parse_bool, "true or false", False)
    export = src.first_valid(("FLIGHTDECK_EXPORT",), None, parse_export,
                             "flightdeck, otlp or both", "flightdeck")
    # With FLIGHTDECK_EXPORT=otlp nothing goes to Flightdeck: its server is not read.
    server = _resolve_server(src, allow_insecure) if export != "otlp" else ""
    token, token_usable = _resolve_token(src) if server else (None, True)
    if not token_usable:
        server = ""
    otlp = _resolve_otlp(src, allow_insecure) if export != "flightdeck" else _NO_OTLP
    hostname = src.first_valid(("FLIGHTDECK_HOSTNAME",), "hostname", parse_text, "a host name",
                               system_hostname())
    user = current_user(env)
    agent_name = src.first_valid(("FLIGHTDECK_AGENT_NAME", "AGENT_FLAVOR"), "agent_name",
                                 parse_text, "a name", default_agent_name(user, hostname))
    flavor = env.get("AGENT_FLAVOR", "").strip() or agent_name
    if export == "both" and not server and otlp.endpoint:
        src.warn("FLIGHTDECK_EXPORT=both but no usable Flightdeck server; sending to OTLP only")
    config = Config(
        server=server,
        token=token,
        enabled=enabled and bool(server or otlp.endpoint),
        session_id_hint=_resolve_session_id(src),
        agent_name=agent_name,
        agent_type=src.first_valid(("FLIGHTDECK_AGENT_TYPE", "AGENT_TYPE"), "agent_type",
                                   parse_agent_type, "'production' or 'coding'", "production"),
        user=user,
        hostname=hostname,
        flavor=flavor,
        agent_role=src.first_valid(("FLIGHTDECK_AGENT_ROLE",), "agent_role", parse_role,
                                   f"a role of at most {MAX_AGENT_ROLE_BYTES} bytes", None),
        parent_session_id=src.first_valid(("FLIGHTDECK_PARENT_SESSION_ID",), "parent_session_id",
                                          parse_uuid, "a UUID", None),
        capture_prompts=src.first_valid(("FLIGHTDECK_CAPTURE_PROMPTS",), "capture_prompts",
                                        parse_bool, "true or false", False),
        inject_stream_usage=src.first_valid(("FLIGHTDECK_INJECT_STREAM_USAGE",),
                                            "inject_stream_usage", parse_bool, "true or false",
                                            False),
        providers=_resolve_providers(src),
        log_level=src.first_valid(("FLIGHTDECK_LOG_LEVEL",), "log_level", parse_log_level,
                                  "a log level (DEBUG, INFO, WARNING, ERROR)", None),
        shutdown_timeout=src.at_most(
            ("FLIGHTDECK_SHUTDOWN_TIMEOUT",), "shutdown_timeout", parse_seconds,
            "a number of seconds >= 0", DEFAULT_SHUTDOWN_TIMEOUT, MAX_SHUTDOWN_TIMEOUT),
        spool_enabled=src.first_valid(("FLIGHTDECK_SPOOL",), "spool", parse_bool,
                                      "on or off", True),
        spool_dir=src.first_valid(("FLIGHTDECK_SPOOL_DIR",), "spool_dir", parse_path,
                                  "a directory path", None),
        allow_insecure=allow_insecure,
        max_queue_events=src.first_valid(("FLIGHTDECK_MAX_QUEUE_EVENTS",), "max_queue_events",
                                         parse_positive_int, "a positive integer", 10_000),
        max_queue_bytes=src.first_valid(("FLIGHTDECK_MAX_QUEUE_BYTES",), "max_queue_bytes",
                                        parse_positive_int, "a positive integer",
                                        16 * 1024 * 1024),
        max_content_bytes=src.first_valid(("FLIGHTDECK_MAX_CONTENT_BYTES",), "max_content_bytes",
                                          parse_positive_int, "a positive integer", 64 * 1024),
        compression=src.first_valid(("FLIGHTDECK_COMPRESSION",), "compression",
                                    parse_compression, "auto, gzip or none", "auto"),
        api_url=_resolve_api_url(src, server, allow_insecure) if server else "",
        heartbeat_interval=_resolve_heartbeat(src),
        token_limit=src.first_valid(("FLIGHTDECK_TOKEN_LIMIT",), "limit", parse_positive_int,
                                    "a positive number of tokens", None),
        warn_at=src.first_valid(("FLIGHTDECK_WARN_AT",), "warn_at", parse_fraction,
                                "a fraction between 0 and 1 (or a percentage up to 100)",
                                DEFAULT_WARN_AT),
        export=export,
        otlp_endpoint=otlp.endpoint,
        otlp_headers=otlp.headers,
        otlp_protocol=otlp.protocol,
        otlp_resource=_with_service_name(otlp, src, flavor),
    )
    return config, src.warnings


class _Otlp:
    """The OTLP destination as the environment gives it (see _resolve_otlp)."""

    __slots__ = ("endpoint", "headers", "protocol", "resource", "service_name")

    def __init__(self, endpoint: str = "", headers: tuple[tuple[str, str], ...] = (),
                 protocol: str = "http/protobuf",
                 resource: tuple[tuple[str, str], ...] = (), service_name: str = "") -> None:
        self.endpoint = endpoint
        self.headers = headers
        self.protocol = protocol
        self.resource = resource
        self.service_name = service_name


_NO_OTLP = _Otlp()


def _resolve_otlp(src: _Sources, allow_insecure: bool) -> _Otlp:
    """OpenTelemetry's exporter variables, with their documented precedence: a
    signal-specific variable (``..._TRACES_...``) beats the generic one; the
    generic endpoint is a base that gets ``/v1/traces``, the signal one is the
    URL itself. A bad endpoint is warned about and nothing goes to OTLP."""
    endpoint = ""
    found = src.candidates(("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",), None)
    generic = src.candidates(("OTEL_EXPORTER_OTLP_ENDPOINT",), None)
    source, raw = found[0] if found else generic[0] if generic else ("default", DEFAULT_ENDPOINT)
    url, problem = normalize_server_url(str(raw), allow_insecure, segment=None)
    if problem:
        src.warn(f"{source}={shown_url(str(raw))} {problem}; nothing is sent to OTLP")
    else:
        endpoint = url if found else traces_url(url)
    protocol = src.first_valid(
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"), None,
        parse_protocol, "http/protobuf or http/json (grpc is not supported)", "http/protobuf")
    return _Otlp(endpoint, tuple(_pairs(src, ("OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                                              "OTEL_EXPORTER_OTLP_HEADERS"), True)),
                 protocol, tuple(_pairs(src, ("OTEL_RESOURCE_ATTRIBUTES",), False)),
                 str(src.first_valid(("OTEL_SERVICE_NAME",), None, parse_text, "a name", "")))


def _pairs(src: _Sources, names: tuple[str, ...], headers: bool) -> list[tuple[str, str]]:
    """The pairs of the first of ``names`` set (the signal-specific one first);
    its bad entries are warned about by key, never by value."""
    found = src.candidates(names, None)
    if not found:
        return []
    source, raw = found[0]
    pairs, problems = parse_pairs(str(raw), header_names=headers)
    for problem in problems:
        src.warn(f"{source}: {problem}; it is ignored" + (" (values not shown)" if headers else ""))
    return pairs


def _with_service_name(otlp: _Otlp, src: _Sources, flavor: str) -> tuple[tuple[str, str], ...]:
    """The resource attributes with ``service.name``: OTEL_SERVICE_NAME beats
    the one in OTEL_RESOURCE_ATTRIBUTES; without either, the agent's flavor
    (more useful in a trace view than the specification's ``unknown_service``)."""
    if not otlp.endpoint:
        return ()
    attributes = dict(otlp.resource)
    if otlp.service_name:
        attributes["service.name"] = otlp.service_name
    attributes.setdefault("service.name", flavor)
    return tuple(attributes.items())


def _resolve_api_url(src: _Sources, server: str, allow_insecure: bool) -> str:
    """FLIGHTDECK_API_URL, else api_url=, else the ingest URL with ``/ingest``
    replaced by ``/api``. A bad one is warned about and the derived one used:
    the control plane is not worth losing the events for."""
    derived = api_url_for(server)
    for source, raw in src.candidates(("FLIGHTDECK_API_URL",), "api_url"):
        url, problem = normalize_server_url(str(raw), allow_insecure, segment=None)
        if not problem:
            return url
        src.warn(f"{source}={shown_url(str(raw))} {problem}; using {derived} instead")
    return derived


def _resolve_heartbeat(src: _Sources) -> float:
    seconds = src.at_most(("FLIGHTDECK_HEARTBEAT_INTERVAL",), "heartbeat_interval", parse_seconds,
                          "a number of seconds >= 0 (0: no heartbeat)",
                          DEFAULT_HEARTBEAT_INTERVAL, MAX_HEARTBEAT_INTERVAL)
    if 0 < seconds < MIN_HEARTBEAT_INTERVAL:
        src.warn(f"FLIGHTDECK_HEARTBEAT_INTERVAL={seconds:g} is below the minimum of "
                 f"{MIN_HEARTBEAT_INTERVAL:g} second; using {MIN_HEARTBEAT_INTERVAL:g}")
        return MIN_HEARTBEAT_INTERVAL
    return seconds


# -- server, token, session id ------------------------------------------------


def _resolve_server(src: _Sources, allow_insecure: bool) -> str:
    """The normalized ingest URL, or "" (sensor off) after a warning."""
    found = src.candidates(("FLIGHTDECK_SERVER",), "server")
    if not found:
        if "server" in src.kwargs:  # init() was called: say why nothing will be sent
            src.warn("init() got no server and FLIGHTDECK_SERVER is unset; the sensor stays off")
        return ""
    source, raw = found[0]
    url, problem = normalize_server_url(str(raw), allow_insecure)
    if problem:
        src.warn(f"{source}={shown_url(str(raw))} {problem}; the sensor stays off")
        return ""
    if "@" in str(raw).partition("://")[2].partition("/")[0]:
        src.warn(f"{source}={shown_url(str(raw))} contains a user name or password, which the "
                 "sensor never sends (it authenticates with FLIGHTDECK_TOKEN); it is ignored")
    return url


def shown_url(raw: str, limit: int = 120) -> str:
    """A URL as a warning may show it: no user:password@, control characters
    escaped, cut after ``limit`` characters (whatever the environment held)."""
    return _shown(redact_url(raw), limit)


def _resolve_token(src: _Sources) -> tuple[str | None, bool]:
    """``(token, usable)``; a missing token is warned about but usable (sensor on),
    an unusable one turns the sensor off."""
    found = src.candidates(("FLIGHTDECK_TOKEN",), "token")
    if not found:
        src.warn("FLIGHTDECK_TOKEN is not set; events are sent without a token and a "
                 "Flightdeck server will refuse them (401)")
        return None, True
    source, raw = found[0]
    token = str(raw).strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
        src.warn(f"{source} starts with 'Bearer '; using the rest of it as the token")
    if not token.isprintable() or any(c.isspace() for c in token):
        src.warn(f"{source} contains spaces or control characters (value not shown); "
                 "the sensor stays off")
        return None, False
    return token, True


def _resolve_session_id(src: _Sources) -> str | None:
    """FLIGHTDECK_SESSION_ID beats session_id=; a non-UUID means a fresh id."""
    found = src.candidates(("FLIGHTDECK_SESSION_ID",), "session_id")
    if not found:
        return None
    source, raw = found[0]
    canonical = canonical_uuid(str(raw))
    if canonical is None:
        src.warn(f"{source}={_shown(raw)} is not a UUID; using a fresh session id instead "
                 "(hash string identifiers with uuid.uuid5)")
    return canonical


def _resolve_providers(src: _Sources) -> frozenset[str]:
    default = frozenset(PROVIDER_NAMES)
    found = src.candidates(("FLIGHTDECK_PROVIDERS",), "providers")
    if not found:
        return default
    source, raw = found[0]
    if isinstance(raw, str):
        names = raw.replace(",", " ").lower().split()
    elif isinstance(raw, (list, tuple, set, frozenset)):
        names = [str(n).strip().lower() for n in raw]
    else:
        names = [str(raw)]
    if names in (["all"], ["*"]):
        return default
    if names == ["none"] or (not names and not isinstance(raw, str)):
        return frozenset()
    unknown = [n for n in names if n not in PROVIDER_NAMES]
    chosen = frozenset(n for n in names if n in PROVIDER_NAMES)
    if unknown:
        used = chosen or default
        src.warn(f"{source}={_shown(raw)} names unknown provider(s) {', '.join(unknown)} "
                 f"(known: {', '.join(PROVIDER_NAMES)}); using {','.join(sorted(used))}")
        return used
    return chosen
