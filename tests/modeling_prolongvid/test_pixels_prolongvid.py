"""Upstream's pixels on every path that feeds the model, bit for bit.

The reference below is written from upstream's code (LLaVA-NeXT `llava/mm_utils.py` `process_anyres_image`,
`resize_and_pad_image`, `select_best_resolution`, `divide_to_patches`, and
`llava/model/multimodal_encoder/siglip_encoder.py` `SigLipImageProcessor`) with PIL and numpy only: sizes are
`(width, height)` as PIL and upstream use them, every resize is `PIL.Image.BICUBIC`, rescaling multiplies a float64
array by 1/255 and casts to float32, normalisation is `(x - 0.5) / 0.5` in float32. Nothing of the kit is used.
"""

from __future__ import annotations

import math

import av
import numpy as np
import pytest
from PIL import Image

from modeling_prolongvid import ProLongVidImageProcessor, ProLongVidVideoProcessor

SIDE = 384
# upstream's anyres_max_9 grid: "(1x1),...,(6x6)" expanded to (i * 384, j * 384), read as (width, height)
UPSTREAM_PINPOINTS = [(i * SIDE, j * SIDE) for i in range(1, 7) for j in range(1, 7)]


def upstream_siglip(image: Image.Image, side: int = SIDE) -> np.ndarray:
    """`SigLipImageProcessor.preprocess` of one image: `(3, side, side)` float32."""
    resized = np.asarray(image.convert("RGB").resize((side, side), Image.Resampling.BICUBIC))
    scaled = (resized.astype(np.float64) * (1 / 255)).astype(np.float32)
    normalised = (scaled - np.float32(0.5)) / np.float32(0.5)
    return normalised.transpose(2, 0, 1)


def upstream_best_resolution(width: int, height: int) -> tuple[int, int]:
    best, best_effective, best_wasted = None, 0, math.inf
    for target_width, target_height in UPSTREAM_PINPOINTS:
        scale = min(target_width / width, target_height / height)
        effective = min(int(width * scale) * int(height * scale), width * height)
        wasted = target_width * target_height - effective
        if effective > best_effective or (effective == best_effective and wasted < best_wasted):
            best, best_effective, best_wasted = (target_width, target_height), effective, wasted
    return best


