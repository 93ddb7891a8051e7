"""The blind arena: rounds of two (or N) hosts making the same image, shown without names, and the votes on them.

A round picks targets that can all take the request (``GenerationService.plan`` decides; refused ones are
skipped): by default one model on different hosts, or any provider x model. It fans the request out with
identical parameters and one shared seed (sent to every host that takes a seed), waits for every side, then
makes blind copies (``playground.blind``) served under random tokens. The sides are shuffled into A, B, ...

The rules a vote must pass, in order: the round is still open and is this visitor's; they have not voted on
it yet (the store enforces it as well); no side failed (a failed side means no vote, and the round says why);
the visitor's browser reported that every image loaded; on a shared page, the visitor's votes in the last
minute are under the limit. Two byte-identical images count as a tie whatever was clicked. An N-image pick
is kept as N-1 pairwise wins of the pick over each other image.

While a round is open its run is held back from the history (``HeldRun``), so the History tab cannot name
its hosts before the vote; it is written when the round is voted on, turns out void, or is abandoned.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import SecretStr

from playground.arena_round import LETTERS, HeldRun, Round, Side
from playground.blind import blind_copies
from playground.errors import DuplicateVoteError, InvalidInputError, VoteRefusedError
from playground.history import History, VoteMode
from playground.models import MODELS, GenerationRequest, model_info
from playground.service import GenerationService, Plan, Target

Pairing = Literal["same-model", "any"]
PAIRINGS: tuple[Pairing, ...] = ("same-model", "any")
MAX_SIDES = len(LETTERS)
SEED_LIMIT = 2**31  # the range every provider with a seed documents
MAX_OPEN_ROUNDS = 64  # rounds kept in memory (their blind copies with them); the oldest is abandoned first
RATE_WINDOW = timedelta(minutes=1)
ROUND_TTL = timedelta(minutes=30)  # an unvoted round is forgotten (its run written to the history) after this
DEFAULT_RATIO = "1:1"  # text-to-image rounds ask every host for this unless the visitor chose a ratio

GONE = (
    "This round is no longer open (the app restarted, a newer round replaced it, or it waited over 30 minutes): "
    "start a new round."
)
NOT_YOURS = "This round was shown to another visitor; only they can vote on it."
NOT_READY = "The images are still being made; vote once they are shown."
NOT_SEEN = "Every image must finish loading in your browser before you vote: wait until they are all shown."


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Arena:
    """Starts rounds through the service, serves their blind images, checks and keeps the votes."""

    def __init__(
        self,
        service: GenerationService,
        *,
        votes_per_minute: int | None = None,
        rng: random.Random | None = None,
        now: Callable[[], datetime] = _utc_now,
        max_rounds: int = MAX_OPEN_ROUNDS,
    ) -> None:
        self.service = service
        self.votes_per_minute = votes_per_minute
        self.rng = rng or random.SystemRandom()
        self.now = now
        self.max_rounds = max_rounds
        self._rounds: OrderedDict[str, Round] = OrderedDict()
        self._images: dict[str, Side] = {}
        self._latest: dict[str, str] = {}  # owner -> their open round

    @property
    def history(self) -> History:
        if self.service.history is None:
            raise InvalidInputError("The arena keeps its votes in the history, and this app keeps none.")
        return self.service.history

    # --- starting a round ----------------------------------------------------------------------------

    def pick(
        self,
        request: GenerationRequest,
        *,
        pairing: Pairing = "same-model",
        model: str | None = None,
        count: int = 2,
        keys: Mapping[str, SecretStr] | None = None,
        server_keys: bool = True,
    ) -> Plan:
        """A plan for ``count`` targets chosen at random among those that accept ``request``; nothing is sent.

        InvalidInputError, naming what is missing, when too few targets can take it.
        """
        if not 2 <= count <= MAX_SIDES:
            raise InvalidInputError(f"A round shows 2 to {MAX_SIDES} images, not {count}.")
        if request.seed is None:  # one seed for every side that takes one
            request = request.model_copy(update={"seed": self.rng.randrange(SEED_LIMIT)})
        if request.aspect_ratio is None and not request.is_edit:  # hosts' default sizes differ: ask for one
            request = request.model_copy(update={"aspect_ratio": DEFAULT_RATIO})
        groups = _groups(self.service, pairing, model)
        plans = {name: self.service.plan(request, targets, keys, server_keys=server_keys) for name, targets in groups}
        able = [plan for plan in plans.values() if len(plan.jobs) >= count]
        if not able:
            raise InvalidInputError(_too_few(plans, count))
        plan = self.rng.choice(able)
        chosen = self.rng.sample(list(plan.jobs), count)
        return replace(plan, jobs=tuple(chosen), refused=())

    async def play(self, plan: Plan, *, owner: str, timeout_s: float | None = None) -> AsyncIterator[Round]:
        """Run the round: yield it as each side ends, then once it is complete (shown, or void)."""
        await self._abandon(self._latest.get(owner))
        labels = {job.spec.name: job.spec.label for job in plan.jobs}
        sides = [Side(LETTERS[i], target, labels[target[0]]) for i, target in enumerate(plan.targets)]
        mode: VoteMode = "edit" if plan.request.is_edit else "t2i"
        held = HeldRun(self.service.history)
        game = Round(secrets.token_urlsafe(12), owner, mode, plan.request, sides, held, opened_at=self.now())
        await self._open(game)
        by_target = {side.target: side for side in sides}
        events = self.service.run(plan, owner=owner, history=held, timeout_s=timeout_s)
        try:
            async with contextlib.aclosing(events) as stream:
                async for event in stream:
                    if event.is_terminal and (event.provider, event.model) in by_target:
                        by_target[(event.provider, event.model)].event = event
                        yield game
            await self._finish(game)
        finally:
            if not game.shown:
                await held.release()  # void, stopped or failed: nothing blind left to protect
        yield game

    async def _finish(self, game: Round) -> None:
        if game.void_reason is not None:
            return
        paths = [Path(side.event.result.path) for side in game.sides if side.event and side.event.result]
        try:
            originals = [await asyncio.to_thread(path.read_bytes) for path in paths]
            copies = await asyncio.to_thread(blind_copies, originals)
        except (OSError, ValueError) as exc:  # a kept file gone or unreadable (PIL's errors are OSErrors)
            game.problem = f"The images could not be prepared for a blind comparison ({exc})."
            return
        pairs = [(i, j) for i in range(len(paths)) for j in range(i + 1, len(paths))]
        game.identical = frozenset((i, j) for i, j in pairs if originals[i] == originals[j] or copies[i] == copies[j])
        for side, copy in zip(game.sides, copies, strict=True):
            side.image = copy
            if self.is_open(game.round_id):  # a round replaced meanwhile serves nothing
                self._images[side.token] = side

    async def _open(self, game: Round) -> None:
        """Keep the round open; forget the oldest beyond ``max_rounds`` and any open longer than ROUND_TTL."""
        self._rounds[game.round_id] = game
        self._latest[game.owner] = game.round_id
        stale = [r for r, open_round in self._rounds.items() if _age(open_round, game) > ROUND_TTL]
        for round_id in stale:
            await self._abandon(round_id)
        while len(self._rounds) > self.max_rounds:
            await self._abandon(next(iter(self._rounds)))

    async def _abandon(self, round_id: str | None) -> None:
        """Forget an open round (its run goes to the history as it is); a voted one is already there."""
        game = self._rounds.pop(round_id, None) if round_id else None
        if game is None:
            return
        for side in game.sides:
            self._images.pop(side.token, None)
        if self._latest.get(game.owner) == round_id:
            del self._latest[game.owner]
        await game.held.release()

    # --- seeing and voting ---------------------------------------------------------------------------

    def is_open(self, round_id: str) -> bool:
        """Whether the round is still open (not replaced by its visitor's newer round, nor forgotten)."""
        return round_id in self._rounds

    def image(self, token: str) -> bytes | None:
        """A blind copy by its token, or None when no open round has it."""
        side = self._images.get(token)
        return side.image if side is not None else None

    def round(self, round_id: str | None, owner: str | None) -> Round:
        """The open round ``round_id`` of ``owner``; VoteRefusedError when it is gone or someone else's."""
        game = self._rounds.get(round_id or "")
        if game is None:
            raise VoteRefusedError(GONE)
        if game.owner != owner:
            raise VoteRefusedError(NOT_YOURS)
        return game

    def mark_seen(self, round_id: str | None, owner: str | None) -> Round:
        """The visitor's browser says every image of the round has loaded."""
        game = self.round(round_id, owner)
        if game.shown:
            game.seen = True
        return game

    async def vote(self, round_id: str | None, owner: str | None, choice: str) -> Round:
        """Check and keep a vote; the round, now revealed. VoteRefusedError (nothing kept) when it cannot count."""
        game = self.round(round_id, owner)
        if game.voted:
            raise DuplicateVoteError()
        if game.void_reason is not None:
            raise VoteRefusedError(game.void_reason)
        if not game.shown:
            raise VoteRefusedError(NOT_READY)
        if not game.seen:
            raise VoteRefusedError(NOT_SEEN)
        if choice not in game.choices():
            raise VoteRefusedError(f"{choice!r} is not a choice in this round ({', '.join(game.choices())}).")
        at = self.now()
        await self._check_rate(game.owner, at)
        await game.held.release()  # the run is in the history before the votes that name it
        await self.history.record_votes(game.votes(choice, at))
        game.choice = choice
        return game

    async def _check_rate(self, owner: str, at: datetime) -> None:
        limit = self.votes_per_minute
        if not limit:
            return
        recent = await self.history.count_voted_rounds(owner, at - RATE_WINDOW)
        if recent >= limit:
            raise VoteRefusedError(
                f"You voted on {recent} rounds in the last minute, the most this shared page counts per visitor; "
                "wait a moment, then vote."
            )


def _age(old: Round, new: Round) -> timedelta:
    if old.opened_at is None or new.opened_at is None:
        return timedelta(0)
    return new.opened_at - old.opened_at


def _groups(service: GenerationService, pairing: Pairing, model: str | None) -> list[tuple[str, list[Target]]]:
    """Candidate target sets, named: one per model (same model, different hosts), or every provider x model."""
    models = [model] if model else list(MODELS)
    per_model = [(m, [(name, m) for name, spec in service.specs.items() if spec.serves(m)]) for m in models]
    if pairing == "same-model":
        return [(f"hosts of {model_info(m).name}", targets) for m, targets in per_model]
    return [("provider x model targets", [t for _, targets in per_model for t in targets])]


def _too_few(plans: Mapping[str, Plan], count: int) -> str:
    """Why no round can start: how many targets could take the request, and what the others said."""
    what, best = max(plans.items(), key=lambda item: len(item[1].jobs))
    reasons = "; ".join(dict.fromkeys(refusal.reason.rstrip(".") for refusal in best.refused))
    tail = f" The others cannot: {reasons[:600]}." if reasons else ""
    return f"Only {len(best.jobs)} {what} can take this request, and a round needs {count}.{tail}"
