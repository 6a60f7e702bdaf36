"""The Space's bundled examples (`space/examples/examples.json`, written by `space/make_examples.py`): world videos
outside the training and benchmark seeds, questions whose answers are the world's ground truth, answered by the
weights that ship. That the running Space answers them is tested in `test_space_server.py`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from dataset_builder.world.benchmark import BENCHMARK_SEED_OFFSET
from dataset_builder.world.questions import LETTERS, POST_PROMPT, multiple_choice
from dataset_builder.world.render import render_frame
from dataset_builder.world.timeline import sample_timeline
from processing import load_video

REPO = Path(__file__).resolve().parents[2]
EXAMPLES_DIR = REPO / "space" / "examples"
BUNDLE = json.loads((EXAMPLES_DIR / "examples.json").read_text())
WORLD_MODEL = REPO / "modeling_prolongvid" / "world_model"
REGENERATE = "regenerate them with `python space/make_examples.py`"


def test_examples_were_answered_by_the_shipped_weights():
    shipped = hashlib.sha256((WORLD_MODEL / "model.safetensors").read_bytes()).hexdigest()
    assert BUNDLE["weights_sha256"] == shipped, (
        f"examples.json was made with other weights than the shipped ones: {REGENERATE}"
    )
    assert BUNDLE["frames"] == json.loads((WORLD_MODEL / "config.json").read_text())["num_frames"]


def test_every_band_of_the_world_has_a_video_outside_the_training_and_benchmark_seeds():
    stated = json.loads((WORLD_MODEL / "results.json").read_text())
    benchmark_seeds = range(BENCHMARK_SEED_OFFSET, BENCHMARK_SEED_OFFSET + max(stated["benchmark_videos"].values()))
    for band in ("short", "medium", "long"):
        path = EXAMPLES_DIR / f"world-{band}.mp4"
        assert path.is_file(), f"{path.name} is missing: {REGENERATE}"
    for example in BUNDLE["examples"]:
        assert example["seed"] >= BENCHMARK_SEED_OFFSET and example["seed"] not in benchmark_seeds, example


def test_the_example_videos_are_h264_that_browsers_play():
    import av

    for band in ("short", "medium", "long"):
        with av.open(str(EXAMPLES_DIR / f"world-{band}.mp4")) as container:
            stream = container.streams.video[0]
            # Chrome and Firefox decode H.264 in 4:2:0 only: a 4:4:4 example shows as a blank player in the Space
            assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p"), REGENERATE


def test_example_answers_are_the_ground_truth_of_their_world_video():
    for example in BUNDLE["examples"]:
        timeline = sample_timeline(example["seed"], example["band"])
        assert example["video"] == f"world-{example['band']}.mp4"
        frames, timestamps = load_video(EXAMPLES_DIR / example["video"], num_frames=4)
        for frame, seconds in zip(frames, timestamps):  # the file shows this timeline (H.264: a few levels off)
            expected = render_frame(timeline.state_at(float(seconds)))
            assert np.abs(frame.astype(int) - expected.astype(int)).mean() < 4, (example["video"], seconds)

        question, *options, post_prompt = example["question"].split("\n")
        assert post_prompt == POST_PROMPT and [option[:3] for option in options] == [f"{x}. " for x in LETTERS]
        texts = tuple(option[3:] for option in options)
        [truth] = [q for q in multiple_choice(timeline) if q.question == question and q.options == texts]
        assert example["family"] == truth.family
        assert example["answer"] == truth.options[LETTERS.index(truth.answer)], example
