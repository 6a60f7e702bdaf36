"""Synthetic H.264 MP4s whose frames say where they are, for tests and benchmarks (numpy + PyAV, nothing else).

* :func:`write_video` -- frame ``i`` is a flat gray of level ``(8 * i) % 256``, so decoded frames can be told apart.
* :func:`write_scene_video` -- consecutive "scenes" of given lengths (a solid colour with a scene-specific stripe
  pattern and a little noise); returns the cut times, so a segmentation can be checked against them.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from processing.synthetic import write_scene_video, write_video
    >>> folder = Path(tempfile.mkdtemp())
    >>> write_scene_video(folder / "cuts.mp4", [3, 2, 4])  # three scenes: cuts at 3 s and 5 s
    [3.0, 5.0]
    >>> write_video(folder / "ramp.mp4", num_frames=20).name
    'ramp.mp4'
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

SCENE_COLOURS = [(220, 30, 30), (30, 200, 40), (40, 40, 220), (230, 220, 40), (200, 40, 200)]


def write_video(path: str | Path, num_frames: int, fps: int = 10, width: int = 64, height: int = 48) -> Path:
    """An H.264 MP4 of ``num_frames (height, width)`` frames; frame ``i`` is filled with gray level ``(8 * i) % 256``."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(num_frames):
            frame = np.full((height, width, 3), (8 * index) % 256, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return Path(path)


def scene_frame(scene: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A ``(size, size, 3)`` uint8 frame of scene ``scene``: its colour, its stripe pattern, a little noise."""
    colour = np.array(SCENE_COLOURS[scene % len(SCENE_COLOURS)], dtype=np.float64)
    frame = np.broadcast_to(colour, (size, size, 3)).copy()
    stripe = size // (scene % 3 + 2)
    frame[:, ::stripe] = 255 - colour
    frame += rng.normal(0, 6, frame.shape)
    return np.clip(frame, 0, 255).astype(np.uint8)


def write_scene_video(
    path: str | Path, scene_seconds: list[float], fps: int = 2, size: int = 64, seed: int = 0
) -> list[float]:
    """Encode one scene per entry of ``scene_seconds`` (``size x size`` frames, GOP of 4 s); returns the cut times (s)."""
    rng = np.random.default_rng(seed)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(4 * fps)}
        cuts, elapsed = [], 0.0
        for scene, seconds in enumerate(scene_seconds):
            for _ in range(round(seconds * fps)):
                frame = av.VideoFrame.from_ndarray(scene_frame(scene, size, rng), format="rgb24")
                container.mux(stream.encode(frame))
            elapsed += seconds
            cuts.append(elapsed)
        container.mux(stream.encode())
    return cuts[:-1]
