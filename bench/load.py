"""Benchmark: many visitors at once on one `python app.py`.

Starts the sandbox in its own process (so its drawing is not counted) and the app pointed at it as at real
providers, then runs one gradio_client session alone (4 providers, text-to-image), then N sessions at once
from this process. Prints per-session p50/p95 against one session alone, and the app's RSS and CPU seconds
before and after.

.venv/bin/python bench/load.py                  # 50 sessions x 4 providers, 2 s jobs
.venv/bin/python bench/load.py --sessions 20 --seconds 3
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from playground.providers import REGISTRY
from playground.sandbox.server import SANDBOX_KEY, protocol

ROOT = Path(__file__).resolve().parents[1]
PROVIDER_SETS = [["kie", "fluxapi", "apixo", "bfl"], ["runapi", "fal", "replicate", "kie"]]
OWNER = "bench-owner-0123456789abcdef"
WARMUP_SESSIONS = 12  # 6 of each provider set: 6 finished jobs per provider, so its polling is learned


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def provider_env(sandbox_url: str) -> dict[str, str]:
    """Every provider's key, base URLs and signing values, pointing at the sandbox as at a real provider."""
    env = {}
    for name, spec in REGISTRY.items():
        env[spec.key_env] = SANDBOX_KEY
        env[spec.base_url_env] = f"{sandbox_url}/{name}"
        env |= {extra: f"{sandbox_url}/{name}" for extra in spec.extra_env if extra.endswith("_BASE_URL")}
        env |= {k: v for k, v in protocol(name).SANDBOX_SECRETS.items() if k in spec.extra_env}
    return env


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT)


def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer in {seconds:g} s")


def usage(pid: int) -> tuple[float, float]:
    """(RSS in MB, CPU seconds) of a process, from /proc."""
    rss_kb = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss_kb / 1024, (int(fields[11]) + int(fields[12])) / ticks


def visitor(url: str) -> Any:
    """A visitor with the page loaded (a gradio_client Client)."""
    from gradio_client import Client

    # ssl_verify=False: the app is served over plain HTTP on loopback, so no TLS is ever negotiated, but with
    # the default gradio_client builds a verifying TLS context (certifi's whole CA bundle, ~20 ms of CPU) for
    # every httpx client it opens: its submit, its message stream and its heartbeat each open one, which for
    # 50 visitors was most of the clients' CPU on the cores the app shares with them.
    return Client(url, verbose=False, download_files=False, ssl_verify=False)


def session(client: Any, providers: list[str], prompt: str) -> float:
    """One visitor's run, from submit to its last update, in seconds."""
    from playground.ui.forms import FORM_FIELDS, STATE_FIELDS

    values = {
        "prompt": prompt,
        "providers": providers,
        "models": ["flux-kontext-pro"],
        "aspect_ratio": "",
        "output_format": "jpeg",
        "seed": "",
        "same_seed": True,
        "randomize": False,
        "safety": "default",
        "upsampling": False,
        "translation": "default",
        "guidance": None,
        "keys": {"v": 1, "keys": {}},
        "owner": OWNER,
    }
    started = time.perf_counter()
    job = client.submit(*[values[n] for n in (*FORM_FIELDS["text"], *STATE_FIELDS)], api_name="/generate")
    # result() waits on the job's future, which the last streamed message resolves. Iterating the job instead
    # would busy-wait: gradio_client's Job.__next__ polls every millisecond holding the job's lock, which with
    # 50 visitor threads kept a core busy in this process and measured gradio_client, not the app.
    job.result()
    return time.perf_counter() - started


def together(url: str, count: int, loaded: Any = None) -> tuple[list[float], list[str]]:
    """Every visitor's run time, and the errors of those that did not finish; ``loaded()`` is called once every
    visitor's page is loaded, just before the runs start."""
    clients = [visitor(url) for _ in range(count)]  # the pages are loaded first; the runs start together
    if loaded is not None:
        loaded()
    times: list[float] = []
    errors: list[str] = []

    def one(i: int) -> None:
        try:
            times.append(session(clients[i], PROVIDER_SETS[i % len(PROVIDER_SETS)], f"visitor {i}: a red fox"))
        except Exception as exc:  # reported, not raised: one visitor's failure is a figure
            errors.append(f"{type(exc).__name__}: {exc}"[:200])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times, errors


def pct(values: list[float], p: int) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=2.0, help="how long each sandbox job takes")
    args = parser.parse_args()
    quiet = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        sandbox_port, app_port = free_port(), free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith(("PLAYGROUND_", "SANDBOX_"))} | quiet
        base["PYTHONPATH"] = str(ROOT)
        sandbox = start(
            [sys.executable, "-m", "playground", "sandbox", "--port", str(sandbox_port), "--ready-made"],
            base | {"SANDBOX_JOB_SECONDS": str(args.seconds)},
            Path(tmp) / "sandbox.log",
        )
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        app_env = (
            base
            | provider_env(sandbox_url)
            | {
                "GRADIO_SERVER_PORT": str(app_port),
                "PLAYGROUND_DATA_DIR": f"{tmp}/data",
                "PLAYGROUND_OUT_DIR": f"{tmp}/out",
                "GRADIO_TEMP_DIR": f"{tmp}/gradio",
            }
        )
        app = start([sys.executable, "app.py"], app_env, Path(tmp) / "app.log")
        try:
            wait_for(f"{sandbox_url}/_sandbox/requests")
            url = f"http://127.0.0.1:{app_port}/"
            wait_for(url)
            together(url, WARMUP_SESSIONS)  # fills the history, so polling is learned as on a used app
            alone = min(session(visitor(url), PROVIDER_SETS[i % 2], "alone") for i in range(2))
            rss_before, cpu_before = usage(app.pid)
            marks: dict[str, float] = {}

            def loaded() -> None:
                marks["app"], marks["here"] = usage(app.pid)[1], time.process_time()

            times, errors = together(url, args.sessions, loaded)
            here_cpu = time.process_time() - marks["here"]
            time.sleep(2)  # let the last responses and files settle
            rss_after, cpu_after = usage(app.pid)
        finally:
            app.terminate()
            sandbox.terminate()
            app.wait(timeout=20)
            sandbox.wait(timeout=20)
    print(
        f"{args.sessions} sessions at once x 4 providers, {args.seconds:g} s sandbox jobs (sandbox in its own process)"
    )
    print(f"one session alone   {alone:.2f} s")
    print(
        f"per session         p50 {statistics.median(times):.2f} s   p95 {pct(times, 95):.2f} s "
        f"= {pct(times, 95) / alone:.2f} x alone"
    )
    print(
        f"app RSS             {rss_before:.0f} MB before, {rss_after:.0f} MB after ({rss_after / rss_before - 1:+.0%})"
    )
    print(
        f"app CPU             {cpu_after - cpu_before:.1f} s for the {args.sessions} sessions "
        f"({marks['app'] - cpu_before:.1f} s loading their pages, {cpu_after - marks['app']:.1f} s for their runs)"
    )
    print(f"visitors' CPU       {here_cpu:.1f} s in this process (gradio_client) during the runs")
    for error in errors[:3]:
        print(f"failed: {error}")


if __name__ == "__main__":
    main()
