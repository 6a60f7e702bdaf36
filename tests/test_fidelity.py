"""FIDELITY.md's "kit default" column is read back from the code: the table of upstream choices cannot drift."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes" / "prolongvid-7b"


def recipe(stage: str) -> dict:
    return yaml.safe_load((RECIPES / f"{stage}.yaml").read_text())


def option_default(parser: argparse.ArgumentParser, flag: str):
    """The default of `flag` in `parser` or in one of its sub-commands."""
    for action in parser._actions:
        if flag in action.option_strings:
            return action.default
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                try:
                    return option_default(sub, flag)
                except KeyError:
                    continue
    raise KeyError(flag)


def resize():
    from PIL import Image
    from transformers import LlavaOnevisionImageProcessorPil

    from modeling_prolongvid import ProLongVidImageProcessor

    processor = ProLongVidImageProcessor()
    assert isinstance(processor, LlavaOnevisionImageProcessorPil)
    return "PIL bicubic" if processor.resample == Image.Resampling.BICUBIC else f"PIL {processor.resample}"


def normalize():
    from modeling_prolongvid import ProLongVidImageProcessor

    processor = ProLongVidImageProcessor()
    values = {*processor.image_mean, *processor.image_std}
    assert len(values) == 1, values
    return str(values.pop())


def pooling():
    from modeling_prolongvid import ProLongVidConfig

    config = ProLongVidConfig()
    grid = config.pooled_grid_size
    return f"{grid}x{grid} {config.video_pooling_mode}, newline {config.video_newline_position}"


def max_frames():
    from modeling_prolongvid import ProLongVidConfig

    return str(ProLongVidConfig().max_frames)


def vision_layer():
    import inspect

    from modeling_prolongvid.composition import compose_prolongvid

    composed = inspect.signature(compose_prolongvid).parameters["vision_select_layer"].default
    assert recipe("image_alignment")["vision_select_layer"] == composed
    return str(composed)


def same_in_every_video_stage(key: str) -> str:
    values = {str(recipe(stage)[key]) for stage in ("stage1", "stage2", "stage3", "mixed")}
    assert len(values) == 1, f"{key} differs between the video stages: {values}"
    return values.pop()


def mixed_frames():
    return ", ".join(recipe("mixed")["subset_num_frames"])


def evaluation_parser():
    from evaluation.__main__ import build_parser

    return build_parser()


def eval_decoding():
    source = (ROOT / "evaluation" / "generation.py").read_text()
    assert "do_sample=False" in source and "num_beams=1" in source
    return "greedy"


def annotate(flag: str):
    from dataset_builder.__main__ import parser

    return str(option_default(parser(), flag))


KIT_DEFAULTS = {
    "resize": resize,
    "normalize": normalize,
    "pooling": pooling,
    "max_frames": max_frames,
    "stage_frames": lambda: " / ".join(str(recipe(stage)["num_frames"]) for stage in ("stage1", "stage2", "stage3")),
    "mixed_frames": mixed_frames,
    "vision_layer": vision_layer,
    "label_mask": lambda: same_in_every_video_stage("label_mask"),
    "loss": lambda: same_in_every_video_stage("loss_normalization"),
    "global_batch": lambda: str(recipe("stage2")["global_batch_size"]),
    "grouping": lambda: same_in_every_video_stage("train_sampling_strategy"),
    "eval_sampling": lambda: "uniform" if option_default(evaluation_parser(), "--fps") is None else "fps",
    "eval_dtype": lambda: option_default(evaluation_parser(), "--dtype"),
    "eval_decoding": eval_decoding,
    "delta": lambda: annotate("--threshold"),
    "caption_frames": lambda: annotate("--frames-per-segment"),
    "cache_quality": lambda: annotate("--frame-cache-quality"),
}


def table_rows() -> dict[str, list[str]]:
    rows = {}
    for line in (ROOT / "FIDELITY.md").read_text().splitlines():
        cells = [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if line.startswith("|") and len(cells) == 5 and cells[0] not in ("key", "---"):
            rows[cells[0]] = cells
    return rows


def test_every_row_is_checked_and_every_check_has_a_row():
    assert set(table_rows()) == set(KIT_DEFAULTS)


@pytest.mark.parametrize("key", sorted(KIT_DEFAULTS))
def test_kit_default_in_the_table_is_the_codes(key):
    documented = re.fullmatch(r"`([^`]*)`", table_rows()[key][3])
    assert documented, f"the kit default of {key!r} must be one `code` literal"
    assert documented[1] == KIT_DEFAULTS[key](), f"FIDELITY.md says {documented[1]!r} for {key}"


def test_the_readme_links_the_table():
    assert "(FIDELITY.md)" in (ROOT / "README.md").read_text()
