"""ProLongVid: LLaVA-OneVision with upstream's fixed-grid video path.

Only the video path differs from [`LlavaOnevisionModel`]: every frame's projected `P x P` feature grid is pooled to a
fixed `G x G` grid and `image_newline` is inserted according to `config.video_newline_position` (after every pooled
row for the released checkpoints), giving `G * (G + 1)` embeddings per frame. Images, the projector, the language
model, generation and the loss are inherited unchanged. `from_pretrained` names the file when a weight shard cannot be
read (`checkpoint_files.py`); `save_pretrained` maps both `AutoModelForImageTextToText` and `AutoModel` in `auto_map`.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import LlavaOnevisionForConditionalGeneration, LlavaOnevisionModel
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.utils.generic import can_return_tuple, merge_with_config_defaults
from transformers.utils.output_capturing import select_hidden_states

from .checkpoint_files import CheckpointFileErrorsMixin
from .configuration_prolongvid import ProLongVidConfig


class ProLongVidModel(CheckpointFileErrorsMixin, LlavaOnevisionModel):
    config_class = ProLongVidConfig

    @merge_with_config_defaults
    @can_return_tuple
    @select_hidden_states("vision_feature_layer")
    def get_video_features(
        self,
        pixel_values_videos: torch.Tensor,
        vision_feature_layer: int | list[int] | None = None,
        vision_feature_select_strategy: str | None = None,
        **kwargs,
    ) -> tuple | BaseModelOutputWithPooling:
        r"""
        Encode videos into the embeddings that replace their `<video>` placeholders.

        Args:
            pixel_values_videos (`torch.Tensor` of shape `(batch, frames, 3, height, width)`):
                Preprocessed frames; every video of the batch has the same number of frames.

        Returns:
            `BaseModelOutputWithPooling` whose `pooler_output` has shape
            `(batch, config.num_video_tokens(frames), text_hidden_size)`.
        """
        batch_size, frames, channels, height, width = pixel_values_videos.shape
        vision_outputs = self.vision_tower(
            pixel_values_videos.reshape(batch_size * frames, channels, height, width), return_dict=True, **kwargs
        )
        if isinstance(vision_feature_layer, int):
            selected = vision_outputs.hidden_states[vision_feature_layer]
        else:
            selected = torch.cat([vision_outputs.hidden_states[layer] for layer in vision_feature_layer], dim=-1)
        if vision_feature_select_strategy == "default":
            selected = selected[:, 1:]
        pooled = self.pool_frame_features(self.multi_modal_projector(selected))
        vision_outputs.pooler_output = self.add_video_newlines(pooled.reshape(batch_size, frames, *pooled.shape[1:]))
        return vision_outputs

    def pool_frame_features(self, frame_features: torch.Tensor) -> torch.Tensor:
        """Pool `(frames, P*P, dim)` projected features to the fixed grid: `(frames, G, G, dim)`."""
        num_frames, num_patches, dim = frame_features.shape
        side = self.config.vision_config.image_size // self.config.vision_config.patch_size
        if side * side != num_patches:
            raise ValueError(
                f"expected {side}x{side}={side * side} patches per frame from the vision tower, got {num_patches}: "
                "frames must be resized to vision_config.image_size by the video processor"
            )
        grid = frame_features.reshape(num_frames, side, side, dim).permute(0, 3, 1, 2)
        target = (self.config.pooled_grid_size, self.config.pooled_grid_size)
        if self.config.video_pooling_mode == "bilinear":
            pooled = nn.functional.interpolate(grid, size=target, mode="bilinear")
        elif self.config.video_pooling_mode == "average":
            pooled = nn.functional.adaptive_avg_pool2d(grid, target)
        else:
            pooled = nn.functional.adaptive_max_pool2d(grid, target)
        return pooled.permute(0, 2, 3, 1)

    def add_video_newlines(self, pooled: torch.Tensor) -> torch.Tensor:
        """Flatten `(batch, frames, G, G, dim)` into `(batch, num_video_tokens, dim)`, each video's newlines placed."""
        batch_size, num_frames, rows, cols, dim = pooled.shape
        newline = self.image_newline.to(pooled.dtype)
        position = self.config.video_newline_position
        if position == "grid":
            pooled = torch.cat((pooled, newline.expand(batch_size, num_frames, rows, 1, dim)), dim=3)
        elif position == "frame":
            pooled = pooled.reshape(batch_size, num_frames, rows * cols, dim)
            pooled = torch.cat((pooled, newline.expand(batch_size, num_frames, 1, dim)), dim=2)
        flat = pooled.reshape(batch_size, -1, dim)
        if position == "one_token":
            flat = torch.cat((flat, newline.expand(batch_size, 1, dim)), dim=1)
        return flat

    def get_placeholder_mask(self, input_ids, inputs_embeds, image_features=None, video_features=None):
        """Like LLaVA-OneVision's, but a count mismatch raises a `ValueError` that says how to fix it."""
        for name, features, token_id in (
            ("image", image_features, self.config.image_token_id),
            ("video", video_features, self.config.video_token_id),
        ):
            if features is None:
                continue
            if input_ids is not None:
                num_placeholders = int((input_ids == token_id).sum())
            else:
                token_embedding = self.get_input_embeddings()(torch.tensor(token_id, device=inputs_embeds.device))
                num_placeholders = int((inputs_embeds == token_embedding).all(-1).sum())
            num_features = features.numel() // inputs_embeds.shape[-1]
            if num_placeholders != num_features:
                raise ValueError(
                    f"{name} placeholder tokens ({num_placeholders}) do not match the {name} features the model "
                    f"produced ({num_features}). Build inputs with ProLongVidProcessor so that each <{name}> is "
                    "expanded for this config (pooled_grid_size, video_newline_position), and do not truncate "
                    "sequences inside placeholder runs."
                )
        return super().get_placeholder_mask(input_ids, inputs_embeds, image_features, video_features)


