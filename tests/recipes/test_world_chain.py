"""The world chain's own pieces: the from-scratch checkpoint, the frame-caption rows and clips, the model card."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recipes.world.card import write_card
from recipes.world.frames import brief_event_frames, frame_rows, write_clip
from recipes.world.init import InitConfig, build_world_checkpoint, dataset_texts, load_init_config
from recipes.world.table4 import difference_reading


def _world_dataset(folder):
    """A dataset dir with world-like training rows (the words the tokenizer must learn)."""
    from datasets import Dataset

    from dataset_builder.schemas import TRAINING_FEATURES

    rows = []
    for index, colour in enumerate(["navy", "olive", "maroon", "teal"] * 5):
        rows.append(
            {
                "video_id": f"v{index}",
                "video": f"videos/v{index}.mp4",
                "source": "world",
                "duration": 30.0,
                "messages": [
                    {"role": "user", "content": [{"type": "video", "text": None},
                                                 {"type": "text", "text": "What colour is the background?"}]},
                    {"role": "assistant", "content": [{"type": "text", "text": f"The background is {colour}."}]},
                ],
            }
        )  # fmt: skip
    (folder / "stage1").mkdir(parents=True)
    Dataset.from_list(rows, features=TRAINING_FEATURES).to_parquet(str(folder / "stage1" / "train-0.parquet"))
    return folder


def test_init_builds_the_yaml_sized_model_with_a_world_tokenizer(tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    import modeling_prolongvid  # noqa: F401

    config = load_init_config("recipes/world/init.yaml")
    dataset = _world_dataset(tmp_path / "data")
    assert "The background is navy." in dataset_texts(dataset)
    out = build_world_checkpoint(config, dataset, tmp_path / "init")
    model = AutoModelForImageTextToText.from_pretrained(out)
    processor = AutoProcessor.from_pretrained(out)
    assert model.config.text_config.hidden_size == config.text["hidden_size"]
    assert model.config.vision_config.patch_size == config.vision["patch_size"]
    assert model.config.pooled_grid_size == config.prolongvid["pooled_grid_size"]
    # trained on the world's text: its words are few tokens, unlike bytes
    assert len(processor.tokenizer.tokenize(" background")) == 1
    assert len(processor.tokenizer.tokenize("The background is navy.")) <= 6
    assert json.loads((out / "prolongvid_stage.json").read_text())["stage"] == "world_init"


def test_init_config_rejects_unknown_fields(tmp_path):
    path = tmp_path / "init.yaml"
    path.write_text("vision: {}\nhidden: 3\n")
    with pytest.raises(ValueError, match="unknown fields \\['hidden'\\]"):
        load_init_config(path)
    with pytest.raises(ValueError, match="vocab_size"):
        InitConfig(vocab_size=10)


def test_frame_rows_and_one_frame_clips(tmp_path):
    from processing import load_video

    frames = np.random.default_rng(0).integers(0, 255, (5, 64, 64, 3), dtype=np.uint8)
    times = np.arange(5.0)
    rows = frame_rows("PMV/a", frames, times, [f"caption {i}" for i in range(5)], per_video=3)
    assert [row["frame"] for row in rows] == [0, 2, 4]
    assert [row["messages"][1]["content"][0]["text"] for row in rows] == ["caption 0", "caption 2", "caption 4"]
    assert all("/" not in row["video"].split("clips/")[1] for row in rows)
    write_clip(tmp_path / rows[1]["video"], frames[2])
    decoded, _ = load_video(tmp_path / rows[1]["video"], num_frames=1)
    assert np.abs(decoded[0].astype(int) - frames[2].astype(int)).max() <= 3  # lossless 4:4:4 up to YUV rounding


def test_brief_events_are_the_flashes_not_scene_cuts_or_objects():
    """The image stage adds each video's brief events to its evenly spread frames: in rendered world videos they are
    the flash's frames (from the ground truth), never a frame without one."""
    from dataset_builder.world.render import render_frame
    from dataset_builder.world.timeline import sample_timeline

    for band, seed in (("long", 0), ("long", 1), ("medium", 2)):
        timeline = sample_timeline(seed, band)
        frames = np.stack([render_frame(timeline.state_at(float(t))) for t in range(round(timeline.duration))])
        (flash,) = timeline.flashes
        picked = brief_event_frames(frames)
        assert len(picked) == 2 and all(flash.start <= t < flash.end for t in picked), (band, seed, picked)
    rows = frame_rows("v", frames, np.arange(len(frames), dtype=float), [""] * len(frames), 3, picked)
    assert sorted(row["frame"] for row in rows) == sorted({0, round((len(frames) - 1) / 2), len(frames) - 1, *picked})


