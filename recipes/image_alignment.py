r"""Image stage (a), image-text alignment: join the context-extended LLM with the SigLIP vision tower and train the
projector only (LLaVA-OneVision recipe). Its output is the first ProLongVid checkpoint of the pipeline.

The YAML names the stage, the checkpoint it starts from and its hyper-parameters (`--help` lists every field):

```bash
accelerate launch --config_file recipes/accelerate_configs/zero2.yaml recipes/image_alignment.py \
    --config recipes/prolongvid-7b/image_alignment.yaml
```
"""

from recipes.training.cli import main

if __name__ == "__main__":
    main(description=__doc__)
