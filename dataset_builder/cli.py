"""The argument parser of ``python -m dataset_builder`` (:func:`parser`: ``annotate``, ``build`` and ``import``) and
the values its help states; the commands themselves are in ``dataset_builder/__main__.py``.

Example:
    >>> from dataset_builder.cli import parser
    >>> args = parser().parse_args(["build", "--work-dir", "work", "--out", "dataset"])
    >>> args.command, args.work_dir
    ('build', 'work')
"""

from __future__ import annotations

import argparse

# Only light modules here: `--help` must not wait for torch, datasets or openai (the commands import those).
from .frame_models import DEFAULT_CAPTIONER, DEFAULT_EMBEDDER
from .limits import DEFAULT_IMAGE_DETAIL, MAX_CHARS_PER_TOKEN, MAX_FRAMES_PER_REQUEST, STAGE_MAX_TOKENS
from .segmentation import DEFAULT_MIN_SEGMENT_SECONDS, DEFAULT_THRESHOLD, FIXED_SEGMENT_SECONDS

IMAGE_CONFIGS = (
    "image_alignment",
    "image_knowledge",
    "image_sft",
)  # as dataset_builder.schemas (which loads datasets)
EXIT_INCOMPLETE = 3  # some videos failed or still wait on a batch
SCALE_HINT = 'pip install -e ".[scale]"'  # as dataset_builder.ray_engine (which needs ray)
ANNOTATE_EXIT_STATUS = (
    "exit status: 0 when every video of the shard is done; 2 when it refused to start (bad arguments, the shard "
    f"locked by another run, frame models that cannot be loaded); {EXIT_INCOMPLETE} when some videos failed or still "
    "wait on a batch (re-run to retry them; the failures are counted by reason, their reasons are in OUT/errors)"
)


def stage_tokens(text: str) -> tuple[str | None, int]:
    """``--max-tokens`` value: ``"N"`` -> ``(None, N)`` (every stage), ``"qa=N"`` -> ``("qa", N)``."""
    stage, _, value = text.rpartition("=")
    return stage or None, int(value)


