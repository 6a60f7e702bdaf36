"""The model package's factories: `ProLongVidProcessor.from_config` and `compose_prolongvid` (LLM + vision tower)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, Qwen2ForCausalLM, SiglipVisionModel

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
    """A causal LLM and a SigLIP tower holding the tiny checkpoint's weights, saved apart."""
    directory = tmp_path_factory.mktemp("parts")
    model = AutoModelForImageTextToText.from_pretrained(tiny_checkpoint, dtype=torch.float32)
    llm = Qwen2ForCausalLM(model.config.text_config)
    llm.model.load_state_dict(model.model.language_model.state_dict())
    llm.lm_head.load_state_dict(model.lm_head.state_dict())
    llm.save_pretrained(directory / "llm")
    AutoProcessor.from_pretrained(tiny_checkpoint).tokenizer.save_pretrained(directory / "llm")
    vision = SiglipVisionModel(model.config.vision_config)
    vision.load_state_dict(model.model.vision_tower.state_dict())
    vision.save_pretrained(directory / "vision")
    return model, directory


def test_compose_joins_llm_and_vision_tower(parts):
    reference, directory = parts
    model, processor = compose_prolongvid(
        directory / "llm", directory / "vision", pooled_grid_size=2, image_grid_max=2
    )
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
