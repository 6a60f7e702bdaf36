"""The converter: key table, config mapping, special tokens, and logit parity with the upstream reference."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from modeling_prolongvid.convert_prolongvid_weights_to_hf import (
    add_media_tokens,
    convert_config,
    convert_state_dict,
    expand_grid_pinpoints,
    main,
)
from modeling_prolongvid.tiny_checkpoint import build_tiny_tokenizer
from tests.modeling_prolongvid.upstream_checkpoint import write_upstream_checkpoint

UPSTREAM_7B_CONFIG = {
    "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
    "num_key_value_heads": 4, "vocab_size": 152064, "max_position_embeddings": 32768, "rope_theta": 1_000_000.0,
    "rms_norm_eps": 1e-6, "tie_word_embeddings": False, "mm_vision_tower": "google/siglip-so400m-patch14-384",
    "mm_projector_type": "mlp2x_gelu", "mm_hidden_size": 1152, "mm_vision_select_layer": -2,
    "mm_spatial_pool_mode": "bilinear", "mm_fixed_patch_length": 12, "mm_newline_position": "grid",
    "mm_patch_merge_type": "spatial_unpad", "image_aspect_ratio": "anyres_max_9",
    "image_grid_pinpoints": "(1x1),...,(6x6)", "frames_upbound": 128,
}  # fmt: skip


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    upstream = write_upstream_checkpoint(tmp_path_factory.mktemp("upstream"))
    output = tmp_path_factory.mktemp("converted")
    main(["--input-dir", str(upstream), "--output-dir", str(output), "--vision-config", str(upstream / "vision.json"),
          "--dtype", "float32", "--verify"])  # fmt: skip
    return upstream, output


def test_converted_checkpoint_matches_upstream_reference(converted, capsys):
    from modeling_prolongvid.convert_prolongvid_weights_to_hf import load_upstream_state_dict
    from modeling_prolongvid.upstream_reference import max_logit_difference

    upstream, output = converted
    config = AutoModelForImageTextToText.from_pretrained(output).config
    assert max_logit_difference(output, load_upstream_state_dict(upstream), config) <= 1e-4
    assert "against the upstream reference" in (output / "README.md").read_text()


def test_reference_detects_a_wrong_conversion(converted):
    """The parity check can fail: a swapped projector layer breaks it."""
    from modeling_prolongvid.convert_prolongvid_weights_to_hf import load_upstream_state_dict
    from modeling_prolongvid.upstream_reference import max_logit_difference

    upstream, output = converted
    config = AutoModelForImageTextToText.from_pretrained(output).config
    weights = load_upstream_state_dict(upstream)
    weights["model.image_newline"] = weights["model.image_newline"] + 1.0
    assert max_logit_difference(output, weights, config) > 1e-3


def test_converted_checkpoint_loads_and_keeps_fields(converted):
    upstream, output = converted
    model = AutoModelForImageTextToText.from_pretrained(output)
    processor = AutoProcessor.from_pretrained(output)
    upstream_config = json.loads((upstream / "config.json").read_text())
    assert model.config.text_config.rope_parameters["rope_theta"] == upstream_config["rope_theta"]
    assert model.config.text_config.max_position_embeddings == upstream_config["max_position_embeddings"]
    assert model.config.pooled_grid_size == 3 and model.config.video_newline_position == "grid"
    assert model.config.num_frames == 32
    assert processor.pooled_grid_size == 3 and processor.video_processor.size["height"] == 28
    assert (
        model.config.video_token_id == processor.video_token_id == processor.tokenizer.convert_tokens_to_ids("<video>")
    )
    assert (output / "chat_template.jinja").exists() and (output / "modeling_prolongvid.py").exists()
    assert not any("inv_freq" in key for key in model.state_dict())


def test_media_tokens_do_not_collide_with_qwen_special_tokens():
    tokenizer = build_tiny_tokenizer(media_tokens=False)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|object_ref_start|>", "<|object_ref_end|>"]})
    taken = {tokenizer.convert_tokens_to_ids(t) for t in ("<|object_ref_start|>", "<|object_ref_end|>")}
    before = len(tokenizer)
    image_id, video_id = add_media_tokens(tokenizer)
    assert {image_id, video_id}.isdisjoint(taken) and image_id != video_id
    assert {image_id, video_id} == {before, before + 1}


def test_config_mapping_of_the_released_7b():
    config = convert_config(UPSTREAM_7B_CONFIG, None, image_token_id=151665, video_token_id=151666)
    assert config.vision_config.num_hidden_layers == 26 and config.vision_config.vision_use_head is False
    assert config.vision_feature_select_strategy == "full" and config.vision_feature_layer == -1
    assert (config.pooled_grid_size, config.video_pooling_mode, config.video_newline_position) == (
        12,
        "bilinear",
        "grid",
    )
    assert config.num_video_tokens(1) == 156
    assert len(config.image_grid_pinpoints) == 36 and [2304, 2304] in config.image_grid_pinpoints
    assert config.text_config.rope_parameters["rope_theta"] == 1_000_000.0
    assert config.text_config.vocab_size == 152064  # 151667 tokens fit: no resize


@pytest.mark.parametrize(
    ("field", "value"),
    [("mm_vision_tower", "openai/clip-vit-large"), ("mm_projector_type", "linear"), ("mm_newline_position", "row")],
)
def test_config_mapping_rejects_unknown_upstream_settings(field, value):
    with pytest.raises(ValueError, match=field.split("_", 1)[1].split("_")[0]):
        convert_config({**UPSTREAM_7B_CONFIG, field: value}, None, 1, 2)


def test_key_table_rejects_unknown_keys_and_drops_rotary():
    weights = {"model.norm.weight": torch.ones(2), "model.layers.0.self_attn.rotary_emb.inv_freq": torch.ones(2)}
    assert list(convert_state_dict(weights, num_vision_layers=26)) == ["model.language_model.norm.weight"]
    with pytest.raises(KeyError, match="model.some_adapter.weight"):
        convert_state_dict({"model.some_adapter.weight": torch.ones(1)}, num_vision_layers=26)


def test_grid_pinpoints_range_expansion():
    assert expand_grid_pinpoints("(1x1),...,(2x2)", 384) == [[384, 384], [384, 768], [768, 384], [768, 768]]
    assert expand_grid_pinpoints([[384, 768]], 384) == [[384, 768]]
