"""The converter: key table, config mapping, special tokens, shape checks before writing, push gating, generation
config, and parity with the upstream reference (PIL pixels, upstream's qwen_1_5 prompt, upstream's forward)."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForImageTextToText, AutoProcessor, AutoTokenizer, AutoVideoProcessor

from modeling_prolongvid import (
    ProLongVidImageProcessor,
    ProLongVidProcessor,
    ProLongVidVideoProcessor,
    upstream_reference,
)
from modeling_prolongvid import conversion as converter
from modeling_prolongvid.conversion import (
    ConversionError,
    add_media_tokens,
    convert_config,
    convert_state_dict,
    expand_grid_pinpoints,
    load_upstream_state_dict,
)
from modeling_prolongvid.convert_prolongvid_weights_to_hf import main
from modeling_prolongvid.tiny_checkpoint import build_tiny_tokenizer
from modeling_prolongvid.upstream_reference import (
    IMAGE_TOKEN_INDEX,
    UpstreamReference,
    siglip_pixels,
    synthetic_frames,
    upstream_reference_logits,
    verify_conversion,
)
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
# The kit's processors give upstream's PIL pixels bit for bit, so the end-to-end logits agree to float rounding.
PIXEL_GAP_TOLERANCE = 1e-5


def convert_args(upstream, output, *extra: str) -> list[str]:
    vision = str(upstream / "vision.json")
    return ["--input-dir", str(upstream), "--output-dir", str(output), "--vision-config", vision, "--dtype", "float32",
            *extra]  # fmt: skip


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    upstream = write_upstream_checkpoint(tmp_path_factory.mktemp("upstream"))
    output = tmp_path_factory.mktemp("converted")
    main(convert_args(upstream, output, "--num-frames", "192", "--verify"))
    return upstream, output


@pytest.fixture(scope="module")
def converted_with_resize(tmp_path_factory):
    """An upstream checkpoint whose embedding has no row to spare: `<image>` / `<video>` make it grow."""
    upstream = write_upstream_checkpoint(tmp_path_factory.mktemp("upstream-full"), vocab_padding=0)
    output = tmp_path_factory.mktemp("converted-resized")
    main(convert_args(upstream, output, "--num-frames", "32"))
    return upstream, output


@pytest.fixture
def uploads(monkeypatch):
    """Records Hub calls instead of making them; each upload notes the files present at that moment."""
    calls = []
    monkeypatch.setattr(converter.HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(("create", repo_id)))

    def upload_folder(self, folder_path, repo_id, **kwargs):
        calls.append(("upload", repo_id, sorted(path.name for path in folder_path.iterdir())))

    monkeypatch.setattr(converter.HfApi, "upload_folder", upload_folder)
    return calls


def test_converted_checkpoint_matches_upstream_reference(converted):
    upstream, output = converted
    result = verify_conversion(output, load_upstream_state_dict(upstream), AutoTokenizer.from_pretrained(upstream))
    assert result.max_model_logit_diff == 0.0  # the conversion itself is exact in float32
    assert result.max_logit_diff <= PIXEL_GAP_TOLERANCE
    assert result.max_pixel_diff > 0 or result.max_logit_diff == 0.0  # any remaining gap comes from the pixels
    assert "against the upstream reference" in (output / "README.md").read_text()


def test_reference_never_uses_the_kits_processing(converted, monkeypatch):
    """While the reference runs, every kit processor and the kit's chat template raise; `verify` still completes."""
    upstream, output = converted

    def forbidden(*args, **kwargs):
        raise AssertionError("the upstream reference used the kit's processing")

    kit_entry_points = [
        (ProLongVidProcessor, "__call__"), (ProLongVidProcessor, "apply_chat_template"),
        (ProLongVidVideoProcessor, "__call__"), (ProLongVidVideoProcessor, "preprocess"),
        (ProLongVidImageProcessor, "__call__"), (ProLongVidImageProcessor, "preprocess"),
    ]  # fmt: skip
    reference_function = upstream_reference.upstream_reference_logits
    ran = []

    def guarded_reference(*args, **kwargs):
        with monkeypatch.context() as guard:
            for owner, name in kit_entry_points:
                guard.setattr(owner, name, forbidden)
            ran.append(True)
            return reference_function(*args, **kwargs)

    monkeypatch.setattr(upstream_reference, "upstream_reference_logits", guarded_reference)
    result = verify_conversion(output, load_upstream_state_dict(upstream), AutoTokenizer.from_pretrained(upstream))
    assert ran and result.max_model_logit_diff == 0.0


