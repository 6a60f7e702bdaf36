"""`annotate --frame-captioner/--embedder MODULE:ATTRIBUTE`: a class, factory or instance is loaded; a bad path stops
the run at once (exit 2) with the fix; the option help says so."""

import pytest

from dataset_builder.__main__ import main, parser
from dataset_builder.frame_models import object_path_factory
from dataset_builder.world.perception import WorldFrameCaptioner, WorldFrameEmbedder

EMBEDDER = WorldFrameEmbedder()  # an instance, named below by its object path


def make_captioner() -> WorldFrameCaptioner:
    return WorldFrameCaptioner()


@pytest.mark.parametrize("attribute", ["WorldFrameCaptioner", "make_captioner"])
def test_a_class_or_a_factory_is_called(attribute):
    module = "dataset_builder.world.perception" if attribute == "WorldFrameCaptioner" else __name__
    model = object_path_factory(f"{module}:{attribute}", ("caption",))()
    assert isinstance(model, WorldFrameCaptioner) and model.name == "world-perception"


def test_an_instance_is_used_as_is_and_ids_and_paths_are_not_object_paths(tmp_path):
    assert object_path_factory(f"{__name__}:EMBEDDER", ("embed_images", "embed_texts"))() is EMBEDDER
    assert object_path_factory("google/siglip-so400m-patch14-384", ("caption",)) is None
    folder = tmp_path / "a:b"
    folder.mkdir()
    assert object_path_factory(str(folder), ("caption",)) is None


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--frame-captioner", "no_such_module:Thing", "Cannot import the frame model 'no_such_module:Thing'"),
        ("--frame-captioner", "dataset_builder.world.perception:Nope", "has no attribute 'Nope'"),
        ("--embedder", "dataset_builder.world.perception:WorldFrameCaptioner", "has no method(s) ['embed_images'"),
    ],
)
def test_bad_object_paths_stop_the_run_with_the_fix(tmp_path, capsys, monkeypatch, option, value, message):
    monkeypatch.setenv("OPENAI_API_KEY", "EMPTY")
    (tmp_path / "videos").mkdir()
    argv = ["annotate", "--videos", str(tmp_path / "videos"), "--out", str(tmp_path / "work"), option, value]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert message in error and "MODULE:ATTRIBUTE" in error


def test_help_documents_object_paths():
    annotate = parser()._subparsers._group_actions[0].choices["annotate"].format_help()
    assert "MODULE:ATTRIBUTE" in annotate and "dataset_builder.world.perception:WorldFrameEmbedder" in annotate
