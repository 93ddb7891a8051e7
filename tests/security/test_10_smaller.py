"""Finding 10, the smaller ones: a decompression bomb, bad --timeout and SANDBOX_* values, the sandbox command's
missing KIE_UPLOAD_BASE_URL, hosted inputs only in memory, 0.0.0.0 spending the server's keys, a proxy error on
create said to maybe have created the job. (A closed tab's jobs: test_10_closed_tab.py.)"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator

import pytest
from gradio_client import handle_file

from playground.cli import main
from playground.hosting import HOSTED_DIR, DiskInputStore, Hosted, InputHost
from playground.providers import REGISTRY
from playground.settings import Settings
from tests.conftest import TEST_KEY, png_bytes
from tests.security.conftest import ROOT, free_port, last, updates
from tests.ui.conftest import form

# --- a decompression bomb ------------------------------------------------------------------------------------------


def bomb_png(side: int = 20_000) -> bytes:
    """A real 20000x20000 black PNG (1 bit a pixel): a few kilobytes on disk, 400 megapixels once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + side // 8)
    packer = zlib.compressobj(9)
    pixels = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_one_sentence_from_the_cli_and_from_the_page(settings, sandbox, tmp_path, capsys):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png())
    code = main(["generate", "--provider", "runflow", "--prompt", "edit", "--image", str(bomb)], settings=settings)
    err = capsys.readouterr().err
    assert code == 2 and "bomb.png is too large in pixels" in err and "Traceback" not in err, err
    assert sandbox.state.count() == 0


def test_a_decompression_bomb_uploaded_to_the_page_is_one_sentence(shared_app, tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png())
    outputs, runs = updates(shared_app.url, form("edit it", ["runflow"], image=handle_file(str(bomb))), "/edit")
    assert "is too large in pixels" in last(outputs, runs, "message")


# --- values refused before anything is sent ------------------------------------------------------------------------


