"""The input estimate: a request's characters of text, counted cheaply (about
four characters a token), with the two caches that keep an agent's repeated
``tools`` list and growing conversation from being walked again at every call.
"""

from __future__ import annotations

from typing import Any

CHARS_PER_TOKEN = 4  # the estimate's rule of thumb: ~4 characters a token


def _char_count(value: Any, depth: int) -> int:
    """Characters of text in a JSON-like request, an int counted as a token's
    worth (on the hot path: exact type checks and one loop, no
    generator per level; a call only for a container, never for a None,
    number or bool)."""
    kind = type(value)
    if kind is str:
        return len(value)
    if kind is dict:
        items = value.values()
    elif kind is list or kind is tuple:
        items = value
    else:
        return 0
    if depth > 6:
        return 0
    total = 0
    for item in items:
        kind = type(item)
        if kind is str:
            total += len(item)
        elif kind is dict:  # a message: its strings counted here, one call fewer each
            for part in item.values():
                kind = type(part)
                if kind is str:
                    total += len(part)
                elif kind is list or kind is dict or kind is tuple:
                    total += _char_count(part, depth + 2)
                elif kind is int:
                    total += CHARS_PER_TOKEN
        elif kind is list or kind is tuple:
            total += _char_count(item, depth + 1)
        elif kind is int:  # a token id (embeddings' pre-tokenized input), a number: a token
            total += CHARS_PER_TOKEN
    return total


# A ``tools`` list is counted once, then its count reused while the same list,
# of the same length, comes back: an agent passes one list to every call, and
# its JSON schemas are about half of what a walk of an agent's request visits.
# Kept with the list itself (so its id cannot pass to another list), at most
# _TOOLS_KEPT of them. A tool edited in place keeps the count it had: this is
# an estimate.
_TOOLS_KEPT = 8
_tools_counted: dict[int, tuple[list[Any], int, int]] = {}


# A conversation is counted once per message while the same list comes back
# longer: an agent appends each round to one list and sends it again, so a walk
# of the whole list would cost more at every turn (a call's cost growing with
# the conversation, the conversation's cost with its square). Kept with the
# list: a copy of the items counted and their count. When the list still
# starts with those items (the same objects, or equal ones), only what was
# appended is walked; otherwise it is all walked again. A message edited in
# place keeps its count: this is an estimate. Only a ``messages`` or ``input``
# list of _HISTORY_MIN items or more (shorter ones cost little to walk), an
# ``input`` not of strings, token ids or lists of them (an embeddings batch:
# not to be kept alive), at most _HISTORIES_KEPT of them: each keeps its
# request's messages alive until another list takes its place.
_HISTORY_MIN = 8
_HISTORIES_KEPT = 4
_histories_counted: dict[int, tuple[list[Any], list[Any], int]] = {}


def request_chars(content: Any) -> int:
    """_char_count of a request's content fields, a ``tools`` list counted once
    and a long conversation counted from where it was last counted (the top
    level of _char_count, written for a dict of fields)."""
    if type(content) is not dict:
        return _char_count(content, 0)
    total = 0
    for name, value in content.items():
        kind = type(value)
        if kind is str:
            total += len(value)
        elif kind is list:
            if name == "tools":
                total += _tools_chars(value)
            elif name == "messages":  # first: the common case costs one test more
                total += (_history_chars(value) if len(value) >= _HISTORY_MIN
                          else _char_count(value, 1))
            else:
                first = type(value[0]) if value else str
                if first is int or first is list:
                    total += _token_ids_chars(value)
                elif first is not str and name == "input" and len(value) >= _HISTORY_MIN:
                    total += _history_chars(value)  # the Responses API's input items
                else:
                    total += _char_count(value, 1)
        elif kind is dict or kind is tuple:
            total += _char_count(value, 1)
    return total


def _tools_chars(tools: list[Any]) -> int:
    seen = _tools_counted.get(id(tools))
    if seen is not None and seen[0] is tools and seen[1] == len(tools):
        return seen[2]
    chars = _char_count(tools, 1)
    if len(_tools_counted) >= _TOOLS_KEPT:
        _tools_counted.clear()
    _tools_counted[id(tools)] = (tools, len(tools), chars)
    return chars


def _token_ids_chars(ids: list[Any]) -> int:
    """A list of token ids (embeddings' pre-tokenized input) or a batch of such
    lists, one token an id, counted by their lengths when the first and last
    items say so: a walk of every id of a large batch would cost more than the call.
    Anything else is walked."""
    first, last = ids[0], ids[-1]
    if type(first) is int and type(last) is int:
        return len(ids) * CHARS_PER_TOKEN
    if (type(first) is list and type(last) is list and first and last
            and type(first[0]) is int and type(last[0]) is int):
        try:
            return sum(map(len, ids)) * CHARS_PER_TOKEN
        except TypeError:  # an item without a length among the lists: walk them
            pass
    return _char_count(ids, 1)


def _history_chars(messages: list[Any]) -> int:
    seen = _histories_counted.get(id(messages))
    if seen is not None and seen[0] is messages:
        counted, chars = seen[1], seen[2]
        known = len(counted)
        try:
            # A C loop over the items: identity first, == only for a replaced one.
            unchanged = len(messages) >= known and messages[:known] == counted
        except Exception:  # an item whose == raises (an array): walk it all
            unchanged = False
        if unchanged:
            if len(messages) == known:
                return chars
            added = messages[known:]
            chars += _char_count(added, 1)
            # A new entry, not the old one extended: the items and their count
            # stay consistent for another thread reading them meanwhile.
            _histories_counted[id(messages)] = (messages, counted + added, chars)
            return chars
    chars = _char_count(messages, 1)
    if len(_histories_counted) >= _HISTORIES_KEPT:
        _histories_counted.clear()
    _histories_counted[id(messages)] = (messages, messages[:], chars)
    return chars
