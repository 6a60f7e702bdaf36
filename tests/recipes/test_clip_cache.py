"""The collator's in-memory clip cache: a video is decoded once while it stays cached, the batch is the same as
without the cache, and the least recently used clip leaves first."""

import pytest
import torch

import recipes.training.collator as collator_module
from modeling_prolongvid.tiny_checkpoint import build_tiny_processor
from recipes.training.arguments import StageArguments
from recipes.training.collator import VideoSFTCollator
from recipes.training.data import load_training_rows
from recipes.training.tiny_inputs import write_tiny_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = write_tiny_dataset(tmp_path_factory.mktemp("clips"))
    return folder, [dict(row) for row in load_training_rows(folder, ["stage1"])]


@pytest.fixture
def loads(monkeypatch):
    """The videos `load_frames` is asked for, in order (it still decodes them)."""
    calls, original = [], collator_module.load_frames

    def counting(video, **kwargs):
        calls.append(str(video))
        return original(video, **kwargs)

    monkeypatch.setattr(collator_module, "load_frames", counting)
    return calls


def _collator(folder, clip_cache):
    return VideoSFTCollator(build_tiny_processor(), num_frames=4, dataset_dir=folder, clip_cache=clip_cache)


def test_rows_sharing_a_video_decode_it_once_and_batch_as_without_the_cache(data, loads):
    folder, rows = data
    first, second = rows[0], rows[1]
    assert first["video"] != second["video"]
    batch_rows = [first, second, first]

    plain = _collator(folder, clip_cache=0)(batch_rows)
    assert len(loads) == 3
    loads.clear()

    cached_collator = _collator(folder, clip_cache=8)
    cached = cached_collator(batch_rows)
    assert len(loads) == 2  # the repeated row's video came from memory
    assert set(plain) == set(cached)
    for key in plain:
        assert torch.equal(plain[key], cached[key]), key

    loads.clear()
    again = cached_collator(batch_rows)  # the next epoch: nothing decoded at all
    assert loads == []
    assert torch.equal(again["pixel_values_videos"], plain["pixel_values_videos"])


def test_least_recently_used_clip_leaves_first(data, loads):
    folder, rows = data
    a, b, c = rows[0], rows[1], rows[2]
    collator = _collator(folder, clip_cache=2)
    for row in (a, b, a, c, a, b):  # a stays in use; b is the least recently used when c arrives
        collator([row])
    resolved = [collator.resolve(row["video"]) for row in (a, b, c)]
    assert loads == [resolved[0], resolved[1], resolved[2], resolved[1]]


def test_cached_clips_are_read_only(data):
    folder, rows = data
    collator = _collator(folder, clip_cache=4)
    collator([rows[0]])
    (clip,) = collator._clips.values()
    with pytest.raises(ValueError, match="read-only"):
        clip[0, 0, 0, 0] = 1


def test_negative_clip_cache_is_refused(data):
    with pytest.raises(ValueError, match="clip_cache must be >= 0"):
        _collator(data[0], clip_cache=-1)
    with pytest.raises(ValueError, match="clip_cache must be >= 0"):
        StageArguments(clip_cache=-1)
