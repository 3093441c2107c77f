#!/usr/bin/env bash
# GPU check of the real-model paths, in one go (under 8 minutes on one GPU):
#
#   bash scripts/gpu_check.sh [WORKDIR]
#
# Needs: a CUDA GPU, vLLM (pip install 'reagent[vllm]'), and the Qwen vocabulary
# (pip install --no-deps dashscope). Everything runs on a tiny random Qwen3-architecture
# model with the real Qwen3 tokenizer and chat template (reagent make-tiny-model
# --tokenizer qwen3); nothing is downloaded. Prints one line per check:
#   PASS|FAIL <check> (<seconds>s) <detail>
# and exits 1 if any check failed; each check's full log is in WORKDIR/<check>.log.
#
# Checks:
#   make_models    tiny Qwen3 policy and judge with the real tokenizer
#   vllm_rollout   vLLM rollouts on the toy env (token-in/token-out, masks), one GRPO-style
#                  update of the HF model on the GPU, weight sync into vLLM, then the engine's
#                  weights equal the trainer's (fused qkv/gate_up compared piecewise) and
#                  vLLM's logprobs of a fixed sequence match the trainer's
#   train_vllm     reagent train rollout_backend=vllm, one step (the trainer's own sync path)
#   judge_serve    vllm serve of the judge checkpoint (with the qwen3 reasoning parser),
#                  scored through reagent judge --base-url
#   train_bf16     reagent train bf16=true on the GPU, one step, finite loss logged
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
work="${1:-$(mktemp -d /tmp/reagent_gpu_check.XXXXXX)}"
mkdir -p "$work"
failed=0
port=8011

check() {  # check NAME CMD... : one line, full log in $work/NAME.log
  local name="$1"; shift
  local start=$SECONDS
  if "$@" >"$work/$name.log" 2>&1; then
    echo "PASS $name ($((SECONDS - start))s) $(tail -n 1 "$work/$name.log")"
  else
    echo "FAIL $name ($((SECONDS - start))s) see $work/$name.log: $(tail -n 1 "$work/$name.log")"
    failed=1
  fi
}

make_models() {
  reagent make-tiny-model --tokenizer qwen3 --out "$work/policy" --seed 0 &&
    reagent make-tiny-model --tokenizer qwen3 --out "$work/judge" --seed 1 &&
    reagent demos --out "$work/demos.jsonl" --limit 16 &&
    echo "policy and judge in $work"
}

vllm_rollout() {
  python - "$work/policy" <<'PY'
import sys

import torch
from transformers import AutoModelForCausalLM

from reagent.agent import AgentConfig, AgentLoop, specs_for
from reagent.envs import make_env
from reagent.generation.vllm_backend import VLLMBackend
from reagent.tokenization import pad_token_id
from reagent.train.batch import collate

model_dir = sys.argv[1]
backend = VLLMBackend(model_dir, gpu_memory_utilization=0.25, max_model_len=2048,
                      enforce_eager=True, dtype="bfloat16")
tok = backend.tokenizer
env = make_env("toy", seed=0)
loop = AgentLoop(backend, env, AgentConfig(max_turns=3, max_tokens=256, max_new_tokens=64))
trajs = loop.run(specs_for(env, env.tasks("train", 8), 4))
assert len(trajs) == 32 and all(len(t.token_ids) == len(t.loss_mask) for t in trajs)
assert all(sum(t.loss_mask) > 0 for t in trajs), "a rollout has no generated tokens"
for t in trajs:
    plen = t.extra["prompt_length"]
    assert not any(t.loss_mask[:plen]), "prompt tokens are masked in"

model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.bfloat16).cuda()
batch = collate(trajs, torch.randn(len(trajs)), pad_token_id(tok))
ids, attn = batch.input_ids.cuda(), batch.attention_mask.cuda()
mask, adv = batch.loss_mask.cuda()[:, 1:], batch.advantages.cuda()
opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None])[..., 0]
loss = -((logp * mask).sum(1) / mask.sum(1).clamp(min=1) * adv).mean()
before = {n: p.detach().clone() for n, p in model.named_parameters()}
loss.backward()
opt.step()
moved = sum(not torch.equal(p, before[n]) for n, p in model.named_parameters())
assert moved == len(before), f"only {moved}/{len(before)} parameters changed"

