"""Finding 7: sandbox mode (the default with no keys) was an open fetcher on a share link: the preview fetch and
the in-app sandbox fetched any URL a stranger typed (the metadata address answered) and showed it back."""

from __future__ import annotations

import httpx

from playground.cli import main
from tests.security.conftest import last, updates, wait_for
from tests.ui.conftest import form


def test_a_strangers_url_on_this_machine_is_fetched_by_nobody(shared_app, listener):
    sent_before = shared_app.sandbox.state.count("kie", "create")
    for url in (f"{listener.url}/latest/meta-data/iam", "http://169.254.169.254/latest/meta-data/"):
        outputs, runs = updates(shared_app.url, form("edit it", ["kie"], image=None, image_url=url), "/edit")
        status = last(outputs, runs, "status kie flux-kontext-pro")
        assert "private or local address" in status and "Nothing was sent" in status, status
    assert listener.seen == [], "the preview (or anything else) fetched the stranger's URL"
    assert shared_app.sandbox.state.count("kie", "create") == sent_before


def test_the_in_app_sandbox_of_a_shared_page_does_not_fetch_a_private_input_either(shared_app, listener):
    # Straight to the in-app sandbox, as a provider stand-in would be asked: its own fetch is guarded too.
    sandbox = shared_app.sandbox
    body = {"prompt": "edit it", "inputImage": f"{listener.url}/meta", "model": "flux-kontext-pro"}
    created = httpx.post(
        f"{sandbox.url}/kie/api/v1/flux/kontext/generate", json=body, headers={"Authorization": "Bearer k"}
    ).json()
    task_id = created["data"]["taskId"]
    wait_for(lambda: sandbox.state.jobs[task_id].result is not None, 20, "the sandbox to draw its result")
    assert listener.seen == []


def test_the_local_user_of_the_cli_sandbox_still_edits_a_local_url(listener, tmp_path, capsys, monkeypatch):
    # The control: the same fetch, asked by the local user, does reach the listener (so the checks above can fail).
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path / "data"))
    args = ["generate", "--sandbox", "--provider", "kie", "--prompt", "edit it", "--image", f"{listener.url}/cat.png"]
    assert main([*args, "--out", str(tmp_path / "out")]) == 0, capsys.readouterr()
    assert [hit["path"] for hit in listener.seen] == ["/cat.png"]
