"""The delta sweep of dataset_builder/README.md: its benchmark runs, and the doc's claims hold on fresh videos."""

from pathlib import Path

import pytest

from benchmarks.segmentation_threshold import boundary_f1, make_videos, stand_in_regimes, sweep

README = Path(__file__).resolve().parents[2] / "dataset_builder" / "README.md"


def test_boundary_f1_counts_each_cut_once_within_the_tolerance():
    assert boundary_f1([10.0, 30.0], [10.5, 30.0]) == 1.0
    assert boundary_f1([10.0, 10.4], [10.0]) == pytest.approx(2 / 3)  # the second boundary has no cut left
    assert boundary_f1([12.0], [10.0]) == 0.0 and boundary_f1([], []) == 1.0


def test_the_default_delta_recovers_the_cuts_and_a_small_one_shatters_siglip_scale_features(tmp_path):
    results = sweep(make_videos(tmp_path, count=2, seed=3), stand_in_regimes(), thresholds=(0.3, 0.7))
    assert results["aligned"]["rows"][0.7] == (1.0, 1.0) and results["siglip-like"]["rows"][0.7][1] >= 0.8
    segments_per_scene, f1 = results["siglip-like"]["rows"][0.3]
    assert segments_per_scene > 3 and f1 < 0.5, "below the within-scene distance floor every frame is its own cluster"
    floor = results["siglip-like"]["within"]
    assert 0.3 < floor < 0.7 and results["aligned"]["within"] < 0.1  # (1 - cosine 0.15) / 2 = 0.425


def test_the_readme_has_the_sweep_table_and_names_only_existing_files():
    text = README.read_text()
    assert "| 0.7 (default) |" in text and "python benchmarks/segmentation_threshold.py" in text
    for path in ("benchmarks/segmentation_threshold.py", "processing/synthetic.py", "dataset_builder/segmentation.py"):
        assert path in text and (README.parents[1] / path).exists()
