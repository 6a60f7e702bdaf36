"""Progressive video instruction tuning, stage 1: videos under 2 minutes at 32 frames, vision tower frozen.

```bash
accelerate launch --config_file recipes/accelerate_configs/zero1.yaml recipes/stage1.py --config recipes/prolongvid-7b/stage1.yaml
```
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # started as a file (accelerate launch recipes/stage1.py): make the kit importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recipes.sft import main  # noqa: E402

if __name__ == "__main__":
    main("stage1")
