"""The API endpoints and MCP tools, on an app whose results go to an S3 bucket (moto's server on loopback).

One app for the module: the sandbox, SQLite history, results in the bucket, ``mcp_server=True``. It checks the
README's gradio_client script, an MCP client, and that results are in the bucket byte for byte and shown from
there by the page and by the History tab.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from gradio_client import Client

from playground.history import SqliteHistory
from playground.images import sniff
from playground.sandbox.core import SandboxState
from playground.sandbox.server import SandboxServer, sandbox_settings
from playground.service import GenerationService
from playground.settings import Settings
from playground.storage import S3Storage
from playground.webhooks import routes
from tests.ui.conftest import BROWSER_SECRET, OWNER, ROOT, Outputs, _free_port, form

PROVIDERS = ["kie", "bfl", "fal"]


@dataclass
class S3App:
    url: str
    bucket: str
    prefix: str
    sandbox: SandboxServer
    service: GenerationService
    page: Any

    def object(self, ref: str) -> bytes:
        key = ref.removeprefix(f"s3://{self.bucket}/")
        return boto3.client("s3").get_object(Bucket=self.bucket, Key=key)["Body"].read()


@pytest.fixture(scope="module")
def s3_app(s3_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3App]:
    tmp = tmp_path_factory.mktemp("api")
    bucket = f"api-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as env:
        for name, value in s3_server.items():
            env.setenv(name, value)
        env.setenv("GRADIO_TEMP_DIR", str(tmp / "gradio"))
        boto3.client("s3").create_bucket(Bucket=bucket)
        from playground.ui.runtime import build_page, launch, serve_routes

        with SandboxServer(SandboxState(job_seconds=0.3, seed=3)) as sandbox:
            url = f"s3://{bucket}/results"
            base = Settings(out_dir=tmp / "out", data_dir=tmp / "data", poll_interval_s=0.1, storage_url=url)
            history = SqliteHistory.open(base.data_dir)
            storage = S3Storage(url, base.out_dir)
            service = GenerationService(sandbox_settings(base, sandbox.url), history=history, storage=storage)
            page = build_page(service, share=False, environ={"PLAYGROUND_BROWSER_SECRET": BROWSER_SECRET})
            app, local, _ = launch(page, server_name="127.0.0.1", server_port=_free_port(), quiet=True, mcp_server=True)
            page.links.base_url = local.rstrip("/")
            serve_routes(app, routes(service, None, page.links))
            try:
                yield S3App(local, bucket, "results", sandbox, service, page)
            finally:
                page.demo.close()
                history.close()


@pytest.fixture(scope="module")
def client(s3_app) -> Client:
    """One client for the module (making one costs a round of API discovery)."""
    return Client(s3_app.url, verbose=False, download_files=False)


def readme_script() -> str:
    """The README's gradio_client example, as a reader would copy it."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    (script,) = [block for block in blocks if 'api_name="/compare"' in block]
    return script


