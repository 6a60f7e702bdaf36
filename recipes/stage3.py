"""Progressive video instruction tuning, stage 3: videos of 5-20 minutes at 192 frames, vision tower frozen.

```bash
accelerate launch --config_file recipes/accelerate_configs/zero3.yaml recipes/stage3.py --config recipes/prolongvid-7b/stage3.yaml
```
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # started as a file (accelerate launch recipes/stage3.py): make the kit importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recipes.sft import main  # noqa: E402

if __name__ == "__main__":
    main("stage3")
