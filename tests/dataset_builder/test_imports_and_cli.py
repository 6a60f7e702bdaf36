"""The package stays light to import and its command line answers fast: heavy libraries load only in the commands."""

import subprocess
import sys
from pathlib import Path

import pytest

import dataset_builder
from dataset_builder.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "datasets", "openai", "matplotlib", "sklearn")


def loaded_after(code: str) -> set[str]:
    """The heavy top-level modules present in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    check = f"{code}\nimport sys\nprint(' '.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    return set(result.stdout.split())


@pytest.mark.parametrize(
    "code",
    [
        "import dataset_builder",
        "import dataset_builder.segmentation",
        "from dataset_builder import segment_frames, Segment, LocalRecord",
        "from dataset_builder.__main__ import parser; parser().parse_args(['build', '--work-dir', 'w', '--out', 'o'])",
    ],
)
def test_package_pure_steps_and_parser_load_no_heavy_library(code):
    assert loaded_after(code) == set()


def test_segmenting_loads_sklearn_but_not_torch():
    code = (
        "import numpy as np\nfrom dataset_builder.segmentation import segment_frames\n"
        "features = np.repeat(np.eye(2), 30, axis=0)\n"
        "assert len(segment_frames(features, features, np.arange(60.0), 60.0)) == 2"
    )
    assert loaded_after(code) == {"sklearn"}


def test_lazy_names_resolve_to_their_submodule_objects():
    from dataset_builder.build import build_dataset
    from dataset_builder.segmentation import segment_frames

    assert dataset_builder.segment_frames is segment_frames and dataset_builder.build_dataset is build_dataset
    for name in dataset_builder.__all__:  # every exported name resolves
        getattr(dataset_builder, name)
    assert set(dataset_builder.__all__) <= set(dir(dataset_builder))
    with pytest.raises(AttributeError, match="no attribute 'segment_frame'"):
        dataset_builder.segment_frame  # noqa: B018


@pytest.mark.parametrize("command", [[], ["annotate"], ["build"]])
def test_help_answers_from_a_fresh_process(command):
    result = subprocess.run(
        [sys.executable, "-m", "dataset_builder", *command, "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert result.stdout.startswith("usage: python -m dataset_builder")


def test_help_shows_defaults_and_build_has_a_description(capsys):
    with pytest.raises(SystemExit):
        main(["annotate", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for option, default in [("--concurrency", "16"), ("--threshold", "0.7"), ("--shard", "0/1"),
                            ("--frame-captioner", "microsoft/Florence-2-large"), ("--segmentation", "semantic")]:  # fmt: skip
        assert option in text and f"(default: {default})" in text.split(option, 2)[-1].split(" --", 1)[0], option
    with pytest.raises(SystemExit):
        main(["build", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Parquet configs captions, qa and stage1/stage2/stage3" in text
