"""The page's text, without a browser: status lines, costs, curl, labels, the run summary."""

from __future__ import annotations

import dataclasses

import pytest

from playground.models import Capabilities, JobResult, WireRequest
from playground.providers import REGISTRY, ProviderSpec
from playground.ui.format import (
    Outcome,
    cost_text,
    curl_command,
    download_label,
    estimate_text,
    failure_help,
    provider_choice_label,
    result_facts,
    run_summary,
    sent_params,
    status_text,
)

KEY = "sk-live-7f3a9c"
WIRE = WireRequest(
    method="POST",
    url="https://api.kie.ai/api/v1/flux/kontext/generate",
    headers={"Authorization": "Bearer $KIE_API_KEY", "Content-Type": "application/json"},
    body={"prompt": "it's a fox", "model": "flux-kontext-pro"},
)


@pytest.mark.parametrize(
    ("state", "elapsed", "extra", "expected"),
    [
        ("queued", 0.0, {}, "○ queued"),
        ("running", 12.34, {}, "● running 12.3 s"),
        ("succeeded", 27.06, {}, "✔ done in 27.1 s"),
        ("failed", 3.0, {"error": "KIE AI rejected the API key (HTTP 401)."}, "✘ failed: KIE AI rejected the API key"),
        ("failed", 3.0, {}, "✘ failed: no reason given"),
        ("stopped", 4.0, {"task_id": "t-123"}, "■ stopped after 4.0 s (task t-123)"),
        ("stopped", 0.2, {}, "■ stopped after 0.2 s (before it was submitted)"),
        ("failed", 300.0, {"error": "KIE AI did not finish task t in 300 s", "kind": "deadline"}, "✘ timed out: KIE"),
        ("succeeded", 86.1, {"resumed": True}, "✔ done in 86.1 s (resumed)"),
        ("running", 80.0, {"resumed": True}, "● running 80.0 s (resumed)"),
    ],
)
def test_status_lines_say_what_is_happening(state, elapsed, extra, expected):
    assert status_text(state, elapsed, **extra).startswith(expected)


@pytest.mark.parametrize(
    ("usd", "source", "expected"),
    [
        (0.04, "bfl.ai pricing", "$0.04 (bfl.ai pricing)"),
        (0.025, None, "$0.025"),
        (0.1, None, "$0.10"),
        (None, "anything", "unknown (no published price; set one in PLAYGROUND_PRICES)"),
    ],
)
def test_cost_is_dollars_with_its_source_or_unknown(usd, source, expected):
    assert cost_text(usd, source) == expected


def test_a_price_the_provider_does_not_publish_itself_says_so():
    assert (
        cost_text(0.08, "https://fal.ai/pricing", confirmed=False) == "$0.08 (not confirmed) (https://fal.ai/pricing)"
    )


def timed(label: str, low: float, high: float) -> Outcome:
    return Outcome(label, "flux-kontext-pro", "succeeded", latency_s=high, latency_low_s=low)


def test_fastest_is_a_tie_when_the_measured_intervals_overlap():
    summary = run_summary([timed("fal.ai", 7.9, 8.2), timed("Black Forest Labs", 8.0, 8.4), timed("APIXO", 9.0, 9.5)])
    assert "**Fastest**: no clear winner: fal.ai pro (7.9–8.2 s) and Black Forest Labs pro finished" in summary
    assert "APIXO" not in summary.split("no clear winner")[1].split("·")[0], "APIXO's interval does not overlap"


def test_fastest_says_how_sure_it_is_when_the_intervals_do_not_overlap():
    summary = run_summary([timed("fal.ai", 7.9, 8.2), timed("APIXO", 9.0, 9.5)])
    assert "**Fastest**: fal.ai pro, 7.9–8.2 s, at least 0.8 s ahead of APIXO pro (sure" in summary


def test_curl_shows_the_key_as_its_variable_and_quotes_the_body():
    curl = curl_command(WIRE, "KIE_API_KEY")
    assert '-H "Authorization: Bearer $KIE_API_KEY"' in curl
    assert "-d '{" in curl and "it'\"'\"'s a fox" in curl  # the single quote survives shell quoting
    assert curl.startswith("curl -X POST https://api.kie.ai/api/v1/flux/kontext/generate")


@pytest.mark.parametrize("header", ["Authorization", "x-key", "X-API-Key"])
def test_curl_never_shows_a_raw_key_even_if_one_slipped_into_the_headers(header):
    leaky = WIRE.model_copy(update={"headers": {header: f"Bearer {KEY}" if header == "Authorization" else KEY}})
    curl = curl_command(leaky, "KIE_API_KEY")
    assert KEY not in curl and "$KIE_API_KEY" in curl


def test_sent_params_are_the_body_or_the_url_of_a_get():
    assert sent_params(WIRE) == WIRE.body
    assert sent_params(WireRequest(method="GET", url="https://x/y?a=1")) == {"method": "GET", "url": "https://x/y?a=1"}
    assert sent_params(None) is None


def result(**kw) -> JobResult:
    values = dict(
        path="/out/run/kie-flux-kontext-pro.jpg",
        image_url="https://x/y.jpg",
        mime_type="image/jpeg",
        width=1024,
        height=768,
        size_bytes=123_456,
        latency_s=27.06,
        cost_usd=None,
        cost_source=None,
        sent=WIRE,
    )
    return JobResult(**(values | kw))


