"""The run query language: a whitelisting parser for run filters and sorts.

    parse_filter('params.lr > 1e-3 and metrics.val_loss.min < 0.3 and "prod" in tags')
    parse_sort("-metrics.val_loss.min, name")

The text is split by ``collector/query_tokens.py``; the result is an AST of small frozen
dataclasses, which ``collector/store/search.py`` compiles to parameterised SQL. Only the fields
below exist, so a field never reaches SQL as user text, and every literal becomes a bound
parameter:

- ``params.<name>`` (names may hold dots, ``-``, ``/``; ``params."weird name"`` quotes one),
- ``metrics.<key>.{last,min,max,count}`` (``<key>.min`` when ``<key>`` is no other field),
- ``tags`` (the set of tag names: ``"prod" in tags``), ``tags.<name>`` (a tag's value),
- ``status``, ``experiment``, ``name``, ``id`` (text),
- ``created``, ``started``, ``ended`` (ISO dates, unix seconds, or ``-7d`` for 7 days ago),
- ``duration`` (seconds, or ``90s``, ``5m``, ``2h``, ``1d``, ``1w``).

``field == null`` holds when the field has no value (a missing param or tag, a run not ended, a
NaN last value); ``field != v`` holds when it has a value that is not ``v``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeAlias

from .query_tokens import SPAN, UNITS, QueryError, Token, epoch, tokenize

__all__ = [
    "AGGREGATES",
    "MAX_FILTER_CHARS",
    "Ago",
    "And",
    "Compare",
    "Expr",
    "Field",
    "HasTag",
    "In",
    "Not",
    "Or",
    "QueryError",
    "Sort",
    "Value",
    "parse_filter",
    "parse_sort",
]

MAX_FILTER_CHARS = 4096
MAX_DEPTH = 64  # nested parentheses and `not`s: deeper is a mistake, and would exhaust the stack
AGGREGATES = ("last", "min", "max", "count")
TEXT_FIELDS = ("status", "experiment", "name", "id")
TIME_FIELDS = ("created", "started", "ended")
SIMPLE_FIELDS = (*TEXT_FIELDS, *TIME_FIELDS, "duration")
FIELD_NAMES = ("params", "metrics", "tags", *SIMPLE_FIELDS)
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")


@dataclass(frozen=True)
class Ago:
    """A time relative to when the query runs: ``-7d`` is ``Ago(604800.0)``."""

    seconds: float


Value: TypeAlias = str | int | float | bool | None | Ago


@dataclass(frozen=True)
class Field:
    """A whitelisted field: ``kind`` is param, metric, tag, tags or one of SIMPLE_FIELDS."""

    kind: str
    name: str = ""  # the param, tag or metric key
    agg: str = ""  # a metric's aggregate

    def __str__(self) -> str:
        if self.kind in ("param", "tag"):
            return f"{self.kind}s.{self.name}"
        if self.kind == "metric":
            return f"metrics.{self.name}.{self.agg}"
        return self.kind


@dataclass(frozen=True)
class Compare:
    """``field op value``; op is one of COMPARISONS, ``contains`` or ``~`` (regular expression)."""

    field: Field
    op: str
    value: Value


@dataclass(frozen=True)
class In:
    """``field in (v1, v2, ...)``."""

    field: Field
    values: tuple[Value, ...]


@dataclass(frozen=True)
class HasTag:
    """``"prod" in tags`` (also ``tags contains "prod"``)."""

    name: str


@dataclass(frozen=True)
class Not:
    item: "Expr"


@dataclass(frozen=True)
class And:
    items: tuple["Expr", ...]


@dataclass(frozen=True)
class Or:
    items: tuple["Expr", ...]


Expr: TypeAlias = Compare | In | HasTag | Not | And | Or


@dataclass(frozen=True)
class Sort:
    field: Field
    descending: bool = False


# -- parser --------------------------------------------------------------------------------------
class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = tokenize(query)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, reason: str, token: Token | None = None) -> QueryError:
        return QueryError(self.query, (token or self.tok).pos, reason)

    def next(self) -> Token:
        token = self.tokens[self.i]
        if token.kind != "end":
            self.i += 1
        return token

    def at(self, kind: str, text: str | None = None) -> bool:
        return self.tok.kind == kind and (text is None or self.tok.text == text)

    def expect(self, kind: str, text: str, what: str) -> Token:
        if not self.at(kind, text):
            raise self.error(f"expected {what}, found {self._found()}")
        return self.next()

    def _found(self) -> str:
        return "the end of the query" if self.tok.kind == "end" else repr(self.tok.text)

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"nested more than {MAX_DEPTH} levels deep")

    # expr := and ("or" and)* ; and := not ("and" not)* ; not := "not" not | primary
    def expr(self) -> Expr:
        items = [self.conj()]
        while self.at("kw", "or"):
            self.next()
            items.append(self.conj())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conj(self) -> Expr:
        items = [self.negation()]
        while self.at("kw", "and"):
            self.next()
            items.append(self.negation())
        return items[0] if len(items) == 1 else And(tuple(items))

    def negation(self) -> Expr:
        if self.at("kw", "not"):
            self.next()
            self.nest()
            item = self.negation()
            self.depth -= 1
            return Not(item)
        return self.primary()

    def primary(self) -> Expr:
        if self.at("op", "("):
            open_paren = self.next()
            self.nest()
            inner = self.expr()
            self.depth -= 1
            if not self.at("op", ")"):
                if self.tok.kind == "end":
                    raise self.error("unbalanced parenthesis: this '(' is never closed", open_paren)
                raise self.error(f"expected ')' or an operator, found {self._found()}")
            self.next()
            return inner
        if self.tok.kind in ("str", "num", "date", "span") or self.at("kw", "true") or self.at("kw", "false"):
            return self.membership()
        if self.tok.kind != "path":
            if self.at("op", ")"):
                raise self.error("unbalanced parenthesis: ')' without '('")
            raise self.error(f"expected a field, found {self._found()}")
        return self.comparison()

    def membership(self) -> Expr:
        """``"prod" in tags``: the only comparison with a literal on the left."""
        literal = self.next()
        if literal.kind != "str":
            raise self.error("expected a field; only a quoted tag name goes left of 'in tags'", literal)
        self.expect("kw", "in", "'in tags' after a quoted tag name")
        target = self.tok
        if not (target.kind == "path" and target.segments == ("tags",)):
            raise self.error(f"expected 'tags' after '{literal.text} in', found {self._found()}")
        self.next()
        assert isinstance(literal.value, str)
        return HasTag(literal.value)

    def comparison(self) -> Expr:
        token = self.tok
        f = self.field()
        if self.at("kw", "in"):
            self.next()
            if f.kind == "tags":
                raise self.error("'tags' is a set of names: write \"name\" in tags", token)
            open_paren = self.expect("op", "(", "'(' after 'in'")
            values: list[Value] = []
            if self.at("op", ")"):
                raise self.error("empty list after 'in'")
            while True:
                values.append(self.value(f, "in"))
                if self.at("op", ","):
                    self.next()
                    continue
                if self.at("op", ")"):
                    self.next()
                    return In(f, tuple(values))
                if self.tok.kind == "end":
                    raise self.error("unbalanced parenthesis: this '(' is never closed", open_paren)
                raise self.error(f"expected ',' or ')' in the list, found {self._found()}")
        op_token = self.tok
        if self.at("kw", "contains"):
            op = "contains"
        elif op_token.kind == "op" and op_token.text in (*COMPARISONS, "~"):
            op = op_token.text
        else:
            raise self.error(f"expected an operator (== != < <= > >= in contains ~) after {f}, found {self._found()}")
        self.next()
        if f.kind == "tags":
            if op != "contains":
                raise self.error('\'tags\' is a set of names: write "name" in tags or tags contains "name"', token)
            literal = self.tok
            if literal.kind != "str":
                raise self.error("expected a quoted tag name after 'tags contains'")
            self.next()
            assert isinstance(literal.value, str)
            return HasTag(literal.value)
        return Compare(f, op, self.value(f, op))

    def field(self) -> Field:
        token = self.next()
        if token.kind != "path":
            raise self.error(f"expected a field, found {token.text!r}", token)
        return _field(self.query, token)

    def value(self, f: Field, op: str) -> Value:
        token = self.next()
        if token.kind == "kw" and token.text in ("true", "false", "null"):
            value: Value = {"true": True, "false": False, "null": None}[token.text]
        elif token.kind == "str":
            assert isinstance(token.value, str)
            value = token.value
        elif token.kind == "num":
            assert isinstance(token.value, (int, float))
            value = token.value
        elif token.kind in ("date", "span"):
            value = self.time_value(f, token)
        else:
            found = "the end of the query" if token.kind == "end" else repr(token.text)
            raise self.error(f"expected a value (number, quoted string, true, false, null), found {found}", token)
        return self.check(f, op, value, token)

    def time_value(self, f: Field, token: Token) -> Value:
        if f.kind not in (*TIME_FIELDS, "duration"):
            raise self.error(f"{token.text} is a time; {f} takes a number or a quoted string", token)
        if token.kind == "date":
            if f.kind == "duration":
                raise self.error("duration is a number of seconds (or 90s, 5m, 2h), not a date", token)
            assert isinstance(token.value, float)
            return token.value
        assert isinstance(token.value, tuple)
        negative, seconds = token.value
        if f.kind == "duration":
            if negative:
                raise self.error("a duration is never negative", token)
            return float(seconds)
        if not negative:
            raise self.error(f"write -{token.text} for {token.text} ago (or an ISO date)", token)
        return Ago(float(seconds))

    def check(self, f: Field, op: str, value: Value, token: Token) -> Value:
        """The literal fits the field, else a QueryError (params take any: a mismatch is false)."""
        if value is None:
            if op not in ("==", "!=", "in"):
                raise self.error("null compares only with == and != (or in a list)", token)
            return value
        if op in ("contains", "~"):
            if not isinstance(value, str):
                raise self.error(f"'{op}' takes a quoted string", token)
            if f.kind in (*TIME_FIELDS, "duration", "metric"):
                raise self.error(f"'{op}' applies to text; {f} is a number", token)
            if op == "~":
                try:
                    re.compile(value)
                except (re.error, OverflowError, RecursionError, ValueError) as e:
                    raise self.error(f"invalid regular expression: {e}", token) from None
            return value
        if isinstance(value, bool) and f.kind != "param":
            raise self.error(f"{f} is not true or false; only params hold booleans", token)
        if isinstance(value, bool) and op not in ("==", "!=", "in"):
            raise self.error("true and false compare only with == and !=", token)
        if f.kind in TEXT_FIELDS or f.kind == "tag":
            if not isinstance(value, str):
                raise self.error(f"{f} is text: compare it with a quoted string", token)
        elif f.kind == "metric":
            if not isinstance(value, (int, float)):
                raise self.error(f"{f} is a number: compare it with a number", token)
        elif f.kind in TIME_FIELDS:
            if isinstance(value, str):
                return _time_text(self.query, token, value)
            if op == "in":
                raise self.error(f"{f} is a time: compare it with < or >, not in a list", token)
        elif f.kind == "duration" and isinstance(value, str):
            m = SPAN.fullmatch(value.strip())
            if m is None or m.group(1):
                raise self.error("expected a duration: seconds, or like 90s, 5m, 2h", token)
            return float(m.group(2)) * UNITS[m.group(3)]
        return value


def _field(query: str, token: Token) -> Field:
    segments, quoted = token.segments, token.quoted
    head, rest = segments[0], segments[1:]
    if head == "params" and not quoted[0]:
        if not rest:
            raise QueryError(query, token.pos, "expected params.<name>")
        return Field("param", ".".join(rest))
    if head == "tags" and not quoted[0]:
        return Field("tag", ".".join(rest)) if rest else Field("tags")
    if head == "metrics" and not quoted[0]:
        if len(rest) < 2 or quoted[-1] or rest[-1] not in AGGREGATES:
            raise QueryError(
                query, token.pos, f"unknown field {token.text!r}: write metrics.<key>.{{{','.join(AGGREGATES)}}}"
            )
        return Field("metric", ".".join(rest[:-1]), rest[-1])
    if head in SIMPLE_FIELDS:
        if rest:
            raise QueryError(query, token.pos, f"unknown field {token.text!r}: {head} has no parts")
        return Field(head)
    if rest and rest[-1] in AGGREGATES and not quoted[-1]:
        return Field("metric", ".".join(segments[:-1]), rest[-1])
    raise QueryError(
        query,
        token.pos,
        f"unknown field {token.text!r}: expected params.<name>, metrics.<key>.<last|min|max|count>, "
        f"tags, tags.<name>, or one of {', '.join(SIMPLE_FIELDS)}",
    )


def _time_text(query: str, token: Token, text: str) -> Value:
    m = SPAN.fullmatch(text.strip())
    if m is not None:
        if not m.group(1):
            raise QueryError(query, token.pos, f"write -{text.strip()} for {text.strip()} ago (or an ISO date)")
        return Ago(float(m.group(2)) * UNITS[m.group(3)])
    return epoch(query, token.pos, text.strip())


def parse_filter(query: str) -> Expr:
    """The AST of a run filter; raises QueryError (with the position) for anything else."""
    if len(query) > MAX_FILTER_CHARS:
        raise QueryError(query, MAX_FILTER_CHARS, f"a filter is at most {MAX_FILTER_CHARS} characters")
    parser = _Parser(query)
    if parser.at("end"):
        raise parser.error("empty filter")
    expr = parser.expr()
    if not parser.at("end"):
        if parser.at("op", ")"):
            raise parser.error("unbalanced parenthesis: ')' without '('")
        raise parser.error(f"expected 'and', 'or' or the end of the query, found {parser._found()}")
    return expr


def parse_sort(spec: str) -> tuple[Sort, ...]:
    """Comma-separated fields, each ascending, or descending with a leading '-' or a trailing 'desc'."""
    if len(spec) > MAX_FILTER_CHARS:
        raise QueryError(spec, MAX_FILTER_CHARS, f"a sort is at most {MAX_FILTER_CHARS} characters")
    parser = _Parser(spec)
    sorts: list[Sort] = []
    while True:
        descending = False
        if parser.at("op", "-") or parser.at("op", "+"):
            descending = parser.next().text == "-"
        token = parser.tok
        if token.kind != "path":
            raise parser.error(f"expected a field to sort by, found {parser._found()}")
        f = parser.field()
        if f.kind == "tags":
            raise parser.error("cannot sort by the set of tags; sort by tags.<name>", token)
        if parser.at("kw", "asc") or parser.at("kw", "desc"):
            descending = parser.next().text == "desc"
        sorts.append(Sort(f, descending))
        if parser.at("end"):
            return tuple(sorts)
        parser.expect("op", ",", "',' between sort fields")
