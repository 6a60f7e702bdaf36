"""Processor, video processor, chat template and frame sampling."""

from __future__ import annotations

import numpy as np
import pytest

from modeling_prolongvid import ProLongVidVideoProcessor
from modeling_prolongvid.tiny_checkpoint import build_tiny_processor
from processing.frame_sampling import sample_frame_indices

CONVERSATION = [
    {"role": "user", "content": [{"type": "text", "text": "What happens?"}, {"type": "video"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "A dog runs."}]},
    {"role": "user", "content": [{"type": "text", "text": "And then?"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "It sleeps."}]},
]


def test_chat_template_is_upstream_chatml():
    processor = build_tiny_processor()
    prompt = processor.apply_chat_template(CONVERSATION[:1], add_generation_prompt=True)
    assert prompt == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<video>\nWhat happens?<|im_end|>\n<|im_start|>assistant\n"
    )
    full = processor.apply_chat_template(CONVERSATION)
    assert full.endswith("<|im_start|>assistant\nA dog runs.<|im_end|>\n<|im_start|>user\nAnd then?<|im_end|>\n"
                         "<|im_start|>assistant\nIt sleeps.<|im_end|>\n")  # fmt: skip
    custom = processor.apply_chat_template([{"role": "system", "content": "Be brief."}, *CONVERSATION[:1]])
    assert custom.startswith("<|im_start|>system\nBe brief.<|im_end|>\n") and custom.count("system") == 1


def test_assistant_mask_covers_exactly_the_answers():
    processor = build_tiny_processor()
    out = processor.apply_chat_template(
        CONVERSATION[2:], tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids = np.array(out["input_ids"][0])
    mask = np.array(out["assistant_masks"][0]).astype(bool)
    assert processor.tokenizer.decode(ids[mask]) == "It sleeps.<|im_end|>"


@pytest.mark.parametrize("newline", ["grid", "frame", "one_token", "none"])
@pytest.mark.parametrize("grid", [1, 2, 12])
def test_video_placeholder_expansion(newline, grid):
    processor = build_tiny_processor(pooled_grid_size=grid, video_newline_position=newline)
    prompt = processor.apply_chat_template(CONVERSATION[:1])
    frames = np.zeros((7, 20, 30, 3), np.uint8)
    batch = processor(text=prompt, videos=[frames], return_tensors="pt")
    expected = {"grid": 7 * grid * (grid + 1), "frame": 7 * (grid * grid + 1), "one_token": 7 * grid * grid + 1}
    count = int((batch["input_ids"] == processor.video_token_id).sum())
    assert count == expected.get(newline, 7 * grid * grid)
    assert processor._get_num_multimodal_tokens(video_sizes=[(7, 20, 30)]).num_video_tokens == [count]


def test_processor_rejects_unknown_newline_mode():
    with pytest.raises(ValueError, match="video_newline_position"):
        build_tiny_processor(video_newline_position="rows")


def test_video_processor_samples_frames_with_upstream_rules():
    video = np.arange(90, dtype=np.uint8)[:, None, None, None].repeat(8, 1).repeat(8, 2).repeat(3, 3)
    processor = ProLongVidVideoProcessor(size={"height": 8, "width": 8}, do_normalize=False, do_rescale=False)
    out = processor(video, do_sample_frames=True, num_frames=4, return_tensors="pt")["pixel_values_videos"]
    assert out[0, :, 0, 0, 0].round().tolist() == [0, 29, 59, 89]
    from transformers.video_utils import VideoMetadata

    metadata = VideoMetadata(total_num_frames=90, fps=30.0, width=8, height=8)
    out = processor(video, do_sample_frames=True, fps=1.0, video_metadata=[metadata], return_tensors="pt")
    assert out["pixel_values_videos"][0, :, 0, 0, 0].round().tolist() == [0, 30, 60]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"num_frames": 4}, [0, 99, 199, 299]),
        ({"fps": 1.0}, list(range(0, 300, 30))),
        ({"fps": 2.0, "max_frames": 3}, [0, 149, 299]),
        ({"fps": 0.5, "max_frames": 128}, list(range(0, 300, 60))),
        ({"num_frames": 300}, list(range(300))),
        ({}, list(range(300))),
    ],
)
def test_sample_frame_indices(kwargs, expected):
    assert sample_frame_indices(300, avg_fps=30.0, **kwargs).tolist() == expected


@pytest.mark.parametrize(("total", "num_frames"), [(5, 8), (20, 32), (100, 192), (1, 4), (31, 32)])
def test_clips_shorter_than_the_frame_count_repeat_frames_exactly_as_upstreams_linspace(total, num_frames):
    indices = sample_frame_indices(total, avg_fps=30.0, num_frames=num_frames)
    np.testing.assert_array_equal(indices, np.linspace(0, total - 1, num_frames, dtype=int))
    assert len(indices) == num_frames and len(set(indices.tolist())) == total  # every frame, some twice


def test_one_fps_capped_at_n_is_llava_vids_rule():
    """`llava_vid`: every round(avg_fps / fps)-th frame; more than N of them -> linspace(0, total - 1, N)."""
    assert sample_frame_indices(600, avg_fps=30.0, fps=1.0, max_frames=32).tolist() == list(range(0, 600, 30))
    capped = sample_frame_indices(3000, avg_fps=30.0, fps=1.0, max_frames=32)
    np.testing.assert_array_equal(capped, np.linspace(0, 2999, 32, dtype=int))


def test_sample_frame_indices_errors():
    with pytest.raises(ValueError, match="mutually exclusive"):
        sample_frame_indices(10, 30.0, num_frames=2, fps=1.0)
    with pytest.raises(ValueError, match="0 frames"):
        sample_frame_indices(0, 30.0, num_frames=2)
    with pytest.raises(ValueError, match="average frame rate"):
        sample_frame_indices(10, None, fps=1.0)
    with pytest.raises(ValueError, match="num_frames=300 exceeds max_frames=256"):
        sample_frame_indices(1000, 30.0, num_frames=300, max_frames=256)
    with pytest.raises(ValueError, match="1000 frames, more than max_frames=256"):
        sample_frame_indices(1000, 30.0, max_frames=256)
