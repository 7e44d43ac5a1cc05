"""The run query language's parser: fields, operators, precedence, literals, and its errors."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aquarium.agent.errors import AquariumError
from aquarium.collector import QueryError, parse_filter, parse_sort
from aquarium.collector.query import (
    MAX_FILTER_CHARS,
    Ago,
    And,
    Compare,
    Field,
    HasTag,
    In,
    Not,
    Or,
    Sort,
)


def cmp(field: Field, op: str, value: object) -> Compare:
    return Compare(field, op, value)  # type: ignore[arg-type]


LR = Field("param", "lr")
A, B, C = (Field("metric", k, "min") for k in "abc")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("params.lr == 1", Field("param", "lr")),
        ("params.optimizer.lr == 1", Field("param", "optimizer.lr")),
        ("params.warm-up_steps == 1", Field("param", "warm-up_steps")),
        ('params."weird name" == 1', Field("param", "weird name")),
        ("params.'a.b' == 1", Field("param", "a.b")),
        ("metrics.train/loss.min == 1", Field("metric", "train/loss", "min")),
        ("metrics.val.loss.last == 1", Field("metric", "val.loss", "last")),
        ("metrics.acc.max == 1", Field("metric", "acc", "max")),
        ("metrics.acc.count == 1", Field("metric", "acc", "count")),
        ("val_loss.min == 1", Field("metric", "val_loss", "min")),
        ("train/loss.last == 1", Field("metric", "train/loss", "last")),
        ('tags.team == "x"', Field("tag", "team")),
        ('status == "x"', Field("status")),
        ('experiment == "x"', Field("experiment")),
        ('name == "x"', Field("name")),
        ('id == "x"', Field("id")),
        ("created > 0", Field("created")),
        ("started > 0", Field("started")),
        ("ended > 0", Field("ended")),
        ("duration > 0", Field("duration")),
    ],
)
def test_fields(query: str, field: Field) -> None:
    node = parse_filter(query)
    assert isinstance(node, Compare) and node.field == field


@pytest.mark.parametrize("op", ["==", "!=", "<", "<=", ">", ">="])
def test_comparison_operators(op: str) -> None:
    assert parse_filter(f"params.lr {op} 1e-3") == cmp(LR, op, 0.001)
    assert parse_filter(f"params.lr{op}-2") == cmp(LR, op, -2)


def test_in_contains_regex_and_tags() -> None:
    assert parse_filter('"prod" in tags') == HasTag("prod")
    assert parse_filter('tags contains "prod"') == HasTag("prod")
    assert parse_filter("status in (\"running\", 'failed')") == In(Field("status"), ("running", "failed"))
    assert parse_filter("params.batch in (32, 64.0, null)") == In(Field("param", "batch"), (32, 64.0, None))
    assert parse_filter('name contains "res"') == cmp(Field("name"), "contains", "res")
    assert parse_filter(r'name ~ "^res\d+"') == cmp(Field("name"), "~", r"^res\d+")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", 1),
        ("-1", -1),
        ("1.5", 1.5),
        ("-.5", -0.5),
        ("1e-3", 0.001),
        ("2E+2", 200.0),
        ("99999999999999999999", 1e20),  # beyond int64: compared as a float
        ('"a\\"b"', 'a"b'),
        ("'a\\'b'", "a'b"),
        ('"tab\\there"', "tab\there"),
        ('"\\u00e9"', "é"),
        ('"\\d+"', "\\d+"),  # an unknown escape keeps its backslash, for regular expressions
        ("true", True),
        ("FALSE", False),
        ("null", None),
    ],
)
def test_literals(text: str, value: object) -> None:
    node = parse_filter(f"params.x == {text}")
    assert isinstance(node, Compare) and node.value == value and type(node.value) is type(value)


def test_precedence_not_binds_tighter_than_and_tighter_than_or() -> None:
    a, b, c = cmp(A, ">", 1), cmp(B, ">", 2), cmp(C, ">", 3)
    assert parse_filter("a.min > 1 or b.min > 2 and c.min > 3") == Or((a, And((b, c))))
    assert parse_filter("a.min > 1 and b.min > 2 or c.min > 3") == Or((And((a, b)), c))
    assert parse_filter("not a.min > 1 and b.min > 2") == And((Not(a), b))
    assert parse_filter("not (a.min > 1 and b.min > 2)") == Not(And((a, b)))
    assert parse_filter("(a.min > 1 or b.min > 2) and c.min > 3") == And((Or((a, b)), c))
    assert parse_filter("not not a.min > 1") == Not(Not(a))
    assert parse_filter("a.min > 1 AND b.min > 2 Or c.min > 3") == Or((And((a, b)), c))
    assert parse_filter("a.min > 1 or b.min > 2 or c.min > 3") == Or((a, b, c))  # n-ary, not nested


def test_dates_and_durations() -> None:
    day = datetime(2026, 11, 30).timestamp()  # no offset: local time, as `aquarium ls` prints
    assert parse_filter('created > "2026-11-30"') == cmp(Field("created"), ">", day)
    assert parse_filter("created > 2026-11-30") == cmp(Field("created"), ">", day)
    assert parse_filter("ended < 2026-11-30T12:00") == cmp(Field("ended"), "<", day + 12 * 3600)
    assert parse_filter("ended < 2026-11-30T12:00:00Z") == cmp(Field("ended"), "<", 1796040000.0)
    assert parse_filter("started >= 1700000000") == cmp(Field("started"), ">=", 1700000000)
    for text, seconds in (("-7d", 7 * 86400), ("-12h", 12 * 3600), ("-30m", 1800), ("-2w", 14 * 86400)):
        assert parse_filter(f"created > {text}") == cmp(Field("created"), ">", Ago(seconds))
        assert parse_filter(f'created > "{text}"') == cmp(Field("created"), ">", Ago(seconds))
    for text, seconds in (("90", 90), ("90s", 90.0), ("5m", 300.0), ("2h", 7200.0), ('"1.5h"', 5400.0)):
        assert parse_filter(f"duration > {text}") == cmp(Field("duration"), ">", seconds)


def test_sorts() -> None:
    assert parse_sort("-metrics.val_loss.min") == (Sort(Field("metric", "val_loss", "min"), True),)
    assert parse_sort("params.lr, -created , name desc, +id asc") == (
        Sort(LR),
        Sort(Field("created"), True),
        Sort(Field("name"), True),
        Sort(Field("id")),
    )
    assert parse_sort('tags.team, duration, params."a b"') == (
        Sort(Field("tag", "team")),
        Sort(Field("duration")),
        Sort(Field("param", "a b")),
    )


def caret_column(error: QueryError) -> int:
    lines = str(error).splitlines()
    return lines[-1].index("^") - 2  # both lines are indented by two spaces


@pytest.mark.parametrize(
    ("query", "position", "reason"),
    [
        ("foo > 1", 0, "unknown field 'foo'"),
        ("params.lr > 1 and foo > 1", 18, "unknown field 'foo'"),
        ("metrics.loss.median < 1", 0, "unknown field 'metrics.loss.median'"),
        ("metrics.loss < 1", 0, "unknown field 'metrics.loss'"),
        ("status.min < 1", 0, "status has no parts"),
        ("(a.min > 1", 0, "unbalanced parenthesis"),
        ("a.min > 1)", 9, "unbalanced parenthesis"),
        ("((a.min > 1)", 0, "unbalanced parenthesis"),
        ("status in ()", 11, "empty list"),
        ("status in ('a'", 10, "unbalanced parenthesis"),
        ('name ~ "(unclosed"', 7, "invalid regular expression"),
        ("params.lr >", 11, "expected a value"),
        ("params.lr 1", 10, "expected an operator"),
        ("params.lr > 1 params.b > 2", 14, "expected 'and', 'or'"),
        ("params.lr > 1 and", 17, "expected a field"),
        ("params.lr > 1.2.3", 12, "malformed number"),
        ("params.lr > 12abc", 12, "malformed number"),
        ('name == "open', 8, "unterminated string"),
        ("params.lr # 1", 10, "unexpected character '#'"),
        ("status == 1", 10, "status is text"),
        ("metrics.a.min == 'x'", 17, "is a number"),
        ("metrics.a.min contains 'x'", 23, "applies to text"),
        ("status == true", 10, "only params hold booleans"),
        ("created > 7d", 10, "write -7d for 7d ago"),
        ("created > 2026-13-45", 10, "invalid date"),
        ("duration > -5m", 11, "never negative"),
        ("params.lr < null", 12, "null compares only"),
        ("'prod' in status", 10, "expected 'tags'"),
        ("tags == 'x'", 0, "'tags' is a set of names"),
        ("", 0, "empty filter"),
        ("   ", 3, "empty filter"),
        ("params.x == 1 or " * 3 + "(" * 70 + "a.min > 1" + ")" * 70, 116, "nested more than 64"),
    ],
)
def test_errors_say_where(query: str, position: int, reason: str) -> None:
    with pytest.raises(QueryError) as raised:
        parse_filter(query)
    error = raised.value
    assert isinstance(error, AquariumError)
    assert reason in error.reason and error.position == position, (error.reason, error.position)
    assert reason in str(error) and f"at character {position + 1}" in str(error)
    assert caret_column(error) == min(position, 60) + (3 if position > 60 else 0)


def test_the_caret_points_under_the_bad_part() -> None:
    with pytest.raises(QueryError) as raised:
        parse_filter('params.lr > 1e-3 and metrics.val_loss.median < 0.3 and "prod" in tags')
    lines = str(raised.value).splitlines()
    assert lines[-2] == '  params.lr > 1e-3 and metrics.val_loss.median < 0.3 and "prod" in tags'
    assert lines[-1] == "  " + " " * 21 + "^"


def test_a_filter_longer_than_the_limit_is_refused() -> None:
    ok = "params.x == " + '"' + "a" * (MAX_FILTER_CHARS - 14) + '"'
    assert len(ok) == MAX_FILTER_CHARS
    parse_filter(ok)
    with pytest.raises(QueryError) as raised:
        parse_filter(ok + " ")
    assert raised.value.position == MAX_FILTER_CHARS and "at most 4096 characters" in raised.value.reason
    assert len(str(raised.value)) < 400  # a window of the query, not all of it


@pytest.mark.parametrize(
    ("spec", "position"), [("", 0), ("-", 1), ("tags", 0), ("foo", 0), ("name,", 5), ("name name", 5)]
)
def test_sort_errors(spec: str, position: int) -> None:
    with pytest.raises(QueryError) as raised:
        parse_sort(spec)
    assert raised.value.position == position


ALPHABET = st.sampled_from(
    list("abcmst.()\"'\\,<>=!~-+_/ 0123456789eE:T")
    + ["params.", "metrics.", "tags", " and ", " or ", "not ", " in "]
    + [".min", ".last", "status", "created", "duration", "true", "null", "-7d", "5m", "2026-11-30", " contains "]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(ALPHABET, max_size=30).map("".join) | st.text(max_size=60))
def test_any_text_parses_or_raises_query_error(text: str) -> None:
    for parse in (parse_filter, parse_sort):
        try:
            parse(text)
        except QueryError as e:
            assert 0 <= e.position <= len(text)
