"""Open a video with PyAV, validate it, and index its frames without decoding them.

The index is built from the demuxer's packets alone (a 10-minute 720p file demuxes in well under a second): one entry
per frame in presentation order, with its pts-based timestamp, and the positions of the keyframes. Both decoding
backends share it, so a frame position means the same frame whichever backend decodes it, and the keyframe positions
let the PyAV backend seek only where seeking pays.

Example:
    >>> index = build_frame_index("clip.mp4")  # doctest: +SKIP
    >>> index.num_frames, index.avg_fps, index.timestamps[:3]  # doctest: +SKIP
    (300, 30.0, array([0.        , 0.03333333, 0.06666667]))
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import av
import numpy as np

from .errors import VideoReadError

_FIX_CORRUPT = "Re-download the file or re-encode it, e.g. `ffmpeg -i in.mp4 -c:v libx264 out.mp4`."


@dataclass(frozen=True)
class FrameIndex:
    """Every frame of a video stream, in presentation order, found by demuxing (no decoding).

    Attributes:
        path: the file.
        container_format: FFmpeg demuxer name, e.g. ``"mov,mp4,m4a,3gp,3g2,mj2"``, ``"matroska,webm"``, ``"mpegts"``.
        codec: FFmpeg codec name of the video stream, e.g. ``"h264"``, ``"vp9"``.
        width, height: frame size in pixels.
        avg_fps: average frame rate (frames per second).
        pts: ``(N,)`` int64 presentation timestamps in ``time_base`` units, ascending; ``None`` when the container
            carries no timestamps (frames are then located by decode order only).
        time_base: seconds per ``pts`` unit.
        timestamps: ``(N,)`` float64 seconds since the first frame (so ``timestamps[0] == 0``).
        keyframe_positions: ``(K,)`` int64 ascending positions (into ``timestamps``) of the keyframes.
    """

    path: str
    container_format: str
    codec: str
    width: int
    height: int
    avg_fps: float
    pts: np.ndarray | None
    time_base: float
    timestamps: np.ndarray
    keyframe_positions: np.ndarray

    @property
    def num_frames(self) -> int:
        return len(self.timestamps)

    @property
    def duration(self) -> float:
        """Seconds from the first frame's start to the last frame's end."""
        return float(self.timestamps[-1]) + 1.0 / self.avg_fps


def open_container(path: str | os.PathLike) -> av.container.InputContainer:
    """Open ``path`` with PyAV, turning every way that can fail into a :class:`VideoReadError`."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise VideoReadError(f"{path}: file not found. Check the path (relative paths resolve from {os.getcwd()}).")
    if os.path.isdir(path):
        raise VideoReadError(f"{path}: is a directory, not a video file. Pass the path of a video file.")
    if os.path.getsize(path) == 0:
        raise VideoReadError(f"{path}: the file is empty (0 bytes). {_FIX_CORRUPT}")
    try:
        container = av.open(path, metadata_errors="ignore")
    except av.FFmpegError as error:
        raise VideoReadError(
            f"{path}: not a readable video container ({error.strerror or error}); the file is corrupt, truncated "
            f"or not a video. {_FIX_CORRUPT}"
        ) from error
    if not container.streams.video:
        kinds = ", ".join(sorted({stream.type for stream in container.streams})) or "none"
        container.close()
        raise VideoReadError(f"{path}: no video stream found (streams: {kinds}). Pass a file that contains video.")
    return container


def build_frame_index(path: str | os.PathLike) -> FrameIndex:
    """Demux ``path`` (no decoding) and return its :class:`FrameIndex`; raise :class:`VideoReadError` if unusable."""
    path = os.fspath(path)
    with open_container(path) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        pts, keyframe_pts, num_packets = [], [], 0
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the demuxer's end-of-stream flush packet
                    continue
                num_packets += 1
                if packet.pts is not None:
                    pts.append(packet.pts)
                    if packet.is_keyframe:
                        keyframe_pts.append(packet.pts)
        except av.FFmpegError as error:
            raise VideoReadError(
                f"{path}: reading failed after {num_packets} frames ({error}); the file is corrupt. {_FIX_CORRUPT}"
            ) from error
        if num_packets == 0:
            raise VideoReadError(f"{path}: the video stream contains no frames. {_FIX_CORRUPT}")
        time_base = float(stream.time_base) if stream.time_base else 0.0
        avg_fps = float(stream.average_rate or stream.guessed_rate or 0.0)
        width, height, container_format = stream.width, stream.height, container.format.name
        declared = _declared_duration(container, stream)

    if len(pts) == num_packets and time_base > 0:
        pts_array = np.sort(np.asarray(pts, dtype=np.int64))
        timestamps = (pts_array - pts_array[0]).astype(np.float64) * time_base
        keyframe_positions = np.searchsorted(pts_array, np.asarray(keyframe_pts, dtype=np.int64))
        if avg_fps <= 0 and num_packets > 1 and timestamps[-1] > 0:
            avg_fps = (num_packets - 1) / timestamps[-1]
    else:  # no timestamps in the container (e.g. raw streams): assume a constant frame rate
        pts_array = None
        keyframe_positions = np.zeros(1, dtype=np.int64)
    if avg_fps <= 0:
        raise VideoReadError(f"{path}: the video stream declares no frame rate. {_FIX_CORRUPT}")
    if pts_array is None:
        timestamps = np.arange(num_packets, dtype=np.float64) / avg_fps
    if declared is not None:
        seconds, tolerance = declared
        found = float(timestamps[-1]) + 1.0 / avg_fps
        if seconds - found > max(tolerance * seconds, 3.0 / avg_fps):
            raise VideoReadError(
                f"{path}: truncated: the header declares {seconds:.2f}s of video but frames end at {found:.2f}s "
                f"(an interrupted download or copy?). {_FIX_CORRUPT}"
            )
    if len(keyframe_positions) == 0 or keyframe_positions[0] != 0:
        # Frames before the first keyframe can only be decoded from the very start.
        keyframe_positions = np.concatenate([[0], keyframe_positions]).astype(np.int64)
    return FrameIndex(
        path=path,
        container_format=container_format,
        codec=codec,
        width=width,
        height=height,
        avg_fps=avg_fps,
        pts=pts_array,
        time_base=time_base,
        timestamps=timestamps,
        keyframe_positions=keyframe_positions.astype(np.int64),
    )


def _declared_duration(container: av.container.InputContainer, stream: av.VideoStream) -> tuple[float, float] | None:
    """The duration the header promises for the video, and the relative shortfall that still counts as complete.

    A stream's own duration (MP4, MPEG-TS) is exact; a container's (Matroska, AVI) also covers the other streams,
    whose audio may legitimately outlast the video, so it is trusted loosely unless video is the only stream.
    """
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base), 0.05
    if container.duration:
        tolerance = 0.05 if len(container.streams) == 1 else 0.25
        return container.duration / av.time_base, tolerance
    return None
