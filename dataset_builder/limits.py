"""Sizes of the paid requests: frames sent per caption and answer limits (a light module: ``--help`` shows them).

Caption requests send a segment's 1-fps frames (paper Table 1: GPT-4o annotates at an average 1 fps), evenly thinned
to at most ``MAX_FRAMES_PER_REQUEST`` (120: every frame of segments up to 2 minutes), as ``image_url`` parts of detail
``DEFAULT_IMAGE_DETAIL``. ``low`` costs 85 tokens a frame and shows the model a 512 x 512 rendering, which loses
nothing at the default 512-px decode size; ``high``/``auto`` cost 85 + 170 per 512-px tile (255 for a 512 x 288 frame).

Every request sends its stage's ``max_tokens``; an answer longer than ``max_tokens x MAX_CHARS_PER_TOKEN`` characters
comes from a server that ignored ``max_tokens`` and is refused as invalid: never cached, never sent on inside a
later prompt.

Example:
    >>> from dataset_builder.limits import stage_max_tokens
    >>> stage_max_tokens({"qa": 4096})["qa"], stage_max_tokens(512)["video_caption"]
    (4096, 512)
"""

from __future__ import annotations

MAX_FRAMES_PER_REQUEST = 120
DEFAULT_IMAGE_DETAIL = "low"
# A dense caption of a 20-minute video merges many segment captions, hence the larger video_caption budget.
STAGE_MAX_TOKENS = {"short_caption": 1024, "segment_caption": 1024, "video_caption": 2048, "qa": 2048}
# English runs ~4 characters per token; twice that per allowed token cannot be an answer that respected max_tokens.
MAX_CHARS_PER_TOKEN = 8


def stage_max_tokens(max_tokens: int | dict[str, int] | None = None) -> dict[str, int]:
    """``STAGE_MAX_TOKENS`` with overrides: one ``int`` for every stage, or ``{stage: int}`` for some of them."""
    if isinstance(max_tokens, int):
        max_tokens = dict.fromkeys(STAGE_MAX_TOKENS, max_tokens)
    unknown = set(max_tokens or {}) - set(STAGE_MAX_TOKENS)
    if unknown:
        raise ValueError(
            f"--max-tokens names unknown stage(s) {sorted(unknown)}; the stages are {list(STAGE_MAX_TOKENS)}."
        )
    limits = {**STAGE_MAX_TOKENS, **(max_tokens or {})}
    if min(limits.values()) < 1:
        raise ValueError(f"--max-tokens must be >= 1, got {limits}.")
    return limits
