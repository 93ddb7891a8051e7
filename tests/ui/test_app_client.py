"""The page's generate and edit endpoints through gradio_client, on the sandbox."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from gradio_client import Client, handle_file

from tests.ui.conftest import Outputs, RunningApp, form

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
    kept = next(ui_app.out_dir.glob("*/kie-flux-kontext-pro.jpg")).read_bytes()
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
    assert "Failures**: 1" in last(outputs, updates, "summary")


def test_a_failed_job_names_the_providers_reason(ui_app):
    outputs, updates = stream(ui_app, form("a fox sandbox:fail", ["runapi"]))
    assert statuses(outputs, updates, "runapi")[-1].startswith("✘ failed: RunAPI.ai reports the job failed")


def test_an_edit_over_the_seed_providers_and_both_models_runs_in_about_the_slowest_jobs_time(ui_app):
    job_s = ui_app.sandbox.state.job_seconds = 2.0
    seeds = ["kie", "fluxapi", "runapi", "runflow", "apixo"]
    args = form("make it snowy", seeds, models=(PRO, MAX), image=handle_file(str(EXAMPLE)))
    started = time.monotonic()
    outputs, updates = stream(ui_app, args, "/edit")
    wall = time.monotonic() - started
    for provider, model in [(p, m) for p in seeds for m in (PRO, MAX)]:
        final = statuses(outputs, updates, provider, model)[-1]
        if provider in ("apixo", "fluxapi"):  # no upload API: refused in its own panel, nothing sent
            assert "takes input images only as public URLs" in final and "Nothing was sent" in final
            continue
        assert final.startswith("✔ done"), (provider, model, final)
        before, after = last(outputs, updates, f"before / after {provider} {model}")
        assert before["path"] and after["url"].endswith(".jpg")
    assert ui_app.sandbox.state.count("apixo") == 0
    # One after another they would take 12 s; the allowance covers the upload, polling and page updates.
    assert wall < job_s + 3.0, f"6 parallel jobs of {job_s} s took {wall:.1f} s"


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
    assert "neither an http(s) URL nor a local file" in last(outputs, updates, "message")
    outputs, updates = stream(ui_app, form("edit it", ["kie"], image=None, image_url=""), "/edit")
    assert "Add an input image" in last(outputs, updates, "message")
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
    ui_app.sandbox.state.job_seconds = 2.0
    walls: list[float] = []

    def run() -> None:
        started = time.monotonic()
        outputs, updates = stream(ui_app, form("a fox", ["kie"]))
        assert statuses(outputs, updates, "kie")[-1].startswith("✔ done")
        walls.append(time.monotonic() - started)

    threads = [threading.Thread(target=run) for _ in range(2)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    together = time.monotonic() - started
    assert len(walls) == 2
    assert together < 2 * 2.0, f"two 2 s runs took {together:.1f} s together: one waited for the other"
