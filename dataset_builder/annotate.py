"""``annotate``: run the local stage and the API stages over a shard of videos into a resumable work dir.

Work dir layout (every store is append-only JSONL, one file per shard, see :mod:`dataset_builder.store`)::

    WORK_DIR/local/        local-stage records (``records.LocalRecord``), keyed by fingerprint + settings
    WORK_DIR/api_cache/    every valid API answer, keyed by the request's content hash
    WORK_DIR/annotations/  one finished record per video (``records.AnnotationRecord``, what ``build`` reads)
    WORK_DIR/errors/       failed requests and failed videos, with the reason (``error_log.ErrorLog``)
    WORK_DIR/batches/      Batch API jobs (``--batch``)
    WORK_DIR/usage/        token usage and cost of each run
    WORK_DIR/locks/        one lock file per shard: a second run on a busy shard refuses (``lock.WorkDirLock``)
    WORK_DIR/frame_cache/  each video's 1 fps frames, resized and encoded (``processing.frame_cache``), for training

A finished video is skipped on re-runs; an unfinished one re-plans its requests, which hit the cache.
Settings are part of the cache keys, so a changed setting (prompt version, threshold, model) means new calls;
use a fresh work dir for a different configuration.

Example (``dry_run=True``: runs the local stage, plans and prices every call, calls nothing; without it, the same
code calls the API through the client)::

    >>> import asyncio, tempfile
    >>> from pathlib import Path, PurePath
    >>> from dataset_builder.annotate import Annotator
    >>> from dataset_builder.api import ApiClient
    >>> from dataset_builder.local_stage import LocalSettings
    >>> from dataset_builder.plan import PlanSettings
    >>> from dataset_builder.store import JsonlStore
    >>> from dataset_builder.videos import list_videos
    >>> from processing.synthetic import write_scene_video
    >>> work = Path(tempfile.mkdtemp())
    >>> (work / "videos").mkdir()
    >>> cuts = write_scene_video(work / "videos" / "clip.mp4", [4, 6])
    >>> api = ApiClient(JsonlStore(work / "api_cache", "s0"), JsonlStore(work / "errors", "s0"), dry_run=True)
    >>> annotator = Annotator(work, "s0", api, LocalSettings(segmentation="fixed"), PlanSettings(), progress=False)
    >>> stats = asyncio.run(annotator.run_pass(list_videos(work / "videos"), workers=4))
    >>> annotator.close()
    >>> stats
    RunStats(done=1, skipped=0, failed=0, pending=0, failures={})
    >>> sorted(api.usage.stages)  # a 10 s video: one caption from its frames, then QA of all four task types
    ['qa', 'short_caption']
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePath

from tqdm.auto import tqdm

from processing.frame_cache import FrameCache

from .api import ApiClient, BatchPending, ChatRequest, RequestFailed
from .frame_models import FrameCaptioner, FrameEmbedder
from .local_stage import LocalSettings, run_local_stage
from .plan import PlanSettings, qa_requests, segment_caption_requests, short_caption_request, video_caption_request
from .records import AnnotationRecord, CaptionedSegment, LocalRecord, QAPair
from .store import JsonlStore
from .videos import FrameProvider, VideoItem, fingerprint

logger = logging.getLogger(__name__)


@dataclass
class RunStats:
    """Videos of one pass: annotated now, finished in an earlier run, failed (see the error log), waiting on a batch;
    ``failures`` counts the failed ones by reason (``unreadable``, or the last failure of a request: ``http_500``,
    ``malformed_response``, ``oversized_answer``, ...)."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    pending: int = 0
    failures: dict[str, int] = field(default_factory=dict)

    def failure_summary(self) -> str:
        """``"unreadable 2, http_500 1"``: reasons by count, most frequent first."""
        return ", ".join(
            f"{reason} {n}" for reason, n in sorted(self.failures.items(), key=lambda kv: (-kv[1], kv[0]))
        )