def test_the_mixed_baseline_lists_each_split_as_often_as_its_stage_trains_on_it():
    """Table 4 at equal compute: the mixed run sees every stage's rows as many times (epochs) and at the same frames."""
    import yaml

    from recipes.world.reproduce import RECIPES

    mixed = yaml.safe_load((RECIPES / "mixed.yaml").read_text())
    assert mixed["num_train_epochs"] == 1
    for stage in ("stage1", "stage2", "stage3"):
        config = yaml.safe_load((RECIPES / f"{stage}.yaml").read_text())
        assert mixed["dataset_configs"].count(config["dataset_config"]) == config["num_train_epochs"], stage
        assert f"{config['dataset_config']}={config['num_frames']}" in mixed["subset_num_frames"], stage


def _result(accuracy, long_accuracy, needle):
    return {
        "metrics": {
            "questions": 10,
            "accuracy": accuracy,
            "by_duration": {
                "short": {"accuracy": 90.0},
                "medium": {"accuracy": 80.0},
                "long": {"accuracy": long_accuracy},
            },
            "by_category": {"attribute": {"accuracy": 70.0}, "needle": {"accuracy": needle}},
        }
    }


def test_card_states_the_evaluated_figures(tmp_path):
    for stage, frames, result in (("stage1", 192, _result(40.0, 30.0, 20.0)), ("stage3", 192, _result(85.5, 77.0, 90.0)),
                                  ("stage3", 256, _result(83.0, 75.0, 88.0))):  # fmt: skip
        folder = tmp_path / "eval" / stage
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"results-world-{frames}f-uniform-k.json").write_text(json.dumps(result))
    likelihood = {**_result(61.5, 44.0, 30.0), "protocol": {"scoring": "likelihood"}}
    (tmp_path / "eval" / "stage3" / "results-world-192f-uniform-likelihood-k.json").write_text(json.dumps(likelihood))
    (tmp_path / "benchmark").mkdir()
    videos = ["world-short-1000000", "world-short-1000001", "world-long-1000000"]
    (tmp_path / "benchmark" / "timelines.jsonl").write_text(
        "".join(json.dumps({"video_id": v}) + "\n" for v in videos)
    )
    (tmp_path / "stage3").mkdir()
    (tmp_path / "stage3" / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "stage3" / "trainer_state.json").write_text(json.dumps({"log_history": [{"step": 10, "loss": 2.0}]}))
    history = [{"stage": "world_init", "started_from": str(tmp_path / "dataset")},
               {"stage": "stage3", "started_from": str(tmp_path / "stage2"), "num_frames": 192}]  # fmt: skip
    (tmp_path / "stage3" / "prolongvid_stage.json").write_text(json.dumps({"stage": "stage3", "history": history}))
    card = write_card(tmp_path)
    text = card.read_text()
    assert "**85.5%**" in text and "| stage3 | 256 | 83.0 |" in text and "30.0% vs 77.0%" in text
    stated = json.loads((tmp_path / "model" / "results.json").read_text())
    assert stated["accuracy"] == 85.5 and stated["by_category"]["needle"] == 90.0
    assert stated["benchmark_videos"] == {"short": 2, "medium": 0, "long": 1}
    # the likelihood-scored run is stated on its own, never mixed into the generated figures
    assert stated["likelihood"]["accuracy"] == 61.5 and stated["likelihood"]["by_duration"]["long"] == 44.0
    assert stated["all_runs"]["stage3"] == {"192": 85.5, "256": 83.0}
    assert "**61.5%**" in text and "The whole chain took" not in text
    # the chain's time, once stated, survives a card rewritten after a resumed run
    assert "The whole chain took 32 minutes." in write_card(tmp_path, minutes=32.4).read_text()
    assert "The whole chain took 32 minutes." in write_card(tmp_path).read_text()
    assert (tmp_path / "model" / "model.safetensors").read_bytes() == b"weights"
    # the shipped stage record names the run's layout, not this machine's paths
    shipped = json.loads((tmp_path / "model" / "prolongvid_stage.json").read_text())
    assert shipped["history"] == [{"stage": "world_init", "started_from": "dataset"},
                                  {"stage": "stage3", "started_from": "stage2", "num_frames": 192}]  # fmt: skip
    assert str(tmp_path) not in (tmp_path / "model" / "prolongvid_stage.json").read_text()
    assert (tmp_path / "model" / "learning_curve.png").stat().st_size > 1000