def test_result_facts_and_download_label_name_latency_cost_size_and_format():
    facts = result_facts(result(cost_usd=0.04, cost_source="https://docs.bfl.ai/pricing"))
    assert facts == (
        "**Latency** 27.1 s · **Cost** $0.04 (price from [docs.bfl.ai](https://docs.bfl.ai/pricing)) · "
        "1024×768 JPEG, 121 KB"
    )
    assert "**Cost** unknown (no published price; set one in PLAYGROUND_PRICES)" in result_facts(result())
    unconfirmed = result_facts(result(cost_usd=0.08, cost_source="https://fal.ai/pricing"), confirmed=False)
    assert "$0.08 (not confirmed: price from [fal.ai](https://fal.ai/pricing))" in unconfirmed
    assert "$0.05 (set by you in PLAYGROUND_PRICES)" in result_facts(
        result(cost_usd=0.05, cost_source="set by you in PLAYGROUND_PRICES")
    )
    assert download_label(result()) == "Download .jpg (121 KB)"


def test_the_summary_counts_each_state_once_and_never_repeats_a_panels_error():
    outcomes = [
        Outcome("KIE AI", "flux-kontext-pro", "succeeded", latency_s=4.2, cost_usd=None),
        Outcome("APIXO", "flux-kontext-pro", "succeeded", latency_s=6.0, cost_usd=0.03),
        Outcome("Black Forest Labs", "flux-kontext-max", "succeeded", latency_s=5.0, cost_usd=0.08),
        Outcome("RunAPI.ai", "flux-kontext-pro", "failed", error="RunAPI.ai is unavailable (HTTP 500)."),
        Outcome("fal.ai", "flux-kontext-pro", "stopped"),
        Outcome("Replicate", "flux-kontext-pro", "failed", error="did not finish", kind="deadline"),
    ]
    summary = run_summary(outcomes, wall_s=6.3)
    assert summary.startswith("**6 jobs in 6.3 s**: 3 done · 1 stopped · 1 timed out · 1 failed · ")
    assert "**Fastest**: KIE AI pro, 4.2 s, at least 0.8 s ahead of Black Forest Labs max" in summary
    assert "**Cheapest**: APIXO pro, $0.03" in summary
    assert "**Total cost**: $0.11 + 1 with no published price" in summary
    assert "HTTP 500" not in summary and "did not finish" not in summary, "each error stays in its panel"


def test_a_stopped_job_is_not_counted_as_a_failure_and_a_running_run_has_no_wall_time_yet():
    stopped = run_summary([Outcome("KIE AI", "flux-kontext-pro", "stopped")], wall_s=2.0)
    assert stopped == "**1 job in 2.0 s**: 1 stopped" and "fail" not in stopped
    running = run_summary([Outcome("KIE AI", "flux-kontext-pro", "running")], wall_s=2.0)
    assert running == "**1 job**: 1 running"


def test_summary_of_a_run_where_nothing_has_a_price():
    summary = run_summary([Outcome("KIE AI", "flux-kontext-pro", "succeeded", latency_s=1.0)])
    assert "**Total cost**: $0.00 + 1 with no published price" in summary and "Cheapest" not in summary


def test_estimate_counts_jobs_and_names_unknown_prices():
    estimate = estimate_text([("APIXO pro", 0.03), ("KIE AI pro", None)])
    assert estimate == "**2 jobs**, about $0.03 (+ 1 with no published price: KIE AI pro)"
    assert estimate_text([]) == ""


def test_provider_labels_say_what_each_supports_on_the_tab_they_are_on():
    edit_only = Capabilities(text_to_image=False, seed=True, guidance=True, upload=True)
    assert provider_choice_label(spec_with("Runflow", edit_only)) == "Runflow (edit only, seed, guidance)"
    assert provider_choice_label(spec_with("X", Capabilities())) == "X (image URLs only)"
    assert provider_choice_label(spec_with("X", Capabilities()), can_host=True) == "X", "hosting is not jargon"
    assert provider_choice_label(spec_with("X", Capabilities()), mode="text") == "X", "files do not matter here"
    assert provider_choice_label(spec_with("Y", Capabilities(upload=True))) == "Y"


def spec_with(label: str, caps: Capabilities) -> ProviderSpec:
    return dataclasses.replace(REGISTRY["kie"], label=label, capabilities=caps)


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("authentication", "Enter a valid key for `KIE_API_KEY`"),
        ("config", "Enter a valid key for `KIE_API_KEY`"),
        ("insufficient_credits", "Top up"),
        ("unavailable", "try again"),
        ("moderated", "Rephrase"),
        ("job_failed", ""),
    ],
)
def test_failures_say_what_to_do(kind, fragment):
    assert fragment in failure_help(kind, "KIE_API_KEY", sandbox=False)


def test_moderation_advice_fits_the_mode_and_is_one_sentence():
    assert failure_help("moderated", "K", sandbox=True, mode="text") == "Rephrase the prompt."
    assert failure_help("moderated", "K", sandbox=True, mode="edit") == "Rephrase the edit, or try another input image."


def test_many_ties_are_counted_not_named():
    close = [timed(f"Host {n}", 7.9 + n / 100, 8.2 + n / 100) for n in range(6)]
    summary = run_summary(close)
    assert "**Fastest**: no clear winner: Host 0 pro (7.9–8.2 s) and 5 others finished" in summary
    assert "Host 4" not in summary


def test_the_time_breakdown_names_an_input_upload_only_when_one_took_time():
    from playground.ui.format import breakdown_text

    quick = result(breakdown={"upload": 0.01, "submit": 0.2, "generating": 7.5, "download": 0.1})
    assert breakdown_text(quick, "KIE AI") == "**Time** submit 0.2 s · generating 7.5 s · download 0.1 s"
    slow = result(breakdown={"upload": 1.3, "submit": 0.2})
    assert breakdown_text(slow, "KIE AI") == "**Time** input upload 1.3 s · submit 0.2 s"
