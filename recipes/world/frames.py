r"""The world's frame-caption config: single frames of the training videos, captioned by the pipeline's frame captioner,
as one-frame video rows -- the image stage of the world's chain (upstream's image stages come before its video stages;
a model whose vision tower starts from scratch first learns to see here).

```bash
python -m recipes.world.frames --dataset runs/world/dataset --out runs/world/frames
```

For every video of the built dataset's stage splits, `--per-video` of its cached 1 fps frames (the annotator's frame
cache, evenly spread), plus its brief events (`brief_event_frames`: frames unlike the seconds before and after them,
such as the world's flashes, which evenly spread frames almost never catch) become one-frame MP4 clips (`OUT/clips/`)
with the caption the frame captioner gives them (default: the world's,
`dataset_builder.world.perception:WorldFrameCaptioner`; any `MODULE:ATTRIBUTE` or Florence-2 id works). The rows
(`OUT/frames/train-*.parquet`) follow the training-row contract, so the video recipes train on them at `num_frames: 1`
(`recipes/world/frames.yaml`).

```python
>>> import numpy as np
>>> from recipes.world.frames import frame_rows
>>> rows = frame_rows("v1", np.zeros((3, 8, 8, 3), np.uint8), np.array([0.0, 1.0, 2.0]), ["a", "b", "c"], 2)
>>> [(row["video_id"], row["messages"][1]["content"][0]["text"]) for row in rows]
[('v1@0s', 'a'), ('v1@2s', 'c')]

```
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

import numpy as np

INSTRUCTION = "Describe the frame."
DEFAULT_CAPTIONER = "dataset_builder.world.perception:WorldFrameCaptioner"


def brief_event_frames(frames: np.ndarray, window: int = 12, threshold: float = 30.0, limit: int = 2) -> list[int]:
    """Indices of up to `limit` frames of `frames (T, H, W, 3)` that are unlike both the `window` frames before them and
    the `window` frames after them: the mean absolute difference (grey levels) of a coarse 8 x 8 view of the frame from
    the per-pixel median of either side exceeds `threshold`. A scene cut is unlike one side only and a moving object
    changes a few pixels, so what remains are brief events (the world's flashes), most unlike first.

    Example:
        >>> import numpy as np
        >>> frames = np.zeros((40, 16, 16, 3), np.uint8)
        >>> frames[20:] = 60                # a scene cut at frame 20
        >>> frames[30:32] = 250             # a 2-frame flash
        >>> sorted(brief_event_frames(frames))
        [30, 31]
    """
    step_y, step_x = max(1, frames.shape[1] // 8), max(1, frames.shape[2] // 8)
    coarse = frames[:, ::step_y, ::step_x].astype(np.float32)
    unlike = []
    for index in range(1, len(coarse) - 1):
        before = np.median(coarse[max(0, index - window) : index], axis=0)
        after = np.median(coarse[index + 1 : index + 1 + window], axis=0)
        distance = min(np.abs(coarse[index] - before).mean(), np.abs(coarse[index] - after).mean())
        if distance > threshold:
            unlike.append((distance, index))
    return [index for _, index in sorted(unlike, reverse=True)[:limit]]


def frame_rows(
    video_id: str,
    frames: np.ndarray,
    times: np.ndarray,
    captions: list[str],
    per_video: int,
    extra: Iterable[int] = (),
) -> list[dict]:
    """Rows for `per_video` evenly spread frames of `frames (T, H, W, 3)` at `times (T,)`, and the frames at indices
    `extra`, with their `captions`."""
    spread = np.linspace(0, len(frames) - 1, min(per_video, len(frames))).round().astype(int)
    picked = np.unique(np.concatenate([spread, np.asarray(list(extra), dtype=int)]))
    rows = []
    for index in picked:
        clip_id = f"{video_id}@{times[index]:.0f}s"
        rows.append(
            {
                "video_id": clip_id,
                "video": f"clips/{clip_id.replace('/', '_')}.mp4",
                "source": "world-frames",
                "duration": 1.0,
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "video", "text": None}, {"type": "text", "text": INSTRUCTION}],
                    },
                    {"role": "assistant", "content": [{"type": "text", "text": captions[index]}]},
                ],
                "frame": int(index),  # position in `frames`; dropped when written
            }
        )
    return rows


def write_clip(path: Path, frame: np.ndarray) -> None:
    """A one-frame H.264 MP4 of `frame (H, W, 3)` (lossless 4:4:4, so the clip decodes to the cached pixels)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=1)
        stream.height, stream.width = frame.shape[:2]
        stream.pix_fmt = "yuv444p"
        stream.options = {"preset": "ultrafast", "qp": "0"}
        container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())


def build_frames_config(dataset_dir: str | Path, out: str | Path, captioner, per_video: int = 12) -> int:
    """Write the clips and `out/frames/train-00000-of-00001.parquet`; returns the number of rows."""
    import pyarrow.parquet as pq
    from datasets import Dataset

    from dataset_builder.schemas import TRAINING_FEATURES
    from processing.frame_cache import FrameCache

    dataset_dir, out = Path(dataset_dir), Path(out)
    cache = FrameCache(dataset_dir / "frame_cache")
    video_ids = []
    for file in sorted(dataset_dir.glob("stage*/*.parquet")):
        video_ids.extend(pq.read_table(file, columns=["video_id"]).column("video_id").to_pylist())
    rows = []
    for video_id in dict.fromkeys(video_ids):
        if video_id not in cache:
            raise ValueError(f"{video_id} is not in {dataset_dir / 'frame_cache'}; annotate without --no-frame-cache.")
        frames, times = cache.read(video_id)
        order = np.argsort(times, kind="stable")
        frames, times = frames[order], times[order]
        keep = np.concatenate([[True], np.diff(times) > 0.5])  # the 1 fps frames, not the stage frames between them
        frames, times = frames[keep], times[keep]
        picked_rows = frame_rows(video_id, frames, times, [""] * len(frames), per_video, brief_event_frames(frames))
        captions = captioner.caption(np.stack([frames[row["frame"]] for row in picked_rows]))
        for row, caption in zip(picked_rows, captions):
            row["messages"][1]["content"][0]["text"] = caption
            write_clip(out / row["video"], frames[row.pop("frame")])
        rows.extend(picked_rows)
    (out / "frames").mkdir(parents=True, exist_ok=True)
    Dataset.from_list(rows, features=TRAINING_FEATURES).to_parquet(
        str(out / "frames" / "train-00000-of-00001.parquet")
    )
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes.world.frames", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="the built dataset (with its frame_cache/)")
    parser.add_argument("--out", required=True, help="folder of the frames config (clips/, frames/)")
    parser.add_argument("--per-video", type=int, default=12, help="frames per video (default: %(default)s)")
    parser.add_argument(
        "--captioner", default=DEFAULT_CAPTIONER, help="frame captioner: MODULE:ATTRIBUTE (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    from dataset_builder.frame_models import load_frame_model, object_path_factory

    factory = object_path_factory(args.captioner, ("caption",))
    if factory is None:
        raise SystemExit(f"--captioner {args.captioner!r} must be a MODULE:ATTRIBUTE object path.")
    captioner = load_frame_model("frame captioner", "--captioner", args.captioner, factory)
    print(f"{build_frames_config(args.dataset, args.out, captioner, args.per_video)} frame rows in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
