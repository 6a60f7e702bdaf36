"""GPT-4o sees a segment's 1-fps frames (paper Table 1), up to a cap; the dry run shows what the cap and detail cost."""

import math

import pytest

from dataset_builder.__main__ import main
from processing.synthetic import write_scene_video


def openai_image_tokens(width, height, detail):
    """OpenAI's published rule, written out here: low = 85; else fit in 2048, shortest side <= 768, 85 + 170 / tile."""
    if detail == "low":
        return 85
    scale = min(1.0, 2048 / max(width, height))
    width, height = width * scale, height * scale
    scale = min(1.0, 768 / min(width, height))
    return 85 + 170 * math.ceil(width * scale / 512) * math.ceil(height * scale / 512)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    write_scene_video(root / "long.mp4", [35, 35])  # 70 s: 7 fixed segments of 10 frames at 1 fps
    write_scene_video(root / "short.mp4", [4, 6], seed=1)  # 10 s: one caption from its 10 frames
    return root


def dry_run(videos, work, capsys, *extra):
    argv = ["annotate", "--videos", str(videos), "--out", str(work), "--segmentation", "fixed", "--dry-run",
            "--no-progress", *extra]  # fmt: skip
    assert main(argv) == 0
    table = {}
    for line in capsys.readouterr().out.splitlines():
        cells = line.split()
        if cells and cells[0] in ("segment_caption", "short_caption", "total"):
            table[cells[0]] = dict(
                zip(("calls", "cached", "failed", "frames", "prompt", "output"), map(int, cells[1:7]))
            )
            table[cells[0]]["cost"] = float(cells[7])
    return table


def test_captions_see_every_1fps_frame_by_default_and_the_dry_run_shows_the_cap_and_detail(videos, tmp_path, capsys):
    default = dry_run(videos, tmp_path / "a", capsys)
    assert default["segment_caption"]["frames"] == 70 and default["short_caption"]["frames"] == 10  # all, at 1 fps
    capped = dry_run(videos, tmp_path / "b", capsys, "--frames-per-segment", "4", "--frames-short-video", "3")
    assert capped["segment_caption"]["frames"] == 7 * 4 and capped["short_caption"]["frames"] == 3
    high = dry_run(videos, tmp_path / "c", capsys, "--image-detail", "high")
    per_frame = {detail: openai_image_tokens(64, 64, detail) for detail in ("low", "high")}  # 64x64 test videos
    assert per_frame == {"low": 85, "high": 255}
    for stage, frames in (("segment_caption", 70), ("short_caption", 10)):
        # The prompt text names the frame count: a character or two of text per request besides the frames.
        fewer = default[stage]["prompt"] - capped[stage]["prompt"]
        assert abs(fewer - (frames - capped[stage]["frames"]) * 85) <= default[stage]["calls"]
        assert high[stage]["prompt"] - default[stage]["prompt"] == frames * (255 - 85)
    assert high["total"]["cost"] > default["total"]["cost"] > capped["total"]["cost"]
