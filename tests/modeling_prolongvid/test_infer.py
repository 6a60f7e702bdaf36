"""Command-line inference (`python -m modeling_prolongvid.infer`) and the inference service the Space shares."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from modeling_prolongvid.infer import main
from modeling_prolongvid.inference import (
    InputError,
    build_messages,
    load_media,
    load_model,
    max_frames_for_context,
    prepare_inputs,
    stream_generate,
)

REPO = Path(__file__).resolve().parents[2]
SAMPLE_VIDEO = REPO / "space" / "examples" / "sample.mp4"
SAMPLE_IMAGE = REPO / "space" / "examples" / "sample.png"


@pytest.fixture(scope="module")
def model_and_processor(tiny_checkpoint):
    return load_model(str(tiny_checkpoint), device="cpu")


def greedy_reference(model, processor, batch, max_new_tokens: int) -> str:
    """The answer `generate` gives without a streamer, decoded the way the streamer decodes."""
    with torch.inference_mode():
        output = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
    return processor.tokenizer.decode(output[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)


def test_build_messages_puts_media_first_and_keeps_turn_order():
    messages = build_messages("And then?", "video", [("What happens?", "A ball rolls.")])
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == [{"type": "video"}, {"type": "text", "text": "What happens?"}]
    assert messages[1]["content"] == [{"type": "text", "text": "A ball rolls."}]
    assert messages[2]["content"] == [{"type": "text", "text": "And then?"}]
    assert build_messages("Q", "image")[0]["content"][0] == {"type": "image"}


def test_video_stream_concatenates_to_the_greedy_answer(model_and_processor):
    model, processor = model_and_processor
    media = load_media(SAMPLE_VIDEO, model, num_frames=8, max_new_tokens=24)
    assert media.kind == "video" and media.frames.shape[0] == 8 and media.frames.dtype.name == "uint8"
    assert (media.timestamps[1:] > media.timestamps[:-1]).all() and media.timestamps[-1] <= 8.0
    batch = prepare_inputs(processor, build_messages("What happens?", "video"), media, model.device, model.dtype)
    assert batch["pixel_values_videos"].shape[:2] == (1, 8)
    assert int((batch["input_ids"] == processor.video_token_id).sum()) == model.config.num_video_tokens(8)

    pieces = list(stream_generate(model, processor, batch, max_new_tokens=24))
    assert len([piece for piece in pieces if piece]) >= 2, f"expected several streamed pieces, got {pieces!r}"
    assert "".join(pieces) == greedy_reference(model, processor, batch, 24)


def test_image_stream_concatenates_to_the_greedy_answer(model_and_processor):
    model, processor = model_and_processor
    media = load_media(SAMPLE_IMAGE, model, num_frames=8, max_new_tokens=16)
    assert media.kind == "image" and media.image.size == (320, 240)
    batch = prepare_inputs(processor, build_messages("Describe it.", "image"), media, model.device, model.dtype)
    assert "".join(stream_generate(model, processor, batch, 16)) == greedy_reference(model, processor, batch, 16)


def test_bf16_weights_stream_an_answer(tiny_checkpoint):
    """The GPU recipe (bf16 weights, float inputs cast to the model's dtype), exercised on the CPU."""
    model, processor = load_model(str(tiny_checkpoint), device="cpu", dtype=torch.bfloat16)
    assert model.dtype == torch.bfloat16
    media = load_media(SAMPLE_VIDEO, model, num_frames=8, max_new_tokens=8)
    batch = prepare_inputs(processor, build_messages("What happens?", "video"), media, model.device, model.dtype)
    assert batch["pixel_values_videos"].dtype == torch.bfloat16 and batch["input_ids"].dtype == torch.long
    assert "".join(stream_generate(model, processor, batch, 8)).strip()


def test_closing_the_stream_stops_the_generate_thread(model_and_processor):
    model, processor = model_and_processor
    media = load_media(SAMPLE_VIDEO, model, num_frames=8, max_new_tokens=2000)
    batch = prepare_inputs(processor, build_messages("Go on.", "video"), media, model.device, model.dtype)
    forward_calls = []
    hook = model.register_forward_hook(lambda *args: forward_calls.append(1))
    try:
        stream = stream_generate(model, processor, batch, max_new_tokens=2000)
        next(piece for piece in stream if piece)
        stream.close()  # what gradio does when the user presses Stop
    finally:
        hook.remove()
    assert not [thread for thread in threading.enumerate() if thread.name == "prolongvid-generate"]
    assert len(forward_calls) < 200, f"generation ran on for {len(forward_calls)} steps after the stream was closed"


def test_generate_errors_reach_the_consumer_instead_of_hanging(model_and_processor):
    model, processor = model_and_processor
    media = load_media(SAMPLE_VIDEO, model, num_frames=8, max_new_tokens=8)
    batch = prepare_inputs(processor, build_messages("Q", "video"), media, model.device, model.dtype)
    batch["pixel_values_videos"] = batch["pixel_values_videos"][:, :4]  # 8 frames of placeholders, 4 of features
    with pytest.raises(ValueError):
        list(stream_generate(model, processor, batch, 8))


@pytest.mark.parametrize(
    ("content", "suffix", "expected"),
    [
        (b"these are my notes, not a video", ".mp4", "not a readable video"),
        (b"", ".mp4", "empty"),
        (b"\x89PNG but truncated", ".png", "not a readable image"),
    ],
)
def test_unreadable_uploads_raise_input_errors_naming_the_file(
    model_and_processor, tmp_path, content, suffix, expected
):
    model, _ = model_and_processor
    path = tmp_path / f"upload{suffix}"
    path.write_bytes(content)
    with pytest.raises(InputError, match=expected) as error:
        load_media(path, model, num_frames=8, max_new_tokens=8)
    assert f"upload{suffix}" in str(error.value) and str(tmp_path) not in str(error.value)


def test_frame_count_and_length_limits(model_and_processor, tmp_path):
    model, _ = model_and_processor
    with pytest.raises(InputError, match="between 1 and 256"):
        load_media(SAMPLE_VIDEO, model, num_frames=0, max_new_tokens=8)
    with pytest.raises(InputError, match="between 1 and 256"):
        load_media(SAMPLE_VIDEO, model, num_frames=257, max_new_tokens=8)
    with pytest.raises(InputError, match="lasts 8 s; videos up to 5 s"):
        load_media(SAMPLE_VIDEO, model, num_frames=8, max_new_tokens=8, max_video_seconds=5)
    with pytest.raises(InputError, match="does not exist"):
        load_media(tmp_path / "missing.mp4", model, num_frames=8, max_new_tokens=8)


def test_too_many_frames_for_the_context(model_and_processor, monkeypatch):
    model, _ = model_and_processor
    monkeypatch.setattr(model.config.text_config, "max_position_embeddings", 400)
    fitting = max_frames_for_context(model, max_new_tokens=64)
    # The bound is tight: `fitting` frames fit next to the prompt reserve and the answer, one more does not.
    assert model.config.num_video_tokens(fitting) <= 400 - 256 - 64 < model.config.num_video_tokens(fitting + 1)
    load_media(SAMPLE_VIDEO, model, num_frames=fitting, max_new_tokens=64)
    with pytest.raises(InputError, match=f"use at most {fitting} frames"):
        load_media(SAMPLE_VIDEO, model, num_frames=fitting + 1, max_new_tokens=64)


def test_cli_prints_the_same_answer_streamed_or_not(tiny_checkpoint, capsys):
    argv = ["--model", str(tiny_checkpoint), "--video", str(SAMPLE_VIDEO), "--question", "What happens?"]
    argv += ["--frames", "8", "--max-new-tokens", "12", "--device", "cpu"]
    assert main(argv) == 0
    plain = capsys.readouterr().out
    assert main([*argv, "--stream"]) == 0
    streamed = capsys.readouterr().out
    assert plain.strip() and plain == streamed


def test_cli_reports_a_bad_video_without_a_traceback(tiny_checkpoint, tmp_path, capsys):
    fake = tmp_path / "clip.mp4"
    fake.write_text("not a video")
    argv = ["--model", str(tiny_checkpoint), "--video", str(fake), "--question", "What happens?", "--device", "cpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error: clip.mp4: ") and "Traceback" not in err


def test_cli_rejects_an_empty_question(tiny_checkpoint):
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", str(tiny_checkpoint), "--video", str(SAMPLE_VIDEO), "--question", "  "])
    assert exit_info.value.code == 2


def test_python_dash_m_entry_point(tiny_checkpoint):
    command = [sys.executable, "-m", "modeling_prolongvid.infer", "--model", str(tiny_checkpoint)]
    command += ["--image", str(SAMPLE_IMAGE), "--question", "Describe it.", "--max-new-tokens", "6"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip()


def test_cli_checks_the_file_before_loading_any_model(tmp_path, capsys, monkeypatch):
    import modeling_prolongvid.inference as inference

    def must_not_load(*args, **kwargs):
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(inference, "load_model", must_not_load)
    argv = ["--model", "someone/some-model", "--video", str(tmp_path / "missing.mp4"), "--question", "What?"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "'missing.mp4' does not exist" in err and "check the path" in err and "upload" not in err


def test_cli_offline_with_a_hub_id_fails_fast_with_one_line(tmp_path):
    command = [sys.executable, "-m", "modeling_prolongvid.infer", "--model", "someone/not-cached-model"]
    command += ["--video", str(SAMPLE_VIDEO), "--question", "What happens?"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    started = time.monotonic()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "unreachable" in result.stderr and "someone/not-cached-model" in result.stderr
    assert time.monotonic() - started < 60  # no minutes of download retries


def test_cli_messages_speak_of_options_not_uploads(tiny_checkpoint, capsys):
    argv = ["--model", str(tiny_checkpoint), "--video", str(SAMPLE_VIDEO), "--question", "What?", "--frames", "999"]
    assert main([*argv, "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "change --frames" in err and "Frames setting" not in err and "upload" not in err
