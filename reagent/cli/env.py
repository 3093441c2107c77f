"""``reagent env``: versions of everything that matters for a bug report.

It also runs one empty call of the python sandbox with the default settings and prints
the isolation layers that took effect on this machine (bubblewrap or the in-house
fallback, cgroup, namespaces, private root, uid), since they differ between hosts.
"""

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
    _sandbox_report()
    try:
        import torch

        print(f"cuda available: {torch.cuda.is_available()}")
    except ImportError:
        pass
    return 0


def _sandbox_report() -> None:
    from reagent.tools.python_exec import PythonSandboxConfig, PythonTool
    from reagent.tools.sandbox_host import probe_bwrap

    bwrap = probe_bwrap()
    state = "usable" if bwrap.works else bwrap.why_not
    print(f"bubblewrap: {bwrap.version or 'absent'} ({state})")
    try:
        result = PythonTool(PythonSandboxConfig()).run("pass")
    except Exception as e:  # noqa: BLE001 - a report, not a check: say what went wrong
        print(f"python sandbox layers: could not start ({type(e).__name__}: {e})")
        return
    print("python sandbox layers: " + "; ".join(result.layers or ["none"]))
