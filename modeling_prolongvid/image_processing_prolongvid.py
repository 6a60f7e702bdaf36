"""Image processor of ProLongVid: LLaVA-OneVision's anyres tiling with SigLIP normalisation."""

from __future__ import annotations

from transformers.models.llava_onevision.image_processing_llava_onevision import LlavaOnevisionImageProcessor

from .video_processing_prolongvid import SIGLIP_MEAN, SIGLIP_STD


class ProLongVidImageProcessor(LlavaOnevisionImageProcessor):
    r"""
    [`LlavaOnevisionImageProcessor`] (anyres_max_9 tiling over 384 px grid pinpoints) with mean = std = 0.5, the
    normalisation the SigLIP tower was trained with. Output: `pixel_values (batch, patches, 3, 384, 384)` and
    `image_sizes (batch, 2)`.

    Example:

    ```python
    >>> import numpy as np
    >>> from modeling_prolongvid import ProLongVidImageProcessor
    >>> out = ProLongVidImageProcessor()(np.zeros((300, 500, 3), dtype=np.uint8), return_tensors="pt")
    >>> out["image_sizes"].tolist()
    [[300, 500]]

    ```
    """

    image_mean = SIGLIP_MEAN
    image_std = SIGLIP_STD


__all__ = ["ProLongVidImageProcessor"]
