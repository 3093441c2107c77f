"""Cost and quality of TD+GAE versus Monte-Carlo step labels (run by hand).

    python benchmarks/step_labels.py --policy SFT_DIR [--trajectories 200] [--rollouts 4 16 64]
        [--device cpu] [--out DIR]

On the same toy trajectories of one policy (sampled here, temperature 1):

* ``td_gae/V=0``: the bootstrap labels (no PRM yet): no generation, no forward pass;
* ``td_gae/PRM``: a PRM trained for ``--prm-epochs`` on the bootstrap labels gives V
  (its training time is reported apart); labelling costs one forward pass each;
* ``mc/N``: N continuations per non-final step, every prefix batched in the agent loop;
* the reference: MC with ``--reference`` rollouts (default 64) and another seed.

For each: wall seconds, policy tokens generated, tokens read by a value model; and
label quality against the reference (Spearman and MAE of Q over all steps and over non-final steps - the
final step's target is the outcome for every method). Prints a table and writes
``OUT/step_labels.json``.

Measured 2026-12-01 on the shared 2-core machine (load ~7), a micro policy after 700
SFT steps that had not yet learned the task (0 of 32 sampled episodes correct, so the
Q targets are nearly all 0 and the quality columns say little), 32 trajectories,
``--rollouts 4 16 --reference 32 --max-new-tokens 64``: td_gae generated 0 tokens
(bootstrap: 0 s; with a PRM: 4,100 tokens read in 1.75 s, after 21.7 s of PRM
training); mc/4 9,505 tokens in 127 s; mc/16 41,863 tokens in 231 s; the mc/32
reference 83,618 tokens in 428 s. Against the reference: MAE 0.005 (td_gae V=0),
0.009 (td_gae PRM), 0.005 (mc/4), 0.007 (mc/16); Spearman -0.29 (td_gae PRM), 0.32
(mc/16), undefined for constant labels. Rerun with a policy that solves the task
for a quality comparison that means something.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from data_gen.step_labels import LabelReport, agent_config, label_mc, label_td_gae
from reagent.agent import AgentLoop, specs_for
from reagent.envs.toy import ToyEnv
from reagent.generation.hf import HFBackend
from reagent.jsonl import write_records
from rrm.prm_eval import spearman


def quality(labels, reference) -> dict:
    ref = {r.trajectory_id: [s["q"] for s in r.steps] for r in reference}
    all_p, all_r, mid_p, mid_r = [], [], [], []
    for label in labels:
        if label.trajectory_id not in ref:
            continue
        q, r = [s["q"] for s in label.steps], ref[label.trajectory_id]
        all_p += q
        all_r += r
        mid_p += q[:-1]
        mid_r += r[:-1]
    mae = lambda a, b: sum(abs(x - y) for x, y in zip(a, b)) / len(a) if a else None  # noqa: E731
    return {"spearman": spearman(all_p, all_r), "mae": mae(all_p, all_r),
            "spearman_nonfinal": spearman(mid_p, mid_r), "mae_nonfinal": mae(mid_p, mid_r), "steps": len(all_p),
            "nonfinal_steps": len(mid_p)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", required=True, help="SFT policy directory (reagent sft out/final)")
    p.add_argument("--trajectories", type=int, default=200)
    p.add_argument("--rollouts", type=int, nargs="+", default=[4, 16, 64])
    p.add_argument("--reference", type=int, default=64, help="rollouts of the MC reference (independent seed)")
    p.add_argument("--gamma", type=float, default=1.0)
    p.add_argument("--lam", type=float, default=0.95)
    p.add_argument("--prm-epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=1024, help="continuations per agent-loop batch")
    p.add_argument("--max-turns", type=int, default=6)
    p.add_argument("--max-new-tokens", type=int, default=256, help="tokens per turn")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="step_labels_"))
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    env = ToyEnv()
    tasks = env.tasks("train", args.trajectories)
    backend = HFBackend(args.policy, device=args.device)

    def loop(seed: int) -> AgentLoop:
        return AgentLoop(backend, env, agent_config(args.max_turns, 1024, args.max_new_tokens, 1.0, seed), policy_name=args.policy)

    t0 = time.perf_counter()
    trajs = loop(1000).run(specs_for(env, tasks, 1))
    rollout = {"wall_s": time.perf_counter() - t0, "tokens_generated": sum(sum(t.loss_mask) for t in trajs),
               "trajectories": len(trajs), "success": sum((t.outcome or 0) for t in trajs) / len(trajs),
               "mean_steps": sum(t.extra["turns"] for t in trajs) / len(trajs)}
    write_records(out / "traces.jsonl", trajs)
    rows: dict[str, dict] = {}
    results: dict[str, list] = {}

    rep = LabelReport()
    t0 = time.perf_counter()
    results["td_gae/V=0"] = label_td_gae(trajs, args.gamma, args.lam, None, rep)
    rows["td_gae/V=0"] = {"wall_s": time.perf_counter() - t0, "tokens_generated": rep.tokens_generated,
                          "tokens_scored": rep.tokens_scored}

    from rrm.prm import PRMScorer
    from rrm.prm_train import TrainPRMConfig, train

    write_records(out / "labels_td0.jsonl", results["td_gae/V=0"])
    t0 = time.perf_counter()
    train(TrainPRMConfig(data=str(out / "labels_td0.jsonl"), model=args.policy, out=str(out / "prm"),
                         epochs=args.prm_epochs, lr=1e-3, batch_size=32, val_fraction=0.1))
    prm_train_s = time.perf_counter() - t0
    rep = LabelReport()
    t0 = time.perf_counter()
    results["td_gae/PRM"] = label_td_gae(trajs, args.gamma, args.lam,
                                         PRMScorer(out / "prm" / "final", device=args.device, batch_size=64), rep)
    rows["td_gae/PRM"] = {"wall_s": time.perf_counter() - t0, "tokens_generated": rep.tokens_generated,
                          "tokens_scored": rep.tokens_scored, "prm_train_s": prm_train_s}

    task_by_id = {t.id: t for t in tasks}
    for n in sorted(args.rollouts):
        rep = LabelReport()
        t0 = time.perf_counter()
        results[f"mc/{n}"] = label_mc(trajs, task_by_id, loop(n), n, args.gamma, args.batch_size, rep,
                                      progress=lambda d, t: print(f"  mc/{n}: {d}/{t} continuations", flush=True))
        rows[f"mc/{n}"] = {"wall_s": time.perf_counter() - t0, "tokens_generated": rep.tokens_generated,
                           "tokens_scored": 0, "labelled": rep.labelled}
        print(f"mc/{n}: {rows[f'mc/{n}']}", flush=True)
    top = args.reference
    rep = LabelReport()
    t0 = time.perf_counter()
    reference = label_mc(trajs, task_by_id, loop(10_000 + top), top, args.gamma, args.batch_size, rep,
                         progress=lambda d, t: print(f"  reference: {d}/{t} continuations", flush=True))
    ref_cost = {"wall_s": time.perf_counter() - t0, "tokens_generated": rep.tokens_generated}
    for name, labels in results.items():
        rows[name].update(quality(labels, reference))
    mc16 = rows.get("mc/16", {}).get("tokens_generated")
    report = {"rollout": rollout, "reference": f"mc/{top} (independent seed)", "reference_cost": ref_cost,
              "methods": rows,
              "td_gae_tokens_over_mc16": (rows["td_gae/PRM"]["tokens_generated"] / mc16) if mc16 else None}
    (out / "step_labels.json").write_text(json.dumps(report, indent=2))
    print(f"rollout of {len(trajs)} trajectories: {json.dumps(rollout)}")
    print(f"reference mc/{top}: {json.dumps(ref_cost)}")
    print(f"{'method':<12} {'wall_s':>8} {'generated':>10} {'scored':>8} {'spearman':>9} {'mae':>6} "
          f"{'spear_nf':>9} {'mae_nf':>7}")
    fmt = lambda v, w, d: f"{v:>{w}.{d}f}" if isinstance(v, float) else f"{str(v):>{w}}"  # noqa: E731
    for name, r in rows.items():
        print(f"{name:<12} {fmt(r['wall_s'], 8, 2)} {r['tokens_generated']:>10} {r['tokens_scored']:>8} "
              f"{fmt(r['spearman'], 9, 3)} {fmt(r['mae'], 6, 3)} {fmt(r['spearman_nonfinal'], 9, 3)} "
              f"{fmt(r['mae_nonfinal'], 7, 3)}")
    print(f"written to {out / 'step_labels.json'}")


if __name__ == "__main__":
    main()
