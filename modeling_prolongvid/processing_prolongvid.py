"""Processor of ProLongVid: tokenizer + image processor + video processor, owning placeholder expansion."""

from __future__ import annotations

from transformers import LlavaOnevisionProcessor

from .chat_template import CHAT_TEMPLATE
from .configuration_prolongvid import VIDEO_NEWLINE_POSITIONS, count_video_tokens


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


__all__ = ["ProLongVidProcessor"]
