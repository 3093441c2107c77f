"""``reagent eval``: K attempts per benchmark question, checked, recorded, resumable.

    reagent eval --benchmark gsm8k --limit 100 --model DIR --k 4 --out runs/gsm8k
    reagent eval --benchmark hotpotqa --base-url http://127.0.0.1:8000/v1 --k 8 --out runs/hq
    reagent eval --benchmark toy --split heldout --model DIR --out runs/toy
    reagent eval ... --critique --judge-model JUDGE_DIR            # Reagent-C
    reagent eval ... --critique --judge-model rules --revise-below 1.0  # oracle, revise flawed only
    reagent eval ... --best-of 8 --scorer judge --judge-base-url URL  # Best-of-N
    reagent eval ... --best-of 16 --scorer prm --scorer-model runs/prm/final  # by a PRM
    reagent eval ... --beam 4 --expand 4 --scorer prm --scorer-model runs/prm/final  # beam search

``--benchmark`` takes several names, comma-separated; ``--data`` points one benchmark
at another file of its format. Attempt ``a`` of every question runs before attempt
``a + 1``, in chunks of ``--batch-size`` questions; requests in flight to an
endpoint are bounded by ``--concurrency``. Each graded attempt is one flushed line of
``OUT/records.jsonl`` with the id ``{task_id}#{a}``; a re-run skips ids already there,
so a killed run resumes where it stopped. An attempt that ended in a backend error is
not recorded (a re-run retries it) and makes the command exit with status 1. An
attempt the LLM answer checker could not judge is recorded with ``score: null``; a
re-run asks the checker again and appends the new verdict under the same id.
``results.json`` and ``results.md`` are recomputed from the records after every pass
over a benchmark's questions and at the end (:func:`eval.report.compute_metrics`).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from reagent.agent import AgentConfig
from reagent.config import add_config_args, cfg, config_hash, load_config, save_config
from reagent.jsonl import RecordWriter, done_ids
from reagent.template_options import (
    chat_template_kwargs_field,
    check_template_options,
    judge_chat_template_kwargs_field,
    server_extra_body,
    tool_format_field,
)


@dataclass
class EvalConfig:
    benchmark: str = cfg(
        None,
        help="benchmark name(s), comma-separated (gsm8k, math500, aime24, "
        "hotpotqa, musique, 2wiki, bamboogle, gaia, webwalkerqa, hle, "
        "xbench, frames, ..., or toy)",
    )
    data: str | None = cfg(
        None, help="read this file (same format) instead of the benchmark's default"
    )
    data_root: str | None = cfg(None, help="folder laid out like ../shared/benchmarks to load from")
    limit: int | None = cfg(None, help="first N questions of each benchmark")
    split: str = cfg("heldout", help="toy benchmark only: train | heldout")
    env_seed: int = cfg(0, help="toy benchmark only: task generator seed")
    out: str = cfg(None, help="output folder: records.jsonl, results.json, results.md")
    model: str | None = cfg(None, help="local policy model directory (hf or vllm backend)")
    base_url: str | None = cfg(
        None, help="policy OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1"
    )
    served_model: str = cfg("default", help="model name to request from --base-url")
    backend: str | None = cfg(
        None, help="hf | vllm | openai (default: hf with --model, openai with --base-url)"
    )
    device: str = cfg("auto", help="hf backend device: auto | cpu | cuda")
    k: int = cfg(1, help="attempts per question (pass@1 is their mean; pass@k up to K)")
    batch_size: int = cfg(32, help="questions per chunk (one batched agent-loop run per attempt)")
    concurrency: int = cfg(8, help="requests in flight to --base-url")
    max_turns: int = cfg(8, help="assistant turns per episode")
    max_tokens: int = cfg(4096, help="response token budget per episode (generated + tool tokens)")
    max_new_tokens: int = cfg(1024, help="tokens per assistant turn")
    temperature: float = cfg(0.6, help="sampling temperature (0 = greedy; K > 1 needs sampling)")
    top_p: float = cfg(0.95, help="nucleus sampling mass")
    top_k: int = cfg(0, help="top-k sampling; 0 = off")
    seed: int = cfg(0, help="sampling seed; attempt a uses seed + 1009 a")
    chat_template_kwargs: dict = chat_template_kwargs_field()
    tool_format: str = tool_format_field()
    use_python: bool = cfg(True, help="math benchmarks: offer the sandboxed python tool")
    tools: list[str] | None = cfg(None, help="tools every benchmark's environment offers (default: "
                                  "its own; [] none: single-turn, no tool schema in the prompt)")
    qa_metric: str = cfg("em", help="qa environment outcome (trajectory.outcome): em | f1")
    corpus: str | None = cfg(
        None,
        help="JSONL corpus {id,title,text} for search instead of the "
        "benchmark's own paragraphs (or 2Wiki passages)",
    )
    cache_dir: str | None = cfg(
        None, help="where corpora and BM25 indexes are cached (default: OUT/cache)"
    )
    search_url: str | None = cfg(None, help="web benchmarks: Serper-compatible search API URL")
    search_api_key_env: str = cfg("SERPER_API_KEY", help="env var holding the search API key")
    files_dir: str | None = cfg(None, help="GAIA attachments folder (also the file reader's root)")
    critique: bool = cfg(False, help="Reagent-C: answer, get the judge's critique, answer again")
    best_of: int = cfg(1, help="Best-of-N: samples per attempt, the scorer picks one")
    beam: int = cfg(0, help="step-level beam search width W (0 = off); needs --scorer, see --expand")
    expand: int = cfg(4, help="beam search: K sampled candidate turns per beam per step")
    scorer: str = cfg("judge", help="Best-of-N and beam-search scorer: judge (the generative judge's score) | prm "
                      "(AgentPRM value head, promise+progress) | pvm (promise only) | orm (outcome model)")
    scorer_model: str | None = cfg(None, help="--scorer prm|pvm|orm: the trained PRM directory "
                                   "(reagent train-prm's out/final)")
    aggregate: str = cfg("last", help="--scorer prm|pvm: step values to one score: last | min | mean | "
                         "product (reagent/scorers.py; orm: last only)")
    judge_model: str | None = cfg(
        None,
        help="judge model directory (--critique, --best-of); 'rules' = the toy "
        "task's rules checker as an oracle judge (benchmark toy only)",
    )
    revise_below: float | None = cfg(
        None,
        help="--critique: revise only first attempts the judge scored below this (in "
        "(0, 1]) with a critique that names a flaw; the rest keep their first answer. "
        "None = revise every attempt the judge scored (a failed judgment is never revised)",
    )
    judge_base_url: str | None = cfg(None, help="judge OpenAI-compatible endpoint")
    judge_served_model: str | None = cfg(None, help="judge model name at the endpoint")
    judge_max_new_tokens: int = cfg(1024, help="token limit of one verdict")
    judge_device: str = cfg("auto", help="local judge device")
    judge_chat_template_kwargs: dict = judge_chat_template_kwargs_field()
    checker_base_url: str | None = cfg(
        None, help="LLM answer checker endpoint (free-form benchmarks)"
    )
    checker_model: str | None = cfg(None, help="LLM answer checker model name")
    checker_api_key_env: str | None = cfg(None, help="env var holding the checker's API key")

    def __post_init__(self):
        from eval.best_of_n import check_scorer

        check_template_options(self, "chat_template_kwargs", "judge_chat_template_kwargs")
        if not self.benchmark or not self.out:
            raise ValueError("--benchmark NAME and --out DIR are required")
        if (self.model is None) == (self.base_url is None):
            raise ValueError(
                f"give exactly one of --model DIR or --base-url URL (got model={self.model!r}, "
                f"base_url={self.base_url!r})"
            )
        if self.k < 1 or self.best_of < 1 or self.batch_size < 1:
            raise ValueError(
                f"k={self.k}, best_of={self.best_of} and batch_size={self.batch_size} must be >= 1"
            )
        if self.critique and self.best_of > 1:
            raise ValueError("--critique and --best-of N are separate methods; run them separately")
        if self.beam < 0 or self.expand < 1:
            raise ValueError(f"beam={self.beam} must be >= 0 and expand={self.expand} >= 1")
        if self.beam and (self.critique or self.best_of > 1):
            raise ValueError("--beam, --best-of N and --critique are separate methods; run them separately")
        if self.best_of > 1 or self.beam:
            check_scorer(self.scorer)
            _check_value_scorer(self)
        judged = self.critique or ((self.best_of > 1 or self.beam) and self.scorer == "judge")
        if judged and (self.judge_model is None) == (
            self.judge_base_url is None
        ):
            raise ValueError(
                "--critique and --best-of need exactly one of --judge-model DIR or "
                f"--judge-base-url URL (got judge_model={self.judge_model!r}, "
                f"judge_base_url={self.judge_base_url!r})"
            )
        if self.revise_below is not None and not (self.critique and 0 < self.revise_below <= 1):
            raise ValueError(
                f"revise_below={self.revise_below} needs --critique and a value in (0, 1]"
            )
        if self.judge_model == "rules" and self.benchmarks != ["toy"]:
            raise ValueError(
                "--judge-model rules is the toy task's rules checker: use it with "
                f"--benchmark toy only (got benchmark={self.benchmark!r})"
            )
        if bool(self.checker_base_url) != bool(self.checker_model):
            raise ValueError("give both --checker-base-url and --checker-model, or neither")

    @property
    def benchmarks(self) -> list[str]:
        return [b.strip() for b in self.benchmark.split(",") if b.strip()]

    def agent_config(self) -> AgentConfig:
        return AgentConfig(
            max_turns=self.max_turns,
            max_tokens=self.max_tokens,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            seed=self.seed,
            chat_template_kwargs=self.chat_template_kwargs,
            tool_format=self.tool_format,
        )

    def tools_config(self):
        from reagent.tools.factory import ToolsConfig

        if self.search_url:
            return ToolsConfig(
                search_backend="http",
                search_url=self.search_url,
                search_api_key_env=self.search_api_key_env,
            )
        return ToolsConfig()


def _check_value_scorer(c: EvalConfig) -> None:
    from reagent.scorers import AGGREGATES

    if c.aggregate not in AGGREGATES:
        raise ValueError(f"aggregate={c.aggregate!r} is not one of {', '.join(AGGREGATES)}")
    if c.scorer != "judge" and not c.scorer_model:
        raise ValueError(f"--scorer {c.scorer} needs --scorer-model DIR (a trained PRM: reagent train-prm's out/final)")


def make_scorer(c: EvalConfig, judge):
    """The Best-of-N / beam-search scorer of ``c`` (None without --best-of or --beam)."""
    if c.best_of <= 1 and not c.beam:
        return None
    if c.scorer == "judge":
        from reagent.scorers import JudgeScorer

        return JudgeScorer(judge)
    from rrm.prm import load_value_scorer

    return load_value_scorer(c.scorer, c.scorer_model, c.aggregate, device=c.judge_device)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser, EvalConfig)


def make_policy_backend(c: EvalConfig):
    from reagent.generation.factory import make_backend

    kind = c.backend or ("openai" if c.base_url else "hf")
    if kind == "openai":
        return make_backend(
            "openai", model=c.served_model, base_url=c.base_url, concurrency=c.concurrency,
            extra_body=server_extra_body(c.chat_template_kwargs),
        )
    return make_backend(kind, model=c.model, device=c.device)


def make_judge(c: EvalConfig, tasks: list | None = None):
    """The judge of --critique/--best-of; ``tasks`` are what the rules judge may see."""
    if not (c.critique or ((c.best_of > 1 or c.beam) and c.scorer == "judge")):
        return None
    from rrm.judge import make_judge as build

    return build(
        tasks=tasks,
        model=c.judge_model,
        base_url=c.judge_base_url,
        served_model=c.judge_served_model,
        device=c.judge_device,
        concurrency=c.concurrency,
        max_new_tokens=c.judge_max_new_tokens,
        template_kwargs=c.judge_chat_template_kwargs,
    )


def make_checker(c: EvalConfig):
    if not c.checker_base_url:
        return None
    from reagent.rewards.llm_judge import LLMAnswerChecker

    return LLMAnswerChecker(
        c.checker_base_url,
        c.checker_model,
        api_key_env=c.checker_api_key_env,
        concurrency=c.concurrency,
    )


def main(args: argparse.Namespace) -> int:
    return run(load_config(EvalConfig, args))


def run(c: EvalConfig) -> int:
    """Evaluate every benchmark of ``c``; 0 when every attempt was recorded, 1 otherwise."""
    from eval.report import RECORDS, write_results

    out = Path(c.out)
    out.mkdir(parents=True, exist_ok=True)
    _note_config_change(c, out)
    save_config(c, out / "config.yaml")
    setups = _setups(c, out)
    made_by = _made_by(c)
    notes = {s.name: s.notes for s in setups}
    done = done_ids(out / RECORDS)
    todo = {
        (s.name, a): [t for t in s.tasks if f"{t.id}#{a}" not in done]
        for s in setups
        for a in range(c.k)
    }
    n_todo = sum(len(v) for v in todo.values())
    n_all = sum(len(s.tasks) for s in setups) * c.k
    print(
        f"eval: {', '.join(c.benchmarks)}: {n_all} attempts, {n_all - n_todo} already in "
        f"{out / RECORDS}, {n_todo} to run",
        file=sys.stderr,
    )
    errors = 0
    if c.checker_base_url:
        _recheck_unjudged(setups, make_checker(c), out / RECORDS)
    if n_todo:
        backend, judge, checker = (
            make_policy_backend(c),
            make_judge(c, [t for s in setups for t in s.tasks]),
            make_checker(c),
        )
        scorer = make_scorer(c, judge)
        with RecordWriter(out / RECORDS) as writer:
            for s in setups:
                for a in range(c.k):  # attempt-major: a kill leaves whole attempts done
                    tasks = todo[(s.name, a)]
                    for start in range(0, len(tasks), c.batch_size):
                        chunk = tasks[start : start + c.batch_size]
                        errors += _run_chunk(
                            c, s, chunk, a, backend, judge, checker, writer, made_by, scorer
                        )
                        print(
                            f"eval: {s.name} attempt {a + 1}/{c.k}: "
                            f"{min(start + c.batch_size, len(tasks))}/{len(tasks)} questions",
                            file=sys.stderr,
                        )
                    if tasks:  # results follow the records after every pass over the questions
                        write_results(out, notes, made_by)
    metrics = write_results(out, notes, made_by)
    print((out / "results.md").read_text(), file=sys.stderr)
    if c.best_of > 1:
        from eval.best_of_n import write_bon_curve
        from eval.report import read_eval_records

        if write_bon_curve(out, read_eval_records(out / RECORDS), c.scorer):
            print((out / "best_of_n.md").read_text(), file=sys.stderr)
    if errors:
        print(
            f"eval: {errors} attempt(s) ended in a backend error and were not recorded; run "
            "the same command again to retry them",
            file=sys.stderr,
        )
    return 1 if errors or not metrics["benchmarks"] else 0


def _setups(c: EvalConfig, out: Path) -> list:
    """Each benchmark's environment and tasks; free-form ones must have an answer checker."""
    from reagent.tasksets import setup_benchmark

    setups = [
        setup_benchmark(
            b,
            data=c.data,
            data_root=c.data_root,
            limit=c.limit,
            split=c.split,
            env_seed=c.env_seed,
            corpus=c.corpus,
            cache_dir=c.cache_dir or str(out / "cache"),
            tools_config=c.tools_config(),
            files_dir=c.files_dir,
            use_python=c.use_python,
            qa_metric=c.qa_metric,
        )
        for b in c.benchmarks
    ]
    from reagent.envs import with_tools

    for s in setups:
        s.env = with_tools(s.env, c.tools)
        if s.checker == "llm_judge" and not c.checker_base_url:
            raise ValueError(
                f"benchmark {s.name!r} has free-form answers checked by an LLM: "
                "pass --checker-base-url URL and --checker-model NAME"
            )
    return setups


