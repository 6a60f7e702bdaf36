"""ProLongVid model behaviour on a tiny random checkpoint (ModelTester style: compare behaviours, store no numbers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import LlavaOnevisionForConditionalGeneration

from modeling_prolongvid import ProLongVidConfig, ProLongVidForConditionalGeneration
from modeling_prolongvid.tiny_checkpoint import build_tiny_config, build_tiny_processor


def chat(processor, question: str, media: tuple[str, ...] = ()) -> str:
    content = [{"type": kind} for kind in media] + [{"type": "text", "text": question}]
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)


def test_text_only_forward_and_generate(tiny_model_and_processor):
    model, processor = tiny_model_and_processor
    batch = processor(text=chat(processor, "Hello there"), return_tensors="pt")
    logits = model(**batch).logits
    assert logits.shape == (1, batch["input_ids"].shape[1], model.config.text_config.vocab_size)
    out = model.generate(**batch, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > batch["input_ids"].shape[1]


@pytest.mark.parametrize("media", [("video",), ("image",), ("image", "video")])
def test_multimodal_forward_and_generate(tiny_model_and_processor, random_frames, media):
    model, processor = tiny_model_and_processor
    images = [Image.fromarray(random_frames(1, 40, 60)[0])] if "image" in media else None
    videos = [random_frames(5)] if "video" in media else None
    batch = processor(text=chat(processor, "What is it?", media), images=images, videos=videos, return_tensors="pt")
    if videos:
        assert int((batch["input_ids"] == processor.video_token_id).sum()) == model.config.num_video_tokens(5)
    with torch.no_grad():
        assert torch.isfinite(model(**batch).logits).all()
    out = model.generate(**batch, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == batch["input_ids"].shape[1] + 3 or out[0, -1] == processor.tokenizer.eos_token_id


def test_image_and_video_samples_in_one_batch(tiny_model_and_processor, random_frames):
    """A batch mixing an image sample and a video sample gives each sample the logits it gets alone."""
    model, processor = tiny_model_and_processor
    image = Image.fromarray(random_frames(1, 30, 50)[0])
    video = random_frames(3)
    prompts = [chat(processor, "Describe the picture.", ("image",)), chat(processor, "What happens?", ("video",))]
    batch = processor(text=prompts, images=[image], videos=[video], return_tensors="pt", padding=True)
    alone = [
        processor(text=prompts[0], images=[image], return_tensors="pt"),
        processor(text=prompts[1], videos=[video], return_tensors="pt"),
    ]
    with torch.no_grad():
        batched = model(**batch).logits
        for row, single in enumerate(alone):
            expected = model(**single).logits[0]
            torch.testing.assert_close(batched[row, -expected.shape[0] :], expected, atol=1e-4, rtol=1e-4)


def test_left_padded_batch_equals_each_sample_alone(tiny_model_and_processor, random_frames):
    model, processor = tiny_model_and_processor
    videos = [random_frames(4), random_frames(4)]
    prompts = [chat(processor, "Why?", ("video",)), chat(processor, "What happens at the end of it all?", ("video",))]
    batch = processor(text=prompts, videos=videos, return_tensors="pt", padding=True)
    assert processor.tokenizer.padding_side == "left"
    with torch.no_grad():
        batched = model.generate(**batch, max_new_tokens=5, do_sample=False)[:, batch["input_ids"].shape[1] :]
        for row in range(2):
            single = processor(text=prompts[row], videos=[videos[row]], return_tensors="pt")
            alone = model.generate(**single, max_new_tokens=5, do_sample=False)[:, single["input_ids"].shape[1] :]
            assert batched[row].tolist() == alone[0].tolist()


def test_greedy_generation_with_and_without_cache_agree(tiny_model_and_processor, random_frames):
    model, processor = tiny_model_and_processor
    batch = processor(text=chat(processor, "Tell me.", ("video",)), videos=[random_frames(6)], return_tensors="pt")
    with_cache = model.generate(**batch, max_new_tokens=8, do_sample=False, use_cache=True)
    without_cache = model.generate(**batch, max_new_tokens=8, do_sample=False, use_cache=False)
    assert with_cache.tolist() == without_cache.tolist()


@pytest.mark.parametrize("delta", [-1, 1])
def test_placeholder_feature_mismatch_raises(tiny_model_and_processor, random_frames, delta):
    model, processor = tiny_model_and_processor
    batch = processor(text=chat(processor, "Hm?", ("video",)), videos=[random_frames(2)], return_tensors="pt")
    input_ids = batch["input_ids"].clone()
    video_positions = (input_ids[0] == processor.video_token_id).nonzero()[:, 0]
    if delta < 0:
        input_ids[0, video_positions[0]] = processor.tokenizer.pad_token_id
    else:
        input_ids[0, video_positions[-1] + 1] = processor.video_token_id
    with pytest.raises(ValueError, match=r"video placeholder tokens \(\d+\) do not match"):
        model(input_ids=input_ids, pixel_values_videos=batch["pixel_values_videos"])


def test_image_path_matches_llava_onevision(tiny_model_and_processor, random_frames):
    """Same weights in transformers' LLaVA-OneVision give the same logits for an image prompt (inherited path)."""
    model, processor = tiny_model_and_processor
    reference_config = model.config.to_dict()
    for field in (
        "pooled_grid_size",
        "video_pooling_mode",
        "video_newline_position",
        "num_frames",
        "fps",
        "max_frames",
    ):
        reference_config.pop(field)
    reference_config["model_type"] = "llava_onevision"
    from transformers import LlavaOnevisionConfig

    reference = LlavaOnevisionForConditionalGeneration(LlavaOnevisionConfig(**reference_config)).eval()
    reference.load_state_dict(model.state_dict())
    image = Image.fromarray(random_frames(1, 36, 70)[0])
    batch = processor(text=chat(processor, "What is in the image?", ("image",)), images=[image], return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, reference(**batch).logits)