backend.load_weights((n, p.detach()) for n, p in model.state_dict().items())
engine = backend._local_model()
assert engine is not None, "cannot reach the in-process vLLM model to compare weights"
hf = model.state_dict()
fused = {"qkv_proj": ["q_proj", "k_proj", "v_proj"], "gate_up_proj": ["gate_proj", "up_proj"]}
compared = 0
for name, param in engine.named_parameters():
    parts = [name]
    for fused_name, pieces in fused.items():
        if f".{fused_name}." in name:
            parts = [name.replace(fused_name, p) for p in pieces]
    if not all(p in hf for p in parts):
        if name == "lm_head.weight":  # tied: equal to the embedding
            parts = ["model.embed_tokens.weight"]
        else:
            raise AssertionError(f"vLLM parameter {name} has no trainer counterpart")
    expected = torch.cat([hf[p] for p in parts], 0).to(param.dtype)
    assert torch.equal(param.data, expected), f"{name} differs after the sync"
    compared += 1

seq = trajs[0].token_ids[:64]
with torch.no_grad():
    ref = torch.log_softmax(model(input_ids=torch.tensor([seq]).cuda()).logits.float(), -1)
ref_lp = ref[0, :-1].gather(-1, torch.tensor(seq[1:]).cuda()[:, None])[:, 0]
import vllm  # noqa: E402

out = backend.llm.generate([{"prompt_token_ids": seq}],
                           vllm.SamplingParams(max_tokens=1, prompt_logprobs=0), use_tqdm=False)
got = [d[t].logprob for d, t in zip(out[0].prompt_logprobs[1:], seq[1:])]
gap = (torch.tensor(got) - ref_lp.cpu()).abs().max().item()
assert gap < 0.1, f"vLLM and trainer logprobs differ by {gap:.3f} after the sync"
answered = sum(t.stop_reason == "answered" for t in trajs)
print(f"32 rollouts ({answered} answered), {moved} parameters updated, {compared} vLLM "
      f"tensors equal to the trainer's, logprob gap {gap:.4f}")
PY
}

train_vllm() {
  reagent train variant=grpo model="$work/policy" create_missing_model=false \
    output_dir="$work/train_vllm" rollout_backend=vllm device=cuda max_steps=1 save_every=1 \
    prompts_per_step=4 group_size=4 max_tokens=128 max_new_tokens=32 keep_degenerate_groups=true \
    truncated=penalise truncation_penalty=-1 &&
    python -c "import json,sys; m=[json.loads(l) for l in open(sys.argv[1])][-1]; \
print('step', m['step'], 'trajectories', m.get('actor/trajectories'), 'rollout_s', \
round(m['timing_s/rollout'], 1))" "$work/train_vllm/metrics.jsonl"
}

judge_serve() {
  vllm serve "$work/judge" --port "$port" --host 127.0.0.1 --max-model-len 4096 \
    --gpu-memory-utilization 0.2 --enforce-eager --reasoning-parser qwen3 \
    >"$work/vllm_serve.log" 2>&1 &
  local pid=$!
  local ok=0
  for _ in $(seq 1 120); do
    if curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null; then ok=1; break; fi
    sleep 1
  done
  if [ "$ok" != 1 ]; then kill "$pid"; echo "vllm serve did not come up: $(tail -n 3 "$work/vllm_serve.log")"; return 1; fi
  reagent judge --base-url "http://127.0.0.1:$port/v1" --traces "$work/demos.jsonl" \
    --out "$work/judged.jsonl" on_failure=outcome_only max_new_tokens=64 2>&1 | tail -n 3
  local rc=${PIPESTATUS[0]}
  kill "$pid"; wait "$pid" 2>/dev/null
  [ "$rc" = 0 ] || return 1
  python - "$work/judged.jsonl" <<'PY'
import collections
import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1])]
status = collections.Counter(r["judge"]["status"] for r in rows)
assert len(rows) == 16, f"{len(rows)} of 16 trajectories judged"
assert status["failed"] == 0, f"requests that failed (transport or server): {dict(status)}"
print(f"16 trajectories judged through vllm serve; statuses {dict(status)} (random judge)")
PY
}

train_bf16() {
  reagent train variant=grpo model="$work/policy" create_missing_model=false \
    output_dir="$work/train_bf16" device=cuda bf16=true max_steps=1 save_every=1 \
    prompts_per_step=2 group_size=4 max_tokens=96 max_new_tokens=32 keep_degenerate_groups=true &&
    python -c "import json,math,sys; m=[json.loads(l) for l in open(sys.argv[1])][-1]; \
loss=m.get('actor/pg_loss'); assert loss is not None and math.isfinite(loss), m; \
print('bf16 step', m['step'], 'pg_loss', round(loss, 4))" "$work/train_bf16/metrics.jsonl"
}

python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" ||
  { echo "FAIL gpu (0s) no CUDA device visible"; exit 1; }
python -c "import vllm" 2>/dev/null || { echo "FAIL vllm (0s) vLLM is not installed"; exit 1; }

check make_models make_models
check vllm_rollout vllm_rollout
check train_vllm train_vllm
check judge_serve judge_serve
check train_bf16 train_bf16
echo "work directory: $work"
exit "$failed"
