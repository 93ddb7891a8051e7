"""The named API endpoints (and, with ``python app.py --mcp``, MCP tools): ``compare`` providers, read past ``runs``.

Gradio derives each endpoint's parameters from the type hints and its description from the docstring (the MCP
tool's name is the method's name). Answers are JSON text, since MCP passes other values on as ``str()``. The
work is playground.calls'; this module only adds the page's rules (whose keys, whose runs) and turns a bad
request into one sentence (gr.Error), never a traceback.
"""

from __future__ import annotations

import json
from typing import Any

import gradio as gr
from gradio.events import api

from playground import calls
from playground.errors import PlaygroundError
from playground.links import ResultLinks
from playground.ui.handlers import Handlers
from playground.ui.history_view import valid_owner


class ApiEndpoints:
    """The endpoints of one page; its handlers' options say whose keys and whose runs."""

    def __init__(self, handlers: Handlers, links: ResultLinks) -> None:
        self.handlers = handlers
        self.links = links

    async def compare(
        self,
        prompt: str,
        providers: list[str],
        models: list[str] | None = None,
        image_url: str = "",
        aspect_ratio: str = "",
        output_format: str = "jpeg",
        seed: int | None = None,
        api_keys: dict[str, str] | None = None,
        owner: str = "",
    ) -> str:
        """Generate (or, with image_url, edit) one image on several providers at once and compare the results.

        Waits until every job has ended. Returns JSON: run_id, owner, and for each (provider, model) job its state,
        task_id, latency_s, cost_usd, error and image_url (a link to the original image, bytes as the provider
        made them); targets that cannot take the request are listed under refused, with the reason.

        Args:
            prompt: what to draw, or the edit to make to the input image
            providers: provider names, e.g. ["kie", "bfl", "fal"]; any of kie, fluxapi, runapi, runflow, apixo,
                bfl, fal, replicate
            models: model ids, "flux-kontext-pro" and/or "flux-kontext-max" (default: pro)
            image_url: a public http(s) URL of the image to edit; empty for text to image
            aspect_ratio: W:H such as 16:9; empty for the provider's default (or the input's)
            output_format: "jpeg" or "png"
            seed: a seed for providers that take one; empty for none
            api_keys: your own keys by variable name, e.g. {"KIE_API_KEY": "..."}; used for your jobs only
            owner: on a shared page, the id your runs are kept under (returned by the first call)
        """
        options = self.handlers.options
        mine = valid_owner(owner) or (calls_owner() if options.shared else None)
        try:
            found = await calls.compare(
                self.handlers.service,
                self.links,
                prompt=prompt,
                providers=providers,
                models=models,
                image_url=image_url,
                aspect_ratio=aspect_ratio,
                output_format=output_format,
                seed=seed,
                keys=api_keys,
                server_keys=options.server_keys or options.sandbox,
                owner=mine,
            )
        except PlaygroundError as exc:
            raise gr.Error(str(exc)) from None
        return _json(found)

    async def runs(
        self,
        run_id: str = "",
        query: str = "",
        provider: str = "",
        model: str = "",
        outcome: str = "",
        limit: int = 20,
        after: str = "",
        owner: str = "",
    ) -> str:
        """The history: past runs, newest first, or one run in full with its jobs, state changes and image links.

        Returns JSON: {"runs": [...], "next": cursor or null} for a list (pass next as after for the next page),
        or the run itself when run_id is given.

        Args:
            run_id: one run to show in full; empty to list runs
            query: only runs whose prompt contains this text (any case)
            provider: only runs with a job on this provider, e.g. "bfl"
            model: only runs with a job on this model, e.g. "flux-kontext-max"
            outcome: only runs that ended so: succeeded, failed, mixed, stopped or running
            limit: how many runs at most (1 to 200)
            after: the next value of the previous page, to continue the list
            owner: on a shared page, the id your runs are kept under (compare returns it)
        """
        try:
            found = await calls.history(
                self.handlers.service,
                self.links,
                run_id=run_id,
                query=query,
                provider=provider,
                model=model,
                outcome=outcome,
                limit=limit,
                after=after,
                owner=valid_owner(owner),
                shared=self.handlers.options.shared,
            )
        except PlaygroundError as exc:
            raise gr.Error(str(exc)) from None
        return _json(found)


def calls_owner() -> str:
    """A fresh owner id for a caller of a shared page who has none yet."""
    from playground.ui.history_view import new_owner

    return new_owner()


def add_endpoints(demo: gr.Blocks, endpoints: ApiEndpoints) -> None:
    """Register /compare and /runs on the page (public: shown under 'Use via API', and as MCP tools).

    (/history is the History tab's own list, shaped for its table.)
    """
    with demo:
        api(endpoints.compare, api_name="compare", concurrency_limit=None)  # gr.api (gradio does not re-export it)
        api(endpoints.runs, api_name="runs", concurrency_limit=None)


def _json(value: Any) -> str:
    return json.dumps(value, indent=1, ensure_ascii=False)
