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

The package itself stays light, as transformers' `_LazyModule`: the classes are imported on first use, and the Auto
registration runs at once when transformers is already imported, otherwise as soon as it is. So
`python -m modeling_prolongvid.infer --help` answers without loading torch or transformers.

    >>> import modeling_prolongvid
    >>> modeling_prolongvid.ProLongVidConfig.model_type
    'prolongvid'
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import TYPE_CHECKING

_CLASSES = {
    "ProLongVidConfig": "configuration_prolongvid",
    "ProLongVidImageProcessor": "image_processing_prolongvid",
    "ProLongVidModel": "modeling_prolongvid",
    "ProLongVidForConditionalGeneration": "modeling_prolongvid",
    "ProLongVidProcessor": "processing_prolongvid",
    "ProLongVidVideoProcessor": "video_processing_prolongvid",
}
__all__ = [
    "ProLongVidConfig",
    "ProLongVidForConditionalGeneration",
    "ProLongVidImageProcessor",
    "ProLongVidModel",
    "ProLongVidProcessor",
    "ProLongVidVideoProcessor",
    "register_auto_classes",
]

if TYPE_CHECKING:
    from .configuration_prolongvid import ProLongVidConfig
    from .image_processing_prolongvid import ProLongVidImageProcessor
    from .modeling_prolongvid import ProLongVidForConditionalGeneration, ProLongVidModel
    from .processing_prolongvid import ProLongVidProcessor
    from .video_processing_prolongvid import ProLongVidVideoProcessor

_registered = False


def register_auto_classes() -> None:
    """Register the six ProLongVid classes with transformers' Auto API (idempotent)."""
    global _registered
    if _registered:
        return
    _registered = True
    for finder in [finder for finder in sys.meta_path if isinstance(finder, _RegisterWhenReady)]:
        sys.meta_path.remove(finder)
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
        ProLongVidConfig, image_processor_classes={"pil": ProLongVidImageProcessor}, exist_ok=True
    )
    AutoVideoProcessor.register(ProLongVidConfig, ProLongVidVideoProcessor, exist_ok=True)
    AutoProcessor.register(ProLongVidConfig, ProLongVidProcessor, exist_ok=True)

    ProLongVidConfig.register_for_auto_class()
    ProLongVidModel.register_for_auto_class("AutoModel")
    ProLongVidForConditionalGeneration.register_for_auto_class("AutoModelForImageTextToText")
    ProLongVidImageProcessor.register_for_auto_class("AutoImageProcessor")
    ProLongVidVideoProcessor.register_for_auto_class("AutoVideoProcessor")
    ProLongVidProcessor.register_for_auto_class("AutoProcessor")


def __getattr__(name: str):
    if name not in _CLASSES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    register_auto_classes()
    value = getattr(importlib.import_module(f".{_CLASSES[name]}", __name__), name)
    globals()[name] = value
    return value


def _initializing(name: str) -> bool:
    module = sys.modules.get(name)
    return module is not None and getattr(module.__spec__, "_initializing", False)


def _register_when_ready(executed: str) -> None:
    """Register once transformers is imported and none of this package's modules is half-imported (a submodule
    imported directly, e.g. `from modeling_prolongvid.configuration_prolongvid import ...`, imports transformers).
    `executed` names the module whose code has just run (its import is still marked as in progress)."""
    if (
        _registered
        or "transformers" not in sys.modules
        or executed != "transformers"
        and _initializing("transformers")
    ):
        return
    ours = [name for name in list(sys.modules) if name.startswith(f"{__name__}.") and name != executed]
    if not any(_initializing(name) for name in ours):
        register_auto_classes()


class _ThenRegister(importlib.abc.Loader):
    """Executes a module with its own loader, then registers ProLongVid if that made the registration possible."""

    def __init__(self, loader: importlib.abc.Loader):
        self.loader = loader

    def __getattr__(self, name: str):  # get_code, get_source, ... (runpy and inspect use them)
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__spec__.loader = module.__loader__ = self.loader  # as if this wrapper had never been there
        self.loader.exec_module(module)
        _register_when_ready(module.__name__)


class _RegisterWhenReady(importlib.abc.MetaPathFinder):
    """Watches the imports of `transformers` and of this package's modules (found by the other finders) until
    ProLongVid is registered; then it leaves `sys.meta_path`."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "transformers" and not fullname.startswith(f"{__name__}."):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _ThenRegister(spec.loader)
                return spec
        return None


if "transformers" in sys.modules:
    register_auto_classes()
elif not any(isinstance(finder, _RegisterWhenReady) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWhenReady())
