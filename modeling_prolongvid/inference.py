"""The inference service shared by the command line (`modeling_prolongvid.infer`) and the Gradio Space.

Load a model once, check and read the user's media, build the chat prompt, and stream a greedy answer:

    >>> from modeling_prolongvid.inference import answer, load_model
    >>> model, processor = load_model("tiny")
    >>> text = answer(model, processor, "space/examples/sample.mp4", "What moves?", num_frames=8, max_new_tokens=8)

`load_model("tiny")` loads the bundled world model (`modeling_prolongvid/world_model/`, a few MB shipped with the
package): a tiny ProLongVid trained only on the kit's synthetic world (`dataset_builder.world`: coloured scenes,
moving shapes, brief flashes). It runs anywhere in seconds, answers questions about such videos and knows nothing
about real ones; its card (`README.md`) and measured accuracy (`results.json`) sit next to its weights.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

import modeling_prolongvid  # noqa: F401  (registers the Auto classes)
from processing import VideoReadError, probe_video
from processing.frame_cache import FrameCache, load_frames

from .hub import hub_reachable

TINY_MODEL_ID = "tiny"
# The bundled world model (`load_model("tiny")`), trained by `python -m recipes.world.reproduce`.
WORLD_MODEL_DIR = Path(__file__).resolve().parent / "world_model"
WORLD_MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "processor_config.json", "results.json")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
# Room kept free in the context for the chat template, system prompt and question.
PROMPT_TOKEN_RESERVE = 256
DEFAULT_MAX_VIDEO_SECONDS = 3 * 60 * 60.0


class InputError(ValueError):
    """A problem with the user's input (file, question or settings), phrased for the user, fix included."""


@dataclass(frozen=True)
class Wording:
    """How messages name the user's means of fixing their input: the Space speaks of uploads and its Frames slider,
    the command line of paths and `--frames`."""

    provide_file: str = "upload"
    frames_setting: str = "the Frames setting"


SPACE_WORDING = Wording()
CLI_WORDING = Wording(provide_file="pass", frames_setting="--frames")


def check_model_available(model_id: str) -> None:
    """Raise `InputError` at once when `model_id` is a Hub id that cannot be had: the Hub is unreachable and the
    checkpoint is not in the local cache (instead of minutes of retries and a long traceback)."""
    if model_id == TINY_MODEL_ID or Path(model_id).exists() or hub_reachable():
        return
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(model_id, "config.json"), str):
        raise InputError(
            f"Cannot load {model_id!r}: the Hugging Face Hub is unreachable and the model is not in the local cache. "
            "Pass a local checkpoint directory, or download it first where the Hub is reachable "
            f"(`huggingface-cli download {model_id}`)."
        )


def check_media_file(path: str | os.PathLike, wording: Wording = SPACE_WORDING) -> None:
    """The checks that need no model: `path` exists and is a readable image or a video with frames. Raises
    `InputError`; run it before loading a model, so a mistyped path costs nothing."""
    path = str(path)
    _require_file(path, wording)
    if is_image_path(path):
        _read_image(path, wording)
    else:
        _probe(path, wording)


def _require_file(path: str, wording: Wording) -> None:
    if not Path(path).is_file():
        fix = "upload it again" if wording.provide_file == "upload" else "check the path"
        raise InputError(f"The file {Path(path).name!r} does not exist or is incomplete: {fix}.")


def _read_image(path: str, wording: Wording) -> Image.Image:
    name = Path(path).name
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as error:
        reason = str(error).replace(path, name)
        raise InputError(
            f"{name!r} is not a readable image ({reason}): {wording.provide_file} a PNG, JPEG or WebP file."
        ) from None


def _probe(path: str, wording: Wording):
    name = Path(path).name
    try:
        info = probe_video(path)
    except VideoReadError as error:  # its message names the file, the problem and the fix
        raise InputError(str(error).replace(path, name)) from None
    if info.num_frames < 1 or info.duration <= 0:
        raise InputError(
            f"{name!r} contains no video frames (zero-length video): {wording.provide_file} a video that plays."
        )
    return info


