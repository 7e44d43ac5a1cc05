"""Mistakes a user makes on the command line end in one line and exit 1, never a traceback."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from aquarium.cli import cli


def test_a_data_dir_whose_database_is_not_sqlite_is_named(tmp_path: Path, redis_url: str) -> None:
    (tmp_path / "aquarium.db").write_text("not a database\n")
    for command in (["ls"], ["show", "some-run"], ["collector", "--burst", "--redis-url", redis_url]):
        result = CliRunner().invoke(cli, [*command, "--data-dir", str(tmp_path)])
        assert result.exit_code == 1, (command, result.output)
        assert "is not an Aquarium store" in result.output and "Traceback" not in result.output


def test_a_malformed_redis_url_is_refused_before_the_collector_starts(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["collector", "--redis-url", "foo://x", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and "--redis-url 'foo://x'" in result.output
    assert "Traceback" not in result.output
