"""Video processor of ProLongVid: upstream's frame sampling and SigLIP preprocessing on `BaseVideoProcessor`."""

from __future__ import annotations

import numpy as np
from transformers.image_utils import PILImageResampling
from transformers.processing_utils import VideosKwargs
from transformers.video_processing_utils import BaseVideoProcessor
from transformers.video_utils import VideoMetadata, load_video

from .frame_sampling import sample_frame_indices

SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)


class ProLongVidVideoProcessorKwargs(VideosKwargs, total=False):
    r"""
    max_frames (`int`, *optional*, defaults to 256):
        Upper bound of sampled frames; with `fps` sampling, more candidates than this switch to uniform sampling.
    """

    max_frames: int


class ProLongVidVideoProcessor(BaseVideoProcessor):
    r"""
    Resizes every frame to 384x384 (bicubic, no aspect preservation, as upstream), rescales by 1/255 and normalises
    with mean = std = 0.5. Output: `pixel_values_videos` of shape `(batch, frames, 3, 384, 384)`.

    Frames are usually sampled by the reader (`processing.load_video`), so `do_sample_frames` defaults to False.
    With `do_sample_frames=True` (e.g. for a path, decoded here with PyAV) frames are chosen with upstream's rules:
    `num_frames` uniform, or every `round(video_fps / fps)`-th frame bounded by `max_frames`.

    Example:

    ```python
    >>> import numpy as np
    >>> from modeling_prolongvid import ProLongVidVideoProcessor
    >>> video = np.zeros((40, 64, 64, 3), dtype=np.uint8)
    >>> out = ProLongVidVideoProcessor()(video, do_sample_frames=True, num_frames=8, return_tensors="pt")
    >>> tuple(out["pixel_values_videos"].shape)
    (1, 8, 3, 384, 384)

    ```
    """

    resample = PILImageResampling.BICUBIC
    image_mean = SIGLIP_MEAN
    image_std = SIGLIP_STD
    size = {"height": 384, "width": 384}
    rescale_factor = 1 / 255
    default_to_square = False
    do_resize = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True
    do_sample_frames = False
    num_frames = None
    fps = None
    max_frames = 256
    valid_kwargs = ProLongVidVideoProcessorKwargs
    model_input_names = ["pixel_values_videos"]

    def sample_frames(
        self,
        metadata: VideoMetadata,
        num_frames: int | None = None,
        fps: float | None = None,
        max_frames: int | None = None,
        **kwargs,
    ) -> np.ndarray:
        """Indices of the frames to keep, by upstream's rules (see `frame_sampling.sample_frame_indices`)."""
        if num_frames is None and fps is None:
            num_frames, fps = self.num_frames, self.fps
        if num_frames is None and fps is None:
            raise ValueError("do_sample_frames=True needs `num_frames` or `fps` (none given, none configured)")
        return sample_frame_indices(
            metadata.total_num_frames,
            avg_fps=metadata.fps,
            num_frames=num_frames,
            fps=fps,
            max_frames=max_frames if max_frames is not None else self.max_frames,
        )

    def fetch_videos(self, video_url_or_urls, sample_indices_fn=None):
        """Decode paths/URLs with PyAV (a kit dependency) instead of torchcodec, which may be absent."""
        if isinstance(video_url_or_urls, list):
            return list(zip(*[self.fetch_videos(video, sample_indices_fn) for video in video_url_or_urls]))
        return load_video(video_url_or_urls, backend="pyav", sample_indices_fn=sample_indices_fn)


__all__ = ["ProLongVidVideoProcessor"]