def test_reference_prompt_is_upstreams_qwen_1_5_conversation(converted):
    """conv_qwen (SeparatorStyle.CHATML): system turn, `<image>\\n` + question, open assistant turn; the tokenizer
    alone, one marker where the video goes."""
    upstream, _ = converted
    tokenizer = AutoTokenizer.from_pretrained(upstream)
    weights = load_upstream_state_dict(upstream)
    config = AutoModelForImageTextToText.from_pretrained(converted[1]).config
    upstream_vocab = weights["model.embed_tokens.weight"].shape[0]
    text_config = config.text_config.__class__(**{**config.text_config.to_dict(), "vocab_size": upstream_vocab})
    reference = UpstreamReference(weights, text_config, config.vision_config, config.pooled_grid_size)
    frames = synthetic_frames(num_frames=2)
    input_ids, pixels, logits = upstream_reference_logits(reference, tokenizer, frames, "What is it?", 28)
    (marker,) = (input_ids == IMAGE_TOKEN_INDEX).nonzero()[:, 0].tolist()
    assert tokenizer.decode(input_ids[:marker]) == "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n" \
                                                   "<|im_start|>user\n"  # fmt: skip
    assert tokenizer.decode(input_ids[marker + 1 :]) == "\nWhat is it?<|im_end|>\n<|im_start|>assistant\n"
    assert pixels.shape == (2, 3, 28, 28) and pixels.dtype == torch.float32
    assert logits.shape[1] == len(input_ids) - 1 + 2 * 3 * (3 + 1)  # 2 frames x 3 rows x (3 + newline)


def test_reference_pixels_are_siglips_arithmetic():
    """Direct resize (no crop, aspect not kept), x / 255, then (x - 0.5) / 0.5: checked where the resize is exact."""
    flat = np.full((1, 50, 70, 3), 51, dtype=np.uint8)
    assert torch.allclose(siglip_pixels(flat, 28), torch.full((1, 3, 28, 28), 51 / 127.5 - 1), atol=1e-7)
    native = np.random.default_rng(0).integers(0, 256, (2, 28, 28, 3), dtype=np.uint8)
    expected = torch.from_numpy(native.transpose(0, 3, 1, 2).astype(np.float64) / 127.5 - 1).float()
    assert torch.allclose(siglip_pixels(native, 28), expected, atol=1e-7)


def test_verify_detects_a_wrong_conversion(converted):
    """A perturbed image_newline breaks parity, and the converter refuses it."""
    upstream, output = converted
    weights = load_upstream_state_dict(upstream)
    weights["model.image_newline"] = weights["model.image_newline"] + 1.0
    result = verify_conversion(output, weights, AutoTokenizer.from_pretrained(upstream))
    assert result.max_model_logit_diff > 1e-2
    with pytest.raises(ConversionError, match="identical pixels: a wrong key mapping"):
        converter.check_verification(result, PIXEL_GAP_TOLERANCE, output)


def test_verify_detects_a_prompt_that_differs_from_upstream(converted, tmp_path):
    upstream, output = converted
    changed = tmp_path / "changed-template"
    shutil.copytree(output, changed)
    template = (changed / "chat_template.jinja").read_text()
    (changed / "chat_template.jinja").write_text(template.replace("You are a helpful assistant.", "Be brief."))
    with pytest.raises(ValueError, match="differs from upstream's qwen_1_5 prompt"):
        verify_conversion(changed, load_upstream_state_dict(upstream), AutoTokenizer.from_pretrained(upstream))


def test_converted_checkpoint_loads_and_keeps_fields(converted):
    upstream, output = converted
    model = AutoModelForImageTextToText.from_pretrained(output)
    processor = AutoProcessor.from_pretrained(output)
    upstream_config = json.loads((upstream / "config.json").read_text())
    assert model.config.text_config.rope_parameters["rope_theta"] == upstream_config["rope_theta"]
    assert model.config.text_config.max_position_embeddings == upstream_config["max_position_embeddings"]
    assert model.config.pooled_grid_size == 3 and model.config.video_newline_position == "grid"
    assert processor.pooled_grid_size == 3 and processor.video_processor.size["height"] == 28
    assert model.config.image_grid_pinpoints == [[28, 28], [28, 56], [56, 28], [56, 56]]  # "(1x1),...,(2x2)" tiles
    assert (
        model.config.video_token_id == processor.video_token_id == processor.tokenizer.convert_tokens_to_ids("<video>")
    )
    assert (output / "chat_template.jinja").exists() and (output / "modeling_prolongvid.py").exists()
    assert not any("inv_freq" in key for key in model.state_dict())


