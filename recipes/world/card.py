"""The world model's card: held-out accuracy per stage, task family and duration band, the frame-count
extrapolation, and the learning curve (training loss per stage, held-out accuracy after each stage).

`write_card(run_dir)` reads what `recipes.world.reproduce` wrote (`stage*/trainer_state.json`,
`eval/<stage>/results-world-*.json`), copies the stage-3 checkpoint into `run_dir/model/` and writes
`model/README.md`, `model/results.json` (the figures the card states, machine-readable: the benchmark's videos per
band, overall / per-band / per-family accuracy, and the score on a fixed subset of it, :data:`SUBSET_VIDEOS`) and
`model/learning_curve.png`.

Example (on a finished run)::

    >>> from recipes.world.card import write_card
    >>> write_card("runs/world")  # doctest: +SKIP
    PosixPath('runs/world/model/README.md')
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from recipes.training.handoff import STAGE_RECORD, portable_stage_record, read_stage_record
from recipes.world.table4 import comparison_lines

FAMILIES = ("attribute", "counting", "temporal", "needle", "summary")
BANDS = ("short", "medium", "long")
CHECKPOINT_FILES = ("*.safetensors", "*.json", "*.jinja", "*.txt")
# The benchmark's first videos per band whose stage-3 score the card states too: `write_benchmark` with these counts
# writes exactly these questions, so a test can re-score the shipped checkpoint on them in a minute.
SUBSET_VIDEOS = {"short": 2, "medium": 1, "long": 1}


def read_results(run_dir: Path) -> dict[str, dict[int, dict]]:
    """``{stage: {frames: summary}}`` of every ``eval/<stage>/results-world-<F>f-*.json``."""
    results = read_evaluations(run_dir / "eval")
    if not results:
        raise FileNotFoundError(f"{run_dir}/eval has no results-world-*.json: run the `evaluate` step first.")
    return results


def _scoring(result: dict) -> str:
    return result.get("protocol", {}).get("scoring", "generate")


def read_evaluations(eval_dir: Path, scoring: str = "generate") -> dict[str, dict[int, dict]]:
    """``{checkpoint: {frames: summary}}`` of every ``<checkpoint>/results-world-<F>f-*.json`` under ``eval_dir``
    scored by ``scoring`` (``generate``: the harness's default; ``likelihood``: ``--scoring likelihood``)."""
    results: dict[str, dict[int, dict]] = {}
    for file in sorted(eval_dir.glob("*/results-world-*.json")):
        summary = json.loads(file.read_text())
        if _scoring(summary) != scoring:
            continue
        frames = int(file.name.split("-")[2].rstrip("f"))
        results.setdefault(file.parent.name, {})[frames] = summary["metrics"]
    return results


def read_losses(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """``{stage: [(step, loss), ...]}`` from each stage's ``trainer_state.json``."""
    losses = {}
    for stage in ("stage1", "stage2", "stage3"):
        state = run_dir / stage / "trainer_state.json"
        if state.is_file():
            history = json.loads(state.read_text())["log_history"]
            losses[stage] = [(entry["step"], entry["loss"]) for entry in history if "loss" in entry]
    return losses


def segmentation_report(run_dir: Path) -> dict | None:
    """Boundary precision / recall (within 2 s) of the annotator's semantic segments against the world's scene cuts,
    pooled over the run's videos of a minute or more (shorter ones are one segment by design); None without a work dir.
    """
    from dataset_builder.records import LocalRecord
    from dataset_builder.store import JsonlStore
    from dataset_builder.world.perception import segmentation_recovery

    timelines_file, local_dir = run_dir / "videos" / "timelines.jsonl", run_dir / "work" / "local"
    if not (timelines_file.is_file() and local_dir.is_dir()):
        return None
    cuts = {}
    for line in timelines_file.read_text().splitlines():
        entry = json.loads(line)
        cuts[entry["video_id"]] = [scene["start"] for scene in entry["scenes"][1:]]
    matched_p = matched_r = predicted = true = 0.0
    videos = 0
    for record in JsonlStore(local_dir, "_reader").load_index("key").values():
        local = LocalRecord.from_dict(record)
        name = Path(local.video_id).name
        if local.segmentation != "semantic" or name not in cuts:
            continue
        boundaries = [segment.start for segment in local.segments[1:]]
        precision, recall = segmentation_recovery(boundaries, cuts[name])
        matched_p += precision * len(boundaries)
        matched_r += recall * len(cuts[name])
        predicted, true, videos = predicted + len(boundaries), true + len(cuts[name]), videos + 1
    return {
        "videos": videos,
        "precision": round(matched_p / predicted, 3) if predicted else 1.0,
        "recall": round(matched_r / true, 3) if true else 1.0,
        "true_cuts": int(true),
    }


def perception_report(run_dir: Path) -> dict | None:
    """The image stage's frame perception (``recipes.world.perception_check``), when the chain measured it."""
    path = run_dir / "frames_stage" / "perception.json"
    return json.loads(path.read_text()) if path.is_file() else None


def perception_line(report: dict | None) -> str:
    """One sentence of the card: what the image stage's checkpoint names correctly in fresh frames."""
    if not report:
        return ""
    accuracy = {field: f"{100 * share:.0f}%" for field, share in report["accuracy"].items()}
    return (
        f"After the image stage the model captions {report['frames']} fresh frames (`recipes.world.perception_check`):"
        f" background {accuracy['background']} (chance 17%), object present or not {accuracy['object']}, and of the"
        f" {report['object_frames']} objects the colour {accuracy['colour']} (chance 20%) and the shape"
        f" {accuracy['shape']} (chance 33%)."
    )


def benchmark_videos(run_dir: Path) -> dict[str, int]:
    """Held-out videos per band, from the benchmark's ground truth (``benchmark/timelines.jsonl``)."""
    counts = dict.fromkeys(BANDS, 0)
    for line in (run_dir / "benchmark" / "timelines.jsonl").read_text().splitlines():
        counts[json.loads(line)["video_id"].split("-")[1]] += 1
    return counts


def subset_result(run_dir: Path, frames: int = 192, scoring: str = "generate") -> dict | None:
    """Stage 3's score at ``frames`` by ``scoring`` over the questions of the first :data:`SUBSET_VIDEOS` benchmark
    videos per band, from its predictions (scored as the harness scores a run)."""
    from dataset_builder.world.benchmark import BENCHMARK_SEED_OFFSET
    from evaluation.metrics import summarize
    from evaluation.store import PredictionStore

    eval_dir = run_dir / "eval" / "stage3"
    found = [json.loads(file.read_text()) for file in eval_dir.glob(f"results-world-{frames}f-*.json")]
    [result] = [summary for summary in found if _scoring(summary) == scoring]
    if not any(eval_dir.glob("predictions-*.jsonl")):
        return None
    predictions = PredictionStore(eval_dir).load(result["settings_key"])

    def in_subset(question_id: str) -> bool:
        _, band, seed = question_id.split("-")[:3]
        return int(seed) - BENCHMARK_SEED_OFFSET < SUBSET_VIDEOS[band]

    summary = summarize("world", [p for question_id, p in predictions.items() if in_subset(question_id)])
    return {"videos_per_band": SUBSET_VIDEOS, "questions": summary["questions"], "accuracy": summary["accuracy"]}


def seed_comparison(
    run_dir: Path, results: dict[str, dict[int, dict]], seed: int = 0, scoring: str = "generate"
) -> dict | None:
    """Progressive (stage 3) vs the mixed baseline at 192 frames over the chain's seed (``results``) and every
    ``eval/seed-<S>/`` (``reproduce --seeds``), scored by ``scoring``: per seed, and mean and sample standard
    deviation, overall and on long videos; None without a mixed baseline."""
    from statistics import mean, stdev

    evaluations = {seed: results}
    for folder in sorted((run_dir / "eval").glob("seed-*"), key=lambda path: int(path.name.split("-")[1])):
        evaluations[int(folder.name.split("-")[1])] = read_evaluations(folder, scoring)
    runs = {
        run_seed: {"progressive": _at_192(by_name["stage3"]), "mixed": _at_192(by_name["mixed"])}
        for run_seed, by_name in evaluations.items()
        if "stage3" in by_name and "mixed" in by_name
    }
    if not runs:
        return None
    comparison: dict = {"seeds": sorted(runs)}
    for kind in ("progressive", "mixed"):
        overall = [runs[s][kind]["accuracy"] for s in comparison["seeds"]]
        long = [_accuracy(runs[s][kind], "by_duration", "long") for s in comparison["seeds"]]
        comparison[kind] = {
            "overall": overall,
            "long": long,
            "overall_mean": round(mean(overall), 2),
            "overall_std": round(stdev(overall), 2) if len(overall) > 1 else None,
            "long_mean": round(mean(long), 2),
            "long_std": round(stdev(long), 2) if len(long) > 1 else None,
        }
    return comparison


def _accuracy(summary: dict, group: str, key: str) -> float | None:
    entry = summary.get(group, {}).get(key)
    return None if entry is None else entry["accuracy"]


def _at_192(runs: dict[int, dict]) -> dict:
    """A stage's summary at the chain's evaluation frame count (192), else at its largest."""
    return runs.get(192) or runs[max(runs)]


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def results_table(results: dict[str, dict[int, dict]]) -> str:
    header = ["checkpoint", "frames", "overall", *BANDS, *FAMILIES]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for stage in sorted(results):
        for frames in sorted(results[stage]):
            summary = results[stage][frames]
            cells = [stage, str(frames), _cell(summary["accuracy"])]
            cells += [_cell(_accuracy(summary, "by_duration", band)) for band in BANDS]
            cells += [_cell(_accuracy(summary, "by_category", family)) for family in FAMILIES]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_learning_curve(losses: dict, results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    offset = 0
    for stage, points in losses.items():
        if points:
            left.plot([offset + step for step, _ in points], [loss for _, loss in points], label=stage)
            offset += points[-1][0]
    left.set_xlabel("optimizer step (stages in sequence)")
    left.set_ylabel("training loss")
    if any(losses.values()):
        left.legend()
    stages = [s for s in ("stage1", "stage2", "stage3") if s in results]
    for band in ("overall", *BANDS):
        values = []
        for stage in stages:
            summary = _at_192(results[stage])
            values.append(summary["accuracy"] if band == "overall" else _accuracy(summary, "by_duration", band))
        right.plot(stages, values, marker="o", label=band)
    right.axhline(25, color="grey", linestyle=":", label="chance")
    right.set_ylabel("held-out accuracy (%)")
    right.set_ylim(0, 100)
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def stated_figures(results: dict[str, dict[int, dict]], subset: dict | None) -> dict:
    """What ``results.json`` states of one scoring: stage 3's accuracy at 192 frames (overall, per band and family),
    every checkpoint's overall accuracy per frame count, and the subset score."""
    final = _at_192(results["stage3"])
    return {
        "accuracy": final["accuracy"],
        "by_duration": {band: _accuracy(final, "by_duration", band) for band in BANDS},
        "by_category": {family: _accuracy(final, "by_category", family) for family in FAMILIES},
        "all_runs": {stage: {str(f): s["accuracy"] for f, s in runs.items()} for stage, runs in results.items()},
        "subset": subset,
    }


def _long_accuracy(results: dict[str, dict[int, dict]]) -> dict[str, float | None]:
    return {stage: _accuracy(_at_192(results[stage]), "by_duration", "long") for stage in results}


def write_card(run_dir: str | Path, minutes: float | None = None, seed: int = 0) -> Path:
    """Copy the stage-3 checkpoint to ``run_dir/model`` and write its card, results and learning curve (``seed``: the
    chain's own training seed, beside the ``--seeds`` runs; ``minutes``: the whole chain's time, when one invocation
    ran every step -- a card rewritten later keeps the time its ``results.json`` states)."""
    run_dir = Path(run_dir)
    previous = run_dir / "model" / "results.json"
    if minutes is None and previous.is_file():
        minutes = json.loads(previous.read_text()).get("chain_minutes")
    results, losses = read_results(run_dir), read_losses(run_dir)
    model_dir = run_dir / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    for pattern in CHECKPOINT_FILES:
        for file in (run_dir / "stage3").glob(pattern):
            if file.name not in ("trainer_state.json", STAGE_RECORD):
                shutil.copy2(file, model_dir / file.name)
    record = read_stage_record(run_dir / "stage3")
    if record is not None:  # written with run-relative paths instead of copied
        (model_dir / STAGE_RECORD).write_text(json.dumps(portable_stage_record(record, run_dir), indent=2) + "\n")
    plot_learning_curve(losses, results, model_dir / "learning_curve.png")
    final = results["stage3"][192]
    stated = {
        "benchmark": "world",
        "frames": 192,
        "benchmark_videos": benchmark_videos(run_dir),
        "questions": final["questions"],
        **stated_figures(results, subset_result(run_dir)),
        "chain_minutes": None if minutes is None else round(minutes, 1),
    }
    segmentation = segmentation_report(run_dir)
    stated["segmentation"] = segmentation
    perception = perception_report(run_dir)
    # the figures only: not the per-frame examples, nor the measured checkpoint's path on the machine that ran it
    stated["perception"] = (
        None if perception is None else {k: v for k, v in perception.items() if k not in ("examples", "model")}
    )
    comparison = seed_comparison(run_dir, results, seed)
    stated["comparison"] = comparison
    likelihood = read_evaluations(run_dir / "eval", "likelihood")
    by_likelihood = seed_comparison(run_dir, likelihood, seed, "likelihood")
    stated["comparison_likelihood"] = by_likelihood
    stated["likelihood"] = None
    if "stage3" in likelihood:
        stated["likelihood"] = stated_figures(likelihood, subset_result(run_dir, 192, "likelihood"))
    (model_dir / "results.json").write_text(json.dumps(stated, indent=2) + "\n")
    segmentation_line = (
        f"The annotator's semantic segmentation recovered the world's scene changes with boundary precision "
        f"{segmentation['precision']:.3f} and recall {segmentation['recall']:.3f} (within 2 s; {segmentation['videos']} "
        f"videos of a minute or more, {segmentation['true_cuts']} scene cuts)."
        if segmentation
        else ""
    )
    long_after, long_by_likelihood = _long_accuracy(results), _long_accuracy(likelihood)
    mixed_line = comparison_lines(comparison, by_likelihood, seed)
    likelihood_lines = (
        "By option likelihood (`--scoring likelihood`: the option whose text, as the whole reply, the model finds\n"
        f"most likely; no parse failures), stage 3 at 192 frames: **{stated['likelihood']['accuracy']:.1f}%**.\n\n"
        f"{results_table(likelihood)}\n\nLong videos after stage 1 vs stage 3 by likelihood: "
        f"{_cell(long_by_likelihood.get('stage1'))}% vs {_cell(long_by_likelihood.get('stage3'))}%.\n\n"
        if stated["likelihood"]
        else ""
    )
    took = f" The whole chain took {minutes:.0f} minutes." if minutes else ""
    card = f"""---
library_name: transformers
pipeline_tag: image-text-to-text
tags: [prolongvid, video, synthetic]
---

# ProLongVid-world-tiny

A tiny ProLongVid (SigLIP -> MLP projector -> Qwen2 layout, about 0.9 M parameters) trained
**only on the kit's synthetic world**: coloured scenes, moving shapes and brief flashes in 10 s - 20 min videos
(`dataset_builder.world`). It knows nothing about real videos; for real weights load `prolongvid/ProLongVid-7B-hf`
(or convert upstream's checkpoint with `modeling_prolongvid/convert_prolongvid_weights_to_hf.py`).

Reproduce: `python -m recipes.world.reproduce --out runs/world` (world -> `dataset_builder annotate` with the world
captioner -> `build` -> tiny model from scratch -> `accelerate launch` of the image stage on single frames, then the
video stages 1-3 at 32 / 128 / 192 frames -> evaluation harness).{took} {segmentation_line}
{perception_line(perception)}

## Held-out benchmark (`python -m evaluation run --benchmark world`, 4 options, chance 25%)

Stage 3 at 192 frames: **{final["accuracy"]:.1f}%** over {final["questions"]} questions.

{results_table(results)}

Accuracy in %. Rows are the checkpoint after each stage at 192 frames, and after stage 3 also at 256 frames (beyond
its training length). Long videos after stage 1 vs stage 3:
{_cell(long_after.get("stage1"))}% vs {_cell(long_after.get("stage3"))}%.

The model answers with the chosen option's text; the harness maps a reply that repeats exactly one option to its
letter, and a reply that names no option counts as wrong.

{likelihood_lines}{mixed_line}
![learning curve](learning_curve.png)
"""
    (model_dir / "README.md").write_text(card)
    return model_dir / "README.md"