class Annotator:
    """Holds the stores, the API client, the frame models and the progress bars of one run.

    ``captioner`` and ``embedder`` are loaded models (:mod:`dataset_builder.frame_models`); semantic segmentation needs
    both, fixed segmentation neither.
    """

    def __init__(
        self,
        work_dir: str | Path,
        shard_name: str,
        api: ApiClient,
        local_settings: LocalSettings,
        plan_settings: PlanSettings,
        captioner: FrameCaptioner | None = None,
        embedder: FrameEmbedder | None = None,
        progress: bool = True,
        frame_cache=None,
    ) -> None:
        work = Path(work_dir)
        self.api, self.local_settings, self.plan_settings = api, local_settings, plan_settings
        self.local_store = JsonlStore(work / "local", shard_name)
        self.annotations = JsonlStore(work / "annotations", shard_name)
        self.errors = api.error_log
        self.local_cache = {
            key: LocalRecord.from_dict(record) for key, record in self.local_store.load_index("key").items()
        }
        self.frame_cache = frame_cache
        self.cached_videos = set(FrameCache(frame_cache.cache_dir).entries) if frame_cache is not None else set()
        if local_settings.segmentation == "semantic" and (captioner is None or embedder is None):
            raise ValueError(
                "Semantic segmentation needs a frame captioner and an embedder (or --segmentation fixed)."
            )
        self.captioner, self.embedder = captioner, embedder
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-stage")
        self.progress = progress
        self.bars: dict[str, tqdm] = {}

    def bar(self, name: str, unit: str) -> tqdm:
        """The progress bar ``name`` counting ``unit`` (``"video"`` or ``"call"``), made on first use."""
        if name not in self.bars:
            self.bars[name] = tqdm(total=0, desc=name, unit=unit, position=len(self.bars), disable=not self.progress)
        return self.bars[name]

    def video_failed(self, item: VideoItem, stage: str, kind: str, reason: str, **fields) -> None:
        self.errors.record(item.video_id, stage, kind, reason, video=item.path, **fields)

    def _local(self, item: VideoItem, print_key: str) -> tuple[LocalRecord, FrameProvider]:
        """Runs in the single local-stage thread (decoding and models never run concurrently)."""
        return run_local_stage(
            item, self.local_settings, print_key, partial(self.frame_provider, item), self.captioner, self.embedder
        )

    def frame_provider(self, item: VideoItem, path: str, size: tuple[int, int], fps: float) -> FrameProvider:
        """A provider that also fills the frame cache, unless the video is cached already."""
        writer = self.frame_cache if item.video_id not in self.cached_videos else None
        return FrameProvider(path, size, fps, frame_cache=writer, video_id=item.video_id)

    async def _gather(self, requests: list[ChatRequest], bar: str) -> list:
        """Complete all requests (all are attempted even if one fails), then raise the first failure."""
        progress = self.bar(bar, "call")
        progress.total += len(requests)
        progress.refresh()

        async def one(request: ChatRequest):
            try:
                return await self.api.complete(request)
            finally:
                progress.update(1)

        results = await asyncio.gather(*(one(r) for r in requests), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results

    async def _warm_frames(self, provider: FrameProvider, requests: list[ChatRequest], times: list[float]) -> None:
        """Encode the frames once, in the local-stage thread, if any of the requests must actually be sent."""
        if not self.api.dry_run and any(not self.api.is_cached(request) for request in requests):
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, provider.jpegs, times)
        await asyncio.get_running_loop().run_in_executor(self._executor, provider.release)

    async def annotate_video(self, item: VideoItem) -> tuple[str, str | None]:
        """Annotate one video; returns ``("done" | "pending" | "failed", failure reason or None)``."""
        try:
            return await self._annotate_video(item)
        except Exception as error:
            # A bug must not stop the other videos: their answers in flight are paid for and must reach the cache.
            logger.exception("%s: annotation failed", item.video_id)
            self.video_failed(item, "api", "internal_error", f"{type(error).__name__}: {error}")
            return "failed", "internal_error"

    async def _annotate_video(self, item: VideoItem) -> tuple[str, str | None]:
        loop = asyncio.get_running_loop()
        try:
            print_key = await loop.run_in_executor(None, fingerprint, item.path)
            key = self.local_settings.key(print_key)
            if key in self.local_cache:
                local = self.local_cache[key]
                provider = self.frame_provider(item, item.path, local.decode_size, self.local_settings.fps)
            else:
                local, provider = await loop.run_in_executor(self._executor, self._local, item, print_key)
                self.local_cache[key] = local
                self.local_store.append(local.to_dict())
        except (OSError, ValueError) as error:
            self.video_failed(item, "read", "unreadable", f"{type(error).__name__}: {error}")
            return "failed", "unreadable"
        self.bar("local", "video").update(1)
        try:
            record = await self._api_stages(item, local, provider)
        except BatchPending:
            return "pending", None
        except RequestFailed as error:
            self.video_failed(item, "api", "request_failed", str(error), cause=error.kind)
            return "failed", error.kind
        if not self.api.dry_run:
            self.annotations.append(record.to_dict())
        return "done", None

    async def _api_stages(self, item: VideoItem, local: LocalRecord, provider: FrameProvider) -> AnnotationRecord:
        settings = self.plan_settings
        if local.segmentation == "none":
            request, times = short_caption_request(local, provider.jpegs, settings)
            await self._warm_frames(provider, [request], times)
            (video_caption,) = await self._gather([request], "captions")
            segment_captions = [video_caption]
            caption_prompts = [request.prompt.tag]
        else:
            requests, times = segment_caption_requests(local, provider.jpegs, settings)
            await self._warm_frames(provider, requests, times)
            segment_captions = await self._gather(requests, "captions")
            merge = video_caption_request(local, segment_captions)
            (video_caption,) = await self._gather([merge], "captions")
            caption_prompts = [requests[0].prompt.tag, merge.prompt.tag]
        plans = qa_requests(local, video_caption, segment_captions, settings)
        answers = await self._gather([request for _, _, request in plans], "qa")
        qa = tuple(
            QAPair(**pair, strategy=strategy, segment_index=index, prompt_version=request.prompt.tag)
            for (strategy, index, request), pairs in zip(plans, answers)
            for pair in pairs
        )
        return AnnotationRecord(
            video_id=item.video_id,
            video=item.path,
            relative_video=item.relative or PurePath(item.path).name,
            source=item.source,
            fingerprint=local.fingerprint,
            duration=local.duration,
            fps=local.fps,
            segmentation=local.segmentation,
            segments=tuple(
                CaptionedSegment(s.start, s.end, caption) for s, caption in zip(local.segments, segment_captions)
            ),
            video_caption=video_caption,
            qa=qa,
            prompt_versions={"captions": caption_prompts, "qa": sorted({p[2].prompt.tag for p in plans})},
            models={"api": self.api.params["model"], **local.frame_models},
            time=time.time(),
        )

    async def run_pass(self, items: list[VideoItem], workers: int) -> RunStats:
        """One pass over the items with ``workers`` videos in flight."""
        stats = RunStats()
        finished = set(self.annotations.load_index("video_id"))
        queue: asyncio.Queue[VideoItem] = asyncio.Queue()
        for item in items:
            if item.video_id in finished:
                stats.skipped += 1
            else:
                queue.put_nowait(item)
        videos_bar = self.bar("videos", "video")
        videos_bar.total += queue.qsize()

        async def worker() -> None:
            while not queue.empty():
                outcome, reason = await self.annotate_video(queue.get_nowait())
                setattr(stats, outcome, getattr(stats, outcome) + 1)
                if reason:
                    stats.failures[reason] = stats.failures.get(reason, 0) + 1
                videos_bar.update(1)

        await asyncio.gather(*(worker() for _ in range(max(1, workers))))
        return stats

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        for bar in self.bars.values():
            bar.close()
        for store in (self.local_store, self.annotations):
            store.close()
        self.api.close()


def write_usage(work_dir: str | Path, shard_name: str, api: ApiClient, stats: RunStats) -> Path:
    """Append this run's usage to ``WORK_DIR/usage/<shard>.jsonl``; returns the path."""
    store = JsonlStore(Path(work_dir) / "usage", shard_name)
    store.append(
        {
            "time": time.time(),
            "dry_run": api.dry_run,
            "batch": api.batch,
            "stats": vars(stats),
            "usage": api.usage.as_dict(),
        }
    )
    store.close()
    return store.path
