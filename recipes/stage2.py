r"""Progressive video instruction tuning, stage 2: videos of 2-5 minutes at 128 frames, vision tower frozen.

The YAML names the stage, the checkpoint it starts from and its hyper-parameters (`--help` lists every field):

```bash
accelerate launch --config_file recipes/accelerate_configs/zero3.yaml recipes/stage2.py \
    --config recipes/prolongvid-7b/stage2.yaml
```
"""

from recipes.training.cli import main

if __name__ == "__main__":
    main(description=__doc__)
