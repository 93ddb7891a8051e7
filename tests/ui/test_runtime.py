"""Starting the page: when the sandbox is used, whose keys a shared page spends, the browser secret."""

from __future__ import annotations

import stat

import pytest
from pydantic import SecretStr

from playground.errors import ConfigError
from playground.service import GenerationService
from playground.settings import Settings
from playground.ui.handlers import Handlers, UiOptions
from playground.ui.runtime import may_spend_server_keys, needs_sandbox, parse_auth, share_failed_note
from playground.ui.secret import browser_secret


@pytest.mark.parametrize(
    ("settings", "asked", "expected"),
    [
        (Settings(), False, True),  # no key at all: the sandbox, so a newcomer still gets images
        (Settings(secrets={"KIE_API_KEY": SecretStr("k")}), False, False),
        (Settings(secrets={"KIE_API_KEY": SecretStr("k")}), True, True),
        (Settings(secrets={"KIE_API_KEY": SecretStr("k")}, sandbox=True), False, True),
    ],
)
def test_the_sandbox_runs_when_asked_or_when_no_key_is_configured(settings, asked, expected):
    assert needs_sandbox(settings, asked=asked) is expected


@pytest.mark.parametrize(
    ("share", "auth", "env", "expected"),
    [
        (False, None, {}, True),
        (True, None, {}, False),
        (True, None, {"PLAYGROUND_SHARE_SERVER_KEYS": "1"}, True),
        (True, ("u", "p"), {}, True),
    ],
)
def test_strangers_on_a_share_link_spend_server_keys_only_when_allowed(share, auth, env, expected):
    assert may_spend_server_keys(share=share, auth=auth, environ=env) is expected


def test_auth_is_user_colon_password():
    assert parse_auth({"PLAYGROUND_AUTH": "ada:s3cret:with:colons"}) == ("ada", "s3cret:with:colons")
    assert parse_auth({}) is None
    with pytest.raises(ConfigError, match="user:password"):
        parse_auth({"PLAYGROUND_AUTH": "no-colon"})


def test_the_browser_secret_comes_from_the_environment_or_a_private_file_that_stays(tmp_path):
    assert browser_secret(tmp_path, {"PLAYGROUND_BROWSER_SECRET": " fixed "}) == "fixed"
    first = browser_secret(tmp_path / "data", {})
    assert len(first) >= 32 and browser_secret(tmp_path / "data", {}) == first
    assert stat.S_IMODE((tmp_path / "data" / "browser-secret").stat().st_mode) == 0o600


def test_a_failed_share_link_says_the_app_keeps_serving_locally():
    assert "keeps serving locally at http://127.0.0.1:7860/" in share_failed_note("http://127.0.0.1:7860/")


def test_a_shared_page_lists_only_the_providers_a_visitor_brought_a_key_for():
    service = GenerationService(Settings(secrets={"KIE_API_KEY": SecretStr("server-key")}))
    shared = Handlers(service, UiOptions(sandbox=False, server_keys=False))
    assert shared.usable({}) == []
    assert shared.usable({"FAL_KEY": SecretStr("mine")}) == ["fal"]
    assert "does not spend the server's keys" in shared.banner()
    assert Handlers(service, UiOptions(sandbox=False)).usable({}) == ["kie"]


def test_a_page_on_a_hugging_face_space_is_public_like_a_share_link(tmp_path):
    from playground.ui.runtime import build_page

    keyed = Settings(secrets={"KIE_API_KEY": SecretStr("k")}, data_dir=tmp_path)
    on_space = {"SPACE_ID": "someone/playground", "PLAYGROUND_BROWSER_SECRET": "s"}
    page = build_page(GenerationService(keyed), share=False, environ=on_space)
    assert (page.handlers.options.shared, page.handlers.options.server_keys) == (True, False)


def test_the_pages_load_answer_leaves_the_ticks_alone_unless_they_must_change():
    service = GenerationService(Settings(secrets={"KIE_API_KEY": SecretStr("k"), "FAL_KEY": SecretStr("f")}))
    handlers = Handlers(service, UiOptions(sandbox=False))
    # What the page had ticked when it loaded is still usable: the answer must not set the ticks, or it would
    # undo what the visitor clicked while it was on its way.
    text, edit = handlers.choices({}, ["kie"], ["fal"])
    assert "value" not in text and "value" not in edit
    assert {"kie", "fal"} <= {name for _, name in text["choices"]}
    # A ticked provider that is no longer offered: the ticks are corrected.
    text, _ = handlers.choices({}, ["kie", "gone"], ["fal"])
    assert text["value"] == ["kie"]
