"""Generate the Space's bundled examples: three videos of the kit's synthetic world and `examples/examples.json`, the
questions about them that the bundled world model answers correctly through the Space's own chat path.

Run after the bundled checkpoint (`modeling_prolongvid/world_model/`) changes; the outputs are committed so the Space
(and `python space/app.py`) works offline:

    python space/make_examples.py                      # the bundled model (`tiny`)
    python space/make_examples.py --model runs/world/model

The world videos (`world-short.mp4`, `world-medium.mp4`, `world-long.mp4`; 64 x 64 at 1 fps, yuv420p H.264 so a
browser plays them, written by `dataset_builder.world.render.write_world_video`) use seeds from `EXAMPLE_SEED` up, beyond the training videos'
(below `BENCHMARK_SEED_OFFSET`) and the held-out benchmark's. Every multiple-choice question the world supports about
a video (`dataset_builder.world.questions.multiple_choice`, rendered by `questions.prompt`) is asked through
`VideoChat.respond` (greedy, the Space's default frame count for the model); at most `--per-video` of those answered
with exactly the correct option's text are kept, one per task family first. `examples.json` records the settings and
the SHA-256 of the weights that answered, so a test can tell when it must be regenerated.

`sample.mp4` (8 s of 320x240 H.264 at 8 fps: a red ball rolls left to right over a blue sky and green grass while a
yellow sun rises) and `sample.png` (its last frame) are small real-looking media the tests and the inference
docstrings use; they are rewritten too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import asdict
from pathlib import Path

import av
import numpy as np
from PIL import Image

APP_DIR = Path(__file__).resolve().parent
if str(APP_DIR.parent) not in sys.path:  # `python space/make_examples.py` from a checkout
    sys.path.insert(0, str(APP_DIR.parent))

WIDTH, HEIGHT, FPS, SECONDS = 320, 240, 8, 8
EXAMPLE_SEED = 2_000_000
WORLD_BANDS = ("short", "medium", "long")
EXAMPLE_MAX_NEW_TOKENS = 32


def render_frame(t: float) -> np.ndarray:
    """Draw the sample scene at time `t` (seconds). Returns uint8 (HEIGHT, WIDTH, 3) RGB."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    frame = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    horizon = int(HEIGHT * 0.65)
    frame[:horizon] = (110, 170, 235)
    frame[horizon:] = (60, 150, 70)
    progress = t / SECONDS
    sun_x, sun_y = int(WIDTH * 0.8), int(horizon - progress * HEIGHT * 0.5)
    frame[(xx - sun_x) ** 2 + (yy - sun_y) ** 2 < 20**2] = (250, 215, 60)
    ball_x, ball_y = int(20 + progress * (WIDTH - 40)), horizon - 16
    frame[(xx - ball_x) ** 2 + (yy - ball_y) ** 2 < 16**2] = (220, 40, 40)
    return frame


def write_sample_video(path: Path) -> None:
    """Write `sample.mp4`: H.264 (yuv420p, so every browser plays it) of `render_frame(t)` frames."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "28", "preset": "veryslow"}
        for index in range(FPS * SECONDS):
            frame = av.VideoFrame.from_ndarray(render_frame(index / FPS), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def write_world_videos(output_dir: Path) -> dict[str, object]:
    """Write `world-<band>.mp4` for each band; returns `{file name: Timeline}`."""
    from dataset_builder.world.render import write_world_video
    from dataset_builder.world.timeline import sample_timeline

    timelines = {}
    for band in WORLD_BANDS:
        timeline = sample_timeline(EXAMPLE_SEED, band)
        name = f"world-{band}.mp4"
        write_world_video(output_dir / name, timeline, pix_fmt="yuv420p")  # H.264 that browsers play
        timelines[name] = timeline
    return timelines


def ask(chat, video: Path, question: str, frames: int, max_new_tokens: int) -> str:
    """The Space's final answer to `question` about `video` (what `VideoChat.respond` streams last)."""
    outputs = list(chat.respond({"text": question, "files": [str(video)]}, [], frames, max_new_tokens))
    return outputs[-1][0]


def pick_examples(chat, output_dir: Path, timelines: dict, frames: int, per_video: int) -> tuple[list, list[str]]:
    """Ask every multiple-choice question about each video; keep up to `per_video` answered correctly, one per
    family first. Returns `(examples, report lines)`."""
    from app import WorldExample

    from dataset_builder.world.questions import multiple_choice, prompt

    examples, report = [], []
    for name, timeline in timelines.items():
        correct = []
        questions = multiple_choice(timeline)
        for question in questions:
            text = prompt(question.question, question.options)
            reply = ask(chat, output_dir / name, text, frames, EXAMPLE_MAX_NEW_TOKENS)
            if reply.strip() == question.answer_text:
                correct.append(WorldExample(name, timeline.band, timeline.seed, question.family, text, reply.strip()))
        chosen = []
        for example in correct:  # the first of each family, then the rest in order
            if example.family not in {kept.family for kept in chosen}:
                chosen.append(example)
        chosen = (chosen + [example for example in correct if example not in chosen])[:per_video]
        examples += chosen
        report.append(f"{name}: {len(correct)} of {len(questions)} questions answered correctly, {len(chosen)} kept")
    return examples, report


def weights_sha256(checkpoint: Path) -> str:
    return hashlib.sha256((checkpoint / "model.safetensors").read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=APP_DIR / "examples")
    parser.add_argument("--model", default="tiny", help='checkpoint that answers ("tiny": the bundled world model)')
    parser.add_argument("--per-video", type=int, default=2, help="examples kept per video (default: %(default)s)")
    args = parser.parse_args(argv)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    write_sample_video(args.output_dir / "sample.mp4")
    Image.fromarray(render_frame(SECONDS - 1 / FPS)).save(args.output_dir / "sample.png", optimize=True)
    timelines = write_world_videos(args.output_dir)

    from app import VideoChat, WorldExamples, default_frame_count, load_app_model

    from modeling_prolongvid.inference import TINY_MODEL_ID, WORLD_MODEL_DIR

    model, processor, _ = load_app_model(args.model)
    chat = VideoChat(model, processor)
    frames = default_frame_count(model.config)
    examples, report = pick_examples(chat, args.output_dir, timelines, frames, args.per_video)
    checkpoint = WORLD_MODEL_DIR if args.model == TINY_MODEL_ID else Path(args.model)
    bundle = WorldExamples(frames, EXAMPLE_MAX_NEW_TOKENS, weights_sha256(checkpoint), tuple(examples))
    (args.output_dir / "examples.json").write_text(json.dumps(asdict(bundle), indent=2) + "\n")
    print("\n".join(report))
    print(f"{len(examples)} examples -> {args.output_dir / 'examples.json'}")
    if not examples:
        print("The model answered no question correctly: is it the untrained placeholder?", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