def upstream_video_embeddings(model, pixel_values_videos: torch.Tensor, grid: int) -> torch.Tensor:
    """Upstream's path written out independently: tower -> projector -> bilinear resize to grid -> newline per row."""
    frames = pixel_values_videos[0]
    hidden = model.model.vision_tower(frames, output_hidden_states=True).hidden_states[-1]
    projector = model.model.multi_modal_projector
    features = projector.linear_2(torch.nn.functional.gelu(projector.linear_1(hidden)))
    side = int(features.shape[1] ** 0.5)
    out = []
    for frame in features:
        square = frame.T.reshape(1, -1, side, side)
        pooled = torch.nn.functional.interpolate(square, size=(grid, grid), mode="bilinear")[0]
        for row in range(grid):
            out.extend(pooled[:, row, col] for col in range(grid))
            out.append(model.model.image_newline)
    return torch.stack(out)


@pytest.mark.parametrize("grid", [2, 5])
def test_video_path_equals_independent_upstream_reimplementation(tmp_path, random_frames, grid):
    processor = build_tiny_processor(pooled_grid_size=grid)
    torch.manual_seed(0)
    model = ProLongVidForConditionalGeneration(build_tiny_config(processor.tokenizer, pooled_grid_size=grid)).eval()
    pixel_values_videos = processor.video_processor(random_frames(3), return_tensors="pt")["pixel_values_videos"]
    with torch.no_grad():
        ours = model.model.get_video_features(pixel_values_videos).pooler_output[0]
        expected = upstream_video_embeddings(model, pixel_values_videos, grid)
    assert ours.shape == (3 * grid * (grid + 1), model.config.text_config.hidden_size)
    torch.testing.assert_close(ours, expected)


@pytest.mark.parametrize("newline", ["grid", "frame", "one_token", "none"])
@pytest.mark.parametrize("pooling", ["bilinear", "average", "max"])
@pytest.mark.parametrize("grid", [1, 3])
def test_processor_count_equals_model_features_for_every_mode(random_frames, newline, pooling, grid):
    processor = build_tiny_processor(pooled_grid_size=grid, video_newline_position=newline)
    config = build_tiny_config(
        processor.tokenizer, pooled_grid_size=grid, video_newline_position=newline, video_pooling_mode=pooling
    )
    model = ProLongVidForConditionalGeneration(config).eval()
    prompt = chat(processor, "Go.", ("video",))
    batch = processor(text=prompt, videos=[random_frames(3)], return_tensors="pt")
    with torch.no_grad():
        features = model.model.get_video_features(batch["pixel_values_videos"]).pooler_output
        model(**batch)
    assert int((batch["input_ids"] == processor.video_token_id).sum()) == features.shape[1]


@pytest.mark.parametrize("newline", ["grid", "frame", "one_token", "none"])
def test_batched_videos_get_each_their_own_newlines(random_frames, newline):
    processor = build_tiny_processor(video_newline_position=newline)
    torch.manual_seed(0)
    config = build_tiny_config(processor.tokenizer, video_newline_position=newline)
    model = ProLongVidForConditionalGeneration(config).eval()
    videos = [processor.video_processor(random_frames(3), return_tensors="pt")["pixel_values_videos"] for _ in "ab"]
    with torch.no_grad():
        batched = model.model.get_video_features(torch.cat(videos)).pooler_output
        alone = [model.model.get_video_features(video).pooler_output[0] for video in videos]
    per_frame = {"grid": 2 * (2 + 1), "frame": 2 * 2 + 1, "one_token": 2 * 2, "none": 2 * 2}[newline]
    assert batched.shape == (2, 3 * per_frame + (newline == "one_token"), config.text_config.hidden_size)
    for index in range(2):
        torch.testing.assert_close(batched[index], alone[index])
        if newline == "one_token":
            torch.testing.assert_close(batched[index, -1], model.model.image_newline.data)


def test_newline_modes_place_image_newline(random_frames):
    processor = build_tiny_processor()
    model = ProLongVidForConditionalGeneration(build_tiny_config(processor.tokenizer, video_newline_position="frame"))
    pixel_values_videos = processor.video_processor(random_frames(2), return_tensors="pt")["pixel_values_videos"]
    with torch.no_grad():
        features = model.model.get_video_features(pixel_values_videos).pooler_output[0]
    per_frame = 2 * 2 + 1
    for frame in range(2):
        torch.testing.assert_close(features[frame * per_frame + per_frame - 1], model.model.image_newline.data)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("video_pooling_mode", "mean", "video_pooling_mode"),
        ("video_newline_position", "row", "video_newline_position"),
        ("pooled_grid_size", 0, "pooled_grid_size"),
        ("num_frames", 300, "num_frames"),
        ("fps", -1.0, "fps"),
    ],
)
def test_config_rejects_invalid_values(field, value, message):
    with pytest.raises(ValueError, match=message):
        ProLongVidConfig(**{field: value})


def test_config_round_trip(tmp_path):
    config = ProLongVidConfig(pooled_grid_size=8, video_newline_position="frame", num_frames=64, fps=0.5)
    config.save_pretrained(tmp_path)
    loaded = ProLongVidConfig.from_pretrained(tmp_path)
    assert (loaded.pooled_grid_size, loaded.video_newline_position, loaded.num_frames, loaded.fps) == (
        8,
        "frame",
        64,
        0.5,
    )
    assert loaded.num_video_tokens(2) == 2 * (8 * 8 + 1)
    assert np.isclose(ProLongVidConfig().num_video_tokens(1), 156)
