"""The Space's chat function, in process on the tiny model: streaming, the frame strip, multi-turn, bad input."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
APP_PATH = REPO / "space" / "app.py"
SAMPLE_VIDEO = str(REPO / "space" / "examples" / "sample.mp4")
SAMPLE_IMAGE = str(REPO / "space" / "examples" / "sample.png")


@pytest.fixture(scope="module")
def app():
    """`space/app.py` imported as a module: importing it loads no model and starts no server."""
    spec = importlib.util.spec_from_file_location("prolongvid_space_app", APP_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def chat(app, tiny_checkpoint):
    """The Space's chat function over its own copy of the tiny checkpoint."""
    model, processor, notice = app.load_app_model(str(tiny_checkpoint))
    assert notice is None
    return app.VideoChat(model, processor)


def run(chat, message, history=(), frames=8, max_new_tokens=24):
    """All `(text, strip)` pairs `respond` yields."""
    return list(chat.respond(message, list(history), frames, max_new_tokens))


def assert_streamed_answer(app, outputs):
    texts = [text for text, _ in outputs if text]
    assert texts, "no answer"
    assert not texts[-1].startswith(app.ERROR_PREFIX), texts[-1]
    assert len(set(texts)) >= 2, f"the answer did not stream: {texts!r}"
    for shorter, longer in zip(texts, texts[1:]):
        assert longer.startswith(shorter) and len(longer) > len(shorter)


def test_video_question_streams_growing_strings_and_shows_the_frame_strip(app, chat):
    outputs = run(chat, {"text": "What happens in this video?", "files": [SAMPLE_VIDEO]}, frames=8)
    text, strip = outputs[0]
    assert text == ""
    assert len(strip) == 8
    captions = [caption for _, caption in strip]
    assert all(re.fullmatch(r"\d+\.\d s", caption) for caption in captions), captions
    assert captions[0] == "0.0 s" and float(captions[-1][:-2]) > 7.0  # spread over the whole 8 s clip
    assert strip[0][0].shape == (app.STRIP_FRAME_SIZE, app.STRIP_FRAME_SIZE, 3)
    assert_streamed_answer(app, outputs[1:])


def test_image_question_streams_growing_strings(app, chat):
    outputs = run(chat, {"text": "Describe this image.", "files": [{"path": SAMPLE_IMAGE}]})
    assert [caption for _, caption in outputs[0][1]] == ["image"]
    assert_streamed_answer(app, outputs[1:])


def test_follow_up_question_keeps_the_video(app, chat):
    history = [  # as gradio's Chatbot hands it over
        {
            "role": "user",
            "content": [
                {"type": "file", "file": {"path": SAMPLE_VIDEO}},
                {"type": "text", "text": "What happens?"},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "A red ball rolls."}]},
    ]
    assert app.parse_conversation({"text": "And then?", "files": []}, history) == (
        "And then?",
        SAMPLE_VIDEO,
        [("What happens?", "A red ball rolls.")],
    )
    outputs = run(chat, {"text": "And then?", "files": []}, history, frames=8)
    assert len(outputs[0][1]) == 8
    assert_streamed_answer(app, outputs[1:])


def test_parse_conversation_in_the_api_state_form_skips_failed_turns_and_resets_on_new_upload(app):
    history = [  # as the /chat API keeps it
        {"role": "user", "content": [{"path": "/tmp/a.mp4"}, "First?"]},
        {"role": "assistant", "content": "One."},
        {"role": "user", "content": ["Second?"]},
        {"role": "assistant", "content": f"{app.ERROR_PREFIX}The question is empty."},
        {"role": "user", "content": ["Third?"]},
        {"role": "assistant", "content": "Three."},
    ]
    assert app.parse_conversation({"text": "Fourth?", "files": []}, history) == (
        "Fourth?",
        "/tmp/a.mp4",
        [("First?", "One."), ("Third?", "Three.")],
    )
    assert app.parse_conversation({"text": "New?", "files": ["/tmp/b.mp4"]}, history) == ("New?", "/tmp/b.mp4", [])


@pytest.mark.parametrize(
    ("upload", "question", "expected"),
    [
        (None, "What happens?", "Upload a video"),
        ("sample", "   ", "The question is empty"),
        ("notes.mp4", "What happens?", "notes.mp4: not a readable video"),
        ("empty.mp4", "What happens?", "empty.mp4: the file is empty"),
        ("broken.png", "What is it?", "'broken.png' is not a readable image"),
    ],
)
def test_bad_input_gets_a_chat_message_and_the_app_keeps_serving(app, chat, tmp_path, upload, question, expected):
    files = []
    if upload == "sample":
        files = [SAMPLE_VIDEO]
    elif upload:
        path = tmp_path / upload
        path.write_bytes(b"" if upload.startswith("empty") else b"just some text")
        files = [str(path)]
    outputs = run(chat, {"text": question, "files": files})
    assert len(outputs) == 1
    assert outputs[0][0].startswith(app.ERROR_PREFIX) and expected in outputs[0][0], outputs[0][0]
    assert str(tmp_path) not in outputs[0][0]
    assert_streamed_answer(app, run(chat, {"text": "What happens?", "files": [SAMPLE_VIDEO]})[1:])


