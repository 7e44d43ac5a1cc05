#!/usr/bin/env bash
# Build the wheel, install it into a fresh venv, import the packages from another directory, and
# type-check every package as installed (py.typed shipped, mypy --strict against the wheel).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python -m pip wheel -q --no-deps -w "$work/dist" "$repo"
python -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$(ls "$work"/dist/aquarium_tracker-*.whl)[server,ui]" "pandas-stubs>=2.0"
cd "$work"
"$work/venv/bin/python" - <<'PY'
import aquarium.agent, aquarium.collector, aquarium.collector.store, aquarium.cli, aquarium.workers, aquarium.ui
from importlib.resources import files
assert "site-packages" in aquarium.agent.__file__, aquarium.agent.__file__
assert "site-packages" in aquarium.collector.__file__, aquarium.collector.__file__
for package in ("agent", "collector", "cli", "workers", "ui"):
    assert files(f"aquarium.{package}").joinpath("py.typed").is_file(), f"aquarium.{package} ships no py.typed"
print("wheel ok:", aquarium.agent.__file__)
PY
"$work/venv/bin/aquarium" --help >/dev/null
python -m mypy --config-file "$repo/pyproject.toml" --strict --no-incremental --cache-dir "$work/mypy-cache" \
    --python-executable "$work/venv/bin/python" \
    -p aquarium.agent -p aquarium.collector -p aquarium.cli -p aquarium.workers -p aquarium.ui
echo "wheel: installed, imported and type-checked from $work"
