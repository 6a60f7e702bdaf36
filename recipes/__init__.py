"""Training recipes of ProLongVid: one YAML per stage under `prolongvid-7b/`, launch strategies under
`accelerate_configs/`, one entry script per stage, and the shared library modules (arguments, collator, data,
freezing, hand-off, ring attention / sequence parallelism, trainer, model card). See `progressive.py` for the
whole pipeline in order."""
