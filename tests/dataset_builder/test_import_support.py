"""Helpers of the import tests (no tests here): generated media of known durations, LLaVA-NeXT rows in each format,
and the import run in-process or as the real command line."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from dataset_builder.__main__ import main
from processing.synthetic import write_video

ROOT = Path(__file__).resolve().parents[2]
# name -> (frames, fps): seconds = frames / fps; one video per duration band, one beyond 20 minutes.
VIDEOS = {"short.mp4": (30, 10), "mid.mp4": (150, 1), "long.mp4": (400, 1), "huge.mp4": (1300, 1)}
BANDS = {"short.mp4": "stage1", "mid.mp4": "stage2", "long.mp4": "stage3", "huge.mp4": None}


def write_media(root: Path) -> Path:
    """``root/videos/{short,mid,long,huge}.mp4`` (3 s, 150 s, 400 s, 1300 s), an unreadable ``bad.mp4`` and two
    PNG images under ``root/images/``."""
    (root / "videos").mkdir(parents=True, exist_ok=True)
    for name, (frames, fps) in VIDEOS.items():
        write_video(root / "videos" / name, frames, fps=fps, width=32, height=32)
    (root / "videos" / "bad.mp4").write_bytes(b"\x00not a video" * 64)
    (root / "images").mkdir(exist_ok=True)
    for index in range(2):
        Image.fromarray(image_pixels(index)).save(root / "images" / f"img{index}.png")
    return root


def image_pixels(seed: int, height: int = 20, width: int = 28) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)


def png_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image_pixels(seed)).save(buffer, format="PNG")
    return buffer.getvalue()


def turns(*values: str) -> list[dict]:
    """Alternating human / gpt turns."""
    return [{"from": ("human", "gpt")[index % 2], "value": value} for index, value in enumerate(values)]


def video_row(row_id: str, video: str, *values: str, **extra) -> dict:
    return {"id": row_id, "video": video, "conversations": turns(*values), **extra}


def write_json(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1))
    return path


def write_jsonl(path: Path, rows: list, extra_lines: tuple[str, ...] = ()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows) + "".join(line + "\n" for line in extra_lines))
    return path


def write_onevision_parquet(path: Path, rows: list[dict]) -> Path:
    """LLaVA-OneVision-Data's layout: ``id``, ``conversations`` [{from, value}], ``data_source``, ``image``
    (datasets' ``Image`` feature: ``{"bytes", "path"}``), written by datasets as the Hub's files are."""
    from datasets import Dataset, Features, Image, List, Value

    features = Features(
        {
            "id": Value("string"),
            "conversations": List({"from": Value("string"), "value": Value("string")}),
            "data_source": Value("string"),
            "image": Image(),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_list(rows, features=features).to_parquet(str(path))
    return path


def run_import(annotations: Path, media: Path, out: Path, *extra: str) -> int:
    """``python -m dataset_builder import`` in-process (no progress bar)."""
    argv = ["import", "--annotations", str(annotations), "--media-root", str(media), "--out", str(out)]
    return main([*argv, "--no-progress", *extra])


def import_command(annotations: Path, media: Path, out: Path, *extra: str) -> list[str]:
    """The real command line, for subprocesses."""
    argv = ["import", "--annotations", str(annotations), "--media-root", str(media), "--out", str(out), *extra]
    return [sys.executable, "-m", "dataset_builder", *argv]


def run_command(command: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]
