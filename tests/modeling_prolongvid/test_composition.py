"""The model package's factories: `ProLongVidProcessor.from_config` and `compose_prolongvid` (LLM + vision tower)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    Qwen2ForCausalLM,
    SiglipVisionConfig,
    SiglipVisionModel,
)

from modeling_prolongvid import ProLongVidProcessor
from modeling_prolongvid.composition import compose_prolongvid
from modeling_prolongvid.conversion import convert_config
from modeling_prolongvid.tiny_checkpoint import build_tiny_tokenizer
from tests.modeling_prolongvid.test_convert import UPSTREAM_7B_CONFIG


def test_processor_from_the_released_7b_config():
    tokenizer = build_tiny_tokenizer()
    image_id, video_id = (tokenizer.convert_tokens_to_ids(token) for token in ("<image>", "<video>"))
    config = convert_config(UPSTREAM_7B_CONFIG, None, image_token_id=image_id, video_token_id=video_id, num_frames=128)
    processor = ProLongVidProcessor.from_config(config, tokenizer)
    tiles = [(rows, cols) for rows in range(1, 7) for cols in range(1, 7)]  # upstream's (1x1),...,(6x6)
    assert processor.image_processor.image_grid_pinpoints == [[384 * rows, 384 * cols] for rows, cols in tiles]
    assert processor.num_image_tokens == 27 * 27  # so400m: 384 px / patch 14
    assert processor.image_processor.size == processor.video_processor.size == {"height": 384, "width": 384}
    assert processor.image_processor.crop_size == {"height": 384, "width": 384}
    assert processor.video_processor.num_frames == 128 and processor.vision_aspect_ratio == "anyres_max_9"
    assert processor.num_video_tokens(num_frames=2) == 2 * 12 * (12 + 1)


def test_processor_from_config_refuses_a_tokenizer_of_other_ids():
    tokenizer = build_tiny_tokenizer()
    config = convert_config(UPSTREAM_7B_CONFIG, None, image_token_id=1, video_token_id=2, num_frames=128)
    with pytest.raises(ValueError, match="add the media tokens"):
        ProLongVidProcessor.from_config(config, tokenizer)


@pytest.fixture(scope="module")
def parts(tiny_checkpoint, tmp_path_factory):
    """A causal LLM and a SigLIP tower holding the tiny checkpoint's weights, saved apart; the tower has one more
    (random) encoder layer and a head, as a released SigLIP has layer 27 and a head that upstream deletes."""
    directory = tmp_path_factory.mktemp("parts")
    model = AutoModelForImageTextToText.from_pretrained(tiny_checkpoint, dtype=torch.float32)
    llm = Qwen2ForCausalLM(model.config.text_config)
    llm.model.load_state_dict(model.model.language_model.state_dict())
    llm.lm_head.load_state_dict(model.lm_head.state_dict())
    llm.save_pretrained(directory / "llm")
    AutoProcessor.from_pretrained(tiny_checkpoint).tokenizer.save_pretrained(directory / "llm")
    tower_config = model.config.vision_config.to_dict()
    tower_config.update(num_hidden_layers=model.config.vision_config.num_hidden_layers + 1, vision_use_head=True)
    torch.manual_seed(1)
    vision = SiglipVisionModel(SiglipVisionConfig(**tower_config))
    missing, unexpected = vision.load_state_dict(model.model.vision_tower.state_dict(), strict=False)
    assert not unexpected and all(key.startswith(("head.", "encoder.layers.2.")) for key in missing)
    vision.save_pretrained(directory / "vision")
    return model, directory


def test_compose_joins_llm_and_vision_tower(parts):
    reference, directory = parts
    model, processor = compose_prolongvid(
        directory / "llm", directory / "vision", pooled_grid_size=2, image_grid_max=2
    )
    assert model.state_dict().keys() == reference.state_dict().keys()
    for name, tensor in reference.state_dict().items():
        if "projector" not in name and "image_newline" not in name:  # the new connector starts fresh
            assert torch.equal(model.state_dict()[name], tensor), name
    assert model.config.vision_config.num_hidden_layers == reference.config.vision_config.num_hidden_layers
    assert model.config.image_grid_pinpoints == [[24, 24], [24, 48], [48, 24], [48, 48]]
    assert (model.config.num_frames, processor.video_processor.num_frames) == (32, 32)

    messages = [
        {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What happens?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A ball rolls."}]},
    ]
    prompt = processor.apply_chat_template(messages)
    video = np.random.default_rng(0).integers(0, 256, (3, 30, 40, 3), dtype=np.uint8)
    batch = processor(text=prompt, videos=[video], return_tensors="pt")
    assert int((batch["input_ids"] == model.config.video_token_id).sum()) == 3 * 2 * (2 + 1)
    assert torch.isfinite(model(**batch, labels=batch["input_ids"]).loss)


def test_composed_vision_features_are_upstreams_layer(parts):
    """Upstream (`mm_vision_select_layer -2`) feeds the projector the output of the tower's layer before last,
    without the post-layernorm: the full tower's `hidden_states[-2]`. Measured on the projector's input."""
    _, directory = parts
    model, _ = compose_prolongvid(directory / "llm", directory / "vision", pooled_grid_size=2, image_grid_max=2)
    full_tower = SiglipVisionModel.from_pretrained(directory / "vision", dtype=torch.float32).eval()
    frames = torch.randn(1, 3, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    seen = []
    model.model.multi_modal_projector.register_forward_hook(lambda module, args, output: seen.append(args[0]))
    with torch.no_grad():
        model.eval().model.get_video_features(pixel_values_videos=frames)
        hidden = full_tower(frames[0], output_hidden_states=True).hidden_states  # embeddings + one per layer
    assert len(hidden) == 4 and seen[0].shape == hidden[-2].shape == (3, 9, 32)
    torch.testing.assert_close(seen[0], hidden[-2], rtol=0, atol=1e-6)
    assert not torch.allclose(seen[0], hidden[-1], atol=1e-3), "the last layer must not be read"
    assert not torch.allclose(seen[0], full_tower.post_layernorm(hidden[-2]), atol=1e-3)


def test_composed_config_has_the_converted_shape(parts):
    """A 27-layer so400m composes into the converter's 26-layer preset: the composed config reads its tower the way a
    converted checkpoint's config does (last hidden state, no head, strategy full)."""
    _, directory = parts
    model, _ = compose_prolongvid(directory / "llm", directory / "vision", pooled_grid_size=2, image_grid_max=2)
    converted = convert_config(UPSTREAM_7B_CONFIG, None, image_token_id=1, video_token_id=2, num_frames=128)
    assert converted.vision_config.num_hidden_layers == 27 - 1
    for config in (model.config, converted):
        assert (config.vision_feature_layer, config.vision_feature_select_strategy) == (-1, "full")
        assert config.vision_config.vision_use_head is False
    assert model.config.vision_config.num_hidden_layers == 3 - 1
    assert "head.probe" not in {key.removeprefix("model.vision_tower.") for key in model.state_dict()}

    whole, _ = compose_prolongvid(
        directory / "llm", directory / "vision", pooled_grid_size=2, image_grid_max=2, vision_select_layer=-1
    )  # the kit's former choice, still available
    assert whole.config.vision_config.num_hidden_layers == 3
    with pytest.raises(ValueError, match="selects no layer"):
        compose_prolongvid(directory / "llm", directory / "vision", vision_select_layer=-4)
