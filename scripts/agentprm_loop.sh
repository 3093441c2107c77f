#!/usr/bin/env bash
# Iterative actor-critic with a process reward model (Choudhury 2025, AgentPRM), on the toy env.
# Each iteration k = 1..K, starting from the last policy and the last PRM, keeps every artifact
# under OUT/iter-k/:
#   traces.jsonl   rollouts of the current policy (reagent rollout, N per task)
#   labels.jsonl   TD+GAE step labels of those rollouts (reagent label-steps; no extra generation)
#   prm/final      the PRM, trained from the previous PRM (the policy's backbone at k = 1)
#   policy/        GRPO with process_reward=prm (reagent train); its last checkpoint is the next policy
# Without outcome labels (demonstrations only), the InversePRM loop is one command:
#   reagent train-prm --method inverse --demos DEMOS.jsonl --policy POLICY_DIR --out OUT_DIR --iterations K
# Usage:
#   bash scripts/agentprm_loop.sh POLICY_DIR OUT_DIR [K=3] [TASKS=64] [STEPS=20] [key=value ... for reagent train]
set -euo pipefail
cd "$(dirname "$0")/.."
policy=${1:?POLICY_DIR}; out=${2:?OUT_DIR}; iters=${3:-3}; tasks=${4:-64}; steps=${5:-20}
shift $(( $# < 5 ? $# : 5 ))
prm=$policy
for k in $(seq 1 "$iters"); do
  it="$out/iter-$k"
  mkdir -p "$it"
  echo "agentprm_loop: iteration $k/$iters: policy $policy, PRM from $prm" >&2
  reagent rollout --model "$policy" --env toy --split train --limit "$tasks" --n 4 --temperature 1.0 \
    --seed "$k" --out "$it/traces.jsonl"
  reagent label-steps --traces "$it/traces.jsonl" --method td_gae --gamma 1 --lam 0.95 --out "$it/labels.jsonl"
  reagent train-prm --data "$it/labels.jsonl" --model "$prm" --out "$it/prm" --seed "$k"
  reagent train model="$policy" output_dir="$it/policy" process_reward=prm prm_model="$it/prm/final" \
    max_steps="$steps" save_every="$steps" seed="$k" create_missing_model=false "$@"
  prm="$it/prm/final"
  policy="$(ls -d "$it/policy/checkpoints"/step-* | sort | tail -1)/model"
done
echo "agentprm_loop: done; last policy $policy, last PRM $prm" >&2
