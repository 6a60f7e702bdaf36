"""The dataset card: YAML ``configs:`` for ``load_dataset``, the Table 1 counts, and the Fig. 2/3 statistics as plots.

Example (``build_dataset`` calls this with the records it read and the ``qa`` rows it wrote)::

    >>> import tempfile
    >>> from pathlib import Path
    >>> from dataset_builder.card import write_card
    >>> from dataset_builder.records import AnnotationRecord, CaptionedSegment
    >>> record = AnnotationRecord("PMV/a", "/videos/a.mp4", "PMV", "f00d", 150.0, 30.0, "fixed",
    ...                           (CaptionedSegment(0.0, 75.0, "A dog."), CaptionedSegment(75.0, 150.0, "A cat.")),
    ...                           "A dog, then a cat.", (), {"captions": ["segment_caption@1.0"]}, {"api": "gpt-4o"}, 0.0)
    >>> qa_rows = [{"duration": 150.0, "task_type": "temporal"}]
    >>> out = Path(tempfile.mkdtemp())
    >>> files = {"captions": "captions/train-1a2b.parquet", "stage2": "stage2/train-3c4d.parquet"}
    >>> stats = write_card(out, [record], qa_rows, {"stage1": 0, "stage2": 3, "stage3": 0}, {}, files)
    >>> dict(stats["table"]["stage2"])  # 2 segment captions + the video caption
    {'videos': 1, 'captions': 3, 'hours': 0.041666666666666664, 'temporal': 1, 'training rows': 3}
    >>> sorted(path.name for path in (out / "plots").iterdir())[:2], "path: stage2/train-3c4d.parquet" in (out / "README.md").read_text()
    (['caption_length_vs_duration.png', 'duration_histogram.png'], True)
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .records import AnnotationRecord  # noqa: E402
from .schemas import STAGE_BOUNDS, TASK_TYPES, stage_of  # noqa: E402

CONFIG_DESCRIPTIONS = {
    "captions": "one row per video: segments (start, end, caption) and the video-level dense caption",
    "qa": "one row per question-answer pair: task type, generation strategy, prompt version",
    "stage1": "training rows (chat messages) for videos under 2 minutes",
    "stage2": "training rows for videos of 2-5 minutes",
    "stage3": "training rows for videos of 5-20 minutes",
}
PLOTS = {
    "duration_histogram": "Video durations",
    "segments_per_video": "Segments per video (segmented videos)",
    "segment_durations": "Segment durations",
    "caption_length_vs_duration": "Dense-caption length vs video length",
    "source_shares": "Videos per source",
}


def compute_stats(records: list[AnnotationRecord], qa_rows: list[dict], training_counts: dict[str, int]) -> dict:
    """Counts for Table 1 and the series behind every plot; ``qa_rows`` are ``qa`` table rows (``QA_FEATURES``)."""
    table = {stage: Counter() for stage in STAGE_BOUNDS} | {"longer": Counter()}
    for record in records:
        row = table[stage_of(record.duration) or "longer"]
        row["videos"] += 1
        row["captions"] += 1 + len(record.segments) * (record.segmentation != "none")
        row["hours"] += record.duration / 3600
    for qa in qa_rows:
        table[stage_of(qa["duration"]) or "longer"][qa["task_type"]] += 1
    for stage, count in training_counts.items():
        table[stage]["training rows"] = count
    segmented = [r for r in records if r.segmentation != "none"]
    return {
        "table": table,
        "durations": [r.duration for r in records],
        "segments_per_video": [len(r.segments) for r in segmented],
        "segment_durations": [s.end - s.start for r in segmented for s in r.segments],
        "caption_words": [len(r.video_caption.split()) for r in records],
        "sources": Counter(r.source for r in records),
        "task_types": Counter(q["task_type"] for q in qa_rows),
    }


def _plot(name: str, stats: dict, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(5, 3.2), dpi=100)
    if name == "duration_histogram":
        axis.hist([d / 60 for d in stats["durations"]], bins=20, color="tab:blue")
        axis.set_xlabel("duration (min)")
    elif name == "segments_per_video":
        values = stats["segments_per_video"] or [0]
        axis.hist(values, bins=range(0, max(values) + 2), color="tab:orange", align="left")
        axis.set_xlabel("segments per video")
    elif name == "segment_durations":
        axis.hist(stats["segment_durations"] or [0], bins=20, color="tab:green")
        axis.set_xlabel("segment duration (s)")
    elif name == "caption_length_vs_duration":
        axis.scatter([d / 60 for d in stats["durations"]], stats["caption_words"], s=8, color="tab:red")
        axis.set_xlabel("video duration (min)")
        axis.set_ylabel("caption length (words)")
    else:
        labels, counts = zip(*stats["sources"].most_common()) if stats["sources"] else ((), ())
        axis.bar(labels, counts, color="tab:purple")
        axis.set_ylabel("videos")
    axis.set_title(PLOTS[name])
    if name not in ("caption_length_vs_duration", "source_shares"):
        axis.set_ylabel("count")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _yaml_configs(configs: dict[str, str]) -> str:
    """``configs:`` naming each config's data file exactly: datasets 5.x caches a local folder by its name and these
    patterns, so a rebuild must change them (build-unique file names) to be read fresh."""
    lines = ["configs:"]
    for config, path in configs.items():
        lines += [f"- config_name: {config}", "  data_files:", "  - split: train", f"    path: {path}"]
    return "\n".join(lines)


def _table(stats: dict) -> str:
    columns = ["videos", "hours", "captions", *TASK_TYPES, "training rows"]
    lines = ["| subset | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
    labels = {
        "stage1": "< 2 min (stage1)",
        "stage2": "2-5 min (stage2)",
        "stage3": "5-20 min (stage3)",
        "longer": "> 20 min",
    }
    total = Counter()
    for stage, row in stats["table"].items():
        total.update(row)
        lines.append(f"| {labels[stage]} | " + " | ".join(_cell(row[c]) for c in columns) + " |")
    lines.append("| **total** | " + " | ".join(_cell(total[c]) for c in columns) + " |")
    return "\n".join(lines)


def _cell(value: float) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def write_card(
    out: Path,
    records: list[AnnotationRecord],
    qa_rows: list[dict],
    training_counts: dict[str, int],
    failures: dict,
    configs: dict[str, str],
) -> dict:
    """Write ``plots/*.png`` and ``README.md`` into ``out``; returns the statistics. ``configs`` maps each non-empty
    config to its data file (relative to ``out``); only those are listed in the YAML (``load_dataset`` cannot read a
    config without rows)."""
    stats = compute_stats(records, qa_rows, training_counts)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    for name in PLOTS:
        _plot(name, stats, out / "plots" / f"{name}.png")
    prompts = sorted({p for r in records for group in r.prompt_versions.values() for p in group})
    models = sorted({f"{k}: {v}" for r in records for k, v in r.models.items() if v})
    sources = ", ".join(
        f"{name} {count} ({count / len(records):.0%})" for name, count in stats["sources"].most_common()
    )
    text = f"""---
{_yaml_configs(configs)}
task_categories:
- video-text-to-text
tags:
- video
- long-video
- prolongvid
---

# ProLongVid-style video instruction data

Built with `python -m dataset_builder` (ProLongVid kit): 1-fps frames, frame captions and features, semantic
segmentation (agglomerative clustering of the paper's similarity), dense captions per segment and per video, then
question-answer generation with four task types and three strategies (paper section 3).

## Configs

{chr(10).join(f"- `{name}`: {text}" + ("" if name in configs else " (empty in this build)") for name, text in CONFIG_DESCRIPTIONS.items())}

```python
from datasets import load_dataset
rows = load_dataset("path/or/repo", "stage1", split="train")
```

## Counts (paper Table 1)

{_table(stats)}

Sources: {sources}. Failed videos (recorded with their reason, not included): {len(failures)}.

## Statistics (paper Fig. 2 and 3)

{chr(10).join(f"![{title}](plots/{name}.png)" for name, title in PLOTS.items())}

## How it was made

- Prompts (id@version; stored in every `captions` and `qa` row): {", ".join(prompts)}
- Models: {"; ".join(models)}
"""
    (out / "README.md").write_text(text)
    return stats
