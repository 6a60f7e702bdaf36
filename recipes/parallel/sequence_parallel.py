"""Sequence-parallel plumbing around ring attention: process groups, batch sharding, loss and data sampling.

`world = data_parallel_size * sequence_parallel_size`; consecutive ranks form one sequence-parallel (SP) group and
all ranks of a group see the same sample. The sequence is cut AFTER the multimodal merge (video placeholders become
embeddings inside the model's own forward; `shard_decoder_inputs` cuts them on their way into the language model),
labels are shifted BEFORE it, and every rank gets global zigzag `position_ids`. In a real run
`state = init_sequence_parallel(2)` (after torch.distributed starts) gives this rank's place; here, rank 1 of 2:

```python
>>> state = SequenceParallelState(group=None, sp_size=2, sp_rank=1, dp_size=1, dp_rank=0)
>>> labels = torch.tensor([[10, 11, 12, 13, 14, 15]])
>>> embeds, positions, local_labels = shard_sequence(torch.zeros(1, 6, 4), shift_labels(labels), state)
>>> embeds.shape, positions.tolist(), local_labels.tolist()  # padded to 8, rank 1 holds chunks 1 and 2
(torch.Size([1, 4, 4]), [[2, 3, 4, 5]], [[13, 14, 15, -100]])
>>> loss = sequence_parallel_loss(torch.randn(1, 4, 16), local_labels, state)  # mean over ranks = full loss

```
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Sampler

from recipes.parallel.ring_attention import zigzag_shard

IGNORE_INDEX = -100


@dataclass
class SequenceParallelState:
    """Where this process sits: its SP group, rank in it, and the data-parallel coordinates."""

    group: dist.ProcessGroup | None
    sp_size: int
    sp_rank: int
    dp_size: int
    dp_rank: int


def init_sequence_parallel(sp_size: int) -> SequenceParallelState:
    """Create the SP groups (consecutive ranks) on every process and return this process's place.

    With `sp_size == 1` no group is created and `group` is None.
    """
    if sp_size < 1:
        raise ValueError(f"sequence_parallel_size must be >= 1, got {sp_size}.")
    if sp_size == 1:
        world = dist.get_world_size() if dist.is_initialized() else 1
        rank = dist.get_rank() if dist.is_initialized() else 0
        return SequenceParallelState(None, 1, 0, world, rank)
    if not dist.is_initialized():
        raise RuntimeError(
            f"sequence_parallel_size={sp_size} needs torch.distributed; start with `accelerate launch "
            f"--num_processes {sp_size} ...` (or a multiple of it)."
        )
    world, rank = dist.get_world_size(), dist.get_rank()
    if world % sp_size:
        raise ValueError(
            f"World size {world} is not a multiple of sequence_parallel_size {sp_size}; launch a multiple of "
            f"{sp_size} processes."
        )
    mine = None
    for start in range(0, world, sp_size):
        group = dist.new_group(list(range(start, start + sp_size)))  # every rank must create every group
        if start <= rank < start + sp_size:
            mine = group
    return SequenceParallelState(mine, sp_size, rank % sp_size, world // sp_size, rank // sp_size)


def shift_labels(labels: torch.Tensor) -> torch.Tensor:
    """`(B, L)` labels -> `(B, L)` where position t holds the target of token t (= labels[t + 1]); last is ignored."""
    return F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)


def shard_sequence(
    inputs_embeds: torch.Tensor, shifted_labels: torch.Tensor, state: SequenceParallelState
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad to a multiple of `2 * sp_size` and keep this rank's zigzag part.

    Args:
        inputs_embeds: `(B, L, hidden)` merged text + vision embeddings of the whole sequence.
        shifted_labels: `(B, L)` from `shift_labels`.
    Returns:
        `(B, L_local, hidden)` embeddings, `(B, L_local)` GLOBAL position ids, `(B, L_local)` labels.
    """
    batch, length = shifted_labels.shape
    padded = math.ceil(length / (2 * state.sp_size)) * 2 * state.sp_size
    if padded != length:
        inputs_embeds = F.pad(inputs_embeds, (0, 0, 0, padded - length))
        shifted_labels = F.pad(shifted_labels, (0, padded - length), value=IGNORE_INDEX)
    position_ids = torch.arange(padded, device=shifted_labels.device).unsqueeze(0).expand(batch, -1)
    return tuple(
        zigzag_shard(tensor, 1, state.sp_size, state.sp_rank)
        for tensor in (inputs_embeds, position_ids, shifted_labels)
    )


@dataclass
class DecoderShard:
    """This rank's part of the sequence, filled in when the decoder runs: `(B, L_local)` global position ids and
    the matching shifted labels."""

    position_ids: torch.Tensor | None = None
    labels: torch.Tensor | None = None


