#!/usr/bin/env bash
# A toy GRPO/Reagent run on CPU. Usage: bash scripts/train_toy.sh grpo|reagent_r|reagent_u [key=value ...]
set -euo pipefail
cd "$(dirname "$0")/.."
variant="${1:-grpo}"; shift || true
exec reagent train --config "configs/toy_${variant}.yaml" "$@"
