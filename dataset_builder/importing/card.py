"""The card of an imported dataset: the YAML ``configs:`` that ``load_dataset`` reads, build's Table 1 counts that
imported rows have (videos, hours and training rows per duration band), rows per source, every reason rows were
left out, and build's plots that apply to imported data, drawn by the same code as build's card.

The YAML names this import's data files by their run prefix (``stage1/train-<run>-*.parquet``): datasets caches a
local folder by its name and ``data_files`` patterns, so a re-import into the same folder must not reuse the
patterns of the import before it.

Example:
    >>> import tempfile
    >>> from collections import Counter
    >>> from pathlib import Path
    >>> from dataset_builder.importing.card import import_stats, yaml_configs
    >>> from dataset_builder.importing.importer import ImportSummary
    >>> summary = ImportSummary(written=Counter(stage2=3), media={"a.mp4": [150.0, "yt8m", 40]})
    >>> dict(import_stats(summary)["table"]["stage2"])
    {'videos': 1, 'hours': 0.041666666666666664, 'training rows': 3}
    >>> print(yaml_configs(["stage2"], "0123abcd"))
    configs:
    - config_name: stage2
      data_files:
      - split: train
        path: stage2/train-0123abcd-*.parquet
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from ..card import CONFIG_DESCRIPTIONS, PLOTS, _plot
from ..schemas import STAGE_BOUNDS, stage_of

if TYPE_CHECKING:
    from .importer import ImportSettings, ImportSummary

# Build's plots that imported rows have data for (no segments: LLaVA-NeXT rows carry none).
IMPORT_PLOTS = ("duration_histogram", "caption_length_vs_duration", "source_shares")
FRAMES_NOTE = (
    "- Per-row `num_frames` of the annotations is kept in the `num_frames` column (null: the stage's count).\n"
)
IMAGE_CONFIG_DESCRIPTION = "training rows with an `image` path (images embedded in Parquet are written to `images/`)"
BAND_LABELS = {"stage1": "< 2 min (stage1)", "stage2": "2-5 min (stage2)", "stage3": "5-20 min (stage3)",
               "longer": "> 20 min (no stage)"}  # fmt: skip


def import_stats(summary: ImportSummary) -> dict:
    """Counts per duration band and the series of the plots, under the keys of ``dataset_builder.card``'s stats."""
    table = {stage: Counter() for stage in STAGE_BOUNDS} | {"longer": Counter()}
    for duration, _, _ in summary.media.values():
        band = table[stage_of(duration) or "longer"]
        band["videos"] += 1
        band["hours"] += duration / 3600
    for stage in STAGE_BOUNDS:
        if summary.written.get(stage):
            table[stage]["training rows"] = summary.written[stage]
    videos = list(summary.media.values())
    return {
        "table": table,
        "durations": [duration for duration, _, _ in videos],
        "caption_words": [words for _, _, words in videos],
        "sources": Counter(source for _, source, _ in videos),
    }


def yaml_configs(configs: list[str], token: str) -> str:
    """The card's ``configs:`` block: one config per non-empty config, its files named by the run's prefix."""
    lines = ["configs:"]
    for config in configs:
        pattern = f"{config}/train-{token}-*.parquet"
        lines += [f"- config_name: {config}", "  data_files:", "  - split: train", f"    path: {pattern}"]
    return "\n".join(lines)


def _counts_table(stats: dict) -> str:
    columns = ["videos", "hours", "training rows"]
    lines = ["| duration | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
    for band, row in stats["table"].items():
        cells = [f"{row[c]:.2f}" if c == "hours" else str(row[c]) for c in columns]
        lines.append(f"| {BAND_LABELS[band]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _count_lines(counts: Counter, unit: str) -> str:
    if not counts:
        return "none"
    return "\n".join(f"- `{name}`: {count} {unit}" for name, count in counts.most_common())


def write_import_card(
    out: Path, token: str, settings: ImportSettings, inputs: list[str], summary: ImportSummary
) -> dict:
    """Write ``out/README.md`` (and ``out/plots/*.png`` for videos); returns the statistics shown."""
    configs = list(summary.data_files)
    video = settings.modality == "video"
    descriptions = {**CONFIG_DESCRIPTIONS, settings.image_config: IMAGE_CONFIG_DESCRIPTION}
    stats = import_stats(summary)
    if video:
        (out / "plots").mkdir(parents=True, exist_ok=True)
        for name in IMPORT_PLOTS:
            _plot(name, stats, out / "plots" / f"{name}.png")
        counts = _counts_table(stats)
        plots = "\n".join(f"![{PLOTS[name]}](plots/{name}.png)" for name in IMPORT_PLOTS)
        statistics = f"""## Statistics (paper Fig. 2 and 3; caption length = words of a video's longest answer)

{plots}
"""
    else:
        counts = f"{summary.images} images, {summary.written.get(settings.image_config, 0)} training rows."
        statistics = ""
    listed = "\n".join(f"- `{name}`: {descriptions[name]}" for name in configs) or "- none (no row was usable)"
    text = f"""---
{yaml_configs(configs, token)}
task_categories:
- {"video" if video else "image"}-text-to-text
tags:
- prolongvid
- llava-next-format
---

# {settings.modality.capitalize()} instruction data imported from LLaVA-NeXT-format annotations

Imported with `python -m dataset_builder import --modality {settings.modality}` (ProLongVid kit) from
{", ".join(f"`{Path(name).name}`" for name in inputs)}, media under `{Path(settings.media_root).name}/`.
{"Each video's stage comes from its duration, read from the file (`--probe " + settings.probe + "`)." if video else ""}

## Configs

{listed}

```python
from datasets import load_dataset
rows = load_dataset("path/or/repo", "{configs[0] if configs else "stage1"}", split="train")
```

## Counts

{counts}

Rows read: {summary.rows}. Training rows per source:

{_count_lines(summary.sources, "rows")}

Rows left out (each is in `import_errors.jsonl` with its reason):

{_count_lines(summary.skipped, "rows")}

{statistics}
## How it was made

- Conversations: upstream's `qwen_1_5` rendering is kept (the placeholder moved to the start of the first human
  turn); rows whose placeholder was glued to its text get a newline after it: {summary.normalized}.
{FRAMES_NOTE if video else ""}"""
    (out / "README.md").write_text(text)
    return stats