def test_card_compares_progressive_and_mixed_over_seeds(tmp_path):
    # seed 0 is the chain's own run (eval/stage3, eval/mixed); seeds 1 and 2 come from `reproduce --seeds 1 2`
    scores = {0: ((60.0, 40.0), (50.0, 30.0)), 1: ((70.0, 50.0), (52.0, 34.0)), 2: ((65.0, 45.0), (48.0, 26.0))}
    for seed, ((progressive, progressive_long), (mixed, mixed_long)) in scores.items():
        base = tmp_path / "eval" / (f"seed-{seed}" if seed else "")
        for name, result in (("stage3", _result(progressive, progressive_long, 0.0)),
                             ("mixed", _result(mixed, mixed_long, 0.0))):  # fmt: skip
            (base / name).mkdir(parents=True, exist_ok=True)
            (base / name / "results-world-192f-uniform-k.json").write_text(json.dumps(result))
            if seed < 2:  # likelihood-scored for seeds 0 and 1 only: 10 points above the generated figures
                scored = {**_result(progressive + 10 if name == "stage3" else mixed + 10, 0.0, 0.0),
                          "protocol": {"scoring": "likelihood"}}  # fmt: skip
                (base / name / "results-world-192f-uniform-likelihood-k.json").write_text(json.dumps(scored))
    (tmp_path / "benchmark").mkdir()
    (tmp_path / "benchmark" / "timelines.jsonl").write_text(json.dumps({"video_id": "world-long-1000000"}) + "\n")
    (tmp_path / "stage3").mkdir()

    text = write_card(tmp_path).read_text()
    by_likelihood = json.loads((tmp_path / "model" / "results.json").read_text())["comparison_likelihood"]
    assert by_likelihood["seeds"] == [0, 1] and by_likelihood["progressive"]["overall"] == [70.0, 80.0]
    assert by_likelihood["mixed"]["overall_mean"] == 61.0
    comparison = json.loads((tmp_path / "model" / "results.json").read_text())["comparison"]
    assert comparison["seeds"] == [0, 1, 2]
    assert comparison["progressive"]["overall"] == [60.0, 70.0, 65.0]
    assert comparison["mixed"]["long"] == [30.0, 34.0, 26.0]
    # mean and sample standard deviation, by hand: progressive 65 +- 5, mixed 50 +- 2; long 45 +- 5 and 30 +- 4
    assert comparison["progressive"]["overall_mean"] == 65.0 and comparison["progressive"]["overall_std"] == 5.0
    assert comparison["mixed"]["overall_mean"] == 50.0 and comparison["mixed"]["overall_std"] == 2.0
    assert comparison["mixed"]["long_mean"] == 30.0 and comparison["mixed"]["long_std"] == 4.0
    assert "3 seed(s): 0, 1, 2" in text
    assert "This card's checkpoint and its tables above are seed 0's stage 3." in text
    assert "| progressive | generated reply | 65.0 ± 5.0 | 45.0 ± 5.0 | 60.0, 70.0, 65.0 (0, 1, 2) |" in text
    assert "| mixed | generated reply | 50.0 ± 2.0 | 30.0 ± 4.0 | 50.0, 52.0, 48.0 (0, 1, 2) |" in text
    assert "| mixed | option likelihood | 61.0 ± 1.4 | 0.0 ± 0.0 | 60.0, 62.0 (0, 1) |" in text
    # 65 - 50 = +15 beyond both spreads (5, 2); by likelihood 75 - 61 = +14 beyond sqrt(50) = 7.1 and sqrt(2) = 1.4
    assert "- Generated reply: +15.0 points (spreads 5.0 and 2.0): larger than the spread." in text
    assert "- Option likelihood: +14.0 points (spreads 7.1 and 1.4): larger than the spread." in text


