"""The agent's public surface type-checks under mypy --strict (it ships py.typed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_agent_passes_mypy_strict() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "agent/"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _pyproject() -> dict:  # type: ignore[type-arg]
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_every_package_ships_py_typed_and_is_type_checked_from_the_wheel() -> None:
    """scripts/check_wheel.sh runs mypy --strict on every top-level package, as installed."""
    setuptools = _pyproject()["tool"]["setuptools"]
    top_level = [p for p in setuptools["packages"] if p.count(".") == 1]
    check = (REPO / "scripts" / "check_wheel.sh").read_text()
    assert "mypy" in check and "--strict" in check and "--python-executable" in check
    for package in top_level:
        folder = REPO / setuptools["package-dir"][package]
        assert (folder / "py.typed").is_file(), f"{folder} has no py.typed"
        assert "py.typed" in setuptools["package-data"].get(package, []), f"{package} does not ship py.typed"
        assert f"-p {package}" in check, f"check_wheel.sh does not type-check {package}"


def test_the_test_command_runs_ruff() -> None:
    script = (REPO / "scripts" / "test.sh").read_text()
    assert "ruff check ." in script and "ruff format --check ." in script
