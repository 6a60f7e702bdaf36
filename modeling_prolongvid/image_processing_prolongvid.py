"""Image processor of ProLongVid: LLaVA-OneVision's anyres tiling on PIL, with SigLIP normalisation."""

from __future__ import annotations

from transformers.models.llava_onevision.image_processing_pil_llava_onevision import LlavaOnevisionImageProcessorPil

from .video_processing_prolongvid import SIGLIP_MEAN, SIGLIP_STD


class ProLongVidImageProcessor(LlavaOnevisionImageProcessorPil):
    r"""
    [`LlavaOnevisionImageProcessorPil`] (anyres_max_9 tiling over 384 px grid pinpoints) with mean = std = 0.5, the
    normalisation the SigLIP tower was trained with. It runs on PIL, as upstream's `process_anyres_image` and
    `SigLipImageProcessor` do: the base image and every tile are resized with `PIL.Image.BICUBIC` (no antialiasing
    filter other than PIL's own), rescaled by 1/255 in float64 and normalised in float32, so `pixel_values` equal
    upstream's bit for bit. Output: `pixel_values (batch, patches, 3, 384, 384)` and `image_sizes (batch, 2)`.

    Example:

    ```python
    >>> import numpy as np
    >>> from modeling_prolongvid import ProLongVidImageProcessor
    >>> out = ProLongVidImageProcessor()(np.zeros((300, 500, 3), dtype=np.uint8), return_tensors="pt")
    >>> out["image_sizes"].tolist(), tuple(out["pixel_values"].shape)
    ([[300, 500]], (1, 3, 3, 384, 384))

    ```
    """

    image_mean = SIGLIP_MEAN
    image_std = SIGLIP_STD


__all__ = ["ProLongVidImageProcessor"]
