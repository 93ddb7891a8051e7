"""Settings from the environment, and the .env.example that documents every variable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from playground.errors import ConfigError
from playground.providers import REGISTRY
from playground.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def documented() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))


def test_env_example_documents_every_provider_variable_with_a_comment():
    names = documented()
    for spec in REGISTRY.values():
        for name in (spec.key_env, spec.base_url_env, *spec.extra_env):
            assert name in names, f"{name} ({spec.label}) is missing from .env.example"
    lines = (ROOT / ".env.example").read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[A-Z][A-Z0-9_]+=", line):
            assert lines[i - 1].startswith("#"), f"{line} has no comment above it"


def test_env_example_documents_every_playground_variable_the_code_reads():
    code = "\n".join(p.read_text() for p in (ROOT / "playground").rglob("*.py")) + (ROOT / "app.py").read_text()
    read = set(re.findall(r'"((?:PLAYGROUND|SANDBOX|GRADIO_SERVER)_[A-Z_]+|PUBLIC_BASE_URL)"', code))
    constants = {name for name in read if re.search(rf"^\s*{name}\s*[:=]", code, flags=re.MULTILINE)}
    assert read - constants - documented() == set()


def test_keys_are_secret_and_blank_values_count_as_unset():
    settings = Settings.from_env({"KIE_API_KEY": "sk-live-123", "FAL_KEY": "  ", "KIE_BASE_URL": "http://127.0.0.1:9"})
    assert settings.secret("KIE_API_KEY").get_secret_value() == "sk-live-123"
    assert settings.secret("FAL_KEY") is None
    assert "sk-live-123" not in repr(settings) and "sk-live-123" not in str(settings.model_dump())
    assert settings.value("KIE_BASE_URL", "x") == "http://127.0.0.1:9"


def test_a_bad_number_names_the_variable():
    with pytest.raises(ConfigError, match="PLAYGROUND_JOB_TIMEOUT_S is 'soon'"):
        Settings.from_env({"PLAYGROUND_JOB_TIMEOUT_S": "soon"})
