"""Frame-index sampling shared by the video processor, the video readers and the frame cache.

The canonical file is ``processing/frame_sampling.py``; ``modeling_prolongvid/frame_sampling.py`` is a
byte-identical copy, because a Hub checkpoint's remote code can only import files saved beside it
(``tests/processing/test_frame_sampling.py`` keeps the two equal).

The rules are upstream's (LLaVA-NeXT ``process_video_with_decord``), so that frames chosen here are the frames the
released checkpoints were trained on:

- ``num_frames=N``: ``N`` indices spread uniformly over the whole clip, ``linspace(0, total - 1, N)`` floored.
- ``fps=f``: every ``round(avg_fps / f)``-th frame starting at 0; when that gives more than ``max_frames``
  indices, fall back to ``max_frames`` uniform indices.

Example:
    >>> sample_frame_indices(300, avg_fps=30.0, fps=1.0).tolist()[:3]
    [0, 30, 60]
    >>> sample_frame_indices(300, avg_fps=30.0, num_frames=4).tolist()
    [0, 99, 199, 299]
"""

from __future__ import annotations

import numpy as np


def sample_frame_indices(
    total_frames: int,
    avg_fps: float | None = None,
    num_frames: int | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
) -> np.ndarray:
    """Return sorted frame indices (int64, shape ``(T,)``) to read from a clip of ``total_frames`` frames.

    Args:
        total_frames: number of decodable frames in the clip (or in the ``[start, end]`` window).
        avg_fps: the clip's average frame rate; required with ``fps``.
        num_frames: sample exactly this many frames uniformly (mutually exclusive with ``fps``).
        fps: sample this many frames per second of video.
        max_frames: upper bound on the number of frames; with ``fps``, exceeding it switches to uniform sampling.

    With neither ``num_frames`` nor ``fps`` every frame is returned (subject to ``max_frames``).
    """
    if total_frames <= 0:
        raise ValueError(f"cannot sample frames from a clip with {total_frames} frames")
    if num_frames is not None and fps is not None:
        raise ValueError("`num_frames` and `fps` are mutually exclusive: pass one of them")
    if num_frames is not None:
        if num_frames <= 0:
            raise ValueError(f"`num_frames` must be positive, got {num_frames}")
        if max_frames is not None:
            num_frames = min(num_frames, max_frames)
        return np.linspace(0, total_frames - 1, num_frames).astype(np.int64)
    if fps is not None:
        if fps <= 0:
            raise ValueError(f"`fps` must be positive, got {fps}")
        if not avg_fps or avg_fps <= 0:
            raise ValueError("fps sampling needs the clip's average frame rate (`avg_fps`)")
        step = max(1, round(avg_fps / fps))
        indices = np.arange(0, total_frames, step, dtype=np.int64)
    else:
        indices = np.arange(total_frames, dtype=np.int64)
    if max_frames is not None and max_frames > 0 and len(indices) > max_frames:
        indices = np.linspace(0, total_frames - 1, max_frames).astype(np.int64)
    return indices
