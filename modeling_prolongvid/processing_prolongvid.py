"""Processor of ProLongVid: tokenizer + image processor + video processor, owning placeholder expansion."""

from __future__ import annotations

from transformers import LlavaOnevisionProcessor

from .chat_template import CHAT_TEMPLATE
from .configuration_prolongvid import VIDEO_NEWLINE_POSITIONS, ProLongVidConfig, count_video_tokens
from .image_processing_prolongvid import ProLongVidImageProcessor
from .video_processing_prolongvid import ProLongVidVideoProcessor


def grid_pinpoints(tile_size: int, max_grid: tuple[int, int], min_grid: tuple[int, int] = (1, 1)) -> list[list[int]]:
    """Anyres grid pinpoints: `[height, width]` in pixels of every grid of `rows x cols` tiles, `rows` from
    `min_grid[0]` to `max_grid[0]` and `cols` from `min_grid[1]` to `max_grid[1]` (upstream's `"(1x1),...,(6x6)"`).

    >>> grid_pinpoints(384, (2, 2))
    [[384, 384], [384, 768], [768, 384], [768, 768]]
    >>> len(grid_pinpoints(384, (6, 6)))  # the released checkpoints
    36
    """
    (min_rows, min_cols), (max_rows, max_cols) = min_grid, max_grid
    return [
        [tile_size * rows, tile_size * cols]
        for rows in range(min_rows, max_rows + 1)
        for cols in range(min_cols, max_cols + 1)
    ]


def count_tile_tokens(vision_config) -> int:
    """Features of one image tile (before anyres packing): the vision tower's `(image_size // patch_size) ** 2`
    patches, the processor's `num_image_tokens`.

    >>> from transformers import SiglipVisionConfig
    >>> count_tile_tokens(SiglipVisionConfig(image_size=384, patch_size=14))  # SigLIP so400m: 27 x 27
    729
    """
    return (vision_config.image_size // vision_config.patch_size) ** 2


class ProLongVidProcessor(LlavaOnevisionProcessor):
    r"""
    Expands every `<image>` into the anyres feature count (LLaVA-OneVision's rule) and every `<video>` of `T` frames
    into exactly `count_video_tokens(T, pooled_grid_size, video_newline_position)` placeholder tokens, the number of
    embeddings [`ProLongVidForConditionalGeneration`] produces for it. The ChatML chat template (upstream's prompt
    format: default system prompt, media first in the user turn, assistant text wrapped in `{% generation %}`) is
    saved with the processor.

    Args:
        pooled_grid_size (`int`, defaults to 12): must equal the model config's `pooled_grid_size`.
        video_newline_position (`str`, defaults to `"grid"`): must equal the model config's.
        num_image_tokens (`int`, defaults to 729): patches per 384 px tile (27 * 27 for SigLIP so400m).

    Example:

    ```python
    >>> from modeling_prolongvid.tiny_checkpoint import build_tiny_checkpoint
    >>> from transformers import AutoProcessor
    >>> import numpy as np
    >>> processor = AutoProcessor.from_pretrained(build_tiny_checkpoint("/tmp/prolongvid-tiny"))
    >>> messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What happens?"}]}]
    >>> prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    >>> batch = processor(text=prompt, videos=[np.zeros((4, 32, 32, 3), np.uint8)], return_tensors="pt")
    >>> int((batch["input_ids"] == processor.video_token_id).sum())  # 4 frames * 2 * (2 + 1)
    24

    ```
    """

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        video_processor=None,
        num_image_tokens: int = 729,
        vision_feature_select_strategy: str = "full",
        chat_template: str | None = None,
        image_token: str = "<image>",
        video_token: str = "<video>",
        vision_aspect_ratio: str = "anyres_max_9",
        pooled_grid_size: int = 12,
        video_newline_position: str = "grid",
        **kwargs,
    ):
        if video_newline_position not in VIDEO_NEWLINE_POSITIONS:
            raise ValueError(
                f"video_newline_position={video_newline_position!r} is not supported: use one of "
                f"{VIDEO_NEWLINE_POSITIONS} (the same value as the model config)"
            )
        self.pooled_grid_size = pooled_grid_size
        self.video_newline_position = video_newline_position
        super().__init__(
            image_processor=image_processor,
            tokenizer=tokenizer,
            video_processor=video_processor,
            num_image_tokens=num_image_tokens,
            vision_feature_select_strategy=vision_feature_select_strategy,
            chat_template=chat_template if chat_template is not None else CHAT_TEMPLATE,
            image_token=image_token,
            video_token=video_token,
            vision_aspect_ratio=vision_aspect_ratio,
            **kwargs,
        )

    @classmethod
    def from_config(cls, config: ProLongVidConfig, tokenizer, **kwargs) -> ProLongVidProcessor:
        """The processor that belongs to a model `config`: tiles and frames at the vision tower's input size, the
        config's anyres pinpoints and aspect ratio, `<video>` expansion for its pooled grid and newline position,
        and its default frame count. `tokenizer` must hold `<image>` / `<video>` at the config's token ids;
        `kwargs` go to the processor (e.g. `chat_template`).

        >>> from modeling_prolongvid.tiny_checkpoint import build_tiny_config, build_tiny_tokenizer
        >>> tokenizer = build_tiny_tokenizer()
        >>> processor = ProLongVidProcessor.from_config(build_tiny_config(tokenizer, pooled_grid_size=3), tokenizer)
        >>> processor.num_video_tokens(num_frames=2), processor.video_processor.size["height"]  # 2 * 3 * (3 + 1)
        (24, 24)
        """
        for token, token_id in (("<image>", config.image_token_id), ("<video>", config.video_token_id)):
            if tokenizer.convert_tokens_to_ids(token) != token_id:
                raise ValueError(
                    f"The tokenizer maps {token} to {tokenizer.convert_tokens_to_ids(token)} but the config expects "
                    f"{token_id}: add the media tokens to the tokenizer first and build the config from their ids."
                )
        side = config.vision_config.image_size
        size = {"height": side, "width": side}
        return cls(
            image_processor=ProLongVidImageProcessor(
                size=size, crop_size=size, image_grid_pinpoints=config.image_grid_pinpoints
            ),
            tokenizer=tokenizer,
            video_processor=ProLongVidVideoProcessor(
                size=size, num_frames=config.num_frames, fps=config.fps, max_frames=config.max_frames
            ),
            num_image_tokens=count_tile_tokens(config.vision_config),
            vision_aspect_ratio=config.vision_aspect_ratio,
            pooled_grid_size=config.pooled_grid_size,
            video_newline_position=config.video_newline_position,
            **kwargs,
        )

    def num_video_tokens(self, num_frames: int) -> int:
        """Placeholder tokens one `<video>` of `num_frames` frames expands into."""
        return count_video_tokens(num_frames, self.pooled_grid_size, self.video_newline_position)

    def replace_video_token(self, video_inputs: dict, video_idx: int, **kwargs) -> str:
        video = video_inputs["pixel_values_videos"][video_idx]
        num_frames = len(video) if isinstance(video, (list, tuple)) else video.shape[0]
        return self.video_token * self.num_video_tokens(num_frames)

    def _get_num_multimodal_tokens(self, image_sizes=None, video_sizes=None, **kwargs):
        vision_data = super()._get_num_multimodal_tokens(image_sizes=image_sizes, **kwargs)
        if video_sizes is not None:
            vision_data.num_video_tokens = [self.num_video_tokens(frames) for frames, _, _ in video_sizes]
        return vision_data


__all__ = ["ProLongVidProcessor", "count_tile_tokens", "grid_pinpoints"]
