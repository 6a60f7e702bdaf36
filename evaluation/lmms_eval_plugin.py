"""The kit's entry in lmms-eval's model registry (entry-point group ``lmms_eval.models``, lmms-eval 0.7.x).

pyproject.toml declares ``prolongvid = "evaluation.lmms_eval_plugin:manifest"`` under
``[project.entry-points."lmms_eval.models"]``; lmms-eval calls it while building its registry, so

    lmms-eval --model prolongvid --model_args pretrained=path/to/ckpt,num_frames=32 --tasks videomme

runs the kit's model (:class:`evaluation.lmms_eval_model.ProLongVidLmmsEval`) with no fork of lmms-eval.
"""

from __future__ import annotations

MODEL_ID = "prolongvid"
MODEL_CLASS_PATH = "evaluation.lmms_eval_model.ProLongVidLmmsEval"


def manifest():
    """lmms-eval's ``ModelManifest`` for the ``prolongvid`` model (a simple, ``generate_until`` model)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_ID, simple_class_path=MODEL_CLASS_PATH)


__all__ = ["MODEL_CLASS_PATH", "MODEL_ID", "manifest"]
