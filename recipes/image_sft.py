r"""Image stage (c): single-image instruction tuning (LLaVA-OneVision recipe).

The YAML names the stage, the checkpoint it starts from and its hyper-parameters (`--help` lists every field):

```bash
accelerate launch --config_file recipes/accelerate_configs/zero3.yaml recipes/image_sft.py \
    --config recipes/prolongvid-7b/image_sft.yaml
```
"""

from recipes.training.cli import main

if __name__ == "__main__":
    main(description=__doc__)
