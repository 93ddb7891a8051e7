"""Gradio starts without rewriting its own type stubs.

Whenever Gradio is imported, it re-derives the ``.pyi`` stub of each of its ~80 component classes. For every
one, it parses the class's source file and its stub, and rewrites the stub in site-packages if they differ
(``gradio.component_meta.create_or_modify_pyi``; Gradio 6.31, pinned). That is for component authors' editors;
the wheel already ships the stubs. It is about a third of ``import gradio`` here (2 of 5.7 s on 2 cores), paid
by every start of the app and of every test process that opens a page. A read-only install skips the write
anyway.

``skip_stub_rewrites()`` must run before gradio is first imported (``playground/ui/__init__.py`` calls it). It
replaces that one function as its module loads, and does nothing if Gradio is already loaded or has renamed it.
No gradio import here.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

TARGET = "gradio.component_meta"
PATCHED = "create_or_modify_pyi"


def skip_stub_rewrites() -> None:
    """Make Gradio's import skip its stub rewrites (once, before gradio loads)."""
    if "gradio" in sys.modules or any(isinstance(finder, _StubSkipper) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, _StubSkipper())


def _leave_stubs_alone(*_args: Any, **_kwargs: Any) -> None:
    return None


class _StubSkipper(importlib.abc.MetaPathFinder):
    """Finds gradio.component_meta as the normal path finder would, and patches it right after it executes."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != TARGET:
            return None
        sys.meta_path.remove(self)  # one module, once
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        loader = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            if callable(getattr(module, PATCHED, None)):
                setattr(module, PATCHED, _leave_stubs_alone)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec
