"""Shared fixtures: a tiny random ProLongVid checkpoint built once per session, and synthetic videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from processing.synthetic import write_video


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """Path of a tiny ProLongVid checkpoint (2-layer Qwen2 hidden 32, SigLIP 24 px / patch 8, pooled grid 2)."""
    from modeling_prolongvid.tiny_checkpoint import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny-prolongvid"))


@pytest.fixture(scope="session")
def tiny_model_and_processor(tiny_checkpoint):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(tiny_checkpoint).eval()
    return model, AutoProcessor.from_pretrained(tiny_checkpoint)


@pytest.fixture
def random_frames():
    """`make(num_frames, height=32, width=40)` -> uint8 frames `(T, H, W, 3)`, deterministic per call order."""
    generator = np.random.default_rng(0)

    def make(num_frames: int, height: int = 32, width: int = 40) -> np.ndarray:
        return generator.integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)

    return make


@pytest.fixture
def make_video(tmp_path):
    """`make_video(name, num_frames, fps=10, width=64, height=48)` -> path of a generated MP4 in `tmp_path`."""

    def make(name: str, num_frames: int, **kwargs) -> Path:
        return write_video(tmp_path / name, num_frames, **kwargs)

    return make
