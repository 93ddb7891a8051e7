"""The CLI: exit statuses, one clear sentence on bad input with nothing sent, JSON lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from playground.cli import main
from playground.providers import REGISTRY
from tests.conftest import png_bytes

ROOT = Path(__file__).resolve().parents[1]


def run(argv: list[str], settings, capsys) -> tuple[int, list[dict], str]:
    code = main(argv, settings=settings)
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return code, lines, err


def generate(*extra: str) -> list[str]:
    return ["generate", "--provider", "kie", "--json", *extra]


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--prompt", "   "], "the prompt is empty"),
        (["--prompt", "fox", "--provider", "nope"], "Unknown provider 'nope'"),
        (["--prompt", "fox", "--aspect-ratio", "5:4"], "does not support aspect ratio 5:4"),
        (["--prompt", "fox", "--aspect-ratio", "wide"], "not of the form W:H"),
        (["--prompt", "fox", "--safety-tolerance", "9"], "safety tolerance"),
    ],
)
def test_bad_input_exits_2_with_one_sentence_and_sends_nothing(extra, fragment, settings, sandbox, capsys):
    code, lines, err = run(generate(*extra), settings, capsys)
    assert code == 2
    assert fragment in err
    assert len(err.strip().splitlines()) == 1
    assert lines == [] and sandbox.state.count() == 0


def test_a_text_file_as_image_exits_2(settings, sandbox, capsys, tmp_path):
    note = tmp_path / "notes.txt"
    note.write_text("not an image")
    code, _, err = run(generate("--prompt", "fox", "--image", str(note)), settings, capsys)
    assert code == 2 and "notes.txt is not a readable image" in err
    assert sandbox.state.count() == 0


@pytest.mark.parametrize(
    ("image", "fragment"),
    [
        ("http://127.0.0.1:9/cat.png", "private or local address (127.0.0.1)"),
        ("http://169.254.169.254/latest/meta-data", "private or local address (169.254.169.254)"),
        ("file:///etc/passwd", "neither an http(s) URL nor a local file"),
    ],
)
def test_a_local_or_file_url_for_a_hosted_provider_exits_2(image, fragment, capsys):
    from pydantic import SecretStr

    from playground.settings import Settings

    real = Settings(secrets={"KIE_API_KEY": SecretStr("k")})  # KIE's own base URL: refused before any request
    code, lines, err = run(generate("--prompt", "make it snow", "--image", image), real, capsys)
    assert code == 2 and fragment in err and lines == []
    assert len(err.strip().splitlines()) == 1


def test_a_missing_key_exits_2_naming_the_variable(settings, sandbox, capsys):
    bare = settings.model_copy(update={"secrets": {}, "sandbox": False})
    code, _, err = run(generate("--prompt", "fox"), bare, capsys)
    assert code == 2 and "KIE_API_KEY" in err
    assert sandbox.state.count() == 0


def test_success_prints_json_lines_ending_in_succeeded_and_writes_the_image(settings, capsys, tmp_path):
    code, lines, _ = run(
        generate("--prompt", "fox", "--aspect-ratio", "9:16", "--out", str(tmp_path)), settings, capsys
    )
    assert code == 0
    assert lines[-1]["state"] == "succeeded" and lines[-1]["task_id"]
    assert {"provider", "model", "state", "task_id", "elapsed_s"} <= set(lines[0])
    path = Path(lines[-1]["files"][0])
    assert path.parent.parent == tmp_path
    with Image.open(path) as img:
        assert img.height > img.width


def test_a_failed_job_exits_1_with_error_and_code(settings, capsys):
    code, lines, _ = run(generate("--prompt", "fox sandbox:moderate"), settings, capsys)
    assert code == 1
    assert lines[-1]["state"] == "failed" and lines[-1]["code"] == "400" and "flagged" in lines[-1]["error"]


def test_edit_with_a_local_png_through_the_real_entry_point_and_its_own_sandbox(tmp_path):
    image = tmp_path / "in.png"
    image.write_bytes(png_bytes((80, 40)))
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env["SANDBOX_JOB_SECONDS"] = "0.2"
    env["PLAYGROUND_DATA_DIR"] = str(tmp_path / "data")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "playground",
            "generate",
            "--sandbox",
            "--provider",
            "kie",
            "--prompt",
            "make it blue",
            "--image",
            str(image),
            "--out",
            str(tmp_path / "out"),
            "--json",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    last = json.loads(proc.stdout.splitlines()[-1])
    assert last["state"] == "succeeded" and Path(last["files"][0]).is_file()


def test_a_timed_out_run_is_resumed_from_history_without_resubmitting(settings, sandbox, capsys, tmp_path):
    sandbox.state.job_seconds = 1.0
    code, lines, _ = run(generate("--prompt", "slow fox", "--timeout", "0.2", "--out", str(tmp_path)), settings, capsys)
    assert code == 1 and lines[-1]["kind"] == "deadline"
    run_id = lines[-1]["run_id"]
    code, lines, _ = run(["resume", "--run", run_id, "--json", "--out", str(tmp_path)], settings, capsys)
    assert code == 0 and lines[-1]["state"] == "succeeded" and lines[-1]["run_id"] == run_id
    assert sandbox.state.count("kie", "create") == 1
    assert main(["history", "show", run_id, "--json"], settings=settings) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [job["state"] for job in shown["jobs"]] == ["succeeded"]


def test_history_lists_cli_runs_newest_first(settings, capsys, tmp_path):
    run(generate("--prompt", "first fox", "--out", str(tmp_path)), settings, capsys)
    run(generate("--prompt", "second fox", "--out", str(tmp_path)), settings, capsys)
    assert main(["history"], settings=settings) == 0
    out = capsys.readouterr().out
    assert out.index("second fox") < out.index("first fox")


def test_resume_needs_a_run_or_a_task(settings, capsys):
    code, _, err = run(["resume"], settings, capsys)
    assert code == 2 and "--run RUN_ID" in err


@pytest.mark.parametrize("provider", list(REGISTRY))
def test_sandbox_edits_work_with_a_local_png_and_with_a_url_for_every_provider(
    provider, settings, capsys, tmp_path, monkeypatch, sandbox
):
    monkeypatch.setenv("SANDBOX_JOB_SECONDS", "0.2")
    image = tmp_path / "in.png"
    image.write_bytes(png_bytes((120, 60)))
    url = f"{sandbox.url}/files/{sandbox.state.add_file(png_bytes((60, 120)), 'image/png')}"
    for source, tall in ((str(image), False), (url, True)):
        argv = [
            "generate",
            "--sandbox",
            "--provider",
            provider,
            "--prompt",
            "edit",
            "--image",
            source,
            "--json",
            "--out",
            str(tmp_path / "out"),
        ]
        code, lines, err = run(argv, settings, capsys)
        assert code == 0, err or lines[-1]
        with Image.open(lines[-1]["files"][0]) as img:
            if (
                provider == "apixo"
            ):  # its documented default ratio, 16:9, applies to edits too [docs/providers.md, APIXO]
                assert (img.width, img.height) == (768, 432)
            else:
                assert (img.height > img.width) == tall  # the edit kept the input's ratio: the input reached it


def test_providers_lists_every_provider_with_its_capabilities_and_whether_it_is_configured(capsys):
    from pydantic import SecretStr

    from playground.settings import Settings

    key = "runapi-key-7f3a"
    some = Settings(secrets={"RUNAPI_API_KEY": SecretStr(key)}, values={"KIE_BASE_URL": "http://127.0.0.1:9/kie"})
    assert main(["providers", "--json"], settings=some) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert list(rows)[:5] == ["kie", "fluxapi", "runapi", "runflow", "apixo"]
    assert [name for name, row in rows.items() if row["configured"]] == ["runapi"]
    assert rows["kie"]["base_url"] == "http://127.0.0.1:9/kie"
    assert "local files by upload API" in rows["kie"]["capabilities"]
    assert "text-to-image" not in rows["runflow"]["capabilities"] and "edit" in rows["runflow"]["capabilities"]
    assert "local files inline" in rows["bfl"]["capabilities"]

    assert main(["providers"], settings=some) == 0
    table = capsys.readouterr().out
    assert "RunAPI.ai" in table and "not configured (set KIE_API_KEY)" in table and key not in table
