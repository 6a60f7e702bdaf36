"""Read sampled frames of a video: the public ``load_video`` / ``probe_video`` and the choice of decoding backend.

decord decodes where it is known to be safe (unrotated MP4/MKV/AVI with H.264/HEVC/MPEG-4); PyAV decodes everything
else (MPEG-TS, WebM/VP9, rotated phone videos, ...) and takes over whenever decord raises or disagrees with the
demuxer. Which frames to read is decided once, from a PyAV demux index shared by both backends, with the upstream
sampling rules (:func:`processing.frame_sampling.sample_frame_indices`) applied to the frames of the ``[start, end]``
window, so both backends return the same frames with the same timestamps. Frames come back the way a player shows
them (display matrix applied) and, with ``size``, resized with PIL bicubic right after decoding: upstream's pixels
(``SigLipImageProcessor``), whatever the backend, with only resized frames in memory.

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
from .pixels import FrameArray, FrameSink
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


@dataclass(frozen=True)
class SampledVideo:
    """What :func:`read_video` returns.

    Attributes:
        frames: uint8 ``(T, H, W, 3)`` RGB, as :func:`load_video` returns them.
        timestamps: float64 ``(T,)`` seconds since the first frame.
        positions: int64 ``(T,)`` position of each frame among the file's frames (repeats where frames repeat).
        info: the file's :class:`VideoInfo`.
    """

    frames: np.ndarray
    timestamps: np.ndarray
    positions: np.ndarray
    info: VideoInfo


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Describe a video by demuxing it: the demuxer counts its frames exactly; only the first frame is decoded, to
    learn how a player turns it and where playback starts. ``width`` and ``height`` are those of the frames as
    displayed, i.e. swapped for a video stored sideways with a 90-degree display matrix.

    Raises :class:`~processing.VideoReadError` for a missing, corrupt, empty or non-video file.

    Example:
        >>> probe_video("clip.mp4")  # doctest: +SKIP
        VideoInfo(num_frames=300, fps=30.0, duration=10.0, width=1280, height=720)
    """
    return _info(build_frame_index(path))


def _info(index: FrameIndex) -> VideoInfo:
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
    """Decode sampled frames of a video, the way a player shows them, resized as upstream resizes.

    Frames are chosen by the upstream rules (``sample_frame_indices``) over the frames whose timestamps lie in
    ``[start, end]``:

    - ``num_frames=N``: ``np.linspace(0, total - 1, N, dtype=int)`` over the window's native frames (upstream's
      training and evaluation rule). A window with fewer than ``N`` frames returns ``N`` frames anyway, some repeated,
      exactly as upstream's linspace repeats them (5 frames sampled to 8 are frames ``[0, 0, 1, 1, 2, 2, 3, 4]``);
    - ``fps=f``: every ``round(avg_fps / f)``-th frame; with ``max_frames=N`` too, ``N`` uniform frames whenever that
      gives more than ``N`` (``llava_vid``'s "1 fps capped at N": ``fps=1.0, max_frames=N``);
    - neither: every frame.

    ``max_frames`` is also a hard limit: ``num_frames`` above it, or every frame of a longer window, raises a
    ``ValueError`` naming it before anything is decoded.

    Args:
        path: the video file.
        num_frames: sample this many frames uniformly (mutually exclusive with ``fps``).
        fps: sample this many frames per second of video.
        max_frames: the most frames returned (see above).
        start: first second of the window (seconds since the first frame); default: the first frame.
        end: last second of the window, inclusive; default: the last frame.
        size: resize every frame to ``size x size`` (an int) or ``(height, width)`` with PIL bicubic right after it
            is decoded (what upstream's processor does, so the model sees the same pixels); default: native size.
        backend: ``"auto"`` (decord where safe, PyAV otherwise and whenever decord fails), ``"decord"`` or
            ``"pyav"`` (no fallback).

    Returns:
        ``frames``: uint8 ``(T, H, W, 3)`` RGB as displayed (a 90-degree display matrix is applied, so native frames
        of a portrait phone video are taller than wide); ``timestamps``: float64 ``(T,)`` presentation time of each
        frame in seconds since the first frame of the file (pts-based, not index / fps).

    Raises:
        VideoReadError: the file is missing, corrupt, empty or not a video.
        ValueError: bad arguments (e.g. both ``num_frames`` and ``fps``, more frames than ``max_frames``, or a window
            with no frames).

    Example:
        >>> from processing import load_video
        >>> frames, timestamps = load_video("clip.mp4", num_frames=32, size=384)  # doctest: +SKIP
        >>> frames.shape, frames.dtype, timestamps.dtype  # doctest: +SKIP
        ((32, 384, 384, 3), dtype('uint8'), dtype('float64'))
        >>> frames, _ = load_video("clip.mp4", fps=1.0, max_frames=64, size=384)  # 1 fps, at most 64  # doctest: +SKIP
    """
    video = read_video(path, num_frames, fps, max_frames, start, end, size, backend)
    return video.frames, video.timestamps


