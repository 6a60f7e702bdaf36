r"""Does a world checkpoint see? Frames of known content, rendered fresh, are captioned by the model with the image
stage's instruction, and its captions are read back and scored field by field against the ground truth.

```bash
python -m recipes.world.perception_check --model runs/world/frames_stage --out runs/world/frames_stage/perception.json
```

The image stage (``recipes/world/frames.yaml``) is the only one that trains on "Describe the frame."; this check
measures what it taught: the background colour (over every frame; chance 1/6), whether an object is there (over every
frame), and the object's colour and shape (over the frames that hold one; chance 1/5 and 1/3, and 0 for a model that
calls every frame empty). After the video stages the model no longer follows the frame instruction, so the check is
for the image stage's checkpoint.

Frames: ``num_frames`` states drawn from ``seed`` (70% with an object, at a random position), rendered at the world's
64 px and resized to the model's input size with PIL bicubic -- what the frame cache holds.

```python
>>> from dataset_builder.world.perception import frame_caption, perceive
>>> truthful = lambda frame: frame_caption(perceive(frame))  # reads every frame exactly
>>> check_perception(truthful, num_frames=12)["accuracy"]
{'background': 1.0, 'object': 1.0, 'colour': 1.0, 'shape': 1.0}
>>> check_perception(lambda frame: "An empty navy background.", num_frames=120)["accuracy"]
{'background': 0.1333, 'object': 0.3417, 'colour': 0.0, 'shape': 0.0}

```
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from dataset_builder.world.perception import parse_frame_caption
from dataset_builder.world.render import render_frame
from dataset_builder.world.timeline import BACKGROUNDS, OBJECT_COLOURS, SHAPES, Appearance, FrameState

from .frames import INSTRUCTION

FIELDS = ("background", "object", "colour", "shape")
OBJECT_FIELDS = ("colour", "shape")  # scored over the frames that hold an object
OBJECT_SHARE = 0.7


def sample_states(num_frames: int, seed: int = 0) -> list[FrameState]:
    """``num_frames`` frame states: a background, and with probability 0.7 an object of a random kind and position."""
    rng = random.Random(seed)
    states = []
    for _ in range(num_frames):
        background = rng.choice(list(BACKGROUNDS))
        appearance = None
        if rng.random() < OBJECT_SHARE:
            appearance = Appearance(0.0, 1.0, rng.choice(SHAPES), rng.choice(list(OBJECT_COLOURS)), True)
        states.append(FrameState(background, appearance, position=rng.uniform(0.0, 1.0)))
    return states


def _truth(state: FrameState) -> dict[str, str | None]:
    appearance = state.appearance
    return {
        "background": state.background,
        "object": appearance is not None,
        "colour": appearance.colour if appearance else None,
        "shape": appearance.shape if appearance else None,
    }


def _read(caption: str) -> dict[str, str | None] | None:
    """The fields a caption states, or None when it is not a world frame caption (every field then counts wrong)."""
    try:
        observation = parse_frame_caption(caption)
    except ValueError:
        return None
    return {
        "background": observation.background,
        "object": observation.shape is not None,
        "colour": observation.colour,
        "shape": observation.shape,
    }


def check_perception(
    caption: Callable[[np.ndarray], str], num_frames: int = 120, seed: int = 0, size: int = 32
) -> dict:
    """Score ``caption(frame (size, size, 3) uint8) -> str`` on ``num_frames`` fresh world frames.

    Returns:
        ``{"frames": N, "object_frames": M, "accuracy": {field: share correct}, "unreadable": captions that are
        no frame caption, "examples": the first 5 (caption, truth) pairs}``; ``colour`` and ``shape`` are shares of
        the M frames that hold an object, the others of all N.
    """
    correct = dict.fromkeys(FIELDS, 0)
    unreadable, examples = 0, []
    states = sample_states(num_frames, seed)
    object_frames = sum(state.appearance is not None for state in states)
    for state in states:
        frame = np.asarray(Image.fromarray(render_frame(state)).resize((size, size), Image.Resampling.BICUBIC))
        reply = caption(frame)
        truth, read = _truth(state), _read(reply)
        unreadable += read is None
        for field in FIELDS:
            if field in OBJECT_FIELDS and not truth["object"]:
                continue
            correct[field] += read is not None and read[field] == truth[field]
        if len(examples) < 5:
            examples.append({"caption": reply, "truth": truth})
    return {
        "frames": num_frames,
        "object_frames": object_frames,
        "accuracy": {
            field: round(count / max(1, object_frames if field in OBJECT_FIELDS else num_frames), 4)
            for field, count in correct.items()
        },
        "unreadable": unreadable,
        "examples": examples,
    }


def model_captioner(model_path: str, max_new_tokens: int = 24) -> tuple[Callable[[np.ndarray], str], int]:
    """``(caption, input size)`` for a checkpoint: one-frame clips with the image stage's instruction, greedy."""
    from evaluation.generation import generate_reply, load_model_and_processor, prepare_inputs

    model, processor = load_model_and_processor(model_path, "float32", "cpu")

    def caption(frame: np.ndarray) -> str:
        inputs = prepare_inputs(processor, frame[None], INSTRUCTION, model.dtype)
        return generate_reply(model, processor, inputs, max_new_tokens).strip()

    return caption, processor.video_processor.size["height"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recipes.world.perception_check", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--model", required=True, help="a world checkpoint (the image stage's)")
    parser.add_argument("--frames", type=int, default=120, help="frames to caption (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the frames (default: %(default)s)")
    parser.add_argument("--out", help="write the report here (JSON)")
    args = parser.parse_args(argv)
    caption, size = model_captioner(args.model)
    report = {"model": args.model, **check_perception(caption, args.frames, args.seed, size)}
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["accuracy"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
