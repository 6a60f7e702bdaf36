"""Pixels of the synthetic world: :func:`render_frame` draws a :class:`~.timeline.FrameState`, :func:`write_world_video`
encodes a whole :class:`~.timeline.Timeline` as a small, cheap H.264 MP4 (64 x 64 at 1 fps by default: a 20-minute
video is 1,200 frames and a few hundred kilobytes).

A frame is its scene's background colour, plus either one object (a filled circle, square or triangle of radius
:data:`OBJECT_RADIUS` of the frame side times its :data:`SHAPE_SCALE`, centred vertically, moving horizontally from 20%
to 80% of the width) or a flash (the whole frame in the flash colour). The shapes differ in size as well as in form --
the square covers about twice the circle's area and the circle twice the triangle's -- so a model that sees each frame
as one pooled embedding (how much of the frame is in the object's colour, not where) can still tell them apart.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dataset_builder.world.render import render_frame, write_world_video
    >>> from dataset_builder.world.timeline import build_timeline
    >>> timeline = build_timeline(seed=0, duration=30)
    >>> render_frame(timeline.state_at(0.0)).shape
    (64, 64, 3)
    >>> path = write_world_video(Path(tempfile.mkdtemp()) / "w.mp4", timeline)
    >>> from processing import load_video
    >>> frames, times = load_video(path, num_frames=30)
    >>> frames.shape
    (30, 64, 64, 3)
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from .timeline import BACKGROUNDS, OBJECT_COLOURS, FrameState, Timeline

FRAME_SIZE = 64
FPS = 1
OBJECT_RADIUS = 0.25  # of the frame side
# Half-size of each shape in units of the radius: areas about 4 : 2 : 1 (square : circle : triangle), see the docstring.
# Measured (recipes.world.perception_check after the image stage, 79 objects in 120 fresh frames): with the three shapes
# of about one area the pooled model read the shape of 34% of them (chance 33%); with these sizes, of 100%.
SHAPE_SCALE = {"square": 1.0, "circle": 0.8, "triangle": 0.65}


def shape_mask(shape: str, size: int, centre_x: float, radius: float) -> np.ndarray:
    """``(size, size)`` bool mask of a filled ``shape`` centred at ``(centre_x, size / 2)`` pixels; ``radius`` is the
    world's object radius in pixels, which :data:`SHAPE_SCALE` scales per shape."""
    if shape not in SHAPE_SCALE:
        raise ValueError(f"Unknown shape {shape!r}; the world's shapes are circle, square and triangle.")
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    dx, dy = x - centre_x, y - size / 2
    radius = radius * SHAPE_SCALE[shape]
    if shape == "circle":
        return dx**2 + dy**2 <= radius**2
    if shape == "square":
        return (np.abs(dx) <= radius) & (np.abs(dy) <= radius)
    height, top = 2 * radius, -radius  # the triangle: apex up, base at the bottom
    inside_height = (dy >= top) & (dy <= top + height)
    half_width = (dy - top) / height * radius * 1.15
    return inside_height & (np.abs(dx) <= half_width)


def render_frame(state: FrameState, size: int = FRAME_SIZE) -> np.ndarray:
    """``(size, size, 3)`` uint8 RGB pixels of one moment."""
    if state.flash is not None:
        return np.full((size, size, 3), OBJECT_COLOURS[state.flash.colour], dtype=np.uint8)
    frame = np.empty((size, size, 3), dtype=np.uint8)
    frame[:] = BACKGROUNDS[state.background]
    if state.appearance is not None:
        radius = OBJECT_RADIUS * size
        centre_x = (0.2 + 0.6 * state.position) * size
        frame[shape_mask(state.appearance.shape, size, centre_x, radius)] = OBJECT_COLOURS[state.appearance.colour]
    return frame


def write_world_video(
    path: str | Path, timeline: Timeline, fps: int = FPS, size: int = FRAME_SIZE, pix_fmt: str = "yuv444p"
) -> Path:
    """Encode ``timeline`` at ``fps`` (frame ``i`` shows time ``i / fps``) as H.264 ``size x size``; returns the path.

    The encoder settings (ultrafast, constant quality 18, a keyframe every 10 s) keep the colours within a few grey
    levels of the palette and decoding fast. ``pix_fmt``: full-resolution colour (``yuv444p``, the world's data) by
    default; browsers play only ``yuv420p`` H.264, so videos shown in a web page (the Space's examples) use that.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    num_frames = round(timeline.duration * fps)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = pix_fmt
        stream.options = {"preset": "ultrafast", "crf": "18", "g": str(10 * fps)}
        for index in range(num_frames):
            pixels = render_frame(timeline.state_at(index / fps), size)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    return path
