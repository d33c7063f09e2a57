"""The control plane's request bodies and queries, read as untrusted input.

Each reader returns plain, checked values or raises :class:`HttpError` (400)
naming what is wrong: a wrong type, a missing field, a string too long or not
UTF-8 (JSON may carry lone surrogates, which SQLite cannot store), too many
items. Nothing a client sends can reach the database unchecked or crash the
server. The body itself is already bounded (``MAX_BODY_BYTES``) and parsed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from ._http_body import HttpError
from ._validate import is_canonical_uuid

MAX_FLAVOR_CHARS = 1024
MAX_NAME_CHARS = 256
MAX_FINGERPRINT_CHARS = 256
MAX_DESCRIPTION_CHARS = 4096
MAX_TYPE_CHARS = 32
MAX_DIRECTIVES = 256            # per request
MAX_PARAMETERS = 64             # per directive
MAX_OPTIONS = 256               # per parameter
MAX_OPTION_CHARS = 1024
MAX_QUERY_FIELDS = 16


def heartbeat_session(payload: object) -> str:
    """The session id of a heartbeat body ``{"session_id": "<uuid>"}``, lower-cased."""
    if not isinstance(payload, dict):
        raise HttpError(400, 'heartbeat body must be {"session_id": "<uuid>"}')
    session_id = payload.get("session_id")
    if not is_canonical_uuid(session_id):
        raise HttpError(400, "session_id: must be a canonical UUID (8-4-4-4-12 hex)")
    return str(session_id).lower()


def policy_query(query: str) -> tuple[str | None, str | None]:
    """``(flavor, session_id)`` of ``?flavor=...&session_id=...``, either may be None."""
    try:
        fields = parse_qs(query, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS,
                          errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise HttpError(400, "malformed query string") from None
    flavor = (fields.get("flavor") or [""])[0]
    session_id = (fields.get("session_id") or [""])[0]
    if flavor:
        _text(flavor, "flavor", MAX_FLAVOR_CHARS)
    if session_id and not is_canonical_uuid(session_id):
        raise HttpError(400, "session_id: must be a canonical UUID (8-4-4-4-12 hex)")
    return flavor or None, session_id.lower() or None


def sync_request(payload: object) -> tuple[str, list[str]]:
    """``(flavor, fingerprints)`` of ``{"flavor", "directives": [{"name", "fingerprint"}]}``."""
    flavor, directives = _flavor_and_directives(payload)
    fingerprints = []
    for index, directive in enumerate(directives):
        where = f"directives[{index}]"
        _text(directive.get("name"), f"{where}.name", MAX_NAME_CHARS, required=False)
        fingerprints.append(_text(directive.get("fingerprint"), f"{where}.fingerprint",
                                  MAX_FINGERPRINT_CHARS))
    return flavor, fingerprints


def register_request(payload: object) -> tuple[str, list[dict[str, Any]]]:
    """``(flavor, definitions)`` of ``{"flavor", "directives": [{name, description,
    fingerprint, parameters: [...]}]}``, each definition checked and reduced to its keys."""
    flavor, directives = _flavor_and_directives(payload)
    definitions = []
    for index, directive in enumerate(directives):
        where = f"directives[{index}]"
        definitions.append({
            "name": _text(directive.get("name"), f"{where}.name", MAX_NAME_CHARS),
            "fingerprint": _text(directive.get("fingerprint"), f"{where}.fingerprint",
                                 MAX_FINGERPRINT_CHARS),
            "description": _text(directive.get("description"), f"{where}.description",
                                 MAX_DESCRIPTION_CHARS, required=False),
            "parameters": _parameters(directive.get("parameters"), f"{where}.parameters"),
        })
    return flavor, definitions


def _flavor_and_directives(payload: object) -> tuple[str, list[dict[str, Any]]]:
    if not isinstance(payload, dict):
        raise HttpError(400, 'body must be {"flavor": ..., "directives": [...]}')
    flavor = _text(payload.get("flavor"), "flavor", MAX_FLAVOR_CHARS)
    directives = payload.get("directives")
    if not isinstance(directives, list) or not directives:
        raise HttpError(400, "directives: must be a non-empty array")
    if len(directives) > MAX_DIRECTIVES:
        raise HttpError(400, f"directives: at most {MAX_DIRECTIVES} per request")
    for index, directive in enumerate(directives):
        if not isinstance(directive, dict):
            raise HttpError(400, f"directives[{index}]: must be an object")
    return flavor, directives


def _parameters(value: object, where: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise HttpError(400, f"{where}: must be an array")
    if len(value) > MAX_PARAMETERS:
        raise HttpError(400, f"{where}: at most {MAX_PARAMETERS} parameters")
    parameters = []
    for index, parameter in enumerate(value):
        at = f"{where}[{index}]"
        if not isinstance(parameter, dict):
            raise HttpError(400, f"{at}: must be an object")
        required = parameter.get("required", False)
        if not isinstance(required, bool):
            raise HttpError(400, f"{at}.required: must be a boolean")
        parameters.append({
            "name": _text(parameter.get("name"), f"{at}.name", MAX_NAME_CHARS),
            "type": _text(parameter.get("type"), f"{at}.type", MAX_TYPE_CHARS),
            "description": _text(parameter.get("description"), f"{at}.description",
                                 MAX_DESCRIPTION_CHARS, required=False),
            "options": _options(parameter.get("options"), f"{at}.options"),
            "required": required,
            "default": _scalar(parameter.get("default"), f"{at}.default"),
        })
    return parameters


def _options(value: object, where: str) -> list[Any] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise HttpError(400, f"{where}: must be an array or null")
    if len(value) > MAX_OPTIONS:
        raise HttpError(400, f"{where}: at most {MAX_OPTIONS} options")
    return [_scalar(option, f"{where}[{index}]") for index, option in enumerate(value)]


def _scalar(value: object, where: str) -> Any:
    """null, a boolean, a number or a short string: what a parameter's value may be."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return _text(value, where, MAX_OPTION_CHARS, required=False)
    raise HttpError(400, f"{where}: must be a string, number, boolean or null")


def _text(value: object, where: str, limit: int, required: bool = True) -> str:
    """A string of at most ``limit`` characters, storable as UTF-8; "" for an optional null."""
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise HttpError(400, f"{where}: must be a non-empty string" if required
                        else f"{where}: must be a string")
    if len(value) > limit:
        raise HttpError(400, f"{where}: at most {limit} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise HttpError(400, f"{where}: not valid Unicode text") from None
    return value
