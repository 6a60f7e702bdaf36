"""Frame-index sampling shared by the video processor, the video readers and the frame cache.

The canonical file is ``processing/frame_sampling.py``; ``modeling_prolongvid/frame_sampling.py`` is a
byte-identical copy, because a Hub checkpoint's remote code can only import files saved beside it
(``tests/processing/test_frame_sampling.py`` keeps the two equal).

The rules are upstream's (LLaVA-NeXT ``process_video_with_decord``), so that frames chosen here are the frames the
released checkpoints were trained on:

- ``num_frames=N``: ``N`` indices spread uniformly over the whole clip, ``np.linspace(0, total - 1, N, dtype=int)``
  (training's ``fixed_num_frames``, evaluation's ``llava_onevision`` wrapper). A clip with fewer than ``N`` frames
  gets repeated indices, exactly as upstream: 5 frames sampled to 8 give ``[0, 0, 1, 1, 2, 2, 3, 4]``.
- ``fps=f``: every ``round(avg_fps / f)``-th frame starting at 0; when that gives more than ``max_frames``
  indices, fall back to ``max_frames`` uniform indices (``llava_vid``'s rule: ``fps=1, max_frames=N`` is "1 fps
  capped at N").

``max_frames`` is a hard limit everywhere else: an explicit ``num_frames`` above it, or every frame of a clip longer
than it, is an error that names the limit.

Example:
    >>> sample_frame_indices(300, avg_fps=30.0, fps=1.0).tolist()[:3]
    [0, 30, 60]
    >>> sample_frame_indices(300, avg_fps=30.0, num_frames=4).tolist()
    [0, 99, 199, 299]
    >>> sample_frame_indices(5, num_frames=8).tolist()
    [0, 0, 1, 1, 2, 2, 3, 4]
    >>> sample_frame_indices(3000, avg_fps=30.0, fps=1.0, max_frames=4).tolist()
    [0, 999, 1999, 2999]
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
        num_frames: sample exactly this many frames uniformly (mutually exclusive with ``fps``); frames repeat when
            the clip has fewer.
        fps: sample this many frames per second of video.
        max_frames: upper bound on the number of frames; with ``fps``, exceeding it switches to ``max_frames``
            uniform frames; ``num_frames`` above it, or every frame of a longer clip, raises ``ValueError``.

    With neither ``num_frames`` nor ``fps`` every frame is returned.
    """
    if total_frames <= 0:
        raise ValueError(f"cannot sample frames from a clip with {total_frames} frames")
    if num_frames is not None and fps is not None:
        raise ValueError("`num_frames` and `fps` are mutually exclusive: pass one of them")
    if num_frames is not None:
        if num_frames <= 0:
            raise ValueError(f"`num_frames` must be positive, got {num_frames}")
        if max_frames is not None and num_frames > max_frames:
            raise ValueError(
                f"num_frames={num_frames} exceeds max_frames={max_frames}, the most frames allowed per video: "
                f"pass num_frames <= {max_frames}"
            )
        return np.linspace(0, total_frames - 1, num_frames, dtype=np.int64)
    if fps is not None:
        if fps <= 0:
            raise ValueError(f"`fps` must be positive, got {fps}")
        if not avg_fps or avg_fps <= 0:
            raise ValueError("fps sampling needs the clip's average frame rate (`avg_fps`)")
        step = max(1, round(avg_fps / fps))
        indices = np.arange(0, total_frames, step, dtype=np.int64)
        if max_frames is not None and len(indices) > max_frames:
            indices = np.linspace(0, total_frames - 1, max_frames, dtype=np.int64)
        return indices
    if max_frames is not None and total_frames > max_frames:
        raise ValueError(
            f"the clip has {total_frames} frames, more than max_frames={max_frames} allowed per video: pass "
            f"num_frames (at most {max_frames}) or fps to sample it"
        )
    return np.arange(total_frames, dtype=np.int64)


# Frames each training stage samples, by the video's duration in seconds: (upper bound, frames). Upper bounds are
# exclusive except the last (20 min); longer videos get no stage frames, only the 1-fps ones.
STAGE_FRAME_COUNTS = ((120.0, 32), (300.0, 128), (1200.0, 192))


def stage_num_frames(duration: float) -> int | None:
    """Frames the training stage of a ``duration``-second video samples (None past 20 minutes).

    >>> [stage_num_frames(seconds) for seconds in (20, 120, 299.9, 1200, 1201)]
    [32, 128, 128, 192, None]
    """
    for bound, frames in STAGE_FRAME_COUNTS[:-1]:
        if duration < bound:
            return frames
    bound, frames = STAGE_FRAME_COUNTS[-1]
    return frames if duration <= bound else None
