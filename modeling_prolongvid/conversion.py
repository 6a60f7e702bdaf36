"""The conversion of an upstream ProLongVid checkpoint (LLaVA-NeXT `llava_qwen` layout) to the HF format: the key
table, config translation, shape checks, tokenizer and embedding fixes, model card, verification and upload. The
command line is `modeling_prolongvid.convert_prolongvid_weights_to_hf`.

    >>> from modeling_prolongvid.conversion import rename_key
    >>> rename_key("model.mm_projector.0.weight", num_vision_layers=26)
    'model.multi_modal_projector.linear_1.weight'
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import torch
from huggingface_hub import HfApi, ModelCard
from tqdm import tqdm
from transformers import AutoTokenizer, Qwen2Config, SiglipVisionConfig

from .checkpoint_files import UnreadableCheckpointFile, read_json, read_weights, weight_files
from .configuration_prolongvid import ProLongVidConfig
from .convert_prolongvid_weights_to_hf import RELEASED_NUM_FRAMES, VERIFY_TOLERANCE
from .modeling_prolongvid import ProLongVidForConditionalGeneration, set_generation_defaults
from .processing_prolongvid import ProLongVidProcessor, grid_pinpoints
from .upstream_reference import Verification, verify_conversion

logger = logging.getLogger(__name__)


class ConversionError(ValueError):
    """The upstream checkpoint does not fit the conversion (unknown keys or settings, wrong shapes, failed checks)."""


VISION_PRESETS = {
    # Upstream deletes the last of the 27 encoder layers and the head: 26 layers, last hidden state, no head.
    "google/siglip-so400m-patch14-384": {
        "hidden_size": 1152,
        "intermediate_size": 4304,
        "num_hidden_layers": 26,
        "num_attention_heads": 16,
        "image_size": 384,
        "patch_size": 14,
        "layer_norm_eps": 1e-6,
        "vision_use_head": False,
    }
}

# Upstream key (full match) -> HF key. Every upstream key must match exactly one row or DROPPED_KEYS.
KEY_TABLE = [
    (r"model\.embed_tokens\.weight", r"model.language_model.embed_tokens.weight"),
    (r"model\.layers\.(\d+)\.(.+)", r"model.language_model.layers.\1.\2"),
    (r"model\.norm\.weight", r"model.language_model.norm.weight"),
    (r"lm_head\.weight", r"lm_head.weight"),
    (r"model\.vision_tower\.vision_tower\.vision_model\.embeddings\.(.+)", r"model.vision_tower.embeddings.\1"),
    (r"model\.vision_tower\.vision_tower\.vision_model\.encoder\.(.+)", r"model.vision_tower.encoder.\1"),
    (
        r"model\.vision_tower\.vision_tower\.vision_model\.post_layernorm\.(.+)",
        r"model.vision_tower.post_layernorm.\1",
    ),
    (r"model\.mm_projector\.0\.(weight|bias)", r"model.multi_modal_projector.linear_1.\1"),
    (r"model\.mm_projector\.2\.(weight|bias)", r"model.multi_modal_projector.linear_2.\1"),
    (r"model\.image_newline", r"model.image_newline"),
]
DROPPED_KEYS = [r".*\.rotary_emb\.inv_freq", r"model\.vision_tower\.vision_tower\.vision_model\.head\..+"]

QWEN2_FIELDS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "hidden_act", "max_position_embeddings", "rms_norm_eps", "tie_word_embeddings",
    "use_sliding_window", "sliding_window", "max_window_layers", "attention_dropout", "bos_token_id", "eos_token_id",
)  # fmt: skip
POOL_MODES = {"bilinear": "bilinear", "average": "average", "max": "max"}
NEWLINE_POSITIONS = {"grid": "grid", "frame": "frame", "one_token": "one_token", "no_token": "none"}


def expand_grid_pinpoints(pinpoints: str | list, tile_size: int) -> list[list[int]]:
    """Upstream writes either pixel pairs or a range string like `"(1x1),...,(6x6)"` (all grids in between).

    >>> expand_grid_pinpoints("(1x1),...,(1x3)", 384)
    [[384, 384], [384, 768], [384, 1152]]
    """
    if not isinstance(pinpoints, str):
        return [list(pair) for pair in pinpoints]
    grids = [tuple(map(int, match)) for match in re.findall(r"\((\d+)x(\d+)\)", pinpoints)]
    return grid_pinpoints(tile_size, max_grid=grids[-1], min_grid=grids[0])


def convert_config(
    upstream: dict, vision_config: dict | None, image_token_id: int, video_token_id: int, *, num_frames: int
) -> ProLongVidConfig:
    """Map the upstream `config.json` (Qwen2 fields + `mm_*`) to a validated `ProLongVidConfig` whose default frame
    count is `num_frames` (the stage's: see `RELEASED_NUM_FRAMES`)."""
    tower = upstream.get("mm_vision_tower", "")
    if vision_config is None:
        if tower not in VISION_PRESETS:
            raise ConversionError(
                f"unknown vision tower {tower!r}: pass --vision-config with its SiglipVisionConfig JSON"
            )
        vision_config = VISION_PRESETS[tower]
    vision = SiglipVisionConfig(**vision_config)
    if upstream.get("mm_projector_type", "mlp2x_gelu") != "mlp2x_gelu":
        raise ConversionError(
            f"mm_projector_type={upstream['mm_projector_type']!r} is not supported (mlp2x_gelu only)"
        )
    if upstream.get("mm_patch_merge_type", "spatial_unpad") != "spatial_unpad":
        raise ConversionError(f"mm_patch_merge_type={upstream['mm_patch_merge_type']!r} unsupported (spatial_unpad)")
    if upstream.get("mm_hidden_size", vision.hidden_size) != vision.hidden_size:
        raise ConversionError(
            f"mm_hidden_size={upstream['mm_hidden_size']} != vision hidden size {vision.hidden_size}"
        )
    pool_mode = upstream.get("mm_spatial_pool_mode", "bilinear")
    newline = upstream.get("mm_newline_position", "grid")
    if pool_mode not in POOL_MODES or newline not in NEWLINE_POSITIONS:
        raise ConversionError(f"unsupported mm_spatial_pool_mode={pool_mode!r} or mm_newline_position={newline!r}")
    max_frames = ProLongVidConfig.max_frames
    if not 1 <= num_frames <= max_frames:
        raise ConversionError(
            f"--num-frames {num_frames} must lie in [1, {max_frames}]; the released stages use "
            + ", ".join(f"{stage}: {frames}" for stage, frames in RELEASED_NUM_FRAMES.items())
        )
    side = vision.image_size // vision.patch_size
    grid = upstream.get("mm_fixed_patch_length") or math.ceil(side / upstream.get("mm_spatial_pool_stride", 2))
    text = Qwen2Config(
        **{field: upstream[field] for field in QWEN2_FIELDS if field in upstream},
        rope_theta=upstream.get("rope_theta", 1_000_000.0),
    )
    return ProLongVidConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_token_id,
        video_token_index=video_token_id,
        image_grid_pinpoints=expand_grid_pinpoints(
            upstream.get("image_grid_pinpoints", "(1x1),...,(6x6)"), vision.image_size
        ),
        vision_aspect_ratio=upstream.get("image_aspect_ratio", "anyres_max_9"),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        tie_word_embeddings=upstream.get("tie_word_embeddings", False),
        pooled_grid_size=grid,
        video_pooling_mode=POOL_MODES[pool_mode],
        video_newline_position=NEWLINE_POSITIONS[newline],
        num_frames=num_frames,
    )