def test_video_longer_than_the_limit(app, chat, monkeypatch):
    monkeypatch.setattr(chat, "max_video_seconds", 5.0)
    [(text, strip)] = run(chat, {"text": "What happens?", "files": [SAMPLE_VIDEO]})
    assert text.startswith(app.ERROR_PREFIX) and "lasts 8 s; videos up to 5 s" in text and strip == []


def test_too_many_frames_for_the_context(app, chat, monkeypatch):
    monkeypatch.setattr(chat.model.config.text_config, "max_position_embeddings", 512)
    [(text, _)] = run(chat, {"text": "What happens?", "files": [SAMPLE_VIDEO]}, frames=64, max_new_tokens=128)
    assert text.startswith(app.ERROR_PREFIX) and "use at most 21 frames" in text  # (512 - 256 - 128) // 6


def test_a_failing_generation_becomes_a_chat_message(app, chat, monkeypatch):
    def out_of_memory(*args, **kwargs):
        yield "partial"
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(app, "stream_generate", out_of_memory)
    outputs = run(chat, {"text": "What happens?", "files": [SAMPLE_VIDEO]})
    assert outputs[-1][0].startswith(app.ERROR_PREFIX) and "CUDA out of memory" in outputs[-1][0]
    monkeypatch.undo()
    assert_streamed_answer(app, run(chat, {"text": "What happens?", "files": [SAMPLE_VIDEO]})[1:])


def test_world_model_fallback_when_the_default_model_is_unreachable(app, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(app, "hub_reachable", lambda timeout=3.0: False)
    model, _, notice = app.load_app_model(None)
    assert "no Hub access" in notice and model.config.model_type == "prolongvid"
    assert Path(model.name_or_path) == REPO / "modeling_prolongvid" / "world_model"  # the bundled files
    # Reachable Hub but the default repo fails to load (here: offline mode) -> the world model, with the reason.
    monkeypatch.setattr(app, "hub_reachable", lambda timeout=3.0: True)
    assert "could not be loaded" in app.load_app_model(None)[2]
    # A model the user asked for by name never silently turns into the world model.
    monkeypatch.setattr(app, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(SystemExit, match="unreachable"):
        app.load_app_model("someone/some-model")


def test_build_demo_wires_the_chat_the_frame_settings_and_the_world_examples(app, chat):
    demo = app.build_demo(chat, demo_notice="offline")
    sliders = [block for block in demo.blocks.values() if type(block).__name__ == "Slider"]
    frames = next(slider for slider in sliders if slider.label == "Frames")
    assert frames.maximum == chat.model.config.max_frames and frames.value == chat.model.config.num_frames
    notice = next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "model-notice")
    assert "Demo model" in notice.value and "offline" in notice.value and "synthetic world" in notice.value
    bundled = app.WorldExamples.read()
    [dataset] = [block for block in demo.blocks.values() if type(block).__name__ == "Dataset"] or [None]
    if bundled.examples:
        shown = [sample[0]["text"] for sample in dataset.raw_samples]
        assert shown == [example.question for example in bundled.examples]
    else:
        assert dataset is None


def test_after_a_rejected_upload_text_only_questions_do_not_repeat_its_error(app, chat, tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("meeting notes, not a video")
    [(rejection, _)] = run(chat, {"text": "What happens?", "files": [str(fake)]})
    assert rejection.startswith(app.ERROR_PREFIX) and "notes.mp4" in rejection
    bad_turn = [
        {"role": "user", "content": [{"path": str(fake)}, "What happens?"]},
        {"role": "assistant", "content": rejection},
    ]
    [(follow_up, _)] = run(chat, {"text": "And now?", "files": []}, bad_turn)
    assert "Upload a video" in follow_up and "notes.mp4" not in follow_up, follow_up
    good_then_bad = [
        {"role": "user", "content": [{"path": SAMPLE_VIDEO}, "What happens?"]},
        {"role": "assistant", "content": "A ball rolls."},
        *bad_turn,
    ]
    assert app.parse_conversation({"text": "And now?", "files": []}, good_then_bad) == (
        "And now?",
        SAMPLE_VIDEO,
        [("What happens?", "A ball rolls.")],
    )
    assert_streamed_answer(app, run(chat, {"text": "And now?", "files": []}, good_then_bad)[1:])
