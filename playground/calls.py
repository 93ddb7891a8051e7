"""What the API endpoints and MCP tools do, without gradio: compare providers on one request, read the history.

Results are plain dicts (the UI layer turns them into JSON text). Images are links any replica serves
(playground/links.py). Keys follow the page's rules: the caller's own keys (by env name) win; the server's are
used only where the page would use them (``server_keys``). On a shared page a caller sees only the runs kept
under their ``owner`` id, which ``compare`` returns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import SecretStr

from playground.errors import InvalidInputError
from playground.history.records import JobRecord, RunRecord, RunSummary
from playground.links import ResultLinks
from playground.models import MODELS, InputImage, JobEvent, model_info
from playground.request import build_request
from playground.service import GenerationService

MAX_LIST = 200  # runs one history call returns at most; page on with ``next``


def checked_models(models: Sequence[str] | None) -> list[str]:
    """The models asked for (default: the first one); InvalidInputError naming the known ones."""
    chosen = list(models or [MODELS[0]])
    for model in chosen:
        try:
            model_info(model)
        except ValueError as exc:
            raise InvalidInputError(f"{str(exc).capitalize()}.") from None
    return chosen


def caller_keys(keys: Mapping[str, str] | None) -> dict[str, SecretStr]:
    """The caller's keys by env name, blank ones dropped (never logged, never returned)."""
    return {env: SecretStr(value.strip()) for env, value in (keys or {}).items() if value and value.strip()}


async def compare(
    service: GenerationService,
    links: ResultLinks,
    *,
    prompt: str,
    providers: Sequence[str],
    models: Sequence[str] | None = None,
    image_url: str = "",
    aspect_ratio: str = "",
    output_format: str = "jpeg",
    seed: int | None = None,
    keys: Mapping[str, str] | None = None,
    server_keys: bool = True,
    owner: str | None = None,
) -> dict[str, Any]:
    """Run one request on every (provider, model) pair at once and wait for all; what each ended with.

    Raises PlaygroundError (one sentence, nothing sent) when the request itself is wrong; a target that cannot
    take it is listed under ``refused`` and the others run.
    """
    if not providers:
        raise InvalidInputError("Name at least one provider, e.g. providers=['kie', 'bfl', 'fal'].")
    image = InputImage(url=image_url.strip()) if image_url.strip() else None
    request = build_request(
        prompt, image=image, aspect_ratio=aspect_ratio or None, output_format=output_format, seed=seed
    )
    targets = [(name, model) for name in providers for model in checked_models(models)]
    plan = service.plan(request, targets, caller_keys(keys), server_keys=server_keys)
    finals: dict[tuple[str, str], JobEvent] = {}
    async with contextlib.aclosing(service.run(plan, owner=owner)) as events:
        async for event in events:
            if event.is_terminal:
                finals[(event.provider, event.model)] = event
    run_id = next((event.run_id for event in finals.values()), None)
    return {
        "run_id": run_id,
        "owner": owner,
        "jobs": [job_from_event(finals[target], links) for target in plan.targets if target in finals],
        "refused": [
            {"provider": r.target[0], "model": r.target[1], "reason": r.reason, "code": r.error.code}
            for r in plan.refused
        ],
    }


def job_from_event(event: JobEvent, links: ResultLinks) -> dict[str, Any]:
    """One finished job as the API returns it: state, task id, timing, cost, and a link to the image."""
    result = event.result
    return {
        "provider": event.provider,
        "model": event.model,
        "state": event.state,
        "task_id": event.task_id,
        "latency_s": result.latency_s if result else None,
        "cost_usd": result.cost_usd if result else None,
        "image_url": links.url(result.stored or result.path) if result else None,
        "mime_type": result.mime_type if result else None,
        "width": result.width if result else None,
        "height": result.height if result else None,
        "error": event.error,
    }


async def history(
    service: GenerationService,
    links: ResultLinks,
    *,
    run_id: str = "",
    query: str = "",
    provider: str = "",
    model: str = "",
    outcome: str = "",
    limit: int = 20,
    after: str = "",
    owner: str | None = None,
    shared: bool = False,
) -> dict[str, Any]:
    """Past runs newest first (filtered, ``next`` continues), or with ``run_id`` one run in full.

    ``shared``: the page is public, so only runs kept under ``owner`` are listed (none without one).
    """
    store = service.history
    if store is None:
        return {"runs": [], "next": None}
    if run_id.strip():
        record = await store.get_run(run_id.strip())
        mine = not shared or (owner is not None and await _owns(service, run_id.strip(), owner))
        if record is None or not mine:
            raise InvalidInputError(f"Run {run_id.strip()[:40]!r} is not in your history.")
        return run_in_full(record, links)
    if shared and owner is None:
        return {"runs": [], "next": None}
    if not 1 <= limit <= MAX_LIST:
        raise InvalidInputError(f"limit must be between 1 and {MAX_LIST}, not {limit}.")
    try:
        runs = await store.list_runs(
            query=query or None,
            provider=provider or None,
            model=model or None,
            outcome=outcome or None,
            owner=owner if shared else None,
            limit=limit,
            after=after or None,
        )
    except ValueError as exc:  # an outcome or a cursor it does not know
        raise InvalidInputError(f"{str(exc).capitalize()}.") from None
    return {"runs": [run_line(run) for run in runs], "next": runs[-1].cursor if len(runs) == limit else None}


async def _owns(service: GenerationService, run_id: str, owner: str) -> bool:
    assert service.history is not None
    return any(run.run_id == run_id for run in await service.history.list_runs(owner=owner, limit=-1))


def run_line(run: RunSummary) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "created_at": run.created_at.isoformat(),
        "kind": run.kind,
        "prompt": run.prompt,
        "outcome": run.outcome,
        "jobs": [{"provider": p, "model": m, "state": s} for p, m, s in run.job_states],
        "cost_usd": run.cost_usd,
    }


def run_in_full(record: RunRecord, links: ResultLinks) -> dict[str, Any]:
    line = run_line(record)
    return line | {"request": record.request, "jobs": [job_from_record(job, links) for job in record.jobs]}


def job_from_record(job: JobRecord, links: ResultLinks) -> dict[str, Any]:
    return {
        "provider": job.provider,
        "model": job.model,
        "state": job.state,
        "task_id": job.task_id,
        "latency_s": job.latency_s,
        "cost_usd": job.cost_usd,
        "image_url": links.url(job.result_path) if job.result_path else None,
        "error": job.error,
        "changes": [{"state": c.state, "at": c.at.isoformat(), "message": c.message} for c in job.changes],
    }
