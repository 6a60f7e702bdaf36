r"""Progressive video instruction tuning, stage 3: videos of 5-20 minutes at 192 frames, vision tower frozen.

The YAML names the stage, the checkpoint it starts from and its hyper-parameters (`--help` lists every field):

```bash
accelerate launch --config_file recipes/accelerate_configs/zero3.yaml recipes/stage3.py \
    --config recipes/prolongvid-7b/stage3.yaml
```
"""

from recipes.training.cli import main

if __name__ == "__main__":
    main(description=__doc__)
