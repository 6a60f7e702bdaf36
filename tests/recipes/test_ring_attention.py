"""Zigzag ring attention vs full causal attention on CPU over gloo (2 and 4 ranks, spawned processes)."""

import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from recipes.parallel.ring_attention import (
    RING_ATTENTION_NAME,
    register_ring_attention,
    set_sequence_parallel_group,
    zigzag_indices,
    zigzag_ring_attention,
    zigzag_shard,
)
from recipes.parallel.sequence_parallel import (
    SequenceParallelSampler,
    SequenceParallelState,
    init_sequence_parallel,
    sequence_parallel_loss,
    shard_sequence,
    shift_labels,
)

TOLERANCE = 1e-5


def _spawn(worker, world: int, *args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(worker, args=(world, os.path.join(tmp, "rendezvous"), *args), nprocs=world, join=True)


def _init(rank: int, world: int, rendezvous: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)


def _full_causal(query, key, value):
    groups = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1)
    return F.scaled_dot_product_attention(query, key, value, is_causal=True)


def _check_attention(rank: int, world: int, backend: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)  # every rank builds the same global tensors
    batch, heads, kv_heads, length, dim = 2, 4, 2, 8 * world, 16
    query = torch.randn(batch, heads, length, dim)
    key, value = torch.randn(batch, kv_heads, length, dim), torch.randn(batch, kv_heads, length, dim)
    grad_out = torch.randn(batch, heads, length, dim)
    full = [t.clone().requires_grad_() for t in (query, key, value)]
    reference = _full_causal(*full)
    reference.backward(grad_out)

    local = [zigzag_shard(t, 2, world, rank).to(dtype).requires_grad_() for t in (query, key, value)]
    out = zigzag_ring_attention(*local, group=dist.group.WORLD, backend=backend)
    out.backward(zigzag_shard(grad_out, 2, world, rank).to(dtype))

    tolerance = TOLERANCE if dtype == torch.float32 else 5e-2
    assert out.dtype == dtype
    message = f"{backend} {dtype} at {world} ranks"
    torch.testing.assert_close(
        out.float(), zigzag_shard(reference, 2, world, rank), atol=tolerance, rtol=tolerance, msg=message
    )
    for name, mine, ref in zip("qkv", local, full):
        torch.testing.assert_close(
            mine.grad.float(),
            zigzag_shard(ref.grad, 2, world, rank),
            atol=tolerance,
            rtol=tolerance,
            msg=f"grad {name}, {message}",
        )


def _attention_worker(rank: int, world: int, rendezvous: str, cases: list) -> None:
    _init(rank, world, rendezvous)
    for backend, dtype in cases:
        _check_attention(rank, world, backend, dtype)
    dist.destroy_process_group()


# One spawn per world size: process start-up (importing torch) dominates the cost of these checks.
@pytest.mark.parametrize(
    "world, cases",
    [
        (2, [("kernel", torch.float32), ("math", torch.float32), ("kernel", torch.bfloat16)]),
        (4, [("kernel", torch.float32), ("math", torch.float32)]),
    ],
)
def test_ring_attention_output_and_grads_match_full_attention(world, cases):
    """fp32: 1e-5 against full causal SDPA; bf16 inputs stay close because the merge accumulates in fp32."""
    _spawn(_attention_worker, world, cases)


def _qwen2_worker(rank: int, world: int, rendezvous: str) -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    _init(rank, world, rendezvous)
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        attn_implementation="sdpa",
    )
    model = Qwen2ForCausalLM(config).float()
    input_ids = torch.randint(0, 64, (2, 13))  # 13: not a multiple of 2 * world, exercises padding
    labels = input_ids.clone()
    labels[:, :4] = -100
    reference = model(input_ids=input_ids, labels=labels).loss
    reference.backward()
    reference_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()

    register_ring_attention()
    state = init_sequence_parallel(world)
    set_sequence_parallel_group(state.group)
    model.set_attn_implementation(RING_ATTENTION_NAME)
    embeds, positions, local_labels = shard_sequence(
        model.get_input_embeddings()(input_ids), shift_labels(labels), state
    )
    logits = model(inputs_embeds=embeds, position_ids=positions).logits
    loss = sequence_parallel_loss(logits, local_labels, state)
    loss.backward()
    full_loss = loss.detach().clone()
    dist.all_reduce(full_loss)
    torch.testing.assert_close(full_loss / world, reference.detach(), atol=TOLERANCE, rtol=TOLERANCE)
    for name, parameter in model.named_parameters():
        grad = parameter.grad / world  # what DDP's gradient average computes
        dist.all_reduce(grad)
        torch.testing.assert_close(grad, reference_grads[name], atol=TOLERANCE, rtol=1e-4, msg=name)
    set_sequence_parallel_group(None)
    dist.destroy_process_group()


def test_tiny_qwen2_loss_and_grads_match_unsharded_run():
    _spawn(
        _qwen2_worker,
        2,
    )


def test_zigzag_layout_covers_the_sequence_once():
    for world in (1, 2, 4):
        held = torch.cat([zigzag_indices(8 * world, world, r) for r in range(world)])
        assert sorted(held.tolist()) == list(range(8 * world))
    assert zigzag_indices(8, 2, 1).tolist() == [2, 3, 4, 5]
    with pytest.raises(ValueError, match="multiple of 2"):
        zigzag_indices(10, 2, 0)


def test_shift_then_shard_keeps_targets_aligned():
    state = SequenceParallelState(None, 2, 1, 1, 0)
    labels = torch.arange(6).unsqueeze(0)
    embeds = torch.arange(6.0).view(1, 6, 1)
    local_embeds, positions, local_labels = shard_sequence(embeds, shift_labels(labels), state)
    assert positions.tolist() == [[2, 3, 4, 5]]  # padded to 8, rank 1 holds chunks 1 and 2
    assert local_embeds.view(-1).tolist() == [2.0, 3.0, 4.0, 5.0]
    assert local_labels.tolist() == [[3, 4, 5, -100]]


def test_all_masked_labels_are_refused():
    state = SequenceParallelState(None, 1, 0, 1, 0)
    with pytest.raises(ValueError, match="masked"):
        sequence_parallel_loss(torch.randn(1, 4, 5), torch.full((1, 4), -100), state)


def test_sampler_gives_one_sp_group_the_same_batches():
    state = SequenceParallelState(None, 2, 0, 2, 0)  # world 4 = 2 data-parallel x 2 sequence-parallel
    sampler = SequenceParallelSampler(7, batch_size=2, state=state, shuffle=True, seed=3)
    indices = list(sampler)
    batches = [indices[i : i + 2] for i in range(0, len(indices), 2)]
    assert len(batches) % 4 == 0 and len(indices) == len(sampler)
    per_rank = [batches[r::4] for r in range(4)]  # accelerate's round-robin batch sharding
    assert per_rank[0] == per_rank[1] and per_rank[2] == per_rank[3]
    assert per_rank[0] != per_rank[2]
    assert set(indices) == set(range(7))
