"""Questions per minute: the built-in runner vs lmms-eval with the kit's plugin, same tiny model, same fixture.

Writes a VideoMME-format fixture (generated H.264 videos) and a tiny random-weight checkpoint, then answers every
question three ways in this one process: the built-in runner with decoding workers (decode overlapped with
generation), the built-in runner decoding in the main process, and lmms-eval 0.7.x's ``simple_evaluate`` with the
``prolongvid`` plugin model (which decodes inside ``generate_until``, as lmms-eval's models do). Prints
questions/min for each and the ratio built-in / lmms-eval (target: >= 1.0). Runs on CPU; needs the ``eval``
extra and lmms-eval (``pip install --no-deps "lmms-eval==0.7.3"``).

    PYTHONPATH=. python benchmarks/evaluation.py --videos 6 --questions-per-video 2 --frames 32
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow the `evaluation` package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def time_builtin(checkpoint: Path, data: Path, out: Path, frames: int, dtype: str, workers: int) -> float:
    from evaluation.runner import EvaluationConfig, run_evaluation

    start = time.perf_counter()
    run_evaluation(
        EvaluationConfig(
            model=str(checkpoint), benchmark="videomme", data=str(data), out=str(out), frames=[frames],
            dtype=dtype, num_workers=workers, device="cpu",
        )
    )  # fmt: skip
    return time.perf_counter() - start


def time_lmms_eval(checkpoint: Path, task_dir: Path, frames: int, dtype: str) -> float:
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.tasks import TaskManager

    from evaluation.lmms_eval_model import ProLongVidLmmsEval

    task_manager = TaskManager("WARNING", include_path=str(task_dir))
    start = time.perf_counter()
    model = ProLongVidLmmsEval(pretrained=str(checkpoint), num_frames=frames, dtype=dtype, device="cpu")
    simple_evaluate(model=model, tasks=["prolongvid_tiny_videomme"], task_manager=task_manager, batch_size=1)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--questions-per-video", type=int, default=2)
    parser.add_argument("--video-frames", type=int, default=300, help="Frames per generated video (10 fps).")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--frames", type=int, default=32, help="Frames sampled per question.")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--workers", type=int, default=2, help="Decoding workers of the overlapped runner.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from evaluation.benchmarks import BENCHMARKS
    from evaluation.fixtures import write_fixture, write_lmms_eval_task, write_video
    from modeling_prolongvid.tiny_checkpoint import build_tiny_checkpoint

    with tempfile.TemporaryDirectory(prefix="eval-bench-") as tmp:
        tmp = Path(tmp)
        checkpoint = build_tiny_checkpoint(tmp / "tiny")
        data = write_fixture("videomme", tmp / "videomme", args.videos, args.questions_per_video, num_frames=2)
        for video in sorted((data / "data").glob("*.mp4")):  # replace the stubs by videos worth decoding
            write_video(video, args.video_frames, width=args.width, height=args.height)
        task_dir = write_lmms_eval_task(tmp / "tasks", data)
        questions = len(BENCHMARKS["videomme"].read(data))

        timings = {
            f"built-in runner, {args.workers} decoding workers": time_builtin(
                checkpoint, data, tmp / "overlap", args.frames, args.dtype, args.workers
            ),
            "built-in runner, decoding in the main process": time_builtin(
                checkpoint, data, tmp / "inline", args.frames, args.dtype, 0
            ),
            "lmms-eval 0.7 + prolongvid plugin": time_lmms_eval(checkpoint, task_dir, args.frames, args.dtype),
        }

    print(
        f"\n{questions} VideoMME-format questions, {args.videos} videos of {args.video_frames} frames "
        f"{args.width}x{args.height}, {args.frames} frames/question, tiny model on CPU ({args.dtype})"
    )
    rates = {name: 60.0 * questions / seconds for name, seconds in timings.items()}
    for name, seconds in timings.items():
        print(f"  {name:50s} {seconds:7.1f} s  {rates[name]:7.1f} questions/min")
    names = list(rates)
    print(f"ratio built-in (workers) / lmms-eval: {rates[names[0]] / rates[names[2]]:.2f}")
    print(f"ratio built-in (inline)  / lmms-eval: {rates[names[1]] / rates[names[2]]:.2f}")


if __name__ == "__main__":
    main()
