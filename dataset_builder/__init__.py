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

Python::

    >>> from dataset_builder import segment_frames, build_dataset
    >>> from datasets import load_dataset
    >>> build_dataset("work", "dataset")  # doctest: +SKIP
    >>> load_dataset("dataset", "stage1", split="train")  # doctest: +SKIP
"""

from .build import build_dataset, push_to_hub
from .frame_models import Florence2Captioner, FrameCaptioner, FrameEmbedder, ImageTextEmbedder
from .schemas import CAPTIONS_FEATURES, QA_FEATURES, TASK_TYPES, TRAINING_FEATURES
from .segmentation import fixed_segments, segment_frames, similarity_matrix

__all__ = [
    "CAPTIONS_FEATURES",
    "QA_FEATURES",
    "TASK_TYPES",
    "TRAINING_FEATURES",
    "Florence2Captioner",
    "FrameCaptioner",
    "FrameEmbedder",
    "ImageTextEmbedder",
    "build_dataset",
    "fixed_segments",
    "push_to_hub",
    "segment_frames",
    "similarity_matrix",
]
