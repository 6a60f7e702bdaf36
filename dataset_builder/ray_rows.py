"""The rows of the Ray annotation stream (``dataset_builder.ray_engine``): frames as ``.npy`` bytes, and each video's
input row (its :class:`~dataset_builder.videos.VideoItem` fields, its earlier local record, whether it is cached).

Example:
    >>> import numpy as np
    >>> from_bytes(to_bytes(np.arange(6, dtype=np.uint8).reshape(2, 3))).tolist()
    [[0, 1, 2], [3, 4, 5]]
    >>> row = input_rows([VideoItem("v1", "/videos/v1.mp4", "local", "v1.mp4")], {}, {"v1"})[0]
    >>> video_item(row), row["frame_cached"]
    (VideoItem(video_id='v1', path='/videos/v1.mp4', source='local', relative='v1.mp4'), True)
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from .videos import VideoItem


def to_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def from_bytes(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def video_item(row: dict[str, Any]) -> VideoItem:
    return VideoItem(row["video_id"], row["path"], row["source"], row["relative"])


def input_rows(items: list[VideoItem], local_records: dict[str, dict], cached_videos: set[str]) -> list[dict]:
    """The stream's input: each video with its local record of an earlier run (by id; the decode task checks that
    its key still matches) and whether the frame cache holds it."""
    return [
        {
            "video_id": item.video_id,
            "path": item.path,
            "source": item.source,
            "relative": item.relative,
            "cached_local": json.dumps(local_records[item.video_id]) if item.video_id in local_records else "",
            "frame_cached": item.video_id in cached_videos,
        }
        for item in items
    ]
