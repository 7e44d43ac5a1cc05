"""Searching runs: a parsed filter and sort (``collector/query.py``) compiled to parameterised SQL.

Field names come only from the query language's whitelist, so no identifier is user text, and
every literal is a bound ``?`` parameter: nothing the user writes is ever part of the SQL string.

A search is two steps in one read transaction: the ids of the page (and how many runs match),
then the page's runs, params, tags and metric summaries in batched ``IN (...)`` queries.

Comparisons are typed. Params are JSON: a number matches numbers, a string matches strings,
``true``/``false`` match booleans; a mismatch is false, never an error. A field without a value
(a missing param or tag, a run not ended, a NaN last value) satisfies only ``== null``, and
``not`` of a comparison on it is true.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from aquarium.agent.statuses import RUNNING
from aquarium.collector.query import Ago, And, Compare, Expr, Field, HasTag, In, Not, Or, Sort, Value

from .reader import _RUN_COLUMNS, _rows

__all__ = ["RunPage", "search"]

IN_CHUNK = 500  # ids per `IN (...)` when fetching a page's details

Sql = tuple[str, tuple[Any, ...]]


@dataclass(frozen=True)
class RunPage:
    """One page of the runs a search matched; ``total`` counts every match, before paging."""

    runs: list[dict[str, Any]]
    total: int


_COLUMNS = {
    "status": "r.status",
    "name": "r.name",
    "id": "r.id",
    "experiment": "e.name",
    "created": "r.created_at",
    "started": "r.started_at",
    "ended": "r.ended_at",
}
_SQL_OPS = {"==": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_JSON_TYPE = "json_type(p.value)"
_JSON_VALUE = "json_extract(p.value, '$')"


class _Compiler:
    def __init__(self, now: float) -> None:
        self.now = now
        self.patterns: set[str] = set()

    def literal(self, value: Value) -> Any:
        return self.now - value.seconds if isinstance(value, Ago) else value

    # -- fields as scalar expressions ----------------------------------------------------------
    def field(self, f: Field) -> Sql:
        if f.kind in _COLUMNS:
            return _COLUMNS[f.kind], ()
        if f.kind == "duration":
            return (
                "(CASE WHEN r.ended_at IS NOT NULL THEN r.ended_at - r.started_at "
                "WHEN r.status = ? THEN ? - r.started_at END)",
                (RUNNING, self.now),
            )
        if f.kind == "tag":
            return "(SELECT t.value FROM tags t WHERE t.run_id = r.id AND t.key = ?)", (f.name,)
        if f.kind == "param":
            return (
                f"(SELECT CASE WHEN json_valid(p.value) THEN {_JSON_VALUE} END FROM params p "
                "WHERE p.run_id = r.id AND p.key = ?)",
                (f.name,),
            )
        if f.kind == "metric":
            where = "FROM series s WHERE s.run_id = r.id AND s.key = ?"
            if f.agg == "last":  # the rank that logged the highest step; NaN is stored as NULL
                return (
                    f"(SELECT s.last_value {where} ORDER BY s.last_step DESC, s.rank LIMIT 1)",  # NULL steps sort last
                    (f.name,),
                )
            aggregate = {"min": "min(s.min_value)", "max": "max(s.max_value)", "count": "sum(s.count)"}[f.agg]
            return f"(SELECT {aggregate} {where})", (f.name,)
        raise ValueError(f"cannot compile field {f}")  # the parser never makes one

    # -- predicates ----------------------------------------------------------------------------
    def expr(self, node: Expr) -> Sql:
        if isinstance(node, And | Or):
            return _balanced([self.expr(item) for item in node.items], " AND " if isinstance(node, And) else " OR ")
        if isinstance(node, Not):
            sql, args = self.expr(node.item)
            return f"NOT coalesce({sql}, 0)", args  # a comparison with no value is false, so its `not` is true
        if isinstance(node, HasTag):
            return "EXISTS (SELECT 1 FROM tags t WHERE t.run_id = r.id AND t.key = ?)", (node.name,)
        if node.field.kind == "param":
            return self.param(node)
        column, column_args = self.field(node.field)
        if isinstance(node, In):
            known = [self.literal(v) for v in node.values if v is not None]
            parts: list[Sql] = []
            if known:
                parts.append((f"{column} IN ({', '.join('?' * len(known))})", (*column_args, *known)))
            if None in node.values:
                parts.append((f"{column} IS NULL", column_args))
            return _balanced(parts, " OR ")
        op, value = node.op, node.value
        if value is None:
            return f"{column} IS {'NOT ' if op == '!=' else ''}NULL", column_args
        if op == "contains":
            return f"instr({column}, ?) > 0", (*column_args, value)
        if op == "~":
            assert isinstance(value, str)
            self.patterns.add(value)
            return f"{column} REGEXP ?", (*column_args, value)
        return f"{column} {_SQL_OPS[op]} ?", (*column_args, self.literal(value))

    def param(self, node: Compare | In) -> Sql:
        """Params are JSON text: compare the decoded value only with a literal of its own type."""
        exists = "EXISTS (SELECT 1 FROM params p WHERE p.run_id = r.id AND p.key = ? AND {})"
        has_value = f"CASE WHEN json_valid(p.value) THEN {_JSON_TYPE} != 'null' ELSE 1 END"  # NaN is a value
        name = node.field.name
        no_value: Sql = (f"NOT {exists.format(has_value)}", (name,))
        if isinstance(node, In):
            known = [v for v in node.values if v is not None]
            parts: list[Sql] = []
            if known:
                equal = _balanced([_typed(v, "==") for v in known], " OR ")
                parts.append(
                    (exists.format(f"CASE WHEN json_valid(p.value) THEN {equal[0]} ELSE 0 END"), (name, *equal[1]))
                )
            if None in node.values:
                parts.append(no_value)
            return _balanced(parts, " OR ")
        op, value = node.op, node.value
        if value is None:
            return no_value if op == "==" else (exists.format(has_value), (name,))
        if op == "~":
            assert isinstance(value, str)
            self.patterns.add(value)
        if op == "!=":  # a value, and not this one (of another type counts as another value)
            sql, args = _typed(value, "==")
            test = f"CASE WHEN json_valid(p.value) THEN {_JSON_TYPE} != 'null' AND NOT ({sql}) ELSE 1 END"
            return exists.format(test), (name, *args)
        sql, args = _typed(value, op)
        return exists.format(f"CASE WHEN json_valid(p.value) THEN {sql} ELSE 0 END"), (name, *args)

    # -- order ---------------------------------------------------------------------------------
    def order(self, sorts: Sequence[Sort]) -> tuple[Sql, str]:
        """The sort keys as columns ``k0, k1, ...`` (each computed once per run), and the ORDER BY
        over them: the runs missing a key sort last, whichever the direction; then newest first."""
        columns: list[str] = []
        args: list[Any] = []
        order: list[str] = []
        for i, s in enumerate(sorts):
            sql, field_args = self.field(s.field)
            columns.append(f"{sql} AS k{i}")
            args += field_args
            order += [f"k{i} IS NULL", f"k{i}{' DESC' if s.descending else ''}"]
        order += ["created_at DESC", "id"]
        return ("".join(f", {c}" for c in columns), tuple(args)), ", ".join(order)


def _typed(value: Value, op: str) -> Sql:
    """A test of ``p``'s decoded value against ``value``, true only when both have the same type."""
    if isinstance(value, bool):
        return f"{_JSON_TYPE} {'=' if op == '==' else '!='} '{'true' if value else 'false'}'", ()
    if isinstance(value, int | float):
        return f"{_JSON_TYPE} IN ('integer', 'real') AND {_JSON_VALUE} {_SQL_OPS[op]} ?", (value,)
    assert isinstance(value, str)
    if op == "contains":
        return f"{_JSON_TYPE} = 'text' AND instr({_JSON_VALUE}, ?) > 0", (value,)
    if op == "~":
        return f"{_JSON_TYPE} = 'text' AND {_JSON_VALUE} REGEXP ?", (value,)
    return f"{_JSON_TYPE} = 'text' AND {_JSON_VALUE} {_SQL_OPS[op]} ?", (value,)


