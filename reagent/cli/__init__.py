"""The ``reagent`` command line: one subcommand per workflow.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``main(args) -> int``. The table below maps names to modules and one-line help, so
``reagent --help`` lists everything without importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line description). Later workflows add a line here.
COMMANDS: dict[str, tuple[str, str]] = {
    "quickstart": ("reagent.cli.quickstart", "the whole Reagent loop offline on a CPU: tiny models, SFT, judge, RL, eval"),
    "validate": ("reagent.cli.validate", "check JSONL record files; print FILE:LINE: reason per bad record"),
    "make-tiny-model": ("reagent.cli.make_tiny_model", "build a tiny local Qwen2 model and BPE tokenizer (no network)"),
    "demos": ("reagent.cli.demos", "write rule-based toy demonstrations, correct and deliberately flawed"),
    "sft": ("reagent.cli.sft", "supervised warm-up of a policy on trajectories (loss on its own tokens)"),
    "rollout": ("reagent.cli.rollout", "run a policy on an environment's tasks and write trajectories (resumable)"),
    "import": ("data_gen.cli_import", "convert openai/sharegpt traces to trajectory JSONL; report unmappable records"),
    "annotate": ("data_gen.cli_annotate", "judge trajectories with a teacher (endpoint or toy rules) into judge JSONL (resumable)"),
    "build-dataset": ("data_gen.cli_build", "filter, balance and split judge verdicts by task; JSONL, HF dataset, stats"),
    "judge": ("rrm.cli_judge", "score a trajectory file with a judge model or endpoint (resumable)"),
    "serve": ("rrm.cli_serve", "serve a local model over an OpenAI-compatible HTTP API, batched"),
    "train-rrm": ("rrm.cli_train", "fine-tune a judge (Agent-RRM) on teacher-annotated examples"),
    "train-rrm-rl": ("rrm.cli_train_rl", "RL stage of a judge: GRPO on its own verdicts (format + agreement reward)"),
    "eval-rrm": ("rrm.cli_eval", "judge-quality report (format, MAE, AUROC, pairwise) on a labelled file"),
    "eval": ("eval.cli_eval", "run a benchmark: K attempts per question, pass@1 ± se and pass@k (resumable)"),
    "report": ("eval.cli_report", "compare eval result folders: PNG bar chart and a combined Markdown table"),
    "train": ("reagent.cli.train", "train a policy with GRPO, Reagent-R or Reagent-U (--config FILE key=value)"),
    "label-steps": ("data_gen.cli_label_steps", "TD+GAE or Monte-Carlo step labels (Q, advantage, cost) for PRM training"),
    "train-prm": ("rrm.cli_train_prm", "train a value-head process reward model: promise (MSE) + beta * progress"),
    "score-steps": ("rrm.cli_score_steps", "batched per-step values of trajectories from a trained PRM"),
    "import-prm": ("data_gen.cli_import_prm", "Math-Shepherd or PRM800K JSONL to step labels for train-prm"),
    "eval-prm": ("eval.cli_eval_prm", "a PRM on ProcessBench or PRMBench files: metrics per split"),
    "view": ("reagent.cli.view", "static offline HTML: trajectories with judge verdicts side by side, or a run's dashboard"),
    "env": ("reagent.cli.env", "print versions of the project and its libraries, for bug reports"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reagent",
        description="Train LLM agents with reasoning reward models (Agent-RRM, Reagent-C/R/U).",
        formatter_class=lambda prog: argparse.HelpFormatter(prog, max_help_position=24, width=120),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_) in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        parser = build_parser()
        if not argv or argv[0] in ("-h", "--help"):
            parser.print_help()
            return 0
        parser.error(f"unknown command '{argv[0]}'; run 'reagent --help' for the list")
    name = argv[0]
    module_name, help_ = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"reagent {name}", description=help_)
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        return int(module.main(args) or 0)
    except (ValueError, FileNotFoundError) as e:
        print(f"reagent {name}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