def _made_by(c: EvalConfig) -> dict:
    """What produced the records, written into each one so a number can be traced back."""
    method = ("critique" if c.critique else f"best_of_{c.best_of}" if c.best_of > 1
              else f"beam_{c.beam}x{c.expand}" if c.beam else "plain")
    return {
        "command": "eval",
        "model": c.model or f"{c.base_url}:{c.served_model}",
        "config_hash": config_hash(c),
        "method": method,
        "judge": c.judge_model or c.judge_base_url,
        "scorer": (f"{c.scorer}:{c.scorer_model or c.judge_model or c.judge_base_url}:{c.aggregate}"
                   if c.best_of > 1 or c.beam else None),
        "revise_below": c.revise_below,
        "checker": c.checker_model,
    }


def _run_chunk(
    c: EvalConfig, setup, chunk, attempt, backend, judge, checker, writer, made_by, scorer=None
) -> int:
    """Run attempt ``attempt`` of ``chunk``, grade it, write its records; return errors."""
    from eval.harness import run_attempts

    attempts = run_attempts(
        backend,
        setup,
        c.agent_config(),
        chunk,
        attempt,
        judge=judge,
        critique=c.critique,
        best_of=c.best_of,
        policy_name=made_by["model"],
        scorer=scorer,
        beam=c.beam,
        expand=c.expand,
        revise_below=c.revise_below,
    )
    return _grade_and_write(setup, chunk, attempt, attempts, checker, writer, made_by)