def load_upstream_state_dict(input_dir: Path) -> dict[str, torch.Tensor]:
    """Read every `*.safetensors` shard, else the `pytorch_model*.bin` files through `torch.load(weights_only=True)`;
    an unreadable file raises `UnreadableCheckpointFile` naming it."""
    files = weight_files(input_dir)
    if not files:
        raise UnreadableCheckpointFile(f"no *.safetensors or pytorch_model*.bin weights in {input_dir}")
    state_dict = {}
    for file in tqdm(files, desc="reading shards", disable=len(files) < 2):
        state_dict.update(read_weights(file))
    return state_dict


def rename_key(key: str, num_vision_layers: int) -> str | None:
    """The HF key of upstream `key` by `KEY_TABLE`; None for dropped keys and vision layers past the tower."""
    if any(re.fullmatch(pattern, key) for pattern in DROPPED_KEYS):
        return None
    matches = [(pattern, target) for pattern, target in KEY_TABLE if re.fullmatch(pattern, key)]
    if len(matches) != 1:
        raise ConversionError(f"upstream key {key!r} matches {len(matches)} rows of KEY_TABLE (expected exactly 1)")
    new_key = re.sub(matches[0][0], matches[0][1], key)
    layer = re.match(r"model\.vision_tower\.encoder\.layers\.(\d+)\.", new_key)
    if layer and int(layer.group(1)) >= num_vision_layers:
        return None
    return new_key


