"""`space/requirements.txt` (what a deployed Space installs) agrees with the kit's own runtime dependencies."""

from __future__ import annotations

from pathlib import Path

import tomllib
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
SPACE_ONLY = {"spaces"}  # ZeroGPU's decorator: only meaningful on a Hugging Face Space


def requirements(lines) -> dict[str, Requirement]:
    parsed = (Requirement(line) for line in lines if line.strip() and not line.lstrip().startswith("#"))
    return {requirement.name.lower(): requirement for requirement in parsed}


def test_space_requirements_are_the_kits_runtime_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    kit = requirements(project["dependencies"])
    space = requirements((REPO / "space" / "requirements.txt").read_text().splitlines())
    assert set(space) - SPACE_ONLY == set(kit), "space/requirements.txt and pyproject.toml list different packages"
    for name, requirement in kit.items():
        assert space[name].specifier == requirement.specifier, f"{name}: {space[name]} vs pyproject {requirement}"
        assert str(space[name].marker) == str(requirement.marker), f"{name}: platform markers differ"
