r"""Progressive video instruction tuning, stage 1: videos under 2 minutes at 32 frames, vision tower frozen.

The YAML names the stage, the checkpoint it starts from and its hyper-parameters (`--help` lists every field):

```bash
accelerate launch --config_file recipes/accelerate_configs/zero1.yaml recipes/stage1.py \
    --config recipes/prolongvid-7b/stage1.yaml
```
"""

from recipes.training.cli import main

if __name__ == "__main__":
    main(description=__doc__)
