"""The dependency rules: only the UI (and app.py) load gradio; adapters stand alone; the sandbox imports no adapter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def loaded_after(name: str, groups: list[tuple[str, ...]]) -> list[bool]:
    """In one fresh interpreter, import each group of modules in turn; after each, whether ``name`` is loaded.

    Once a group has loaded it, every later answer is True too: the first True names the group that did.
    """
    code = (
        "import importlib, sys\n"
        f"for group in {groups!r}:\n"
        "    for module in group:\n"
        "        importlib.import_module(module)\n"
        f"    print({name!r} in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return [line == "True" for line in result.stdout.split()]


def loads_gradio(*modules: str) -> bool:
    return loaded_after("gradio", [modules]) == [True]


ENGINE_GROUPS = [
    ("playground.service",),
    ("playground.cli",),
    ("playground.ui.format", "playground.ui.forms", "playground.ui.board", "playground.ui.stream"),
    ("playground.ui.grid", "playground.ui.live", "playground.ui.history_list", "playground.ui.uploads"),
    ("playground.jobstate", "playground.derived", "playground.outputs"),
]


def test_the_engine_does_not_load_gradio():
    answers = loaded_after("gradio", ENGINE_GROUPS)
    assert len(answers) == len(ENGINE_GROUPS)
    culprit = next((group for group, loaded in zip(ENGINE_GROUPS, answers, strict=True) if loaded), None)
    assert culprit is None, f"importing {culprit} loads gradio"


def test_the_check_sees_what_a_module_loads_on_the_way():
    # The check above must be able to fail: what a module imports is seen, and only from its group on.
    assert loaded_after("PIL", [("playground.errors",), ("playground.images",), ("json",)]) == [False, True, True]


def playground_imports(path: Path) -> set[str]:
    """Every playground module ``path`` imports, at any depth of the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("playground"):
            found |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("playground")}
    return found


PROVIDERS = ROOT / "playground" / "providers"
ADAPTERS = sorted(p for p in PROVIDERS.glob("*.py") if p.stem not in ("__init__", "base"))


@pytest.mark.parametrize("module", ADAPTERS, ids=lambda p: p.stem)
def test_an_adapter_depends_on_no_other_adapter(module):
    # The seam: adding or changing one provider touches its own module and one registry line, nothing else.
    others = {f"playground.providers.{p.stem}" for p in ADAPTERS if p != module}
    assert not playground_imports(module) & others


@pytest.mark.parametrize("module", sorted((ROOT / "playground" / "sandbox").glob("*.py")), ids=lambda p: p.stem)
def test_the_sandbox_speaks_the_documents_not_the_adapters(module):
    # Written from the docs: a sandbox that borrowed an adapter's code would agree with the adapter's mistakes.
    # server.py may read the registry for each provider's env names; nothing may import an adapter module.
    adapters = {f"playground.providers.{p.stem}" for p in ADAPTERS}
    assert not playground_imports(module) & adapters


def test_the_import_check_sees_an_adapter_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from playground.providers.kie import kie_signature\n")
    assert "playground.providers.kie" in playground_imports(sample), "the checks above must be able to fail"


def test_a_playground_on_sqlite_does_not_import_psycopg():
    # psycopg takes a third of a second to import; only a shared history (PLAYGROUND_DATABASE_URL) uses it.
    assert loaded_after("psycopg", [("playground.cli", "playground.composition", "playground.history")]) == [False]
    assert loaded_after("psycopg", [("playground.history",), ("playground.replicas",)]) == [False, True]
