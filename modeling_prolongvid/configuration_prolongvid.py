"""Configuration of ProLongVid: LLaVA-OneVision's architecture with a fixed-grid video path."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import LlavaOnevisionConfig

VIDEO_POOLING_MODES = ("bilinear", "average", "max")
VIDEO_NEWLINE_POSITIONS = ("grid", "frame", "one_token", "none")


def count_video_tokens(num_frames: int, pooled_grid_size: int, newline_position: str) -> int:
    """Embeddings (= placeholder tokens) of one video: the single formula the processor and the model share.

    >>> count_video_tokens(32, 12, "grid")
    4992
    """
    per_frame = pooled_grid_size * pooled_grid_size
    if newline_position == "grid":
        return num_frames * (per_frame + pooled_grid_size)
    if newline_position == "frame":
        return num_frames * (per_frame + 1)
    return num_frames * per_frame + (1 if newline_position == "one_token" else 0)


@strict
class ProLongVidConfig(LlavaOnevisionConfig):
    r"""
    Configuration of [`ProLongVidForConditionalGeneration`]. Everything not listed here is inherited from
    [`LlavaOnevisionConfig`] (vision/text sub-configs, anyres image tiling, projector).

    Each video frame is encoded by the vision tower into a `P x P` grid (27 x 27 for SigLIP so400m at 384 px),
    projected, pooled to a fixed `pooled_grid_size x pooled_grid_size` grid and, with the default `"grid"` newline
    placement, followed by the learned `image_newline` after every pooled row: `G * (G + 1)` embeddings per frame
    (12 * 13 = 156 for the released checkpoints).

    Args:
        pooled_grid_size (`int`, defaults to 12):
            Side of the pooled per-frame grid (upstream `mm_fixed_patch_length`).
        video_pooling_mode (`str`, defaults to `"bilinear"`):
            How the frame grid is reduced to `pooled_grid_size`: `"bilinear"` interpolation (released checkpoints),
            or adaptive `"average"` / `"max"` pooling for ablations.
        video_newline_position (`str`, defaults to `"grid"`):
            Where `image_newline` goes in a video: after every pooled row (`"grid"`), after every frame (`"frame"`),
            once after the whole video (`"one_token"`), or nowhere (`"none"`).
        num_frames (`int`, *optional*, defaults to 128):
            Frames sampled uniformly per video when the caller gives neither a frame count nor an fps.
        fps (`float`, *optional*):
            Default sampling rate in frames per second (upstream samples every `round(video_fps / fps)`-th frame);
            mutually exclusive with `num_frames` at call time.
        max_frames (`int`, defaults to 256):
            Upper bound of frames per video (the longest context the model was evaluated at).

    Example:

    ```python
    >>> from transformers import Qwen2Config, SiglipVisionConfig
    >>> from modeling_prolongvid import ProLongVidConfig, ProLongVidForConditionalGeneration
    >>> vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
    ...                             image_size=16, patch_size=8, vision_use_head=False)
    >>> text = Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
    ...                    num_key_value_heads=2, vocab_size=128)
    >>> config = ProLongVidConfig(vision_config=vision, text_config=text, image_token_index=1, video_token_index=2,
    ...                           pooled_grid_size=2, image_grid_pinpoints=[[16, 16], [16, 32]])
    >>> config.num_video_tokens(num_frames=4)
    24
    >>> model = ProLongVidForConditionalGeneration(config)

    ```
    """

    model_type = "prolongvid"

    image_token_index: int = 151665
    video_token_index: int = 151666
    pooled_grid_size: int = 12
    video_pooling_mode: str = "bilinear"
    video_newline_position: str = "grid"
    num_frames: int | None = 128
    fps: float | int | None = None
    max_frames: int = 256

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.video_pooling_mode not in VIDEO_POOLING_MODES:
            raise ValueError(
                f"video_pooling_mode={self.video_pooling_mode!r} is not supported: use one of {VIDEO_POOLING_MODES}"
            )
        if self.video_newline_position not in VIDEO_NEWLINE_POSITIONS:
            raise ValueError(
                f"video_newline_position={self.video_newline_position!r} is not supported: "
                f"use one of {VIDEO_NEWLINE_POSITIONS}"
            )
        if self.pooled_grid_size < 1:
            raise ValueError(f"pooled_grid_size must be >= 1, got {self.pooled_grid_size}")
        if self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")
        if self.num_frames is not None and not 1 <= self.num_frames <= self.max_frames:
            raise ValueError(f"num_frames={self.num_frames} must lie in [1, max_frames={self.max_frames}]")
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")

    def num_video_tokens(self, num_frames: int) -> int:
        """Embeddings (= placeholder tokens) of one video of `num_frames` frames."""
        return count_video_tokens(num_frames, self.pooled_grid_size, self.video_newline_position)


__all__ = ["ProLongVidConfig", "count_video_tokens"]
