"""Decode chosen frames with decord, the product's first-choice reader, where it is known to be safe.

decord 0.6.0 hangs on MPEG-TS, fails on VP9 WebM and applies a display matrix in some containers (MP4) but not in
others (Matroska), so it is only offered unrotated files in containers and codecs it reads correctly
(:func:`decord_refusal` says why a file is refused). Before trusting it, the reader checks that decord sees the same
frames as the PyAV :class:`~processing.frame_index.FrameIndex` (same count, same timestamps); any disagreement or
decord error raises, and :func:`processing.load_video` falls back to PyAV. decord decodes at the native size; each
frame goes to a sink (:mod:`processing.pixels`) that resizes it with PIL bicubic at once, as upstream resizes.

Example:
    >>> from processing.frame_index import build_frame_index
    >>> from processing.pixels import FrameArray
    >>> index, sink = build_frame_index("clip.mp4"), FrameArray(3, (384, 384))  # doctest: +SKIP
    >>> decode_frames_decord(index, np.array([0, 150, 299]), sink)  # doctest: +SKIP
    >>> sink.frames.shape  # doctest: +SKIP
    (3, 384, 384, 3)
"""

from __future__ import annotations

import numpy as np

from .frame_index import FrameIndex
from .pixels import FrameSink, to_display

DECORD_FORMATS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi"})
DECORD_CODECS = frozenset({"h264", "hevc", "mpeg4"})

# get_batch() returns full-size frames and copies them once more on .asnumpy(); small chunks bound what is alive.
_BATCH_FRAMES = 8

# decord silently repeats the previous frame for frames it cannot decode unless told otherwise; this makes one
# such frame raise (DECORDLimitReachedError) so the exact PyAV path takes over.
_FAULT_TOLERANCE = 1e-9


class DecordMismatchError(RuntimeError):
    """decord sees different frames than the PyAV index (count or timestamps); its frames cannot be trusted."""


def decord_refusal(index: FrameIndex) -> str | None:
    """Why decord must not read this file (``None`` if it may): decord is used only where it is known to work."""
    try:
        import decord  # noqa: F401
    except ImportError:
        return "decord is not installed (it has wheels for Linux x86_64 and Windows x64 only)"
    if index.container_format not in DECORD_FORMATS:
        return f"decord 0.6.0 is unreliable on {index.container_format!r} containers (it hangs on MPEG-TS)"
    if index.codec not in DECORD_CODECS:
        return f"decord 0.6.0 is unreliable on {index.codec!r} video (it fails on VP9)"
    if index.pts is None:
        return "the container has no timestamps to check decord's frames against"
    if index.orientation is not None:
        return "the video is rotated (display matrix), which decord 0.6.0 applies in some containers only"
    return None


def decode_frames_decord(index: FrameIndex, positions: np.ndarray, sink: FrameSink) -> None:
    """Decode the frames at ``positions`` of ``index`` with decord, handing each to ``sink`` (native size).

    Args:
        index: the file's :class:`~processing.frame_index.FrameIndex`; call :func:`decord_refusal` first.
        positions: ``(T,)`` ascending unique frame positions into ``index.timestamps``.
        sink: called as ``sink(slot, image)`` for ``slot`` in ``range(T)``
            (e.g. a :class:`~processing.pixels.FrameArray`).

    Raises:
        DecordMismatchError: decord counts or times the frames differently from the index.
        decord.DECORDError: decord failed to read the file.
    """
    import decord

    reader = decord.VideoReader(index.path, ctx=decord.cpu(0), num_threads=0, fault_tol=_FAULT_TOLERANCE)
    if len(reader) != index.num_frames:
        raise DecordMismatchError(f"decord counts {len(reader)} frames, the demuxer {index.num_frames}")
    starts = reader.get_frame_timestamp(np.concatenate([[0], positions]).tolist())[:, 0].astype(np.float64)
    drift = np.abs((starts[1:] - starts[0]) - index.timestamps[positions])
    if len(drift) and drift.max() > 0.5 / index.avg_fps:
        raise DecordMismatchError(f"decord's frame times differ from the demuxer's by up to {drift.max():.3f}s")
    for begin in range(0, len(positions), _BATCH_FRAMES):
        chunk = positions[begin : begin + _BATCH_FRAMES]
        for slot, frame in enumerate(reader.get_batch(chunk.tolist()).asnumpy(), start=begin):
            sink(slot, to_display(frame, None))
