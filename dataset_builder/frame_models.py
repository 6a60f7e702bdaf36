"""Pluggable per-frame models: a captioner (caption C_i per frame) and an image-text embedder (f^I_i, f^C_i).

Anything with the :class:`FrameCaptioner` / :class:`FrameEmbedder` methods can be passed to the pipeline. The defaults
load Hugging Face checkpoints by id or local path:

* :class:`Florence2Captioner` -- ``Florence2ForConditionalGeneration`` with the ``<CAPTION>`` task
  (default ``microsoft/Florence-2-large``), greedy decoding, batched.
* :class:`ImageTextEmbedder` -- any ``AutoModel`` with ``get_image_features`` / ``get_text_features`` in one space
  (default ``google/siglip-so400m-patch14-384``; CLIP works too), batched.

torch and transformers are imported when a model is built, not with this module (the command line and the pure
steps import it for the protocols and the default names).

Loading never waits on an unreachable Hub: a Hub id is loaded from the local cache alone when the Hub does not accept a
connection within seconds (or ``HF_HUB_OFFLINE=1``), and one that is not cached then fails at once
(:func:`local_files_only`) -- instead of minutes of download retries. :func:`load_frame_model` turns any failure into
an error that names the model and the fix; ``annotate`` loads both models through it once, before any video.

Example (downloads the checkpoints; any local path works too)::

    >>> import numpy as np
    >>> from dataset_builder.frame_models import Florence2Captioner, ImageTextEmbedder
    >>> captioner = Florence2Captioner("microsoft/Florence-2-base")  # doctest: +SKIP
    >>> embedder = ImageTextEmbedder("google/siglip-so400m-patch14-384")  # doctest: +SKIP
    >>> frames = np.zeros((8, 384, 384, 3), dtype=np.uint8)
    >>> captions = captioner.caption(frames)  # 8 strings  # doctest: +SKIP
    >>> embedder.embed_images(frames).shape, embedder.embed_texts(captions).shape  # doctest: +SKIP
    ((8, 1152), (8, 1152))
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from modeling_prolongvid.hub import hub_reachable

if TYPE_CHECKING:
    import torch

DEFAULT_CAPTIONER = "microsoft/Florence-2-large"
DEFAULT_EMBEDDER = "google/siglip-so400m-patch14-384"
# `package.module:attribute` (dotted on both sides); a Hub id or a path never has this form, an existing path wins.
OBJECT_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def local_files_only(model: str) -> bool:
    """Whether ``model`` (a folder or a Hub id) must be loaded without the Hub: a folder, or a cached Hub id while the
    Hub is unreachable.

    Raises:
        OSError: within seconds, when ``model`` is neither a folder nor cached and the Hub is unreachable.
    """
    if Path(model).is_dir():
        return True
    if hub_reachable():
        return False
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(model, "config.json"), str):
        return True
    raise OSError(f"{model} is not a local folder nor in the Hugging Face cache, and the Hub is unreachable")


def load_frame_model(role: str, option: str, model: str, factory: Callable[[], object]) -> object:
    """``factory()``, once; any failure becomes a ``ValueError`` naming ``role`` (e.g. "frame captioner"), the model
    and the fix (``option PATH`` for a local copy, or the cached copy with ``HF_HUB_OFFLINE=1``).

    Example:
        >>> try:
        ...     load_frame_model("embedder", "--embedder", "nobody/missing", lambda: ImageTextEmbedder("nobody/missing"))
        ... except ValueError as error:
        ...     print(str(error).split(" (")[0], "--embedder PATH" in str(error))
        Cannot load the embedder 'nobody/missing' True
    """
    try:
        return factory()
    except Exception as error:
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise ValueError(
            f"Cannot load the {role} {model!r} ({type(error).__name__}: {first_line}). Fix: pass {option} PATH (a "
            f"local copy of the model), or download it once where the Hub is reachable (`hf download {model}`) and "
            "run with HF_HUB_OFFLINE=1 so the cached copy is used without network access."
        ) from error


def object_path_factory(spec: str, methods: tuple[str, ...]) -> Callable[[], object] | None:
    """For a Python object path ``module:attribute``, the factory of the frame model it names; ``None`` for anything
    else (a model id or a local path).

    The attribute is a class or a factory (called with no arguments) or a ready instance, whose objects have
    ``methods``. Importing happens here, so a bad path fails at once with the fix.

    Example:
        >>> factory = object_path_factory("dataset_builder.world.perception:WorldFrameCaptioner", ("caption",))
        >>> factory().name, object_path_factory("microsoft/Florence-2-large", ("caption",))
        ('world-perception', None)

    Raises:
        ValueError: the module cannot be imported, it has no such attribute, or the attribute lacks ``methods``.
    """
    if not OBJECT_PATH.fullmatch(spec) or Path(spec).exists():
        return None
    module_name, _, attribute = spec.partition(":")
    try:
        target = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as error:
        raise ValueError(
            f"Cannot import the frame model {spec!r} ({type(error).__name__}: {error}). Fix: pass MODULE:ATTRIBUTE "
            "with an importable module (on PYTHONPATH) and a class, factory or instance in it, e.g. "
            "dataset_builder.world.perception:WorldFrameCaptioner."
        ) from None
    missing = [method for method in methods if not callable(getattr(target, method, None))]
    if not missing and not isinstance(target, type):
        return lambda: target  # a ready instance
    if missing and (isinstance(target, type) or not callable(target)):
        raise ValueError(
            f"{spec} has no method(s) {missing}; a frame model passed as MODULE:ATTRIBUTE needs {list(methods)}."
        )
    return target  # a class or a factory


@runtime_checkable
class FrameCaptioner(Protocol):
    name: str

    def caption(self, frames: np.ndarray) -> list[str]:
        """``frames (T, H, W, 3) uint8`` -> ``T`` captions."""


@runtime_checkable
class FrameEmbedder(Protocol):
    name: str

    def embed_images(self, frames: np.ndarray) -> np.ndarray:
        """``frames (T, H, W, 3) uint8`` -> ``(T, D)`` float32 image features."""

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """``T`` strings -> ``(T, D)`` float32 text features in the image feature space."""


def _batches(count: int, size: int) -> list[slice]:
    return [slice(start, min(count, start + size)) for start in range(0, count, size)]


def _pooled(output: torch.Tensor | object) -> torch.Tensor:
    """transformers 5 returns ``BaseModelOutputWithPooling`` from ``get_*_features``; older models a tensor."""
    import torch

    return output if isinstance(output, torch.Tensor) else output.pooler_output


class Florence2Captioner:
    """Florence-2 frame captioner. ``caption(frames (T, H, W, 3))`` -> ``T`` strings, ``batch_size`` at a time."""

    def __init__(
        self,
        model: str = DEFAULT_CAPTIONER,
        task: str = "<CAPTION>",
        batch_size: int = 16,
        max_new_tokens: int = 40,
        device: str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        offline = local_files_only(model)  # before the heavy imports: an unloadable model fails in seconds
        import torch
        from transformers import AutoProcessor, Florence2ForConditionalGeneration

        self.name, self.task, self.batch_size, self.max_new_tokens = model, task, batch_size, max_new_tokens
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = dtype or (torch.float16 if self.device.startswith("cuda") else torch.float32)
        self.processor = AutoProcessor.from_pretrained(model, local_files_only=offline)
        self.model = Florence2ForConditionalGeneration.from_pretrained(model, dtype=dtype, local_files_only=offline)
        self.model = self.model.to(self.device).eval()

    def caption(self, frames: np.ndarray) -> list[str]:
        import torch

        captions: list[str] = []
        with torch.inference_mode():
            for batch in _batches(len(frames), self.batch_size):
                images = list(frames[batch])
                inputs = self.processor(text=[self.task] * len(images), images=images, return_tensors="pt")
                inputs = inputs.to(self.device)
                inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
                generated = self.model.generate(
                    **inputs, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1
                )
                captions.extend(t.strip() for t in self.processor.batch_decode(generated, skip_special_tokens=True))
        return captions


class ImageTextEmbedder:
    """CLIP/SigLIP-style embedder: image and text features in one space, ``batch_size`` at a time."""

    def __init__(self, model: str = DEFAULT_EMBEDDER, batch_size: int = 64, device: str | None = None) -> None:
        offline = local_files_only(model)  # before the heavy imports: an unloadable model fails in seconds
        import torch
        from transformers import AutoModel, AutoProcessor

        self.name, self.batch_size = model, batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.processor = AutoProcessor.from_pretrained(model, local_files_only=offline)
        self.model = AutoModel.from_pretrained(model, local_files_only=offline).to(self.device).eval()
        if not (hasattr(self.model, "get_image_features") and hasattr(self.model, "get_text_features")):
            raise ValueError(f"{model} has no get_image_features/get_text_features; use a CLIP or SigLIP checkpoint.")

    def embed_images(self, frames: np.ndarray) -> np.ndarray:
        import torch

        features = []
        with torch.inference_mode():
            for batch in _batches(len(frames), self.batch_size):
                inputs = self.processor(images=list(frames[batch]), return_tensors="pt").to(self.device)
                features.append(_pooled(self.model.get_image_features(**inputs)).float().cpu())
        return torch.cat(features).numpy()

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        features = []
        with torch.inference_mode():
            for batch in _batches(len(texts), self.batch_size):
                inputs = self.processor(text=texts[batch], padding="max_length", truncation=True, return_tensors="pt")
                features.append(_pooled(self.model.get_text_features(**inputs.to(self.device))).float().cpu())
        return torch.cat(features).numpy()