def test_num_frames_of_the_stage_is_saved(converted):
    _, output = converted
    assert json.loads((output / "config.json").read_text())["num_frames"] == 192
    assert AutoModelForImageTextToText.from_pretrained(output).config.num_frames == 192
    assert AutoVideoProcessor.from_pretrained(output).num_frames == 192
    assert AutoProcessor.from_pretrained(output).video_processor.num_frames == 192
    assert "default 192 frames" in (output / "README.md").read_text()


def test_num_frames_is_required_and_documented(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    for documented in ("stage 1: 32", "stage 2: 128", "stage 3: 192", "extrapolation: 256"):
        assert documented in help_text
    with pytest.raises(SystemExit) as exit_info:
        main(["--input-dir", str(tmp_path), "--output-dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2 and "--num-frames" in capsys.readouterr().err
    with pytest.raises(ConversionError, match=r"--num-frames 300 must lie in \[1, 256\].*stage 3: 192"):
        convert_config(UPSTREAM_7B_CONFIG, None, 1, 2, num_frames=300)


@pytest.mark.parametrize("fixture", ["converted", "converted_with_resize"])
def test_greedy_decoding_never_emits_placeholders_or_padding_rows(fixture, request):
    """Even when their logits are made the largest, generate() never picks `<image>`, `<video>` or an embedding row
    past the tokenizer; without the saved suppression it would."""
    _, output = request.getfixturevalue(fixture)
    model = AutoModelForImageTextToText.from_pretrained(output).eval()
    processor = AutoProcessor.from_pretrained(output)
    tokenizer, vocab_size = processor.tokenizer, model.config.text_config.vocab_size
    forbidden = [tokenizer.convert_tokens_to_ids("<image>"), tokenizer.convert_tokens_to_ids("<video>")]
    forbidden += range(len(tokenizer), vocab_size)  # rows no token of the tokenizer uses
    assert (len(forbidden) > 2) == (fixture == "converted")
    boost = torch.zeros(vocab_size)
    boost[forbidden] = 1e4 + torch.arange(len(forbidden), dtype=torch.float32)
    model.lm_head.register_forward_hook(lambda module, inputs, logits: logits + boost)
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What happens?"}]}]
    batch = processor(text=processor.apply_chat_template(messages, add_generation_prompt=True),
                      videos=[synthetic_frames(num_frames=2)], return_tensors="pt")  # fmt: skip
    prompt_length = batch["input_ids"].shape[1]
    generated = model.generate(**batch, max_new_tokens=5, do_sample=False)[0, prompt_length:].tolist()
    assert generated and not set(generated) & set(forbidden)
    unsuppressed = model.generate(**batch, max_new_tokens=1, do_sample=False, suppress_tokens=None)
    assert unsuppressed[0, prompt_length].item() == forbidden[-1]


def rewrite_upstream_tensor(upstream, key, change) -> None:
    for shard in sorted(upstream.glob("*.safetensors")):
        tensors = load_file(shard)
        if key in tensors:
            tensors[key] = change(tensors[key]).contiguous()
            save_file(tensors, shard)
            return
    raise AssertionError(f"{key} not in the test checkpoint")


@pytest.mark.parametrize(
    ("upstream_key", "hf_key", "change", "shapes"),
    [
        ("model.mm_projector.0.weight", "model.multi_modal_projector.linear_1.weight", torch.t,
         r"\(32, 24\), got \(24, 32\)"),
        ("model.embed_tokens.weight", "model.language_model.embed_tokens.weight", lambda t: t[:-1],
         r"\(406, 32\), got \(405, 32\)"),
    ],
    ids=["transposed projector", "embedding short by one row"],
)  # fmt: skip
def test_wrong_shapes_stop_the_conversion_before_anything_is_written(
    tmp_path, uploads, capsys, upstream_key, hf_key, change, shapes
):
    upstream = write_upstream_checkpoint(tmp_path / "upstream")
    rewrite_upstream_tensor(upstream, upstream_key, change)
    output = tmp_path / "converted"
    with pytest.raises(SystemExit) as exit_info:
        main(convert_args(upstream, output, "--num-frames", "32", "--push-to-hub", "someone/prolongvid"))
    message = str(exit_info.value.code)
    assert message.startswith("error: 1 weights do not fit the config (nothing was written)")
    assert hf_key in message and upstream_key in message
    assert re.search(rf"expected shape {shapes}", message)
    assert not output.exists() and uploads == []


def test_push_happens_only_after_every_check(tmp_path, uploads, monkeypatch):
    upstream = write_upstream_checkpoint(tmp_path / "upstream")
    main(convert_args(upstream, tmp_path / "good", "--num-frames", "32", "--push-to-hub", "someone/good"))
    assert [call[:2] for call in uploads] == [("create", "someone/good"), ("upload", "someone/good")]
    assert {"config.json", "model.safetensors", "generation_config.json", "README.md"} <= set(uploads[1][2])

    uploads.clear()
    renaming = converter.convert_state_dict

    def off_by_one_newline(*args, **kwargs):  # a conversion bug that only --verify can see
        state_dict = renaming(*args, **kwargs)
        state_dict["model.image_newline"] = state_dict["model.image_newline"] + 1.0
        return state_dict

    monkeypatch.setattr(converter, "convert_state_dict", off_by_one_newline)
    with pytest.raises(SystemExit) as exit_info:
        main(
            convert_args(upstream, tmp_path / "bad", "--num-frames", "32", "--verify", "--push-to-hub", "someone/bad")
        )
    assert "verification failed" in str(exit_info.value.code) and "nothing was pushed" in str(exit_info.value.code)
    assert uploads == []


def test_media_tokens_do_not_collide_with_qwen_special_tokens():
    tokenizer = build_tiny_tokenizer(media_tokens=False)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|object_ref_start|>", "<|object_ref_end|>"]})
    taken = {tokenizer.convert_tokens_to_ids(t) for t in ("<|object_ref_start|>", "<|object_ref_end|>")}
    before = len(tokenizer)
    image_id, video_id = add_media_tokens(tokenizer)
    assert {image_id, video_id}.isdisjoint(taken) and image_id != video_id
    assert {image_id, video_id} == {before, before + 1}


def test_config_mapping_of_the_released_7b():
    config = convert_config(UPSTREAM_7B_CONFIG, None, image_token_id=151665, video_token_id=151666, num_frames=192)
    assert config.vision_config.num_hidden_layers == 26 and config.vision_config.vision_use_head is False
    assert config.vision_feature_select_strategy == "full" and config.vision_feature_layer == -1
    assert (config.pooled_grid_size, config.video_pooling_mode, config.video_newline_position) == (
        12,
        "bilinear",
        "grid",
    )
    assert config.num_video_tokens(1) == 156 and config.num_frames == 192
    assert len(config.image_grid_pinpoints) == 36 and [2304, 2304] in config.image_grid_pinpoints
    assert config.text_config.rope_parameters["rope_theta"] == 1_000_000.0
    assert config.text_config.vocab_size == 152064  # 151667 tokens fit: no resize


@pytest.mark.parametrize(
    ("field", "value"),
    [("mm_vision_tower", "openai/clip-vit-large"), ("mm_projector_type", "linear"), ("mm_newline_position", "row")],
)
def test_config_mapping_rejects_unknown_upstream_settings(field, value):
    with pytest.raises(ConversionError, match=field.split("_", 1)[1].split("_")[0]):
        convert_config({**UPSTREAM_7B_CONFIG, field: value}, None, 1, 2, num_frames=32)


def test_key_table_rejects_unknown_keys_and_drops_rotary():
    weights = {"model.norm.weight": torch.ones(2), "model.layers.0.self_attn.rotary_emb.inv_freq": torch.ones(2)}
    assert list(convert_state_dict(weights, num_vision_layers=26)) == ["model.language_model.norm.weight"]
    with pytest.raises(ConversionError, match="model.some_adapter.weight"):
        convert_state_dict({"model.some_adapter.weight": torch.ones(1)}, num_vision_layers=26)


def test_grid_pinpoints_range_expansion():
    assert expand_grid_pinpoints("(1x1),...,(2x2)", 384) == [[384, 384], [384, 768], [768, 384], [768, 768]]
    assert expand_grid_pinpoints([[384, 768]], 384) == [[384, 768]]
