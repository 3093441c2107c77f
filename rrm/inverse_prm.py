"""``reagent train-prm --method inverse``: InversePRM, a process reward from demonstrations alone.

Variant (Choudhury 2025, "Process Reward Models for LLM Agents", InversePRM): no
outcome label is read anywhere. Starting from an SFT policy pi_0 and a PRM backbone,
iteration k = 0..K-1 does

1. **rollout**: pi_k on a fresh seeded sample of the demonstrations' tasks
   (``reagent rollout``, ``rollout_n`` per task) -> ``iter-k/rollouts.jsonl``;
2. **labels**: every agent step of a demonstration gets q = 1, every step of a policy
   rollout q = 0 (:func:`data_gen.inverse_labels.discriminator_labels`, classes
   balanced) -> ``iter-k/labels.jsonl``;
3. **PRM**: ``reagent train-prm`` (promise loss only, beta = 0) from the previous
   iteration's PRM -> ``iter-k/prm/final``. The objective is a least-squares
   discriminator, min_V E_demo[(V(s_t) - 1)^2] + E_pi[(V(s_t))^2], whose optimum is
   V*(s) = d_demo(s) / (d_demo(s) + d_pi(s)): the step value says how much more a
   state looks like the expert's than like the policy's;
4. **RL**: ``reagent train`` with ``process_reward=prm`` and ``outcome_weight=0``
   (:mod:`reagent.train.process_reward`): the PRM's group-normalised step values are
   the only reward, for ``rl_steps`` steps -> ``iter-k/policy``; its last checkpoint is
   pi_{k+1}.

What keeps it from collapsing (our choice; the paper's loop plus three guards):

* **aggregated negatives** (``mix_previous``, default on): the PRM of iteration k
  sees the policy steps of iterations 0..k, not only the newest, so it cannot
  forget an old mistake the policy might return to (dataset aggregation across
  iterations, as in Choudhury's iterated loop and in GAIL-style replay);
* **balanced classes**, subsampled with a seed: a constant output fits no better
  than chance, so a PRM that stops discriminating shows it in its accuracy
  (``iter-k/discrimination.json``: mean value of demo vs policy steps, accuracy at
  0.5 and AUROC, over the iteration's labels), which is logged per iteration;
* **group-normalised process rewards** in the trainer: a PRM drifting to one value
  for everything gives zero advantage, never a biased one; a KL to the SFT start can
  be added with ``train_args: [kl_coef=0.05]`` (off by default, as in the trainer).

Every artifact stays under ``OUT/iter-k/`` (logs of every command under
``iter-k/logs/``), and ``iter-k/done.json`` marks a finished iteration: a re-run skips
it and continues from its policy and PRM (``reagent rollout`` and each trainer resume
on their own inside an iteration). ``OUT/inverse_prm.json`` names the last policy and
PRM. Each stage is the public CLI in its own process, so this module writes no
trainer of its own.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from data_gen.inverse_labels import discriminator_labels
from reagent.config import config_dict, config_hash, save_config
from reagent.jsonl import load_records, write_records
from reagent.records import Task, Trajectory
from rrm.prm_train import TrainPRMConfig


def _reagent(args: list[str], log: Path) -> None:
    """Run ``reagent <args>`` in its own process, output to ``log``; raise with its tail on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        fh.write("$ reagent " + " ".join(args) + "\n")
        fh.flush()
        code = subprocess.call([sys.executable, "-m", "reagent", *args], stdout=fh, stderr=subprocess.STDOUT,
                               env=dict(os.environ))
    if code != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-20:])
        raise RuntimeError(f"inverse-prm: reagent {args[0]} failed (exit {code}); see {log}:\n{tail}")


def demo_tasks(c: TrainPRMConfig, demos: list[Trajectory]) -> list[Task]:
    """The tasks of the demonstrations, in demonstration order (each once).

    From ``c.tasks`` when given, else regenerated from the environment's train split
    (the toy task generator is deterministic in ``env_seed``). Demonstrations whose
    task cannot be found are left out; none found is an error naming the file."""
    if c.tasks:
        pool = {t.id: t for t in load_records(c.tasks, Task)}
    else:
        from reagent.envs import make_env

        env = make_env(c.env, **({"seed": c.env_seed} if c.env == "toy" else {}))
        try:
            pool = {t.id: t for t in env.tasks("train", len(demos))}
        except TypeError:  # environments whose split has a fixed size
            pool = {t.id: t for t in env.tasks("train")}
    seen, tasks = set(), []
    for d in demos:
        if d.task_id in pool and d.task_id not in seen:
            seen.add(d.task_id)
            tasks.append(pool[d.task_id])
    if not tasks:
        where = c.tasks or f"env={c.env} env_seed={c.env_seed} train split"
        raise ValueError(f"{c.demos}: none of the demonstrations' task ids is in {where}; "
                         "pass the env seed they were made with, or --tasks FILE")
    return tasks


def _last_checkpoint(run: Path) -> Path:
    steps = sorted((run / "checkpoints").glob("step-*/model"))
    if not steps:
        raise RuntimeError(f"inverse-prm: {run} has no checkpoint after reagent train")
    return steps[-1]


