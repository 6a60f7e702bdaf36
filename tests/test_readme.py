"""The README's commands and snippet stay true: CI runs its test command, and its snippet runs."""

from __future__ import annotations

import re
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_readme_opens_with_demo_and_test_commands():
    first_lines = "\n".join(README.splitlines()[:12])
    demo, tests = code_blocks("bash")[:2]
    assert demo in first_lines and tests in first_lines
    assert "space/app.py" in demo
    assert tests.strip() in (ROOT / ".ci" / "run").read_text(), ".ci/run must run the README's test command"


def test_readme_files_exist():
    pattern = r"`((?:modeling_prolongvid|processing|recipes|dataset_builder|space|tests|benchmarks)/[\w./-]*)`"
    for path in re.findall(pattern, README):
        assert (ROOT / path).exists(), path


def write_clip(path: Path, num_frames: int = 20) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(num_frames):
            frame = np.full((48, 64, 3), index * 10, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def test_readme_inference_snippet_runs(tiny_checkpoint, tmp_path, monkeypatch):
    snippet = next(block for block in code_blocks("python") if "generate" in block)
    assert len(snippet.strip().splitlines()) < 15
    write_clip(tmp_path / "clip.mp4")
    monkeypatch.chdir(tmp_path)
    snippet = snippet.replace('"ProLongVid-7B-hf"', repr(str(tiny_checkpoint))).replace(
        "max_new_tokens=256", "max_new_tokens=4"
    )
    namespace = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    assert namespace["frames"].shape[0] == 128
    assert namespace["output"].shape[1] > namespace["inputs"]["input_ids"].shape[1]
