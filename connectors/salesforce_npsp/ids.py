"""Salesforce record ids in their two forms: 15 characters (case-sensitive) and 18.

Why: Salesforce shows people 15-character ids in some places and sends 18-character ones
in its APIs (Outbound Messages carry the 18-character org id). The 18-character form is the
15 plus a three-character suffix that encodes where the capitals are, so the two compare
equal once reduced to 15 characters; the suffix also catches an id mistyped in a config.
"""

from __future__ import annotations

import re

_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-5]{3})?$")
_SUFFIX_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def checksum_suffix(id15: str) -> str:
    """The three characters Salesforce appends to a 15-character id to make it 18."""
    suffix = ""
    for chunk in range(3):
        bits = 0
        for i, ch in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        suffix += _SUFFIX_CHARS[bits]
    return suffix


def id15(value: str) -> str | None:
    """The 15-character form of a Salesforce id, or None if ``value`` is not a valid id.

    An 18-character id is case-insensitive: its suffix says which of the first 15 characters
    are capitals, so ``00D5G...EAQ`` and ``00d5g...eaq`` are one id; its case is restored
    from the suffix. A suffix that marks a digit as a capital is a mistyped id.
    """
    if not isinstance(value, str) or not _ID.match(value):
        return None
    if len(value) == 15:
        return value
    chars = list(value[:15])
    for chunk, flag in enumerate(value[15:].upper()):
        bits = _SUFFIX_CHARS.index(flag)
        for i in range(5):
            pos = chunk * 5 + i
            if bits & (1 << i):
                if not chars[pos].isalpha():
                    return None
                chars[pos] = chars[pos].upper()
            else:
                chars[pos] = chars[pos].lower()
    return "".join(chars)


def same_id(a: str, b: str) -> bool:
    """Whether two ids (each 15 or 18 characters) name the same record."""
    x, y = id15(a), id15(b)
    return x is not None and x == y


def id18(record_id: str) -> str:
    """The 18-character form of a Salesforce id, as the raw tables hold it.

    A 15-character id gains its suffix; an 18-character one that went through something
    case-blind (``0035G...``) gets its case back from its suffix. ValueError for anything
    else, or a suffix that marks a digit a capital.
    """
    short = id15(record_id)
    if short is None:
        raise ValueError("not a Salesforce id")
    return short + checksum_suffix(short)
