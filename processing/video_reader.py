"""Read sampled frames of a video: the public ``load_video`` / ``probe_video`` and the choice of decoding backend.

decord decodes where it is known to be safe (MP4/MKV/AVI with H.264/HEVC/MPEG-4); PyAV decodes everything else
(MPEG-TS, WebM/VP9, ...) and takes over whenever decord raises or disagrees with the demuxer. Which frames to read
is decided once, from a PyAV demux index shared by both backends, with the upstream sampling rules
(:func:`processing.frame_sampling.sample_frame_indices`) applied to the frames of the ``[start, end]``
window, so both backends return the same frames with the same timestamps.

Example:
    >>> from processing import load_video, probe_video
    >>> probe_video("clip.mp4")  # doctest: +SKIP
    VideoInfo(num_frames=300, fps=30.0, duration=10.0, width=1280, height=720)
    >>> frames, timestamps = load_video("clip.mp4", fps=1.0, max_frames=64, start=2.0, end=6.0, size=384)  # doctest: +SKIP
    >>> frames.shape, frames.dtype, timestamps.tolist()  # doctest: +SKIP
    ((5, 384, 384, 3), dtype('uint8'), [2.0, 3.0, 4.0, 5.0, 6.0])
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from numbers import Integral

import numpy as np

from .decord_backend import decode_frames_decord, decord_refusal
from .frame_index import FrameIndex, build_frame_index
from .frame_sampling import sample_frame_indices
from .pyav_backend import decode_frames_pyav

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "decord", "pyav")

# Frame times are exact pts multiples; this only absorbs float rounding at the window's edges.
_WINDOW_EPSILON = 1e-6


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` reports: frame count, average frame rate, duration (s) and frame size (pixels)."""

    num_frames: int
    fps: float
    duration: float
    width: int
    height: int


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Describe a video without decoding it (the demuxer counts its frames exactly).

    Raises :class:`~processing.VideoReadError` for a missing, corrupt, empty or non-video file.

    Example:
        >>> probe_video("clip.mp4")  # doctest: +SKIP
        VideoInfo(num_frames=300, fps=30.0, duration=10.0, width=1280, height=720)
    """
    index = build_frame_index(path)
    return VideoInfo(index.num_frames, index.avg_fps, index.duration, index.width, index.height)


def load_video(
    path: str | os.PathLike,
    num_frames: int | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    start: float | None = None,
    end: float | None = None,
    size: int | tuple[int, int] | None = None,
    backend: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Decode sampled frames of a video.

    Frames are chosen by the upstream rules (``sample_frame_indices``) over the frames whose timestamps lie in
    ``[start, end]``: ``num_frames`` uniform frames, or one frame every ``round(avg_fps / fps)`` frames (switching to
    ``max_frames`` uniform frames when that gives more), or every frame when neither is given.

    Args:
        path: the video file.
        num_frames: sample this many frames uniformly (mutually exclusive with ``fps``).
        fps: sample this many frames per second of video.
        max_frames: cap on the number of frames (with ``fps``, exceeding it switches to uniform sampling).
        start: first second of the window (seconds since the first frame); default: the first frame.
        end: last second of the window, inclusive; default: the last frame.
        size: resize while decoding to ``size x size`` (an int) or ``(height, width)``; default: native size.
        backend: ``"auto"`` (decord where safe, PyAV otherwise and whenever decord fails), ``"decord"`` or
            ``"pyav"`` (no fallback).

    Returns:
        ``frames``: uint8 ``(T, H, W, 3)`` RGB; ``timestamps``: float64 ``(T,)`` presentation time of each frame in
        seconds since the first frame of the file (pts-based, not index / fps).

    Raises:
        VideoReadError: the file is missing, corrupt, empty or not a video.
        ValueError: bad arguments (e.g. both ``num_frames`` and ``fps``, or a window with no frames).

    Example:
        >>> from processing import load_video
        >>> frames, timestamps = load_video("clip.mp4", num_frames=32, size=384)  # doctest: +SKIP
        >>> frames.shape, frames.dtype, timestamps.dtype  # doctest: +SKIP
        ((32, 384, 384, 3), dtype('uint8'), dtype('float64'))
    """
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS}, got {backend!r}")
    size = _as_height_width(size)
    index = build_frame_index(path)
    first, last = _window(index, start, end)
    positions = first + sample_frame_indices(
        last - first + 1, avg_fps=index.avg_fps, num_frames=num_frames, fps=fps, max_frames=max_frames
    )
    unique_positions, inverse = np.unique(positions, return_inverse=True)
    frames = _decode(index, unique_positions, size, backend)
    if len(unique_positions) != len(positions):  # more frames asked than the window has: repeat, as upstream
        frames = frames[inverse]
    return frames, index.timestamps[positions].copy()


def _decode(index: FrameIndex, positions: np.ndarray, size: tuple[int, int] | None, backend: str) -> np.ndarray:
    if backend == "pyav":
        return decode_frames_pyav(index, positions, size)[0]
    refusal = decord_refusal(index, size)
    if backend == "decord":
        if refusal:
            raise ValueError(f"{index.path}: backend='decord' refused: {refusal}. Use backend='auto' or 'pyav'.")
        return decode_frames_decord(index, positions, size)
    if refusal:
        logger.debug("%s: decoding with PyAV: %s", index.path, refusal)
        return decode_frames_pyav(index, positions, size)[0]
    try:
        return decode_frames_decord(index, positions, size)
    except Exception as error:  # decord's errors are untyped RuntimeErrors; PyAV is exact on everything it opens
        logger.warning("%s: decord failed (%s); decoding with PyAV instead", index.path, error)
        return decode_frames_pyav(index, positions, size)[0]


def _as_height_width(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    height, width = (size, size) if isinstance(size, Integral) else tuple(size)
    if not (isinstance(height, Integral) and isinstance(width, Integral) and height > 0 and width > 0):
        raise ValueError(f"`size` must be a positive int or a (height, width) pair of positive ints, got {size!r}")
    return int(height), int(width)


def _window(index: FrameIndex, start: float | None, end: float | None) -> tuple[int, int]:
    """Positions of the first and last frames whose timestamps lie in ``[start, end]``."""
    start = 0.0 if start is None else float(start)
    end = math.inf if end is None else float(end)
    if start < 0 or end < start:
        raise ValueError(f"the window must satisfy 0 <= start <= end, got start={start}, end={end}")
    first = int(np.searchsorted(index.timestamps, start - _WINDOW_EPSILON, side="left"))
    last = int(np.searchsorted(index.timestamps, end + _WINDOW_EPSILON, side="right")) - 1
    if first > last:
        raise ValueError(
            f"{index.path}: no frames between start={start}s and end={end}s; the video's frames span "
            f"0-{index.timestamps[-1]:.3f}s. Pass a window inside that range."
        )
    return first, last
