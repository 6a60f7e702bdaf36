"""The README's commands and snippet stay true: CI runs its test command, and its snippet runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_readme_opens_with_demo_and_test_commands():
    first_lines = "\n".join(README.splitlines()[:12])
    demo, tests = code_blocks("bash")[:2]
    assert demo in first_lines and tests in first_lines
    assert "space/app.py" in demo
    assert tests.strip() in (ROOT / ".ci" / "run").read_text(), ".ci/run must run the README's test command"


DOCUMENTS = [
    "README.md",
    "space/README.md",
    "dataset_builder/README.md",
    ".ci/run",
    ".ci/setup.sh",
    ".ci/install_browser.sh",
]
TOP_LEVEL = r"(?:modeling_prolongvid|processing|recipes|dataset_builder|space|tests|benchmarks|evaluation)"


@pytest.mark.parametrize("document", DOCUMENTS)
def test_files_named_in_the_docs_exist(document):
    text = (ROOT / document).read_text()
    named = set(re.findall(rf"`({TOP_LEVEL}/[\w./-]*)`", text))
    named |= set(re.findall(rf"(?<![\w/.]){TOP_LEVEL}/[\w/-]+\.(?:py|yaml|json|sh|md|txt)\b", text))
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert not missing, f"{document} names files that do not exist: {missing}"


def test_readme_inference_snippet_runs(tiny_checkpoint, make_video, tmp_path, monkeypatch):
    snippet = next(block for block in code_blocks("python") if "generate" in block)
    assert len(snippet.strip().splitlines()) < 15
    make_video("clip.mp4", num_frames=20)
    monkeypatch.chdir(tmp_path)
    space_default = re.search(r'^DEFAULT_MODEL_ID = "(.+)"$', (ROOT / "space" / "app.py").read_text(), re.M)[1]
    assert f'"{space_default}"' in snippet, "the README snippet and the Space load different default models"
    snippet = snippet.replace(f'"{space_default}"', repr(str(tiny_checkpoint))).replace(
        "max_new_tokens=256", "max_new_tokens=4"
    )
    namespace = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    assert namespace["frames"].shape[0] == 128
    assert namespace["output"].shape[1] > namespace["inputs"]["input_ids"].shape[1]
