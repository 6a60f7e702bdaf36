r"""Image stage (b): knowledge instruction tuning on image rows, all parameters train (LLaVA-OneVision recipe).

The YAML names the stage, the checkpoint it starts from and its hyper-parameters (`--help` lists every field):

```bash
accelerate launch --config_file recipes/accelerate_configs/zero3.yaml recipes/image_knowledge.py \
    --config recipes/prolongvid-7b/image_knowledge.yaml
```
"""

from recipes.training.cli import main

if __name__ == "__main__":
    main(description=__doc__)
