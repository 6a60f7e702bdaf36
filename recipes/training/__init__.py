"""The recipes' training library: arguments and command line (`arguments`, `cli`), data and collators (`data`,
`collator`), freezing and per-module learning rates (`freezing`), stage hand-off (`handoff`), the trainer
(`trainer`), shared stage steps and the model card (`stage`, `model_card`), the trainers of each kind of stage
(`sft`, `context_extension`, `image_alignment`) and tiny offline inputs for tests and smoke runs (`tiny_inputs`).

Modules are imported one by one (nothing here), so that `--help` does not load TRL or torch.
"""
