"""Import throughput: rows/s of ``python -m dataset_builder import`` with probing, on generated LLaVA-NeXT rows.

A few distinct short videos (``processing.synthetic``; some at 1 fps so that all three stage bands occur) are
referenced by many multi-turn rows, as in the released data (several QA rows per video). Measured, each in a fresh
output folder unless said otherwise:

1. header probes (the default), JSON lines;
2. the same rows as one JSON array (upstream's stage-file layout);
3. ``--probe full`` (every packet demuxed);
4. a re-run of the finished import (everything resumes: no chunk or probe redone).

Run: ``python benchmarks/import.py [--rows 10000] [--videos 16] [--chunk-rows 10000] [--workers 16]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dataset_builder.importing.importer import ImportSettings, import_annotations  # noqa: E402
from processing.synthetic import write_video  # noqa: E402

# (frames, fps) of the distinct videos, cycled: 3 s, 12 s, 150 s, 400 s.
SHAPES = [(30, 10), (120, 10), (150, 1), (400, 1)]


def generate(folder: Path, rows: int, videos: int) -> tuple[Path, Path]:
    """``folder/media/videos/*.mp4`` and ``folder/rows.jsonl`` + ``folder/rows.json`` of ``rows`` rows."""
    media = folder / "media"
    (media / "videos").mkdir(parents=True)
    for index in range(videos):
        frames, fps = SHAPES[index % len(SHAPES)]
        write_video(media / "videos" / f"v{index:04d}.mp4", frames, fps=fps, width=32, height=32)
    lines = []
    for index in range(rows):
        conversations = [
            {"from": "human", "value": f"<image>\nQuestion {index} about the video: what happens after second 2?"},
            {"from": "gpt", "value": f"Answer {index}: the gray level rises frame after frame. " * 4},
            {"from": "human", "value": "And at the end?"},
            {"from": "gpt", "value": "It is brighter than at the start."},
        ]
        row = {"id": f"row{index}", "video": f"videos/v{index % videos:04d}.mp4", "conversations": conversations,
               "data_source": ("yt8m", "pmv")[index % 2]}  # fmt: skip
        lines.append(json.dumps(row))
    (folder / "rows.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "rows.json").write_text("[\n" + ",\n".join(lines) + "\n]\n")
    return media, folder


def timed(settings: ImportSettings) -> tuple[float, object]:
    start = time.perf_counter()
    summary = import_annotations(settings)
    return time.perf_counter() - start, summary


def main(argv: list[str] | None = None) -> list[dict]:
    """Print one line per measurement; returns them as dicts (name, rows, seconds, rows_per_s, probed)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--videos", type=int, default=16, help="distinct videos the rows reference")
    parser.add_argument("--chunk-rows", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        media, folder = generate(Path(tmp), args.rows, args.videos)

        def settings(annotations: str, out: str, **options) -> ImportSettings:
            return ImportSettings(folder / annotations, media, Path(tmp) / out, chunk_rows=args.chunk_rows,
                                  workers=args.workers, progress=False, **options)  # fmt: skip

        runs = [
            ("header probe, JSON lines", settings("rows.jsonl", "out-jsonl")),
            ("header probe, JSON array", settings("rows.json", "out-json")),
            ("full probe, JSON lines", settings("rows.jsonl", "out-full", probe="full")),
            ("re-run of a finished import", settings("rows.jsonl", "out-jsonl")),
        ]
        print(f"{args.rows} rows over {args.videos} distinct videos, chunks of {args.chunk_rows} rows:")
        for name, run_settings in runs:
            seconds, summary = timed(run_settings)
            written = sum(summary.written.values())
            result = {"name": name, "rows": summary.rows, "written": written, "seconds": seconds,
                      "rows_per_s": summary.rows / seconds, "probed": summary.probed}  # fmt: skip
            results.append(result)
            print(f"  {name:<30} {result['rows_per_s']:>9.0f} rows/s  ({seconds:.2f} s, {written} training rows, "
                  f"{summary.probed} files probed)")  # fmt: skip
    return results


if __name__ == "__main__":
    main()