@pytest.mark.parametrize("timeout", ["-5", "0", "nan", "soon"])
def test_a_bad_timeout_is_refused_before_anything_is_sent(timeout, settings, sandbox, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["generate", "--provider", "kie", "--prompt", "a fox", "--timeout", timeout], settings=settings)
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "argument --timeout" in err and "nothing was sent" in err, err
    assert err.count("\n") == 1, "one sentence, no usage block"
    assert sandbox.state.count() == 0


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("SANDBOX_FAULTS", "garbage", "is not provider:stage=fault"),
        ("SANDBOX_FAULTS", "kie:create=999", "create takes one of: 401, 429, 500"),
        ("SANDBOX_FAULTS", "nobody:create=500", "names no provider"),
        ("SANDBOX_FAULTS", "kie:create=500*0", "use 1 to"),
        ("SANDBOX_JOB_SECONDS", "abc", "is not a number of seconds"),
        ("SANDBOX_JOB_SECONDS", "-1", "must be between 0 and"),
    ],
)
def test_bad_sandbox_settings_are_one_sentence_for_the_cli_and_for_the_app(
    name, value, said, monkeypatch, capsys, tmp_path
):
    import app

    monkeypatch.setenv(name, value)
    assert main(["sandbox", "--port", "0"]) == 2
    assert said in capsys.readouterr().err
    monkeypatch.setattr(app, "load_dotenv", lambda: None)  # never the developer's .env in a test
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(SystemExit) as stopped:
        app.main(["--sandbox"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and said in err and "Traceback" not in err, err


# --- the sandbox command names every host to point at it -----------------------------------------------------------


def test_the_sandbox_command_prints_every_base_url_a_provider_needs_and_a_kie_upload_then_stays_local(tmp_path, capsys):
    command = [sys.executable, "-m", "playground", "sandbox", "--port", str(free_port())]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline() for _ in range(2)]
        while "non-blank key" not in lines[-1]:
            lines.append(server.stdout.readline())
        printed = dict(line.strip().split("=", 1) for line in lines if "_BASE_URL=" in line)
        needed = {env for spec in REGISTRY.values() for env in spec.env_names if env.endswith("_BASE_URL")}
        assert needed <= set(printed), needed - set(printed)
        assert "KIE_UPLOAD_BASE_URL" in printed
        env = printed | {"KIE_API_KEY": "k", "PLAYGROUND_DATA_DIR": str(tmp_path / "data")}
        image = tmp_path / "cat.png"
        image.write_bytes(png_bytes())
        args = ["generate", "--provider", "kie", "--prompt", "edit", "--image", str(image), "--out", str(tmp_path)]
        assert main(args, settings=Settings.from_env(env)) == 0, capsys.readouterr()
    finally:
        server.terminate()
        server.wait(timeout=10)


# --- hosted inputs on disk: kept across a restart, capped, expiring ------------------------------------------------


def test_a_hosted_input_survives_a_restart_of_the_app_and_expires(shared_app):
    outputs, runs = updates(
        shared_app.url,
        form("make it snow", ["fluxapi"], image=handle_file(str(ROOT / "docs" / "history.png"))),
        "/edit",
    )
    assert last(outputs, runs, "status fluxapi flux-kontext-pro").startswith("✔ done")
    kept = list((shared_app.data_dir / HOSTED_DIR).glob("*.png"))
    assert kept, "the hosted input is not on disk"
    token = kept[0].name.split(".")[0]
    again = InputHost("http://127.0.0.1", store=DiskInputStore(shared_app.data_dir / HOSTED_DIR))  # as after a restart
    assert again.lookup(f"{token}.png") == (kept[0].read_bytes(), "image/png")
    late = InputHost("http://127.0.0.1", store=again.store, clock=lambda: 4e9)  # long after its expiry
    assert late.lookup(f"{token}.png") is None and not kept[0].exists()


def test_the_hosted_inputs_stay_under_their_cap_the_oldest_going_first(tmp_path):
    store = DiskInputStore(tmp_path, max_files=2, max_bytes=10_000)
    for i, expires in enumerate((100.0, 200.0, 300.0)):
        store.put(f"token{i}aaaaaaaaaaaaaaaa", Hosted(b"x" * 100, "image/png", expires), now=0.0)
    assert store.get("token0aaaaaaaaaaaaaaaa", 0.0) is None
    assert store.get("token2aaaaaaaaaaaaaaaa", 0.0) is not None
    store.put("big00aaaaaaaaaaaaaaaa", Hosted(b"x" * 9_950, "image/png", 400.0), now=0.0)
    assert [p.name.split(".")[0] for p in tmp_path.iterdir()] == ["big00aaaaaaaaaaaaaaaa"]
    assert store.get("../../etc/passwd", 0.0) is None


# --- GRADIO_SERVER_NAME=0.0.0.0: the network does not spend the server's keys --------------------------------------


def test_on_0_0_0_0_a_visitor_from_the_network_does_not_spend_the_servers_keys(keyed_app):
    # keyed_app: real keys, GRADIO_SERVER_NAME=0.0.0.0 and no share link.
    sandbox, before = keyed_app.sandbox, keyed_app.sandbox.state.count("kie", "create")
    stranger = {"X-Forwarded-For": "203.0.113.9"}  # a visitor reaching the page through a proxy
    outputs, runs = updates(keyed_app.url, form("a fox", ["kie"]), headers=stranger)
    assert "needs your own API key" in last(outputs, runs, "status kie flux-kontext-pro")
    assert sandbox.state.count("kie", "create") == before
    outputs, runs = updates(keyed_app.url, form("a fox", ["kie"]))  # the local user, straight from this machine
    assert last(outputs, runs, "status kie flux-kontext-pro").startswith("✔ done")


# --- a proxy that refuses the connection: nothing was sent ---------------------------------------------------------


@pytest.fixture
def refusing_proxy() -> Iterator[str]:
    """An HTTP proxy that answers every CONNECT with 403: the provider never sees the request."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def test_a_proxy_refusing_the_create_says_nothing_was_sent(refusing_proxy, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", refusing_proxy)
    spec = REGISTRY["kie"]
    settings = Settings(
        values={spec.base_url_env: "https://api.provider.test"},
        secrets={spec.key_env: TEST_KEY},
        data_dir=tmp_path / "data",
        out_dir=tmp_path / "out",
    )
    assert main(["generate", "--provider", "kie", "--prompt", "a fox"], settings=settings) == 1
    out = capsys.readouterr().out
    assert "nothing was sent" in out and "may have been created" not in out, out
