"""``reagent make-tiny-model``: a tiny random model with a local or a real tokenizer, no network.

Examples::

    reagent make-tiny-model --out runs/tiny --size micro --seed 0
    reagent make-tiny-model --out runs/tiny-qwen3 --tokenizer qwen3   # real Qwen3 vocab + template

``--tokenizer`` needs the registry package that ships the vocabulary (``dashscope`` for
Qwen, ``llama-models`` for Llama 3.1), installed with ``pip install --no-deps``.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reagent.families import FAMILIES
    from reagent.tiny_model import SIZES

    parser.add_argument("--out", required=True, help="directory to write the model and tokenizer to")
    parser.add_argument(
        "--size", default="micro", choices=list(SIZES),
        help="nano ~0.3M, micro ~1M (learns the toy ledger task), small ~5M parameters "
             "(local tokenizer only)",
    )
    parser.add_argument("--tokenizer", default=None, choices=list(FAMILIES),
                        help="use a real family's tokenizer and published chat template on a tiny "
                             "model of its architecture (hidden 32, tied embeddings) instead of "
                             "the local BPE")
    parser.add_argument("--seed", type=int, default=0, help="seed for the random weights")
    parser.add_argument("--extra-corpus", nargs="*", default=[], metavar="FILE",
                        help="text files whose words the tokenizer should learn as whole tokens "
                             "(e.g. a judge's system prompt); weighted up in BPE training")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from reagent.tiny_model import make_tiny_model

    extra = [Path(f).read_text(encoding="utf-8") for f in args.extra_corpus]
    out = make_tiny_model(args.out, size=args.size, seed=args.seed, extra_corpus=extra,
                          tokenizer=args.tokenizer)
    print(f"wrote a {args.tokenizer or args.size} model to {out}")
    return 0
