r"""The synthetic world end to end, one command: world -> annotate -> build -> init -> stages 1, 2, 3 -> evaluate -> card.

```bash
python -m recipes.world.reproduce --out runs/world
```

Every step runs the kit's own command line, as a user would, and is skipped when its output is already there (a
re-run resumes; `--force STEP` redoes one):

1. `videos`, `benchmark`: `python -m dataset_builder.world videos|benchmark` (training seeds and held-out seeds).
2. `annotate`: `python -m dataset_builder annotate` with the world's frame models (pixel analysis, `module:attr`
   paths) against the world captioner (`python -m dataset_builder.world.captioner_server`, an OpenAI-compatible server
   on 127.0.0.1); `build`: `python -m dataset_builder build` (the stage splits by duration).
3. `init`: `python -m recipes.world.init` (tiny ProLongVid from scratch, tokenizer trained on the dataset's text).
4. `frames`, `frames_stage`: the image stage -- `python -m recipes.world.frames` (cached frames with their frame
   captions, as one-frame rows), then `accelerate launch ... recipes/image_sft.py --config recipes/world/frames.yaml`;
   `perception`: `python -m recipes.world.perception_check` -- what the image stage taught the model to see
   (background, object, its colour and shape in fresh frames), for the card.
5. `stage1` .. `stage3`: `accelerate launch ... recipes/stageN.py --config recipes/world/stageN.yaml` (32 / 128 / 192
   frames, 2 CPU processes).
6. `evaluate`: `python -m evaluation run --benchmark world` at 192 frames after every stage, and after stage 3 at
   256 frames too (beyond its training length); then at 192 frames again with `--scoring likelihood`; `card`: the
   model card with the results and the learning curve (`recipes.world.card`).

The sizes of the run (videos per band, questions per task type) are flags; the defaults are what the shipped
checkpoint was trained with.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from evaluation.store import SCORINGS

RECIPES = Path(__file__).resolve().parent
REPO = RECIPES.parents[1]
CAPTIONER = "dataset_builder.world.perception:WorldFrameCaptioner"
EMBEDDER = "dataset_builder.world.perception:WorldFrameEmbedder"
STEPS = (
    "videos", "benchmark", "annotate", "build", "init", "frames", "frames_stage", "perception", "stage1", "stage2",
    "stage3", "evaluate", "card",
)  # fmt: skip
STEP_TIMES = "step_seconds.json"  # in OUT/logs: {step: seconds of its last run}
# (checkpoint, frame counts, scoring) evaluated on the held-out benchmark: generated replies (the harness's default)
# and option likelihood (`--scoring likelihood`).
EVALUATIONS = (
    ("stage1", (192,), "generate"), ("stage2", (192,), "generate"), ("stage3", (192, 256), "generate"),
    ("stage1", (192,), "likelihood"), ("stage2", (192,), "likelihood"), ("stage3", (192,), "likelihood"),
)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(command: list[str], log: Path, env: dict | None = None) -> None:
    """Run one step's command (cwd: the repository), its output appended to `log`; a failure names the log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    print("$", " ".join(command), flush=True)
    with open(log, "a") as handle:
        handle.write("$ " + " ".join(command) + "\n")
        handle.flush()
        result = subprocess.run(command, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, env=env)
    if result.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-30:])
        raise SystemExit(f"step failed (exit {result.returncode}); its log is {log}:\n{tail}")
    print(f"  done in {time.time() - started:.0f} s", flush=True)


@contextmanager
def captioner_server(log: Path):
    """The world captioner on 127.0.0.1 for the duration of the block; yields its base URL."""
    with open(log, "a") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "dataset_builder.world.captioner_server", "--port", "0"],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=handle, text=True,
        )  # fmt: skip
        try:
            line = process.stdout.readline()
            if not line.startswith("PORT"):
                raise SystemExit(f"the world captioner did not start (see {log})")
            yield f"http://127.0.0.1:{line.split()[1]}/v1"
        finally:
            process.stdin.close()
            process.wait(timeout=30)


