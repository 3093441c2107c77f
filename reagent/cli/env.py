"""``reagent env``: versions of everything that matters for a bug report."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def main(args: argparse.Namespace) -> int:
    print(f"python: {platform.python_version()} ({platform.platform()})")
    for pkg in ("reagent", "torch", "transformers", "tokenizers", "datasets", "accelerate",
                "deepspeed", "vllm"):
        try:
            print(f"{pkg}: {importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            print(f"{pkg}: not installed")
    try:
        import torch

        print(f"cuda available: {torch.cuda.is_available()}")
    except ImportError:
        pass
    return 0