def convert_state_dict(upstream: dict[str, torch.Tensor], num_vision_layers: int) -> dict[str, torch.Tensor]:
    """Rename every upstream key by `KEY_TABLE`; unknown keys are an error, vision layers past the tower dropped."""
    converted = {}
    for key, tensor in tqdm(upstream.items(), desc="renaming", disable=len(upstream) < 1000):
        new_key = rename_key(key, num_vision_layers)
        if new_key is not None:
            converted[new_key] = tensor
    return converted


def check_state_dict(state_dict: dict[str, torch.Tensor], config: ProLongVidConfig, sources: dict[str, str]) -> None:
    """Every weight the model of `config` needs is present, nothing else is, and every tensor has the shape the config
    gives it; else a `ConversionError` listing each offending key (with its upstream name from `sources`), the
    expected and the actual shape. Runs on the meta device: no memory, nothing written."""
    with torch.device("meta"):
        expected = {
            key: tuple(value.shape) for key, value in ProLongVidForConditionalGeneration(config).state_dict().items()
        }
    optional = {"lm_head.weight"} if config.tie_word_embeddings else set()
    problems = [f"{key}: missing" for key in sorted(set(expected) - set(state_dict) - optional)]
    problems += [
        f"{key} (upstream {sources[key]}): not part of the model" for key in sorted(set(state_dict) - set(expected))
    ]
    problems += [
        f"{key} (upstream {sources[key]}): expected shape {expected[key]}, got {tuple(tensor.shape)}"
        for key, tensor in state_dict.items()
        if key in expected and tuple(tensor.shape) != expected[key]
    ]
    if problems:
        listed = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise ConversionError(
            f"{len(problems)} weights do not fit the config (nothing was written):\n  {listed}\n"
            "The checkpoint's config.json (or --vision-config) does not describe these weights: use the config that "
            "came with them, or download the checkpoint again if a shard is from another model."
        )


def add_media_tokens(tokenizer) -> tuple[int, int]:
    """Add `<image>` / `<video>` as new special tokens (never reusing Qwen2.5's ids 151646/151647)."""
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>", "<video>"]})
    return tokenizer.convert_tokens_to_ids("<image>"), tokenizer.convert_tokens_to_ids("<video>")


def resize_embeddings(state_dict: dict[str, torch.Tensor], vocab_size: int) -> None:
    """Grow embedding / lm_head rows to `vocab_size` with their mean, only when the new ids do not fit."""
    for key in ("model.language_model.embed_tokens.weight", "lm_head.weight"):
        matrix = state_dict.get(key)
        if matrix is not None and matrix.shape[0] < vocab_size:
            extra = matrix.float().mean(0, keepdim=True).expand(vocab_size - matrix.shape[0], -1)
            state_dict[key] = torch.cat((matrix, extra.to(matrix.dtype)), dim=0)


def write_model_card(output_dir: Path, input_dir: Path, config: ProLongVidConfig, verification: Verification | None):
    verified = (
        f"max |Δlogit| = {verification.max_logit_diff:.2e} against the upstream reference "
        f"(max |Δpixel| = {verification.max_pixel_diff:.2e}, float32, {verification.num_tokens} tokens)"
        if verification is not None
        else "not run"
    )
    grid = config.pooled_grid_size
    card = ModelCard(
        f"""---
library_name: transformers
pipeline_tag: image-text-to-text
tags: [video, long-context, prolongvid]
---
# ProLongVid (converted to transformers)

Converted from the upstream LLaVA-NeXT checkpoint `{input_dir.name}` with
`python -m modeling_prolongvid.convert_prolongvid_weights_to_hf`.
Video path: {grid}x{grid} {config.video_pooling_mode} pooling, newline position `{config.video_newline_position}`
({config.num_video_tokens(1)} tokens per frame), default {config.num_frames} frames (the stage's), up to
{config.max_frames}. Verification: {verified}.

```python
from transformers import AutoModelForImageTextToText, AutoProcessor
model = AutoModelForImageTextToText.from_pretrained("{output_dir.name}", trust_remote_code=True)
processor = AutoProcessor.from_pretrained("{output_dir.name}", trust_remote_code=True)
```
"""
    )
    card.save(output_dir / "README.md")


def load_upstream_tokenizer(input_dir: Path):
    """The upstream checkpoint's tokenizer; a missing or broken tokenizer file raises naming the folder."""
    try:
        return AutoTokenizer.from_pretrained(input_dir)
    except Exception as error:  # tokenizers raises plain `Exception` for a broken tokenizer.json
        raise UnreadableCheckpointFile(
            f"cannot load the tokenizer of {input_dir} ({type(error).__name__}: {error}): the folder must hold the "
            "checkpoint's tokenizer files (tokenizer.json / tokenizer_config.json, or vocab.json + merges.txt); "
            "download them again"
        ) from error


