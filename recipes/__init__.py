"""Training recipes of ProLongVid.

- `prolongvid-7b/`: one YAML per stage (its `stage` field chooses what trains); `accelerate_configs/`: launch
  strategies (ddp, zero1, zero2, zero3, zero3_offload).
- One entry script per stage (`stage2.py`, ...), all the same one line: `recipes.training.cli.main`;
  `progressive.py` runs the whole pipeline in order.
- `training/`: the training library (arguments, data, collator, freezing, hand-off, trainer, model card, the
  per-stage trainers, tiny offline inputs); `parallel/`: zigzag ring attention and sequence parallelism.
"""
