"""``annotate --engine ray``: the same pipeline, flags and work dir as the in-process run, on a Ray cluster.

One Ray Data stream per run (``ray`` comes with the ``scale`` extra: ``pip install -e ".[scale]"``):

1. **decode** -- CPU tasks (``map``): fingerprint, probe (:func:`~dataset_builder.local_stage.local_plan`), the 1-fps
   frames decoded once (filling the frame cache, one writer per worker process) and encoded as the JPEGs the API is
   sent. A video whose local record is cached from an earlier run is not decoded here.
2. **frame models** -- ``map_batches`` with a callable class (:class:`FrameModelStage`): an actor pool, one model copy
   per GPU (or one CPU actor), loaded once; each call captions and embeds the frames of several videos in one go.
   Semantic segmentation only.
3. **segmentation** -- CPU, per video (:func:`segment_row`).
4. **API** -- ``map_batches`` with a callable class (:class:`ApiStage`): CPU actors, each an
   :class:`~dataset_builder.annotate.Annotator` over its own store files, all asking ONE
   :class:`~dataset_builder.rate_limit.RateLimit` actor before every request (``--concurrency``,
   ``--requests-per-minute``, ``--tokens-per-minute``; a 429's ``Retry-After`` pauses every worker). Each actor
   keeps ``--videos-in-flight`` videos of its batch in flight.

Stores stay append-only and content-hash keyed, one file per worker process (``<shard>-<role>-<node>-<pid>``): a
task retried after its worker died, a preempted node or a re-run finds every answer already paid for in
``WORK_DIR/api_cache`` and pays only for the rest. Ray Data restarts a dead actor and retries its batch; the new
actor reads the stores again, so it also sees what the dead one wrote.

Example (a local cluster; ``--ray-address auto`` joins a running one)::

    python -m dataset_builder annotate --engine ray --videos videos/ --out work --concurrency 64 \\
        --requests-per-minute 5000 --tokens-per-minute 2000000
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .annotate import Annotator, RunStats
from .api import OPENAI_ENVIRONMENT, ApiClient, require_api_key
from .frame_models import load_frame_model
from .local_stage import LocalSettings, frame_features, local_plan, with_semantic_segments
from .plan import PlanSettings
from .rate_limit import RemoteRateLimit, global_rate_limit
from .ray_rows import from_bytes, input_rows, to_bytes, video_item
from .records import LocalRecord
from .store import JsonlStore
from .usage import UsageTracker
from .videos import FrameProvider, VideoItem, fingerprint, jpeg_bytes, nearest_frame

SCALE_EXTRA_HINT = 'pip install -e ".[scale]"  (or: pip install "ray[data]>=2.40")'
API_ACTOR_CPUS = 0  # an API worker waits on the network: it must not hold back a core that decoding or the models need
# No request outlives --timeout: a worker killed mid-request gives its slots back this long after the timeout.
LEASE_MARGIN_SECONDS = 5.0


@dataclass(frozen=True)
class RayOptions:
    """How a run uses the cluster.

    Args:
        address: ``ray.init`` address (``"auto"``: the running cluster); ``None`` starts a local one, unless this
            process already called ``ray.init``.
        workers: API actors, and decode tasks at once (default: the cluster's CPUs).
        requests_per_minute: the account's RPM limit, shared by all workers (``None``: no limit).
        tokens_per_minute: the account's TPM limit, shared by all workers (``None``: no limit).
    """

    address: str | None = None
    workers: int | None = None
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None


@dataclass
class RayRun:
    """What a Ray pass did: its ``stats``, and its API ``usage`` summed over the workers (``dry_run``/``batch`` as
    the ``ApiClient``'s, for ``annotate.write_usage``)."""

    stats: RunStats
    usage: UsageTracker
    dry_run: bool
    batch: bool = False


def require_ray():
    """``ray`` with Ray Data, or a ``ValueError`` that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as error:
        raise ValueError(f"--engine ray needs Ray Data ({error}). Install it: {SCALE_EXTRA_HINT}") from None
    return ray


def worker_name(shard_name: str, role: str) -> str:
    """A store / frame-cache writer name unique to this worker process: ``<shard>-<role>-<node>-<pid>``."""
    import ray

    return f"{shard_name}-{role}-{ray.get_runtime_context().get_node_id()[:8]}-{os.getpid()}"


_FRAME_CACHE_WRITERS: dict[str, Any] = {}


def frame_cache_writer(frame_cache: dict[str, Any] | None, shard_name: str, role: str):
    """This process's own ``FrameCacheWriter`` (made once) for ``frame_cache`` = its keyword arguments, or None."""
    if frame_cache is None:
        return None
    name = worker_name(shard_name, role)
    if name not in _FRAME_CACHE_WRITERS:
        from processing.frame_cache import FrameCacheWriter

        _FRAME_CACHE_WRITERS[name] = FrameCacheWriter(writer_id=name, **frame_cache)
    return _FRAME_CACHE_WRITERS[name]


def decode_row(
    row: dict[str, Any],
    settings: LocalSettings,
    frame_cache: dict[str, Any] | None,
    shard_name: str,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Stage 1 (CPU task): the video's local record (``local``, JSON; segments still empty for semantic
    segmentation) and its 1-fps frames: ``jpegs`` as sent to the API, ``frame_times (T,)``, and ``frames (T, H, W, 3)``
    for the frame models. ``error`` names an unreadable video. A dry run decodes only what the frame models need."""
    out = {**row, "local": "", "jpegs": [], "frame_times": [], "frames": b"", "features": b"", "frame_models": "",
           "error": ""}  # fmt: skip
    item = video_item(row)
    try:
        key = settings.key(print_key := fingerprint(item.path))
        if row["cached_local"] and json.loads(row["cached_local"])["key"] == key:
            return {**out, "local": row["cached_local"]}
        record = local_plan(item, settings, print_key)
        if dry_run and record.segmentation != "semantic":
            return {**out, "local": json.dumps(record.to_dict())}
        writer = None if row["frame_cached"] else frame_cache_writer(frame_cache, shard_name, "decode")
        provider = FrameProvider(
            item.path, record.decode_size, settings.fps, frame_cache=writer, video_id=item.video_id
        )
        frames, times = provider.frames()
    except (OSError, ValueError) as error:
        return {**out, "error": f"{type(error).__name__}: {error}"}
    out |= {"local": json.dumps(record.to_dict()), "jpegs": [jpeg_bytes(f) for f in frames]}
    out["frame_times"] = [float(t) for t in times]
    if record.segmentation == "semantic":
        out["frames"] = to_bytes(frames)
    return out


class FrameModelStage:
    """Stage 2 (an actor of the pool, one per GPU): captions and image/caption features of the frames of every video
    of a batch, concatenated, so the models see full batches across videos; adds ``features`` ``(2, T, D)`` and the
    models' names (``frame_models``, JSON)."""

    def __init__(self, captioner_factory: Callable, embedder_factory: Callable, names: dict[str, str]) -> None:
        self.captioner = load_frame_model(
            "frame captioner", "--frame-captioner", names["captioner"], captioner_factory
        )
        self.embedder = load_frame_model("embedder", "--embedder", names["embedder"], embedder_factory)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        videos = [from_bytes(data) for data in batch["frames"] if len(data)]
        if videos:
            image, caption = frame_features(np.concatenate(videos), self.captioner, self.embedder)
            bounds = np.cumsum([0, *(len(frames) for frames in videos)])
            features = iter(to_bytes(np.stack([image[a:b], caption[a:b]])) for a, b in zip(bounds, bounds[1:]))
            batch["features"] = np.array([next(features) if len(data) else b"" for data in batch["frames"]], object)
            names = json.dumps({"captioner": self.captioner.name, "embedder": self.embedder.name})
            batch["frame_models"] = np.array([names if len(data) else "" for data in batch["frames"]], object)
        batch["frames"] = np.array([b""] * len(batch["frames"]), dtype=object)
        return batch


def segment_row(row: dict[str, Any], settings: LocalSettings) -> dict[str, Any]:
    """Stage 3 (CPU, per video): the semantic segments of a video that went through the frame models."""
    if not len(row["features"]):
        return row
    image, caption = from_bytes(row["features"])
    record = LocalRecord.from_dict(json.loads(row["local"]))
    times, names = np.asarray(row["frame_times"]), json.loads(row["frame_models"])
    record = with_semantic_segments(record, settings, image, caption, times, names)
    return {**row, "local": json.dumps(record.to_dict()), "features": b""}


class DecodedJpegs:
    """The frame provider of a video decoded in stage 1: its JPEGs by nearest timestamp, as ``FrameProvider``."""

    def __init__(self, jpegs: list[bytes], times: np.ndarray) -> None:
        self._jpegs, self.times = jpegs, times

    def jpegs(self, timestamps: list[float]) -> list[bytes]:
        return [self._jpegs[nearest_frame(self.times, t)] for t in timestamps]

    def release(self) -> None:
        pass


class ModelsInTheirStage:
    """Stands in for the frame models inside an API actor: they run in the frame-model stage, never here."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, method: str):
        raise RuntimeError(f"{self.name}.{method}: the frame models run in the Ray frame-model stage, not the API one")


class _StreamAnnotator(Annotator):
    """An Annotator whose local records and decoded frames come from the earlier stages of the stream."""

    decoded: dict[str, DecodedJpegs]

    def frame_provider(self, item: VideoItem, path: str, size: tuple[int, int], fps: float):
        decoded = self.decoded.pop(item.video_id, None)
        return decoded if decoded is not None else super().frame_provider(item, path, size, fps)


class ApiStage:
    """Stage 4 (a CPU actor): annotates a batch of videos through its Annotator, ``videos_in_flight`` at once; each row
    comes back as ``{video_id, outcome, reason, usage}`` (``usage``: this batch's, JSON, on its first row)."""

    def __init__(
        self,
        work_dir: str,
        shard_name: str,
        api_kwargs: dict[str, Any],
        local_settings: LocalSettings,
        plan_settings: PlanSettings,
        frame_cache: dict[str, Any] | None,
        limiter,
        videos_in_flight: int,
    ) -> None:
        name = worker_name(shard_name, "api")
        work = Path(work_dir)
        limit = RemoteRateLimit(limiter) if limiter is not None else None
        api = ApiClient(
            JsonlStore(work / "api_cache", name), JsonlStore(work / "errors", name), limiter=limit, **api_kwargs
        )
        models = [ModelsInTheirStage(local_settings.captioner), ModelsInTheirStage(local_settings.embedder)]
        writer = frame_cache_writer(frame_cache, shard_name, "api")
        self.annotator = _StreamAnnotator(work, name, api, local_settings, plan_settings, *models, False, writer)
        self.annotator.decoded = {}
        self.finished = set(self.annotator.annotations.load_index("video_id"))
        self.videos_in_flight = videos_in_flight

    def _prepare(self, row: dict[str, Any]) -> None:
        record = LocalRecord.from_dict(json.loads(row["local"]))
        if record.key not in self.annotator.local_cache:
            self.annotator.local_cache[record.key] = record
            self.annotator.local_store.append(record.to_dict())
        if len(row["jpegs"]):
            times = np.asarray(row["frame_times"], dtype=np.float64)
            self.annotator.decoded[row["video_id"]] = DecodedJpegs(list(row["jpegs"]), times)

    async def _annotate(self, rows: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
        slots = asyncio.Semaphore(self.videos_in_flight)

        async def one(row: dict[str, Any]) -> tuple[str, str | None]:
            item = video_item(row)
            if item.video_id in self.finished:
                return "skipped", None
            if row["error"]:
                self.annotator.video_failed(item, "read", "unreadable", row["error"])
                return "failed", "unreadable"
            self._prepare(row)
            async with slots:
                outcome = await self.annotator.annotate_video(item)
            if outcome[0] == "done":
                self.finished.add(item.video_id)
            return outcome

        try:
            return await asyncio.gather(*(one(row) for row in rows))
        finally:
            await self.annotator.api.aclose()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        columns = list(batch)
        rows = [dict(zip(columns, values)) for values in zip(*(batch[c] for c in columns))]
        api = self.annotator.api
        api.usage = UsageTracker(api.usage.model, api.usage.price, api.usage.discount, api.usage.estimated)
        outcomes = asyncio.run(self._annotate(rows))
        self.annotator.local_store.close()
        self.annotator.annotations.close()
        api.close()
        usage = json.dumps({stage: vars(counts) for stage, counts in api.usage.stages.items()})
        return {
            "video_id": [row["video_id"] for row in rows],
            "outcome": [outcome for outcome, _ in outcomes],
            "reason": [reason or "" for _, reason in outcomes],
            "usage": [usage] + [""] * (len(rows) - 1),
        }


def add_usage(tracker: UsageTracker, usage: str) -> None:
    """Add one batch's ``usage`` (JSON ``{stage: StageUsage fields}``) to ``tracker``."""
    for stage, counts in json.loads(usage).items():
        total = tracker.stages[stage]
        for name, value in counts.items():
            setattr(total, name, getattr(total, name) + value)


def annotate_on_ray(
    items: list[VideoItem],
    work_dir: str,
    shard_name: str,
    api_kwargs: dict[str, Any],
    local_settings: LocalSettings,
    plan_settings: PlanSettings,
    frame_cache: dict[str, Any] | None,
    options: RayOptions,
    videos_in_flight: int,
    model_factories: tuple[Callable, Callable] | None = None,
    progress: bool = True,
) -> RayRun:
    """Annotate ``items`` into ``work_dir`` on Ray (see the module docstring); returns the pass's stats and usage.

    ``api_kwargs`` are :class:`~dataset_builder.api.ApiClient`'s keyword arguments (``concurrency`` is the global
    bound); ``frame_cache`` is ``FrameCacheWriter``'s (``cache_dir``, format, size, ...) or ``None``;
    ``model_factories`` build the captioner and the embedder inside the frame-model actors (semantic segmentation).
    """
    ray = require_ray()
    from ray.data import ActorPoolStrategy, DataContext, TaskPoolStrategy

    from processing.frame_cache import FrameCache

    require_api_key(bool(api_kwargs.get("dry_run")))
    if not ray.is_initialized():
        ray.init(address=options.address, log_to_driver=False)
    DataContext.get_current().enable_progress_bars = progress
    work = Path(work_dir)
    dry_run = bool(api_kwargs.get("dry_run"))
    stats = RunStats()
    tracker = UsageTracker(api_kwargs.get("model", "gpt-4o"), api_kwargs.get("price"), estimated=dry_run)
    finished = set(JsonlStore(work / "annotations", "_").load_index("video_id"))
    pending = [item for item in items if item.video_id not in finished]
    stats.skipped = len(items) - len(pending)
    if not pending:
        return RayRun(stats, tracker, dry_run)
    local_records = {r["video_id"]: r for r in JsonlStore(work / "local", "_").records() if r["key"] and r["video_id"]}
    cached_videos = set(FrameCache(frame_cache["cache_dir"]).entries) if frame_cache else set()
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    gpus = int(ray.cluster_resources().get("GPU", 0))
    workers = options.workers or cpus
    limiter = global_rate_limit(
        api_kwargs.get("concurrency", 16),
        options.requests_per_minute,
        options.tokens_per_minute,
        lease_seconds=api_kwargs.get("timeout", 120.0) + LEASE_MARGIN_SECONDS,
    )
    rows = input_rows(pending, local_records, cached_videos)
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
    dataset = dataset.map(
        decode_row,
        fn_kwargs=dict(settings=local_settings, frame_cache=frame_cache, shard_name=shard_name, dry_run=dry_run),
        num_cpus=1, compute=TaskPoolStrategy(size=min(workers, len(rows))),
    )  # fmt: skip
    if local_settings.segmentation == "semantic":
        names = {"captioner": local_settings.captioner, "embedder": local_settings.embedder}
        dataset = dataset.map_batches(
            FrameModelStage, fn_constructor_args=(*model_factories, names), batch_size=4, batch_format="numpy",
            compute=ActorPoolStrategy(size=max(1, gpus)), num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1,
        )  # fmt: skip
        dataset = dataset.map(segment_row, fn_kwargs={"settings": local_settings})
    per_actor = -(-len(rows) // workers)
    dataset = dataset.map_batches(
        ApiStage,
        fn_constructor_args=(str(work), shard_name, api_kwargs, local_settings, plan_settings, frame_cache, limiter,
                             videos_in_flight),
        batch_size=max(1, min(videos_in_flight, per_actor)), batch_format="numpy",
        # One batch per actor at a time: a batch queued behind another actor's would wait while other actors idle.
        compute=ActorPoolStrategy(size=min(workers, len(rows)), max_tasks_in_flight_per_actor=1),
        num_cpus=API_ACTOR_CPUS,
        runtime_env={"env_vars": {name: os.environ[name] for name in OPENAI_ENVIRONMENT if name in os.environ}},
    )  # fmt: skip
    for row in dataset.iter_rows():
        outcome, reason = row["outcome"], row["reason"]
        setattr(stats, outcome, getattr(stats, outcome) + 1)
        if reason:
            stats.failures[reason] = stats.failures.get(reason, 0) + 1
        if row["usage"]:
            add_usage(tracker, row["usage"])
    ray.kill(limiter)
    return RayRun(stats, tracker, dry_run)
