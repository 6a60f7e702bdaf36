r"""An independent reference of upstream ProLongVid's video path, used to prove conversions (`--verify`).

It reproduces the LLaVA-NeXT `llava_qwen` fork from raw upstream-layout weights, the kit's processors, chat template
and key table untouched:

- pixels as upstream's `SigLipImageProcessor`: a direct PIL `BICUBIC` resize to the tower size, rescale by 1/255
  (in float64, stored as float32), then `(x - 0.5) / 0.5` (`siglip_pixels`);
- the prompt as upstream's `qwen_1_5` conversation (`conv_qwen`, ChatML) holding `<image>\n` + the question, as
  lmms-eval's `llava_onevision` wrapper builds it (`qwen_1_5_prompt`), tokenized with the tokenizer directly, chunk by
  chunk around `<image>`, with upstream's `IMAGE_TOKEN_INDEX = -200` marker between (`tokenizer_image_token`);
- the forward: the SigLIP tower's last hidden state (upstream deletes layer 27 and keeps no head), the `mlp2x_gelu`
  projector as plain matrix products, `get_2dPool` (bilinear resize of the 27 x 27 grid to the fixed patch length),
  `add_token_per_grid` (a newline after every pooled row), the features spliced in at the marker as
  `prepare_inputs_labels_for_multimodal` does, then the Qwen2 language model (`UpstreamReference`).

Example (`verify_conversion` runs this against a converted checkpoint and its processor):

```python
>>> reference = UpstreamReference(state_dict, text_config, vision_config, pooled_grid_size=12)  # doctest: +SKIP
>>> input_ids = tokenizer_image_token(qwen_1_5_prompt("Describe the video."), tokenizer)  # (seq,)  # doctest: +SKIP
>>> logits = reference.logits(input_ids, siglip_pixels(frames, 384))  # (1, L, vocab)  # doctest: +SKIP

```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from transformers import PreTrainedConfig, Qwen2ForCausalLM, SiglipVisionModel

IMAGE_TOKEN_INDEX = -200
UPSTREAM_VISION_PREFIX = "model.vision_tower.vision_tower.vision_model."
SYSTEM_PROMPT = "You are a helpful assistant."
SIGLIP_MEAN = SIGLIP_STD = 0.5


def qwen_1_5_prompt(question: str) -> str:
    """Upstream's `qwen_1_5` conversation for one user turn holding one visual, with the assistant turn open.

    >>> print(qwen_1_5_prompt("Why?"))
    <|im_start|>system
    You are a helpful assistant.<|im_end|>
    <|im_start|>user
    <image>
    Why?<|im_end|>
    <|im_start|>assistant
    <BLANKLINE>
    """
    turns = f"<|im_start|>user\n<image>\n{question}<|im_end|>\n<|im_start|>assistant\n"
    return f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n{turns}"


def tokenizer_image_token(prompt: str, tokenizer) -> torch.Tensor:
    """Upstream's tokenization of a prompt: each chunk between `<image>` markers tokenized alone, one
    `IMAGE_TOKEN_INDEX` between chunks (a leading BOS kept once, Qwen2.5 has none). Returns `(seq,)` int64."""
    chunks = [tokenizer(chunk, add_special_tokens=True)["input_ids"] for chunk in prompt.split("<image>")]
    bos = tokenizer.bos_token_id
    offset = 1 if bos is not None and chunks[0][:1] == [bos] else 0
    input_ids = chunks[0][:offset]
    for index, chunk in enumerate(chunks):
        if index:
            input_ids.append(IMAGE_TOKEN_INDEX)
        input_ids.extend(chunk[offset:])
    return torch.tensor(input_ids, dtype=torch.long)


def siglip_pixels(frames: np.ndarray, size: int) -> torch.Tensor:
    """Upstream's `SigLipImageProcessor` on video frames: uint8 `(T, H, W, 3)` -> float32 `(T, 3, size, size)`."""
    pixels = []
    for frame in frames:
        resized = np.asarray(Image.fromarray(frame).convert("RGB").resize((size, size), Image.BICUBIC))
        rescaled = (resized.astype(np.float64) * (1 / 255)).astype(np.float32)
        mean, std = np.float32(SIGLIP_MEAN), np.float32(SIGLIP_STD)
        pixels.append(((rescaled - mean) / std).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(pixels))


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


@dataclass
class Verification:
    """Outcome of `verify_conversion`, float32 max |Δ| on a prompt of `num_tokens` tokens:

    - `max_logit_diff`: the kit (processor + converted model) against upstream (reference pixels, prompt, forward),
      over upstream's vocabulary: what a user of the converted checkpoint gets;
    - `max_pixel_diff`: the kit's `pixel_values_videos` against `siglip_pixels`;
    - `max_model_logit_diff`: the converted model fed the reference's pixels against the reference: the conversion
      alone (0 when the weights and the forward agree), whatever the preprocessing.
    """

    max_logit_diff: float
    max_pixel_diff: float
    max_model_logit_diff: float
    num_tokens: int


