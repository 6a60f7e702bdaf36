"""Video reading for ProLongVid: sampled, resized RGB frames and their timestamps.

Example:
    >>> from processing import load_video, probe_video, VideoReadError
    >>> frames, timestamps = load_video("clip.mp4", num_frames=64, size=384)  # doctest: +SKIP
    >>> frames.shape  # (T, H, W, 3) uint8 RGB  # doctest: +SKIP
    (64, 384, 384, 3)
"""

from .errors import VideoReadError
from .video_reader import SampledVideo, VideoInfo, load_video, probe_video, read_video

__all__ = ["SampledVideo", "VideoInfo", "VideoReadError", "load_video", "probe_video", "read_video"]
