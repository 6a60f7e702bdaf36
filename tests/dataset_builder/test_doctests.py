"""The docstring examples of every dataset_builder module run (as ``pytest --doctest-modules dataset_builder`` does)."""

import doctest
import importlib
import pkgutil

import pytest

import dataset_builder

MODULES = ["dataset_builder"] + [
    f"dataset_builder.{info.name}"
    for info in pkgutil.iter_modules(dataset_builder.__path__)
    if info.name != "__main__"
]


def test_every_module_is_listed():
    assert {"dataset_builder.annotate", "dataset_builder.local_stage", "dataset_builder.prompts"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (output above)"
