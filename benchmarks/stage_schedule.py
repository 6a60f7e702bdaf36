"""Simulated GPU-hours of single-stage vs three-stage (progressive) video instruction tuning.

Paper Table 6 reports 3,598 GPU-hours for single-stage training against 1,700 for the three-stage schedule. This
script rebuilds that comparison from first principles: video durations drawn from a long-tailed distribution like
the paper's (most videos under 2 minutes, a tail to 20 minutes), the stage frame counts (32 / 128 / 192), a FLOP
model of a 7B LLM + SigLIP tower, and the synchronisation wait of data-parallel steps, in which every GPU waits for
the slowest sample of the step.

Single-stage schedules simulated:
  * mixed   - the paper's baseline (Table 4 / Appendix B, the `mixed` recipe): every video at its own duration
              band's frame count (32 / 128 / 192), all bands shuffled together: the same tokens as three-stage, but
              every step mixes lengths and waits for its slowest sample;
  * fixed   - every video at the longest stage's 192 frames (uniform lengths, no wait, but many more tokens);
  * fps     - 1 frame per second capped at 192 frames (fewer tokens, but mixed lengths in each step).
Three-stage: each duration bucket at its stage's frame count, videos grouped by stage (nearly uniform lengths).

```bash
python benchmarks/stage_schedule.py                    # defaults: 200K videos, 64 GPUs
python benchmarks/stage_schedule.py --num_videos 50000 --gpus 32 --mfu 0.35
```
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

PAPER_SINGLE_STAGE_HOURS, PAPER_THREE_STAGE_HOURS = 3598, 1700
STAGE_FRAMES = {"stage1": 32, "stage2": 128, "stage3": 192}
STAGE_BOUNDS_S = {"stage1": (0, 120), "stage2": (120, 300), "stage3": (300, 1200)}


@dataclass
class CostModel:
    """FLOPs per training sample of a 7B Qwen2.5 LLM + SigLIP-so400m tower, converted to seconds on one GPU."""

    llm_params: float = 7.6e9
    layers: int = 28
    hidden: int = 3584
    vision_params: float = 0.4e9
    vision_tokens_per_frame: int = 729
    tokens_per_frame: int = 156  # 12 x 12 pooled grid + 12 newlines
    peak_flops: float = 989e12  # H100 SXM bf16 dense
    mfu: float = 0.35
    activation_checkpointing: bool = True

    def seconds(self, frames: np.ndarray, text_tokens: np.ndarray) -> np.ndarray:
        tokens = frames * self.tokens_per_frame + text_tokens
        passes = 8 if self.activation_checkpointing else 6  # fwd 2 + bwd 4 (+ recomputed fwd 2) FLOPs per param
        linear = passes * self.llm_params * tokens
        attention = passes * self.layers * self.hidden * tokens.astype(np.float64) ** 2 / 2  # causal half
        vision = 2 * self.vision_params * self.vision_tokens_per_frame * frames  # frozen tower: forward only
        return (linear + attention + vision) / (self.peak_flops * self.mfu)


def sample_durations(num_videos: int, rng: np.random.Generator, median_s: float, sigma: float) -> np.ndarray:
    """Long-tailed durations (s): log-normal, clipped to [5 s, 20 min]."""
    return np.clip(rng.lognormal(np.log(median_s), sigma, num_videos), 5.0, 1200.0)


def run_steps(seconds: np.ndarray, gpus: int, accumulation: int, rng: np.random.Generator) -> tuple[float, float]:
    """Shuffle samples into synchronous steps of `gpus x accumulation`; returns (GPU-hours, wait fraction)."""
    order = rng.permutation(len(seconds))
    per_step = gpus * accumulation
    usable = len(order) // per_step * per_step
    per_gpu = seconds[order[:usable]].reshape(-1, gpus, accumulation).sum(axis=2)  # (steps, gpus)
    wall = per_gpu.max(axis=1).sum()
    busy = per_gpu.sum()
    return wall * gpus / 3600, 1 - busy / (wall * gpus)


def simulate(args) -> dict[str, dict]:
    rng = np.random.default_rng(args.seed)
    cost = CostModel(mfu=args.mfu)
    durations = sample_durations(args.num_videos, rng, args.median_seconds, args.sigma)
    text = rng.integers(50, 400, args.num_videos)
    results = {}
    three_hours, three_busy, stages = 0.0, 0.0, {}
    for stage, (low, high) in STAGE_BOUNDS_S.items():
        mask = (durations >= low) & (durations < high) if stage != "stage3" else durations >= low
        frames = np.full(mask.sum(), STAGE_FRAMES[stage])
        hours, wait = run_steps(cost.seconds(frames, text[mask]), args.gpus, args.accumulation, rng)
        stages[stage] = {"videos": int(mask.sum()), "frames": STAGE_FRAMES[stage], "gpu_hours": hours, "wait": wait}
        three_hours += hours
        three_busy += hours * (1 - wait)
    results["three-stage"] = {"gpu_hours": three_hours, "wait": 1 - three_busy / three_hours, "stages": stages}
    mixed = np.select(
        [durations < STAGE_BOUNDS_S["stage1"][1], durations < STAGE_BOUNDS_S["stage2"][1]],
        [STAGE_FRAMES["stage1"], STAGE_FRAMES["stage2"]],
        STAGE_FRAMES["stage3"],
    )
    hours, wait = run_steps(cost.seconds(mixed, text), args.gpus, args.accumulation, rng)
    results["single-stage mixed 32/128/192"] = {"gpu_hours": hours, "wait": wait}
    fixed = np.full(args.num_videos, max(STAGE_FRAMES.values()))
    hours, wait = run_steps(cost.seconds(fixed, text), args.gpus, args.accumulation, rng)
    results["single-stage fixed 192"] = {"gpu_hours": hours, "wait": wait}
    fps_frames = np.clip(np.round(durations * args.fps), 8, max(STAGE_FRAMES.values()))
    hours, wait = run_steps(cost.seconds(fps_frames, text), args.gpus, args.accumulation, rng)
    results["single-stage 1 fps <=192"] = {"gpu_hours": hours, "wait": wait}
    return results


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_videos", type=int, default=200_000)
    parser.add_argument("--gpus", type=int, default=64)
    parser.add_argument(
        "--accumulation", type=int, default=4, help="Micro-batches per GPU per optimizer step (256 / 64 GPUs)."
    )
    parser.add_argument("--median_seconds", type=float, default=75.0)
    parser.add_argument("--sigma", type=float, default=1.0, help="Log-normal shape: larger = longer tail.")
    parser.add_argument("--fps", type=float, default=1.0, help="Sampling rate of the fps single-stage schedule.")
    parser.add_argument("--mfu", type=float, default=0.35)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    results = simulate(args)
    three = results["three-stage"]
    print(f"{args.num_videos} videos on {args.gpus} GPUs, MFU {args.mfu}, per-GPU micro-batches {args.accumulation}")
    for stage, info in three["stages"].items():
        share = info["videos"] / args.num_videos
        print(f"  {stage}: {info['videos']:>7} videos ({share:5.1%}) at {info['frames']:>3} frames: "
              f"{info['gpu_hours']:8.1f} GPU-h, sync wait {info['wait']:5.1%}")  # fmt: skip
    print(f"{'schedule':<26}{'GPU-hours':>12}{'sync wait':>11}{'vs three-stage':>16}")
    for name, info in results.items():
        ratio = info["gpu_hours"] / three["gpu_hours"]
        print(f"{name:<32}{info['gpu_hours']:>12.1f}{info['wait']:>11.1%}{ratio:>15.2f}x")
    print(f"paper Table 6: single-stage {PAPER_SINGLE_STAGE_HOURS} vs three-stage {PAPER_THREE_STAGE_HOURS} GPU-hours "
          f"= {PAPER_SINGLE_STAGE_HOURS / PAPER_THREE_STAGE_HOURS:.2f}x")  # fmt: skip
    return results


if __name__ == "__main__":
    main()
