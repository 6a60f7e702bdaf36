"""Evaluation of ProLongVid checkpoints on the paper's benchmarks with upstream's protocol.

Built-in runner (decoding overlapped with generation, resumable, sharded under `accelerate launch`):

    python -m evaluation run --model path/to/ckpt --benchmark videomme --data data/Video-MME --frames 32 128 \\
        --out results/stage3
    python -m evaluation report results/stage1 results/stage3 --out report/

Generated replies are scored upstream's way (the letter read out of the reply); `--scoring likelihood` chooses the
option whose text the model finds most likely as its reply instead (`evaluation.scoring`).

Benchmarks: videomme, videomme_w_subtitle, mlvu_dev, longvideobench_val, tempcompass_mc (see
`evaluation.benchmarks` for the folder layouts). The kit also registers a `prolongvid` model with lmms-eval 0.7.x
through the `lmms_eval.models` entry point:

    pip install "prolongvid[eval]" && pip install --no-deps "lmms-eval==0.7.3"
    lmms-eval --model prolongvid --model_args pretrained=path/to/ckpt,num_frames=32 --tasks videomme

lmms-eval 0.7.3 declares `av<16` (the kit needs `av>=15` and is tested with av 18) and `wandb==0.25.0`; it runs
with the kit's av, so install it without its dependencies: the `eval` extra holds what it needs to run video
tasks (and `filelock<4`, which 0.7.3's evaluator needs).

Submodules load on first use, so `import evaluation` and `--help` stay fast.
"""

import importlib

_SUBMODULES = (
    "answers",
    "benchmarks",
    "fixtures",
    "generation",
    "lmms_eval_model",
    "lmms_eval_plugin",
    "metrics",
    "report",
    "runner",
    "scoring",
    "store",
    "subtitles",
)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_SUBMODULES)
