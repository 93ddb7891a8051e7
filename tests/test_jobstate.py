"""One job's life, as every view tells it: phases, moves, what can be resumed, one word per run."""

from __future__ import annotations

import pytest

from playground import jobstate
from playground.history import SqliteHistory
from playground.models import GenerationRequest, JobEvent


@pytest.mark.parametrize(
    ("state", "kind", "expected"),
    [
        ("queued", None, "queued"),
        ("running", None, "running"),
        ("succeeded", None, "done"),
        ("failed", "job_failed", "failed"),
        ("failed", "deadline", "timed out"),
        ("canceled", None, "canceled"),
        ("stopped", None, "stopped"),
        ("some-new-word", None, "failed"),
    ],
)
def test_each_state_has_one_phase_a_person_is_told(state, kind, expected):
    assert jobstate.phase(state, kind) == expected


@pytest.mark.parametrize(
    ("state", "kind", "task_id", "expected"),
    [
        ("stopped", None, "t1", True),
        ("stopped", None, None, False),  # stopped before it was submitted: nothing to find again
        ("failed", "deadline", "t1", True),
        ("failed", "unknown_status", "t1", True),
        ("failed", "job_failed", "t1", False),
        ("succeeded", None, "t1", False),
        ("running", None, "t1", True),
    ],
)
def test_only_a_submitted_job_not_known_to_be_over_can_be_resumed(state, kind, task_id, expected):
    assert jobstate.is_resumable(state, kind, task_id) is expected


@pytest.mark.parametrize(
    ("state", "kind", "new", "expected"),
    [
        ("queued", None, "running", True),
        ("running", None, "succeeded", True),
        ("stopped", None, "running", True),  # resumed
        ("stopped", None, "stopped", True),  # the create that was on its way gave its task id
        ("failed", "deadline", "running", True),  # a timed-out job resumed
        ("failed", "job_failed", "running", False),
        ("succeeded", None, "running", False),
        ("succeeded", None, "stopped", False),
        ("canceled", None, "succeeded", False),
    ],
)
def test_a_finished_job_stays_finished_and_a_stopped_one_can_run_again(state, kind, new, expected):
    assert jobstate.can_move(state, kind, new) is expected


def test_counts_keep_one_order_and_leave_out_empty_phases():
    assert jobstate.counts(["failed", "done", "stopped", "done"]) == {"done": 2, "stopped": 1, "failed": 1}
    assert list(jobstate.counts(["failed", "done", "stopped"])) == ["done", "stopped", "failed"]


@pytest.mark.parametrize(
    ("phases", "expected"),
    [
        (["done", "running"], "running"),
        (["done", "stopped"], "stopped"),
        (["done", "done"], "done"),
        (["failed", "timed out"], "failed"),
        (["done", "timed out"], "mixed"),
        ([], "running"),
    ],
)
def test_a_run_is_running_while_any_job_may_change_and_stopped_is_not_failed(phases, expected):
    assert jobstate.run_phase(phases) == expected


@pytest.mark.parametrize(
    "states",
    [
        ["succeeded", "succeeded"],
        ["succeeded", "stopped"],
        ["succeeded", "failed"],
        ["failed", "canceled"],
        ["running", "stopped"],
    ],
)
async def test_the_run_word_agrees_with_the_outcome_history_filters_by(states, tmp_path):
    # The store computes a run's outcome in SQL (to filter on it); the pages say run_phase. They must agree.
    store = SqliteHistory.open(tmp_path)
    targets = [("kie", "flux-kontext-pro"), ("bfl", "flux-kontext-pro")]
    await store.start_run("r", GenerationRequest(prompt="fox"), targets)
    for (provider, model), state in zip(targets, states, strict=True):
        fields = {"provider": provider, "provider_label": provider, "model": model, "elapsed_s": 1.0}
        await store.record(JobEvent(run_id="r", state=state, task_id=f"t-{provider}", **fields))
    [run] = await store.list_runs()
    store.close()
    words = {"succeeded": "done"}
    assert words.get(run.outcome, run.outcome) == jobstate.run_phase(jobstate.phase(s) for s in states)
