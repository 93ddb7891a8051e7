"""Finding 1: the image-URL box read the server's disk, told whether a path exists, and read 1 GB files whole."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from tests.conftest import png_bytes
from tests.security.conftest import ROOT, last, updates
from tests.ui.conftest import form

REFUSED = "takes an http(s) URL only"


def test_the_url_box_takes_no_path_and_says_the_same_whether_it_exists_or_not(shared_app):
    result = shared_app.out_dir / "someone-else" / "kie-flux-kontext-pro.png"  # another visitor's result
    result.parent.mkdir(parents=True, exist_ok=True)
    result.write_bytes(png_bytes((64, 64)))
    sent_before = shared_app.sandbox.state.count()
    answers = []
    for typed in (str(result), str(result.parent / "missing.png"), f"file://{result}", "../../etc/hostname"):
        outputs, runs = updates(shared_app.url, form("edit it", ["fluxapi"], image=None, image_url=typed), "/edit")
        answers.append(last(outputs, runs, "message"))
    assert all(REFUSED in answer for answer in answers), answers
    assert len(set(answers)) == 1, "the sentence must not tell an existing path from a missing one"
    assert shared_app.sandbox.state.count() == sent_before, "nothing may be sent"
    hosted = shared_app.data_dir / "hosted"
    assert not hosted.exists() or not any(hosted.iterdir()), "no /inputs/<token> URL may be minted for a path"


def test_a_file_path_sent_as_an_upload_is_refused_without_saying_whether_it_exists(shared_app):
    # A raw API call (not gradio_client, which would upload a local file from the caller's own disk).
    outside = shared_app.out_dir / "someone-else" / "secret.png"
    outside.parent.mkdir(parents=True, exist_ok=True)
    outside.write_bytes(png_bytes())
    said = []
    for path in (outside, outside.with_name("nothing-here.png")):
        values = form("edit it", ["runflow"], image={"path": str(path), "meta": {"_type": "gradio.FileData"}})
        posted = httpx.post(f"{shared_app.url}gradio_api/call/edit", json={"data": values}, timeout=30)
        event = posted.json()["event_id"]
        said.append(httpx.get(f"{shared_app.url}gradio_api/call/edit/{event}", timeout=30).text)
    assert all("event: error" in text and str(outside.parent) not in text for text in said), said
    assert said[0].replace(outside.name, "") == said[1].replace("nothing-here.png", "")


def test_an_upload_larger_than_any_input_is_refused_before_it_is_kept(shared_app):
    big = os.urandom(11 * 1024 * 1024)
    answer = httpx.post(f"{shared_app.url}gradio_api/upload", files={"files": ("big.png", big)}, timeout=60)
    assert answer.status_code == 413


def test_a_1_gb_file_given_to_the_cli_is_refused_without_being_read(tmp_path):
    big = tmp_path / "huge.png"
    with big.open("wb") as out:
        out.truncate(1024**3)  # sparse: a 1 GB file that takes no disk
    # The CLI itself, measuring its own peak memory on the way out: VmHWM, not getrusage's ru_maxrss, which on
    # Linux carries over the forking test process's size (a worker past 400 MB failed this once).
    probe = (
        "import re, sys; from playground.cli import main; code = main(sys.argv[1:]); "
        "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1), file=sys.stderr); "
        "sys.exit(code)"
    )
    args = ["generate", "--sandbox", "--provider", "runflow", "--prompt", "edit", "--image", str(big)]
    done = subprocess.run(
        [sys.executable, "-c", probe, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, env=_env(tmp_path)
    )
    sentence, peak_kb = done.stderr.strip().splitlines()[-2:]
    assert done.returncode == 2, done.stderr
    assert "huge.png is 1024.0 MB; providers take at most 10 MB" in sentence
    assert int(peak_kb) < 400 * 1024, f"the CLI peaked at {int(peak_kb) // 1024} MB: it read the file"


def _env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLAYGROUND_", "SANDBOX_"))}
    return env | {"PLAYGROUND_DATA_DIR": str(tmp_path / "data"), "PLAYGROUND_OUT_DIR": str(tmp_path / "out")}