class ProLongVidForConditionalGeneration(CheckpointFileErrorsMixin, LlavaOnevisionForConditionalGeneration):
    r"""
    ProLongVid for video/image-conditioned generation.

    Example:

    ```python
    >>> from transformers import AutoModelForImageTextToText, AutoProcessor
    >>> from modeling_prolongvid.tiny_checkpoint import build_tiny_checkpoint
    >>> from processing import load_video
    >>> path = build_tiny_checkpoint("/tmp/prolongvid-tiny")
    >>> model = AutoModelForImageTextToText.from_pretrained(path)
    >>> processor = AutoProcessor.from_pretrained(path)
    >>> messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Describe it."}]}]
    >>> prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    >>> frames, timestamps = load_video("clip.mp4", num_frames=8)  # doctest: +SKIP
    >>> inputs = processor(text=prompt, videos=[frames], return_tensors="pt")  # doctest: +SKIP
    >>> processor.decode(model.generate(**inputs, max_new_tokens=20)[0])  # doctest: +SKIP

    ```
    """

    config_class = ProLongVidConfig

    def __init__(self, config: ProLongVidConfig):
        # Skip LlavaOnevisionForConditionalGeneration.__init__: it would build a LLaVA-OneVision model to discard.
        super(LlavaOnevisionForConditionalGeneration, self).__init__(config)
        self.model = ProLongVidModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`; for remote code it also maps `AutoModel` to the inner `ProLongVidModel`
        in `config.json`'s `auto_map` (transformers writes the saved class's entry only), so that
        `AutoModel.from_pretrained(path, trust_remote_code=True)` loads where the kit is not installed."""
        if self._auto_class is not None:
            auto_map = self.config.auto_map if hasattr(self.config, "auto_map") else {}
            inner = type(self.model)
            self.config.auto_map = {**auto_map, "AutoModel": f"{inner.__module__.rsplit('.', 1)[-1]}.{inner.__name__}"}
        return super().save_pretrained(save_directory, *args, **kwargs)


def set_generation_defaults(model: ProLongVidForConditionalGeneration, tokenizer) -> None:
    """Generation settings every ProLongVid checkpoint saves: stop at `<|im_end|>`, pad with the tokenizer's pad token,
    and suppress the ids no text can hold, so that greedy (or sampled) decoding never emits a token upstream cannot:
    the `<image>` / `<video>` placeholders and the embedding rows past the tokenizer's vocabulary (the released
    checkpoints pad Qwen2.5's 151,665 tokens to 152,064 rows). `generate` applies `suppress_tokens` in every decoding
    mode.

    >>> from modeling_prolongvid.tiny_checkpoint import build_tiny_config, build_tiny_tokenizer
    >>> tokenizer = build_tiny_tokenizer()
    >>> model = ProLongVidForConditionalGeneration(build_tiny_config(tokenizer))
    >>> set_generation_defaults(model, tokenizer)
    >>> model.generation_config.suppress_tokens == [model.config.image_token_id, model.config.video_token_id]
    True
    """
    config = model.config
    padding_rows = range(len(tokenizer), config.text_config.vocab_size)
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.suppress_tokens = sorted({config.image_token_id, config.video_token_id, *padding_rows})


__all__ = ["ProLongVidModel", "ProLongVidForConditionalGeneration", "set_generation_defaults"]
