#!/usr/bin/env bash
# Install Damselfly with its test extras into .venv and run every check CI runs.
# Usage: bash scripts/test.sh [pytest arguments]  (with arguments, the tests run once, with
#        them, in .venv; without, the whole suite also runs against the compiled build)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

echo "== ruff"
.venv/bin/ruff check src tests benchmarks setup.py
echo "== import contracts"
.venv/bin/lint-imports
echo "== mypy: the modules the compiled build compiles ([tool.mypy] files; the core strict)"
.venv/bin/mypy
run_pytest() {  # run_pytest PYTHON [pytest arguments]: pytest, where no tests is a failure
    local python=$1 status=0
    shift
    "$python" -m pytest "$@" || status=$?
    if [ "$status" -eq 5 ]; then
        echo "pytest collected no tests: that is a failure, not a pass" >&2
        return 1
    fi
    return "$status"
}

echo "== pytest"
run_pytest .venv/bin/python "$@"

# With arguments, a targeted run: stop here. The full run also tests the compiled build
# (DAMSELFLY_COMPILE=1, see setup.py) in a second environment, installed as users install
# it (not editable) and imported from there, not from src/ (pythonpath emptied).
if [ "$#" -eq 0 ]; then
    echo "== the compiled build: install into .venv-compiled, then the whole suite again"
    if [ ! -x .venv-compiled/bin/python ]; then
        python3 -m venv .venv-compiled
    fi
    .venv-compiled/bin/python -m pip install -q --upgrade pip
    # setuptools packs whatever build/ holds: a module compiled before and since removed or
    # renamed would be installed beside the sources and shadow them.
    rm -rf build
    DAMSELFLY_COMPILE=1 .venv-compiled/bin/python -m pip install -q '.[test]'
    DAMSELFLY_EXPECT_COMPILED=1 run_pytest .venv-compiled/bin/python -o pythonpath=
fi