def _grade_and_write(setup, chunk, attempt, attempts, checker, writer, made_by) -> int:
    """Check the answers of one chunk and write its records; return the backend errors left out."""
    from eval.harness import attempt_record, check_answers

    keep = [
        (t, a)
        for t, a in zip(chunk, attempts)
        if a.final.stop_reason != "error"
        and (a.initial is None or a.initial.stop_reason != "error")
    ]
    if not keep:
        return len(chunk)
    scores = check_answers(setup, [a.final for _, a in keep], checker)
    initial = (
        [None] * len(keep)
        if keep[0][1].initial is None
        else check_answers(setup, [a.initial for _, a in keep], checker)
    )
    for (task, a), score, first in zip(keep, scores, initial):
        writer.write(attempt_record(setup, task, attempt, a, score, first, made_by))
    return len(chunk) - len(keep)


def _recheck_unjudged(setups: list, checker, records_path: Path) -> None:
    """Ask the answer checker again about recorded attempts it could not judge before.

    The corrected record is appended under the same id; metrics keep the last line of an
    id, so a flaky checker endpoint costs a re-run, not a re-generation.
    """
    from eval.harness import check_answers, verdict_of
    from eval.report import read_eval_records

    by_name = {s.name: s for s in setups}
    latest = {r["id"]: r for r in read_eval_records(records_path, light=False)}
    known = {(s.name, t.id) for s in setups for t in s.tasks}
    stale = [
        r
        for r in latest.values()
        if r.get("score") is None and (r.get("benchmark"), r.get("task_id")) in known
    ]
    if not stale:
        return
    from reagent.records import Trajectory

    with RecordWriter(records_path) as writer:
        for name, setup in by_name.items():
            recs = [r for r in stale if r["benchmark"] == name]
            if not recs:
                continue
            trajs = [Trajectory.from_dict(r["trajectory"]) for r in recs]
            for rec, score in zip(recs, check_answers(setup, trajs, checker)):
                writer.write(
                    {**rec, "score": score, "verdict": verdict_of(score), "rechecked": True}
                )
    print(
        f"eval: asked the answer checker again about {len(stale)} attempt(s) it could not judge",
        file=sys.stderr,
    )


def _note_config_change(c: EvalConfig, out: Path) -> None:
    """Warn when resuming into a folder that a differently configured run started."""
    saved = out / "config.yaml"
    if not saved.is_file():
        return
    from reagent.config import load_config as load

    try:
        before = load(EvalConfig, yaml_path=str(saved))
    except (ValueError, TypeError):
        return
    if config_hash(before) != config_hash(c):
        print(
            f"eval: warning: {saved} was written by a run with another configuration; the new "
            "records are added to the old ones",
            file=sys.stderr,
        )
