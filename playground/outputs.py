"""A run's files on disk: each result named by its provider and model, and one zip of them all to download.

A run keeps its results in ``<out_dir>/<run_id>/``, one ``<provider>-<model>.<ext>`` per job (the provider's
own bytes), so the page can find a run's pictures without asking the history store.
"""

from __future__ import annotations

import json
import os
import threading
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

RESULT_EXTENSIONS = ("jpg", "png", "webp", "gif")
BUNDLE_JSON = "run.json"


def result_file(run_dir: Path, provider: str, model: str, ext: str) -> Path:
    """Where one job's result is kept."""
    return run_dir / f"{provider}-{model}.{ext}"


def kept_results(run_dir: Path, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Path]:
    """The results found for these (provider, model) jobs, by job; one directory read, no image opened."""
    try:
        names = {entry.name for entry in os.scandir(run_dir) if entry.is_file()}
    except OSError:
        return {}
    found = {}
    for provider, model in keys:
        candidates = (result_file(run_dir, provider, model, ext) for ext in RESULT_EXTENSIONS)
        hit = next((path for path in candidates if path.name in names), None)
        if hit is not None:
            found[(provider, model)] = hit
    return found


def write_bundle(target: Path, files: Mapping[str, Path], run: Mapping[str, Any]) -> Path:
    """A zip of the results (original bytes, under ``files``' names) and ``run`` as run.json; written atomically.

    Images are stored, not recompressed: JPEG and PNG are compressed already.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}-{threading.get_ident()}.part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as bundle:
        for name, path in files.items():
            if path.is_file():
                bundle.write(path, arcname=name)
        bundle.writestr(BUNDLE_JSON, json.dumps(run, indent=2, ensure_ascii=False, default=str))
    os.replace(tmp, target)
    return target
