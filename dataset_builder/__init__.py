"""ProLongVid annotation pipeline and dataset builder (paper section 3).

Raw videos -> 1-fps frames -> frame captions + image/text features -> semantic segmentation -> dense captions
(per segment, then per video) -> QA of four task types by three strategies -> Parquet configs ``captions``, ``qa``,
``stage1``/``stage2``/``stage3`` with a dataset card.

Command line::

    export OPENAI_API_KEY=...
    python -m dataset_builder annotate --videos videos/ --out work [--base-url URL] [--model gpt-4o] \\
        [--frame-captioner ID_OR_PATH] [--embedder ID_OR_PATH] [--threshold 0.7] [--segmentation semantic|fixed] \\
        [--concurrency N] [--shard I/N] [--dry-run] [--batch]
    python -m dataset_builder build --work-dir work --out dataset [--push-to-hub user/repo]

The names below are imported from their submodule on first access (as transformers' ``_LazyModule`` does), so
``import dataset_builder`` and the pure steps (``dataset_builder.segmentation``) load neither torch nor datasets.

Python:
    >>> import numpy as np
    >>> from dataset_builder import fixed_segments, segment_frames
    >>> features = np.repeat(np.eye(2), 30, axis=0)  # two "scenes" of 30 frames
    >>> [(s.start, s.end) for s in segment_frames(features, features, np.arange(60.0), duration=60.0)]
    [(0.0, 30.0), (30.0, 60.0)]
    >>> len(fixed_segments(np.arange(60.0), 60.0))
    6
    >>> from dataset_builder import build_dataset  # a work dir -> Parquet configs + card (see dataset_builder.build)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_SUBMODULE_OF = {
    "build_dataset": "build",
    "push_to_hub": "build",
    "Florence2Captioner": "frame_models",
    "FrameCaptioner": "frame_models",
    "FrameEmbedder": "frame_models",
    "ImageTextEmbedder": "frame_models",
    "AnnotationRecord": "records",
    "LocalRecord": "records",
    "CAPTIONS_FEATURES": "schemas",
    "QA_FEATURES": "schemas",
    "TASK_TYPES": "schemas",
    "TRAINING_FEATURES": "schemas",
    "Segment": "segmentation",
    "fixed_segments": "segmentation",
    "segment_frames": "segmentation",
    "similarity_matrix": "segmentation",
}

__all__ = [
    "CAPTIONS_FEATURES",
    "QA_FEATURES",
    "TASK_TYPES",
    "TRAINING_FEATURES",
    "AnnotationRecord",
    "Florence2Captioner",
    "FrameCaptioner",
    "FrameEmbedder",
    "ImageTextEmbedder",
    "LocalRecord",
    "Segment",
    "build_dataset",
    "fixed_segments",
    "push_to_hub",
    "segment_frames",
    "similarity_matrix",
]

if TYPE_CHECKING:
    from .build import build_dataset, push_to_hub
    from .frame_models import Florence2Captioner, FrameCaptioner, FrameEmbedder, ImageTextEmbedder
    from .records import AnnotationRecord, LocalRecord
    from .schemas import CAPTIONS_FEATURES, QA_FEATURES, TASK_TYPES, TRAINING_FEATURES
    from .segmentation import Segment, fixed_segments, segment_frames, similarity_matrix


def __getattr__(name: str) -> Any:
    if name not in _SUBMODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_SUBMODULE_OF[name]}", __name__), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
