"""Write a tiny checkpoint in upstream's LLaVA-NeXT `llava_qwen` layout (config.json + safetensors + tokenizer)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import Qwen2Config, Qwen2ForCausalLM, SiglipVisionConfig, SiglipVisionModel

from modeling_prolongvid.tiny_checkpoint import build_tiny_tokenizer

VISION = {
    "hidden_size": 24,
    "intermediate_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 28,
    "patch_size": 7,
    "vision_use_head": False,
}


def write_upstream_checkpoint(
    directory: Path, seed: int = 0, fixed_patch_length: int = 3, vocab_padding: int = 6
) -> Path:
    """A random tiny ProLongVid in upstream layout; the tower is described by `directory / "vision.json"`.

    The embedding has `vocab_padding` rows past the tokenizer, as the released checkpoints (152,064 rows for Qwen2.5's
    151,665 tokens): with 2 or more, `<image>` / `<video>` fit without a resize; with 0 the converter must grow it.
    Like upstream's, config.json records no frame count.
    """
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = build_tiny_tokenizer(media_tokens=False)
    text = Qwen2Config(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        vocab_size=len(tokenizer) + vocab_padding, max_position_embeddings=4096, rope_theta=1_000_000.0,
    )  # fmt: skip
    language_model = Qwen2ForCausalLM(text)
    tower = SiglipVisionModel(SiglipVisionConfig(**VISION))
    state_dict = {key: value.clone() for key, value in language_model.state_dict().items()}
    state_dict.update({f"model.vision_tower.vision_tower.vision_model.{k}": v for k, v in tower.state_dict().items()})
    state_dict["model.mm_projector.0.weight"] = torch.randn(32, VISION["hidden_size"]) * 0.1
    state_dict["model.mm_projector.0.bias"] = torch.randn(32) * 0.1
    state_dict["model.mm_projector.2.weight"] = torch.randn(32, 32) * 0.1
    state_dict["model.mm_projector.2.bias"] = torch.randn(32) * 0.1
    state_dict["model.image_newline"] = torch.randn(32)
    state_dict["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.rand(4)
    half = len(state_dict) // 2
    keys = sorted(state_dict)
    save_file({k: state_dict[k].contiguous() for k in keys[:half]}, directory / "model-00001-of-00002.safetensors")
    save_file({k: state_dict[k].contiguous() for k in keys[half:]}, directory / "model-00002-of-00002.safetensors")

    config = {
        **{k: v for k, v in text.to_dict().items() if k != "rope_parameters"},
        "rope_theta": 1_000_000.0,
        "architectures": ["LlavaQwenForCausalLM"],
        "model_type": "llava",
        "mm_vision_tower": "tiny-siglip",
        "mm_projector_type": "mlp2x_gelu",
        "mm_hidden_size": VISION["hidden_size"],
        "mm_vision_select_layer": -2,
        "mm_spatial_pool_mode": "bilinear",
        "mm_fixed_patch_length": fixed_patch_length,
        "mm_newline_position": "grid",
        "mm_patch_merge_type": "spatial_unpad",
        "image_aspect_ratio": "anyres_max_9",
        "image_grid_pinpoints": "(1x1),...,(2x2)",
    }
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    (directory / "vision.json").write_text(json.dumps(VISION))
    tokenizer.save_pretrained(directory)
    return directory
