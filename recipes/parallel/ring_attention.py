"""Zigzag ring attention for sequence parallelism, registered through transformers' `AttentionInterface`.

A causal sequence of length `L` is cut into `2 * W` equal chunks for a sequence-parallel (SP) group of `W` ranks;
rank `r` holds chunks `r` and `2W - 1 - r` (the "zigzag" layout), so every rank does the same amount of causal work.
Keys and values travel around the ring; each rank merges the partial softmax of every block into its output with
an online log-sum-exp merge accumulated in float32. The backward pass runs its own ring (received buffers carry no
autograd history), sending key/value gradients along with the keys and values until they return to their owner.

CPU / gloo uses a pure-PyTorch path (blocks computed by PyTorch's CPU flash kernel, or by plain matmuls);
on CUDA the `ring-flash-attn` kernels are used when that package is importable.

Example: one rank (a group of 2+ ranks works the same way, each rank holding its zigzag part), checked against
PyTorch's full causal attention:

```python
>>> import tempfile, torch, torch.distributed as dist, torch.nn.functional as F
>>> dist.init_process_group("gloo", init_method=f"file://{tempfile.mkdtemp()}/rendezvous", rank=0, world_size=1)
>>> query, key, value = (torch.randn(1, 4, 8, 16) for _ in range(3))  # (B, H, L, D)
>>> out = zigzag_ring_attention(query, key, value, group=dist.group.WORLD)
>>> torch.allclose(out, F.scaled_dot_product_attention(query, key, value, is_causal=True), atol=1e-5)
True
>>> dist.destroy_process_group()

```

In a model, register it and switch the causal decoder to it; then feed it zigzag-sharded inputs with global
`position_ids` (`recipes.parallel.sequence_parallel.shard_sequence`):

```python
register_ring_attention()
set_sequence_parallel_group(group)
model.set_attn_implementation(RING_ATTENTION_NAME)
```
"""

from __future__ import annotations

import torch
import torch.distributed as dist

RING_ATTENTION_NAME = "zigzag_ring"

_ACTIVE_GROUP: dist.ProcessGroup | None = None


# ----------------------------------------------------------------------------- group registry
def set_sequence_parallel_group(group: dist.ProcessGroup | None) -> None:
    """Make `group` the sequence-parallel group used by the registered attention function (None clears it)."""
    global _ACTIVE_GROUP
    _ACTIVE_GROUP = group


def get_sequence_parallel_group() -> dist.ProcessGroup | None:
    """The sequence-parallel group set by `set_sequence_parallel_group`, or None."""
    return _ACTIVE_GROUP