def test_a_difference_inside_the_seeds_spread_is_not_called_one():
    def figures(progressive, mixed, seeds=(0, 1, 2)):
        return {"seeds": list(seeds), "progressive": {"overall_mean": progressive[0], "overall_std": progressive[1]},
                "mixed": {"overall_mean": mixed[0], "overall_std": mixed[1]}}  # fmt: skip

    # 48 - 51 = -3, smaller than the larger spread (6): no difference; 48 - 58 = -10 is beyond 6
    assert difference_reading(figures((48.0, 6.0), (51.0, 1.5))) == (
        "-3.0 points (spreads 6.0 and 1.5): within the spread, no difference at 3 seeds."
    )
    assert difference_reading(figures((48.0, 6.0), (58.0, 1.5))).endswith(": larger than the spread.")
    assert difference_reading(figures((48.0, None), (58.0, None), seeds=(0,))) is None


def test_card_without_a_mixed_baseline_has_no_comparison(tmp_path):
    folder = tmp_path / "eval" / "stage3"
    folder.mkdir(parents=True)
    (folder / "results-world-192f-uniform-k.json").write_text(json.dumps(_result(60.0, 40.0, 0.0)))
    (tmp_path / "benchmark").mkdir()
    (tmp_path / "benchmark" / "timelines.jsonl").write_text(json.dumps({"video_id": "world-long-1000000"}) + "\n")
    (tmp_path / "stage3").mkdir()
    text = write_card(tmp_path).read_text()
    assert json.loads((tmp_path / "model" / "results.json").read_text())["comparison"] is None
    assert "Table 4" not in text


def test_reproduce_refuses_the_chains_own_seed_among_seeds(tmp_path):
    from recipes.world.reproduce import main

    with pytest.raises(SystemExit, match="repeats the chain's own --seed 0"):
        main(["--out", str(tmp_path), "--seeds", "0", "1"])


def test_perception_check_scores_each_field_against_the_rendered_truth():
    from recipes.world.perception_check import check_perception, sample_states

    states = sample_states(60, seed=1)
    objects = [state.appearance for state in states if state.appearance is not None]
    replies = iter(
        # right background; the object named with its colour but the wrong shape; every fifth reply unreadable
        "so it goes" if index % 5 == 0 else (
            f"A {state.appearance.colour} {'circle' if state.appearance.shape != 'circle' else 'square'} on "
            f"{'an' if state.background == 'olive' else 'a'} {state.background} background."
            if state.appearance else f"An empty {state.background} background."
        )
        for index, state in enumerate(states)
    )  # fmt: skip
    report = check_perception(lambda frame: next(replies), num_frames=60, seed=1)
    readable = [state for index, state in enumerate(states) if index % 5]
    readable_objects = [state for state in readable if state.appearance is not None]
    assert report["object_frames"] == len(objects) and report["unreadable"] == 12
    assert report["accuracy"]["background"] == round(len(readable) / 60, 4)
    assert report["accuracy"]["colour"] == round(len(readable_objects) / len(objects), 4)
    assert report["accuracy"]["shape"] == 0.0


def test_card_states_the_image_stages_perception(tmp_path):
    (tmp_path / "eval" / "stage3").mkdir(parents=True)
    (tmp_path / "eval" / "stage3" / "results-world-192f-uniform-k.json").write_text(json.dumps(_result(50, 40, 30)))
    (tmp_path / "benchmark").mkdir()
    (tmp_path / "benchmark" / "timelines.jsonl").write_text(json.dumps({"video_id": "world-short-1000000"}) + "\n")
    (tmp_path / "stage3").mkdir()
    (tmp_path / "frames_stage").mkdir()
    report = {"model": "/home/someone/runs/world/frames_stage", "examples": [],
              "frames": 120, "object_frames": 79, "unreadable": 0,
              "accuracy": {"background": 1.0, "object": 0.9917, "colour": 0.962, "shape": 0.3418}}  # fmt: skip
    (tmp_path / "frames_stage" / "perception.json").write_text(json.dumps(report))
    text = write_card(tmp_path).read_text()
    assert "background 100% (chance 17%), object present or not 99%" in text
    assert "of the 79 objects the colour 96% (chance 20%) and the shape 34% (chance 33%)" in text
    stated = json.loads((tmp_path / "model" / "results.json").read_text())["perception"]
    assert stated["accuracy"]["shape"] == 0.3418
    assert "model" not in stated and "examples" not in stated, "the shipped results name a path of another machine"
