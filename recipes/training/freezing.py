"""Which parameters train, and with which learning rate, from a stage's `trainable_modules` and
`module_learning_rates`.

Module names used in the YAMLs map to parameter-name prefixes of `ProLongVidForConditionalGeneration`
(`all` also covers a bare causal LM such as the context-extension stage's Qwen2):

```python
>>> from modeling_prolongvid import ProLongVidForConditionalGeneration
>>> from modeling_prolongvid.tiny_checkpoint import build_tiny_config, build_tiny_tokenizer
>>> model = ProLongVidForConditionalGeneration(build_tiny_config(build_tiny_tokenizer()))
>>> sorted(apply_freezing(model, ["projector", "language_model"]))  # vision tower and image_newline frozen
['language_model', 'projector']
>>> groups = parameter_groups(model, 1e-5, 0.0, decay_names=set(), overrides={"projector": 1e-4})
>>> sorted(group["lr"] for group in groups)
[1e-05, 0.0001]

```
"""

from __future__ import annotations

from torch import nn

MODULE_PREFIXES = {
    "vision_tower": ("model.vision_tower.",),
    "projector": ("model.multi_modal_projector.",),
    "image_newline": ("model.image_newline",),
    "language_model": ("model.language_model.", "lm_head."),
}


def _module_of(parameter_name: str) -> str | None:
    name = parameter_name.removeprefix("base_model.model.")  # peft wrapping
    for module, prefixes in MODULE_PREFIXES.items():
        if name.startswith(prefixes):
            return module
    return None


def _check_modules(modules) -> None:
    unknown = set(modules) - set(MODULE_PREFIXES) - {"all"}
    if unknown:
        raise ValueError(f"Unknown module(s) {sorted(unknown)}; use all or any of {sorted(MODULE_PREFIXES)}.")


def count_trainable(model: nn.Module) -> dict[str, int]:
    """Trainable parameter counts per module (full sizes, also under ZeRO-3 partitioning)."""
    counts: dict[str, int] = {}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            module = _module_of(name) or "other"
            counts[module] = counts.get(module, 0) + getattr(parameter, "ds_numel", parameter.numel())
    return counts


def apply_freezing(model: nn.Module, trainable_modules: list[str]) -> dict[str, int]:
    """Set `requires_grad` so that exactly `trainable_modules` train; returns trainable parameter counts per module.

    Raises ValueError for an unknown module name or when nothing would train.
    """
    _check_modules(trainable_modules)
    train_all = "all" in trainable_modules
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(train_all or _module_of(name) in trainable_modules)
    counts = count_trainable(model)
    if not counts:
        raise ValueError(
            f"trainable_modules={trainable_modules} matches no parameter of {type(model).__name__}; "
            f"use all or any of {sorted(MODULE_PREFIXES)}."
        )
    return counts


def parameter_groups(
    model: nn.Module,
    base_lr: float,
    weight_decay: float,
    decay_names: set[str],
    overrides: dict[str, float] | None = None,
) -> list[dict]:
    """Optimizer parameter groups of the trainable parameters: one per (learning rate, decay) pair.

    Parameters named in `decay_names` (Trainer.get_decay_parameter_names) get `weight_decay`, the others none;
    `overrides` maps module names to learning rates.
    """
    overrides = overrides or {}
    _check_modules(overrides)
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        lr = overrides.get(_module_of(name), base_lr)
        decay = weight_decay if name in decay_names else 0.0
        groups.setdefault((lr, decay), []).append(parameter)
    return [{"params": params, "lr": lr, "weight_decay": decay} for (lr, decay), params in groups.items()]
