"""Generated tokens/s of batched versus one-trajectory-at-a-time rollout (run by hand).

    python benchmarks/rollout.py [--model DIR] [--tasks 64] [--device cpu]

Same tiny model, same toy tasks, same sampling settings; only the batch differs. The
model is the untrained micro model unless --model is given (a trained policy makes
shorter, tool-calling episodes; the comparison holds either way).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from reagent.agent import AgentConfig, AgentLoop, specs_for
from reagent.envs.toy import ToyEnv
from reagent.generation.hf import HFBackend
from reagent.tiny_model import make_tiny_model


def run(loop: AgentLoop, specs, batch: int) -> tuple[int, float]:
    start = time.perf_counter()
    generated = 0
    for i in range(0, len(specs), batch):
        for traj in loop.run(specs[i:i + batch]):
            generated += sum(traj.loss_mask)
    return generated, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None)
    p.add_argument("--tasks", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batches", default="1,8,64")
    args = p.parse_args()
    model = args.model or make_tiny_model(tempfile.mkdtemp(), size="micro", seed=0)
    env = ToyEnv(seed=0)
    backend = HFBackend(str(model), device=args.device, batch_size=256)
    loop = AgentLoop(backend, env, AgentConfig(max_turns=4, max_tokens=160, max_new_tokens=48, seed=0))
    specs = specs_for(env, env.tasks("heldout", args.tasks), 1)
    print(f"model {model} on {args.device}, {args.tasks} toy episodes, torch threads {torch.get_num_threads()}")
    for batch in (int(b) for b in args.batches.split(",")):
        tokens, seconds = run(loop, specs, batch)
        print(f"batch {batch:>4}: {tokens:>6} generated tokens in {seconds:6.2f} s = {tokens / seconds:8.0f} tok/s")


if __name__ == "__main__":
    main()
