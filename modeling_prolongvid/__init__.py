"""ProLongVid for 🤗 transformers.

Importing this package registers every class with transformers' Auto API, so that

```python
import modeling_prolongvid  # noqa: F401  (registers the Auto classes)
from transformers import AutoModelForImageTextToText, AutoProcessor

model = AutoModelForImageTextToText.from_pretrained("path/to/ProLongVid-7B-hf")
processor = AutoProcessor.from_pretrained("path/to/ProLongVid-7B-hf")
```

works like any native model; `save_pretrained` also writes the code files and `auto_map`, so a Hub copy loads with
`trust_remote_code=True` where this package is not installed.
"""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoVideoProcessor,
)

from .configuration_prolongvid import ProLongVidConfig
from .image_processing_prolongvid import ProLongVidImageProcessor
from .modeling_prolongvid import ProLongVidForConditionalGeneration, ProLongVidModel
from .processing_prolongvid import ProLongVidProcessor
from .video_processing_prolongvid import ProLongVidVideoProcessor

AutoConfig.register(ProLongVidConfig.model_type, ProLongVidConfig, exist_ok=True)
AutoModel.register(ProLongVidConfig, ProLongVidModel, exist_ok=True)
AutoModelForImageTextToText.register(ProLongVidConfig, ProLongVidForConditionalGeneration, exist_ok=True)
AutoImageProcessor.register(
    ProLongVidConfig, image_processor_classes={"torchvision": ProLongVidImageProcessor}, exist_ok=True
)
AutoVideoProcessor.register(ProLongVidConfig, ProLongVidVideoProcessor, exist_ok=True)
AutoProcessor.register(ProLongVidConfig, ProLongVidProcessor, exist_ok=True)

ProLongVidConfig.register_for_auto_class()
ProLongVidModel.register_for_auto_class("AutoModel")
ProLongVidForConditionalGeneration.register_for_auto_class("AutoModelForImageTextToText")
ProLongVidImageProcessor.register_for_auto_class("AutoImageProcessor")
ProLongVidVideoProcessor.register_for_auto_class("AutoVideoProcessor")
ProLongVidProcessor.register_for_auto_class("AutoProcessor")

__all__ = [
    "ProLongVidConfig",
    "ProLongVidForConditionalGeneration",
    "ProLongVidImageProcessor",
    "ProLongVidModel",
    "ProLongVidProcessor",
    "ProLongVidVideoProcessor",
]
