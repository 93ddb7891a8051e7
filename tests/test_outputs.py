"""A run's files: results found by provider and model without the store; one zip of originals and the run."""

from __future__ import annotations

import json
import zipfile

from playground.outputs import BUNDLE_JSON, kept_results, result_file, write_bundle


def test_results_are_found_by_provider_and_model_whatever_their_format(tmp_path):
    result_file(tmp_path, "kie", "flux-kontext-pro", "jpg").write_bytes(b"jpeg bytes")
    result_file(tmp_path, "bfl", "flux-kontext-max", "png").write_bytes(b"png bytes")
    (tmp_path / "kie-flux-kontext-pro.jpg.part").write_bytes(b"half")
    keys = [("kie", "flux-kontext-pro"), ("bfl", "flux-kontext-max"), ("fal", "flux-kontext-pro")]
    found = kept_results(tmp_path, keys)
    assert {key: path.name for key, path in found.items()} == {
        ("kie", "flux-kontext-pro"): "kie-flux-kontext-pro.jpg",
        ("bfl", "flux-kontext-max"): "bfl-flux-kontext-max.png",
    }
    assert kept_results(tmp_path / "missing", keys) == {}


def test_the_bundle_holds_the_original_bytes_and_the_run_as_json(tmp_path):
    original = result_file(tmp_path, "kie", "flux-kontext-pro", "jpg")
    original.write_bytes(b"\xff\xd8 the provider's own bytes")
    target = write_bundle(tmp_path / "all.zip", {"kie-pro.jpg": original}, {"run_id": "r1", "jobs": [{"a": 1}]})
    with zipfile.ZipFile(target) as bundle:
        assert sorted(bundle.namelist()) == sorted([BUNDLE_JSON, "kie-pro.jpg"])
        assert bundle.read("kie-pro.jpg") == original.read_bytes()
        assert json.loads(bundle.read(BUNDLE_JSON)) == {"run_id": "r1", "jobs": [{"a": 1}]}
    assert not list(tmp_path.glob("*.part"))
