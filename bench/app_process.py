"""The real app in its own process, for benchmarks that measure it from outside (latency, memory)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class AppProcess:
    url: str
    process: subprocess.Popen[bytes]
    data_dir: Path

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")


@contextmanager
def app_process(folder: Path, **env: str) -> Iterator[AppProcess]:
    """``python app.py --sandbox`` on free ports, its data under ``folder``; stopped on exit."""
    port = free_port()
    environ = (
        {k: v for k, v in os.environ.items() if not k.startswith(("PLAYGROUND_", "SANDBOX_"))}
        | env
        | {
            "PLAYGROUND_DATA_DIR": str(folder / "data"),
            "PLAYGROUND_OUT_DIR": str(folder / "out"),
            "GRADIO_SERVER_PORT": str(port),
            "PLAYGROUND_SANDBOX_PORT": str(free_port()),
            "GRADIO_TEMP_DIR": str(folder / "gradio"),
            "GRADIO_ANALYTICS_ENABLED": "False",
            "HF_HUB_OFFLINE": "1",
        }
    )
    log = (folder / "app.log").open("wb")
    process = subprocess.Popen([sys.executable, "app.py", "--sandbox"], cwd=ROOT, env=environ, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the app did not start: {(folder / 'app.log').read_text()[-2000:]}")
        time.sleep(0.3)
    try:
        yield AppProcess(url, process, folder / "data")
    finally:
        process.terminate()
        process.wait(timeout=20)
