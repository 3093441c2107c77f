#!/usr/bin/env bash
# Reagent-U on a Qwen2.5-7B-scale policy over 8 GPUs with DeepSpeed ZeRO-3 and vLLM rollouts.
# Serve the judge first (another node or GPU):  vllm serve /models/agent-rrm --port 8001
# Usage: bash scripts/train_qwen7b.sh [key=value ...]   (e.g. variant=reagent-r max_steps=100)
set -euo pipefail
cd "$(dirname "$0")/.."
exec accelerate launch --config_file configs/accelerate/zero3.yaml \
  -m reagent train --config configs/qwen7b_reagent_u.yaml "$@"
