#!/usr/bin/env bash
# The README's first command: the whole Reagent loop offline on a CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
exec reagent quickstart --out "${1:-runs/quickstart}" --budget "${2:-default}"
