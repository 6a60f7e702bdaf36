"""Upstream's pixels for every reader: each decoded frame is turned the way a player shows it, then resized with PIL.

Upstream ProLongVid (LLaVA-NeXT's ``SigLipImageProcessor``) resizes every decoded RGB frame with
``PIL.Image.resize(..., BICUBIC)`` straight to 384x384. Any other resampler (swscale inside the decoder,
torchvision's antialiased bicubic) is 1-7 grey levels off, so the readers decode at the native size and resize each
frame with PIL right after it is decoded: the model sees upstream's pixels, and only resized frames are ever kept.

Phone videos are usually stored sideways with a display matrix (rotation side data) saying how to show them; players
apply it, so the readers do too (:func:`orientation_from_display_matrix`), before resizing.

Example:
    >>> import numpy as np
    >>> frame = np.zeros((720, 1280, 3), np.uint8)
    >>> display_frame(frame, None, (384, 384)).shape
    (384, 384, 3)
    >>> display_frame(frame, orientation_from_display_matrix([0, -65536, 0, 65536, 0, 0, 0, 0, 1 << 30]), None).shape
    (1280, 720, 3)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

RESAMPLE = Image.Resampling.BICUBIC

# (transposed, flip rows, flip columns) -> the PIL transpose that maps coded pixels to displayed ones
_ORIENTATIONS = {
    (False, False, False): None,
    (False, False, True): Image.Transpose.FLIP_LEFT_RIGHT,
    (False, True, False): Image.Transpose.FLIP_TOP_BOTTOM,
    (False, True, True): Image.Transpose.ROTATE_180,
    (True, False, False): Image.Transpose.TRANSPOSE,
    (True, True, False): Image.Transpose.ROTATE_90,
    (True, False, True): Image.Transpose.ROTATE_270,
    (True, True, True): Image.Transpose.TRANSVERSE,
}


def orientation_from_display_matrix(matrix: Sequence[int] | None) -> Image.Transpose | None:
    """The PIL transpose that shows coded frames the way a player does, from FFmpeg's 3x3 display matrix.

    ``matrix`` holds the nine int32 values of ``AV_FRAME_DATA_DISPLAYMATRIX`` (16.16 fixed point, row-major);
    displayed coordinates are ``x' = a x + c y``, ``y' = b x + d y`` with ``a, b, c, d = matrix[0, 1, 3, 4]``. Phone
    rotations are multiples of 90 degrees, possibly mirrored; any other angle is rounded to the nearest of those.
    Returns ``None`` when the frames are shown as coded.
    """
    if matrix is None:
        return None
    a, b, c, d = (float(matrix[i]) for i in (0, 1, 3, 4))
    transposed = abs(b) + abs(c) > abs(a) + abs(d)
    if transposed:  # source columns become displayed rows (sign of b), source rows displayed columns (sign of c)
        return _ORIENTATIONS[(True, b < 0, c < 0)]
    return _ORIENTATIONS[(False, d < 0, a < 0)]


def to_display(frame: np.ndarray, orientation: Image.Transpose | None) -> Image.Image:
    """A coded RGB frame ``(H, W, 3)`` uint8 as a PIL image turned the way a player shows it."""
    image = Image.fromarray(frame)
    return image if orientation is None else image.transpose(orientation)


def resize_image(image: Image.Image, size: tuple[int, int] | None) -> Image.Image:
    """``image`` resized to ``size = (height, width)`` with PIL bicubic (no-op at its own size or for ``None``)."""
    if size is None or (size[1], size[0]) == image.size:
        return image
    return image.resize((size[1], size[0]), RESAMPLE)


def display_frame(frame: np.ndarray, orientation: Image.Transpose | None, size: tuple[int, int] | None) -> np.ndarray:
    """A coded RGB frame ``(H, W, 3)`` uint8 turned by ``orientation`` and, when ``size = (height, width)`` is given,
    resized with PIL bicubic, as upstream resizes. Returns ``(height, width, 3)`` uint8."""
    return np.asarray(resize_image(to_display(frame, orientation), size))


FrameSink = Callable[[int, Image.Image], None]
"""Receives each decoded frame: ``sink(slot, image)``, ``slot`` indexing the requested positions, ``image`` RGB at its
native size, turned as displayed. A backend that falls back to another may hand a slot over twice: sinks overwrite."""


class FrameArray:
    """The usual :data:`FrameSink`: resizes each frame with PIL into ``frames``, uint8 ``(count, height, width, 3)``.

    >>> sink = FrameArray(2, (24, 32))
    >>> sink(1, Image.new("RGB", (64, 48), "white"))
    >>> sink.frames.shape, int(sink.frames[1].min())
    ((2, 24, 32, 3), 255)
    """

    def __init__(self, count: int, size: tuple[int, int]):
        self.size = size
        self.frames = np.empty((count, size[0], size[1], 3), dtype=np.uint8)

    def __call__(self, slot: int, image: Image.Image) -> None:
        self.frames[slot] = np.asarray(resize_image(image, self.size))


__all__ = [
    "RESAMPLE",
    "FrameArray",
    "FrameSink",
    "display_frame",
    "orientation_from_display_matrix",
    "resize_image",
    "to_display",
]