def upstream_reference_logits(
    reference: UpstreamReference, tokenizer, frames: np.ndarray, question: str, image_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Upstream's whole video path on uint8 `frames (T, H, W, 3)`: `(input_ids (seq,) with the marker,
    pixels (T, 3, S, S), logits (1, L, vocab))`, computed without any of the kit's processors."""
    input_ids = tokenizer_image_token(qwen_1_5_prompt(question), tokenizer)
    pixels = siglip_pixels(frames, image_size)
    return input_ids, pixels, reference.logits(input_ids, pixels)


def synthetic_frames(num_frames: int = 4, height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """Random uint8 frames `(T, H, W, 3)`; a size other than the tower's exercises the resize."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (num_frames, height, width, 3), generator=generator, dtype=torch.uint8).numpy()


def verify_conversion(
    converted_dir: str | Path,
    upstream_state_dict: dict[str, torch.Tensor],
    upstream_tokenizer,
    weights_dtype: torch.dtype | None = None,
    frames: np.ndarray | None = None,
    question: str = "Describe the video.",
) -> Verification:
    """Run the converted checkpoint through the kit (its processor, chat template and model, float32) and upstream's
    path through `UpstreamReference` on the same video and question; compare pixels, prompt and logits.

    Args:
        converted_dir: the converter's output.
        upstream_state_dict: the upstream checkpoint's weights (upstream key names).
        upstream_tokenizer: the upstream checkpoint's own tokenizer (without `<image>` / `<video>`).
        weights_dtype: the dtype the conversion stored; the reference's weights are rounded to it first, so that the
            comparison measures the conversion, not the chosen precision.
        frames: uint8 `(T, H, W, 3)`; default `synthetic_frames()`.

    Raises `ValueError` when the kit's prompt differs from upstream's token layout (naming the first difference).
    """
    from .modeling_prolongvid import ProLongVidForConditionalGeneration
    from .processing_prolongvid import ProLongVidProcessor

    model = ProLongVidForConditionalGeneration.from_pretrained(converted_dir, dtype=torch.float32).eval()
    config = model.config
    if config.video_newline_position != "grid":
        raise NotImplementedError("the upstream reference covers ProLongVid's 'grid' newline position only")
    frames = synthetic_frames() if frames is None else frames

    rounding = weights_dtype or torch.float32
    upstream = {key: value.to(rounding).float() for key, value in upstream_state_dict.items()}
    upstream_vocab = upstream["model.embed_tokens.weight"].shape[0]
    text_config = config.text_config.__class__(**{**config.text_config.to_dict(), "vocab_size": upstream_vocab})
    reference = UpstreamReference(
        upstream, text_config, config.vision_config, config.pooled_grid_size, config.video_pooling_mode
    )
    marked_ids, pixels, reference_logits = upstream_reference_logits(
        reference, upstream_tokenizer, frames, question, config.vision_config.image_size
    )

    processor = ProLongVidProcessor.from_pretrained(converted_dir)
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    batch = processor(text=prompt, videos=[frames], do_sample_frames=False, return_tensors="pt")
    num_features = reference_logits.shape[1] - len(marked_ids) + 1
    check_token_layout(batch["input_ids"][0], marked_ids, num_features, config.video_token_id, processor.tokenizer)
    with torch.no_grad():
        logits = model(**batch).logits[..., :upstream_vocab]
        same_pixels = model(**{**batch, "pixel_values_videos": pixels[None]}).logits[..., :upstream_vocab]
    return Verification(
        max_logit_diff=(logits - reference_logits).abs().max().item(),
        max_pixel_diff=(batch["pixel_values_videos"][0] - pixels).abs().max().item(),
        max_model_logit_diff=(same_pixels - reference_logits).abs().max().item(),
        num_tokens=logits.shape[1],
    )


def check_token_layout(
    kit_ids: torch.Tensor, marked_ids: torch.Tensor, num_features: int, video_token_id: int, tokenizer
) -> None:
    """The kit's `input_ids (L,)` must be upstream's `marked_ids` with the marker expanded into `num_features`
    `<video>` placeholders, one per embedding upstream splices in; `tokenizer` (the kit's) decodes a difference."""
    (marker,) = (marked_ids == IMAGE_TOKEN_INDEX).nonzero(as_tuple=True)[0].tolist()
    placeholders = torch.full((num_features,), video_token_id)
    expected = torch.cat((marked_ids[:marker], placeholders, marked_ids[marker + 1 :]))
    if kit_ids.shape == expected.shape and torch.equal(kit_ids, expected):
        return
    length = min(len(kit_ids), len(expected))
    first = next((i for i in range(length) if kit_ids[i] != expected[i]), length)
    window = slice(max(first - 2, 0), first + 3)
    raise ValueError(
        f"the kit's prompt ({len(kit_ids)} tokens) differs from upstream's qwen_1_5 prompt with the video expanded "
        f"({len(expected)} tokens) at token {first}: kit {tokenizer.decode(kit_ids[window])!r}, upstream "
        f"{tokenizer.decode(expected[window])!r}. Save the processor with ProLongVid's ChatML chat template "
        "(chat_template.py) and the config's pooled_grid_size / video_newline_position."
    )
