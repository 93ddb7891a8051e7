"""The page's generate and edit endpoints through gradio_client, on the sandbox."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from pathlib import Path
from typing import Any

import httpx
from gradio_client import Client, handle_file

from tests.ui.conftest import BROWSER_SECRET, Outputs, RunningApp, form

PRO, MAX = "flux-kontext-pro", "flux-kontext-max"
EXAMPLE = Path(__file__).resolve().parents[2] / "playground" / "ui" / "assets" / "example-input.png"


def client(app: RunningApp) -> Client:
    return Client(app.url, verbose=False, download_files=False)


def stream(app: RunningApp, args: list[Any], api_name: str = "/generate") -> tuple[Outputs, list[tuple[Any, ...]]]:
    """Every update of one run, in order."""
    c = client(app)
    outputs = Outputs(c, api_name)
    return outputs, [tuple(update) for update in c.submit(*args, api_name=api_name)]


def statuses(outputs: Outputs, updates: list[tuple[Any, ...]], provider: str, model: str = PRO) -> list[str]:
    """The status lines one panel showed, in order, without repeats."""
    seen = [outputs.get(u, f"status {provider} {model}") for u in updates]
    return [s for i, s in enumerate(seen) if s and (i == 0 or s != seen[i - 1])]


def last(outputs: Outputs, updates: list[tuple[Any, ...]], label: str) -> Any:
    """The last value an update gave ``label``."""
    values = [v for u in updates if (v := outputs.get(u, label)) is not None]
    return values[-1] if values else None


def test_a_run_streams_queued_and_running_before_done_and_ends_with_original_images(ui_app):
    outputs, updates = stream(ui_app, form("a red fox", ["kie", "fluxapi", "runapi"]))
    for provider in ("kie", "fluxapi", "runapi"):
        shown = statuses(outputs, updates, provider)
        assert "queued" in shown[0], shown
        assert any("running" in s for s in shown[1:-1]), shown
        assert shown[-1].startswith("✔ done in"), shown
    image = last(outputs, updates, "image kie flux-kontext-pro")
    served = httpx.get(image["url"]).content
    (newest,) = asyncio.run(ui_app.service.history.list_runs(limit=1))
    record = asyncio.run(ui_app.service.history.get_run(newest.run_id))
    kept = Path(next(job.result_path for job in record.jobs if job.provider == "kie")).read_bytes()
    assert hashlib.sha256(served).digest() == hashlib.sha256(kept).digest(), "the browser must get the provider's bytes"
    assert "Total cost" in last(outputs, updates, "summary")


def test_the_parameters_sent_and_a_redacted_curl_are_shown(ui_app):
    outputs, updates = stream(ui_app, form("a red fox", ["kie"], seed="42"))
    assert last(outputs, updates, "sent kie flux-kontext-pro")["prompt"] == "a red fox"
    curl = last(outputs, updates, "curl kie flux-kontext-pro")
    assert '"Authorization: Bearer $KIE_API_KEY"' in curl and "sandbox-key" not in curl
    assert "seed ignored by KIE AI" in last(outputs, updates, "info kie flux-kontext-pro")


def test_a_fault_on_one_provider_shows_its_reason_while_the_others_finish(ui_app):
    ui_app.sandbox.state.inject("kie", "create", "500")
    outputs, updates = stream(ui_app, form("a red fox", ["kie", "fluxapi", "runapi"]))
    failed = statuses(outputs, updates, "kie")[-1]
    assert failed.startswith("✘ failed: KIE AI is unavailable (HTTP 500)"), failed
    assert "try again" in last(outputs, updates, "info kie flux-kontext-pro")
    assert statuses(outputs, updates, "fluxapi")[-1].startswith("✔ done")
    assert statuses(outputs, updates, "runapi")[-1].startswith("✔ done")
    assert ": 2 done · 1 failed" in last(outputs, updates, "summary")


def test_a_failed_job_names_the_providers_reason(ui_app):
    outputs, updates = stream(ui_app, form("a fox sandbox:fail", ["runapi"]))
    assert statuses(outputs, updates, "runapi")[-1].startswith("✘ failed: RunAPI.ai reports the job failed")


def test_an_edit_over_the_seed_providers_and_both_models_runs_every_job_at_once(ui_app):
    ui_app.sandbox.state.job_seconds = 2.0
    prompt = "make it snowy, every panel at once"
    seeds = ["kie", "fluxapi", "runapi", "runflow", "apixo"]
    args = form(prompt, seeds, models=(PRO, MAX), image=handle_file(str(EXAMPLE)))
    outputs, updates = stream(ui_app, args, "/edit")
    for provider, model in [(p, m) for p in seeds for m in (PRO, MAX)]:
        final = statuses(outputs, updates, provider, model)[-1]
        if provider in ("apixo", "fluxapi"):  # no upload API: refused in its own panel, nothing sent
            assert "takes input images only as public URLs" in final and "Nothing was sent" in final
            continue
        assert final.startswith("✔ done"), (provider, model, final)
        before, after = last(outputs, updates, f"before / after {provider} {model}")
        assert before["path"] and after["url"].endswith(".jpg")
    assert ui_app.sandbox.state.count("apixo") == 0
    # Not timed (bench/fanout.py measures): every job was created before the first of them ended.
    jobs = [job for job in ui_app.sandbox.state.jobs.values() if job.prompt == prompt]
    assert len(jobs) == 6
    assert max(job.created_at for job in jobs) < min(job.created_at + job.duration_s for job in jobs)


def test_an_edit_from_an_image_url_reaches_url_only_providers_with_before_and_after(ui_app):
    url = f"{ui_app.sandbox.url}/files/{ui_app.sandbox.state.add_file(EXAMPLE.read_bytes(), 'image/png')}"
    outputs, updates = stream(ui_app, form("make it snowy", ["kie", "apixo"], image=None, image_url=url), "/edit")
    for provider in ("kie", "apixo"):
        assert statuses(outputs, updates, provider)[-1].startswith("✔ done")
        before, after = last(outputs, updates, f"before / after {provider} {PRO}")
        assert before["path"].endswith(".png") and after["path"].endswith(".jpg")
        assert url in str(last(outputs, updates, f"sent {provider} {PRO}")), "the URL goes to the provider as is"


def test_an_input_url_the_app_cannot_read_still_shows_the_results(ui_app):
    unreachable = "http://127.0.0.1:9/photo.png"
    outputs, updates = stream(ui_app, form("make it snowy", ["kie"], image=None, image_url=unreachable), "/edit")
    assert "could not be read from here" in last(outputs, updates, "message")
    before, after = last(outputs, updates, f"before / after kie {PRO}")
    assert after["path"].endswith(".jpg") and before["path"] == after["path"]


def test_bad_input_is_refused_with_one_sentence_and_nothing_is_sent(ui_app):
    sent_before = ui_app.sandbox.state.count()
    not_http = form("edit it", ["kie"], image=None, image_url="ftp://example.com/a.png")
    outputs, updates = stream(ui_app, not_http, "/edit")
    assert "takes an http(s) URL only" in last(outputs, updates, "message")
    outputs, updates = stream(ui_app, form("edit it", ["kie"], image=None, image_url=""), "/edit")
    assert "Add an input image" in last(outputs, updates, "message")
    edit = dict(image=None, image_url="https://example.com/a.png")
    for api_name, extra in (("/generate", {}), ("/edit", edit)):  # a sentence, not an error the page cannot show
        outputs, updates = stream(ui_app, form("a fox", ["kie"], seed="abc", **extra), api_name)
        assert last(outputs, updates, "message") == "✘ The seed must be a number, not 'abc'."
    assert ui_app.sandbox.state.count() == sent_before


def test_randomize_writes_the_new_seed_back(ui_app):
    outputs, updates = stream(ui_app, form("a fox", ["bfl"], seed="7", randomize=True))
    seed = last(outputs, updates, "Seed")
    assert seed not in (None, "", "7") and int(seed) >= 0


def test_a_visitors_key_is_used_for_their_run_and_shows_up_nowhere(ui_app, caplog, capfd):
    key = "visitor-key-5b1e0c7d"
    ui_app.sandbox.state.keys = {"kie": key}  # the sandbox now refuses the server's own key
    caplog.set_level(logging.DEBUG)
    keys = {"v": 1, "keys": {"KIE_API_KEY": key}}
    outputs, mine = stream(ui_app, form("a fox", ["kie"], keys=keys))
    assert statuses(outputs, mine, "kie")[-1].startswith("✔ done")

    outputs, theirs = stream(ui_app, form("a fox", ["kie"]))
    refused = statuses(outputs, theirs, "kie")[-1]
    assert "rejected the API key" in refused and "KIE_API_KEY" in refused
    other = client(ui_app)
    page_config = httpx.get(f"{ui_app.url}config").text
    out, err = capfd.readouterr()
    assert key not in str(mine) and key not in str(theirs) and key not in page_config
    assert key not in caplog.text and key not in out and key not in err
    assert '"run_history":false' in page_config.replace(" ", "")
    assert key not in str(other.view_api(return_format="dict", print_info=False))


def test_two_runs_at_once_do_not_wait_for_each_other(ui_app):
    # Not timed: the sandbox's own record shows whether the second job was created while the first still ran.
    # Had Gradio queued one run behind the other, the second create would come after the first job had ended.
    ui_app.sandbox.state.job_seconds = 2.0
    visitors = [client(ui_app) for _ in range(2)]
    outputs = Outputs(visitors[0], "/generate")
    ended: list[str] = []

    def run(visitor: Client, prompt: str) -> None:
        updates = [tuple(update) for update in visitor.submit(*form(prompt, ["kie"]), api_name="/generate")]
        ended.append(statuses(outputs, updates, "kie")[-1])

    prompts = ["a fox at dawn", "a fox at dusk"]
    threads = [threading.Thread(target=run, args=pair) for pair in zip(visitors, prompts, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(ended) == 2 and all(status.startswith("✔ done") for status in ended), ended
    jobs = sorted(
        (job for job in ui_app.sandbox.state.jobs.values() if job.prompt in prompts), key=lambda job: job.created_at
    )
    assert len(jobs) == 2
    first, second = jobs
    assert second.created_at < first.created_at + first.duration_s, "the second run waited for the first to end"


def test_the_history_database_and_browser_secret_are_never_served(ui_app):
    stream(ui_app, form("a fox", ["kie"]))  # the history file now exists
    data = ui_app.service.settings.data_dir.resolve()
    for private in (data / "history.sqlite3", data / "browser-secret"):
        response = httpx.get(f"{ui_app.url}gradio_api/file={private}")
        assert response.status_code in (403, 404), (private.name, response.status_code)
        assert b"SQLite format" not in response.content and BROWSER_SECRET.encode() not in response.content