def discrimination(prm_dir: Path, labels: list) -> dict:
    """Mean step value of demonstration vs policy steps, accuracy at 0.5 and AUROC (per step)."""
    from rrm.metrics import auroc
    from rrm.prm import PRMScorer

    trajs = [Trajectory.from_dict(r.trajectory) for r in labels]
    values = PRMScorer(str(prm_dir), device="cpu").score_steps(trajs)
    demo, pol = [], []
    for r, v in zip(labels, values):
        if v:
            (demo if r.steps[0]["q"] >= 0.5 else pol).extend(v)
    flat = demo + pol
    truth = [True] * len(demo) + [False] * len(pol)
    acc = sum((x >= 0.5) == t for x, t in zip(flat, truth)) / len(flat) if flat else None
    return {"demo_mean": sum(demo) / len(demo) if demo else None,
            "policy_mean": sum(pol) / len(pol) if pol else None,
            "accuracy": acc, "auroc": auroc(flat, truth), "steps": {"demo": len(demo), "policy": len(pol)}}


def run_inverse(c: TrainPRMConfig) -> dict:
    """Run (or resume) the K InversePRM iterations of ``c``; the summary written to OUT/inverse_prm.json."""
    out = Path(c.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(c, out / "config.yaml")
    demos = load_records(c.demos, Trajectory, skip_bad=True)
    tasks = demo_tasks(c, demos)
    policy, prm = c.policy, c.model or c.policy
    loop = ["--max-turns", str(c.max_turns), "--max-tokens", str(c.max_tokens),
            "--max-new-tokens", str(c.max_new_tokens), "--device", c.device]
    history: list[dict] = []
    for k in range(c.iterations):
        it = out / f"iter-{k}"
        marker = it / "done.json"
        if marker.exists():
            done = json.loads(marker.read_text())
            policy, prm = done["policy"], done["prm"]
            history.append(done)
            print(f"inverse-prm: iteration {k}: done before, skipped", file=sys.stderr)
            continue
        start = time.time()
        it.mkdir(parents=True, exist_ok=True)
        # 1. rollout the current policy on a fresh sample of the demonstrations' tasks
        sample = random.Random(f"{c.seed}-{k}").sample(tasks, min(c.rollout_tasks, len(tasks)))
        write_records(it / "tasks.jsonl", sample)
        _reagent(["rollout", "--model", policy, "--env", c.env, "--env-seed", str(c.env_seed),
                  "--tasks", str(it / "tasks.jsonl"), "--n", str(c.rollout_n), "--temperature", "1.0",
                  "--seed", str(c.seed + k), "--out", str(it / "rollouts.jsonl"), *loop], it / "logs" / "rollout.log")
        # 2. discriminator labels: demonstrations 1, policy steps (this and, mixed, earlier iterations) 0
        negatives = []
        for j in range(k + 1) if c.mix_previous else (k,):
            negatives += load_records(out / f"iter-{j}" / "rollouts.jsonl", Trajectory, skip_bad=True)
        labels, counts = discriminator_labels(demos, negatives, seed=c.seed + k)
        write_records(it / "labels.jsonl", labels)
        # 3. the PRM, from the previous one: promise-only MSE to the 0/1 targets
        _reagent(["train-prm", "--data", str(it / "labels.jsonl"), "--model", prm, "--out", str(it / "prm"),
                  "--beta", "0", "--epochs", str(c.epochs), "--batch-size", str(c.batch_size), "--lr", str(c.lr),
                  "--val-fraction", str(c.val_fraction), "--max-seq-len", str(c.max_seq_len),
                  "--seed", str(c.seed + k), "--resume"], it / "logs" / "train-prm.log")
        disc = discrimination(it / "prm" / "final", labels)
        (it / "discrimination.json").write_text(json.dumps(disc, indent=2))
        # 4. RL with the PRM as the only reward
        rl = it / "policy"
        _reagent(["train", f"model={policy}", f"output_dir={rl}", "process_reward=prm",
                  f"prm_model={it / 'prm' / 'final'}", "outcome_weight=0", "keep_degenerate_groups=true",
                  f"env={c.env}", f"env_seed={c.env_seed}", f"train_tasks={len(tasks)}",
                  f"max_steps={c.rl_steps}", f"save_every={c.rl_steps}", f"seed={c.seed + k}",
                  f"max_turns={c.max_turns}", f"max_tokens={c.max_tokens}", f"max_new_tokens={c.max_new_tokens}",
                  f"device={c.device}", "create_missing_model=false", "resume=true", *map(str, c.train_args)],
                 it / "logs" / "train.log")
        policy, prm = str(_last_checkpoint(rl)), str(it / "prm" / "final")
        done = {"iteration": k, "policy": policy, "prm": prm, "labels": counts, "negatives": len(negatives),
                "discrimination": disc, "seconds": round(time.time() - start, 1)}
        marker.write_text(json.dumps(done, indent=2))
        history.append(done)
        print(f"inverse-prm: iteration {k}: demo steps {disc['demo_mean']}, policy steps {disc['policy_mean']}, "
              f"accuracy {disc['accuracy']} ({done['seconds']} s)", file=sys.stderr)
    summary = {"policy": policy, "prm": prm, "iterations": history, "config_hash": config_hash(c),
               "config": config_dict(c)}
    (out / "inverse_prm.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
