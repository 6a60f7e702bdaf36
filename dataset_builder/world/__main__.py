"""``python -m dataset_builder.world``: write the synthetic world's training videos or its held-out benchmark.

    python -m dataset_builder.world videos --out world/videos --short 200 --medium 100 --long 100
    python -m dataset_builder.world benchmark --out world/benchmark --short 40 --medium 30 --long 30

Training videos take seeds from ``--first-seed`` (default 0); the benchmark's seeds start at
``dataset_builder.world.benchmark.BENCHMARK_SEED_OFFSET``, so the two never share a video.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dataset_builder.world", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text, defaults in (
        ("videos", "training videos (MP4) and their ground truth (timelines.jsonl)", (200, 100, 100)),
        ("benchmark", "the held-out multiple-choice benchmark (Video-MME layout)", (40, 30, 30)),
    ):
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--out", required=True, help="output folder (created; existing videos are kept)")
        for band, default in zip(("short", "medium", "long"), defaults):
            command.add_argument(f"--{band}", type=int, default=default, help=f"{band} videos (default: %(default)s)")
        if name == "videos":
            command.add_argument("--first-seed", type=int, default=0, help="seed of the first video per band")
        else:
            command.add_argument(
                "--questions-per-family", type=int, default=1, help="questions per family and video (default: 1)"
            )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    counts = {"short": args.short, "medium": args.medium, "long": args.long}
    if any(count < 0 for count in counts.values()):
        print("error: video counts must be >= 0", file=sys.stderr)
        return 2
    if args.command == "videos":
        from .benchmark import BENCHMARK_SEED_OFFSET, write_videos

        if args.first_seed + max(counts.values()) > BENCHMARK_SEED_OFFSET:
            print(f"error: training seeds must stay below {BENCHMARK_SEED_OFFSET} (the benchmark's)", file=sys.stderr)
            return 2
        timelines = write_videos(args.out, counts, args.first_seed)
        print(f"{len(timelines)} videos in {args.out}")
    else:
        from .benchmark import write_benchmark

        folder = write_benchmark(args.out, counts, args.questions_per_family)
        print(f"benchmark in {folder} (python -m evaluation run --benchmark world --data {folder} ...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
