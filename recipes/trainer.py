"""`ProLongVidSFTTrainer`: TRL's SFTTrainer plus per-module learning rates and ring-attention sequence parallelism.

Only public hooks are overridden (`create_optimizer`, `get_train_dataloader`, `compute_loss`). With
`sequence_parallel_size > 1` the loss path merges text and vision embeddings for the WHOLE sequence (the model's
own `get_input_embeddings` / `get_*_features` / `get_placeholder_mask`), then keeps this rank's zigzag shard of the
embeddings, global position ids and pre-shifted labels, and runs the language model on it with ring attention.

```python
trainer = ProLongVidSFTTrainer(model=model, args=sft_config, train_dataset=rows, data_collator=collator,
                               processing_class=processor, sequence_parallel=state,
                               module_learning_rates={"projector": 1e-4})
trainer.train()
```
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from trl import SFTTrainer

from recipes.freezing import parameter_groups
from recipes.ring_attention import RING_ATTENTION_NAME, register_ring_attention, set_sequence_parallel_group
from recipes.sequence_parallel import (
    SequenceParallelSampler,
    SequenceParallelState,
    sequence_parallel_loss,
    shard_sequence,
    shift_labels,
)


def merge_multimodal_embeddings(model: torch.nn.Module, inputs: dict) -> torch.Tensor:
    """`(B, L, hidden)` input embeddings with image/video features scattered into their placeholder positions,
    computed with the model's public methods exactly as its `forward` does (a causal LLM: token embeddings only)."""
    if hasattr(model, "get_base_model"):  # peft wrapper
        model = model.get_base_model()
    input_ids = inputs["input_ids"]
    embeds = model.get_input_embeddings()(input_ids)
    inner = getattr(model, "model", None)
    if not hasattr(inner, "get_placeholder_mask"):
        return embeds
    if inputs.get("pixel_values") is not None:
        image = inner.get_image_features(inputs["pixel_values"], inputs["image_sizes"], return_dict=True)
        features = torch.cat(image.pooler_output, dim=0).to(embeds.device, embeds.dtype)
        mask, _ = inner.get_placeholder_mask(input_ids, inputs_embeds=embeds, image_features=features)
        embeds = embeds.masked_scatter(mask, features)
    if inputs.get("pixel_values_videos") is not None:
        video = inner.get_video_features(inputs["pixel_values_videos"], return_dict=True)
        features = video.pooler_output.flatten(0, 1).to(embeds.device, embeds.dtype)
        _, mask = inner.get_placeholder_mask(input_ids, inputs_embeds=embeds, video_features=features)
        embeds = embeds.masked_scatter(mask, features)
    return embeds


def enable_ring_attention(model: torch.nn.Module, state: SequenceParallelState) -> None:
    """Register zigzag ring attention, bind it to the SP group and switch the language model (only) to it."""
    register_ring_attention()
    set_sequence_parallel_group(state.group)
    if hasattr(model.config, "text_config"):
        model.set_attn_implementation({"text_config": RING_ATTENTION_NAME})
    else:
        model.set_attn_implementation(RING_ATTENTION_NAME)


class ProLongVidSFTTrainer(SFTTrainer):
    """SFTTrainer with per-module learning rates and optional sequence parallelism (see module docstring)."""

    def __init__(
        self,
        *args,
        sequence_parallel: SequenceParallelState | None = None,
        module_learning_rates: dict[str, float] | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.sequence_parallel = sequence_parallel or SequenceParallelState(None, 1, 0, 1, 0)
        self.module_learning_rates = module_learning_rates or {}
        if self.sequence_parallel.sp_size > 1:
            self.loss_is_scaled_for_ga = False  # a per-micro-batch token mean: the Trainer divides by GA steps

    def create_optimizer(self, model=None):
        """The Trainer's optimizer class and kwargs over per-module learning-rate groups."""
        if self.optimizer is None:
            opt_model = self.model if model is None else model
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
            groups = parameter_groups(
                opt_model,
                self.args.learning_rate,
                self.args.weight_decay,
                set(self.get_decay_parameter_names(opt_model)),
                self.module_learning_rates,
            )
            self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer

    def get_train_dataloader(self) -> DataLoader:
        """With sequence parallelism, every rank of one SP group must draw the same batches."""
        if self.sequence_parallel.sp_size == 1:
            return super().get_train_dataloader()
        sampler = SequenceParallelSampler(
            len(self.train_dataset),
            self.args.per_device_train_batch_size,
            self.sequence_parallel,
            shuffle=self.args.shuffle_dataset,
            seed=self.args.seed,
        )
        loader = DataLoader(
            self.train_dataset,
            batch_size=self.args.per_device_train_batch_size,
            sampler=sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
        )
        return self.accelerator.prepare(loader)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.sequence_parallel.sp_size == 1:
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
        state = self.sequence_parallel
        embeds = merge_multimodal_embeddings(self.accelerator.unwrap_model(model), inputs)
        embeds, position_ids, labels = shard_sequence(embeds, shift_labels(inputs["labels"]), state)
        outputs = model(inputs_embeds=embeds, position_ids=position_ids, use_cache=False)
        loss = sequence_parallel_loss(outputs.logits, labels, state)
        return (loss, outputs) if return_outputs else loss
