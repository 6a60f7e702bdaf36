"""What the built-in runner and the lmms-eval plugin share: frames, prompt, model inputs and greedy decoding.

The protocol is upstream's (the ``llava_onevision`` wrapper of the lmms-eval copy in ruiwang2021/ProLongVid):

- frames: ``np.linspace(0, total_frames - 1, N, dtype=int)`` over the native frames (``processing.load_video``
  with ``num_frames=N``), or ``F`` fps capped at ``N`` frames; decoded at native size and resized by the processor;
- prompt: the ``qwen_1_5`` ChatML conversation, default system prompt, the video first in the user turn (the
  processor's chat template with ``[{"type": "video"}, {"type": "text", ...}]``), no time instruction;
- decoding: greedy (``do_sample=False``, ``num_beams=1``), float16 by default, reply stripped.

Example:
    >>> from evaluation.generation import load_model_and_processor, prepare_inputs, generate_reply, read_frames
    >>> model, processor = load_model_and_processor("path/to/ProLongVid-7B-hf", "float16")  # doctest: +SKIP
    >>> frames, _ = read_frames("clip.mp4", frames=32)  # doctest: +SKIP
    >>> inputs = prepare_inputs(processor, frames, "What happens?", model.dtype)  # doctest: +SKIP
    >>> generate_reply(model, processor, inputs, max_new_tokens=16)  # doctest: +SKIP
    'A'
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


class EvaluationOutOfMemoryError(RuntimeError):
    """Generation ran out of accelerator memory; the message names the frame count and what to change."""


def load_model_and_processor(model_id: str, dtype: str = "float16", device: str | torch.device | None = None):
    """``(model, processor)`` of a ProLongVid checkpoint (Hub id or local directory), in eval mode on ``device``
    (default: CUDA when available, else CPU) with weights in ``dtype`` (``float16``, ``bfloat16`` or ``float32``)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    import modeling_prolongvid  # noqa: F401  (registers the Auto classes)

    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r} is not supported: use one of {sorted(DTYPES)}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    # Our own registered classes: no remote code needed (and without the flag transformers prompts for 15 s).
    processor = AutoProcessor.from_pretrained(model_id, trust_remote_code=False)
    model = AutoModelForImageTextToText.from_pretrained(model_id, dtype=DTYPES[dtype], trust_remote_code=False)
    return model.to(device).eval(), processor


def model_revision(model_id: str) -> str:
    """An id of the weights themselves: the cached Hub commit for a Hub model; for a local directory a hash of its
    config and of its weight files' names, sizes and modification times (a retrained checkpoint gets a new one)."""
    path = Path(model_id)
    if not path.is_dir():
        from huggingface_hub import snapshot_download

        try:  # the snapshot the model was just loaded from: its folder is named by the commit
            return f"hub:{model_id}@{Path(snapshot_download(model_id, local_files_only=True)).name}"
        except Exception as error:  # not in the local cache: the id alone, said so in the result
            return f"hub:{model_id}@unresolved ({type(error).__name__})"
    digest = hashlib.sha256((path / "config.json").read_bytes() if (path / "config.json").is_file() else b"")
    for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        stat = weights.stat()
        digest.update(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return f"local:{digest.hexdigest()[:12]}"


def read_frames(
    video_path: str | os.PathLike,
    frames: int,
    fps: float | None = None,
    frame_cache=None,
    video_id: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sampled frames ``(T, H, W, 3)`` uint8 at native size and their timestamps ``(T,)`` seconds.

    ``frames`` uniform frames over the native ones (upstream's linspace), or with ``fps`` every
    ``round(avg_fps / fps)``-th frame, switching to ``frames`` uniform ones when that gives more. With a
    ``processing.frame_cache.FrameCache`` holding ``video_id``, frames come from the cache (nearest cached frame,
    cache resolution) instead of decoding.
    """
    from processing import load_video

    if frame_cache is not None:
        from processing.frame_cache import load_frames

        if fps is None:
            return load_frames(video_path, video_id, num_frames=frames, cache=frame_cache)
        return load_frames(video_path, video_id, fps=fps, max_frames=frames, cache=frame_cache)
    if fps is None:
        return load_video(video_path, num_frames=frames)
    return load_video(video_path, fps=fps, max_frames=frames)


def chat_prompt(processor, text: str) -> str:
    """The ``qwen_1_5`` ChatML prompt: system turn, user turn with the video first, then the assistant's turn."""
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": text}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True)


def prepare_inputs(processor, frames: np.ndarray, text: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """A batch of one on the CPU: ``input_ids (1, L)``, ``attention_mask (1, L)`` and ``pixel_values_videos
    (1, T, 3, H, W)`` in ``dtype`` (the processor resizes and normalises the frames)."""
    batch = processor(text=[chat_prompt(processor, text)], videos=[frames], return_tensors="pt")
    return {key: value.to(dtype) if value.is_floating_point() else value for key, value in batch.items()}


def generate_reply(model, processor, inputs: dict[str, torch.Tensor], max_new_tokens: int) -> str:
    """Greedy reply (special tokens removed, stripped) to prepared ``inputs``.

    Raises :class:`EvaluationOutOfMemoryError` naming the frame count and the fixes when the accelerator runs
    out of memory.
    """
    inputs = {key: value.to(model.device) for key, value in inputs.items()}
    try:
        with torch.inference_mode():
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
    except torch.OutOfMemoryError as error:
        raise EvaluationOutOfMemoryError(out_of_memory_message(model, inputs)) from error
    new_tokens = output[0, inputs["input_ids"].shape[1] :]
    return processor.tokenizer.decode(new_tokens, skip_special_tokens=True).strip()


def out_of_memory_message(model, inputs: dict[str, torch.Tensor]) -> str:
    frames = inputs["pixel_values_videos"].shape[1]
    tokens = inputs["input_ids"].shape[1]
    dtype = str(model.dtype).removeprefix("torch.")
    return (
        f"Out of accelerator memory generating with {frames} frames ({tokens} prompt tokens, weights in {dtype}). "
        f"Evaluate with fewer frames (e.g. --frames {max(1, frames // 2)}), load the weights in a 16-bit dtype "
        "(--dtype float16 or bfloat16) if they are not, or use a GPU with more memory (questions are sharded "
        "over processes with `accelerate launch`, the model is not)."
    )


__all__ = [
    "DTYPES",
    "EvaluationOutOfMemoryError",
    "chat_prompt",
    "generate_reply",
    "load_model_and_processor",
    "model_revision",
    "prepare_inputs",
    "read_frames",
]