def parser() -> argparse.ArgumentParser:
    """The ``annotate``, ``build`` and ``import`` sub-commands; every option's help shows its default."""
    main = argparse.ArgumentParser(prog="python -m dataset_builder", description="ProLongVid annotation pipeline.")
    commands = main.add_subparsers(dest="command", required=True)
    a = commands.add_parser(
        "annotate",
        help="annotate videos into a resumable work dir",
        description="Local stage (1 fps frames, frame models, segmentation) and API stages (dense captions, QA) over "
        "one shard of videos, into an append-only work dir that re-runs resume from. The API key is read from "
        "OPENAI_API_KEY (any value, e.g. EMPTY, for a local server).",
        epilog=ANNOTATE_EXIT_STATUS,
    )
    a.add_argument("--videos", required=True, help="directory of videos or a .jsonl/.csv/.txt manifest")
    a.add_argument("--out", required=True, help="work dir (created; re-runs resume from it)")
    a.add_argument(
        "--base-url", default=None, help="OpenAI-compatible endpoint, e.g. a local vLLM server (default: OpenAI)"
    )
    a.add_argument("--model", default="gpt-4o", help="chat model of the API stages (default: %(default)s)")
    a.add_argument(
        "--frame-captioner",
        default=DEFAULT_CAPTIONER,
        help="Florence-2 id or local path, or a Python object MODULE:ATTRIBUTE (a class, factory or instance with "
        "caption(frames)), e.g. dataset_builder.world.perception:WorldFrameCaptioner (default: %(default)s)",
    )
    a.add_argument(
        "--embedder",
        default=DEFAULT_EMBEDDER,
        help="CLIP/SigLIP-style id or local path, or a Python object MODULE:ATTRIBUTE (with embed_images(frames) and "
        "embed_texts(texts)), e.g. dataset_builder.world.perception:WorldFrameEmbedder (default: %(default)s)",
    )
    a.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help="agglomerative distance threshold delta; larger: fewer, longer segments (default: %(default)s)",
    )
    a.add_argument(
        "--min-segment-seconds",
        type=float,
        default=DEFAULT_MIN_SEGMENT_SECONDS,
        help="shorter segments are merged into a neighbour; 0 keeps them (default: %(default)s)",
    )
    a.add_argument(
        "--segmentation",
        choices=("semantic", "fixed"),
        default="semantic",
        help="semantic (frame models + clustering) or fixed-length segments (default: %(default)s)",
    )
    a.add_argument(
        "--fixed-seconds",
        type=float,
        default=FIXED_SEGMENT_SECONDS,
        help="segment length for --segmentation fixed (default: %(default)s)",
    )
    a.add_argument(
        "--frame-size", type=int, default=512, help="long side of decoded frames, pixels (default: %(default)s)"
    )
    a.add_argument(
        "--frames-per-segment",
        type=int,
        default=MAX_FRAMES_PER_REQUEST,
        help="most frames sent per segment caption: its 1-fps frames, evenly thinned beyond this; --dry-run shows the "
        "tokens and cost (default: %(default)s, i.e. 1 fps for segments up to 2 minutes)",
    )
    a.add_argument(
        "--frames-short-video",
        type=int,
        default=MAX_FRAMES_PER_REQUEST,
        help="most frames sent for the single caption of a video under 60 s (default: %(default)s)",
    )
    a.add_argument(
        "--questions-per-type", type=int, default=1, help="questions asked per task type (default: %(default)s)"
    )
    a.add_argument("--concurrency", type=int, default=16, help="API requests in flight (default: %(default)s)")
    a.add_argument(
        "--videos-in-flight", type=int, default=None, help="videos processed at once (default: --concurrency)"
    )
    a.add_argument(
        "--shard", default="0/1", help="I/N: process the I-th of N deterministic shards (default: %(default)s)"
    )
    a.add_argument("--timeout", type=float, default=120.0, help="seconds per API request (default: %(default)s)")
    a.add_argument("--max-retries", type=int, default=6, help="retries on 429/5xx/timeouts (default: %(default)s)")
    a.add_argument(
        "--max-invalid-retries",
        type=int,
        default=2,
        help="retries on malformed or schema-invalid answers (default: %(default)s)",
    )
    a.add_argument(
        "--backoff-base",
        type=float,
        default=1.0,
        help="seconds; exponential backoff with full jitter (default: %(default)s)",
    )
    a.add_argument(
        "--max-tokens",
        type=stage_tokens,
        action="append",
        metavar="[STAGE=]N",
        help="max_tokens sent per answer, for every stage or one (repeatable); answers longer than "
        f"{MAX_CHARS_PER_TOKEN} characters per token are refused (default: "
        f"{' '.join(f'{stage}={n}' for stage, n in STAGE_MAX_TOKENS.items())})",
    )
    a.add_argument(
        "--response-format",
        choices=("json_schema", "json_object"),
        default="json_schema",
        help="QA answers: Structured Outputs with a strict JSON schema, or JSON mode; a server that refuses json_schema "
        "is detected at its first refusal and JSON mode is used for the rest of the run (default: %(default)s)",
    )
    a.add_argument(
        "--image-detail",
        choices=("auto", "low", "high"),
        default=DEFAULT_IMAGE_DETAIL,
        help="image_url detail of the frames sent: low is 85 tokens a frame seen at 512 x 512 (nothing lost at "
        "--frame-size 512), high/auto 85 + 170 per 512-px tile (default: %(default)s)",
    )
    a.add_argument(
        "--price-input",
        type=float,
        default=None,
        help="USD per 1M input tokens (default: the price table's entry for --model)",
    )
    a.add_argument(
        "--price-output",
        type=float,
        default=None,
        help="USD per 1M output tokens (default: the price table's entry for --model)",
    )
    a.add_argument("--dry-run", action="store_true", help="run local stages, count calls and tokens, call nothing")
    a.add_argument("--batch", action="store_true", help="use the OpenAI Batch API (submit, poll, collect, resume)")
    a.add_argument(
        "--poll-interval",
        type=float,
        default=30.0,
        help="seconds between batch status polls (default: %(default)s)",
    )
    a.add_argument("--no-progress", action="store_true", help="no progress bars")
    a.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process; ray: Ray Data over a cluster (decode tasks, frame-model actors, API actors under "
        f"one global rate limit; needs the scale extra: {SCALE_HINT}) (default: %(default)s)",
    )
    a.add_argument(
        "--ray-address",
        default=None,
        help="--engine ray: the cluster to join ('auto': the one started with `ray start`; default: a local one)",
    )
    a.add_argument(
        "--ray-workers",
        type=int,
        default=None,
        help="--engine ray: API worker actors, and videos decoded at once (default: the cluster's CPUs)",
    )
    a.add_argument(
        "--requests-per-minute",
        type=float,
        default=None,
        help="--engine ray: the account's RPM limit, shared by all workers; --concurrency bounds requests in flight "
        "over all of them (default: no RPM limit)",
    )
    a.add_argument(
        "--tokens-per-minute",
        type=float,
        default=None,
        help="--engine ray: the account's TPM limit (prompt estimate + max_tokens per request, as OpenAI counts), "
        "shared by all workers (default: no TPM limit)",
    )
    a.add_argument("--no-frame-cache", action="store_true", help="do not keep the 1 fps frames for training")
    a.add_argument(
        "--frame-cache-size", type=int, default=384, help="cached frame side, pixels (default: %(default)s)"
    )
    a.add_argument(
        "--frame-cache-resize",
        choices=("square", "short_side"),
        default="square",
        help="resize cached frames to a square or by their short side (default: %(default)s)",
    )
    a.add_argument(
        "--frame-cache-format",
        choices=("jpeg", "webp", "png"),
        default="jpeg",
        help="image format of cached frames; png is lossless (default: %(default)s)",
    )
    a.add_argument(
        "--frame-cache-quality", type=int, default=95, help="quality of cached frames (default: %(default)s)"
    )
    b = commands.add_parser(
        "build",
        help="build Parquet configs + dataset card from a work dir",
        description="Turn a work dir's finished annotations into the Parquet configs captions, qa and "
        "stage1/stage2/stage3, plots and a dataset card (README.md) that load_dataset(OUT, CONFIG) reads; "
        "optionally upload the folder to a Hub dataset repo.",
    )
    b.add_argument("--work-dir", required=True, help="work dir written by `annotate`")
    b.add_argument("--out", required=True, help="dataset folder (created; its configs are replaced)")
    b.add_argument(
        "--copy-videos", action="store_true", help="copy videos into OUT/videos and reference them relatively"
    )
    b.add_argument(
        "--turns-per-row",
        type=int,
        default=1,
        metavar="N",
        help="QA pairs per training row: N > 1 groups a video's questions into multi-turn conversations, shortest "
        "answer first (default: %(default)s)",
    )
    b.add_argument("--push-to-hub", default=None, metavar="REPO", help="upload the built dataset to this Hub repo")
    b.add_argument("--private", action="store_true", help="create the Hub repo as private")
    i = commands.add_parser(
        "import",
        help="import LLaVA-NeXT-format annotations (JSON/JSONL/Parquet) as training configs + dataset card",
        description="Turn LLaVA-NeXT-format rows ({id, video|image, conversations}) into the training configs the "
        "recipes read: stage1/stage2/stage3 by each video's probed duration, or one image config; rows whose media "
        "is missing or unreadable, and malformed rows, are listed with their reason in OUT/import_errors.jsonl. "
        "A killed import resumes where it stopped when run again.",
    )
    i.add_argument("--annotations", required=True, help="a .json/.jsonl/.parquet file or a directory of them")
    i.add_argument("--media-root", required=True, help="directory the rows' video/image paths are relative to")
    i.add_argument("--out", required=True, help="dataset folder (created; re-runs resume it)")
    i.add_argument(
        "--source", default=None, help="source of every row (default: the row's data_source, else the file name)"
    )
    i.add_argument(
        "--modality",
        choices=("video", "image"),
        default="video",
        help="video rows go to stage1/2/3 by duration, image rows to one image config (default: %(default)s)",
    )
    i.add_argument(
        "--image-config",
        choices=IMAGE_CONFIGS,
        default="image_sft",
        help="config of image rows (default: %(default)s)",
    )
    i.add_argument(
        "--probe",
        choices=("header", "full"),
        default="header",
        help="read durations from the header, or demux every packet (also finds truncated files) "
        "(default: %(default)s)",
    )
    i.add_argument("--workers", type=int, default=16, help="files probed at once (default: %(default)s)")
    i.add_argument("--chunk-rows", type=int, default=10_000, help="rows per resumable chunk (default: %(default)s)")
    i.add_argument("--restart", action="store_true", help="discard an earlier import into OUT and start over")
    i.add_argument("--no-progress", action="store_true", help="no progress bar")
    return main
