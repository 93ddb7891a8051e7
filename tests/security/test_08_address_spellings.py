"""Finding 8: the private-URL check read only the literal host: 2130706433, 127.1, 0x7f000001 and names that
resolve to loopback passed it and were handed to the provider."""

from __future__ import annotations

import socket

import pytest

from playground.cli import main
from playground.providers import REGISTRY
from playground.settings import Settings
from tests.security.conftest import last, updates
from tests.ui.conftest import form

SPELLINGS = [
    "2130706433",  # 127.0.0.1 as one decimal number
    "127.1",
    "0x7f000001",
    "0177.0.0.1",  # octal
    "127.0.0.1.",  # a trailing dot
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "0.0.0.0",
    "169.254.169.254",  # cloud metadata
    "[fd00:ec2::254]",  # AWS metadata over IPv6
    "100.100.100.200",  # shared address space (Alibaba metadata)
    "10.1.2.3",
    "LOCALHOST",
    "api.localhost",
]
NAMES = {"loopback.test": "127.0.0.1", "metadata.test": "169.254.169.254", "intranet.test": "192.168.1.20"}


@pytest.fixture
def names_resolve_privately(monkeypatch):
    """Names that resolve to private addresses, as a DNS entry (or a rebinding server) would make them."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kw):
        if host in NAMES:
            return real(NAMES[host], *args, **kw)
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def hosted_settings(tmp_path) -> Settings:
    """A real provider setup whose hosts are elsewhere (.test never resolves: nothing can be sent by mistake)."""
    spec = REGISTRY["kie"]
    return Settings(
        values={spec.base_url_env: "https://api.provider.test"},
        secrets={spec.key_env: "k"},
        data_dir=tmp_path / "data",
        out_dir=tmp_path / "out",
    )


@pytest.mark.parametrize("host", [*SPELLINGS, *NAMES])
def test_an_input_url_on_a_private_address_in_any_spelling_is_not_handed_to_a_provider(
    host, tmp_path, capsys, names_resolve_privately
):
    args = ["generate", "--provider", "kie", "--prompt", "edit", "--image", f"http://{host}:8080/cat.png"]
    code = main(args, settings=hosted_settings(tmp_path))
    out, err = capsys.readouterr()
    assert "points at a private or local address" in out + err, out + err
    assert "could not be reached" not in out + err, "it was sent"
    assert code in (1, 2)  # refused at planning (a literal) or just before the create (a name): nothing sent


@pytest.mark.parametrize("host", ["0x7f000001", "loopback.test"])
def test_a_stranger_on_the_shared_sandbox_page_gets_none_of_them_used_either(host, shared_app, names_resolve_privately):
    sent_before = shared_app.sandbox.state.count("kie", "create")
    url = f"http://{host}:9/cat.png"
    outputs, runs = updates(shared_app.url, form("edit it", ["kie"], image=None, image_url=url), "/edit")
    assert "private or local address" in last(outputs, runs, "status kie flux-kontext-pro")
    assert shared_app.sandbox.state.count("kie", "create") == sent_before
