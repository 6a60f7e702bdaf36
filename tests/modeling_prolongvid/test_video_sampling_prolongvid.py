"""Frame sampling that never surprises: a video given by path is sampled with the saved processor's own settings,
`max_frames` holds on every path, and the standard call prints no warning.

Test videos show their frame index as a flat grey level (4 * index), read back from `pixel_values_videos`.
"""

from __future__ import annotations

import av
import numpy as np
import pytest
from transformers import AutoProcessor
from transformers.utils import logging as transformers_logging

from modeling_prolongvid import ProLongVidVideoProcessor
from modeling_prolongvid.tiny_checkpoint import IMAGE_SIZE, build_tiny_processor

FPS = 10


def write_grey_video(path, num_frames: int, fps: int = FPS):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for index in range(num_frames):
            frame = np.full((32, 32, 3), 4 * index, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return str(path)


def frame_ids(pixel_values_videos) -> list[int]:
    """Frame indices of `(1, T, 3, H, W)` normalised pixels (grey level 4 * index)."""
    levels = (np.asarray(pixel_values_videos[0])[:, :, 4:-4, 4:-4].mean(axis=(1, 2, 3)) * 0.5 + 0.5) * 255
    return np.round(levels / 4).astype(int).tolist()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("sampling")
    return {frames: write_grey_video(root / f"clip{frames}.mp4", frames) for frames in (5, 60)}


@pytest.fixture(scope="module")
def saved_processor(tmp_path_factory):
    """A processor saved with a checkpoint's sampling settings (6 frames, at most 40) and loaded back."""
    processor = build_tiny_processor()
    processor.video_processor = ProLongVidVideoProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, num_frames=6, max_frames=40
    )
    directory = tmp_path_factory.mktemp("processor")
    processor.save_pretrained(directory)
    return AutoProcessor.from_pretrained(directory)


def messages(path: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "video", "path": path}, {"type": "text", "text": "What?"}]}]


def chat(processor, path: str, **kwargs):
    return processor.apply_chat_template(
        messages(path), add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="np", **kwargs
    )


@pytest.fixture
def transformers_warnings(caplog, capfd):
    """Everything transformers logged at WARNING or above during the test (its own handler writes to the real
    stderr, so both the log records and file descriptor 2 are captured)."""
    transformers_logging.set_verbosity_warning()
    transformers_logging.enable_propagation()
    yield lambda: caplog.text + capfd.readouterr().err
    transformers_logging.disable_propagation()


def test_a_video_given_by_path_is_sampled_with_the_saved_settings_and_no_warning(
    saved_processor, clips, transformers_warnings
):
    batch = chat(saved_processor, clips[60])
    assert frame_ids(batch["pixel_values_videos"]) == np.linspace(0, 59, 6, dtype=int).tolist()
    assert int((batch["input_ids"] == saved_processor.video_token_id).sum()) == saved_processor.num_video_tokens(6)
    assert "Kwargs passed" not in transformers_warnings()


def test_the_warning_test_would_see_the_warning(saved_processor, clips, transformers_warnings):
    chat(saved_processor, clips[60], num_frames=4)  # transformers wants processor_kwargs={"num_frames": 4}
    assert "Kwargs passed to `processor.__call__`" in transformers_warnings()


def test_a_call_overrides_the_saved_settings(saved_processor, clips):
    batch = chat(saved_processor, clips[60], processor_kwargs={"num_frames": 3})
    assert frame_ids(batch["pixel_values_videos"]) == [0, 29, 59]


def test_one_fps_capped_at_n_is_an_option(saved_processor, clips):
    every_second = chat(saved_processor, clips[60], processor_kwargs={"fps": 1.0})
    assert frame_ids(every_second["pixel_values_videos"]) == list(range(0, 60, FPS))
    capped = chat(saved_processor, clips[60], processor_kwargs={"fps": 1.0, "max_frames": 4})
    assert frame_ids(capped["pixel_values_videos"]) == np.linspace(0, 59, 4, dtype=int).tolist()


def test_a_clip_shorter_than_the_frame_count_repeats_frames_like_upstream(saved_processor, clips):
    batch = chat(saved_processor, clips[5])
    assert frame_ids(batch["pixel_values_videos"]) == np.linspace(0, 4, 6, dtype=int).tolist()  # [0, 0, 1, 2, 3, 4]


def test_max_frames_is_enforced_on_every_path(saved_processor, clips, monkeypatch):
    with pytest.raises(ValueError, match="num_frames=50 exceeds max_frames=40"):
        chat(saved_processor, clips[60], processor_kwargs={"num_frames": 50})
    frames = np.zeros((41, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="41 frames, more than max_frames=40"):
        saved_processor.video_processor(frames)
    with pytest.raises(ValueError, match="num_frames=41 exceeds max_frames=40"):
        saved_processor.video_processor(frames, do_sample_frames=True, num_frames=41)

    import processing.video_reader

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded before checking max_frames")

    monkeypatch.setattr(processing.video_reader, "decode_frames", no_decoding)
    with pytest.raises(ValueError, match="60 frames, more than max_frames=40"):  # every frame of a path, refused
        chat(saved_processor, clips[60], processor_kwargs={"do_sample_frames": False})


def test_decoded_frames_are_used_as_given(saved_processor):
    frames = np.stack([np.full((8, 8, 3), 4 * index, np.uint8) for index in range(9)])
    out = saved_processor.video_processor(frames, return_tensors="np")["pixel_values_videos"]
    assert frame_ids(out) == list(range(9))


def test_the_image_text_to_text_pipeline_samples_a_video_path_by_default(tiny_checkpoint, clips, monkeypatch):
    from transformers import pipeline

    pipe = pipeline("image-text-to-text", model=str(tiny_checkpoint))
    processed = []
    preprocess = type(pipe.processor.video_processor)._preprocess
    monkeypatch.setattr(
        type(pipe.processor.video_processor),
        "_preprocess",
        lambda self, videos, **kwargs: (
            processed.append([len(v) for v in videos]) or preprocess(self, videos, **kwargs)
        ),
    )
    pipe(text=messages(clips[60]), max_new_tokens=1)
    assert processed == [[pipe.processor.video_processor.num_frames]]


def test_inference_samples_like_upstreams_evaluation_even_on_short_clips(clips, tiny_model_and_processor):
    from modeling_prolongvid.inference import load_media

    model, _ = tiny_model_and_processor
    media = load_media(clips[5], model, num_frames=8, max_new_tokens=4)
    assert np.round(media.frames[:, 12, 12].mean(axis=-1) / 4).astype(int).tolist() == [0, 0, 1, 1, 2, 2, 3, 4]
    np.testing.assert_allclose(media.timestamps, np.linspace(0, 4, 8, dtype=int) / FPS)
