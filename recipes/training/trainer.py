"""`ProLongVidSFTTrainer`: TRL's SFTTrainer plus per-module learning rates, upstream's loss normalisation, a count of
the rows skipped for unreadable media, and ring-attention sequence parallelism.

Loss normalisation (`loss_normalization`):
- `sample` (upstream: transformers 4.43 at per-device batch 1): every sample weighs the same, its loss the mean over
  its own trained tokens, averaged over the accumulation steps and ranks of the optimizer step; at a per-device batch
  above 1 a micro-batch's loss is the mean of its samples' token means, so the maths is the same;
- `token` (TRL 1.16): the token sum of the whole global batch divided by its trained-token count, so long rows weigh
  more than short ones.

Only public hooks are overridden (`create_optimizer`, `get_train_dataloader`, `compute_loss`). With `batch_groups`
(a group per row, e.g. its frame count) every per-device batch holds rows of one group (`GroupedBatchOrder`). With
`sequence_parallel_size > 1` the loss path runs the model's own forward, which merges text and vision embeddings for
the WHOLE sequence; on their way into the language model `shard_decoder_inputs` keeps this rank's zigzag shard of the
embeddings with global position ids, the language model runs on it with ring attention, and the loss is taken over
the shard of the pre-shifted labels.

```python
>>> import tempfile
>>> from trl import SFTConfig
>>> from modeling_prolongvid import ProLongVidForConditionalGeneration
>>> from modeling_prolongvid.tiny_checkpoint import build_tiny_config, build_tiny_processor
>>> from recipes.training.collator import VideoSFTCollator
>>> from recipes.training.data import load_training_rows
>>> from recipes.training.tiny_inputs import write_tiny_dataset
>>> data, processor = write_tiny_dataset(tempfile.mkdtemp()), build_tiny_processor()
>>> args = SFTConfig(output_dir=tempfile.mkdtemp(), use_cpu=True, max_steps=1, report_to="none",
...                  per_device_train_batch_size=1, remove_unused_columns=False,
...                  dataset_kwargs={"skip_prepare_dataset": True})
>>> trainer = ProLongVidSFTTrainer(
...     model=ProLongVidForConditionalGeneration(build_tiny_config(processor.tokenizer)), args=args,
...     train_dataset=load_training_rows(data, ["stage1"]), processing_class=processor,
...     data_collator=VideoSFTCollator(processor, num_frames=4, dataset_dir=data),
...     module_learning_rates={"projector": 1e-4})  # sequence_parallel=init_sequence_parallel(N) for ring attention
>>> sorted({group["lr"] for group in trainer.create_optimizer().param_groups})  # args.learning_rate, projector
[2e-05, 0.0001]
>>> trainer.loss_normalization, trainer.loss_is_scaled_for_ga  # a per-sample mean: the Trainer divides by GA steps
('sample', False)

```
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from trl import SFTTrainer

from recipes.parallel.ring_attention import RING_ATTENTION_NAME, register_ring_attention, set_sequence_parallel_group
from recipes.parallel.sequence_parallel import (
    SequenceParallelSampler,
    SequenceParallelState,
    sequence_parallel_loss,
    shard_decoder_inputs,
    shift_labels,
)
from recipes.training.arguments import LOSS_NORMALIZATIONS
from recipes.training.freezing import parameter_groups
from recipes.training.sampling import GroupedBatchOrder


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
        loss_normalization: str = "sample",
        batch_groups: list | None = None,
        **kwargs,
    ):
        if loss_normalization not in LOSS_NORMALIZATIONS:
            raise ValueError(f"loss_normalization={loss_normalization!r}; use one of {LOSS_NORMALIZATIONS}.")
        super().__init__(*args, **kwargs)
        self.module_learning_rates = module_learning_rates or {}
        self.loss_normalization = loss_normalization
        self.sequence_parallel = sequence_parallel or SequenceParallelState(None, 1, 0, 1, 0)
        if loss_normalization == "sample":
            if self.args.per_device_train_batch_size != 1 and self.sequence_parallel.sp_size > 1:
                raise ValueError(
                    f"loss_normalization sample with sequence parallelism needs per_device_train_batch_size 1; got "
                    f"{self.args.per_device_train_batch_size}. Use 1 (and more gradient accumulation), or "
                    "loss_normalization token."
                )
            self.loss_is_scaled_for_ga = False  # a mean of sample means: the Trainer divides by the GA steps
        if self.sequence_parallel.sp_size > 1 and self.args.train_sampling_strategy != "random":
            raise ValueError(
                f"train_sampling_strategy={self.args.train_sampling_strategy} is not available with "
                "sequence_parallel_size > 1 (one SP group must draw the same batches): use random."
            )
        if batch_groups is not None and self.sequence_parallel.sp_size > 1:
            raise ValueError("batch_groups is not available with sequence_parallel_size > 1; use batch size 1.")
        self.batch_groups = batch_groups
        self.skipped_media = 0

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
        """With sequence parallelism, every rank of one SP group must draw the same batches; with `batch_groups`,
        every per-device batch is of one group."""
        if self.batch_groups is not None:
            sampler = GroupedBatchOrder(self.batch_groups, self.args.per_device_train_batch_size, seed=self.args.seed)
        elif self.sequence_parallel.sp_size == 1:
            return super().get_train_dataloader()
        else:
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

    def _text_decoder(self, model: torch.nn.Module) -> torch.nn.Module:
        """The text stack of the (unwrapped, peft-unwrapped) model: the module ring attention shards."""
        model = self.accelerator.unwrap_model(model)
        if hasattr(model, "get_base_model"):  # peft wrapper
            model = model.get_base_model()
        return model.get_decoder()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The loss of one micro-batch, normalised as `loss_normalization` says (module docstring)."""
        skipped = inputs.pop("skipped_media", None)
        if skipped is not None and model.training:
            self._count_skipped(skipped)
        if self.loss_normalization == "sample":
            num_items_in_batch = None  # the micro-batch is one sample: its own token mean
            if self.sequence_parallel.sp_size == 1 and inputs["labels"].shape[0] > 1 and not return_outputs:
                return self._mean_of_sample_means(model, inputs)
        if self.sequence_parallel.sp_size == 1:
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
        shifted_labels = shift_labels(inputs["labels"])
        model_inputs = {key: value for key, value in inputs.items() if key not in ("labels", "attention_mask")}
        with shard_decoder_inputs(self._text_decoder(model), shifted_labels, self.sequence_parallel) as shard:
            outputs = model(**model_inputs, use_cache=False)
        loss = sequence_parallel_loss(
            outputs.logits, shard.labels, self.sequence_parallel, num_items_in_batch, self.accelerator.num_processes
        )
        return (loss, outputs) if return_outputs else loss

    def _mean_of_sample_means(self, model, inputs: dict) -> torch.Tensor:
        """`sample` normalisation of a micro-batch of several rows: the mean over its rows (those with trained
        tokens) of each row's mean over its trained tokens, from TRL's fused LM head (per-token log-probabilities)."""
        outputs = model(**inputs, use_cache=False, fused_lm_head=True)
        mask = outputs.label_mask.to(outputs.log_probs.dtype)
        counts = mask.sum(dim=-1)
        per_sample = -(outputs.log_probs * mask).sum(dim=-1) / counts.clamp(min=1)
        trained = counts > 0
        mode = "train" if model.training else "eval"
        if outputs.is_top1 is not None:
            correct = self.accelerator.gather_for_metrics((outputs.is_top1 * mask).sum()).sum()
            valid = self.accelerator.gather_for_metrics(mask.sum()).sum()
            self._metrics[mode]["mean_token_accuracy"].append((correct / valid).item() if valid > 0 else 0.0)
        return per_sample[trained].mean() if trained.any() else per_sample.sum() * 0.0

    def _count_skipped(self, skipped: torch.Tensor) -> None:
        """Add this step's rows skipped for unreadable media (all ranks) to the logged running total."""
        total = self.accelerator.gather_for_metrics(skipped.sum().to(self.accelerator.device)).sum()
        self.skipped_media += int(total) // self.sequence_parallel.sp_size  # an SP group shares one batch
        self._metrics["train"]["skipped_media"] = [self.skipped_media]
