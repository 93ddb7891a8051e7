"""HTTP routes the app serves beside the UI: provider callbacks in, hosted input images and kept results out."""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from playground.hosting import InputHost
from playground.links import ResultLinks
from playground.service import GenerationService
from playground.storage import LocalStorage, media_type

log = logging.getLogger(__name__)


async def capped_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None once it passes ``limit`` bytes: read while it streams, never past one chunk more.

    A declared Content-Length over the limit is refused before anything is read.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def routes(service: GenerationService, host: InputHost | None, links: ResultLinks | None = None) -> list[BaseRoute]:
    """POST /webhooks/{provider}, GET /inputs/{name} and GET /results/{token}/{name}; never echoes secrets."""

    limit = service.settings.webhook_max_bytes

    async def webhook(request: Request) -> Response:
        body = await capped_body(request, limit)
        if body is None:
            log.warning("refused a %s callback larger than %d bytes", request.path_params["provider"], limit)
            return JSONResponse({"status": f"body larger than {limit} bytes"}, status_code=413)
        status, reason = await service.receive_callback(request.path_params["provider"], request.headers, body)
        return JSONResponse({"status": reason}, status_code=status)

    async def result(request: Request) -> Response:
        ref = links.ref_of(request.path_params["token"]) if links is not None else None
        storage = service.storage or LocalStorage(service.settings.out_dir)
        path = await storage.local_copy(ref) if ref is not None else None
        if path is None:
            return Response("not found", status_code=404)
        return FileResponse(path, media_type=media_type(path), headers={"Cache-Control": "private, max-age=3600"})

    async def hosted_input(request: Request) -> Response:
        found = await asyncio.to_thread(host.lookup, request.path_params["name"]) if host is not None else None
        if found is None:
            return Response("not found or expired", status_code=404)
        content, mime = found
        return Response(content, media_type=mime, headers={"Cache-Control": "private, max-age=300"})

    return [
        Route("/webhooks/{provider}", webhook, methods=["POST"]),
        Route("/inputs/{name}", hosted_input, methods=["GET"]),
        Route("/results/{token}/{name}", result, methods=["GET"]),
    ]
