"""One arena round: its sides (which target made which image, secret until the vote), its run held back from
the history, and the pairwise votes a choice stands for. ``playground.arena`` plays rounds and checks votes.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from playground.history import History, Vote, VoteMode, VoteOutcome
from playground.models import GenerationRequest, JobEvent
from playground.service import Target

LETTERS = "ABCD"
PAIR_CHOICES = ("tie", "both_bad")
PAIR_OUTCOMES: dict[str, VoteOutcome] = {"A": "a", "B": "b", "tie": "tie", "both_bad": "both_bad"}


class HeldRun:
    """A round's run, kept back from the history until ``release()``; then written as it happened."""

    def __init__(self, history: History | None) -> None:
        self.history = history
        self.run_id: str | None = None
        self._calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self._released = False

    async def start_run(
        self,
        run_id: str,
        request: GenerationRequest,
        targets: Sequence[tuple[str, str]],
        *,
        kind: str = "generate",
        owner: str | None = None,
    ) -> None:
        self.run_id = run_id
        await self._keep("start_run", (run_id, request, targets), {"kind": kind, "owner": owner})

    async def record(self, event: JobEvent) -> None:
        await self._keep("record", (event,), {})

    async def _keep(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self._released and self.history is not None:
            await getattr(self.history, method)(*args, **kwargs)
        else:
            self._calls.append((method, args, kwargs))

    async def release(self) -> None:
        """Write everything held, in order; later events go straight to the history. Safe to call twice."""
        self._released = True
        calls, self._calls = self._calls, []
        for method, args, kwargs in calls if self.history is not None else ():
            await getattr(self.history, method)(*args, **kwargs)


@dataclass
class Side:
    """One image of a round: which target made it (secret until the vote), its result, its blind copy."""

    letter: str
    target: Target
    label: str
    token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    event: JobEvent | None = None
    image: bytes | None = None

    @property
    def succeeded(self) -> bool:
        return self.event is not None and self.event.state == "succeeded" and self.event.result is not None

    @property
    def failure(self) -> str | None:
        """Why this side has no image, once it ended without one."""
        if self.event is None or self.succeeded:
            return None
        return self.event.error or self.event.message or f"the job ended as {self.event.state}"


@dataclass
class Round:
    """One blind comparison, owned by the visitor who started it."""

    round_id: str
    owner: str
    mode: VoteMode
    request: GenerationRequest
    sides: list[Side]
    held: HeldRun
    seen: bool = False
    identical: frozenset[tuple[int, int]] = frozenset()  # side index pairs with byte-identical images
    choice: str | None = None
    opened_at: datetime | None = None
    problem: str | None = None  # why the images could not be shown, though every side made one

    @property
    def run_id(self) -> str:
        return self.held.run_id or ""

    @property
    def ready(self) -> int:
        """How many sides have ended (with or without an image)."""
        return sum(side.event is not None for side in self.sides)

    @property
    def shown(self) -> bool:
        return all(side.image is not None for side in self.sides)

    @property
    def void_reason(self) -> str | None:
        """Why no vote can be cast (a side failed), as a sentence; None when the round can be voted on."""
        failed = [f"Side {s.letter} failed: {s.failure.rstrip('.')}." for s in self.sides if s.failure]
        failed += [self.problem] if self.problem else []
        return " ".join([*failed, "No vote for this round."]) if failed else None

    @property
    def voted(self) -> bool:
        return self.choice is not None

    def choices(self) -> tuple[str, ...]:
        """What may be clicked: a letter, and for two images also a tie or both bad."""
        letters = tuple(side.letter for side in self.sides)
        return letters + PAIR_CHOICES if len(self.sides) == 2 else letters

    def votes(self, choice: str, at: datetime) -> list[Vote]:
        """The pairwise votes ``choice`` stands for (one for two images; N-1 for a pick among N).

        A pair of byte-identical images counts as a tie whatever was clicked.
        """
        if len(self.sides) == 2:
            return [self._vote(0, 1, 0, "tie" if (0, 1) in self.identical else PAIR_OUTCOMES[choice], choice, at)]
        pick = LETTERS.index(choice)
        others = [i for i in range(len(self.sides)) if i != pick]
        return [
            self._vote(pick, other, n, "tie" if _pair(pick, other) in self.identical else "a", choice, at)
            for n, other in enumerate(others)
        ]

    def _vote(self, a: int, b: int, pair: int, outcome: VoteOutcome, choice: str, at: datetime) -> Vote:
        first, second = self.sides[a], self.sides[b]
        return Vote(
            round_id=self.round_id,
            pair=pair,
            run_id=self.run_id,
            mode=self.mode,
            prompt=self.request.prompt,
            a_provider=first.target[0],
            a_model=first.target[1],
            a_task_id=first.event.task_id if first.event else None,
            b_provider=second.target[0],
            b_model=second.target[1],
            b_task_id=second.event.task_id if second.event else None,
            outcome=outcome,
            choice=choice,
            identical=_pair(a, b) in self.identical,
            shown=len(self.sides),
            owner=self.owner,
            at=at,
        )


def _pair(i: int, j: int) -> tuple[int, int]:
    return (i, j) if i < j else (j, i)
