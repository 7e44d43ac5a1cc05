#!/usr/bin/env bash
# The test command: installs what the tests need on a fresh Debian machine, lints and checks the
# formatting (ruff), proves the wheel installs, imports and type-checks (mypy --strict, every
# package) from another directory, then runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# redis-server for the fixtures, chromium for the dashboard's browser tests
missing=()
[ -x /usr/bin/redis-server ] || missing+=(redis-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python -m pip install -q --upgrade pip >/dev/null
python -m pip install -q -e ".[test]"

python -m ruff check .
python -m ruff format --check .
# The wheel first, so pytest's summary is the last thing printed.
bash scripts/check_wheel.sh
python -P -m pytest "$@"
