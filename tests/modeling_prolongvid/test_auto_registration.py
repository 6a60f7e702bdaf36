"""Round trips through the registered Auto classes and through Hub-style remote code without the kit."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import torch
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoVideoProcessor,
)

from modeling_prolongvid import (
    ProLongVidConfig,
    ProLongVidForConditionalGeneration,
    ProLongVidImageProcessor,
    ProLongVidModel,
    ProLongVidProcessor,
    ProLongVidVideoProcessor,
)


def test_registered_auto_classes_round_trip(tiny_checkpoint, tmp_path, random_frames):
    assert isinstance(AutoConfig.from_pretrained(tiny_checkpoint), ProLongVidConfig)
    assert isinstance(AutoModel.from_pretrained(tiny_checkpoint), ProLongVidModel)
    assert isinstance(AutoImageProcessor.from_pretrained(tiny_checkpoint), ProLongVidImageProcessor)
    assert isinstance(AutoVideoProcessor.from_pretrained(tiny_checkpoint), ProLongVidVideoProcessor)
    model = AutoModelForImageTextToText.from_pretrained(tiny_checkpoint)
    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    assert isinstance(model, ProLongVidForConditionalGeneration) and isinstance(processor, ProLongVidProcessor)

    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    reloaded = AutoModelForImageTextToText.from_pretrained(tmp_path)
    for (name, a), b in zip(model.state_dict().items(), reloaded.state_dict().values()):
        assert torch.equal(a, b), name
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModelForImageTextToText"] == "modeling_prolongvid.ProLongVidForConditionalGeneration"
    assert auto_map["AutoModel"] == "modeling_prolongvid.ProLongVidModel"
    assert (tmp_path / "video_processing_prolongvid.py").exists() and (tmp_path / "frame_sampling.py").exists()


REMOTE_CODE_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, sys

    class HideKit(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("modeling_prolongvid", "processing", "dataset_builder", "recipes"):
                raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)")
            return None

    sys.meta_path.insert(0, HideKit())
    import numpy as np, torch
    from transformers import AutoModel, AutoModelForImageTextToText, AutoProcessor

    repo = sys.argv[1]
    model = AutoModelForImageTextToText.from_pretrained(repo, trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(repo, trust_remote_code=True)
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    inner = AutoModel.from_pretrained(repo, trust_remote_code=True)
    assert type(inner).__name__ == "ProLongVidModel" and type(inner).__module__.startswith("transformers_modules")
    full_inner = model.model.state_dict()
    assert sorted(inner.state_dict()) == sorted(full_inner), "AutoModel and the full model's inner model differ"
    for name, weight in inner.state_dict().items():
        assert torch.equal(weight, full_inner[name]), name
    assert type(processor.video_processor).__module__.startswith("transformers_modules")
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What?"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    frames = np.random.default_rng(0).integers(0, 256, (3, 32, 40, 3), dtype=np.uint8)
    batch = processor(text=prompt, videos=[frames], return_tensors="pt")
    with torch.no_grad():
        print("LOGITS", model(**batch).logits[0, -1, :5].tolist())
    """
)


def test_trust_remote_code_loads_without_the_kit(tiny_checkpoint, tmp_path, random_frames):
    repo = tmp_path / "hub-copy"
    shutil.copytree(tiny_checkpoint, repo)
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_CODE_SCRIPT, str(repo)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    remote_logits = json.loads(result.stdout.split("LOGITS", 1)[1].strip())

    model = AutoModelForImageTextToText.from_pretrained(tiny_checkpoint).eval()
    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What?"}]}]
    frames = np.random.default_rng(0).integers(0, 256, (3, 32, 40, 3), dtype=np.uint8)
    batch = processor(text=processor.apply_chat_template(messages, add_generation_prompt=True), videos=[frames],
                      return_tensors="pt")  # fmt: skip
    with torch.no_grad():
        local_logits = model(**batch).logits[0, -1, :5].tolist()
    assert torch.allclose(torch.tensor(remote_logits), torch.tensor(local_logits), atol=1e-5)
