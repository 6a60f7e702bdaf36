"""Tiny, offline inputs for every recipe: a tiny LLM, a tiny SigLIP tower, a tiny ProLongVid checkpoint, PyAV videos,
PNG images, training rows in the contract's format, and a long-text file. Used by the tests and by
`recipes/progressive.py --tiny`.

```python
>>> import tempfile
>>> paths = build_tiny_inputs(tempfile.mkdtemp())
>>> sorted(paths)
['data', 'llm', 'long_text', 'prolongvid', 'vision']
>>> sorted(path.name for path in paths["data"].iterdir())
['image_alignment', 'image_knowledge', 'image_sft', 'images', 'stage1', 'stage2', 'stage3', 'videos']

```
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from datasets import Dataset
from PIL import Image

QUESTIONS = ["What happens in the video?", "Describe the scene.", "What color is the ball?", "Why does it move?"]
ANSWERS = ["A red square moves to the right.", "A ball rolls along.", "The ball is red.", "Because it is pushed."]


def write_tiny_video(path: str | Path, num_frames: int = 12, size: int = 32, fps: int = 4, seed: int = 0) -> Path:
    """Encode an H.264 MP4 of a square moving over noise with PyAV; returns `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for index in range(num_frames):
            frame = rng.integers(0, 64, (size, size, 3), dtype=np.uint8)
            x = (index * 2) % (size - 8)
            frame[8:16, x : x + 8] = (255, 0, 0)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _messages(media: str, index: int) -> list[dict]:
    return [
        {
            "role": "user",
            "content": [{"type": media, "text": None}, {"type": "text", "text": QUESTIONS[index % len(QUESTIONS)]}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": ANSWERS[index % len(ANSWERS)]}]},
    ]


def write_tiny_dataset(data_dir: str | Path, rows_per_subset: int = 4) -> Path:
    """Video subsets stage1/2/3 (contract rows, relative video paths) and image subsets image_alignment /
    image_knowledge / image_sft (an `image` column) as Parquet under `data_dir/<subset>/`."""
    data_dir = Path(data_dir)
    for stage, duration in (("stage1", 60.0), ("stage2", 180.0), ("stage3", 600.0)):
        rows = []
        for index in range(rows_per_subset):
            relative = f"videos/{stage}_{index}.mp4"
            write_tiny_video(data_dir / relative, num_frames=8 + index, seed=index)
            rows.append(
                {
                    "video_id": f"{stage}_{index}",
                    "video": relative,
                    "source": "tiny",
                    "duration": duration,
                    "messages": _messages("video", index),
                }
            )
        _to_parquet(rows, data_dir / stage)
    for subset in ("image_alignment", "image_knowledge", "image_sft"):
        rows = []
        for index in range(rows_per_subset):
            relative = f"images/{subset}_{index}.png"
            (data_dir / "images").mkdir(parents=True, exist_ok=True)
            pixels = np.random.default_rng(index).integers(0, 255, (20 + 4 * index, 28, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(data_dir / relative)
            rows.append(
                {
                    "video_id": f"{subset}_{index}",
                    "image": relative,
                    "source": "tiny",
                    "messages": _messages("image", index),
                }
            )
        _to_parquet(rows, data_dir / subset)
    return data_dir


def _to_parquet(rows: list[dict], subset_dir: Path) -> None:
    subset_dir.mkdir(parents=True, exist_ok=True)
    Dataset.from_list(rows).to_parquet(str(subset_dir / "train-00000-of-00001.parquet"))


def write_long_text(path: str | Path, num_documents: int = 40) -> Path:
    """A local stand-in for SlimPajama: documents separated by blank lines."""
    path = Path(path)
    words = "the video shows a person who walks a dog along the beach while waves roll in and the sun sets".split()
    rng = np.random.default_rng(0)
    documents = [" ".join(rng.choice(words, size=60)) + "." for _ in range(num_documents)]
    path.write_text("\n\n".join(documents) + "\n")
    return path


def tiny_input_paths(workdir: str | Path) -> dict[str, Path]:
    """Where `build_tiny_inputs(workdir)` puts each input."""
    workdir = Path(workdir)
    return {
        "prolongvid": workdir / "prolongvid",
        "llm": workdir / "llm",
        "vision": workdir / "vision",
        "data": workdir / "data",
        "long_text": workdir / "long_text.txt",
    }


def build_tiny_inputs(workdir: str | Path) -> dict[str, Path]:
    """Write all tiny inputs under `workdir`; returns their paths (llm, vision, prolongvid, data, long_text)."""
    import torch
    from transformers import (
        AutoModelForImageTextToText,
        AutoProcessor,
        Qwen2ForCausalLM,
        SiglipVisionConfig,
        SiglipVisionModel,
    )

    from modeling_prolongvid.tiny_checkpoint import build_tiny_checkpoint

    paths = tiny_input_paths(workdir)
    prolongvid = build_tiny_checkpoint(paths["prolongvid"])
    model = AutoModelForImageTextToText.from_pretrained(prolongvid, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(prolongvid)

    llm = Qwen2ForCausalLM(model.config.text_config)
    llm.model.load_state_dict(model.model.language_model.state_dict())
    llm.lm_head.load_state_dict(model.lm_head.state_dict())
    llm.save_pretrained(paths["llm"])
    processor.tokenizer.save_pretrained(paths["llm"])

    # A released SigLIP has one layer (and a head) more than ProLongVid keeps: image_alignment's composition
    # (vision_select_layer -2) turns this tower back into the tiny checkpoint's.
    tower_config = model.config.vision_config.to_dict()
    tower_config.update(num_hidden_layers=model.config.vision_config.num_hidden_layers + 1, vision_use_head=True)
    torch.manual_seed(1)
    vision = SiglipVisionModel(SiglipVisionConfig(**tower_config))
    vision.load_state_dict(model.model.vision_tower.state_dict(), strict=False)
    vision.save_pretrained(paths["vision"])
    write_tiny_dataset(paths["data"])
    write_long_text(paths["long_text"])
    return paths
