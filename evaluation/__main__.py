"""Command line: `python -m evaluation run ...` answers a benchmark, `python -m evaluation report ...` tabulates runs.

    python -m evaluation run --model path/to/ckpt --benchmark videomme --data data/Video-MME \\
        --frames 32 128 192 256 --out results/stage3
    accelerate launch -m evaluation run ...          # shards the questions over processes
    python -m evaluation report results/stage1 results/stage2 results/stage3 --out report/
"""

from __future__ import annotations

import argparse
import logging
import sys

from .benchmarks import BENCHMARKS
from .store import SCORINGS


def _layouts() -> str:
    lines = ["benchmark folder layouts (--data DIR):"]
    lines += [f"  {name}: {benchmark.layout}" for name, benchmark in BENCHMARKS.items()]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evaluation", description="Evaluate ProLongVid checkpoints on the paper's benchmarks."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run",
        help="answer a benchmark's questions and score them",
        description="Answer a benchmark with upstream's protocol (linspace frames, qwen_1_5 prompt, greedy), "
        "resumably; one result file per frame count.",
        epilog=_layouts(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--model", required=True, help="Hub id or local checkpoint directory.")
    run.add_argument("--benchmark", required=True, choices=sorted(BENCHMARKS))
    run.add_argument("--data", required=True, help="The benchmark's downloaded folder (layouts below).")
    run.add_argument("--out", required=True, help="Directory for predictions-*.jsonl and results-*.json.")
    run.add_argument("--frames", type=int, nargs="+", default=[32], help="Frame counts to sweep (default: 32).")
    run.add_argument("--fps", type=float, help="Sample F frames per second, capped at --frames (default: uniform).")
    run.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    run.add_argument("--frame-cache", help="Frame cache directory (dataset_builder's) to read frames from.")
    run.add_argument("--limit", type=int, help="Answer only the first N questions (a smoke run).")
    run.add_argument("--strict", action="store_true", help="Fail on a missing or unreadable video (else skip it).")
    run.add_argument("--num-workers", type=int, default=2, help="Decoding processes (0: decode in the main one).")
    run.add_argument("--max-new-tokens", type=int, help="Override the benchmark's generation length (smoke runs).")
    run.add_argument(
        "--scoring",
        choices=SCORINGS,
        default="generate",
        help="generate: greedy reply, letter read out of it (upstream's protocol, default); likelihood: the option "
        "whose text the model finds most likely as its reply (evaluation.scoring)",
    )
    run.add_argument("--device", help="cuda, cuda:1 or cpu (default: the process's accelerator, else cpu).")
    run.add_argument(
        "--subtitle-frames",
        type=int,
        default=None,
        help="videomme_w_subtitle: frames whose subtitles are shown (default 768, the task's frame_num upstream).",
    )

    report = commands.add_parser("report", help="side-by-side tables (markdown, JSON, PNG) of result directories")
    report.add_argument("runs", nargs="+", help="Result directories written by `run` (one column group each).")
    report.add_argument("--out", default="report", help="Where to write report.md, report.json, report.png.")
    report.add_argument("--labels", nargs="+", help="Names of the runs in the tables (default: directory names).")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "run":
        from .benchmarks import VIDEOMME_SUBTITLE_FRAMES, BenchmarkDataError
        from .generation import EvaluationOutOfMemoryError
        from .runner import EvaluationConfig, MissingVideosError, run_evaluation

        config = EvaluationConfig(
            model=args.model,
            benchmark=args.benchmark,
            data=args.data,
            out=args.out,
            frames=args.frames,
            fps=args.fps,
            dtype=args.dtype,
            frame_cache=args.frame_cache,
            limit=args.limit,
            strict=args.strict,
            num_workers=args.num_workers,
            device=args.device,
            subtitle_frames=args.subtitle_frames or VIDEOMME_SUBTITLE_FRAMES,
            max_new_tokens=args.max_new_tokens,
            scoring=args.scoring,
        )
        try:
            for path in run_evaluation(config):
                print(path)
        except (BenchmarkDataError, MissingVideosError, EvaluationOutOfMemoryError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        return 0

    from .report import write_report

    if args.labels and len(args.labels) != len(args.runs):
        print(f"error: {len(args.labels)} --labels for {len(args.runs)} run directories", file=sys.stderr)
        return 2
    try:
        paths = write_report(args.runs, args.out, args.labels)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(paths["markdown"].read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