def _balanced(parts: list[Sql], joiner: str) -> Sql:
    """Join as a balanced tree of parentheses, so a long `or` chain stays under SQLite's expression depth."""
    if len(parts) == 1:
        sql, args = parts[0]
        return f"({sql})", args
    middle = len(parts) // 2
    left, right = _balanced(parts[:middle], joiner), _balanced(parts[middle:], joiner)
    return f"({left[0]}{joiner}{right[0]})", (*left[1], *right[1])


def _regexp(patterns: set[str]) -> Callable[[str, Any], bool]:
    """SQLite's ``x REGEXP p`` calls ``regexp(p, x)``: each of the query's patterns compiled once."""
    compiled = {p: re.compile(p) for p in patterns}

    def regexp(pattern: str, value: Any) -> bool:
        if value is None:
            return False
        rx = compiled.get(pattern)
        if rx is None:
            rx = compiled[pattern] = re.compile(pattern)
        return rx.search(str(value)) is not None

    return regexp


def search(
    conn: sqlite3.Connection,
    expr: Expr | None,
    sorts: Sequence[Sort],
    limit: int | None,
    offset: int,
    now: float,
) -> RunPage:
    """The page of runs matching ``expr`` in ``sorts`` order, with their params, tags and metrics."""
    if limit is not None and limit < 0 or offset < 0:
        raise ValueError(f"limit and offset must not be negative (limit={limit}, offset={offset})")
    compiler = _Compiler(now)
    where, where_args = compiler.expr(expr) if expr is not None else ("1", ())
    (keys, key_args), order = compiler.order(sorts)
    conn.create_function("regexp", 2, _regexp(compiler.patterns), deterministic=True)
    source = f"FROM runs r LEFT JOIN experiments e ON e.id = r.experiment_id WHERE {where}"
    began = not conn.in_transaction
    if began:
        conn.execute("BEGIN")  # one snapshot for the ids, the total and the details
    try:
        rows = conn.execute(
            f"""WITH matched AS MATERIALIZED (SELECT r.id AS id, r.created_at AS created_at{keys} {source})
                SELECT id, count(*) OVER () FROM matched ORDER BY {order} LIMIT ? OFFSET ?""",
            (*key_args, *where_args, -1 if limit is None else limit, offset),
        ).fetchall()
        if rows:
            total = int(rows[0][1])
        else:
            total = int(conn.execute(f"SELECT count(*) {source}", where_args).fetchone()[0])
        runs = _details(conn, [row[0] for row in rows], now)
    finally:
        if began:
            conn.execute("COMMIT")
    return RunPage(runs, total)