@dataclass
class Media:
    """What the model is shown: `frames` uint8 (T, H, W, 3) RGB with `timestamps` float64 (T,) seconds for a
    video, or a single `image`."""

    path: str
    frames: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    image: Image.Image | None = None

    @property
    def kind(self) -> str:
        return "image" if self.image is not None else "video"


def world_model_dir() -> Path:
    """The bundled world model's directory (`load_model("tiny")`), checked to hold a loadable checkpoint."""
    missing = [name for name in WORLD_MODEL_FILES if not (WORLD_MODEL_DIR / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"The bundled world model in {WORLD_MODEL_DIR} lacks {missing}: the package was installed without its "
            'data files. Reinstall it (`pip install -e .`; pyproject.toml ships "*.safetensors" as package data) '
            "or pass a checkpoint directory instead of 'tiny'."
        )
    return WORLD_MODEL_DIR


def load_model(
    model_id: str,
    device: str | None = None,
    dtype: torch.dtype | None = None,
    attn_implementation: str = "sdpa",
) -> tuple[torch.nn.Module, object]:
    """Load `(model, processor)` from a Hub id, a local directory, or `"tiny"` (the bundled world model, offline).

    By default the weights are float16 on CUDA (upstream's evaluation precision) and float32 on CPU; attention is `attn_implementation` ("sdpa", or
    "flash_attention_2" where installed). The model is in eval mode.

        >>> model, processor = load_model("tiny", device="cpu")
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype or (torch.float16 if device.startswith("cuda") else torch.float32)  # upstream evaluated in fp16
    if model_id == TINY_MODEL_ID:
        model_id = str(world_model_dir())
    return _load(model_id, device, dtype, attn_implementation)


def _load(model_id: str, device: str, dtype: torch.dtype, attn_implementation: str):
    # Loading our own registered classes: no remote code is needed (and without the flag transformers prompts).
    processor = AutoProcessor.from_pretrained(model_id, trust_remote_code=False)
    model = AutoModelForImageTextToText.from_pretrained(
        model_id, dtype=dtype, attn_implementation=attn_implementation, trust_remote_code=False
    )
    return model.to(device).eval(), processor


def context_length(model: torch.nn.Module) -> int:
    """Positions the language model was built for (`text_config.max_position_embeddings`)."""
    return model.config.text_config.max_position_embeddings


def max_frames_for_context(model: torch.nn.Module, max_new_tokens: int) -> int:
    """Largest frame count whose video tokens, the prompt reserve and `max_new_tokens` fit the context."""
    budget = context_length(model) - PROMPT_TOKEN_RESERVE - max_new_tokens
    frames = 0
    while frames < model.config.max_frames and model.config.num_video_tokens(frames + 1) <= budget:
        frames += 1
    return frames


def is_image_path(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def load_media(
    path: str | os.PathLike,
    model: torch.nn.Module,
    num_frames: int,
    max_new_tokens: int,
    max_video_seconds: float = DEFAULT_MAX_VIDEO_SECONDS,
    frame_size: int | None = None,
    frame_cache: FrameCache | None = None,
    video_id: str | None = None,
    wording: Wording = SPACE_WORDING,
) -> Media:
    """Read an image, or sample `num_frames` frames of a video, after checking everything the user can get wrong.

    Raises `InputError` (a `ValueError`) with a user-facing message for: a file that is not a readable image or
    video, an empty video, a video longer than `max_video_seconds`, a frame count outside `[1, config.max_frames]`,
    or more frames than fit the model's context with `max_new_tokens` to generate. Frames are chosen as upstream's
    evaluation chooses them, `np.linspace(0, total - 1, num_frames, dtype=int)` over the native frames, so a clip
    with fewer than `num_frames` frames yields repeated frames. Each frame is resized right after decoding with PIL
    bicubic to `frame_size` (square; by default the vision tower's input size), upstream's resize, so the processor
    leaves it as is. With `frame_cache` (written by `dataset_builder annotate`), frames of `video_id` (default: the
    file's stem) come from the cache when it holds exactly those frames at that size, else from decoding the file.
    """
    path = str(path)
    name = Path(path).name
    _require_file(path, wording)
    if is_image_path(path):
        return Media(path=path, image=_read_image(path, wording))

    max_frames = model.config.max_frames
    if not 1 <= num_frames <= max_frames:
        raise InputError(
            f"Frames must be between 1 and {max_frames}, got {num_frames}: change {wording.frames_setting}."
        )
    fitting = max_frames_for_context(model, max_new_tokens)
    if num_frames > fitting:
        raise InputError(
            f"{num_frames} frames need {model.config.num_video_tokens(num_frames)} video tokens, more than the "
            f"model's context of {context_length(model)} tokens leaves after {max_new_tokens} new tokens: use at "
            f"most {fitting} frames (or fewer max new tokens)."
        )
    info = _probe(path, wording)
    if info.duration > max_video_seconds:
        raise InputError(
            f"{name!r} lasts {_format_duration(info.duration)}; videos up to {_format_duration(max_video_seconds)} "
            f"are accepted: trim it first, e.g. `ffmpeg -i in.mp4 -t 600 -c copy out.mp4`."
        )
    size = frame_size or model.config.vision_config.image_size
    try:  # upstream's evaluation rule: linspace over native frames, repeating frames of clips shorter than that
        frames, timestamps = load_frames(path, video_id, num_frames=num_frames, cache=frame_cache, size=size)
    except VideoReadError as error:
        raise InputError(str(error).replace(path, name)) from None
    if len(frames) == 0:
        raise InputError(f"{name!r} contains no decodable frames: re-encode it, e.g. to H.264 MP4.")
    return Media(path=path, frames=frames, timestamps=timestamps)


def _format_duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def build_messages(question: str, media_kind: str, history: list[tuple[str, str]] = ()) -> list[dict]:
    """Chat messages for the processor's template: the media goes first in the first user turn.

    `history` holds earlier `(question, answer)` turns about the same media.

        >>> build_messages("And then?", "video", [("What happens?", "A ball rolls.")])[0]["content"][0]
        {'type': 'video'}
    """
    turns = [*history, (question, None)]
    messages = []
    for index, (user_text, assistant_text) in enumerate(turns):
        content = [{"type": media_kind}] if index == 0 else []
        content.append({"type": "text", "text": user_text})
        messages.append({"role": "user", "content": content})
        if assistant_text is not None:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": assistant_text}]})
    return messages


def prepare_inputs(processor, messages: list[dict], media: Media, device: torch.device, dtype: torch.dtype):
    """Tokenize the conversation and preprocess the media into a batch of one on `device`.

    Returns a `BatchFeature` with `input_ids (1, L)`, `attention_mask (1, L)` and either
    `pixel_values_videos (1, T, 3, H, W)` or the anyres image tensors.
    """
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    if media.kind == "video":
        batch = processor(text=[prompt], videos=[media.frames], return_tensors="pt")
    else:
        batch = processor(text=[prompt], images=[media.image], return_tensors="pt")
    return batch.to(device, dtype=dtype)


class _StopOnEvent(StoppingCriteria):
    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> bool:
        return self.event.is_set()


def stream_generate(
    model, processor, batch, max_new_tokens: int, stop: threading.Event | None = None
) -> Iterator[str]:
    """Generate greedily in a background thread, yielding decoded text pieces as they arrive.

    Closing the iterator early (or setting `stop`) stops generation at the next token. An exception raised by
    `generate` is re-raised here instead of leaving the caller waiting.
    """
    stop = stop or threading.Event()
    streamer = TextIteratorStreamer(processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            with torch.inference_mode():
                model.generate(
                    **batch,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([_StopOnEvent(stop)]),
                )
        except BaseException as error:  # noqa: BLE001  (handed to the consumer thread)
            failure.append(error)
            streamer.end()

    thread = threading.Thread(target=run, name="prolongvid-generate", daemon=True)
    thread.start()
    try:
        yield from streamer
    finally:
        stop.set()
        thread.join()
    if failure:
        raise failure[0]


def answer(
    model,
    processor,
    path: str | os.PathLike,
    question: str,
    num_frames: int | None = None,
    max_new_tokens: int = 512,
) -> str:
    """Answer one question about a video or image file. Returns the decoded answer."""
    media = load_media(path, model, num_frames or model.config.num_frames, max_new_tokens)
    batch = prepare_inputs(processor, build_messages(question, media.kind), media, model.device, model.dtype)
    return "".join(stream_generate(model, processor, batch, max_new_tokens))
