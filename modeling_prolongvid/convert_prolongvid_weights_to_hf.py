"""Convert an upstream ProLongVid checkpoint (LLaVA-NeXT `llava_qwen` layout) to the HF ProLongVid format.

```bash
python -m modeling_prolongvid.convert_prolongvid_weights_to_hf \
    --input-dir prolongvid_7B --output-dir ProLongVid-7B-hf --num-frames 192 --dtype bfloat16 --verify
```

`--num-frames` is the frame count of the checkpoint's stage, saved as `config.num_frames` and as the video
processor's default (upstream's config.json does not record it). The released checkpoints were trained and evaluated
with: `prolongvid_image_sft_7B` 32 (evaluation), `prolongvid_stage1_7B` 32, `prolongvid_stage2_7B` 128,
`prolongvid_7B` (stage 3) 192, or 256 to extrapolate (its best Video-MME score).

Every tensor is checked against the config (key, expected and actual shape) before anything is written. The output
loads with `AutoModelForImageTextToText` / `AutoModel` / `AutoProcessor` (the kit installed) or with
`trust_remote_code=True` (code files are written beside the weights). Its generation config suppresses the ids no
text holds (`<image>`, `<video>`, embedding rows past the tokenizer). `--verify` runs the converted checkpoint through
the kit's processor and model and an independent reference of upstream (`upstream_reference.py`: PIL pixels,
upstream's `qwen_1_5` prompt, upstream's forward on the raw weights) on a synthetic video, prints max |Δpixel| and
max |Δlogit|, and fails above `--verify-tolerance`. `--push-to-hub` uploads only after every check passed.
"""

from __future__ import annotations

import argparse
import logging
import sys

# Frames per video of the released checkpoints' stages (upstream README, "Frame (Train)" / "Frame (Test)").
RELEASED_NUM_FRAMES = {
    "image SFT (evaluation)": 32,
    "stage 1": 32,
    "stage 2": 128,
    "stage 3": 192,
    "extrapolation": 256,
}
VERIFY_TOLERANCE = 1e-3


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input-dir", required=True, help="upstream checkpoint (config.json, weights, tokenizer)")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument(
        "--num-frames",
        type=int,
        required=True,
        metavar="N",
        help="frames per video of the checkpoint's stage, saved as the default of config and video processor: "
        + ", ".join(f"{stage}: {frames}" for stage, frames in RELEASED_NUM_FRAMES.items()),
    )
    parser.add_argument("--vision-config", help="SiglipVisionConfig JSON for a tower without a preset")
    parser.add_argument(
        "--dtype",
        default="bfloat16",
        choices=["float32", "float16", "bfloat16"],
        help="dtype of the saved weights (default bfloat16)",
    )
    parser.add_argument("--verify", action="store_true", help="compare logits against the upstream reference")
    parser.add_argument(
        "--verify-tolerance",
        type=float,
        default=VERIFY_TOLERANCE,
        help=f"largest max |Δlogit| --verify accepts (default {VERIFY_TOLERANCE:g})",
    )
    parser.add_argument("--push-to-hub", metavar="REPO", help="upload to this Hub repo once every check passed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    from .checkpoint_files import UnreadableCheckpointFile
    from .conversion import ConversionError, convert

    try:
        convert(
            args.input_dir,
            args.output_dir,
            num_frames=args.num_frames,
            vision_config_path=args.vision_config,
            dtype=args.dtype,
            verify=args.verify,
            verify_tolerance=args.verify_tolerance,
            push_to_hub=args.push_to_hub,
        )
    except (ConversionError, UnreadableCheckpointFile) as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
