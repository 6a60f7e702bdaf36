"""Decode chosen frames with decord, the product's first-choice reader, where it is known to be safe.

decord 0.6.0 hangs on MPEG-TS and fails on VP9 WebM, so it is only offered files in containers and codecs it reads
correctly (:func:`decord_refusal` says why a file is refused). Before trusting it, the reader checks that decord
sees the same frames as the PyAV :class:`~processing.frame_index.FrameIndex` (same count, same timestamps); any
disagreement or decord error raises, and :func:`processing.load_video` falls back to PyAV.

Example:
    >>> from processing.frame_index import build_frame_index
    >>> index = build_frame_index("clip.mp4")  # doctest: +SKIP
    >>> decode_frames_decord(index, np.array([0, 150, 299]), size=(384, 384)).shape  # doctest: +SKIP
    (3, 384, 384, 3)
"""

from __future__ import annotations

import numpy as np

from .frame_index import FrameIndex

DECORD_FORMATS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi"})
DECORD_CODECS = frozenset({"h264", "hevc", "mpeg4"})

# get_batch() copies the whole batch once more on .asnumpy(); reading in chunks bounds that extra copy.
_BATCH_FRAMES = 32

# decord silently repeats the previous frame for frames it cannot decode unless told otherwise; this makes one
# such frame raise (DECORDLimitReachedError) so the exact PyAV path takes over.
_FAULT_TOLERANCE = 1e-9


# decord 0.6.0 pads resized rows to 32 pixels and then refuses its own copy ("Check failed: from_size == to_size").
_RESIZE_WIDTH_ALIGNMENT = 32


class DecordMismatchError(RuntimeError):
    """decord sees different frames than the PyAV index (count or timestamps); its frames cannot be trusted."""


def decord_refusal(index: FrameIndex, size: tuple[int, int] | None = None) -> str | None:
    """Why decord must not read this file at this output ``(height, width)`` (``None`` if it may): decord is used
    only where it is known to work."""
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
    if size is not None and size[1] % _RESIZE_WIDTH_ALIGNMENT:
        return (
            f"decord 0.6.0 fails to resize to a width ({size[1]}) that is not a multiple of {_RESIZE_WIDTH_ALIGNMENT}"
        )
    return None


def decode_frames_decord(index: FrameIndex, positions: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode the frames at ``positions`` of ``index`` with decord.

    Args:
        index: the file's :class:`~processing.frame_index.FrameIndex`; call :func:`decord_refusal` first.
        positions: ``(T,)`` ascending unique frame positions into ``index.timestamps``.
        size: ``(height, width)`` to resize to while decoding; ``None`` keeps the native size.

    Returns:
        ``frames`` uint8 ``(T, H, W, 3)`` RGB.

    Raises:
        DecordMismatchError: decord counts or times the frames differently from the index.
        decord.DECORDError: decord failed to read the file.
    """
    import decord

    height, width = size if size is not None else (-1, -1)
    reader = decord.VideoReader(
        index.path, ctx=decord.cpu(0), width=width, height=height, num_threads=0, fault_tol=_FAULT_TOLERANCE
    )
    if len(reader) != index.num_frames:
        raise DecordMismatchError(f"decord counts {len(reader)} frames, the demuxer {index.num_frames}")
    starts = reader.get_frame_timestamp(np.concatenate([[0], positions]).tolist())[:, 0].astype(np.float64)
    drift = np.abs((starts[1:] - starts[0]) - index.timestamps[positions])
    if len(drift) and drift.max() > 0.5 / index.avg_fps:
        raise DecordMismatchError(f"decord's frame times differ from the demuxer's by up to {drift.max():.3f}s")
    out_height, out_width = size if size is not None else (index.height, index.width)
    frames = np.empty((len(positions), out_height, out_width, 3), dtype=np.uint8)
    for begin in range(0, len(positions), _BATCH_FRAMES):
        chunk = positions[begin : begin + _BATCH_FRAMES]
        frames[begin : begin + len(chunk)] = reader.get_batch(chunk.tolist()).asnumpy()
    return frames
