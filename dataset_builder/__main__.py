"""Command line: ``python -m dataset_builder annotate ...``, ``build ...`` and ``import ...``.

Examples::

    export OPENAI_API_KEY=...            # the key is read from the environment only
    python -m dataset_builder annotate --videos videos/ --out work --concurrency 32 --shard 0/4
    python -m dataset_builder annotate --videos manifest.jsonl --out work --dry-run
    python -m dataset_builder annotate --videos videos/ --out work --base-url http://localhost:8000/v1 --model Qwen/Qwen2-VL-7B-Instruct
    python -m dataset_builder build --work-dir work --out dataset [--push-to-hub user/prolongvid-data]
    python -m dataset_builder import --annotations ProLongVid_data/annotations --media-root ProLongVid_data --out data

Exit status of ``annotate``: 0 when every video of the shard is done; 2 when it refused to start (bad arguments, the
shard locked by another run, frame models that cannot be loaded); 3 when some videos failed or still wait on a batch
(re-run to retry them; the counts by reason are printed, the reasons are in ``WORK/errors``).
"""

from __future__ import annotations

import argparse
import sys

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


def load_frame_models(args: argparse.Namespace, captioner_factory=None, embedder_factory=None) -> tuple:
    """``(captioner, embedder)`` for semantic segmentation, else ``(None, None)``: loaded once, before any video and
    before the heavy imports, so a model that cannot be loaded stops the run in seconds with the fix."""
    if args.segmentation != "semantic":
        return None, None
    from functools import partial

    from .frame_models import Florence2Captioner, ImageTextEmbedder, load_frame_model, object_path_factory

    captioner_factory = (
        captioner_factory
        or object_path_factory(args.frame_captioner, ("caption",))
        or partial(Florence2Captioner, args.frame_captioner)
    )
    embedder_factory = (
        embedder_factory
        or object_path_factory(args.embedder, ("embed_images", "embed_texts"))
        or partial(ImageTextEmbedder, args.embedder)
    )
    return (
        load_frame_model("frame captioner", "--frame-captioner", args.frame_captioner, captioner_factory),
        load_frame_model("embedder", "--embedder", args.embedder, embedder_factory),
    )


def annotate_command(args: argparse.Namespace, captioner_factory=None, embedder_factory=None) -> int:
    if args.engine == "ray":
        if args.batch:
            raise ValueError("--batch runs in one process (the Batch API scales on OpenAI's side); drop --engine ray.")
        factories = frame_model_factories(args, captioner_factory, embedder_factory)
    else:
        captioner, embedder = load_frame_models(args, captioner_factory, embedder_factory)
    import asyncio

    from .annotate import Annotator, write_usage
    from .api import ApiClient
    from .batch import BatchRunner
    from .local_stage import LocalSettings
    from .plan import PlanSettings
    from .store import JsonlStore
    from .videos import list_videos, parse_shard, shard_items

    index, count = parse_shard(args.shard)
    shard_name = f"shard-{index:05d}-of-{count:05d}"
    items = shard_items(list_videos(args.videos), index, count)
    price = (args.price_input, args.price_output) if args.price_input is not None else None
    max_tokens = {}
    for stage, tokens in args.max_tokens or ():
        max_tokens |= {stage: tokens} if stage else dict.fromkeys(STAGE_MAX_TOKENS, tokens)
    api_kwargs = dict(
        model=args.model, base_url=args.base_url, concurrency=args.concurrency, timeout=args.timeout,
        max_retries=args.max_retries, max_invalid_retries=args.max_invalid_retries, backoff_base=args.backoff_base,
        max_tokens=max_tokens, image_detail=args.image_detail, dry_run=args.dry_run, batch=args.batch, price=price,
        response_format=args.response_format,
    )  # fmt: skip
    local = LocalSettings(
        segmentation=args.segmentation, threshold=args.threshold, min_segment_seconds=args.min_segment_seconds,
        fixed_seconds=args.fixed_seconds, frame_size=args.frame_size, captioner=args.frame_captioner,
        embedder=args.embedder,
    )  # fmt: skip
    plan = PlanSettings(args.frames_per_segment, args.frames_short_video, questions_per_type=args.questions_per_type)
    frame_cache_kwargs = None
    if not args.no_frame_cache and not args.dry_run:
        frame_cache_kwargs = dict(
            cache_dir=f"{args.out}/frame_cache", image_format=args.frame_cache_format,
            quality=args.frame_cache_quality, size=args.frame_cache_size, resize_mode=args.frame_cache_resize,
        )  # fmt: skip
    workers = args.videos_in_flight or args.concurrency
    print(f"annotate: {len(items)} videos in shard {index}/{count} -> {args.out}", file=sys.stderr)
    if args.engine == "ray":
        from .ray_engine import RayOptions, annotate_on_ray

        options = RayOptions(args.ray_address, args.ray_workers, args.requests_per_minute, args.tokens_per_minute)
        run = annotate_on_ray(
            items, args.out, shard_name, api_kwargs, local, plan, frame_cache_kwargs, options, workers, factories,
            not args.no_progress,
        )  # fmt: skip
        if not args.dry_run:
            write_usage(args.out, shard_name, run, run.stats)
        return report(run.usage, run.stats, f"{args.out}/errors/ (one file per worker)")

    api = ApiClient(JsonlStore(f"{args.out}/api_cache", shard_name), JsonlStore(f"{args.out}/errors", shard_name),
                    **api_kwargs)  # fmt: skip
    frame_cache = None
    if frame_cache_kwargs is not None:
        from processing.frame_cache import FrameCacheWriter

        frame_cache = FrameCacheWriter(writer_id=shard_name, **frame_cache_kwargs)
    annotator = Annotator(
        args.out, shard_name, api, local, plan, captioner, embedder, not args.no_progress, frame_cache
    )

    async def passes():
        if not args.batch:
            return await annotator.run_pass(items, workers)
        runner = BatchRunner(api, args.out, shard_name, args.poll_interval)
        await runner.collect_open()
        for _ in range(4 + args.max_invalid_retries):
            stats = await annotator.run_pass(items, workers)
            if not await runner.submit_and_collect():
                break
        runner.close()
        return stats

    async def run():
        try:
            return await passes()
        finally:
            await api.aclose()

    try:
        stats = asyncio.run(run())
    finally:
        annotator.close()
    if not args.dry_run:
        write_usage(args.out, shard_name, api, stats)
    return report(api.usage, stats, f"{args.out}/errors/{shard_name}.jsonl")