def upstream_anyres(image: Image.Image) -> np.ndarray:
    """`process_anyres_image`: the base image resized to 384x384, then the tiles of the padded best resolution."""
    width, height = image.size
    target_width, target_height = upstream_best_resolution(width, height)
    if target_width / width < target_height / height:
        new_width, new_height = target_width, min(math.ceil(height * target_width / width), target_height)
    else:
        new_width, new_height = min(math.ceil(width * target_height / height), target_width), target_height
    padded = Image.new("RGB", (target_width, target_height), (0, 0, 0))
    padded.paste(
        image.resize((new_width, new_height), Image.Resampling.BICUBIC),
        ((target_width - new_width) // 2, (target_height - new_height) // 2),
    )
    tiles = [
        padded.crop((left, top, left + SIDE, top + SIDE))
        for top in range(0, target_height, SIDE)
        for left in range(0, target_width, SIDE)
    ]
    return np.stack(
        [upstream_siglip(patch) for patch in [image.resize((SIDE, SIDE), Image.Resampling.BICUBIC), *tiles]]
    )


def upstream_video(frames: np.ndarray, side: int = SIDE) -> np.ndarray:
    """`SigLipImageProcessor.preprocess(video)` over decoded frames `(T, H, W, 3)`: `(T, 3, side, side)`."""
    return np.stack([upstream_siglip(Image.fromarray(frame), side) for frame in frames])


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients, hard edges and a noisy patch: every resampling difference shows somewhere."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    image = np.stack([127 + 120 * np.sin(x / (7 + 5 * c) + y / (11 + 3 * c)) for c in range(3)], axis=-1)
    image[height // 3 : height // 2, width // 4 : width // 2] = rng.integers(0, 256, (height // 2 - height // 3,
                                                                                      width // 2 - width // 4, 3))  # fmt: skip
    image[:, (2 * width) // 3 :: 9] = 255
    return image.clip(0, 255).astype(np.uint8)


def assert_bit_identical(actual, expected):
    actual = np.asarray(actual)
    assert actual.shape == expected.shape and actual.dtype == np.float32
    assert np.abs(actual - expected).max() == 0


# --- images -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("height", "width"),
    [(384, 384), (300, 500), (480, 640), (1080, 1920), (1920, 1080), (100, 1500), (2000, 3000)],
)
def test_image_pixels_equal_upstream_anyres_bit_for_bit(height, width):
    image = Image.fromarray(photo(height, width))
    out = ProLongVidImageProcessor()(image, return_tensors="np")
    expected = upstream_anyres(image)
    assert out["image_sizes"].tolist() == [[height, width]]
    assert_bit_identical(out["pixel_values"][0], expected)
    if (height, width) == (2000, 3000):
        assert len(expected) - 1 > 9  # the grid the model downscales (anyres_max_9)


def test_image_pixels_from_numpy_equal_those_from_pil():
    array = photo(300, 500)
    from_numpy = ProLongVidImageProcessor()(array, return_tensors="np")["pixel_values"]
    assert_bit_identical(from_numpy[0], upstream_anyres(Image.fromarray(array)))


# --- video frames -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(320, 240), (1280, 720), (1080, 1920), (384, 384)])
def test_video_pixels_equal_upstream_bit_for_bit_for_any_frame_size(width, height):
    frames = np.stack([photo(height, width, seed) for seed in range(2)])
    out = ProLongVidVideoProcessor()(frames, return_tensors="np")["pixel_values_videos"]
    assert_bit_identical(out[0], upstream_video(frames))


def write_video(path, width: int, height: int, num_frames: int = 6, fps: int = 10):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for index in range(num_frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(photo(height, width, index), format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("pixels")
    return {size: write_video(root / f"{size[0]}x{size[1]}.mp4", *size) for size in [(320, 240), (1280, 720)]}


def native_frames(path, num_frames: int) -> np.ndarray:
    """Decoded frames at their native size, as upstream's decord gives them, at upstream's linspace positions."""
    with av.open(str(path)) as container:
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    return frames[np.linspace(0, len(frames) - 1, num_frames, dtype=int)]


@pytest.mark.parametrize("kit", ["installed", "absent"])
@pytest.mark.parametrize("size", [(320, 240), (1280, 720)])
def test_a_video_given_by_path_gets_upstream_pixels(videos, size, kit, monkeypatch):
    """Decoded by the kit's reader and resized with PIL right after decoding, or (a Hub copy of the processor without
    the kit) decoded by transformers' PyAV loader and resized afterwards: the same pixels as PIL on the full-size
    frames either way."""
    from modeling_prolongvid import video_processing_prolongvid

    if kit == "absent":
        monkeypatch.setattr(video_processing_prolongvid, "_kit_reader", lambda: None)
    processor = ProLongVidVideoProcessor(num_frames=4)
    out = processor(str(videos[size]), return_tensors="np")["pixel_values_videos"]
    assert_bit_identical(out[0], upstream_video(native_frames(videos[size], 4)))


@pytest.mark.parametrize("size", [(320, 240), (1280, 720)])
def test_frames_of_load_video_and_of_the_training_decode_path_get_upstream_pixels(videos, size):
    from processing import load_video
    from processing.frame_cache import load_frames

    expected = upstream_video(native_frames(videos[size], 5))
    frames, _ = load_video(videos[size], num_frames=5, size=SIDE)
    assert_bit_identical(ProLongVidVideoProcessor()(frames, return_tensors="np")["pixel_values_videos"][0], expected)
    frames, _ = load_frames(videos[size], num_frames=5, size=SIDE)  # what the training collator calls
    assert_bit_identical(ProLongVidVideoProcessor()(frames, return_tensors="np")["pixel_values_videos"][0], expected)


def test_inference_feeds_the_model_upstream_pixels(videos, tiny_model_and_processor):
    from modeling_prolongvid.inference import build_messages, load_media, prepare_inputs

    model, processor = tiny_model_and_processor
    side = processor.video_processor.size["height"]
    media = load_media(videos[(1280, 720)], model, num_frames=3, max_new_tokens=4)
    batch = prepare_inputs(processor, build_messages("What?", "video"), media, model.device, model.dtype)
    expected = upstream_video(native_frames(videos[(1280, 720)], 3), side)
    assert_bit_identical(batch["pixel_values_videos"][0].numpy(), expected)
