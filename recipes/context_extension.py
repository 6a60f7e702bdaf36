r"""Phase 1, LLM context extension: continued pre-training of the Qwen2.5 LLM on packed long text with the
RoPE base scaled (1M -> 1B) and zigzag ring-attention sequence parallelism.

The YAML names the stage, the checkpoint it starts from and its hyper-parameters (`--help` lists every field):

```bash
accelerate launch --config_file recipes/accelerate_configs/zero3.yaml recipes/context_extension.py \
    --config recipes/prolongvid-7b/context_extension.yaml
```
"""

from recipes.training.cli import main

if __name__ == "__main__":
    main(description=__doc__)
