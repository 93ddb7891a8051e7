"""Finding 6: BFL's key went to foreign hosts: polling_url was not held to BFL's origin, and httpx strips only
Authorization (not x-key) on a cross-origin redirect."""

from __future__ import annotations

import pytest

from playground.cli import main
from playground.providers import REGISTRY
from playground.sandbox.server import base_urls
from playground.settings import Settings
from tests.security.conftest import Front

KEYS = {spec.key_env: f"canary-{name}-key-4e8d1b" for name, spec in REGISTRY.items()}


def settings_for(front_url: str, tmp_path) -> Settings:
    """Real-keys settings (not sandbox mode) with every provider behind ``front_url``."""
    return Settings(
        values=base_urls(front_url),
        secrets=KEYS,
        data_dir=tmp_path / "data",
        out_dir=tmp_path / "out",
        poll_interval_s=0.05,
        job_timeout_s=5,
    )


def test_a_polling_url_on_a_foreign_host_is_not_followed(sandbox, listener, tmp_path, capsys):
    def foreign_polling_url(request, body):
        if request.method == "POST" and "polling_url" in body:
            body["polling_url"] = f"{listener.url}/v1/get_result?id={body['id']}"  # BFL's answer, tampered
        return body

    with Front(sandbox.url, rewrite=foreign_polling_url) as front:
        code = main(["generate", "--provider", "bfl", "--prompt", "a fox"], settings=settings_for(front.url, tmp_path))
    assert code == 0, capsys.readouterr()
    assert listener.seen == [], "the x-key went to a host that is not BFL's"
    assert sandbox.state.count("bfl", "status") >= 1, "the status was read under the configured base URL instead"


@pytest.mark.parametrize("provider", list(REGISTRY))
def test_no_key_follows_a_redirect_to_another_origin(provider, sandbox, listener, tmp_path, capsys):
    args = ["generate", "--provider", provider, "--prompt", "a fox"]
    if not REGISTRY[provider].capabilities.text_to_image:  # edits only: give it an input
        args += ["--image", f"{sandbox.url}/files/{sandbox.state.add_file(b'x', 'image/png')}"]

    def status_reads_elsewhere(request):
        return f"{listener.url}{request.url.path}?{request.url.query}" if request.method == "GET" else None

    with Front(sandbox.url, redirect=status_reads_elsewhere) as front:
        main(args, settings=settings_for(front.url, tmp_path))
    capsys.readouterr()
    assert listener.seen, "the redirect was not followed, so this test proves nothing"
    key = KEYS[REGISTRY[provider].key_env]
    assert all(key not in value for headers in listener.headers_seen() for value in headers.values())
