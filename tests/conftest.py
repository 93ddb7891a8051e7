"""Shared fixtures: no provider env leaks in, a fresh sandbox over real loopback HTTP per test."""

from __future__ import annotations

import asyncio
import io
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from PIL import Image
from starlette.applications import Starlette

from playground.models import GenerationRequest, JobEvent
from playground.providers import env_names
from playground.sandbox.core import SandboxState
from playground.sandbox.server import LoopbackServer, SandboxServer, sandbox_settings
from playground.service import GenerationService
from playground.settings import Settings
from playground.webhooks import routes

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

TEST_KEY = "test-key"
OUR_PREFIXES = ("SANDBOX_", "PLAYGROUND_")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real keys or base URLs in the developer's shell must never reach a test (every variable a provider reads)."""
    providers = env_names()
    for name in list(os.environ):
        if name in providers or name.startswith(OUR_PREFIXES) or name == "PUBLIC_BASE_URL":
            monkeypatch.delenv(name, raising=False)


# The sandbox's images in tests: the same drawing as the app's 768 px ones, with a ninth of the pixels to draw,
# send, decode and thumbnail (ratios stay exact enough for the tests that check them).
SMALL_IMAGE_PX = 256


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """A fresh sandbox (0.3 s jobs, small images, every provider expecting TEST_KEY) on a loopback port."""
    state = SandboxState(job_seconds=0.3, keys={}, seed=1)
    state.image_px = SMALL_IMAGE_PX
    with SandboxServer(state) as server:
        yield server


@pytest.fixture
def settings(sandbox: SandboxServer, tmp_path: Path) -> Settings:
    base = Settings(out_dir=tmp_path / "out", data_dir=tmp_path / "data", poll_interval_s=0.05, job_timeout_s=10)
    return sandbox_settings(base, sandbox.url, key=TEST_KEY)


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[GenerationService]:
    svc = GenerationService(settings)
    yield svc
    await svc.aclose()


def png_bytes(size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


PLAN_OPTIONS = ("keys", "server_keys", "vary_seed")


async def collect(
    service: GenerationService, request: GenerationRequest, targets: list[tuple[str, str]], **kw: object
) -> list[JobEvent]:
    """Plan (every target must be accepted), run, and gather every event; ``kw`` go to plan() or run()."""
    plan = service.plan(request, targets, **{k: v for k, v in kw.items() if k in PLAN_OPTIONS})  # type: ignore[arg-type]
    plan.raise_first()
    options = {k: v for k, v in kw.items() if k not in PLAN_OPTIONS}
    return [event async for event in service.run(plan, **options)]  # type: ignore[arg-type]


def final(events: list[JobEvent], provider: str, model: str = "flux-kontext-pro") -> JobEvent:
    mine = [e for e in events if e.provider == provider and e.model == model]
    assert mine, f"no events for {provider} {model}"
    return mine[-1]


@pytest.fixture
def receiver_url():
    """Our webhook routes on a loopback port, bound late to the service under test."""
    holder: dict[str, GenerationService] = {}

    class LateBound:
        settings = Settings()  # the routes read the webhook body cap from it

        def deliver_callback(self, *args):
            return holder["service"].deliver_callback(*args)

        async def receive_callback(self, *args):
            return await holder["service"].receive_callback(*args)

    with LoopbackServer(Starlette(routes=routes(LateBound(), None))) as server:  # type: ignore[arg-type]
        yield server.url, holder


@pytest.fixture
async def callback_service(settings, receiver_url):
    url, holder = receiver_url
    service = GenerationService(settings.model_copy(update={"poll_interval_s": 5.0}), callback_base_url=url)
    holder["service"] = service
    yield service
    await service.aclose()


# --- the history stores: every store test runs on SQLite and on a real PostgreSQL ------------------------

STORES = ("sqlite", "postgres")


@pytest.fixture(scope="session")
def postgres_cluster():
    """One PostgreSQL cluster for the session (started on first use, about a second)."""
    from tests.pg import start_cluster

    cluster = start_cluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(postgres_cluster) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return postgres_cluster.new_database()


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_store(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest):
    """Open the test's store (a new process would see the same): ``open_store(clock=...)``."""
    from playground.history import PostgresHistory, SqliteHistory

    data_dir = tmp_path / "data"
    if store_kind == "sqlite":
        return lambda **options: SqliteHistory.open(data_dir, **options)
    url = request.getfixturevalue("pg_url")
    return lambda **options: PostgresHistory.open(url, data_dir, **options)


@pytest.fixture
def store_settings(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Settings naming the test's store: the data dir (SQLite) or PLAYGROUND_DATABASE_URL (PostgreSQL)."""
    url = request.getfixturevalue("pg_url") if store_kind == "postgres" else None
    return Settings(data_dir=tmp_path / "data", database_url=url)


# --- a local S3-compatible server (moto's server mode) -----------------------------------------------

S3_ENV_NAMES = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ALLOW_HTTP")


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 on a loopback port for the session; the variables a client needs to reach it."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = dict(zip(S3_ENV_NAMES, (f"http://{host}:{port}", "test", "test", "us-east-1", "true"), strict=True))
    yield env
    server.stop()


@pytest.fixture
def s3_bucket(s3_server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the local S3 server, with the AWS_* variables set for this test; its s3:// URL."""
    import uuid

    import boto3

    for name, value in s3_server.items():
        monkeypatch.setenv(name, value)
    bucket = f"results-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_server["AWS_ENDPOINT_URL"]).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/playground"


async def callback_answers(sandbox: SandboxServer, provider: str, *, count: int, within_s: float = 5.0) -> list[int]:
    """The status codes ``provider``'s callbacks got, once ``count`` of them came back (or the time is up).

    The sandbox notes an answer when it arrives, which can be just after the playground, having handled the
    delivery, finished the job: a test that looks at once may look too early.
    """
    deadline = time.monotonic() + within_s
    while True:
        codes = [code for name, _, code in sandbox.state.callbacks_sent if name == provider]
        if len(codes) >= count or time.monotonic() > deadline:
            return codes
        await asyncio.sleep(0.01)
