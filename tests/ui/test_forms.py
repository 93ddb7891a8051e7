"""Form values to engine values, the preview of what each provider does with them, the run board."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from playground.errors import InvalidInputError, ProviderUnavailableError
from playground.models import JobEvent
from playground.providers import REGISTRY
from playground.ui import forms
from playground.ui.board import Board
from playground.ui.stream import changes

PRO = "flux-kontext-pro"


def form(**kw) -> forms.Form:
    values = dict(
        prompt="a fox",
        providers=["kie", "bfl"],
        models=[PRO],
        aspect_ratio="",
        output_format="jpeg",
        seed="",
        same_seed=True,
        randomize=False,
        safety="default",
        upsampling=False,
        translation="default",
        guidance=None,
    )
    return forms.Form(**(values | kw))


def preview(f: forms.Form, usable=tuple(REGISTRY), **kw) -> str:
    return "\n".join(forms.preview_lines(f, REGISTRY, list(usable), needs_image=False, **kw))


def test_an_unsupported_value_is_flagged_for_the_provider_that_lacks_it():
    text = preview(form(aspect_ratio="2:3", providers=["kie"]))
    assert "KIE AI does not support aspect ratio 2:3" in text


def test_an_ignored_control_is_marked_per_provider():
    text = preview(form(seed="42"))
    assert "seed ignored by KIE AI" in text and "seed ignored by Black Forest Labs" not in text


def test_a_provider_without_a_key_is_named_with_its_variable():
    assert "KIE AI has no API key: enter yours under **Keys** (KIE_API_KEY)" in preview(form(), usable=["bfl"])


def test_an_upload_is_flagged_for_url_only_providers_unless_the_app_can_host_it():
    edit = form(providers=["apixo"], image_path="/tmp/in.png")
    flagged = "\n".join(forms.preview_lines(edit, REGISTRY, ["apixo"], needs_image=True))
    hosted = "\n".join(forms.preview_lines(edit, REGISTRY, ["apixo"], needs_image=True, can_host=True))
    assert "APIXO takes input images only as public URLs" in flagged
    assert "public URLs" not in hosted


def test_the_preview_ends_with_the_cost_of_the_run():
    assert preview(form(models=[PRO, "flux-kontext-max"])).endswith(
        "**4 jobs**, about $0.12 (+ 2 with no published price: KIE AI pro, KIE AI max)"
    )


def test_the_preview_counts_the_prices_a_run_counts_prices_set_in_playground_prices_included(settings):
    from playground.service import GenerationService
    from playground.settings import parse_prices

    service = GenerationService(settings.model_copy(update={"prices": parse_prices("kie:pro=0.025,kie:max=0.05")}))
    text = preview(form(models=[PRO, "flux-kontext-max"]), price=service.price)
    assert text.endswith("**4 jobs**, about $0.195"), text
    assert "no published price" not in text


@pytest.mark.parametrize(("typed", "expected"), [("", None), (" 42 ", 42), ("7.0", 7), (None, None), (12.0, 12)])
def test_the_seed_box_takes_whole_numbers_or_nothing(typed, expected):
    assert form(seed=typed).typed_seed() == expected


@pytest.mark.parametrize(("typed", "message"), [("abc", "seed must be a number"), ("1.5", "whole number, not 1.5")])
def test_a_seed_that_is_not_a_whole_number_is_refused(typed, message):
    with pytest.raises(InvalidInputError, match=message):
        form(seed=typed).typed_seed()


def test_guidance_is_typed_as_text_and_checked_by_the_engine():
    assert forms.build(form(guidance=" 3.5 "), None, None).guidance == 3.5
    assert forms.build(form(guidance=""), None, None).guidance is None
    with pytest.raises(InvalidInputError, match="guidance must be a number"):
        forms.build(form(guidance="strong"), None, None)
    with pytest.raises(InvalidInputError, match=r"^The guidance must be from 1.0 to 20.0, not 50.0.$"):
        forms.build(form(guidance="50"), None, None)


@pytest.mark.parametrize(
    ("typed", "sentence"),
    [
        ("-5", "The seed must be from 0 to 4294967295, not -5."),
        ("1e99", "The seed must be from 0 to 4294967295, not 1e+99."),
    ],
)
def test_a_seed_out_of_range_gets_the_range_in_the_apps_own_words(typed, sentence):
    with pytest.raises(InvalidInputError) as refused:
        forms.build(form(seed=typed), form(seed=typed).typed_seed(), None)
    assert str(refused.value) == sentence


def test_randomize_picks_a_new_seed_each_run():
    seeds = {form(seed="1", randomize=True).next_seed() for _ in range(5)}
    assert len(seeds) > 1 and 1 not in seeds


def test_no_provider_or_no_model_is_refused():
    with pytest.raises(InvalidInputError, match="at least one provider"):
        forms.targets(form(providers=[]), REGISTRY)
    with pytest.raises(InvalidInputError, match="at least one provider"):
        forms.targets(form(models=[]), REGISTRY)


def test_the_form_becomes_the_engines_request():
    request = forms.build(form(seed="9", translation="off", safety="2", guidance="3.5"), 9, None)
    assert (request.seed, request.enable_translation, request.safety_tolerance, request.guidance) == (9, False, 2, 3.5)


def test_stored_keys_merge_keep_blank_boxes_and_drop_unknown_names():
    stored = forms.merge_keys(forms.empty_keys(), {"KIE_API_KEY": " k1 ", "BFL_API_KEY": ""}, REGISTRY)
    stored = forms.merge_keys(stored, {"KIE_API_KEY": "", "FAL_KEY": "k2", "OTHER": "x"}, REGISTRY)
    assert forms.stored_keys(stored, REGISTRY) == {"KIE_API_KEY": "k1", "FAL_KEY": "k2"}
    assert forms.visitor_keys(stored, REGISTRY)["KIE_API_KEY"].get_secret_value() == "k1"


def test_no_keys_is_stored_as_a_value_the_browser_keeps():
    assert forms.empty_keys() and forms.stored_keys(forms.empty_keys(), REGISTRY) == {}
    assert forms.stored_keys("garbage", REGISTRY) == {} and forms.stored_keys(None, REGISTRY) == {}


def event(provider: str, state: str, elapsed: float, **kw) -> JobEvent:
    label = REGISTRY[provider].label
    return JobEvent(
        run_id="r", provider=provider, provider_label=label, model=PRO, state=state, elapsed_s=elapsed, **kw
    )


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_stop_marks_what_still_runs_as_stopped_with_its_task_id():
    clock = Clock()
    board = Board.start([("kie", PRO), ("bfl", PRO)], REGISTRY, clock=clock)
    board.apply(event("kie", "running", 1.0, task_id="task-1"))
    board.apply(event("bfl", "succeeded", 1.0, task_id="task-2"))
    clock.now += 2.0
    assert board.stop() == [("kie", PRO)]
    kie = board.panels[("kie", PRO)]
    assert kie.state == "stopped" and kie.task_id == "task-1" and kie.elapsed_s == pytest.approx(3.0)
    assert "Task `task-1` may still finish: **Resume**" in kie.info(sandbox=True) and kie.is_resumable
    assert board.panels[("bfl", PRO)].state == "succeeded"
    assert board.apply(event("bfl", "running", 4.0)) is None, "a finished panel stays finished"
    assert board.apply(event("kie", "running", 5.0, task_id="task-1", resumed=True)) == ("kie", PRO)
    assert kie.state == "running" and kie.resumed, "a stopped panel runs again when its job is resumed"


async def scripted(events: list[tuple[float, JobEvent]], error: Exception | None = None) -> AsyncIterator[JobEvent]:
    for delay, item in events:
        await asyncio.sleep(delay)
        yield item
    if error is not None:
        raise error


async def test_events_that_arrive_together_become_one_update():
    board = Board.start([("kie", PRO), ("bfl", PRO)], REGISTRY)
    burst = [
        (0.0, event("kie", "queued", 0.0)),
        (0.0, event("bfl", "queued", 0.0)),
        (0.05, event("kie", "running", 0.1)),
    ]
    batches = [batch async for batch in changes(board, scripted(burst), tick_s=10)]
    assert batches[0] == [("kie", PRO), ("bfl", PRO)] and batches[-1] == [("kie", PRO)]


async def test_running_panels_tick_while_nothing_arrives_and_the_streams_error_comes_through():
    board = Board.start([("kie", PRO)], REGISTRY)
    script = [(0.0, event("kie", "running", 0.0, task_id="t")), (0.25, event("kie", "running", 0.3, task_id="t"))]
    failure = ProviderUnavailableError("KIE AI is unavailable (HTTP 503).")
    batches = []
    with pytest.raises(ProviderUnavailableError):
        async for batch in changes(board, scripted(script, failure), tick_s=0.05):
            batches.append(batch)
    assert len(batches) >= 3, "ticks refresh the running time between events"
