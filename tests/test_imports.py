"""Every module of the project imports with the declared dependencies.

A package that used to arrive through another one's requirements (lxml_html_clean via
trafilatura) disappears silently when upstream changes; importing every module, with the
heavy optional ones imported lazily inside functions, catches that at collection speed.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

PACKAGES = ("reagent", "rrm", "data_gen", "eval")


def _modules() -> list[str]:
    names = []
    for pkg in PACKAGES:
        module = importlib.import_module(pkg)
        for info in pkgutil.walk_packages(module.__path__, pkg + "."):
            if not info.name.endswith("__main__"):  # runs the CLI
                names.append(info.name)
    return names


@pytest.mark.parametrize("name", _modules())
def test_module_imports(name):
    importlib.import_module(name)


def test_browse_extractor_is_installed():
    from reagent.tools.browse import check_extractor

    check_extractor()
