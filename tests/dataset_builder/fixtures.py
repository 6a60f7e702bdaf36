"""Helpers for the dataset_builder tests: colour-based frame "models", tiny real frame models, the CLI runner.

The colour captioner/embedder are deterministic stand-ins that implement the pipeline's FrameCaptioner/FrameEmbedder
protocols: the image feature is the mean colour of a 3x3 grid (centred), the caption names that grid, and the text
feature parses the caption back, so scene changes in the synthetic videos (``processing.synthetic.write_scene_video``)
are visible to the segmentation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dataset_builder.__main__ import main


def grid_colours(frames: np.ndarray) -> np.ndarray:
    """``(T, H, W, 3)`` -> ``(T, 27)`` mean colour of each cell of a 3x3 grid, scaled to [-1, 1]."""
    t, h, w, _ = frames.shape
    cells = [
        frames[:, i * h // 3 : (i + 1) * h // 3, j * w // 3 : (j + 1) * w // 3].reshape(t, -1, 3).mean(axis=1)
        for i in range(3)
        for j in range(3)
    ]
    return np.concatenate(cells, axis=1) / 127.5 - 1.0


class ColourCaptioner:
    name = "test/colour-captioner"

    def __init__(self) -> None:
        self.calls = 0

    def caption(self, frames: np.ndarray) -> list[str]:
        self.calls += 1
        return ["colours " + " ".join(f"{v:.2f}" for v in row) for row in grid_colours(frames)]


class ColourEmbedder:
    name = "test/colour-embedder"

    def embed_images(self, frames: np.ndarray) -> np.ndarray:
        return grid_colours(frames).astype(np.float32)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return np.array([[float(v) for v in text.split()[1:]] for text in texts], dtype=np.float32)


def annotate(videos_dir: str | Path, work: str | Path, server, *extra: str) -> int:
    """``python -m dataset_builder annotate`` (in-process) against ``server`` with the colour frame models."""
    argv = ["annotate", "--videos", str(videos_dir), "--out", str(work), "--base-url", server.base_url,
            "--concurrency", "4", "--no-progress", "--backoff-base", "0.01", *extra]  # fmt: skip
    return main(argv, captioner_factory=ColourCaptioner, embedder_factory=ColourEmbedder)


def train_tokenizer(special: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(["a red scene with a ball", "what does the image describe?", "green grass"], trainer)
    return tokenizer


def build_tiny_florence2(directory: str | Path) -> Path:
    """A random 2-stage-wide Florence-2 (BART 1+1 layers, d_model 16) + processor with a locally trained tokenizer."""
    from transformers import (
        CLIPImageProcessor,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
        PreTrainedTokenizerFast,
    )

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=train_tokenizer(["<s>", "<pad>", "</s>", "<unk>", "<image>"]),
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"},
    )
    # 64x64 input, total stride 32 -> 2x2 spatial tokens + 1 temporal token.
    image_processor = CLIPImageProcessor(size={"height": 64, "width": 64}, do_center_crop=False, image_seq_length=5)
    vision = dict(depths=[1, 1, 1, 1], embed_dim=[8, 8, 8, 16], num_heads=[1, 1, 1, 2], num_groups=[1, 1, 1, 2],
                  window_size=2, projection_dim=16, drop_path_rate=0.0)  # fmt: skip
    text = dict(vocab_size=len(tokenizer), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=128,
                pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.eos_token_id)  # fmt: skip
    config = Florence2Config(vision_config=vision, text_config=text, image_token_id=tokenizer.image_token_id)
    Florence2ForConditionalGeneration(config).save_pretrained(directory)
    Florence2Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(directory)
    return Path(directory)


def build_tiny_siglip(directory: str | Path) -> Path:
    """A random SigLIP (1 layer, hidden 16, image 32, patch 8) + processor with a locally trained tokenizer."""
    from transformers import PreTrainedTokenizerFast, SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=train_tokenizer(["<pad>", "</s>", "<unk>"]),
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=16,
    )
    config = SiglipConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=16, projection_size=16),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
    )  # fmt: skip
    SiglipModel(config).save_pretrained(directory)
    SiglipProcessor(
        image_processor=SiglipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer
    ).save_pretrained(directory)
    return Path(directory)
