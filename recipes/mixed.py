r"""Mixed single-stage baseline (paper Table 4 / App. B): all three video subsets in one run, each row at its own subset's
frame count (32 / 128 / 192), for ablation.

The YAML names the stage, the checkpoint it starts from and its hyper-parameters (`--help` lists every field):

```bash
accelerate launch --config_file recipes/accelerate_configs/zero3.yaml recipes/mixed.py \
    --config recipes/prolongvid-7b/mixed.yaml
```
"""

from recipes.training.cli import main

if __name__ == "__main__":
    main(description=__doc__)