def check_verification(verification: Verification, tolerance: float, output_dir: Path) -> None:
    """Raise a `ConversionError` naming the cause when the kit does not reproduce upstream within `tolerance`
    (NaN fails too)."""
    if not verification.max_model_logit_diff <= tolerance:
        cause = (
            "the converted model differs from upstream's forward on identical pixels: a wrong key mapping, config "
            "field or dtype"
        )
    elif not verification.max_logit_diff <= tolerance:
        cause = (
            f"the model agrees on identical pixels, so the difference comes from preprocessing: the kit's video "
            f"processor gives pixels up to {verification.max_pixel_diff:.3e} away from upstream's PIL bicubic resize "
            "(accept it with a larger --verify-tolerance)"
        )
    else:
        return
    raise ConversionError(
        f"verification failed: max |Δlogit| = {verification.max_logit_diff:.3e} (model alone "
        f"{verification.max_model_logit_diff:.3e}) > --verify-tolerance {tolerance:g}; {cause}. {output_dir} was "
        "written, nothing was pushed."
    )


def push(output_dir: Path, repo_id: str) -> None:
    """Upload `output_dir` to the Hub repo `repo_id` (created if needed)."""
    api = HfApi()
    api.create_repo(repo_id, exist_ok=True)
    api.upload_folder(folder_path=output_dir, repo_id=repo_id, commit_message="Add converted ProLongVid")


def convert(
    input_dir: str | Path,
    output_dir: str | Path,
    *,
    num_frames: int,
    vision_config_path: str | Path | None = None,
    dtype: str = "bfloat16",
    verify: bool = False,
    verify_tolerance: float = VERIFY_TOLERANCE,
    push_to_hub: str | None = None,
) -> Verification | None:
    """Convert `input_dir` into `output_dir`; returns the `Verification` when `verify` is set.

    Nothing is written unless every upstream tensor maps to a weight of the config's shape; nothing is pushed unless
    that holds and, with `verify`, max |Δlogit| <= `verify_tolerance`. Raises `ConversionError` (a check failed) or
    `UnreadableCheckpointFile` (a file of `input_dir` is missing or broken; the message names it).
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    upstream_config = read_json(input_dir / "config.json")
    vision_config = read_json(vision_config_path) if vision_config_path else None
    tokenizer = load_upstream_tokenizer(input_dir)
    tokenizer.padding_side = "left"  # batched generation
    image_token_id, video_token_id = add_media_tokens(tokenizer)
    config = convert_config(upstream_config, vision_config, image_token_id, video_token_id, num_frames=num_frames)

    upstream = load_upstream_state_dict(input_dir)
    num_vision_layers = config.vision_config.num_hidden_layers
    state_dict = convert_state_dict(upstream, num_vision_layers)
    sources = {rename_key(key, num_vision_layers): key for key in upstream}
    check_state_dict(state_dict, config, sources)
    if len(tokenizer) > config.text_config.vocab_size:
        config.text_config.vocab_size = len(tokenizer)
        resize_embeddings(state_dict, config.text_config.vocab_size)
    torch_dtype = getattr(torch, dtype)
    state_dict = {key: value.to(torch_dtype) for key, value in state_dict.items()}
    with torch.device("meta"):
        model = ProLongVidForConditionalGeneration(config)
    model.config.dtype = torch_dtype
    set_generation_defaults(model, tokenizer)
    model.save_pretrained(output_dir, state_dict=state_dict)
    processor = ProLongVidProcessor.from_config(config, tokenizer)
    processor.save_pretrained(output_dir)

    verification = None
    if verify:
        verification = verify_conversion(output_dir, upstream, load_upstream_tokenizer(input_dir), torch_dtype)
        print(
            "float32, converted checkpoint vs upstream reference:\n"
            f"  max |Δpixel| (kit processor vs upstream's PIL preprocessing): {verification.max_pixel_diff:.3e}\n"
            f"  max |Δlogit| (kit processor + converted model): {verification.max_logit_diff:.3e}\n"
            f"  max |Δlogit| (converted model on the reference's pixels): {verification.max_model_logit_diff:.3e}"
        )
    write_model_card(output_dir, input_dir, config, verification)
    if verification is not None:
        check_verification(verification, verify_tolerance, output_dir)
    if push_to_hub:
        push(output_dir, push_to_hub)
    return verification
