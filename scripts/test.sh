#!/usr/bin/env bash
# Install Damselfly with its test extras into .venv and run every check CI runs.
# Usage: bash scripts/test.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

echo "== ruff"
.venv/bin/ruff check src tests benchmarks
echo "== import contracts"
.venv/bin/lint-imports
echo "== mypy (strict) on the scheduling core"
.venv/bin/mypy src/damselfly/scheduling
echo "== pytest"
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure, not a pass" >&2
    exit 1
fi
exit "$status"
