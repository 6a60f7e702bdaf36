"""The Space's deploy command (space/README.md) copies every module of `space/` that `app.py` imports: a Space
missing one fails at startup with ModuleNotFoundError, which no local run shows (the modules are beside app.py)."""

from __future__ import annotations

import ast
import doctest
import importlib.util
import re
from pathlib import Path

SPACE_DIR = Path(__file__).resolve().parents[2] / "space"


def sibling_imports(path: Path) -> set[str]:
    """Names of the modules in `path`'s folder that `path` imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {name for name in names if (path.parent / f"{name}.py").is_file()}


def test_the_deploy_command_copies_every_module_the_app_imports():
    readme = (SPACE_DIR / "README.md").read_text()
    command = re.search(r"^cp -r (.*?)/tmp/prolongvid-space/$", readme.replace("\\\n", " "), re.MULTILINE)
    assert command, "space/README.md has no `cp -r ... /tmp/prolongvid-space/` deploy command"
    copied = set(command.group(1).split())
    needed = sibling_imports(SPACE_DIR / "app.py")
    assert {"conversation", "uploads"} <= needed  # the check sees the app's own modules
    assert {f"space/{name}.py" for name in needed} <= copied, sorted(needed)


def test_conversation_docstring_example_runs():
    spec = importlib.util.spec_from_file_location("prolongvid_space_conversation", SPACE_DIR / "conversation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert doctest.testmod(module).failed == 0
