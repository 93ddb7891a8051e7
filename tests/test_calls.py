"""The API calls without gradio: whose keys a call spends, whose runs it sees, what it refuses."""

from __future__ import annotations

import pytest

from playground import calls
from playground.errors import InvalidInputError
from playground.history import SqliteHistory
from playground.links import ResultLinks
from playground.service import GenerationService

LINKS = ResultLinks("test secret", "http://127.0.0.1:7860")


@pytest.fixture
async def real_keys_service(settings, tmp_path):
    """The server has keys (not sandbox mode), as on a hosted page; the sandbox stands in for the providers."""
    store = SqliteHistory.open(tmp_path / "data")
    service = GenerationService(settings.model_copy(update={"sandbox": False}), history=store)
    yield service
    await service.aclose()
    store.close()


async def test_where_the_page_would_not_spend_the_servers_key_a_call_does_not_either(real_keys_service, sandbox):
    refused = await calls.compare(real_keys_service, LINKS, prompt="a fox", providers=["kie"], server_keys=False)
    assert refused["jobs"] == [] and "needs your own API key" in refused["refused"][0]["reason"]
    assert sandbox.state.count() == 0
    sandbox.state.keys["kie"] = "callers-key"
    mine = await calls.compare(
        real_keys_service,
        LINKS,
        prompt="a fox",
        providers=["kie"],
        keys={"KIE_API_KEY": "callers-key"},
        server_keys=False,
    )
    assert [job["state"] for job in mine["jobs"]] == ["succeeded"]
    assert mine["jobs"][0]["image_url"].startswith("http://127.0.0.1:7860/results/")


async def test_on_a_shared_page_a_caller_sees_only_the_runs_kept_under_their_owner(real_keys_service, sandbox):
    owner = "caller-owner-0123456789"
    await calls.compare(real_keys_service, LINKS, prompt="mine", providers=["bfl"], owner=owner)
    await calls.compare(real_keys_service, LINKS, prompt="theirs", providers=["bfl"], owner="another-owner-0123456")
    assert (await calls.history(real_keys_service, LINKS, shared=True))["runs"] == []
    listed = await calls.history(real_keys_service, LINKS, owner=owner, shared=True)
    assert [run["prompt"] for run in listed["runs"]] == ["mine"]
    theirs = (await calls.history(real_keys_service, LINKS, query="theirs"))["runs"][0]["run_id"]
    with pytest.raises(InvalidInputError, match="not in your history"):
        await calls.history(real_keys_service, LINKS, run_id=theirs, owner=owner, shared=True)


@pytest.mark.parametrize(
    ("filters", "sentence"),
    [
        ({"limit": 0}, "limit must be between 1 and 200"),
        ({"outcome": "done"}, "Outcome 'done' is not one of"),
        ({"after": "nonsense"}, "not one this history gave out"),
    ],
)
async def test_a_bad_history_call_is_one_sentence(real_keys_service, filters, sentence):
    with pytest.raises(InvalidInputError, match=sentence):
        await calls.history(real_keys_service, LINKS, **filters)


async def test_a_compare_without_providers_is_refused_before_anything_is_sent(real_keys_service, sandbox):
    with pytest.raises(InvalidInputError, match="Name at least one provider"):
        await calls.compare(real_keys_service, LINKS, prompt="a fox", providers=[])
    assert sandbox.state.count() == 0
