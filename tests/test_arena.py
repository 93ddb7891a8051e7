"""The arena against the sandbox: picking hosts, blind copies, the vote rules, votes kept, a planted difference."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from playground.arena import Arena
from playground.arena_round import Round
from playground.blind import png_chunks
from playground.errors import ConfigError, DuplicateVoteError, InvalidInputError, VoteRefusedError
from playground.history import SqliteHistory
from playground.models import GenerationRequest
from playground.providers import REGISTRY
from playground.sandbox import draw
from playground.service import GenerationService
from playground.settings import Settings
from playground.standings import build_board

PRO = "flux-kontext-pro"
ROUNDS_SEED = int(os.environ.get("ARENA_TEST_SEED", "7"))
ME, OTHER = "visitor-one", "visitor-two"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def small_images(sandbox):
    sandbox.state.image_px = 192  # the same drawing, fewer pixels: a quicker suite


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteHistory]:
    history = SqliteHistory.open(tmp_path / "data")
    yield history
    await history.aclose()


@pytest.fixture
async def arena_service(settings: Settings, store, sandbox, small_images) -> AsyncIterator[GenerationService]:
    sandbox.state.job_seconds = 0.05
    service = GenerationService(settings, history=store)
    yield service
    await service.aclose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def arena(arena_service, clock) -> Arena:
    return Arena(arena_service, now=clock)


async def play(arena: Arena, request: GenerationRequest, owner: str = ME, **pick) -> Round:
    rounds = [game async for game in arena.play(arena.pick(request, **pick), owner=owner)]
    return rounds[-1]


def label_bytes(image: bytes) -> list[str]:
    """Every provider label found in the file's bytes (a blind copy must have none). Labels, not the short
    names: three letters like 'kie' turn up by chance in half a megabyte of compressed pixels."""
    return [spec.label for spec in REGISTRY.values() if spec.label.encode() in image]


async def test_a_round_shows_two_hosts_of_one_model_as_same_size_pngs_without_metadata(arena):
    game = await play(arena, GenerationRequest(prompt="a red fox"))
    a, b = game.sides
    assert a.target[1] == b.target[1] and a.target[0] != b.target[0]
    originals = [Path(side.event.result.path).read_bytes() for side in game.sides]
    assert all(label_bytes(o) for o in originals), "the sandbox's files name their host: the check must be able to fail"
    copies = [side.image for side in game.sides]
    for copy in copies:
        assert png_chunks(copy) == ["IHDR"] + ["IDAT"] * (len(png_chunks(copy)) - 2) + ["IEND"]
        assert label_bytes(copy) == []
        with Image.open(io.BytesIO(copy)) as img:
            assert img.info == {} and not img.getexif()
    sizes = {Image.open(io.BytesIO(c)).size for c in copies}
    assert len(sizes) == 1
    assert len({a.token, b.token}) == 2 and all(len(side.token) >= 20 for side in game.sides)
    assert arena.image(a.token) == copies[0]


def sent_seed(body: object) -> object:
    """The seed in a request body, at any depth (Replicate nests its parameters under "input")."""
    if isinstance(body, dict):
        found = [sent_seed(v) if k != "seed" else v for k, v in body.items()]
        return next((f for f in found if f is not None), None)
    return None


async def test_every_side_gets_the_same_seed_where_it_takes_one(arena_service, store):
    four = {name: REGISTRY[name] for name in ("bfl", "fal", "replicate", "kie")}  # KIE takes no seed
    service = GenerationService(arena_service.settings, specs=four, history=store)
    arena = Arena(service)
    for asked, owner in ((1234, ME), (None, OTHER)):
        async with contextlib.aclosing(service):
            game = await play(arena, GenerationRequest(prompt="a fox", seed=asked), owner=owner, model=PRO, count=4)
        seeds = {side.target[0]: sent_seed(side.event.result.sent.body) for side in game.sides}
        shared = game.request.seed
        assert shared is not None and (asked is None or shared == asked)
        assert seeds == {"bfl": shared, "fal": shared, "replicate": shared, "kie": None}


async def test_a_target_that_refuses_the_request_is_never_picked(arena):
    # Runflow does not do text-to-image: its plan is refused, so it never appears in a text round.
    picked = {t for _ in range(30) for t in arena.pick(GenerationRequest(prompt="x"), pairing="any", count=4).targets}
    assert all(provider != "runflow" for provider, _ in picked)
    assert len(picked) > 4


async def test_too_few_hosts_says_so_and_sends_nothing(arena_service, sandbox):
    only_two = {name: REGISTRY[name] for name in ("kie", "runflow")}
    arena = Arena(GenerationService(arena_service.settings, specs=only_two))  # plan() opens no connection
    with pytest.raises(InvalidInputError, match=r"Only 1 hosts of FLUX.1 Kontext \[pro\].*needs 2.*Runflow"):
        arena.pick(GenerationRequest(prompt="x"), model=PRO)
    assert sandbox.state.count() == 0


async def test_the_vote_rules_not_seen_then_counted_then_a_second_vote_refused(arena, store):
    game = await play(arena, GenerationRequest(prompt="a red fox"))
    with pytest.raises(VoteRefusedError, match="finish loading"):
        await arena.vote(game.round_id, ME, "A")
    with pytest.raises(VoteRefusedError, match="another visitor"):
        arena.mark_seen(game.round_id, OTHER)
    arena.mark_seen(game.round_id, ME)
    with pytest.raises(VoteRefusedError, match="another visitor"):
        await arena.vote(game.round_id, OTHER, "A")
    await arena.vote(game.round_id, ME, "B")
    with pytest.raises(DuplicateVoteError, match="already voted"):
        await arena.vote(game.round_id, ME, "A")
    [vote] = await store.list_votes()
    a, b = game.sides
    assert (vote.a_provider, vote.a_model, vote.b_provider, vote.b_model) == (*a.target, *b.target)
    assert (vote.outcome, vote.choice, vote.mode, vote.prompt, vote.owner) == ("b", "B", "t2i", "a red fox", ME)
    assert vote.run_id == game.run_id and (vote.a_task_id, vote.b_task_id) == (a.event.task_id, b.event.task_id)


async def test_the_store_refuses_a_second_vote_even_when_the_round_forgets_it(arena, store):
    game = await play(arena, GenerationRequest(prompt="a fox"))
    arena.mark_seen(game.round_id, ME)
    await arena.vote(game.round_id, ME, "tie")
    game.choice = None  # as if a second process had the same round open
    with pytest.raises(DuplicateVoteError):
        await arena.vote(game.round_id, ME, "A")
    assert [v.outcome for v in await store.list_votes()] == ["tie"]


async def test_a_round_is_kept_out_of_the_history_until_its_vote(arena, store):
    game = await play(arena, GenerationRequest(prompt="a secret pair"))
    assert await store.get_run(game.run_id) is None, "History must not name the hosts before the vote"
    arena.mark_seen(game.round_id, ME)
    await arena.vote(game.round_id, ME, "A")
    kept = await store.get_run(game.run_id)
    assert kept is not None and {(j.provider, j.model, j.state) for j in kept.jobs} == {
        (*side.target, "succeeded") for side in game.sides
    }


async def test_a_failed_side_means_no_vote_and_says_why(arena, store, sandbox):
    for name in REGISTRY:
        sandbox.state.set_outcome(name, "fail")
    game = await play(arena, GenerationRequest(prompt="a fox"))
    assert game.void_reason is not None and game.void_reason.startswith("Side A failed")
    assert game.void_reason.endswith("No vote for this round.")
    with pytest.raises(VoteRefusedError, match="No vote for this round"):
        await arena.vote(game.round_id, ME, "A")
    assert await store.list_votes() == [] and await store.get_run(game.run_id) is not None


async def test_a_result_file_that_cannot_be_read_makes_the_round_void_not_a_crash(arena, monkeypatch):
    def unreadable(originals):
        raise OSError("cannot identify image file")

    monkeypatch.setattr("playground.arena.blind_copies", unreadable)
    game = await play(arena, GenerationRequest(prompt="a fox"))
    assert game.void_reason == (
        "The images could not be prepared for a blind comparison (cannot identify image file). No vote for this round."
    )


async def test_a_newer_round_replaces_the_visitors_open_one(arena):
    first = await play(arena, GenerationRequest(prompt="one"))
    await play(arena, GenerationRequest(prompt="two"))
    with pytest.raises(VoteRefusedError, match="no longer open"):
        await arena.vote(first.round_id, ME, "A")
    assert arena.image(first.sides[0].token) is None


async def test_a_round_left_unvoted_is_forgotten_after_half_an_hour_and_its_run_kept(arena, clock, store):
    old = await play(arena, GenerationRequest(prompt="left alone"), owner=OTHER)
    clock.now += timedelta(minutes=31)
    await play(arena, GenerationRequest(prompt="a later round"))
    assert not arena.is_open(old.round_id) and await store.get_run(old.run_id) is not None
    with pytest.raises(VoteRefusedError, match="no longer open"):
        await arena.vote(old.round_id, OTHER, "A")


async def test_a_pick_among_three_is_kept_as_two_pairwise_wins(arena, store):
    game = await play(arena, GenerationRequest(prompt="a fox"), count=3)
    arena.mark_seen(game.round_id, ME)
    with pytest.raises(VoteRefusedError, match="not a choice"):
        await arena.vote(game.round_id, ME, "tie")
    await arena.vote(game.round_id, ME, "C")
    votes = await store.list_votes()
    assert [(v.pair, v.outcome, v.a_provider, v.shown) for v in votes] == [
        (0, "a", game.sides[2].target[0], 3),
        (1, "a", game.sides[2].target[0], 3),
    ]
    assert {v.b_provider for v in votes} == {game.sides[0].target[0], game.sides[1].target[0]}


async def test_byte_identical_images_are_recorded_as_a_tie(arena_service, store, monkeypatch):
    monkeypatch.setattr(draw, "grain_sd", lambda bias: 0.0)  # no grain: both hosts draw the same pixels
    two = {name: REGISTRY[name] for name in ("kie", "apixo")}  # both return the PNG asked for
    service = GenerationService(arena_service.settings, specs=two, history=store)
    arena = Arena(service)
    async with contextlib.aclosing(service):
        game = await play(arena, GenerationRequest(prompt="a plain fox", output_format="png"), model=PRO)
    originals = [Path(side.event.result.path).read_bytes() for side in game.sides]
    assert originals[0] != originals[1], "the files differ (each names its host in its metadata)..."
    assert game.identical == {(0, 1)}, "...but their pixels, and so the blind copies, are the same"
    arena.mark_seen(game.round_id, ME)
    await arena.vote(game.round_id, ME, "A")
    [vote] = await store.list_votes()
    assert (vote.choice, vote.outcome, vote.identical) == ("A", "tie", True)


async def test_a_visitors_votes_are_limited_per_minute_and_others_are_not(arena_service, clock, store):
    arena = Arena(arena_service, votes_per_minute=2, now=clock)

    async def vote(owner: str) -> None:
        game = await play(arena, GenerationRequest(prompt="a fox"), owner=owner)
        arena.mark_seen(game.round_id, owner)
        await arena.vote(game.round_id, owner, "A")

    await vote(ME)
    await vote(ME)
    with pytest.raises(VoteRefusedError, match="2 rounds in the last minute"):
        await vote(ME)
    await vote(OTHER)
    clock.now += timedelta(seconds=61)
    await vote(ME)
    assert sum(v.owner == ME for v in await store.list_votes()) == 3


def grain(image: bytes) -> float:
    """How grainy an image is: the mean step between horizontal neighbours below the caption (gradients are
    vertical, so on a clean image that step is zero)."""
    with Image.open(io.BytesIO(image)) as img:
        pixels = np.asarray(img.convert("L"), dtype=float)
    below = pixels[pixels.shape[0] // 2 :]
    return float(np.abs(np.diff(below, axis=1)).mean())


async def test_the_board_finds_a_planted_difference_between_hosts(arena_service, sandbox, store):
    # Four hosts of [pro]; KIE's images are made worse in the sandbox. A voter who sees only the blind copies
    # picks the less grainy one. The board must put KIE last, its interval wholly below every other host's.
    four = {name: REGISTRY[name] for name in ("kie", "fluxapi", "apixo", "bfl")}
    service = GenerationService(arena_service.settings, specs=four, history=store)
    sandbox.state.set_bias("kie", -0.6)
    arena = Arena(service, rng=random.Random(ROUNDS_SEED))

    async def one_round(n: int) -> None:
        owner = f"voter-{n}"
        game = await play(arena, GenerationRequest(prompt=f"a lighthouse at dusk {n}"), owner=owner, model=PRO)
        arena.mark_seen(game.round_id, owner)
        a, b = (grain(side.image) for side in game.sides)
        await arena.vote(game.round_id, owner, "A" if a < b else "B")

    async with contextlib.aclosing(service):
        await asyncio.gather(*(one_round(n) for n in range(36)))
    board = await build_board(store, same_model=True, specs=four, rounds=300, min_votes=5)
    rows = {row.target: row for row in board.rows}
    assert set(rows) == set(four) and board.rows[-1].target == "kie"
    others = [row for name, row in rows.items() if name != "kie"]
    assert all(rows["kie"].upper < row.lower for row in others)
    assert rows["kie"].rank == 4 and rows["kie"].win_rate == 0.0


def test_the_arena_and_its_board_do_not_load_gradio():
    from tests.test_architecture import loads_gradio

    assert not loads_gradio(
        "playground.arena", "playground.standings", "playground.leaderboard_cli", "playground.ui.arena_view"
    )


def test_the_vote_limit_is_a_whole_number_in_settings():
    assert Settings.from_env({}).arena_votes_per_minute == 10
    assert Settings.from_env({"PLAYGROUND_ARENA_VOTES_PER_MINUTE": "3"}).arena_votes_per_minute == 3
    with pytest.raises(ConfigError, match="PLAYGROUND_ARENA_VOTES_PER_MINUTE is 'lots'; it must be a whole number"):
        Settings.from_env({"PLAYGROUND_ARENA_VOTES_PER_MINUTE": "lots"})


async def test_a_round_of_one_or_five_images_is_refused_before_anything_is_sent(arena, sandbox):
    for count in (1, 5):
        with pytest.raises(InvalidInputError, match=f"A round shows 2 to 4 images, not {count}"):
            arena.pick(GenerationRequest(prompt="x"), count=count)
    assert sandbox.state.count() == 0
