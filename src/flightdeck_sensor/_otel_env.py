"""Parsers of OpenTelemetry's standard exporter variables (stdlib only: read
at interpreter start when ``FLIGHTDECK_EXPORT`` asks for OTLP).

``OTEL_EXPORTER_OTLP_HEADERS`` and ``OTEL_RESOURCE_ATTRIBUTES`` are lists of
``key=value`` pairs separated by commas, each value percent-encoded (the W3C
Baggage format without its properties). Percent-decoding is hand-written:
``urllib.parse`` costs more at start-up than the whole boot.
"""

from __future__ import annotations

EXPORTS: tuple[str, ...] = ("flightdeck", "otlp", "both")
PROTOCOLS: tuple[str, ...] = ("http/protobuf", "http/json")
TRACES_PATH = "/v1/traces"
DEFAULT_ENDPOINT = "http://localhost:4318"  # the specification's default for OTLP/HTTP
MAX_PAIRS = 64
MAX_PAIR_CHARS = 8192
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def parse_export(value: object) -> str | None:
    text = str(value).strip().lower()
    return text if text in EXPORTS else None


def parse_protocol(value: object) -> str | None:
    text = str(value).strip().lower()
    return text if text in PROTOCOLS else None


def percent_decode(text: str) -> str | None:
    """``%XX`` sequences decoded as UTF-8; None for a malformed one."""
    if "%" not in text:
        return text
    out = bytearray()
    position = 0
    while position < len(text):
        char = text[position]
        if char == "%":
            digits = text[position + 1:position + 3]
            try:
                out.append(int(digits, 16))
            except ValueError:
                return None
            if len(digits) != 2:
                return None
            position += 3
            continue
        out += char.encode()
        position += 1
    try:
        return out.decode()
    except UnicodeDecodeError:
        return None


def parse_pairs(text: str, header_names: bool) -> tuple[list[tuple[str, str]], list[str]]:
    """``key=value`` pairs from ``text``, and the problems met (naming the
    key only, never a value: a header may hold a secret). ``header_names``:
    keys must be HTTP header names (lower-cased, as HTTP/2 and gRPC send them)."""
    pairs: list[tuple[str, str]] = []
    problems: list[str] = []
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, raw_value = item.partition("=")
        key = key.strip()
        shown_key = key[:40] if key.isprintable() else "?"
        value = percent_decode(raw_value.split(";")[0].strip()) if sep else None
        if not key or value is None or len(item) > MAX_PAIR_CHARS:
            problems.append(f"an entry {shown_key!r} is not key=value with a percent-encoded value")
            continue
        if header_names and (not _TOKEN_CHARS.issuperset(key)
                             or not value.isprintable() or "\r" in value or "\n" in value):
            problems.append(f"the header {shown_key!r} has a name or value HTTP cannot carry")
            continue
        pairs.append((key.lower() if header_names else key, value))
    if len(pairs) > MAX_PAIRS:
        problems.append(f"more than {MAX_PAIRS} entries; the rest are ignored")
        pairs = pairs[:MAX_PAIRS]
    return pairs, problems


def traces_url(base: str) -> str:
    """The traces endpoint of a generic OTLP/HTTP base URL: ``/v1/traces`` appended."""
    return base.rstrip("/") + TRACES_PATH
