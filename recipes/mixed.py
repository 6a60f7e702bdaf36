"""Mixed single-stage baseline (paper Table 4): all three video subsets in one run, for ablation.

```bash
accelerate launch --config_file recipes/accelerate_configs/zero3.yaml recipes/mixed.py --config recipes/prolongvid-7b/mixed.yaml
```
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # started as a file (accelerate launch recipes/mixed.py): make the kit importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recipes.sft import main  # noqa: E402

if __name__ == "__main__":
    main("mixed")