def read_video(
    path: str | os.PathLike,
    num_frames: int | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    start: float | None = None,
    end: float | None = None,
    size: int | tuple[int, int] | None = None,
    backend: str = "auto",
) -> SampledVideo:
    """:func:`load_video` that also says which frames of the file it returned and describes the file.

    Example:
        >>> video = read_video("clip.mp4", num_frames=4, size=384)  # doctest: +SKIP
        >>> video.positions.tolist(), video.info.num_frames  # doctest: +SKIP
        ([0, 99, 199, 299], 300)
    """
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS}, got {backend!r}")
    size = _as_height_width(size)
    index = build_frame_index(path)
    positions = sample_positions(index, num_frames=num_frames, fps=fps, max_frames=max_frames, start=start, end=end)
    unique_positions, inverse = np.unique(positions, return_inverse=True)
    sink = FrameArray(len(unique_positions), size or (index.height, index.width))
    decode_frames(index, unique_positions, sink, backend)
    frames = sink.frames
    if len(unique_positions) != len(positions):  # more frames asked than the window has: repeat, as upstream
        frames = frames[inverse]
    return SampledVideo(frames, index.timestamps[positions].copy(), positions, _info(index))


def sample_positions(
    index: FrameIndex,
    num_frames: int | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    start: float | None = None,
    end: float | None = None,
) -> np.ndarray:
    """Positions (into ``index.timestamps``, ascending, repeats possible) of the frames :func:`load_video` returns."""
    first, last = _window(index, start, end)
    return first + sample_frame_indices(
        last - first + 1, avg_fps=index.avg_fps, num_frames=num_frames, fps=fps, max_frames=max_frames
    )


def decode_frames(index: FrameIndex, positions: np.ndarray, sink: FrameSink, backend: str = "auto") -> None:
    """Decode the frames at ``positions`` (ascending, unique) of ``index`` and hand each to ``sink(slot, image)``
    (:data:`processing.pixels.FrameSink`), with ``backend`` chosen as in :func:`load_video`."""
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS}, got {backend!r}")
    if backend == "pyav":
        decode_frames_pyav(index, positions, sink)
        return
    refusal = decord_refusal(index)
    if backend == "decord":
        if refusal:
            raise ValueError(f"{index.path}: backend='decord' refused: {refusal}. Use backend='auto' or 'pyav'.")
        decode_frames_decord(index, positions, sink)
        return
    if refusal:
        logger.debug("%s: decoding with PyAV: %s", index.path, refusal)
        decode_frames_pyav(index, positions, sink)
        return
    try:
        decode_frames_decord(index, positions, sink)
    except Exception as error:  # decord's errors are untyped RuntimeErrors; PyAV is exact on everything it opens
        logger.warning("%s: decord failed (%s); decoding with PyAV instead", index.path, error)
        decode_frames_pyav(index, positions, sink)


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
