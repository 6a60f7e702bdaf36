"""Generate the Space's bundled example media: `examples/sample.mp4`, `examples/squares.mp4`, `examples/sample.png`.

Run once; the outputs are committed so the Space (and `python space/app.py`) works offline:

    python space/make_examples.py

The video is 8 s of 320x240 H.264 at 8 fps (about 100 KB): a red ball rolls left to right over
a blue sky and green grass while a yellow sun rises, so questions such as "Which way does the
ball move?" have a visible answer. `squares.mp4` (6 s) shows three colored squares appearing one after another
("How many squares appear?"). The image is the last frame of the first scene.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import av
import numpy as np
from PIL import Image

WIDTH, HEIGHT, FPS, SECONDS = 320, 240, 8, 8


def render_frame(t: float) -> np.ndarray:
    """Draw the scene at time `t` (seconds). Returns uint8 (HEIGHT, WIDTH, 3) RGB."""
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


def render_squares(t: float) -> np.ndarray:
    """Three squares (red, green, blue) appearing at 1 s, 2.5 s and 4 s on a white background."""
    frame = np.full((HEIGHT, WIDTH, 3), 245, dtype=np.uint8)
    for index, (appears, color) in enumerate([(1.0, (220, 40, 40)), (2.5, (40, 170, 60)), (4.0, (40, 80, 220))]):
        if t >= appears:
            left = 30 + index * 100
            frame[90:150, left : left + 60] = color
    return frame


def write_video(path: Path, render=render_frame, seconds: int = SECONDS) -> None:
    """Write an H.264 MP4 (yuv420p, so every browser plays it) of `render(t)` frames."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "28", "preset": "veryslow"}
        for index in range(FPS * seconds):
            frame = av.VideoFrame.from_ndarray(render(index / FPS), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).parent / "examples")
    args = parser.parse_args()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    write_video(args.output_dir / "sample.mp4")
    write_video(args.output_dir / "squares.mp4", render=render_squares, seconds=6)
    Image.fromarray(render_frame(SECONDS - 1 / FPS)).save(args.output_dir / "sample.png", optimize=True)
    for name in ("sample.mp4", "squares.mp4", "sample.png"):
        print(f"{args.output_dir / name}: {(args.output_dir / name).stat().st_size / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
