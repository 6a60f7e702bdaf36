"""An independent reference of upstream ProLongVid's video forward, used to prove conversions.

It reproduces the semantics of the LLaVA-NeXT `llava_qwen` fork directly on an upstream-layout state dict, without
the key table or the HF ProLongVid classes: the SigLIP tower's last hidden state (upstream deletes layer 27 and keeps
no head), the `mlp2x_gelu` projector as plain matrix products, `get_2dPool` (bilinear resize of the 27 x 27 grid to
the fixed patch length), `add_token_per_grid` (a newline after every pooled row) and the splice of the features at
upstream's `IMAGE_TOKEN_INDEX = -200` marker, then the Qwen2 language model.

Example:

```python
>>> reference = UpstreamReference(state_dict, text_config, vision_config, pooled_grid_size=12)  # doctest: +SKIP
>>> logits = reference.logits(input_ids_with_marker, frames)  # (1, seq, vocab)  # doctest: +SKIP

```
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedConfig, Qwen2ForCausalLM, SiglipVisionModel

IMAGE_TOKEN_INDEX = -200
UPSTREAM_VISION_PREFIX = "model.vision_tower.vision_tower.vision_model."


class UpstreamReference:
    """Upstream's video path on raw upstream weights. Frames: `(T, 3, H, W)` preprocessed pixels."""

    def __init__(
        self,
        state_dict: dict[str, torch.Tensor],
        text_config: PreTrainedConfig,
        vision_config: PreTrainedConfig,
        pooled_grid_size: int = 12,
        pool_mode: str = "bilinear",
    ):
        self.state_dict = state_dict
        self.pooled_grid_size = pooled_grid_size
        self.pool_mode = pool_mode
        self.vision_tower = SiglipVisionModel(vision_config).eval()
        vision_weights = {}
        for key, value in state_dict.items():
            name = key[len(UPSTREAM_VISION_PREFIX) :]
            if not key.startswith(UPSTREAM_VISION_PREFIX) or name.startswith("head."):
                continue
            if name.startswith("encoder.layers.") and int(name.split(".")[2]) >= vision_config.num_hidden_layers:
                continue
            vision_weights[name] = value
        self.vision_tower.load_state_dict(vision_weights, strict=True)
        self.language_model = Qwen2ForCausalLM(text_config).eval()
        text_weights = {
            key: value
            for key, value in state_dict.items()
            if (key.startswith("model.") or key.startswith("lm_head."))
            and not key.startswith(("model.vision_tower.", "model.mm_projector.", "model.image_newline"))
            and not key.endswith("rotary_emb.inv_freq")
        }
        missing, unexpected = self.language_model.load_state_dict(text_weights, strict=False)
        if unexpected or [key for key in missing if key != "lm_head.weight"]:
            raise ValueError(f"upstream language model weights do not fit: missing {missing}, unexpected {unexpected}")
        if "lm_head.weight" in missing:
            self.language_model.tie_weights()

    def projector(self, features: torch.Tensor) -> torch.Tensor:
        weights = self.state_dict
        hidden = features @ weights["model.mm_projector.0.weight"].T + weights["model.mm_projector.0.bias"]
        hidden = nn.functional.gelu(hidden)
        return hidden @ weights["model.mm_projector.2.weight"].T + weights["model.mm_projector.2.bias"]

    def get_2d_pool(self, features: torch.Tensor) -> torch.Tensor:
        num_frames, num_tokens, dim = features.shape
        side = int(num_tokens**0.5)
        grid = features.view(num_frames, side, side, dim).permute(0, 3, 1, 2).contiguous()
        size = [self.pooled_grid_size, self.pooled_grid_size]
        if self.pool_mode == "bilinear":
            grid = nn.functional.interpolate(grid, size=size, mode="bilinear")
        elif self.pool_mode == "average":
            grid = nn.functional.adaptive_avg_pool2d(grid, size)
        else:
            grid = nn.functional.adaptive_max_pool2d(grid, size)
        return grid.permute(0, 2, 3, 1).reshape(num_frames, -1, dim)

    def add_token_per_grid(self, features: torch.Tensor) -> torch.Tensor:
        num_frames, num_tokens, dim = features.shape
        side = int(num_tokens**0.5)
        features = features.view(num_frames, 1, side, side, -1).permute(4, 0, 2, 1, 3).contiguous()
        features = features.flatten(1, 2).flatten(2, 3)
        newline = self.state_dict["model.image_newline"][:, None, None].expand(*features.shape[:-1], 1)
        features = torch.cat((features, newline.to(features.dtype)), dim=-1)
        return features.flatten(1, 2).transpose(0, 1)

    @torch.no_grad()
    def video_features(self, frames: torch.Tensor) -> torch.Tensor:
        """`(T, 3, H, W)` -> `(T * G * (G + 1), hidden)` embeddings, in upstream's order."""
        hidden = self.vision_tower(frames, output_hidden_states=True).hidden_states[-1]
        return self.add_token_per_grid(self.get_2d_pool(self.projector(hidden)))

    @torch.no_grad()
    def logits(self, input_ids: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """`input_ids (seq,)` holding one `IMAGE_TOKEN_INDEX` marker where the video goes -> `(1, L, vocab)`."""
        (marker,) = (input_ids == IMAGE_TOKEN_INDEX).nonzero(as_tuple=True)[0].tolist()
        embed = self.language_model.get_input_embeddings()
        inputs_embeds = torch.cat(
            (embed(input_ids[:marker]), self.video_features(frames), embed(input_ids[marker + 1 :])), dim=0
        )
        return self.language_model(inputs_embeds=inputs_embeds[None]).logits


def max_logit_difference(
    converted_dir, upstream_state_dict: dict[str, torch.Tensor], config, num_frames: int = 4, seed: int = 0
) -> float:
    """Max |Δlogit| in float32 between the converted checkpoint and this reference on a synthetic video prompt.

    Logits are compared over upstream's vocabulary (rows added for `<image>` / `<video>` have no upstream twin).
    """
    from .modeling_prolongvid import ProLongVidForConditionalGeneration
    from .processing_prolongvid import ProLongVidProcessor

    if config.video_newline_position != "grid":
        raise NotImplementedError("the upstream reference covers ProLongVid's 'grid' newline position only")
    model = ProLongVidForConditionalGeneration.from_pretrained(converted_dir, dtype=torch.float32).eval()
    processor = ProLongVidProcessor.from_pretrained(converted_dir)
    upstream = {key: value.float() for key, value in upstream_state_dict.items()}
    upstream_vocab = upstream["model.embed_tokens.weight"].shape[0]
    text_config = config.text_config.__class__(**{**config.text_config.to_dict(), "vocab_size": upstream_vocab})
    reference = UpstreamReference(
        upstream, text_config, config.vision_config, config.pooled_grid_size, config.video_pooling_mode
    )

    generator = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (num_frames, 48, 64, 3), generator=generator, dtype=torch.uint8).numpy()
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Describe the video."}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    batch = processor(text=prompt, videos=[frames], return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits[..., :upstream_vocab]

    input_ids = batch["input_ids"][0]
    is_video = input_ids == config.video_token_id
    first = int(is_video.nonzero()[0])
    marked_ids = torch.cat(
        (input_ids[:first], torch.tensor([IMAGE_TOKEN_INDEX]), input_ids[first:][~is_video[first:]])
    )
    reference_logits = reference.logits(marked_ids, batch["pixel_values_videos"][0])
    return (logits - reference_logits).abs().max().item()
