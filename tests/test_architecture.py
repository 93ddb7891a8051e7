"""The dependency rule: only the UI (and app.py) load gradio; the engine and the UI's pure modules do not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def loads_gradio(*modules: str) -> bool:
    imports = "; ".join(f"import {m}" for m in modules)
    code = f"import sys; {imports}; print('gradio' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return result.stdout.strip() == "True"


@pytest.mark.parametrize(
    "modules",
    [
        ("playground.service",),
        ("playground.cli",),
        ("playground.ui.format", "playground.ui.forms", "playground.ui.board", "playground.ui.stream"),
    ],
)
def test_the_engine_does_not_load_gradio(modules):
    assert not loads_gradio(*modules)


def test_the_layout_does_load_gradio():
    assert loads_gradio("playground.ui.layout"), "the check above must be able to fail"
