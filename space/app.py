"""ProLongVid Space: chat with a long video (or an image), answers streamed token by token.

Run locally (serves on http://127.0.0.1:7860; with no Hub access it falls back to the bundled world model, a tiny
ProLongVid trained only on the kit's synthetic world, which answers the bundled examples):

    python space/app.py
    PROLONGVID_MODEL=path/or/hub-id python space/app.py      # or: python space/app.py --model path/or/hub-id

Settings (environment variables):
    PROLONGVID_MODEL              Hub id or local directory (default prolongvid/ProLongVid-7B-hf); "tiny" = the world model
    PROLONGVID_MAX_VIDEO_MINUTES  longest accepted video (default 180)
    PROLONGVID_MAX_UPLOAD         largest accepted upload (default "1gb")
    PROLONGVID_UPLOAD_QUOTA       total size of the upload folder (default "4gb"); least recently used files go first
    PROLONGVID_UPLOAD_TTL_MINUTES uploads never sent with a question are removed after this long (default 10)
    PROLONGVID_CONCURRENCY        generations running at once (default 1); others wait in the queue
    PROLONGVID_QUEUE_SIZE         requests allowed to wait (default 20)
    GRADIO_SERVER_NAME / _PORT    bind address (default 127.0.0.1:7860; Spaces sets 0.0.0.0)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent
# Uploads live in a folder this app owns (set before gradio is imported, which reads it).
os.environ.setdefault("GRADIO_TEMP_DIR", str(Path(tempfile.gettempdir()) / "prolongvid-space" / "uploads"))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# In a checkout, `python space/app.py` imports the kit from the repository root without installing it; a deployed
# Space has `modeling_prolongvid/` and `processing/` next to this file (see README.md).
if not (APP_DIR / "modeling_prolongvid").is_dir() and (APP_DIR.parent / "modeling_prolongvid").is_dir():
    sys.path.insert(0, str(APP_DIR.parent))
if str(APP_DIR) not in sys.path:  # imported as a file by the tests: its sibling modules must still resolve
    sys.path.insert(0, str(APP_DIR))

try:  # ZeroGPU: a GPU is attached only while a decorated function runs; import before torch initializes CUDA.
    import spaces
except ImportError:
    spaces = None

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
from conversation import ERROR_PREFIX, FILE_REJECTED, parse_conversation  # noqa: E402
from PIL import Image  # noqa: E402
from uploads import UploadFolder, parse_size  # noqa: E402

from modeling_prolongvid.inference import (  # noqa: E402
    TINY_MODEL_ID,
    WORLD_MODEL_DIR,
    InputError,
    Media,
    build_messages,
    hub_reachable,
    load_media,
    load_model,
    prepare_inputs,
    stream_generate,
)

logger = logging.getLogger("prolongvid.space")

DEFAULT_MODEL_ID = "prolongvid/ProLongVid-7B-hf"
EXAMPLES_DIR = APP_DIR / "examples"
# Questions about the bundled world videos that the bundled world model answers correctly (`make_examples.py`).
EXAMPLES_FILE = EXAMPLES_DIR / "examples.json"
DEFAULT_MAX_VIDEO_MINUTES = 180.0
# The frame strip shows frames at least this large (enlarged for display only; the model sees them as decoded).
STRIP_FRAME_SIZE = 160


# ---------------------------------------------------------------- model (loaded once, at startup)


def load_app_model(requested: str | None) -> tuple[object, object, str | None]:
    """Load `(model, processor, demo_notice)`. `demo_notice` (why the world model serves) is None for real weights.

    The default id falls back to the bundled world model (`load_model("tiny")`) when it cannot be loaded (no Hub
    access, no GPU memory), so the Space starts anywhere; an explicitly requested model that fails to load is an error.
    """
    model_id = requested or DEFAULT_MODEL_ID
    if model_id == TINY_MODEL_ID:
        return (*load_model(TINY_MODEL_ID), f"PROLONGVID_MODEL={TINY_MODEL_ID}")
    is_local = Path(model_id).exists()
    if not is_local and not hub_reachable():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(model_id, "config.json"), str):
            if requested:
                raise SystemExit(
                    f"Cannot load {model_id!r}: the Hugging Face Hub is unreachable and it is not cached."
                )
            logger.warning("No Hub access and %s is not cached: serving the bundled world model.", model_id)
            return (*load_model(TINY_MODEL_ID), f"no Hub access to download {model_id}")
    try:
        return (*load_model(model_id), None)
    except (OSError, ValueError, RuntimeError) as error:
        if requested:
            raise
        logger.warning("Could not load %s (%s): serving the bundled world model.", model_id, error)
        return (*load_model(TINY_MODEL_ID), f"{model_id} could not be loaded ({type(error).__name__})")


def world_model_banner(demo_notice: str) -> str:
    """The page's notice when the bundled world model serves: what it is, how well it does (its `results.json`)
    and how to load real weights."""
    stated = json.loads((WORLD_MODEL_DIR / "results.json").read_text())
    return (
        f"> **Demo model** ({demo_notice}): the bundled *ProLongVid-world-tiny*, a tiny ProLongVid trained only on "
        "the kit's synthetic world: coloured scenes, moving shapes (circles, squares, triangles in red, green, blue, "
        f"yellow or white) and brief full-screen flashes. It scores {stated['accuracy']:.1f}% on that world's "
        f"held-out multiple-choice benchmark ({stated['frames']} frames, chance 25%) - try the examples - and knows "
        "nothing about real videos. For real answers load real weights: "
        f"`PROLONGVID_MODEL={DEFAULT_MODEL_ID} python space/app.py` (or `--model`), or a local directory written by "
        "the converter `modeling_prolongvid/convert_prolongvid_weights_to_hf.py`."
    )


@dataclass(frozen=True)
class WorldExample:
    """One bundled example: `question` (the multiple-choice prompt) about `video` (a file in `examples/`), whose
    correct option text is `answer`; `band`, `seed` and `family` say which world video and question family."""

    video: str
    band: str
    seed: int
    family: str
    question: str
    answer: str


@dataclass(frozen=True)
class WorldExamples:
    """`examples.json`: the examples, the settings they were asked with through `VideoChat.respond` (greedy) and
    the SHA-256 of the `model.safetensors` that answered them all correctly."""

    frames: int
    max_new_tokens: int
    weights_sha256: str
    examples: tuple[WorldExample, ...]

    @classmethod
    def read(cls, path: Path = EXAMPLES_FILE) -> WorldExamples:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path} is missing: write it with `python space/make_examples.py`.")
        data = json.loads(Path(path).read_text())
        return cls(
            frames=data["frames"],
            max_new_tokens=data["max_new_tokens"],
            weights_sha256=data["weights_sha256"],
            examples=tuple(WorldExample(**example) for example in data["examples"]),
        )


def frame_strip(media: Media) -> list[tuple]:
    """Gallery items for what the model saw: each frame captioned with its timestamp."""
    if media.kind == "image":
        return [(media.image, "image")]
    return [(_legible(frame), f"{seconds:.1f} s") for frame, seconds in zip(media.frames, media.timestamps)]


def _legible(frame: np.ndarray) -> np.ndarray:
    """A frame enlarged to at least `STRIP_FRAME_SIZE` for display only (the model gets the frame as decoded)."""
    if min(frame.shape[:2]) >= STRIP_FRAME_SIZE:
        return frame
    return np.asarray(Image.fromarray(frame).resize((STRIP_FRAME_SIZE, STRIP_FRAME_SIZE), Image.Resampling.NEAREST))


# ---------------------------------------------------------------- the chat function


class VideoChat:
    """The chat function of the Space over one loaded `(model, processor)`.

    >>> chat = VideoChat(model, processor)  # doctest: +SKIP
    >>> for text, strip in chat.respond({"text": "What happens?", "files": ["clip.mp4"]}, [], 32, 256): ...  # doctest: +SKIP
    """

    def __init__(
        self,
        model,
        processor,
        max_video_seconds: float = DEFAULT_MAX_VIDEO_MINUTES * 60,
        uploads: UploadFolder | None = None,
    ):
        self.model = model
        self.processor = processor
        self.max_video_seconds = max_video_seconds
        self.uploads = uploads

    def respond(
        self,
        message: dict | str,
        history: list[dict],
        num_frames: float,
        max_new_tokens: float = 512,
        request: gr.Request | None = None,
    ) -> Iterator[tuple[str, object]]:
        """Stream an answer: yields `(growing answer, frame strip update)`.

        Problems with the input (no video, unreadable file, too long, too many frames, empty question) are answered
        with a chat message starting with "⚠" instead of an exception, so the app keeps serving.
        """
        question, media_path, earlier = parse_conversation(message, history)
        if media_path is None:
            yield (
                f"{ERROR_PREFIX}Upload a video (or an image) with the paperclip button, then ask about it.",
                gr.skip(),
            )
            return
        if not question:
            yield f"{ERROR_PREFIX}The question is empty: type what you want to know about the video.", gr.skip()
            return
        model = self.model
        try:
            with self._using(media_path, request):
                media = load_media(
                    media_path,
                    model,
                    int(num_frames),
                    int(max_new_tokens),
                    max_video_seconds=self.max_video_seconds,
                    frame_size=None,  # the vision tower's size, resized once with PIL as upstream
                )
        except InputError as error:
            yield f"{ERROR_PREFIX}{FILE_REJECTED}{error}", []
            return
        except Exception as error:  # a reader bug must not take the app down: report it and keep serving
            logger.exception("reading %s failed", media_path)
            name = Path(media_path).name
            yield f"{ERROR_PREFIX}{FILE_REJECTED}could not read {name!r} ({type(error).__name__}: {error}).", []
            return
        yield "", frame_strip(media)

        text = ""
        try:
            messages = build_messages(question, media.kind, earlier)
            batch = prepare_inputs(self.processor, messages, media, model.device, model.dtype)
            for piece in stream_generate(model, self.processor, batch, int(max_new_tokens)):
                text += piece
                if piece:
                    yield text, gr.skip()
        except Exception as error:  # e.g. out of GPU memory: tell this user, log it, keep serving the others
            logger.exception("generation failed")
            yield f"{ERROR_PREFIX}Generation failed ({type(error).__name__}: {error}). Try fewer frames.", gr.skip()
            return
        if not text.strip():
            yield "(The model returned an empty answer.)", gr.skip()

    def _using(self, path: str, request: gr.Request | None):
        if self.uploads is None:
            return contextlib.nullcontext()
        return self.uploads.use(path, getattr(request, "session_hash", None))

    def end_session(self, request: gr.Request) -> None:
        """Called when a browser tab closes: its uploads are removed."""
        if self.uploads is not None:
            self.uploads.release_session(request.session_hash)


# ---------------------------------------------------------------- the interface


def default_frame_count(config) -> int:
    """The Frames slider's starting value: the checkpoint's `num_frames` (64 when it names none)."""
    return config.num_frames or 64


def build_demo(chat: VideoChat, demo_notice: str | None = None) -> gr.Blocks:
    """The Blocks app around `chat`: settings on top, the chat on the left, the sampled frames with their timestamps
    on the right. `demo_notice` (why the bundled world model is serving) puts its banner on the page; the examples
    are the bundled world videos with questions from `examples/examples.json`.

        >>> demo = build_demo(VideoChat(model, processor))  # doctest: +SKIP
        >>> demo.queue().launch()  # doctest: +SKIP
    """
    config = chat.model.config
    default_frames = default_frame_count(config)
    min_frames = min(32, default_frames)
    banner = world_model_banner(demo_notice) if demo_notice else f"Model: `{chat.model.name_or_path}`."
    description = (
        "Upload a video (or an image) with the paperclip button and ask about it; follow-up questions keep the video. "
        f"The model sees **Frames** frames sampled uniformly over the whole video.\n\n{banner}"
    )
    bundled = WorldExamples.read()
    examples = [  # [message, frames, max new tokens]
        [
            {"text": example.question, "files": [str(EXAMPLES_DIR / example.video)]},
            min(max(bundled.frames, min_frames), config.max_frames),
            bundled.max_new_tokens,
        ]
        for example in bundled.examples
    ]
    respond = chat.respond if spaces is None else spaces.GPU(duration=120)(chat.respond)
    with gr.Blocks(title="ProLongVid", delete_cache=(1800, 3600)) as demo:
        gr.Markdown("# ProLongVid: long-video chat")
        gr.Markdown(description, elem_id="model-notice")
        with gr.Row():
            frames = gr.Slider(min_frames, config.max_frames, value=default_frames, step=1, label="Frames")
            max_new_tokens = gr.Slider(16, 2048, value=512, step=16, label="Max new tokens")
        strip = gr.Gallery(
            label="Frames the model saw",
            columns=4,
            height=520,
            format="jpeg",
            object_fit="contain",
            elem_id="frame-strip",
            render=False,
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                gr.ChatInterface(
                    respond,
                    multimodal=True,
                    textbox=gr.MultimodalTextbox(
                        file_types=["video", "image"],
                        file_count="single",
                        sources=["upload"],
                        placeholder="Attach a video or image, then ask a question",
                        stop_btn=True,  # ChatInterface takes the stop button from a textbox passed in
                        elem_id="chat-input",
                    ),
                    chatbot=gr.Chatbot(height=460, elem_id="chatbot", label="Chat"),
                    additional_inputs=[frames, max_new_tokens],
                    additional_outputs=[strip],
                    examples=examples or None,
                    cache_examples=False,
                    api_name="chat",
                    fill_height=False,
                )
            with gr.Column(scale=2):
                strip.render()
        demo.unload(chat.end_session)
    return demo


def main(argv: list[str] | None = None) -> None:
    """`python space/app.py [--model ID_OR_PATH]`: load the model once, then serve until interrupted."""
    parser = argparse.ArgumentParser(
        description="ProLongVid Gradio Space (settings also come from PROLONGVID_* environment variables).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--model",
        default=os.environ.get("PROLONGVID_MODEL") or None,
        help=f"Hub id or directory (default: {DEFAULT_MODEL_ID}, with the bundled world model as its offline fallback).",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    model, processor, demo_notice = load_app_model(args.model)
    max_minutes = float(os.environ.get("PROLONGVID_MAX_VIDEO_MINUTES", DEFAULT_MAX_VIDEO_MINUTES))
    max_upload = os.environ.get("PROLONGVID_MAX_UPLOAD", "1gb")
    uploads = UploadFolder(
        os.environ["GRADIO_TEMP_DIR"],
        quota_bytes=max(parse_size(os.environ.get("PROLONGVID_UPLOAD_QUOTA", "4gb")), parse_size(max_upload)),
        orphan_seconds=float(os.environ.get("PROLONGVID_UPLOAD_TTL_MINUTES", "10")) * 60,
    )
    chat = VideoChat(model, processor, max_video_seconds=max_minutes * 60, uploads=uploads)
    demo = build_demo(chat, demo_notice)
    demo.queue(
        default_concurrency_limit=int(os.environ.get("PROLONGVID_CONCURRENCY", "1")),
        max_size=int(os.environ.get("PROLONGVID_QUEUE_SIZE", "20")),
    ).launch(
        max_file_size=max_upload,
        allowed_paths=[str(EXAMPLES_DIR)],
        show_error=True,
        app_kwargs={"middleware": [uploads.middleware()]},
    )


if __name__ == "__main__":
    main()
