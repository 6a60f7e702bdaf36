"""Sequence parallelism for long sequences: zigzag ring attention registered with transformers' `AttentionInterface`
(`ring_attention`) and the process groups, sharding, loss and sampler around it (`sequence_parallel`)."""
