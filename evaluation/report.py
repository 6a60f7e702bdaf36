"""Side-by-side tables of evaluation runs: markdown, JSON and a PNG bar chart.

Each run directory (``python -m evaluation run --out DIR``) holds ``results-*.json`` files, one per benchmark and
frame count. The report lays them out as the paper does: an overview with one column per benchmark (Table 2),
VideoMME per duration without and with subtitles at each frame count (Tables 3, 5 and 7), LongVideoBench per
duration group, one per-category table per benchmark, and the run details (model revision, kit version, parse
failures, skipped questions, wall time).

Example:
    >>> from evaluation.report import write_report
    >>> paths = write_report(["results/stage1", "results/stage3"], "report/")  # doctest: +SKIP
    >>> sorted(paths)  # doctest: +SKIP
    ['json', 'markdown', 'png']
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .benchmarks import BENCHMARKS, LONGVIDEOBENCH_DURATIONS, VIDEOMME_DURATIONS

OVERVIEW_ORDER = ("videomme", "videomme_w_subtitle", "mlvu_dev", "longvideobench_val", "tempcompass_mc")


@dataclass(frozen=True)
class RunRow:
    """One row of the tables: a run directory's results at one frame count and sampling rule."""

    label: str
    frames: int
    sampling: str
    results: dict  # benchmark name -> result file content

    @property
    def name(self) -> tuple[str, str]:
        sampling = "" if self.sampling == "uniform" else f" ({self.sampling})"
        return self.label, f"{self.frames}{sampling}"


def load_rows(run_dirs: list[str | os.PathLike], labels: list[str] | None = None) -> list[RunRow]:
    """Rows of every ``results-*.json`` under the run directories, in run order then frame count. Of several
    results for one benchmark, frame count and sampling (e.g. another dtype), the newest is shown."""
    rows = []
    for number, run_dir in enumerate(run_dirs):
        run_dir = Path(run_dir)
        files = sorted(run_dir.rglob("results-*.json"))
        if not files:
            raise FileNotFoundError(f"{run_dir}: no results-*.json; write some with `python -m evaluation run`")
        label = labels[number] if labels else run_dir.name
        grouped: dict[tuple[int, str], dict] = {}
        for file in files:
            result = json.loads(file.read_text())
            slot = grouped.setdefault((result["frames"], result["sampling"]), {})
            previous = slot.get(result["benchmark"])
            if previous is None or previous["created"] <= result["created"]:
                slot[result["benchmark"]] = result
        for (frames, sampling), results in sorted(grouped.items()):
            rows.append(RunRow(label, frames, sampling, results))
    return rows


def _format(value) -> str:
    if value is None:
        return "–"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _markdown_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def _duration_accuracy(result: dict | None, group: str):
    if result is None:
        return None
    return result["metrics"]["by_duration"].get(group, {}).get("accuracy")


