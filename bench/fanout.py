"""Benchmark: one edit fanned out to providers x models against the sandbox; prints wall time and latencies.

.venv/bin/python bench/fanout.py                      # the five seed providers x 2 models, 2 s jobs
.venv/bin/python bench/fanout.py --all --seconds 3    # every provider
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playground.models import MODELS, GenerationRequest, InputImage
from playground.providers import REGISTRY
from playground.sandbox.core import SandboxState
from playground.sandbox.server import SandboxServer, sandbox_settings
from playground.service import GenerationService
from playground.settings import Settings

SEED_PROVIDERS = ("kie", "fluxapi", "runapi", "runflow", "apixo")


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (512, 384), (40, 120, 200)).save(out, format="PNG")
    return out.getvalue()


async def fan_out(providers: list[str], seconds: float, poll_s: float) -> None:
    with SandboxServer(SandboxState(job_seconds=seconds)) as server, tempfile.TemporaryDirectory() as out:
        url = f"{server.url}/files/{server.state.add_file(png(), 'image/png')}"
        settings = sandbox_settings(Settings(out_dir=Path(out), poll_interval_s=poll_s), server.url)
        service = GenerationService(settings)
        request = GenerationRequest(prompt="turn the sky orange", image=InputImage(url=url))
        targets = [(p, m) for p in providers for m in MODELS]
        started = time.perf_counter()
        finals = [e async for e in service.run(service.plan(request, targets)) if e.is_terminal]
        wall = time.perf_counter() - started
        await service.aclose()
    print(
        f"{len(targets)} edit jobs ({', '.join(providers)} x {len(MODELS)} models), {seconds:g} s each, "
        f"polling every {poll_s:g} s"
    )
    for event in sorted(finals, key=lambda e: e.elapsed_s):
        latency = f"{event.result.latency_s:6.2f} s" if event.result else "   --   "
        print(f"  {event.provider:<10} {event.model:<18} {event.state:<10} {latency}")
    ok = sum(e.state == "succeeded" for e in finals)
    print(
        f"wall time: {wall:.2f} s for {ok}/{len(targets)} succeeded "
        f"(sequential would be about {seconds * len(targets):.0f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="how long each sandbox job takes")
    parser.add_argument("--poll", type=float, default=0.25, help="status poll interval in seconds")
    parser.add_argument("--all", action="store_true", help="every registered provider, not only the first five")
    args = parser.parse_args()
    providers = list(REGISTRY) if args.all else [p for p in SEED_PROVIDERS if p in REGISTRY]
    asyncio.run(fan_out(providers, args.seconds, args.poll))


if __name__ == "__main__":
    main()
