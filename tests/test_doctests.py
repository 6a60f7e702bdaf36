"""The docstring examples of every module of the kit run, as `pytest --doctest-modules <package>` would run them,
so documentation cannot drift from the code."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["processing", "modeling_prolongvid", "dataset_builder", "recipes", "evaluation"]
ENTRY_POINTS = {"__main__"}  # `python -m package` modules: running them is the CLI tests' job


def modules(package: str) -> list[str]:
    if not (ROOT / package / "__init__.py").is_file():
        return []
    found = [package]
    for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
        if info.name.rsplit(".", 1)[-1] not in ENTRY_POINTS:
            found.append(info.name)
    return found


MODULES = [name for package in PACKAGES for name in modules(package)]


def test_every_package_is_collected():
    for expected in ["processing.video_reader", "modeling_prolongvid.inference", "dataset_builder.annotate"]:
        assert expected in MODULES
    assert any(name.startswith("recipes.training.") for name in MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, monkeypatch):
    monkeypatch.chdir(ROOT)  # examples name files such as space/examples/sample.mp4 relative to the repository
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (output above)"
