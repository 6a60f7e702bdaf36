"""A fresh ProLongVid from its parts: a causal LLM joined to a SigLIP vision tower by a new (random) projector.

This is how the first ProLongVid checkpoint of a training pipeline is born (the recipes' `image_alignment` stage
then trains the projector). The language model and the tower keep their weights; the processor is the config's own
(`ProLongVidProcessor.from_config`).

Like upstream (`mm_vision_select_layer -2`: it deletes the tower's last encoder layer and its head and reads the new
last layer's output, before the post-layernorm), the composed tower keeps the layers up to `vision_select_layer` and
the config reads its last hidden state (`vision_feature_layer=-1`, strategy `full`): a 27-layer SigLIP-so400m becomes
the 26-layer tower of the converter's preset (`convert_prolongvid_weights_to_hf.VISION_PRESETS`).

Example (a tiny LLM and tower saved on the spot):

```python
>>> import tempfile
>>> from pathlib import Path
>>> from transformers import Qwen2Config, Qwen2ForCausalLM, SiglipVisionConfig, SiglipVisionModel
>>> from modeling_prolongvid.tiny_checkpoint import build_tiny_tokenizer
>>> parts = Path(tempfile.mkdtemp())
>>> tokenizer = build_tiny_tokenizer(media_tokens=False)
>>> llm = Qwen2ForCausalLM(Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
...                                    num_attention_heads=4, num_key_value_heads=2, vocab_size=len(tokenizer)))
>>> llm.save_pretrained(parts / "llm"); _ = tokenizer.save_pretrained(parts / "llm")
>>> tower = SiglipVisionModel(SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
...                                              num_attention_heads=2, image_size=24, patch_size=8))
>>> tower.save_pretrained(parts / "vision")
>>> model, processor = compose_prolongvid(parts / "llm", parts / "vision", pooled_grid_size=2, image_grid_max=2)
>>> model.config.num_video_tokens(num_frames=1), processor.num_video_tokens(num_frames=1)  # 2 * (2 + 1)
(6, 6)
>>> model.config.video_token_id == processor.video_token_id == processor.tokenizer.convert_tokens_to_ids("<video>")
True
>>> model.config.vision_config.num_hidden_layers, model.config.vision_feature_layer  # layer 2 of 3, read last
(2, -1)

```
"""

from __future__ import annotations

import re
from pathlib import Path

from .configuration_prolongvid import ProLongVidConfig
from .modeling_prolongvid import ProLongVidForConditionalGeneration, set_generation_defaults
from .processing_prolongvid import ProLongVidProcessor, grid_pinpoints


def compose_prolongvid(
    llm_path: str | Path,
    vision_tower_path: str | Path,
    pooled_grid_size: int = 12,
    image_grid_max: int = 6,
    num_frames: int = 32,
    vision_select_layer: int = -2,
) -> tuple[ProLongVidForConditionalGeneration, ProLongVidProcessor]:
    """Join the causal LLM at `llm_path` and the SigLIP tower at `vision_tower_path` into a ProLongVid model.

    Args:
        llm_path: a causal LM checkpoint (e.g. the context-extended Qwen2.5) with its tokenizer.
        vision_tower_path: a `SiglipVisionModel` checkpoint; its head is dropped.
        pooled_grid_size: side of the pooled per-frame video grid.
        image_grid_max: anyres pinpoints of up to `image_grid_max x image_grid_max` tiles.
        num_frames: the config's default frames per video.
        vision_select_layer: the tower's hidden state the features come from, as upstream's `mm_vision_select_layer`
            counts it (-1: the last layer; -2: the one before, upstream's choice). The layers after it and the
            head are dropped, so the composed config reads its tower's last hidden state, like a converted one.

    Returns:
        `(model, processor)` in float32; the projector and `image_newline` are random, the tokenizer gains `<image>` /
        `<video>` if it lacks them (the embeddings grow to match).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer, SiglipVisionModel

    llm = AutoModelForCausalLM.from_pretrained(llm_path, dtype="float32")
    vision = SiglipVisionModel.from_pretrained(vision_tower_path, dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(llm_path)
    missing = [token for token in ("<image>", "<video>") if token not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    vision_config = vision.config
    num_layers = vision_config.num_hidden_layers + 1 + vision_select_layer
    if not 1 <= num_layers <= vision_config.num_hidden_layers:
        raise ValueError(
            f"vision_select_layer={vision_select_layer} selects no layer of the {vision_config.num_hidden_layers}-layer "
            f"tower at {vision_tower_path}; use -1 (last layer) ... -{vision_config.num_hidden_layers}."
        )
    vision_config.num_hidden_layers = num_layers
    vision_config.vision_use_head = False
    config = ProLongVidConfig(
        vision_config=vision_config,
        text_config=llm.config,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=grid_pinpoints(vision_config.image_size, max_grid=(image_grid_max, image_grid_max)),
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        pooled_grid_size=pooled_grid_size,
        num_frames=num_frames,
    )
    processor = ProLongVidProcessor.from_config(config, tokenizer)
    model = ProLongVidForConditionalGeneration(config)
    model.model.language_model.load_state_dict(llm.model.state_dict())
    model.lm_head.load_state_dict(llm.lm_head.state_dict())
    kept = {
        key: tensor
        for key, tensor in vision.state_dict().items()
        if not key.startswith("head.") and _encoder_layer(key) < num_layers
    }
    model.model.vision_tower.load_state_dict(kept, strict=True)
    if len(tokenizer) > model.config.text_config.vocab_size:
        model.resize_token_embeddings(len(tokenizer))
    set_generation_defaults(model, tokenizer)  # never generate placeholders or padding rows past the tokenizer
    return model, processor


def _encoder_layer(key: str) -> int:
    """The encoder layer a `SiglipVisionModel` state-dict key belongs to; -1 for embeddings and norms."""
    match = re.match(r"(?:vision_model\.)?encoder\.layers\.(\d+)\.", key)
    return int(match.group(1)) if match else -1


__all__ = ["compose_prolongvid"]
