"""Every command's `--help` answers at once: it shows defaults and loads neither torch nor transformers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HELP_PROBE = """
import json, runpy, sys
sys.argv = [{module!r}, *{args!r}, "--help"]
try:
    runpy.run_module({module!r}, run_name="__main__", alter_sys=True)
except SystemExit as exit:
    code = exit.code
print(json.dumps({{"code": code, "heavy": sorted({{"torch", "transformers"}} & set(sys.modules))}}))
"""
# (module, sub-command, whether it has options with defaults to show)
COMMANDS = [
    ("modeling_prolongvid.infer", [], True),
    ("dataset_builder", [], False),
    ("dataset_builder", ["annotate"], True),
    ("dataset_builder", ["build"], False),
    ("dataset_builder", ["import"], True),
    ("evaluation", ["run"], True),
    ("evaluation", ["report"], False),
    ("modeling_prolongvid.convert_prolongvid_weights_to_hf", [], True),
]


@pytest.mark.parametrize(("module", "args", "has_defaults"), COMMANDS, ids=[" ".join([m, *a]) for m, a, _ in COMMANDS])
def test_help_is_light_and_shows_defaults(module, args, has_defaults):
    result = subprocess.run(
        [sys.executable, "-c", HELP_PROBE.format(module=module, args=args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    *help_lines, probe = result.stdout.strip().splitlines()
    outcome = json.loads(probe)
    assert outcome["code"] in (0, None), result.stderr
    assert outcome["heavy"] == [], f"`{module} {' '.join(args)} --help` imported {outcome['heavy']}"
    assert help_lines and help_lines[0].startswith("usage:")
    if has_defaults:
        assert "default" in "\n".join(help_lines).lower()
