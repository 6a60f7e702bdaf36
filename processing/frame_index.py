"""Open a video with PyAV, validate it, and index its frames by demuxing (decoding only the first frame).

The index is built from the demuxer's packets (a 10-minute 720p file demuxes in well under a second): one entry per
frame in presentation order, with its pts-based timestamp, and the positions of the keyframes. Both decoding backends
share it, so a frame position means the same frame whichever backend decodes it, and the keyframe positions let the
PyAV backend seek only where seeking pays.

Only the first frame is decoded, to learn what FFmpeg itself plays: the display matrix of rotated phone videos
(frames are shown turned, as players show them) and where decodable frames begin (a stream cut inside a GOP, e.g. an
MPEG-TS recording, starts with frames that reference a missing keyframe; FFmpeg drops them, so does the index).

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
from PIL import Image

from .errors import VideoReadError
from .pixels import orientation_from_display_matrix

_FIX_CORRUPT = "Re-download the file or re-encode it, e.g. `ffmpeg -i in.mp4 -c:v libx264 out.mp4`."

# Packets fed to the decoder while looking for the first decodable frame (a cut stream needs up to a GOP before its
# first keyframe); past this the first keyframe is taken as the first frame.
_FIRST_FRAME_PACKET_LIMIT = 600


@dataclass(frozen=True)
class FrameIndex:
    """Every frame of a video stream, in presentation order, found by demuxing (no decoding).

    Attributes:
        path: the file.
        container_format: FFmpeg demuxer name, e.g. ``"mov,mp4,m4a,3gp,3g2,mj2"``, ``"matroska,webm"``, ``"mpegts"``.
        codec: FFmpeg codec name of the video stream, e.g. ``"h264"``, ``"vp9"``.
        width, height: size in pixels of the frames as displayed (after ``orientation``).
        avg_fps: average frame rate (frames per second).
        pts: ``(N,)`` int64 presentation timestamps in ``time_base`` units, ascending; ``None`` when the container
            carries no timestamps (frames are then located by decode order only).
        time_base: seconds per ``pts`` unit.
        timestamps: ``(N,)`` float64 seconds since the first frame (so ``timestamps[0] == 0``).
        keyframe_positions: ``(K,)`` int64 ascending positions (into ``timestamps``) of the keyframes.
        orientation: the PIL transpose from coded to displayed frames (the stream's display matrix), ``None`` when
            frames are shown as coded.
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
    orientation: Image.Transpose | None = None

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
    """Demux ``path`` and return its :class:`FrameIndex`; raise :class:`VideoReadError` if unusable.

    Frames that precede the first frame the decoder outputs (a stream cut inside a GOP) are left out, as FFmpeg leaves
    them out when it plays the file; ``timestamps`` count from the first frame that remains.
    """
    path = os.fspath(path)
    with open_container(path) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        first_frame = _FirstFrame()
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
                first_frame.feed(packet, num_packets)
            first_frame.flush(stream)
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
        if avg_fps <= 0 and num_packets > 1 and pts_array[-1] > pts_array[0]:
            avg_fps = (num_packets - 1) / float((pts_array[-1] - pts_array[0]) * time_base)
    else:  # no timestamps in the container (e.g. raw streams): assume a constant frame rate
        pts_array = None
    if avg_fps <= 0:
        raise VideoReadError(f"{path}: the video stream declares no frame rate. {_FIX_CORRUPT}")
    if declared is not None:
        _check_complete(path, declared, pts_array, time_base, num_packets, avg_fps)

    if pts_array is not None:
        first_pts = first_frame.pts if first_frame.pts is not None else _first_keyframe_pts(keyframe_pts, pts_array)
        pts_array = pts_array[pts_array >= first_pts] if first_pts <= pts_array[-1] else pts_array
        timestamps = (pts_array - pts_array[0]).astype(np.float64) * time_base
        keyframes = np.asarray([p for p in keyframe_pts if p >= pts_array[0]], dtype=np.int64)
        keyframe_positions = np.searchsorted(pts_array, keyframes)
    else:
        timestamps = np.arange(num_packets, dtype=np.float64) / avg_fps
        keyframe_positions = np.zeros(1, dtype=np.int64)
    if len(keyframe_positions) == 0 or keyframe_positions[0] != 0:
        # Frames before the first keyframe can only be decoded from the very start.
        keyframe_positions = np.concatenate([[0], keyframe_positions]).astype(np.int64)
    orientation = first_frame.orientation
    if orientation in _SWAPS_AXES:
        width, height = height, width
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
        orientation=orientation,
    )


_SWAPS_AXES = frozenset(
    {Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270, Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE}
)


class _FirstFrame:
    """Feeds the first packets to the decoder until it outputs a frame: that frame's pts (where playback starts) and
    its display matrix (how a player turns the video)."""

    def __init__(self):
        self.done = False
        self.pts: int | None = None
        self.orientation: Image.Transpose | None = None

    def feed(self, packet: av.Packet, packets_seen: int) -> None:
        if self.done:
            return
        if packets_seen > _FIRST_FRAME_PACKET_LIMIT:
            self.done = True
            return
        try:
            frames = packet.decode()
        except av.FFmpegError:  # a packet that references a missing keyframe: FFmpeg skips it too
            return
        if frames:
            self._found(frames[0])

    def flush(self, stream: av.VideoStream) -> None:
        """Drain the decoder (streams shorter than its delay output their first frame only now)."""
        if self.done:
            return
        try:
            frames = stream.codec_context.decode(None)
        except av.FFmpegError:
            frames = []
        if frames:
            self._found(frames[0])
        self.done = True

    def _found(self, frame: av.VideoFrame) -> None:
        self.done = True
        self.pts = frame.pts
        for side_data in frame.side_data:
            if side_data.type == av.sidedata.sidedata.Type.DISPLAYMATRIX:
                self.orientation = orientation_from_display_matrix(np.frombuffer(bytes(side_data), dtype="<i4"))


def _first_keyframe_pts(keyframe_pts: list[int], pts_array: np.ndarray) -> int:
    return min(keyframe_pts) if keyframe_pts else int(pts_array[0])


def _check_complete(
    path: str,
    declared: tuple[float, float],
    pts_array: np.ndarray | None,
    time_base: float,
    num_packets: int,
    avg_fps: float,
) -> None:
    """Raise when the header promises clearly more video than the packets hold (an interrupted download or copy).

    Headers state either a length (MP4, MPEG-TS) or, for Matroska/WebM, the end of the timeline counted from 0 (a file
    whose timestamps start at 5 s declares 5 s more); the packets must reach one of the two.
    """
    seconds, tolerance = declared
    if pts_array is not None:
        length = float(pts_array[-1] - pts_array[0]) * time_base + 1.0 / avg_fps
        end = float(pts_array[-1]) * time_base + 1.0 / avg_fps
    else:
        length = end = num_packets / avg_fps
    found = max(length, end)
    if seconds - found > max(tolerance * seconds, 3.0 / avg_fps):
        raise VideoReadError(
            f"{path}: truncated: the header declares {seconds:.2f}s of video but frames end at {length:.2f}s "
            f"(an interrupted download or copy?). {_FIX_CORRUPT}"
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
