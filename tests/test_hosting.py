"""Hosting local inputs for providers without an upload API, and fetching user URLs safely."""

from __future__ import annotations

import httpx
import pytest

from playground.errors import InvalidInputError, UnsupportedParameterError
from playground.fetch import check_public_url, fetch_user_image
from playground.hosting import InputHost
from playground.images import image_from_bytes
from playground.models import GenerationRequest
from tests.conftest import png_bytes


def test_published_inputs_get_unguessable_urls_that_expire():
    now = [1000.0]
    host = InputHost("https://play.example/", ttl_s=60, clock=lambda: now[0])
    image = image_from_bytes(png_bytes(), "cat.png")
    first, second = host.publish(image), host.publish(image)
    assert first.url.startswith("https://play.example/inputs/") and first.url.endswith(".png")
    assert first.url != second.url and len(first.url.rsplit("/", 1)[1]) > 30
    name = first.url.rsplit("/", 1)[1]
    assert host.lookup(name) == (image.content, "image/png")
    now[0] += 61
    assert host.lookup(name) is None
    assert host.lookup("guess.png") is None


async def test_a_local_file_for_a_provider_without_upload_is_refused_without_hosting(service, sandbox):
    request = GenerationRequest(prompt="blue", image=image_from_bytes(png_bytes(), "cat.png"))
    with pytest.raises(UnsupportedParameterError, match="set PUBLIC_BASE_URL"):
        service.plan(request, [("fluxapi", "flux-kontext-pro")]).raise_first()
    assert sandbox.state.count() == 0


async def test_with_hosting_a_local_file_reaches_a_provider_without_upload_as_a_url(settings, sandbox):
    from starlette.applications import Starlette

    from playground.sandbox.server import LoopbackServer
    from playground.service import GenerationService
    from playground.webhooks import routes
    from tests.conftest import collect, final

    app = Starlette()
    with LoopbackServer(app) as server:
        host = InputHost(server.url)
        service = GenerationService(settings, input_host=host)
        app.router.routes.extend(routes(service, host))
        request = GenerationRequest(prompt="blue", image=image_from_bytes(png_bytes((90, 30)), "cat.png"))
        events = await collect(service, request, [("fluxapi", "flux-kontext-pro")])
    await service.aclose()
    done = final(events, "fluxapi")
    assert done.state == "succeeded", done.error
    assert done.result.sent.body["inputImage"].startswith(f"{server.url}/inputs/")
    assert done.result.width / done.result.height == pytest.approx(3, rel=0.01)  # the sandbox fetched our input


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x.png",
        "http://169.254.169.254/latest/meta-data",
        "file:///etc/passwd",
        "http://[::1]/x",
        "http://10.0.0.8/a",
    ],
)
async def test_private_and_non_http_urls_are_refused_with_a_clear_message(url):
    with pytest.raises(InvalidInputError, match="private or local address|Only http"):
        await check_public_url(url, allow_private=False)


async def test_private_urls_are_allowed_when_the_setting_says_so():
    await check_public_url("http://127.0.0.1/x.png", allow_private=True)


async def test_fetching_a_user_image_rechecks_every_redirect():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": "http://127.0.0.1/secret.png"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(InvalidInputError, match="private or local"):
            await fetch_user_image(client, "http://93.184.216.34/start.png", allow_private=False)


async def test_fetching_a_user_image_caps_the_size_at_10_mb():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"\0" * (10 * 1024 * 1024 + 1))

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(InvalidInputError, match="larger than 10 MB"):
            await fetch_user_image(client, "http://127.0.0.1/big.png", allow_private=True)


async def test_fetching_a_user_image_returns_checked_bytes():
    content = png_bytes()

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, content=content))
    ) as client:
        image = await fetch_user_image(client, "http://127.0.0.1/cat.png", allow_private=True)
    assert image.content == content and image.mime_type == "image/png" and image.url == "http://127.0.0.1/cat.png"
