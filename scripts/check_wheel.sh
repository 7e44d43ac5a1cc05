#!/usr/bin/env bash
# Build the wheel, install it into a fresh venv, and import the packages from another directory.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python -m pip wheel -q --no-deps -w "$work/dist" "$repo"
python -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$(ls "$work"/dist/aquarium_tracker-*.whl)[server]"
cd "$work"
"$work/venv/bin/python" - <<'PY'
import aquarium.agent, aquarium.collector, aquarium.collector.store, aquarium.cli, sys
assert "site-packages" in aquarium.agent.__file__, aquarium.agent.__file__
assert "site-packages" in aquarium.collector.__file__, aquarium.collector.__file__
print("wheel ok:", aquarium.agent.__file__)
PY
"$work/venv/bin/aquarium" --help >/dev/null
echo "wheel: installed and imported from $work"
