"""``reagent make-tiny-model``: a tiny Qwen2 model and BPE tokenizer, built with no network.

Example::

    reagent make-tiny-model --out runs/tiny --size micro --seed 0
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reagent.tiny_model import SIZES

    parser.add_argument("--out", required=True, help="directory to write the model and tokenizer to")
    parser.add_argument(
        "--size", default="micro", choices=list(SIZES),
        help="nano ~0.3M, micro ~1M (learns the toy ledger task), small ~5M parameters",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for the random weights")
    parser.add_argument("--extra-corpus", nargs="*", default=[], metavar="FILE",
                        help="text files whose words the tokenizer should learn as whole tokens "
                             "(e.g. a judge's system prompt); weighted up in BPE training")


def main(args: argparse.Namespace) -> int:
    from reagent.tiny_model import make_tiny_model

    from pathlib import Path

    extra = [Path(f).read_text(encoding="utf-8") for f in args.extra_corpus]
    out = make_tiny_model(args.out, size=args.size, seed=args.seed, extra_corpus=extra)
    print(f"wrote a {args.size} model to {out}")
    return 0
