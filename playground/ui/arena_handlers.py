"""The Arena tab's event handlers: start a blind round, hear that its images loaded, take a vote, show the board.

Values arrive by the names of ARENA_FIELDS then ARENA_STATE, and updates leave in ARENA_OUTPUTS order, so the
layout and these handlers agree by name. The rules themselves live in playground.arena.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import gradio as gr
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from playground.arena import PAIRINGS, Arena, Pairing
from playground.arena_round import LETTERS, PAIR_CHOICES, Round
from playground.errors import InvalidInputError, PlaygroundError, VoteRefusedError
from playground.images import load_input_image
from playground.models import GenerationRequest
from playground.request import build_request
from playground.standings import RANK_NOTE, board_csv, build_board, table, votes_jsonl
from playground.ui import forms
from playground.ui.arena_view import (
    IMAGE_PATH,
    making_text,
    refused_text,
    reveal_markdown,
    round_html,
    seen_text,
    shown_text,
    voted_text,
)
from playground.ui.handlers import Handlers
from playground.ui.history_view import valid_owner

ARENA_FIELDS = ("mode", "pairing", "model", "count", "prompt", "image_path", "image_url", "aspect_ratio", "seed")
ARENA_STATE = ("keys", "owner")
CHOICES = (*LETTERS, *PAIR_CHOICES)
VOTE_SLOTS = tuple(f"vote_{choice}" for choice in CHOICES)
ARENA_OUTPUTS = ("status", "view", "reveal", "round", "start", *VOTE_SLOTS)
NO_OWNER = (
    "This page is still starting (your browser has no visitor id yet): wait a moment, or reload the page, "
    "then start the round."
)
Frame = list[Any]


class ArenaHandlers:
    """Bound methods wired to the Arena tab; one instance serves every visitor."""

    def __init__(self, handlers: Handlers, arena: Arena) -> None:
        self.handlers = handlers
        self.arena = arena

    # --- a round ---------------------------------------------------------------------------------------

    async def start(self, *values: Any) -> AsyncIterator[Frame]:
        """Pick the hosts, make the images, show them blind. ``values``: ARENA_FIELDS then ARENA_STATE."""
        named = dict(zip((*ARENA_FIELDS, *ARENA_STATE), values, strict=True))
        owner = valid_owner(named["owner"])
        try:
            if owner is None:
                raise InvalidInputError(NO_OWNER)
            plan = self.arena.pick(
                _request(named),
                pairing=_pairing(named),
                model=named["model"] or None,
                count=_count(named),
                keys=forms.visitor_keys(named["keys"], self.handlers.specs),
                server_keys=self.handlers.options.server_keys,
            )
        except PlaygroundError as exc:
            yield _frame(status=refused_text(str(exc)))
            return
        total = len(plan.jobs)
        yield _frame(status=making_text(None, total), view="", reveal="", round=None, **_buttons(total, active=False))
        try:
            async for game in self.arena.play(plan, owner=owner):
                if not self.arena.is_open(game.round_id):
                    return  # the visitor started another round (in another tab, say): this one shows nothing more
                yield _progress(game, total)
        except PlaygroundError as exc:
            yield _frame(status=refused_text(str(exc)), start=_next())

    def seen(self, round_id: str | None, owner: object, event: gr.EventData) -> Any:
        """The browser says every image of the round has loaded (the HTML's 'seen' event)."""
        reported = (getattr(event, "_data", None) or {}).get("round")
        if reported is not None and reported != round_id:
            return gr.skip()  # images of an older round finished loading: nothing to do
        try:
            game = self.arena.mark_seen(round_id, _owner(owner))
        except PlaygroundError as exc:
            return refused_text(str(exc))
        return seen_text(game) if game.seen and not game.voted else gr.skip()

    def voter(self, choice: str) -> Callable[[str | None, object], Awaitable[Frame]]:
        """The handler of one vote button."""

        async def vote(round_id: str | None, owner: object) -> Frame:
            return await self.vote(choice, round_id, owner)

        vote.__name__ = f"vote_{choice}"
        return vote

    async def vote(self, choice: str, round_id: str | None, owner: object) -> Frame:
        """Keep the vote and reveal the hosts, or say why it does not count (nothing else changes then)."""
        try:
            game = await self.arena.vote(round_id, _owner(owner), choice)
        except PlaygroundError as exc:
            return _frame(status=refused_text(str(exc)))
        return _frame(status=voted_text(game), reveal=reveal_markdown(game), start=_next(), **_active(game))

    # --- the board ---------------------------------------------------------------------------------------

    async def board(self, mode: str, view: str) -> tuple[Any, str]:
        """The leaderboard table and its note, for one mode and view."""
        store = self.handlers.service.history
        if store is None:
            return gr.skip(), "No history is kept, so there are no votes."
        board = await build_board(store, mode=_mode(mode), same_model=view == "same-model")
        rows = table(board) or [["", "no votes yet", *[""] * 7]]
        return rows, f"**{board.title()}.** {RANK_NOTE}"

    async def export_votes(self, mode: str) -> Any:
        """The mode's votes as a JSONL file to download."""
        store = self.handlers.service.history
        if store is None:
            return gr.skip()
        return _export(f"arena-votes-{_mode(mode)}.jsonl", votes_jsonl(await store.list_votes(mode=_mode(mode))))

    async def export_board(self, mode: str, view: str) -> Any:
        """The board as a CSV file to download (every number unrounded)."""
        store = self.handlers.service.history
        if store is None:
            return gr.skip()
        board = await build_board(store, mode=_mode(mode), same_model=view == "same-model")
        suffix = "-same-model" if board.same_model else ""
        return _export(f"arena-board-{board.mode}{suffix}.csv", board_csv(board))

    # --- what the tab's controls show ----------------------------------------------------------------------

    @staticmethod
    def owner_ready(owner: object) -> Any:
        """Start is clickable once the browser has its owner id."""
        return gr.update(interactive=valid_owner(owner) is not None)

    @staticmethod
    def mode_changed(mode: str) -> tuple[Any, Any]:
        """The input image and its URL box show in edit mode only."""
        return gr.update(visible=mode == "edit"), gr.update(visible=mode == "edit")

    @staticmethod
    def pairing_changed(pairing: str) -> Any:
        """The model choice matters only when the hosts share a model."""
        return gr.update(visible=pairing == "same-model")

    def routes(self) -> list[BaseRoute]:
        """GET /arena/image/{token}: a round's blind copy, while its round is open."""

        async def image(request: Request) -> Response:
            found = self.arena.image(request.path_params["token"])
            if found is None:
                return Response("not found: the round is over or the app restarted", status_code=404)
            headers = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
            return Response(found, media_type="image/png", headers=headers)

        return [Route(IMAGE_PATH + "{token}", image, methods=["GET"])]


def _progress(game: Round, total: int) -> Frame:
    """A round as it goes: images being made, then shown blind, or void with the reason and the hosts."""
    if game.void_reason is not None and game.ready == total:
        return _frame(status=refused_text(game.void_reason), reveal=reveal_markdown(game), start=_next())
    if game.shown:
        return _frame(status=shown_text(game), view=round_html(game), round=game.round_id, **_active(game))
    return _frame(status=making_text(game, total))


def _pairing(named: dict[str, Any]) -> Pairing:
    pairing: Pairing = named["pairing"] or "same-model"
    if pairing not in PAIRINGS:
        raise InvalidInputError(f"Compare {pairing!r} is not one of {', '.join(PAIRINGS)}.")
    return pairing


def _count(named: dict[str, Any]) -> int:
    try:
        return int(named["count"] or 2)
    except (TypeError, ValueError):
        raise InvalidInputError(f"Images per round must be 2, 3 or 4, not {str(named['count'])[:20]!r}.") from None


def _owner(value: object) -> str:
    """The browser's owner id; VoteRefusedError when it sent none we could have made."""
    owner = valid_owner(value)
    if owner is None:
        raise VoteRefusedError(NO_OWNER)
    return owner


def _request(named: dict[str, Any]) -> GenerationRequest:
    """The round's request from the form; InvalidInputError with one sentence when a value is wrong."""
    image = None
    if named["mode"] == "edit":
        source = named["image_path"] or (named["image_url"] or "").strip()
        if not source:
            raise InvalidInputError("Add an input image for an edit round: upload one, or paste an http(s) URL.")
        image = load_input_image(source)
    return build_request(named["prompt"] or "", image=image, aspect_ratio=named["aspect_ratio"], seed=_seed(named))


def _seed(named: dict[str, Any]) -> int | None:
    text = str(named["seed"] or "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise InvalidInputError(f"The seed must be a whole number, 0 or more, not {text[:20]!r}.")
    return int(text)


def _mode(mode: str) -> Any:
    return "edit" if mode == "edit" else "t2i"


def _frame(**parts: Any) -> Frame:
    """Updates in ARENA_OUTPUTS order; what a frame does not name stays as it is."""
    unknown = set(parts) - set(ARENA_OUTPUTS)
    assert not unknown, f"not an arena output: {unknown}"
    return [parts.get(name, gr.skip()) for name in ARENA_OUTPUTS]


def _buttons(count: int, *, active: bool) -> dict[str, Any]:
    """The vote buttons for a round of ``count`` images: A/B plus tie and both bad, or one per image."""
    pair = count == 2
    words = "is better" if pair else "is best"
    updates = {f"vote_{letter}": _button(f"{letter} {words}", i < count, active) for i, letter in enumerate(LETTERS)}
    updates |= {f"vote_{choice}": _button(None, pair, active) for choice in PAIR_CHOICES}
    return updates


def _button(label: str | None, visible: bool, active: bool) -> Any:
    return (
        gr.update(visible=visible, interactive=active)
        if label is None
        else gr.update(value=label, visible=visible, interactive=active)
    )


def _active(game: Round) -> dict[str, Any]:
    # Still clickable after the vote: a second click is refused with a sentence, not silently ignored.
    return _buttons(len(game.sides), active=True)


def _next() -> Any:
    return gr.update(value="Next round")


def _export(name: str, content: str) -> Any:
    """The file, shown for download (the download box stays hidden until there is something in it)."""
    folder = Path(tempfile.mkdtemp(prefix="arena-export-"))
    path = folder / name
    path.write_text(content, encoding="utf-8")
    return gr.update(value=str(path), visible=True)


__all__: Sequence[str] = ["ARENA_FIELDS", "ARENA_OUTPUTS", "ARENA_STATE", "ArenaHandlers"]