def step_times(out: Path) -> dict[str, float]:
    """``{step: seconds of its last run}`` recorded under `out` (empty before any step ran)."""
    path = out / "logs" / STEP_TIMES
    return json.loads(path.read_text()) if path.is_file() else {}


def record_step_time(out: Path, step: str, seconds: float) -> None:
    """Keep `seconds` as the time of `step`'s last run (`OUT/logs/step_seconds.json`)."""
    times = {**step_times(out), step: round(seconds, 1)}
    (out / "logs" / STEP_TIMES).write_text(json.dumps(times, indent=2) + "\n")


def chain_minutes(out: Path) -> float | None:
    """The chain's time: the sum of its steps' own times, each step's last run (`OUT/logs/step_seconds.json`), when
    every step before the card has one -- a chain resumed over several invocations is timed as one that ran at once;
    the Table 4 runs (`mixed`, `seeds`) are extra, not the chain.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp())
        >>> (out / "logs").mkdir()
        >>> for step in STEPS[:-1]:
        ...     record_step_time(out, step, 60.0)
        >>> chain_minutes(out)
        12.0
        >>> record_step_time(out, "mixed", 600.0)
        >>> chain_minutes(out)
        12.0
    """
    times = step_times(out)
    if any(step not in times for step in STEPS[:-1]):
        return None
    return sum(times[step] for step in STEPS[:-1]) / 60