# ----------------------------------------------------------------------------- zigzag layout
def zigzag_indices(seq_len: int, sp_size: int, sp_rank: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Global positions held by `sp_rank`: chunks `sp_rank` and `2*sp_size-1-sp_rank` of `2*sp_size` chunks.

    Returns a LongTensor of shape `(seq_len // sp_size,)`. `seq_len` must be a multiple of `2 * sp_size`.

    >>> zigzag_indices(8, 2, 0).tolist()
    [0, 1, 6, 7]
    """
    if seq_len % (2 * sp_size):
        raise ValueError(
            f"Sequence length {seq_len} is not a multiple of 2 * sequence_parallel_size = {2 * sp_size}; "
            "pad the batch to a multiple of it before zigzag sharding."
        )
    if not 0 <= sp_rank < sp_size:
        raise ValueError(f"sp_rank {sp_rank} is outside [0, {sp_size}).")
    chunk = seq_len // (2 * sp_size)
    first = torch.arange(sp_rank * chunk, (sp_rank + 1) * chunk, device=device)
    second_start = (2 * sp_size - 1 - sp_rank) * chunk
    second = torch.arange(second_start, second_start + chunk, device=device)
    return torch.cat((first, second))


def zigzag_shard(tensor: torch.Tensor, dim: int, sp_size: int, sp_rank: int) -> torch.Tensor:
    """Select the zigzag part of `tensor` along `dim` (e.g. `(batch, seq, hidden)` with dim=1) for `sp_rank`."""
    index = zigzag_indices(tensor.shape[dim], sp_size, sp_rank, device=tensor.device)
    return tensor.index_select(dim, index)


# ----------------------------------------------------------------------------- attention blocks
def _has_cpu_flash_kernel() -> bool:
    return hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu") and hasattr(
        torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu_backward"
    )


def _expand_heads(tensor: torch.Tensor, groups: int) -> torch.Tensor:
    return tensor if groups == 1 else tensor.repeat_interleave(groups, dim=1)


def _reduce_heads(grad: torch.Tensor, groups: int) -> torch.Tensor:
    if groups == 1:
        return grad
    batch, heads, length, dim = grad.shape
    return grad.view(batch, heads // groups, groups, length, dim).sum(2)


def _block_forward(query, key, value, causal: bool, scale: float, use_kernel: bool):
    """Attention of one block. Returns (out (B, H, Lq, D) in query dtype or fp32, lse (B, H, Lq) fp32)."""
    groups = query.shape[1] // key.shape[1]
    key, value = _expand_heads(key, groups), _expand_heads(value, groups)
    if use_kernel:
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            query, key, value, 0.0, causal, scale=scale
        )
        return out, lse.float()
    scores = torch.matmul(query.float(), key.float().transpose(-1, -2)) * scale
    if causal:
        mask = torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device).triu(1)
        scores = scores.masked_fill(mask, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)
    out = torch.matmul(torch.exp(scores - lse.unsqueeze(-1)), value.float())
    return out, lse


def _block_backward(grad_out, query, key, value, out, lse, causal: bool, scale: float, use_kernel: bool):
    """Gradients of one block given the GLOBAL (merged) output and log-sum-exp of its query rows."""
    groups = query.shape[1] // key.shape[1]
    key_full, value_full = _expand_heads(key, groups), _expand_heads(value, groups)
    if use_kernel:
        grad_q, grad_k, grad_v = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
            grad_out.contiguous(),
            query,
            key_full,
            value_full,
            out.to(query.dtype).contiguous(),
            lse.contiguous(),
            0.0,
            causal,
            scale=scale,
        )
    else:
        q, k, v, do, o = (t.float() for t in (query, key_full, value_full, grad_out, out))
        scores = torch.matmul(q, k.transpose(-1, -2)) * scale
        if causal:
            mask = torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device).triu(1)
            scores = scores.masked_fill(mask, float("-inf"))
        probs = torch.exp(scores - lse.unsqueeze(-1))
        grad_v = torch.matmul(probs.transpose(-1, -2), do)
        grad_probs = torch.matmul(do, v.transpose(-1, -2))
        delta = (do * o).sum(-1, keepdim=True)
        grad_scores = probs * (grad_probs - delta) * scale
        grad_q = torch.matmul(grad_scores, k)
        grad_k = torch.matmul(grad_scores.transpose(-1, -2), q)
    # Contiguous: the key/value gradients are sent around the ring (the CPU kernel may return strided views).
    grad_k, grad_v = (_reduce_heads(grad.float(), groups).contiguous() for grad in (grad_k, grad_v))
    return grad_q.float(), grad_k, grad_v


# ----------------------------------------------------------------------------- ring communication
class _Ring:
    """Send tensors to the next rank of the group and receive same-shaped ones from the previous rank, async."""

    def __init__(self, group: dist.ProcessGroup, tag: int = 0):
        self.group, self.tag = group, tag
        rank, world = dist.get_rank(group), dist.get_world_size(group)
        self.next_rank = dist.get_global_rank(group, (rank + 1) % world)
        self.prev_rank = dist.get_global_rank(group, (rank - 1) % world)
        self._pending: list = []
        self._received: list[torch.Tensor] = []

    def start(self, tensors: list[torch.Tensor]) -> None:
        self._received = [torch.empty_like(tensor) for tensor in tensors]
        ops = []
        for tensor, received in zip(tensors, self._received):
            ops.append(dist.P2POp(dist.isend, tensor, self.next_rank, self.group, self.tag))
            ops.append(dist.P2POp(dist.irecv, received, self.prev_rank, self.group, self.tag))
        self._pending = dist.batch_isend_irecv(ops)

    def wait(self) -> list[torch.Tensor]:
        for request in self._pending:
            request.wait()
        self._pending = []
        return self._received


def _block_plan(step: int, rank: int, world: int, half: int):
    """(query rows, key/value columns, causal) of ring step `step` on `rank` in the zigzag layout."""
    source = (rank - step) % world
    if step == 0:
        return slice(None), slice(None), True
    if source < rank:  # both local query chunks come after the source's first chunk, before its second
        return slice(None), slice(0, half), False
    return slice(half, None), slice(None), False  # only the late local chunk sees both source chunks


# ----------------------------------------------------------------------------- autograd function
def _merge_(out: torch.Tensor, lse: torch.Tensor, block_out: torch.Tensor, block_lse: torch.Tensor) -> None:
    """Fold one block's (output, log-sum-exp) into the running fp32 (out, lse) views, in place."""
    merged = torch.logaddexp(lse, block_lse)
    out.mul_(torch.exp(lse - merged).unsqueeze(-1))
    out.add_(block_out.float().mul_(torch.exp(block_lse - merged).unsqueeze(-1)))
    lse.copy_(merged)


class ZigzagRingAttention(torch.autograd.Function):
    """Causal attention over a zigzag-sharded sequence. Inputs `(B, H, L_local, D)` (keys/values may have fewer
    heads, grouped-query attention); output `(B, H, L_local, D)` in the query dtype.

    Memory per rank: the local q/k/v, the fp32 output and one incoming key/value buffer (forward); one incoming
    key/value buffer and the travelling key/value gradients (backward). Step 0 covers every local query row, so
    the running output starts as that block's output instead of a zero buffer.
    """

    @staticmethod
    def forward(ctx, query, key, value, scale: float, group: dist.ProcessGroup, use_kernel: bool):
        rank, world = dist.get_rank(group), dist.get_world_size(group)
        half = query.shape[2] // 2
        key, value = key.contiguous(), value.contiguous()  # sent as they are
        ring = _Ring(group)
        current_key, current_value = key, value
        out = lse = None
        for step in range(world):
            if step + 1 < world:
                ring.start([current_key, current_value])
            rows, cols, causal = _block_plan(step, rank, world, half)
            block_out, block_lse = _block_forward(
                query[:, :, rows], current_key[:, :, cols], current_value[:, :, cols], causal, scale, use_kernel
            )
            if out is None:
                out, lse = block_out.float(), block_lse
            else:
                _merge_(out[:, :, rows], lse[:, :, rows], block_out, block_lse)
            del block_out, block_lse
            if step + 1 < world:
                current_key, current_value = ring.wait()
        ctx.save_for_backward(query, key, value, out, lse)
        ctx.scale, ctx.group, ctx.use_kernel = scale, group, use_kernel
        return out.to(query.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        query, key, value, out, lse = ctx.saved_tensors
        group, scale, use_kernel = ctx.group, ctx.scale, ctx.use_kernel
        rank, world = dist.get_rank(group), dist.get_world_size(group)
        half = query.shape[2] // 2
        kv_ring, grad_ring = _Ring(group, tag=0), _Ring(group, tag=1)
        current_key, current_value = key, value
        grad_query = grad_key = grad_value = None
        for step in range(world):
            if step + 1 < world:
                kv_ring.start([current_key, current_value])
            rows, cols, causal = _block_plan(step, rank, world, half)
            block_grads = _block_backward(
                grad_out[:, :, rows],
                query[:, :, rows],
                current_key[:, :, cols],
                current_value[:, :, cols],
                out[:, :, rows],
                lse[:, :, rows],
                causal,
                scale,
                use_kernel,
            )
            if step == 0:  # every row and column: the block gradients become the accumulators
                grad_query, grad_key, grad_value = block_grads
            else:
                grad_query[:, :, rows] += block_grads[0]
                grad_key[:, :, cols] += block_grads[1]
                grad_value[:, :, cols] += block_grads[2]
            del block_grads
            # The key/value gradients travel with their key/value block; after `world` hops they are back home.
            grad_ring.start([grad_key, grad_value])
            if step + 1 < world:
                current_key, current_value = kv_ring.wait()
            grad_key, grad_value = grad_ring.wait()
        return grad_query.to(query.dtype), grad_key.to(key.dtype), grad_value.to(value.dtype), None, None, None


# ----------------------------------------------------------------------------- public entry points
def _ring_flash_attn_available(device: torch.device) -> bool:
    if device.type != "cuda":
        return False
    try:
        import ring_flash_attn  # noqa: F401
    except ImportError:
        return False
    return True


def zigzag_ring_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    group: dist.ProcessGroup,
    scale: float | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Causal attention of zigzag-sharded `query (B, H, L_local, D)` against `key/value (B, H_kv, L_local, D)`.

    Returns `(B, H, L_local, D)`. `backend`: "auto" (ring-flash-attn on CUDA when installed, otherwise PyTorch
    with the CPU flash kernel when available), "kernel" (PyTorch ring, CPU flash blocks), "math" (PyTorch ring,
    plain matmul blocks) or "ring_flash_attn".

    """
    if query.shape[2] % 2:
        raise ValueError(f"Local sequence length {query.shape[2]} must be even (two zigzag chunks per rank).")
    if query.shape[1] % key.shape[1]:
        raise ValueError(f"Query heads {query.shape[1]} are not a multiple of key/value heads {key.shape[1]}.")
    scale = query.shape[-1] ** -0.5 if scale is None else scale
    if backend == "auto":
        if _ring_flash_attn_available(query.device):
            backend = "ring_flash_attn"
        else:
            backend = "kernel" if query.device.type == "cpu" and _has_cpu_flash_kernel() else "math"
    if backend == "ring_flash_attn":
        from ring_flash_attn import zigzag_ring_flash_attn_func

        out = zigzag_ring_flash_attn_func(
            query.transpose(1, 2),
            key.transpose(1, 2),
            value.transpose(1, 2),
            softmax_scale=scale,
            causal=True,
            group=group,
        )
        return out.transpose(1, 2)
    if backend not in ("kernel", "math"):
        raise ValueError(f"Unknown ring attention backend {backend!r}; use auto, kernel, math or ring_flash_attn.")
    return ZigzagRingAttention.apply(query, key, value, scale, group, backend == "kernel")


def ring_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """transformers attention function: `(B, H, L, D)` inputs (RoPE applied) -> `((B, L, H, D), None)`.

    The sequence is expected in the zigzag layout with global `position_ids`; padding must be on the right (the
    causal mask keeps real tokens from attending to it), so `attention_mask` is not used.
    """
    group = get_sequence_parallel_group()
    if group is None:
        raise RuntimeError(
            f"Attention implementation {RING_ATTENTION_NAME!r} needs a sequence-parallel group: call "
            "recipes.parallel.ring_attention.set_sequence_parallel_group(group) first."
        )
    if dropout:
        raise ValueError(f"Ring attention does not support attention dropout (got {dropout}); set it to 0.")
    out = zigzag_ring_attention(query, key, value, group=group, scale=scaling)
    return out.transpose(1, 2).contiguous(), None


def register_ring_attention() -> str:
    """Register `ring_attention_forward` with transformers' `AttentionInterface`; returns its name."""
    from transformers import AttentionInterface

    AttentionInterface.register(RING_ATTENTION_NAME, ring_attention_forward)
    return RING_ATTENTION_NAME
