"""Shared fixtures: a tiny random ProLongVid checkpoint built once per session, and synthetic videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


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


def write_video(path: Path, num_frames: int, fps: int = 10, width: int = 64, height: int = 48) -> Path:
    """An H.264 MP4 whose frame i is filled with gray level (8 * i) % 256, so tests can tell frames apart."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(num_frames):
            frame = np.full((height, width, 3), (8 * index) % 256, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture
def make_video(tmp_path):
    """`make_video(name, num_frames, fps=10, width=64, height=48)` -> path of a generated MP4 in `tmp_path`."""

    def make(name: str, num_frames: int, **kwargs) -> Path:
        return write_video(tmp_path / name, num_frames, **kwargs)

    return make