def _chunks(ids: list[str]) -> Iterator[tuple[list[str], str]]:
    for start in range(0, len(ids), IN_CHUNK):
        part = ids[start : start + IN_CHUNK]
        yield part, ", ".join("?" * len(part))


def _details(conn: sqlite3.Connection, ids: list[str], now: float) -> list[dict[str, Any]]:
    """The runs ``ids`` in that order, as ``reader.list_runs`` has them, plus duration, params, tags, metrics."""
    runs: dict[str, dict[str, Any]] = {}
    for part, marks in _chunks(ids):
        for run in _rows(
            conn.execute(
                f"""SELECT {_RUN_COLUMNS},
                           (SELECT count(DISTINCT rank) FROM incarnations i WHERE i.run_id = r.id) AS ranks
                    FROM runs r LEFT JOIN experiments e ON e.id = r.experiment_id WHERE r.id IN ({marks})""",
                part,
            )
        ):
            run["duration"] = _duration(run, now)
            run["params"], run["tags"], run["metrics"] = {}, {}, {}
            runs[run["id"]] = run
    for part, marks in _chunks(ids):
        sql = f"SELECT run_id, key, value FROM params WHERE run_id IN ({marks}) ORDER BY run_id, key"
        for run_id, key, value in conn.execute(sql, part):
            runs[run_id]["params"][key] = json.loads(value)
        sql = f"SELECT run_id, key, value FROM tags WHERE run_id IN ({marks}) ORDER BY run_id, key"
        for run_id, key, value in conn.execute(sql, part):
            runs[run_id]["tags"][key] = value
        sql = f"""SELECT run_id, key, count, last_step, last_value, min_value, max_value FROM series
                  WHERE run_id IN ({marks}) ORDER BY run_id, key, rank"""
        for run_id, key, count, last_step, last_value, min_value, max_value in conn.execute(sql, part):
            _fold(runs[run_id]["metrics"], key, count, last_step, last_value, min_value, max_value)
    for run in runs.values():
        for m in run["metrics"].values():
            del m["last_step"]
    return [runs[i] for i in ids if i in runs]


def _duration(run: dict[str, Any], now: float) -> float | None:
    if run["started_at"] is None:
        return None
    if run["ended_at"] is not None:
        return float(run["ended_at"] - run["started_at"])
    return now - float(run["started_at"]) if run["status"] == RUNNING else None


def _fold(
    metrics: dict[str, dict[str, Any]],
    key: str,
    count: int,
    last_step: int | None,
    last_value: float | None,
    min_value: float | None,
    max_value: float | None,
) -> None:
    """One rank's summary row into the metric's: as ``reader.metric_summaries`` reads them."""
    m = metrics.setdefault(key, {"last": None, "min": None, "max": None, "count": 0, "last_step": None})
    m["count"] += count
    if m["last_step"] is None or (last_step is not None and last_step > m["last_step"]):
        m["last"] = math.nan if last_value is None and last_step is not None else last_value
        m["last_step"] = last_step
    if min_value is not None and (m["min"] is None or min_value < m["min"]):
        m["min"] = min_value
    if max_value is not None and (m["max"] is None or max_value > m["max"]):
        m["max"] = max_value
