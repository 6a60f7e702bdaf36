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

from .cli import EXIT_INCOMPLETE, parser
from .limits import STAGE_MAX_TOKENS

__all__ = ["main", "parser"]


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

    stats = build_dataset(args.work_dir, args.out, copy_videos=args.copy_videos, turns_per_row=args.turns_per_row)
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
