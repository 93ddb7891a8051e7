"""HTTP routes the app serves beside the UI: provider callbacks in, hosted input images out."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from playground.hosting import InputHost
from playground.service import GenerationService


def routes(service: GenerationService, host: InputHost | None) -> list[BaseRoute]:
    """POST /webhooks/{provider} and GET /inputs/{name}; answers fast, never echoes secrets."""

    async def webhook(request: Request) -> Response:
        body = await request.body()
        status, reason = service.deliver_callback(request.path_params["provider"], request.headers, body)
        return JSONResponse({"status": reason}, status_code=status)

    async def hosted_input(request: Request) -> Response:
        found = host.lookup(request.path_params["name"]) if host is not None else None
        if found is None:
            return Response("not found or expired", status_code=404)
        content, mime = found
        return Response(content, media_type=mime, headers={"Cache-Control": "private, max-age=300"})

    return [
        Route("/webhooks/{provider}", webhook, methods=["POST"]),
        Route("/inputs/{name}", hosted_input, methods=["GET"]),
    ]
