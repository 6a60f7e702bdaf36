"""Command-line inference for ProLongVid: ask one question about a video (or an image) and print the answer.

    python -m modeling_prolongvid.infer --model prolongvid/ProLongVid-7B-hf --video clip.mp4 \\
        --question "What happens in this video?" --frames 128 --stream

`--model tiny` loads the bundled world model (`modeling_prolongvid/world_model/`): a tiny ProLongVid trained only on
the kit's synthetic world (coloured scenes, moving shapes, flashes) that runs anywhere in seconds, offline.
The work is done by `modeling_prolongvid.inference`, which the Gradio Space shares; this module only parses the
command line (without importing torch, so `--help` is instant).
"""

from __future__ import annotations

import argparse
import sys

DEFAULT_MAX_VIDEO_MINUTES = 180.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m modeling_prolongvid.infer",
        description="Ask ProLongVid a question about a video (or an image) and print the answer.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--model", required=True, help='Hub id or local directory; "tiny" for the bundled world model.'
    )
    media = parser.add_mutually_exclusive_group(required=True)
    media.add_argument("--video", help="Video file (MP4, WebM, MKV, MOV, ...).")
    media.add_argument("--image", help="Image file (PNG, JPEG, WebP).")
    parser.add_argument("--question", required=True, help="What to ask.")
    parser.add_argument(
        "--frames", type=int, default=None, help="Frames sampled uniformly (default: the checkpoint's num_frames)."
    )
    parser.add_argument("--max-new-tokens", type=int, default=512, help="Longest answer, in tokens.")
    parser.add_argument("--max-video-minutes", type=float, default=DEFAULT_MAX_VIDEO_MINUTES, help="Longest video.")
    parser.add_argument("--stream", action="store_true", help="Print the answer token by token.")
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda when available).")
    parser.add_argument("--attn-implementation", default="sdpa", help="sdpa, flash_attention_2 or eager.")
    parser.add_argument("--frame-cache", help="Frame cache directory written by `dataset_builder annotate`.")
    parser.add_argument("--video-id", help="The video's id in the frame cache (default: the file name's stem).")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.question.strip():
        parser.error("--question is empty: pass the question to ask, e.g. --question 'What happens?'")
    if args.max_new_tokens < 1:
        parser.error(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")

    from processing.frame_cache import FrameCache

    from .inference import (
        CLI_WORDING,
        InputError,
        build_messages,
        check_media_file,
        check_model_available,
        load_media,
        load_model,
        prepare_inputs,
        stream_generate,
    )

    media_path = args.video or args.image
    try:  # everything that can be checked without the model first: a typo must not cost a model load
        check_media_file(media_path, CLI_WORDING)
        check_model_available(args.model)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        model, processor = load_model(args.model, device=args.device, attn_implementation=args.attn_implementation)
    except (OSError, ValueError) as error:  # a wrong id, a broken checkpoint: its message names it
        print(f"error: cannot load the model {args.model!r}: {error}", file=sys.stderr)
        return 2
    try:
        media_item = load_media(
            media_path,
            model,
            args.frames or model.config.num_frames,
            args.max_new_tokens,
            max_video_seconds=args.max_video_minutes * 60,
            frame_cache=FrameCache(args.frame_cache) if args.frame_cache else None,
            video_id=args.video_id,
            wording=CLI_WORDING,
        )
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    messages = build_messages(args.question.strip(), media_item.kind)
    batch = prepare_inputs(processor, messages, media_item, model.device, model.dtype)
    pieces = stream_generate(model, processor, batch, args.max_new_tokens)
    if args.stream:
        for piece in pieces:
            print(piece, end="", flush=True)
        print()
    else:
        print("".join(pieces))
    return 0


if __name__ == "__main__":
    sys.exit(main())
