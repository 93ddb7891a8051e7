"""What hosting needs from the settings and the repository: Space front matter, the public address, the URLs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from playground.errors import ConfigError
from playground.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def front_matter() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    match = re.match(r"---\n(.*?)\n---\n", text, flags=re.DOTALL)
    assert match, "README.md must start with the Space's front matter"
    pairs = (line.split(":", 1) for line in match.group(1).splitlines() if ":" in line)
    return {key.strip(): value.strip().strip('"') for key, value in pairs}


def test_the_readme_front_matter_makes_a_gradio_space_on_the_pinned_gradio():
    meta = front_matter()
    pinned = re.search(r"^gradio==(\S+)$", (ROOT / "requirements.txt").read_text(), flags=re.MULTILINE)
    assert pinned is not None
    assert (meta["sdk"], meta["sdk_version"], meta["app_file"]) == ("gradio", pinned.group(1), "app.py")
    assert meta["python_version"] == "3.11" and (ROOT / meta["app_file"]).is_file()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SPACE_HOST": "someone-playground.hf.space"}, "https://someone-playground.hf.space"),
        ({"SPACE_HOST": "someone-playground.hf.space,playground.example.org"}, "https://someone-playground.hf.space"),
        ({"SPACE_HOST": "a.hf.space", "PUBLIC_BASE_URL": "https://mine.example"}, "https://mine.example"),
        ({}, None),
    ],
)
def test_on_a_space_the_public_address_comes_from_its_host_unless_one_is_set(env, expected):
    assert Settings.from_env(env).public_base_url == expected


def test_the_database_url_must_be_postgresql_and_its_password_is_never_repeated():
    assert (
        Settings.from_env({"PLAYGROUND_DATABASE_URL": "postgresql://u:pw@db/x"}).database_url
        == "postgresql://u:pw@db/x"
    )
    with pytest.raises(ConfigError, match="must start with postgresql://") as refused:
        Settings.from_env({"PLAYGROUND_DATABASE_URL": "mysql://u:hunter2@db/x"})
    assert "hunter2" not in str(refused.value)


def test_the_lease_is_a_positive_number_of_seconds():
    assert Settings.from_env({"PLAYGROUND_LEASE_S": "2.5"}).lease_s == 2.5
    with pytest.raises(ConfigError, match="PLAYGROUND_LEASE_S must be a positive number"):
        Settings.from_env({"PLAYGROUND_LEASE_S": "0"})


def test_with_nothing_set_the_app_keeps_sqlite_and_a_local_folder(tmp_path):
    from playground.composition import build_service
    from playground.history import SqliteHistory
    from playground.storage import LocalStorage

    service = build_service(Settings(data_dir=tmp_path / "data", out_dir=tmp_path / "out"))
    assert isinstance(service.history, SqliteHistory) and service.history.path == tmp_path / "data" / "history.sqlite3"
    assert isinstance(service.storage, LocalStorage) and service.storage.root == tmp_path / "out"
    assert service.relay is None, "no replica machinery for a single process"
    service.history.close()
