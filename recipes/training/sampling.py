r"""`GroupedBatchOrder`: a training sampler whose every run of `batch_size` consecutive indices shares one group --
for the mixed baseline, whose rows are sampled at their subset's frame count (`subset_num_frames`), so that a
per-device batch holds one frame count at any `per_device_train_batch_size`.

The Trainer's data loader cuts the sampler's order into per-device batches of `batch_size`, and accelerate deals them
out to the ranks in turn; both keep runs intact. Every epoch the rows of each group are shuffled and cut into runs
(a group's last run is filled up with its own first rows of the epoch), and the runs of all groups are shuffled
together: `set_epoch` (called by accelerate) reshuffles, and every rank computes the same order from `seed`.

```python
>>> order = GroupedBatchOrder(["a", "b", "a", "b", "a", "b", "a", "b"], batch_size=2, seed=0)
>>> indices = list(order)
>>> len(indices), sorted(indices)
(8, [0, 1, 2, 3, 4, 5, 6, 7])
>>> all(len({index % 2 for index in indices[i : i + 2]}) == 1 for i in range(0, 8, 2))  # one group per batch
True

```
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence

import torch
from torch.utils.data import Sampler


class GroupedBatchOrder(Sampler[int]):
    """Indices `0 .. len(groups) - 1` in runs of `batch_size` that share a group (`groups[i]`: row i's group)."""

    def __init__(self, groups: Sequence[Hashable], batch_size: int, seed: int = 0):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0
        members: dict[Hashable, list[int]] = {}
        for index, group in enumerate(groups):
            members.setdefault(group, []).append(index)
        self.members = list(members.values())

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return sum(-(-len(rows) // self.batch_size) * self.batch_size for rows in self.members)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        runs: list[list[int]] = []
        for rows in self.members:
            shuffled = [rows[i] for i in torch.randperm(len(rows), generator=generator).tolist()]
            shuffled += [shuffled[i % len(shuffled)] for i in range(-len(shuffled) % self.batch_size)]
            runs.extend(shuffled[i : i + self.batch_size] for i in range(0, len(shuffled), self.batch_size))
        for run in torch.randperm(len(runs), generator=generator).tolist():
            yield from runs[run]
