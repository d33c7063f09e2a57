"""The server URL: validated and normalized by hand (``urllib.parse`` is too
costly to import at interpreter start), and whether a host is this machine or
a private network's, read without a DNS lookup. Stdlib only."""

from __future__ import annotations

# Host-name suffixes that only resolve inside a private network (plain http is fine there).
_PRIVATE_SUFFIXES = (".localhost", ".local", ".localdomain", ".internal", ".lan",
                     ".home.arpa", ".svc", ".cluster.local", ".intranet", ".corp")
MAX_URL_LENGTH = 2048


def normalize_server_url(raw: str, allow_insecure: bool = False,
                         segment: str | None = "ingest") -> tuple[str, str | None]:
    """``(normalized URL, None)`` or ``("", what is wrong with it)`` (docs/protocol.md).

    ``segment`` is appended to the path when no path segment is already it
    (the ingest base always holds ``/ingest``; the control-plane API base, with
    ``None``, is taken as given).
    The normalized URL never holds a ``user:password@`` part: the sensor never
    sends one, and the URL appears in log lines, doctor's report and the spool's name.
    """
    text = raw.strip()
    if len(text) > MAX_URL_LENGTH:
        return "", f"is longer than {MAX_URL_LENGTH} characters"
    if not (text.isascii() and text.isprintable()) or " " in text:
        return "", "contains spaces, control characters or non-ASCII characters"
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https"):
        return "", "is not an http:// or https:// URL"
    for mark in ("#", "?"):
        rest = rest.partition(mark)[0]
    authority, _, path = rest.partition("/")
    hostport = _host_and_port(authority.rpartition("@")[2])
    if hostport is None:
        return "", "has no valid host[:port] (the port must be 1-65535)"
    host, hostport_text = hostport
    if scheme == "http" and not allow_insecure and not is_private_host(host):
        return "", ("uses plain http to a non-local host, which would send the token "
                    "unencrypted (use https, or set FLIGHTDECK_ALLOW_INSECURE=true)")
    segments = [s for s in path.split("/") if s]
    if segment is not None and segment not in segments:
        segments.append(segment)
    return f"{scheme}://{hostport_text}/{'/'.join(segments)}".rstrip("/"), None


def api_url_for(server: str) -> str:
    """The control-plane API base of a normalized ingest URL: its ``ingest``
    segment replaced by ``api`` (``https://fd.example/ingest`` ->
    ``https://fd.example/api``), as Flightdeck lays its services out."""
    scheme, _, rest = server.partition("://")
    hostport, _, path = rest.partition("/")
    segments = ["api" if s == "ingest" else s for s in path.split("/") if s]
    return f"{scheme}://{hostport}/{'/'.join(segments)}".rstrip("/")


_HOST_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._~")
_IPV6_CHARACTERS = frozenset("0123456789abcdef:.")


def _host_and_port(hostport: str) -> tuple[str, str] | None:
    """``(host, "host[:port]" as it goes into the URL)``, or None when either is invalid."""
    if hostport.startswith("["):
        inside, bracket, port = hostport[1:].partition("]")
        host = inside.lower()
        valid = bool(bracket) and ":" in host and _IPV6_CHARACTERS.issuperset(host)
        if port and not port.startswith(":"):
            return None
        port = port[1:]
        shown = f"[{host}]"
    else:
        host, _, port = hostport.lower().partition(":")
        valid = bool(host) and _HOST_CHARACTERS.issuperset(host)
        shown = host
    if not valid or (port and not (port.isdigit() and len(port) <= 5 and 0 < int(port) <= 65535)):
        return None
    return host, f"{shown}:{port}" if port else shown


def is_private_host(host: str) -> bool:
    """Loopback, localhost, private ranges and private-network names (no DNS lookup).

    Link-local addresses (169.254.0.0/16, fe80::/10) are not private: that is
    where cloud metadata services listen, one hop from any process.
    """
    host = host.lower().rstrip(".")
    if is_loopback_host(host) or host.endswith(_PRIVATE_SUFFIXES):
        return True
    address = _ipv4_address(host)
    if address is not None:
        a, b = address >> 24, (address >> 16) & 0xFF
        return a == 10 or (a == 172 and 16 <= b <= 31) or (a, b) == (192, 168)
    if ":" in host:  # IPv6: unique local fc00::/7 only
        return host[:2] in ("fc", "fd")
    # A single-label name (docker compose / kubernetes service) only resolves inside a network.
    return "." not in host


def _ipv4_address(host: str) -> int | None:
    """The IPv4 address ``host`` spells, as the resolver reads it (``inet_aton``: one to
    four parts, decimal, octal with a leading 0, hex with 0x), or None for a name.
    ``http://2852039166`` is 169.254.169.254, not a single-label host name."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = []
    for part in parts:
        number = _inet_aton_number(part)
        if number is None:
            return None
        numbers.append(number)
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (5 - len(numbers)):
        return None
    address = 0
    for number in leading:
        address = address * 256 + number
    return (address << 8 * (5 - len(numbers))) | last


def _inet_aton_number(part: str) -> int | None:
    try:
        if part[:2] in ("0x", "0X"):
            return int(part[2:] or "0", 16)
        if len(part) > 1 and part.startswith("0"):
            return int(part, 8)
        return int(part, 10) if part.isdigit() and len(part) <= 12 else None
    except ValueError:
        return None


def is_loopback_host(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ``::1``: a server on this machine."""
    host = host.lower().rstrip(".")
    if host in ("localhost", "::1") or host.endswith(".localhost"):
        return True
    address = _ipv4_address(host)
    return address is not None and address >> 24 == 127


def redact_url(url: str) -> str:
    """``url`` without any user:password@ part."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return f"{scheme}{sep}{authority}{slash}{path}"
