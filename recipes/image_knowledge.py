"""Image stage (b): knowledge instruction tuning on image rows, all parameters train (LLaVA-OneVision recipe).

```bash
accelerate launch --config_file recipes/accelerate_configs/zero3.yaml recipes/image_knowledge.py --config recipes/prolongvid-7b/image_knowledge.yaml
```
"""

import sys
from pathlib import Path

if __package__ in (
    None,
    "",
):  # started as a file (accelerate launch recipes/image_knowledge.py): make the kit importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recipes.sft import main  # noqa: E402

if __name__ == "__main__":
    main("image_knowledge")
