"""Zigzag ring attention vs full causal attention on CPU: per-rank peak memory and forward+backward time.

For each sequence length, full attention (PyTorch SDPA, causal) runs in one process and ring attention in P
processes over gloo (one thread each, so P=2 uses both cores of a 2-core box; P=4 oversubscribes them and its wall
time is inflated accordingly). Each measurement runs in a fresh process; memory is the rise of the process's peak
RSS during forward+backward (inputs allocated beforehand are excluded). Targets: memory ~ 1/P of full, time per
token at P=2 <= 1.3x full (time per token = rank time x P / sequence length, i.e. total rank-seconds; reported
for wall time and for CPU time, the latter meaningful when P exceeds the core count).

```bash
python benchmarks/ring_attention.py                                  # 2K..32K, P = 2, 4
python benchmarks/ring_attention.py --seq_lens 2048 8192 --ranks 2   # quicker
```
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from recipes.parallel.ring_attention import zigzag_ring_attention, zigzag_shard


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _inputs(seq_len: int, heads: int, head_dim: int):
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(1, heads, seq_len, head_dim, generator=generator) for _ in range(4)]  # q, k, v, grad


def _measure(fn, repeats: int, warmup) -> tuple[float, float, float]:
    """(best wall s, CPU s of that run, peak-RSS rise MB) of `fn` (forward + backward), after a tiny `warmup` call
    that absorbs one-time allocations (thread pools, communication buffers)."""
    warmup()
    before = _peak_rss_mb()
    best = (float("inf"), 0.0)
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best[0], best[1], _peak_rss_mb() - before


def _full_worker(_rank: int, seq_len: int, heads: int, head_dim: int, repeats: int, result: str) -> None:
    torch.set_num_threads(1)

    def step(tensors):
        q, k, v = (t.clone().requires_grad_() for t in tensors[:3])
        F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(tensors[3])

    warmup = _inputs(64, heads, head_dim)
    tensors = _inputs(seq_len, heads, head_dim)
    torch.save(_measure(lambda: step(tensors), repeats, lambda: step(warmup)), result)


def _ring_worker(rank: int, world: int, rendezvous: str, seq_len, heads, head_dim, repeats, result) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)

    def step(tensors):
        q, k, v = (t.clone().requires_grad_() for t in tensors[:3])
        zigzag_ring_attention(q, k, v, group=dist.group.WORLD).backward(tensors[3])
        dist.barrier()

    warmup = [zigzag_shard(t, 2, world, rank) for t in _inputs(16 * world, heads, head_dim)]
    tensors = [zigzag_shard(t, 2, world, rank) for t in _inputs(seq_len, heads, head_dim)]
    measured = _measure(lambda: step(tensors), repeats, lambda: step(warmup))
    gathered = [None] * world
    dist.all_gather_object(gathered, measured)
    if rank == 0:  # slowest rank's time, largest rank's memory
        torch.save(tuple(max(values) for values in zip(*gathered)), result)
    dist.destroy_process_group()


def _run(worker, nprocs: int, *args) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        result = os.path.join(tmp, "result.pt")
        extra = (nprocs, os.path.join(tmp, "rendezvous")) if worker is _ring_worker else ()
        mp.spawn(worker, args=(*extra, *args, result), nprocs=nprocs, join=True)
        return torch.load(result)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq_lens", type=int, nargs="+", default=[2048, 4096, 8192, 16384, 32768])
    parser.add_argument("--ranks", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head_dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)

    rows = []
    print(f"heads {args.heads}, head_dim {args.head_dim}, fp32, 1 thread per process, {os.cpu_count()} cores")
    print(
        f"{'seq':>6} {'impl':>7} {'wall s':>8} {'cpu s':>8} {'peak MB':>8} {'mem/full':>9} {'wall/token':>11} {'cpu/token':>10}"
    )
    for seq_len in args.seq_lens:
        full = _run(_full_worker, 1, seq_len, args.heads, args.head_dim, args.repeats)
        print(f"{seq_len:>6} {'full':>7} {full[0]:>8.2f} {full[1]:>8.2f} {full[2]:>8.1f}")
        for world in args.ranks:
            ring = _run(_ring_worker, world, seq_len, args.heads, args.head_dim, args.repeats)
            memory_ratio = ring[2] / full[2] if full[2] > 0 else float("nan")
            time_ratio, cpu_ratio = ring[0] * world / full[0], ring[1] * world / full[1]
            print(f"{seq_len:>6} {f'ring P={world}':>7} {ring[0]:>8.2f} {ring[1]:>8.2f} {ring[2]:>8.1f} "
                  f"{memory_ratio:>9.2f} {time_ratio:>10.2f}x {cpu_ratio:>9.2f}x")  # fmt: skip
            rows.append({"seq_len": seq_len, "ranks": world, "memory_ratio": memory_ratio, "time_ratio": time_ratio,
                         "cpu_ratio": cpu_ratio, "full": full, "ring": ring})  # fmt: skip
    print("targets: mem/full ~ 1/P; time per token vs full <= 1.3x at P=2. Per token = rank time x P vs full time;")
    print("wall is meaningless when P exceeds the cores (oversubscribed), cpu/token then shows the compute overhead.")
    return rows


if __name__ == "__main__":
    main()
