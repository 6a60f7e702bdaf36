"""Decode chosen frames with PyAV, seeking to a keyframe only where that beats decoding on.

Dense requests (1 fps, or 128-256 frames over a 10-minute clip) touch nearly every GOP, so they decode straight
through, stopping after the last requested frame. Sparse requests (samples further apart than a GOP) jump to the
keyframe before each sample instead of decoding the frames in between. Frames are located by their pts, so the
frame at position ``i`` is the ``i``-th frame in presentation order, whichever way the decoder got there. Each frame
is converted to RGB at its native size, turned as a player shows it and handed to a sink (:mod:`processing.pixels`)
that resizes it with PIL bicubic at once, so only resized frames are kept.

Example:
    >>> from processing.frame_index import build_frame_index
    >>> from processing.pixels import FrameArray
    >>> index = build_frame_index("clip.mp4")  # doctest: +SKIP
    >>> sink = FrameArray(3, (384, 384))
    >>> stats = decode_frames_pyav(index, np.array([0, 150, 299]), sink)  # doctest: +SKIP
    >>> sink.frames.shape  # stats.frames_decoded / stats.seeks say how much work it took  # doctest: +SKIP
    (3, 384, 384, 3)
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np

from .errors import VideoReadError
from .frame_index import FrameIndex, open_container
from .pixels import FrameSink, to_display

# One seek (demuxer seek + decoder flush + refilling the frame-threading pipeline) costs about as much as decoding
# this many frames; a seek is taken only when it skips more frames than that.
SEEK_COST_FRAMES = 30

# Demuxers whose seeking is not frame-exact (no index: PyAV lands on the wrong frames on MPEG-TS); always decode
# these straight through.
UNSEEKABLE_FORMATS = frozenset({"mpegts", "mpeg", "h264", "hevc", "m4v", "mpegvideo", "rawvideo"})


@dataclass
class DecodeStats:
    """What decoding cost: ``frames_decoded`` frames out of the decoder, ``seeks`` keyframe seeks."""

    frames_decoded: int = 0
    seeks: int = 0


class _DecodeCursor:
    """A decoder positioned at a frame of the index, able to move forward by decoding or by seeking."""

    def __init__(self, container: av.container.InputContainer, index: FrameIndex, stats: DecodeStats):
        self.container = container
        self.stream = container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.index = index
        self.stats = stats
        self.position = -1  # position of the last frame decoded
        self._frames = container.decode(self.stream)

    def keyframe_before(self, target: int) -> int:
        keyframes = self.index.keyframe_positions
        return int(keyframes[np.searchsorted(keyframes, target, side="right") - 1])

    def should_seek(self, target: int) -> bool:
        keyframe = self.keyframe_before(target)
        if keyframe <= self.position:  # already inside the target's GOP
            return False
        return (target - keyframe) + SEEK_COST_FRAMES < (target - self.position)

    def seek_to(self, keyframe: int) -> None:
        self.container.seek(int(self.index.pts[keyframe]), stream=self.stream, backward=True, any_frame=False)
        self._frames = self.container.decode(self.stream)
        self.position = keyframe - 1
        self.stats.seeks += 1

    def _position_of(self, frame: av.VideoFrame) -> int:
        pts = self.index.pts
        if pts is not None and frame.pts is not None:
            position = int(np.searchsorted(pts, frame.pts))
            if position < len(pts) and pts[position] == frame.pts:
                return position
        return self.position + 1  # no usable pts: count frames in decode order

    def advance_to(self, target: int) -> av.VideoFrame | None:
        """Decode until the frame at ``target``; ``None`` if the decoder passed it (seek landed late, frame lost)."""
        for frame in self._frames:
            self.stats.frames_decoded += 1
            position = self._position_of(frame)
            self.position = position
            if position == target:
                return frame
            if position > target:
                return None
        self.position = self.index.num_frames
        return None


def decode_frames_pyav(index: FrameIndex, positions: np.ndarray, sink: FrameSink) -> DecodeStats:
    """Decode the frames at ``positions`` (sorted, unique) of ``index``, handing each to ``sink`` as soon as it is
    decoded (turned as displayed, native size; e.g. a :class:`~processing.pixels.FrameArray` resizes it).

    Args:
        index: the file's :class:`~processing.frame_index.FrameIndex`.
        positions: ``(T,)`` ascending unique frame positions into ``index.timestamps``.
        sink: called as ``sink(slot, image)`` for ``slot`` in ``range(T)``.

    Returns:
        The :class:`DecodeStats` of the run.
    """
    stats = DecodeStats()
    seekable = index.pts is not None and index.container_format not in UNSEEKABLE_FORMATS
    with open_container(index.path) as container:
        cursor = _DecodeCursor(container, index, stats)
        try:
            for slot, target in enumerate(positions.tolist()):
                seeked = seekable and cursor.should_seek(target)
                if seeked:
                    cursor.seek_to(cursor.keyframe_before(target))
                frame = cursor.advance_to(target)
                if frame is None and seeked:
                    # The seek landed after the target (imprecise index): decode on from the start, seeking no more.
                    seekable = False
                    cursor.seek_to(0)
                    frame = cursor.advance_to(target)
                if frame is None:
                    raise VideoReadError(
                        f"{index.path}: frame {target} of {index.num_frames} (t={index.timestamps[target]:.3f}s) "
                        "could not be decoded; the file is corrupt or truncated. Re-download or re-encode it."
                    )
                sink(slot, to_display(frame.to_ndarray(format="rgb24"), index.orientation))
        except av.FFmpegError as error:
            raise VideoReadError(
                f"{index.path}: decoding failed ({error}); the file is corrupt or truncated. "
                "Re-download or re-encode it."
            ) from error
    return stats
