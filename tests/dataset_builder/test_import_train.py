"""The recipes train on imported data as on a built dataset: two optimizer steps of stage 1 (videos) and of the image
SFT stage (images embedded in LLaVA-OneVision-style Parquet), launched through the recipes' own entry scripts; and
imported rows mix with a built dataset's rows in one batch."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from recipes.training.handoff import read_stage_record
from tests.dataset_builder.test_import_support import (
    ROOT,
    png_bytes,
    run_import,
    turns,
    video_row,
    write_jsonl,
    write_media,
    write_onevision_parquet,
)

RECIPE_DIR = ROOT / "recipes" / "prolongvid-7b"
CPU = ["--use_cpu", "true", "--bf16", "false", "--dtype", "float32", "--dataloader_num_workers", "0",
       "--activation_checkpointing", "false", "--warmup_steps", "0", "--logging_steps", "1", "--report_to", "none",
       "--max_steps", "2", "--save_strategy", "no", "--per_device_train_batch_size", "1",
       "--global_batch_size", "2", "--learning_rate", "1e-3"]  # fmt: skip
ANSWERS = ["A gray ramp.", "It gets brighter.", "Frames of gray.", "Nothing else."]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """A video import (JSON lines, two frame counts of its own) and an image import (Parquet with image bytes)."""
    tmp = tmp_path_factory.mktemp("import-train")
    media = write_media(tmp / "media")
    rows = [
        video_row(f"v{i}", "videos/short.mp4", "<image>\nWhat happens?", ANSWERS[i], "Sure?", "Yes.",
                  num_frames=(None, 6)[i % 2])
        for i in range(4)
    ]  # fmt: skip
    write_jsonl(tmp / "video.jsonl", rows)
    assert run_import(tmp / "video.jsonl", media, tmp / "videos") == 0
    images = [
        {"id": f"i{i}", "conversations": turns("Describe <image>", ANSWERS[i]), "data_source": "ov", "image":
         {"bytes": png_bytes(i), "path": None}}
        for i in range(4)
    ]  # fmt: skip
    write_onevision_parquet(tmp / "ov" / "train.parquet", images)
    assert run_import(tmp / "ov", media, tmp / "images", "--modality", "image") == 0
    return tmp


def train(stage: str, checkpoint, dataset, output, *extra) -> str:
    command = [sys.executable, f"recipes/{stage}.py", "--config", str(RECIPE_DIR / f"{stage}.yaml"), *CPU,
               "--model_name_or_path", str(checkpoint), "--dataset_name", str(dataset), "--output_dir", str(output),
               "--previous_stages", "any", *extra]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    return log


def logged_losses(log: str) -> list[float]:
    return [float(value) for value in re.findall(r"'loss': '?([0-9.e+-]+)", log)]


def test_stage1_and_image_sft_train_two_steps_on_imported_data(tiny_checkpoint, imported):
    stage1 = train("stage1", tiny_checkpoint, imported / "videos", imported / "run-stage1", "--num_frames", "4")
    losses = logged_losses(stage1)
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses), stage1[-3000:]
    assert f"4 training rows from {imported / 'videos'} ['stage1']" in stage1
    assert read_stage_record(imported / "run-stage1")["stage"] == "stage1"

    sft = train("image_sft", tiny_checkpoint, imported / "images", imported / "run-image-sft")
    losses = logged_losses(sft)
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses), sft[-3000:]
    assert f"4 training rows from {imported / 'images'} ['image_sft']" in sft


def test_imported_and_built_rows_collate_in_one_batch(tiny_model_and_processor, imported, tmp_path):
    from datasets import concatenate_datasets

    from recipes.training.collator import VideoSFTCollator
    from recipes.training.data import load_training_rows
    from recipes.training.tiny_inputs import ANSWERS as BUILT_ANSWERS
    from recipes.training.tiny_inputs import write_tiny_dataset

    model, processor = tiny_model_and_processor
    built = write_tiny_dataset(tmp_path / "built", rows_per_subset=2)  # the contract's rows, as `build` writes them
    rows = concatenate_datasets(
        [load_training_rows(imported / "videos", ["stage1"]), load_training_rows(built, ["stage1"])]
    )
    assert rows["num_frames"] == [None, 6, None, 6, None, None], "rows without the column get null"
    batch = VideoSFTCollator(processor, num_frames=4, dataset_dir=built, label_mask="assistant")([rows[0], rows[4]])
    assert batch["pixel_values_videos"].shape[:2] == (2, 4)
    first, second = (batch["labels"][i][batch["labels"][i] != -100] for i in range(2))
    assert processor.tokenizer.decode(first) == f"{ANSWERS[0]}<|im_end|>Yes.<|im_end|>"
    assert processor.tokenizer.decode(second) == f"{BUILT_ANSWERS[0]}<|im_end|>"
    assert math.isfinite(model(**batch).loss.item())


def test_a_rows_own_num_frames_is_sampled(tiny_model_and_processor, imported):
    """Upstream samples a row's `num_frames` instead of the stage's; the collator must do the same."""
    from recipes.training.collator import VideoSFTCollator
    from recipes.training.data import load_training_rows

    _, processor = tiny_model_and_processor
    rows = load_training_rows(imported / "videos", ["stage1"])
    assert rows[1]["num_frames"] == 6
    batch = VideoSFTCollator(processor, num_frames=4, dataset_dir=imported / "videos")([rows[1]])
    assert batch["pixel_values_videos"].shape[1] == 6


def test_a_stage_trains_on_a_mix_of_a_build_and_an_import(tiny_model_and_processor, imported, tmp_path):
    from recipes.training.collator import VideoSFTCollator
    from recipes.training.data import load_training_rows
    from recipes.training.tiny_inputs import write_tiny_dataset

    _, processor = tiny_model_and_processor
    built = write_tiny_dataset(tmp_path / "built", rows_per_subset=2)
    rows = load_training_rows(built, ["stage1", f"{imported / 'videos'}:stage1"])
    assert len(rows) == 2 + 4 and rows["subset"] == ["stage1"] * 6
    imported_videos = [Path(video) for video in rows["video"][2:]]
    assert all(video.is_absolute() and video.is_file() for video in imported_videos), imported_videos
    assert not Path(rows["video"][0]).is_absolute(), "rows of the stage's own dataset keep their relative paths"
    collator = VideoSFTCollator(
        processor, num_frames=4, dataset_dir=built, label_mask="assistant", media_errors="raise"
    )
    batch = collator([rows[0], rows[2]])  # one built row, one imported row: both videos found
    assert batch["pixel_values_videos"].shape[:2] == (2, 4)
    assert batch["skipped_media"].tolist() == [0, 0]
