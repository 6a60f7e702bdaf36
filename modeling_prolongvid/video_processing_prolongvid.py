"""Video processor of ProLongVid: upstream's frame sampling and SigLIP preprocessing (PIL) on `BaseVideoProcessor`."""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image
from transformers.image_processing_utils import BatchFeature
from transformers.image_transforms import normalize, rescale
from transformers.image_utils import ChannelDimension, PILImageResampling, SizeDict
from transformers.processing_utils import VideosKwargs
from transformers.video_processing_utils import BaseVideoProcessor
from transformers.video_utils import VideoMetadata, load_video, make_batched_videos

from .frame_sampling import sample_frame_indices

SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)


class ProLongVidVideoProcessorKwargs(VideosKwargs, total=False):
    r"""
    max_frames (`int`, *optional*, defaults to 256):
        The most frames a video may have. With `fps` sampling, more candidates than this switch to `max_frames`
        uniform frames (`llava_vid`'s "1 fps capped at N"); an explicit `num_frames` above it, or a video of more
        frames given without sampling, is an error.
    """

    max_frames: int


class ProLongVidVideoProcessor(BaseVideoProcessor):
    r"""
    Upstream's video preprocessing: every frame resized straight to 384x384 with `PIL.Image.BICUBIC` (no aspect
    preservation), rescaled by 1/255 (float64, then float32) and normalised with mean = std = 0.5, as upstream's
    `SigLipImageProcessor` does, so `pixel_values_videos` equal upstream's bit for bit for frames of any size.
    Output: `pixel_values_videos` of shape `(batch, frames, 3, 384, 384)`.

    Frame sampling (upstream's rules, `frame_sampling.sample_frame_indices`):

    - A video given by path or URL (`{"type": "video", "path": ...}` in `apply_chat_template`, or a pipeline) is
      sampled by default with the processor's own `num_frames` / `fps` / `max_frames`, which a converted checkpoint
      saves from its config: `num_frames=N` is `np.linspace(0, total - 1, N, dtype=int)` over native frames
      (clips shorter than `N` frames get repeated frames, as upstream), `fps=1.0` with `max_frames=N` is 1 fps capped
      at N. Frames are resized with PIL right after decoding, so a long video never sits in memory at full size.
      Override per call with `processor_kwargs={"num_frames": 64}` (a plain `num_frames=64` keyword also works, but
      transformers then warns that processor kwargs belong in `processor_kwargs`).
    - Decoded frames (an array `(T, H, W, 3)` or a list of images) are used as given, e.g. those of
      `processing.load_video`; pass `do_sample_frames=True` to sample them too.
    - `max_frames` bounds every video on every path: more frames than that is an error that names the limit.

    Args:
        num_frames (`int`, *optional*, defaults to 128): frames sampled uniformly from a video given by path.
        fps (`float`, *optional*): sample this many frames per second instead (mutually exclusive with `num_frames`).
        max_frames (`int`, defaults to 256): see [`ProLongVidVideoProcessorKwargs`].
        do_sample_frames (`bool`, *optional*): `None` samples videos given by path only; `True` samples decoded
            frames too; `False` takes every frame (still at most `max_frames`).

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
    do_sample_frames = None
    num_frames = 128
    fps = None
    max_frames = 256
    valid_kwargs = ProLongVidVideoProcessorKwargs
    model_input_names = ["pixel_values_videos"]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.num_frames is not None and self.fps is not None:
            raise ValueError(
                f"num_frames={self.num_frames} and fps={self.fps} are mutually exclusive: set one of them "
                "(num_frames=None to sample by fps)"
            )
        if self.num_frames is not None and self.num_frames > self.max_frames:
            raise ValueError(f"num_frames={self.num_frames} exceeds max_frames={self.max_frames}: lower num_frames")

    def preprocess(self, videos, **kwargs) -> BatchFeature:
        """Resolve the sampling of this call (see the class docstring), read videos given by path, then preprocess.

        Returns a `BatchFeature` with `pixel_values_videos (batch, frames, 3, height, width)`.
        """
        videos = make_batched_videos(_paths_as_strings(videos))
        by_path = isinstance(videos[0], str)
        sample = self._setting(kwargs, "do_sample_frames")
        sample = by_path if sample is None else sample
        num_frames, fps = kwargs.get("num_frames"), kwargs.get("fps")
        if num_frames is not None and fps is not None:
            raise ValueError(f"num_frames={num_frames} and fps={fps} are mutually exclusive: pass one of them")
        if num_frames is None and fps is None and sample:
            num_frames, fps = self.num_frames, self.fps
        max_frames = self._setting(kwargs, "max_frames")
        if not sample:  # every frame, still bounded by max_frames
            num_frames = fps = None
        if by_path:
            size = self._setting(kwargs, "size") if self._setting(kwargs, "do_resize") else None
            videos, metadata = self._read_videos(videos, num_frames, fps, max_frames, size)
            kwargs["video_metadata"], sample = metadata, False
        elif not sample:
            for video in videos:
                sample_frame_indices(len(video), max_frames=max_frames)  # raises past max_frames
        kwargs.update(do_sample_frames=sample, num_frames=num_frames, fps=fps, max_frames=max_frames)
        return super().preprocess(videos, **kwargs)

    def _setting(self, kwargs: dict, name: str):
        """The call's value of a setting, else the processor's own (`None` counts as not given)."""
        value = kwargs.get(name)
        return getattr(self, name) if value is None else value

    def sample_frames(
        self,
        metadata: VideoMetadata,
        num_frames: int | None = None,
        fps: float | None = None,
        max_frames: int | None = None,
        **kwargs,
    ) -> np.ndarray:
        """Indices of the frames to keep, by upstream's rules (see `frame_sampling.sample_frame_indices`); neither
        `num_frames` nor `fps` keeps every frame."""
        return sample_frame_indices(
            metadata.total_num_frames, avg_fps=metadata.fps, num_frames=num_frames, fps=fps, max_frames=max_frames
        )

    def _read_videos(
        self, paths: list[str], num_frames: int | None, fps: float | None, max_frames: int, size
    ) -> tuple[list[np.ndarray], list[VideoMetadata]]:
        """Decode the sampled frames of each file, resized with PIL right after decoding.

        With this kit installed, `processing.read_video` decodes (orientation of rotated phone videos, exact frame
        positions, decord or PyAV); a Hub copy of this file loaded without the kit decodes with transformers' PyAV
        loader and resizes afterwards (same frames and pixels for ordinary files).
        """
        height_width = None if size is None else _height_width(size)
        videos, metadata = [], []
        for path in paths:
            reader = _kit_reader() if "://" not in path else None
            if reader is not None:
                video = reader(path, num_frames=num_frames, fps=fps, max_frames=max_frames, size=height_width)
                videos.append(video.frames)
                metadata.append(
                    VideoMetadata(
                        total_num_frames=video.info.num_frames,
                        fps=video.info.fps,
                        width=video.info.width,
                        height=video.info.height,
                        duration=video.info.duration,
                        video_backend="processing",
                        frames_indices=video.positions.tolist(),
                    )
                )
                continue

            def indices(metadata, **_):
                return sample_frame_indices(
                    metadata.total_num_frames, metadata.fps, num_frames=num_frames, fps=fps, max_frames=max_frames
                )

            frames, video_metadata = load_video(path, backend="pyav", sample_indices_fn=indices)
            videos.append(frames)
            metadata.append(video_metadata)
        return videos, metadata

    def _preprocess(
        self,
        videos: list[torch.Tensor],
        do_resize: bool,
        size: SizeDict,
        resample: PILImageResampling | int | None,
        do_center_crop: bool,
        crop_size: SizeDict,
        do_rescale: bool,
        rescale_factor: float,
        do_normalize: bool,
        image_mean: float | list[float] | None,
        image_std: float | list[float] | None,
        return_tensors: str | None = None,
        **kwargs,
    ) -> BatchFeature:
        """Upstream's per-frame transform: PIL resize, then transformers' numpy `rescale` and `normalize` (the
        functions `SigLipImageProcessor` calls), one frame at a time."""
        if do_center_crop:
            raise ValueError(
                "ProLongVid resizes frames straight to `size` (upstream does not crop): do_center_crop=False"
            )
        resample = PILImageResampling.BICUBIC if resample is None else resample
        processed = []
        for video in videos:
            frames = []
            for frame in video.permute(0, 2, 3, 1).cpu().numpy():
                if do_resize and (frame.shape[0], frame.shape[1]) != (size.height, size.width):
                    frame = np.asarray(Image.fromarray(frame).resize((size.width, size.height), resample))
                frame = frame.transpose(2, 0, 1)
                if do_rescale:
                    frame = rescale(frame, rescale_factor, input_data_format=ChannelDimension.FIRST)
                if do_normalize:
                    frame = normalize(frame, image_mean, image_std, input_data_format=ChannelDimension.FIRST)
                frames.append(frame)
            processed.append(torch.from_numpy(np.stack(frames)))
        return BatchFeature(data={"pixel_values_videos": processed}, tensor_type=return_tensors)


def _paths_as_strings(videos):
    if isinstance(videos, os.PathLike):
        return os.fspath(videos)
    if isinstance(videos, (list, tuple)):
        return [_paths_as_strings(video) for video in videos]
    return videos


def _height_width(size) -> tuple[int, int]:
    if isinstance(size, SizeDict):
        return size.height, size.width
    if isinstance(size, dict):
        return size["height"], size["width"]
    if isinstance(size, int):
        return size, size
    return tuple(size)


def _kit_reader():
    """`processing.read_video` when this kit is installed, else `None` (a Hub copy of this file runs alone)."""
    try:
        from processing import read_video
    except ImportError:
        return None
    return read_video


__all__ = ["ProLongVidVideoProcessor"]