def test_the_readme_script_compares_three_providers_and_saves_their_original_images(s3_app, tmp_path):
    (tmp_path / "example.py").write_text(readme_script())
    done = subprocess.run(
        [sys.executable, "example.py", s3_app.url], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    saved = sorted(tmp_path.glob("*-flux-kontext-pro.*"))
    assert [p.name.split("-")[0] for p in saved] == sorted(PROVIDERS), done.stdout
    stored = [f"s3://{s3_app.bucket}/{s3_app.prefix}/{key}" for key in objects_named(s3_app, "-flux-kontext-pro.")]
    by_provider = {Path(ref).name.split("-")[0]: s3_app.object(ref) for ref in stored}
    for path in saved:
        assert sniff(path.read_bytes()) is not None, f"{path.name} is not an image"
        assert path.read_bytes() == by_provider[path.name.split("-")[0]], "not the bytes kept in the bucket"


def objects_named(app: S3App, part: str) -> list[str]:
    listing = boto3.client("s3").list_objects_v2(Bucket=app.bucket, Prefix=app.prefix + "/")
    return [o["Key"].removeprefix(app.prefix + "/") for o in listing.get("Contents", []) if part in o["Key"]]


def test_a_bad_request_is_one_sentence_and_nothing_is_sent(s3_app, client):
    before = s3_app.sandbox.state.count()
    with pytest.raises(Exception, match="Invalid prompt: the prompt is empty") as empty:
        client.predict(prompt=" ", providers=["kie"], api_name="/compare")
    with pytest.raises(Exception, match="Unknown model 'flux-kontext-ultra'"):
        client.predict(prompt="a fox", providers=["kie"], models=["flux-kontext-ultra"], api_name="/compare")
    assert "Traceback" not in str(empty.value)
    answer = json.loads(client.predict(prompt="a fox", providers=["nope"], api_name="/compare"))
    assert answer["jobs"] == [] and "Unknown provider 'nope'" in answer["refused"][0]["reason"]
    assert s3_app.sandbox.state.count() == before


def test_a_callers_key_is_used_for_their_call_and_the_server_keys_follow_the_pages_rules(s3_app, client):
    s3_app.sandbox.state.keys = {"kie": "their-own-key"}
    try:
        mine = json.loads(
            client.predict(
                prompt="a fox", providers=["kie"], api_keys={"KIE_API_KEY": "their-own-key"}, api_name="/compare"
            )
        )
        theirs = json.loads(client.predict(prompt="a fox", providers=["kie"], api_name="/compare"))
    finally:
        s3_app.sandbox.state.keys = {}
    assert mine["jobs"][0]["state"] == "succeeded"
    assert theirs["jobs"][0]["state"] == "failed" and "rejected the API key" in theirs["jobs"][0]["error"]
    assert "their-own-key" not in json.dumps(mine) + json.dumps(theirs)


def test_runs_lists_the_history_pages_on_and_opens_one_run_with_image_links(s3_app, client):
    word = f"page{uuid.uuid4().hex[:6]}"
    for i in range(3):
        client.predict(prompt=f"{word} {i}", providers=["bfl"], api_name="/compare")
    first = json.loads(client.predict(query=word, limit=2, api_name="/runs"))
    rest = json.loads(client.predict(query=word, limit=2, after=first["next"], api_name="/runs"))
    assert [run["prompt"] for run in first["runs"] + rest["runs"]] == [f"{word} {i}" for i in (2, 1, 0)]
    assert rest["next"] is None
    run = json.loads(client.predict(run_id=first["runs"][0]["run_id"], api_name="/runs"))
    (job,) = run["jobs"]
    assert job["state"] == "succeeded" and [c["state"] for c in job["changes"]][-1] == "succeeded"
    assert sniff(httpx.get(job["image_url"]).content) is not None
    with pytest.raises(Exception, match="not in your history"):
        client.predict(run_id="no-such-run", api_name="/runs")


def test_an_mcp_client_configured_as_the_readme_says_lists_the_tools_and_calls_one(s3_app):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    (url,) = re.findall(r'"url": "http://127.0.0.1:7860(/gradio_api/mcp/[^"]*)"', (ROOT / "README.md").read_text())

    async def session() -> tuple[dict[str, Any], Any]:
        async with streamable_http_client(s3_app.url.rstrip("/") + url) as (read, write, _):
            async with ClientSession(read, write) as mcp:
                await mcp.initialize()
                tools = {tool.name: tool for tool in (await mcp.list_tools()).tools}
                called = await mcp.call_tool("compare", {"prompt": "an owl, by an agent", "providers": ["fal"]})
                return tools, called

    tools, called = asyncio.run(session())
    assert set(tools) == {"compare", "runs"}, "the README's configuration shows an agent the two API tools"
    assert "several providers at once" in (tools["compare"].description or "")
    assert set(tools["compare"].inputSchema["properties"]) >= {"prompt", "providers", "models", "api_keys"}
    assert not called.isError, called.content
    answer = json.loads(next(part.text for part in called.content if part.type == "text"))
    (job,) = answer["jobs"]
    assert job["state"] == "succeeded" and httpx.get(job["image_url"]).status_code == 200


def test_results_are_kept_in_the_bucket_and_shown_by_the_page_and_the_history_tab_from_there(s3_app, client):
    from playground.ui.history_handlers import HistoryHandlers

    outputs = Outputs(client, "/generate")
    updates = [tuple(u) for u in client.submit(*form("a heron, kept in a bucket", ["kie"]), api_name="/generate")]
    shown = [v for u in updates if (v := outputs.get(u, "image kie flux-kontext-pro"))][-1]
    run = asyncio.run(s3_app.service.history.list_runs(query="a heron, kept in a bucket"))[0]
    record = asyncio.run(s3_app.service.history.get_run(run.run_id))
    (job,) = record.jobs
    assert job.result_path.startswith(f"s3://{s3_app.bucket}/{s3_app.prefix}/{run.run_id}/")
    kept = s3_app.object(job.result_path)
    assert hashlib.sha256(httpx.get(shown["url"]).content).digest() == hashlib.sha256(kept).digest(), "the page"

    local = s3_app.service.settings.out_dir / run.run_id / Path(job.result_path).name
    local.unlink()  # as on a replica that never had the file: the History tab must fetch it from the bucket
    history = HistoryHandlers(s3_app.page.handlers)
    opened = asyncio.run(history.open_run(run.run_id, OWNER))
    images = [v for v in opened if isinstance(v, dict) and str(v.get("value") or "").endswith(".jpg")]
    assert images and all(Path(v["value"]).read_bytes() == kept for v in images), "the History tab"
