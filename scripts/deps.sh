#!/usr/bin/env bash
# Dependency drift, on purpose and in the open (CI itself installs the pinned versions).
#
#   scripts/deps.sh latest    fresh venv with the newest releases the registry serves (no
#                             constraints), run the test suite, show what differs from the pins
#   scripts/deps.sh refresh   the same, and when the tests pass rewrite constraints/ci.txt;
#                             commit that file alone ("Refresh CI constraints")
#
# Runs in a temporary venv; the working tree is not touched except constraints/ci.txt.
set -euo pipefail
mode=${1:-}
if [ "$mode" != latest ] && [ "$mode" != refresh ]; then
    echo "usage: scripts/deps.sh latest|refresh" >&2
    exit 2
fi
cd "$(dirname "$0")/.."
venv=$(mktemp -d)/venv
python3 -m venv "$venv"
. "$venv/bin/activate"
python -m pip install -q --upgrade pip
cpu_torch=$(ls /opt/wheels/torch-*+cpu-*.whl 2>/dev/null | head -n 1 || true)
if [ -n "$cpu_torch" ]; then python -m pip install -q "$cpu_torch"; fi
python -m pip install -q -e '.[dev]'
frozen=$(mktemp)
python -m pip freeze --exclude-editable | sed 's/^torch @ .*torch-\([0-9.]*\)%2Bcpu.*/torch==\1/' \
    | grep -v '^-e ' >"$frozen"
echo "== differences from constraints/ci.txt (< pinned, > latest)"
diff <(grep -v '^#' constraints/ci.txt) "$frozen" || true
python -m pytest -q
if [ "$mode" = refresh ]; then
    { grep '^#' constraints/ci.txt; cat "$frozen"; } >constraints/ci.txt.new
    mv constraints/ci.txt.new constraints/ci.txt
    echo "constraints/ci.txt rewritten: review the diff and commit it on its own"
fi