def build_tables(rows: list[RunRow]) -> dict[str, dict]:
    """``{table name: {"header": [...], "rows": [[...], ...]}}`` with numbers (``None`` where not run)."""
    present = [name for name in OVERVIEW_ORDER if any(name in row.results for row in rows)]
    tables = {}

    def metric(row: RunRow, benchmark: str, key: str = "headline"):
        result = row.results.get(benchmark)
        return None if result is None else result["metrics"][key]

    tables["overview"] = {
        "header": ["Run", "Frames", *[BENCHMARKS[name].title for name in present]],
        "rows": [[*row.name, *[metric(row, name) for name in present]] for row in rows],
    }
    if any(name in present for name in ("videomme", "videomme_w_subtitle")):
        header, body = ["Run", "Frames"], [list(row.name) for row in rows]
        for name, suffix in (("videomme", "w/o subs"), ("videomme_w_subtitle", "w/ subs")):
            if name not in present:
                continue
            header += [f"{group.capitalize()} ({suffix})" for group in VIDEOMME_DURATIONS] + [f"Overall ({suffix})"]
            for cells, row in zip(body, rows):
                result = row.results.get(name)
                cells += [_duration_accuracy(result, group) for group in VIDEOMME_DURATIONS]
                cells.append(metric(row, name, "accuracy"))
        tables["videomme_per_duration"] = {"header": header, "rows": body}
    if "longvideobench_val" in present:
        groups = list(LONGVIDEOBENCH_DURATIONS)
        tables["longvideobench_per_duration"] = {
            "header": ["Run", "Frames", *LONGVIDEOBENCH_DURATIONS.values(), "Overall", "Overall (lmms-eval scoring)"],
            "rows": [
                [
                    *row.name,
                    *[_duration_accuracy(row.results.get("longvideobench_val"), group) for group in groups],
                    metric(row, "longvideobench_val", "accuracy"),
                    metric(row, "longvideobench_val", "accuracy_lmms_eval"),
                ]
                for row in rows
            ],
        }
    for name in present:
        categories = sorted(
            {
                category
                for row in rows
                if name in row.results
                for category in row.results[name]["metrics"]["by_category"]
            }
        )
        table_rows = []
        for row in rows:
            by_category = row.results[name]["metrics"]["by_category"] if name in row.results else {}
            table_rows.append([*row.name, *[by_category.get(c, {}).get("accuracy") for c in categories]])
        tables[f"{name}_per_category"] = {"header": ["Run", "Frames", *categories], "rows": table_rows}
    details = []
    for row in rows:
        for name in present:
            result = row.results.get(name)
            if result is None:
                continue
            m = result["metrics"]
            details.append(
                [
                    *row.name,
                    name,
                    result["model_revision"],
                    result["kit_version"],
                    m["answered"],
                    m["parse_failures"],
                    len(m["skipped"]),
                    result["wall_seconds"],
                ]
            )
    tables["details"] = {
        "header": [
            "Run",
            "Frames",
            "Benchmark",
            "Model revision",
            "Kit",
            "Answered",
            "Parse failures",
            "Skipped",
            "Wall s",
        ],
        "rows": details,
    }
    return tables


TITLES = {
    "overview": "Overview (paper Table 2 layout; MLVU: M-Avg)",
    "videomme_per_duration": "VideoMME per duration (paper Tables 3, 5, 7 layout)",
    "longvideobench_per_duration": "LongVideoBench val per duration group",
    "details": "Run details",
}


def render_markdown(tables: dict[str, dict]) -> str:
    parts = ["# Evaluation report", ""]
    for name, table in tables.items():
        title = TITLES.get(name, f"{name.removesuffix('_per_category')}: per task type / category")
        body = [[_format(cell) for cell in row] for row in table["rows"]]
        parts += [f"## {title}", "", _markdown_table(table["header"], body), ""]
    return "\n".join(parts)


def plot(tables: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    overview = tables["overview"]
    benchmarks = overview["header"][2:]
    fig, axis = plt.subplots(figsize=(max(6, 1.8 * len(benchmarks) + 2), 4))
    width = 0.8 / max(1, len(overview["rows"]))
    for number, row in enumerate(overview["rows"]):
        values = [value or 0.0 for value in row[2:]]
        positions = [i + number * width for i in range(len(benchmarks))]
        axis.bar(positions, values, width, label=f"{row[0]} · {row[1]} frames")
    axis.set_xticks([i + 0.4 - width / 2 for i in range(len(benchmarks))], benchmarks, rotation=15)
    axis.set_ylabel("accuracy (%)")
    axis.set_ylim(0, 100)
    axis.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(
    run_dirs: list[str | os.PathLike], out: str | os.PathLike, labels: list[str] | None = None
) -> dict[str, Path]:
    """Write ``report.md``, ``report.json`` and ``report.png`` into ``out``; returns their paths."""
    rows = load_rows(run_dirs, labels)
    tables = build_tables(rows)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "report.md", "json": out / "report.json", "png": out / "report.png"}
    paths["markdown"].write_text(render_markdown(tables))
    runs = [{"label": r.label, "frames": r.frames, "sampling": r.sampling, "results": r.results} for r in rows]
    paths["json"].write_text(json.dumps({"tables": tables, "runs": runs}, indent=2, ensure_ascii=False))
    plot(tables, paths["png"])
    return paths


__all__ = ["build_tables", "load_rows", "render_markdown", "write_report"]
