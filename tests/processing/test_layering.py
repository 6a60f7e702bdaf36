"""Imports flow one way: the bottom layer (`processing`) and the model package itself start without torch or
transformers, and the Hub copy of the frame-sampling rules stays identical to the canonical one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers")


def modules_after_import(statement: str) -> set[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "statement",
    [
        "import processing",
        "from processing import load_video, probe_video",
        "import processing.frame_sampling",
        "import modeling_prolongvid",
        "import modeling_prolongvid.infer",
    ],
)
def test_light_imports_load_neither_torch_nor_transformers(statement):
    loaded = modules_after_import(statement)
    assert not loaded & set(HEAVY), f"`{statement}` imported {sorted(loaded & set(HEAVY))}"


def test_processing_imports_nothing_of_the_kit_above_it():
    loaded = modules_after_import("import processing, processing.frame_cache")
    above = {"modeling_prolongvid", "recipes", "dataset_builder", "space", "evaluation"}
    assert not {name.split(".")[0] for name in loaded} & above


@pytest.mark.parametrize(
    "first_import",
    [
        "import modeling_prolongvid",
        "from modeling_prolongvid.configuration_prolongvid import ProLongVidConfig",
        "import transformers, modeling_prolongvid",
    ],
)
def test_the_auto_classes_are_registered_whichever_import_comes_first(first_import):
    loaded = modules_after_import(
        f"{first_import}\n"
        "from transformers import AutoConfig, AutoModelForImageTextToText\n"
        "config = AutoConfig.for_model('prolongvid')\n"
        "assert type(config).__name__ == 'ProLongVidConfig', type(config)\n"
        "assert AutoModelForImageTextToText._model_mapping[type(config)].__name__ == "
        "'ProLongVidForConditionalGeneration'"
    )
    assert "modeling_prolongvid.modeling_prolongvid" in loaded


def test_the_hub_copy_of_the_frame_sampling_rules_is_identical():
    canonical = (REPO / "processing" / "frame_sampling.py").read_bytes()
    assert (REPO / "modeling_prolongvid" / "frame_sampling.py").read_bytes() == canonical