@contextmanager
def shard_decoder_inputs(
    decoder: nn.Module, shifted_labels: torch.Tensor, state: SequenceParallelState
) -> Iterator[DecoderShard]:
    """While active, `decoder` (the model's text stack, `model.get_decoder()`) runs on this rank's zigzag shard.

    The model's forward runs unchanged up to its decoder - for ProLongVid that is the merge of text and vision
    embeddings over the WHOLE sequence - then a forward pre-hook pads and cuts the decoder's `inputs_embeds` (a causal
    LM's token embeddings) with `shard_sequence` and passes GLOBAL `position_ids` and no attention mask (padding is on
    the right; ring attention is causal). The labels of the shard are left in the yielded `DecoderShard`.

    ```python
    >>> from transformers import Qwen2Config, Qwen2ForCausalLM
    >>> model = Qwen2ForCausalLM(Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64,
    ...                                      num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2))
    >>> input_ids = torch.randint(0, 64, (1, 10))
    >>> state = SequenceParallelState(group=None, sp_size=2, sp_rank=0, dp_size=1, dp_rank=0)
    >>> with shard_decoder_inputs(model.get_decoder(), shift_labels(input_ids), state) as shard:
    ...     logits = model(input_ids=input_ids, use_cache=False).logits
    >>> logits.shape, shard.position_ids.tolist(), torch.equal(shard.labels[0, :2], input_ids[0, 1:3])
    (torch.Size([1, 6, 64]), [[0, 1, 2, 9, 10, 11]], True)

    ```
    """
    shard = DecoderShard()

    def cut(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if args:
            raise TypeError(f"{type(module).__name__} was called with positional inputs; pass them by keyword.")
        embeds = kwargs.get("inputs_embeds")
        if embeds is None:
            embeds = module.get_input_embeddings()(kwargs["input_ids"])
        embeds, shard.position_ids, shard.labels = shard_sequence(embeds, shifted_labels, state)
        return args, {
            **kwargs,
            "input_ids": None,
            "inputs_embeds": embeds,
            "position_ids": shard.position_ids,
            "attention_mask": None,
        }

    handle = decoder.register_forward_pre_hook(cut, with_kwargs=True)
    try:
        yield shard
    finally:
        handle.remove()


def sequence_parallel_loss(
    logits: torch.Tensor,
    shifted_labels: torch.Tensor,
    state: SequenceParallelState,
    num_items_in_batch: torch.Tensor | int | None = None,
    world_size: int = 1,
) -> torch.Tensor:
    """Cross-entropy of sequences split over the SP group, as this rank's share of the gradient.

    `logits (B, L_local, V)` and `shifted_labels (B, L_local)` are this rank's shard. DDP / DeepSpeed average
    gradients over all `world_size = dp_size * sp_size` ranks, so the local sum is scaled for that average:
    - `num_items_in_batch` None: the token mean of this micro-batch's whole sequences (count summed over the SP
      group, local sum times `sp_size`); the Trainer divides it by the accumulation steps;
    - `num_items_in_batch` given (the Trainer's trained-token count of the global batch, summed over every rank, so
      counted `sp_size` times): the token sum over the global batch divided by its token count.
    """
    local_sum = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        shifted_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    if num_items_in_batch is not None:
        return local_sum * world_size * state.sp_size / torch.as_tensor(num_items_in_batch).clamp(min=1)
    count = (shifted_labels != IGNORE_INDEX).sum()
    if state.group is not None:
        dist.all_reduce(count, group=state.group)
    if count.item() == 0:
        raise ValueError("Every label of this sequence is masked (-100): nothing to train on; check the collator.")
    return local_sum * state.sp_size / count


class SequenceParallelSampler(Sampler[int]):
    """Index sampler that makes accelerate's round-robin batch sharding give one SP group the same batch.

    Each (shuffled) batch of `batch_size` indices is emitted `sp_size` times in a row; the batch list is padded to
    a multiple of `dp_size` so every rank gets the same number of batches. Ranks `k * sp_size ... (k+1) * sp_size - 1`
    (one SP group) then receive identical batches.
    """

    def __init__(self, num_samples: int, batch_size: int, state: SequenceParallelState, shuffle: bool, seed: int):
        if num_samples < 1:
            raise ValueError("The training dataset is empty.")
        self.num_samples, self.batch_size, self.state = num_samples, batch_size, state
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0

    def _batches(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = (
            torch.randperm(self.num_samples, generator=generator) if self.shuffle else torch.arange(self.num_samples)
        )
        order = order.tolist()
        num_batches = math.ceil(self.num_samples / self.batch_size)
        num_batches = math.ceil(num_batches / self.state.dp_size) * self.state.dp_size
        wrapped = (order * math.ceil(num_batches * self.batch_size / self.num_samples + 1))[
            : num_batches * self.batch_size
        ]
        return [wrapped[i : i + self.batch_size] for i in range(0, len(wrapped), self.batch_size)]

    def __iter__(self) -> Iterator[int]:
        for batch in self._batches():
            for _ in range(self.state.sp_size):
                yield from batch

    def __len__(self) -> int:
        return len(self._batches()) * self.batch_size * self.state.sp_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
