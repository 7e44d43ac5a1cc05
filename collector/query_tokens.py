"""The run query language's tokens: what the parser reads, and the error every stage raises.

A token is a path (``params.lr``, ``metrics.train/loss.min``), a string, a number, a date, a
time span (``-7d``), an operator or the end. ``QueryError`` carries the position and a caret line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from aquarium.agent.errors import AquariumError

KEYWORDS = ("and", "or", "not", "in", "contains", "true", "false", "null", "asc", "desc")
UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


class QueryError(AquariumError, ValueError):
    """Raised when a run filter or sort cannot be parsed: the reason, and where in the query."""

    def __init__(self, query: str, position: int, reason: str) -> None:
        self.query, self.position, self.reason = query, position, reason
        super().__init__(f"{reason} (at character {position + 1})\n{_caret(query, position)}")


def _caret(query: str, position: int, width: int = 60) -> str:
    """The query (a window of it around ``position`` if it is long) and a caret line under it."""
    start = max(0, position - width)
    end = min(len(query), position + width)
    prefix = "..." if start else ""
    shown = prefix + re.sub(r"\s", " ", query[start:end]) + ("..." if end < len(query) else "")
    return f"  {shown}\n  {' ' * (len(prefix) + position - start)}^"


# -- tokens --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Token:
    kind: str  # path, str, num, span, date, op, kw, end
    text: str
    pos: int
    value: object = None
    segments: tuple[str, ...] = field(default=())
    quoted: tuple[bool, ...] = field(default=())


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?(?![\w.:-])")
SPAN = re.compile(r"(-?)(\d+(?:\.\d+)?)([smhdw])(?![\w.])")
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.])")
_BARE = re.compile(r"[A-Za-z0-9_/\-]+")
_OPS = ("==", "!=", "<=", ">=", "<", ">", "~", "(", ")", ",", "-", "+")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}


def tokenize(query: str) -> list[Token]:
    out: list[Token] = []
    i, n = 0, len(query)
    while True:
        while i < n and query[i].isspace():
            i += 1
        if i >= n:
            out.append(Token("end", "", n))
            return out
        c = query[i]
        if c in "\"'":
            text, j = _string(query, i)
            out.append(Token("str", query[i:j], i, text))
            i = j
        elif c.isalpha() or c == "_":
            token = _path(query, i)
            out.append(token)
            i = token.pos + len(token.text)
        elif c.isdigit() or re.match(r"[-.]\d|-\.\d", query[i : i + 3]):
            i = _literal(query, i, out)
        else:
            op = next((o for o in _OPS if query.startswith(o, i)), None)
            if op is None:
                raise QueryError(query, i, f"unexpected character {c!r}")
            out.append(Token("op", op, i))
            i += len(op)


def _literal(query: str, i: int, out: list[Token]) -> int:
    for kind, pattern in (("date", _DATE), ("span", SPAN), ("num", _NUMBER)):
        m = pattern.match(query, i)
        if m is None:
            continue
        text = m.group(0)
        value: object
        if kind == "date":
            value = epoch(query, i, text)
        elif kind == "span":
            value = (m.group(1) == "-", float(m.group(2)) * UNITS[m.group(3)])
        else:
            value = _number(text)
        out.append(Token(kind, text, i, value))
        return m.end()
    end = i + 1
    while end < len(query) and (query[end].isalnum() or query[end] in "._-:"):
        end += 1
    raise QueryError(query, i, f"malformed number {query[i:end]!r}")


def _number(text: str) -> int | float:
    if re.fullmatch(r"-?\d+", text) and len(text) <= 19:
        value = int(text)
        if -(2**63) <= value < 2**63:  # what SQLite can bind; larger integers compare as floats
            return value
    return float(text)


def _string(query: str, start: int) -> tuple[str, int]:
    quote, i = query[start], start + 1
    chars: list[str] = []
    while i < len(query):
        c = query[i]
        if c == quote:
            return "".join(chars), i + 1
        if c == "\\" and i + 1 < len(query):
            e = query[i + 1]
            if e == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", query[i + 2 : i + 6]):
                chars.append(chr(int(query[i + 2 : i + 6], 16)))
                i += 6
                continue
            # an unknown escape keeps its backslash, so "\d+" is the regular expression \d+
            chars.append(_ESCAPES.get(e, "\\" + e))
            i += 2
            continue
        chars.append(c)
        i += 1
    raise QueryError(query, start, "unterminated string")


def _path(query: str, start: int) -> Token:
    """A dotted name; after a dot a segment may be a quoted string: ``params."weird name"``."""
    segments: list[str] = []
    quoted: list[bool] = []
    i = start
    while True:
        if i < len(query) and query[i] in "\"'" and segments:
            text, i = _string(query, i)
            segments.append(text)
            quoted.append(True)
        else:
            m = _BARE.match(query, i)
            if m is None:
                raise QueryError(query, i, "expected a name after '.'")
            segments.append(m.group(0))
            quoted.append(False)
            i = m.end()
        if i + 1 < len(query) and query[i] == "." and (query[i + 1] in "\"'" or _BARE.match(query, i + 1)):
            i += 1
            continue
        break
    text = query[start:i]
    if len(segments) == 1 and segments[0].lower() in KEYWORDS:  # keywords in any case: AND, Or
        return Token("kw", segments[0].lower(), start)
    return Token("path", text, start, segments=tuple(segments), quoted=tuple(quoted))


def epoch(query: str, pos: int, text: str) -> float:
    """An ISO date or datetime as unix seconds; without a UTC offset it is local time (as `ls` prints)."""
    try:
        return datetime.fromisoformat(text).timestamp()
    except (ValueError, OverflowError, OSError) as e:
        raise QueryError(query, pos, f"invalid date {text!r}: {e}") from None