def train_command(
    args, recipe: str, config: Path, start: Path, dataset: Path, output: Path, seed: int | None = None
) -> list[str]:
    """`accelerate launch` of `recipes/<recipe>.py --config <config>` from `start` on `dataset` into `output`, with
    training seed `seed` (default: `--seed`)."""
    launch = ["accelerate", "launch", "--multi_gpu", "--num_processes", str(args.processes), "--mixed_precision", "no",
              "--dynamo_backend", "no", "--main_process_port", str(_free_port())]  # fmt: skip
    if args.processes == 1:
        launch = ["accelerate", "launch", "--num_processes", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    command = [*launch, f"recipes/{recipe}.py", "--config", str(config), "--model_name_or_path", str(start),
               "--dataset_name", str(dataset), "--output_dir", str(output), "--seed", str(args.seed if seed is None else seed)]  # fmt: skip
    return command + (["--max_steps", str(args.max_steps)] if args.max_steps else [])


def evaluate_command(out: Path, checkpoint: str, frames: tuple[int, ...], scoring: str = "generate") -> list[str]:
    """`python -m evaluation run` of `out/<checkpoint>` (e.g. `stage3`, `seed-1/mixed`) on the world's benchmark at
    `frames` with `scoring`, into `out/eval/<checkpoint>`."""
    return [sys.executable, "-m", "evaluation", "run", "--model", str(out / checkpoint), "--benchmark", "world",
            "--data", str(out / "benchmark"), "--out", str(out / "eval" / checkpoint), "--frames",
            *(str(f) for f in frames), "--dtype", "float32", "--device", "cpu", "--num-workers", "0",
            "--scoring", scoring]  # fmt: skip


def train_seed(args, out: Path, seed: int, logs: Path, env: dict) -> None:
    """Stages 1-3 and the mixed baseline again with training seed `seed`, from the image stage, into
    `out/seed-<seed>/`; stage 3 and the mixed baseline evaluated at 192 frames, by both scorings. Finished parts are
    kept."""
    folder = f"seed-{seed}"
    for name, recipe, start in (("stage1", "stage1", "frames_stage"), ("stage2", "stage2", f"{folder}/stage1"),
                                ("stage3", "stage3", f"{folder}/stage2"), ("mixed", "mixed", "frames_stage")):  # fmt: skip
        output = out / folder / name
        if not (output / "prolongvid_stage.json").exists():
            run(train_command(args, recipe, RECIPES / f"{recipe}.yaml", out / start, out / "dataset", output, seed),
                logs / f"{folder}-{name}.log", env)  # fmt: skip
    for name in ("stage3", "mixed"):
        for scoring in SCORINGS:
            run(evaluate_command(out, f"{folder}/{name}", (192,), scoring), logs / "evaluate.log", env)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m recipes.world.reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/world", help="run directory (default: %(default)s)")
    parser.add_argument(
        "--short", type=int, default=600, help="training videos of 10 s - 2 min (default: %(default)s)"
    )
    parser.add_argument("--medium", type=int, default=120, help="training videos of 2 - 5 min (default: %(default)s)")
    parser.add_argument("--long", type=int, default=60, help="training videos of 5 - 20 min (default: %(default)s)")
    parser.add_argument(
        "--benchmark-videos",
        type=int,
        nargs=3,
        default=(20, 15, 15),
        metavar=("SHORT", "MEDIUM", "LONG"),
        help="held-out videos per band (default: 20 15 15)",
    )
    parser.add_argument(
        "--questions-per-type", type=int, default=3, help="QA pairs per task type and request (default: %(default)s)"
    )
    parser.add_argument(
        "--frames-per-video", type=int, default=12, help="frames per video in the image stage (default: %(default)s)"
    )
    parser.add_argument("--processes", type=int, default=2, help="training processes (default: %(default)s)")
    parser.add_argument("--max-steps", type=int, default=None, help="cap every stage's optimizer steps (smoke runs)")
    parser.add_argument("--seed", type=int, default=0, help="training seed of every stage (default: %(default)s)")
    parser.add_argument(
        "--mixed",
        action="store_true",
        help="also train the mixed single-stage baseline (recipes/world/mixed.yaml: the same rows at the same frames "
        "in one run, from the image stage) and evaluate it at 192 frames; the card compares it",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[],
        metavar="SEED",
        help="more training seeds for the progressive-vs-mixed comparison (paper Table 4): for each, stages 1-3 and "
        "the mixed baseline train again from the image stage into OUT/seed-SEED/ and are evaluated at 192 frames; "
        "implies --mixed; the card states mean and spread over --seed and these",
    )
    parser.add_argument(
        "--force", action="append", default=[], choices=[*STEPS, "mixed", "seeds"], help="redo STEP (repeatable)"
    )
    parser.add_argument(
        "--until",
        choices=[*STEPS, "mixed", "seeds"],
        default="card",
        help="stop after this step (default: %(default)s)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out).resolve()
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    env = {
        **os.environ,
        "OPENAI_API_KEY": os.environ.get("OPENAI_API_KEY", "EMPTY"),
        "TOKENIZERS_PARALLELISM": "false",
        # the recipes/*.py scripts import the kit from this checkout, installed or not
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    done_markers = {
        "videos": out / "videos" / "timelines.jsonl",
        "benchmark": out / "benchmark" / "videomme",
        "annotate": out / "work" / "annotate.done",
        "build": out / "dataset" / "README.md",
        "init": out / "init" / "prolongvid_stage.json",
        "frames": out / "frames" / "frames",
        "frames_stage": out / "frames_stage" / "prolongvid_stage.json",
        "perception": out / "frames_stage" / "perception.json",
        "stage1": out / "stage1" / "prolongvid_stage.json",
        "stage2": out / "stage2" / "prolongvid_stage.json",
        "stage3": out / "stage3" / "prolongvid_stage.json",
        "evaluate": out / "eval" / "evaluate.done",
        "mixed": out / "mixed" / "prolongvid_stage.json",
        "card": out / "model" / "README.md",
    }

    def pending(step: str) -> bool:
        # the perception check measures the image stage: a retrained one is measured again
        forced = step in args.force or (step == "perception" and "frames_stage" in args.force)
        return forced or not done_markers[step].exists()

    if args.seed in args.seeds:
        raise SystemExit(f"--seeds repeats the chain's own --seed {args.seed}; give the other seeds only.")
    done_markers["seeds"] = out / "eval" / f"seeds-{'-'.join(str(seed) for seed in args.seeds)}.done"
    started = time.time()
    extra = [*(["mixed"] if args.mixed or args.seeds else []), *(["seeds"] if args.seeds else [])]
    steps = [*STEPS[:-1], *extra, STEPS[-1]]
    chain_seconds = 0.0  # this invocation's chain steps: the Table 4 runs (mixed, seeds) are extra, not the chain
    for step in steps:
        step_started, ran = time.time(), pending(step)
        if not ran:
            print(f"[{step}] already done ({done_markers[step]})")
        elif step == "videos":
            run([python, "-m", "dataset_builder.world", "videos", "--out", str(out / "videos"),
                 "--short", str(args.short), "--medium", str(args.medium), "--long", str(args.long)], logs / "videos.log")  # fmt: skip
        elif step == "benchmark":
            short, medium, long = (str(n) for n in args.benchmark_videos)
            run([python, "-m", "dataset_builder.world", "benchmark", "--out", str(out / "benchmark"),
                 "--short", short, "--medium", medium, "--long", long], logs / "benchmark.log")  # fmt: skip
        elif step == "annotate":
            with captioner_server(logs / "captioner.log") as base_url:
                run([python, "-m", "dataset_builder", "annotate", "--videos", str(out / "videos"),
                     "--out", str(out / "work"), "--base-url", base_url, "--model", "world-captioner",
                     "--frame-captioner", CAPTIONER, "--embedder", EMBEDDER, "--frame-size", "64",
                     "--frame-cache-size", "64", "--frame-cache-format", "png", "--frames-per-segment", "1200",
                     "--questions-per-type", str(args.questions_per_type), "--concurrency", "32",
                     "--no-progress"], logs / "annotate.log", env)  # fmt: skip
            done_markers["annotate"].write_text("ok\n")
        elif step == "build":
            run([python, "-m", "dataset_builder", "build", "--work-dir", str(out / "work"), "--out",
                 str(out / "dataset")], logs / "build.log", env)  # fmt: skip
        elif step == "init":
            run([python, "-m", "recipes.world.init", "--config", str(RECIPES / "init.yaml"), "--dataset",
                 str(out / "dataset"), "--out", str(out / "init")], logs / "init.log", env)  # fmt: skip
        elif step == "frames":
            run([python, "-m", "recipes.world.frames", "--dataset", str(out / "dataset"), "--out",
                 str(out / "frames"), "--per-video", str(args.frames_per_video)], logs / "frames.log", env)  # fmt: skip
        elif step == "frames_stage":
            run(train_command(args, "image_sft", RECIPES / "frames.yaml", out / "init", out / "frames", out / step),
                logs / f"{step}.log", env)  # fmt: skip
        elif step == "perception":
            run([python, "-m", "recipes.world.perception_check", "--model", str(out / "frames_stage"), "--out",
                 str(done_markers[step])], logs / "perception.log", env)  # fmt: skip
        elif step.startswith("stage"):
            previous = "frames_stage" if step == "stage1" else f"stage{int(step[-1]) - 1}"
            run(train_command(args, step, RECIPES / f"{step}.yaml", out / previous, out / "dataset", out / step),
                logs / f"{step}.log", env)  # fmt: skip
        elif step == "evaluate":
            for checkpoint, frames, scoring in EVALUATIONS:
                run(evaluate_command(out, checkpoint, frames, scoring), logs / "evaluate.log", env)
            done_markers["evaluate"].write_text("ok\n")
        elif step == "mixed":
            run(train_command(args, "mixed", RECIPES / "mixed.yaml", out / "frames_stage", out / "dataset", out / step),
                logs / f"{step}.log", env)  # fmt: skip
            for scoring in SCORINGS:
                run(evaluate_command(out, "mixed", (192,), scoring), logs / "evaluate.log", env)
        elif step == "seeds":
            for seed in args.seeds:
                train_seed(args, out, seed, logs, env)
            done_markers["seeds"].write_text("ok\n")
        elif step == "card":
            from recipes.world.card import write_card

            print(write_card(out, minutes=chain_minutes(out), seed=args.seed))
        if ran and step in STEPS[:-1]:
            record_step_time(out, step, time.time() - step_started)
        if step in STEPS:
            chain_seconds += time.time() - step_started
        if step == args.until:
            break
    extra_runs = f"; without the Table 4 runs {chain_seconds / 60:.1f} min" if extra else ""
    print(f"world chain finished in {(time.time() - started) / 60:.1f} min{extra_runs}: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
