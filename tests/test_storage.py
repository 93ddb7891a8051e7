"""Result files through the storage interface: a local folder, or an S3 bucket (moto's server on loopback)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import boto3
import httpx
import pytest
from starlette.applications import Starlette

from playground.links import ResultLinks
from playground.models import GenerationRequest
from playground.sandbox.server import LoopbackServer
from playground.service import GenerationService
from playground.storage import LocalStorage, S3Storage, open_storage
from playground.webhooks import routes
from tests.conftest import collect, final, png_bytes

JPEG_LIKE = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40  # any bytes: storage never looks inside


def s3_object(url: str, key: str) -> bytes:
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return boto3.client("s3").get_object(Bucket=bucket, Key=f"{prefix}/{key}")["Body"].read()


async def test_the_local_folder_keeps_the_bytes_under_the_run_and_names_the_file_as_its_ref(tmp_path):
    kept = await LocalStorage(tmp_path / "out").put("run1/kie-flux-kontext-pro.jpg", JPEG_LIKE, "image/jpeg")
    assert kept.path == tmp_path / "out" / "run1" / "kie-flux-kontext-pro.jpg" and kept.ref == str(kept.path)
    assert kept.path.read_bytes() == JPEG_LIKE
    assert not list(kept.path.parent.glob("*.part")), "written whole, then renamed"


async def test_the_bucket_gets_the_original_bytes_and_its_content_type(s3_bucket, tmp_path):
    storage = S3Storage(s3_bucket, tmp_path / "cache")
    kept = await storage.put("run1/bfl-flux-kontext-pro.png", png_bytes(), "image/png")
    assert kept.ref == f"{s3_bucket}/run1/bfl-flux-kontext-pro.png"
    assert s3_object(s3_bucket, "run1/bfl-flux-kontext-pro.png") == png_bytes() == kept.path.read_bytes()
    bucket, _, prefix = s3_bucket.removeprefix("s3://").partition("/")
    head = boto3.client("s3").head_object(Bucket=bucket, Key=f"{prefix}/run1/bfl-flux-kontext-pro.png")
    assert head["ContentType"] == "image/png"


async def test_another_replica_without_the_local_copy_fetches_it_from_the_bucket(s3_bucket, tmp_path):
    kept = await S3Storage(s3_bucket, tmp_path / "a").put("run1/x.jpg", JPEG_LIKE, "image/jpeg")
    elsewhere = S3Storage(s3_bucket, tmp_path / "b")
    local = await elsewhere.local_copy(kept.ref)
    assert local == tmp_path / "b" / "run1" / "x.jpg" and local.read_bytes() == JPEG_LIKE


async def test_a_result_the_bucket_does_not_have_is_none_not_an_error(s3_bucket, tmp_path):
    storage = S3Storage(s3_bucket, tmp_path / "cache")
    assert await storage.local_copy(f"{s3_bucket}/run1/gone.jpg") is None


async def test_an_unreachable_bucket_keeps_the_result_as_a_local_file_instead_of_losing_it(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    for name, value in (("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", "x"), ("AWS_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    from obstore.store import S3Store

    store = S3Store.from_url("s3://nowhere/p", client_options={"timeout": "2s"}, retry_config={"max_retries": 0})
    kept = await S3Storage("s3://nowhere/p", tmp_path, store=store).put("run1/x.jpg", JPEG_LIKE, "image/jpeg")
    assert kept.ref == str(tmp_path / "run1" / "x.jpg") and kept.path.read_bytes() == JPEG_LIKE


def test_the_settings_choose_the_storage(tmp_path, s3_bucket):
    from playground.settings import Settings

    assert isinstance(open_storage(Settings(out_dir=tmp_path)), LocalStorage)
    chosen = open_storage(Settings(out_dir=tmp_path, storage_url=s3_bucket))
    assert isinstance(chosen, S3Storage) and chosen.describe() == f"the bucket {s3_bucket}"


@pytest.mark.parametrize("url", ["gs://bucket/x", "s3://", "bucket/prefix"])
def test_a_storage_url_that_is_not_s3_is_refused_with_a_sentence(url):
    from playground.errors import ConfigError
    from playground.settings import Settings

    with pytest.raises(ConfigError, match="PLAYGROUND_STORAGE_URL must look like s3://bucket"):
        Settings.from_env({"PLAYGROUND_STORAGE_URL": url})


async def test_a_sandbox_run_keeps_its_results_in_the_bucket_and_the_history_names_them_there(
    settings, s3_bucket, open_store
):
    store = open_store()
    service = GenerationService(settings, history=store, storage=S3Storage(s3_bucket, settings.out_dir))
    try:
        events = await collect(service, GenerationRequest(prompt="a fox"), [("kie", "flux-kontext-pro")])
    finally:
        await service.aclose()
    done = final(events, "kie")
    assert done.state == "succeeded" and done.result is not None
    key = f"{done.run_id}/kie-flux-kontext-pro.jpg"
    assert done.result.stored == f"{s3_bucket}/{key}"
    assert s3_object(s3_bucket, key) == Path(done.result.path).read_bytes()
    (job,) = (await store.get_run(done.run_id)).jobs
    assert job.result_path == done.result.stored
    Path(done.result.path).unlink()  # as on a replica that never had the file
    shown = await service.results_of(await store.get_run(done.run_id))
    assert Path(shown.jobs[0].result_path).read_bytes() == s3_object(s3_bucket, key)
    await store.aclose()


async def test_a_result_link_serves_the_original_bytes_from_the_bucket_and_refuses_a_forged_one(
    settings, s3_bucket, tmp_path
):
    storage = S3Storage(s3_bucket, tmp_path / "elsewhere")
    kept = await S3Storage(s3_bucket, tmp_path / "here").put("run9/fal-flux-kontext-max.png", png_bytes(), "image/png")
    links = ResultLinks("a secret")
    service = GenerationService(settings, storage=storage)
    with LoopbackServer(Starlette(routes=routes(service, None, links))) as server:
        links.base_url = server.url
        async with httpx.AsyncClient() as client:
            served = await client.get(links.url(kept.ref))
            forged = await client.get(ResultLinks("another secret", server.url).url(kept.ref))
            signature = links.token(kept.ref).split(".")[1]
            other = links.token(kept.ref.replace("run9", "run8")).split(".")[0]
            tampered = await client.get(f"{server.url}/results/{other}.{signature}/x.png")
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert hashlib.sha256(served.content).digest() == hashlib.sha256(png_bytes()).digest()
    assert forged.status_code == 404 and tampered.status_code == 404
