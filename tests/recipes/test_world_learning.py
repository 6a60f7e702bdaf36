"""Learning, not just running: the world's image stage (recipes/world/frames.yaml through the kit's recipe) teaches a
from-scratch ProLongVid to name the background colour of frames it has never seen.

Chance is 1 in 6 backgrounds; a model that does not learn (a broken vision path, labels that mask the answer, frames
that do not reach the model) stays near it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from dataset_builder.world.render import render_frame
from dataset_builder.world.timeline import BACKGROUNDS, sample_timeline
from recipes.world.frames import INSTRUCTION, frame_rows, write_clip

REPO = Path(__file__).resolve().parents[2]
STATED_ACCURACY = 0.8  # the background word of held-out frames, after 200 steps of 32 frames


def describe(state) -> str:
    """The reference caption, from the ground truth (not from the perception the pipeline uses)."""
    if state.flash is not None:
        return f"The screen flashes {state.flash.colour}."
    if state.appearance is None:
        return f"An empty {state.background} background."
    return f"A {state.appearance.name} on a {state.background} background."


def frames_of(seeds, per_video):
    samples = []
    for seed in seeds:
        for band in ("short", "medium"):
            timeline = sample_timeline(seed, band)
            for time in np.linspace(0, timeline.duration - 1, per_video):
                state = timeline.state_at(float(time))
                samples.append((render_frame(state), describe(state), state))
    return samples


def write_frames_dataset(folder: Path, samples) -> None:
    from datasets import Dataset

    from dataset_builder.schemas import TRAINING_FEATURES

    rows = []
    for index, (frame, caption, _) in enumerate(samples):
        (row,) = frame_rows(f"f{index}", frame[None], np.array([float(index)]), [caption], per_video=1)
        write_clip(folder / row["video"], frame)
        row.pop("frame")
        rows.append(row)
    (folder / "frames").mkdir(parents=True)
    Dataset.from_list(rows, features=TRAINING_FEATURES).to_parquet(str(folder / "frames" / "train-0.parquet"))


def test_the_image_stage_learns_to_see(tmp_path):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from recipes.world.init import build_world_checkpoint, load_init_config

    train = frames_of(range(100), per_video=8)
    held_out = frames_of(range(500_000, 500_020), per_video=3)
    write_frames_dataset(tmp_path / "frames", train)
    build_world_checkpoint(load_init_config(REPO / "recipes/world/init.yaml"), tmp_path / "frames", tmp_path / "init")
    command = [
        sys.executable, "recipes/image_sft.py", "--config", "recipes/world/frames.yaml",
        "--model_name_or_path", str(tmp_path / "init"), "--dataset_name", str(tmp_path / "frames"),
        "--output_dir", str(tmp_path / "out"), "--max_steps", "200", "--global_batch_size", "32",
        "--per_device_train_batch_size", "32", "--logging_steps", "50",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    model = AutoModelForImageTextToText.from_pretrained(tmp_path / "out").eval()
    processor = AutoProcessor.from_pretrained(tmp_path / "out")
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": INSTRUCTION}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[prompt] * len(held_out), videos=[f[None] for f, _, _ in held_out], return_tensors="pt")
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    replies = processor.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    named = []
    for reply, (_, _, state) in zip(replies, held_out):
        if state.flash is None:
            said = [name for name in BACKGROUNDS if name in reply.split()]
            named.append(said == [state.background])
    accuracy = float(np.mean(named))
    assert accuracy >= STATED_ACCURACY, (accuracy, replies[:6])