def frame_model_factories(args: argparse.Namespace, captioner_factory=None, embedder_factory=None) -> tuple | None:
    """``(captioner factory, embedder factory)`` for semantic segmentation, else None: under ``--engine ray`` the
    models are built inside the frame-model actors (on their GPUs), not here."""
    if args.segmentation != "semantic":
        return None
    from functools import partial

    from .frame_models import Florence2Captioner, ImageTextEmbedder

    return (
        captioner_factory or partial(Florence2Captioner, args.frame_captioner),
        embedder_factory or partial(ImageTextEmbedder, args.embedder),
    )


def report(usage, stats, errors: str) -> int:
    """Print the usage table and the video counts; the exit status of ``annotate``."""
    print(usage.summary())
    print(f"videos: {stats.done} done, {stats.skipped} already done, {stats.failed} failed, {stats.pending} pending")
    if stats.failed:
        print(f"failed videos by reason: {stats.failure_summary()}")
        print(f"failures and their reasons: {errors}")
    return EXIT_INCOMPLETE if stats.failed or stats.pending else 0


def build_command(args: argparse.Namespace) -> int:
    from .build import build_dataset, push_to_hub

    stats = build_dataset(args.work_dir, args.out, copy_videos=args.copy_videos)
    print(f"build: {len(stats['durations'])} videos -> {args.out}")
    if args.push_to_hub:
        print(f"pushed: {push_to_hub(args.out, args.push_to_hub, private=args.private)}")
    return 0


def import_command(args: argparse.Namespace) -> int:
    from .importing.importer import ImportSettings, import_annotations

    settings = ImportSettings(
        args.annotations, args.media_root, args.out, modality=args.modality, source=args.source,
        image_config=args.image_config, probe=args.probe, workers=args.workers, chunk_rows=args.chunk_rows,
        progress=not args.no_progress, restart=args.restart,
    )  # fmt: skip
    summary = import_annotations(settings)
    written = ", ".join(f"{config} {count}" for config, count in sorted(summary.written.items())) or "none"
    print(f"import: {summary.rows} rows read -> {args.out}: {written} training rows")
    print(f"probed {summary.probed} files this run; {summary.resumed_chunks} chunks were already done")
    if summary.skipped:
        kinds = ", ".join(f"{kind} {count}" for kind, count in summary.skipped.most_common())
        print(f"left out {sum(summary.skipped.values())} rows ({kinds}); reasons: {summary.errors_path}")
    return 0


def main(argv: list[str] | None = None, captioner_factory=None, embedder_factory=None) -> int:
    """Entry point; the factories let tests and callers plug in their own frame models."""
    args = parser().parse_args(argv)
    try:
        if args.command == "annotate":
            from .lock import WorkDirLock
            from .videos import parse_shard

            with WorkDirLock(args.out, *parse_shard(args.shard)) as lock:
                if lock.took_over:
                    print(f"annotate: took over the lock left by {lock.took_over.describe()}: its process is gone",
                          file=sys.stderr)  # fmt: skip
                return annotate_command(args, captioner_factory, embedder_factory)
        if args.command == "import":
            return import_command(args)
        return build_command(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
