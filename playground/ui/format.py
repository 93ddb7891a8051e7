"""Text the playground shows: status lines, costs, curl commands, notes, the run summary.

Pure functions on engine values; no gradio here, so every line is tested without a browser.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlparse

from playground import jobstate
from playground.jobstate import Phase
from playground.models import JobResult, WireRequest, model_info
from playground.providers import ProviderSpec

# Headers that carry credentials; a value without a $VARIABLE in it is replaced by one.
CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "x-key", "api-key", "x-goog-api-key"})
# Plain symbols rather than emoji: they render in every font, headless browsers included.
STATE_ICONS = {
    "queued": "○",
    "running": "●",
    "succeeded": "✔",
    "failed": "✘",
    "canceled": "✘",
    "stopped": "■",
}
PHASE_ICONS: dict[Phase, str] = {
    "queued": "○",
    "running": "●",
    "done": "✔",
    "failed": "✘",
    "timed out": "✘",
    "canceled": "✘",
    "stopped": "■",
}
INFO, WARNING, BLOCKED = "ℹ", "⚠", "✘"
TabMode = str  # "text" or "edit": what the visitor was doing, for advice that fits it


def model_short(model: str) -> str:
    """'flux-kontext-pro' -> 'pro'."""
    try:
        return model_info(model).short
    except ValueError:  # a model this playground no longer knows, read back from an old history
        return model


def job_name(label: str, model: str) -> str:
    """'KIE AI pro': how a job is named in notes and the summary."""
    return f"{label} {model_short(model)}"


def panel_title(label: str, model: str) -> str:
    """The heading of one result panel."""
    return f"### {label} · {model_short(model)}"


def seconds_text(seconds: float) -> str:
    """'4.2 s': every duration the page shows (elapsed, latency, a run's wall time) goes through here."""
    return f"{seconds:.1f} s"


def status_text(
    state: str,
    elapsed_s: float,
    *,
    error: str | None = None,
    task_id: str | None = None,
    kind: str | None = None,
    resumed: bool = False,
    result: JobResult | None = None,
) -> str:
    """One status line, the same on a panel, a tile and in History: queued, running 12.3 s, done in 7.9–8.2 s,
    failed: reason, timed out: reason, stopped after 4.0 s. A resumed job says so."""
    phase = jobstate.phase(state, kind)
    again = " (resumed)" if resumed else ""
    if phase == "queued":
        text = "queued"
    elif phase == "running":
        text = f"running {seconds_text(elapsed_s)}{again}"
    elif phase == "done":
        text = f"done in {latency_text(result) if result else seconds_text(elapsed_s)}{again}"
    elif phase == "stopped":
        where = f" (task {task_id})" if task_id else " (before it was submitted)"
        text = f"stopped after {seconds_text(elapsed_s)}{where}"
    else:
        text = f"{phase}: {error or 'no reason given'}"
    return f"{PHASE_ICONS[phase]} {text}"


def latency_text(result: JobResult) -> str:
    """The latency as the interval the job finished in: '7.9–8.2 s' (done after the last read that said "not done"
    and before the read that said done); '8.2 s' when that is exact to a tenth; '8.2 s (callback)'."""
    if result.detected_via == "callback":
        return f"{result.latency_s:.1f} s (callback)"
    return interval_text(result.latency_s - (result.latency_error_s or 0.0), result.latency_s)


def interval_text(low: float, high: float) -> str:
    """'7.9–8.2 s', or '8.2 s' when both ends round to the same tenth."""
    first, last = f"{max(0.0, low):.1f}", f"{high:.1f}"
    return f"{last} s" if first == last else f"{first}–{last} s"


BREAKDOWN_WORDS = {
    "upload": "input upload",
    "submit": "submit",
    "queued": "queued",
    "generating": "generating",
    "download": "download",
}


def breakdown_text(result: JobResult, label: str) -> str:
    """Where the time went, as we measured it, and the provider's own figures labelled as the provider's."""
    parts = dict(result.breakdown)
    if round(parts.get("upload", 0.0), 1) == 0:  # nothing to upload (text-to-image), or nothing worth a tenth
        parts.pop("upload", None)
    ours = [f"{word} {parts[name]:.1f} s" for name, word in BREAKDOWN_WORDS.items() if name in parts]
    theirs = [f"{name} {seconds:.1f} s" for name, seconds in sorted(result.provider_timings.items())]
    lines = [f"**Time** {' · '.join(ours)}"] if ours else []
    if theirs:
        lines.append(f"**{label} reports** {' · '.join(theirs)}")
    return "  \n".join(lines)


def cost_text(cost_usd: float | None, source: str | None, *, confirmed: bool = True) -> str:
    """'$0.04 (source)', or 'unknown' when the provider publishes no per-image price."""
    if cost_usd is None:
        return NO_PRICE
    shown = money(cost_usd) + ("" if confirmed else " (not confirmed)")
    return shown + (f" ({source})" if source else "")


NO_PRICE = "unknown (no published price; set one in PLAYGROUND_PRICES)"


def result_cost_text(result: JobResult) -> str:
    """The cost of one result with where it comes from: billed by the provider, set by you, or a list price."""
    return price_text(result.cost_usd, result.cost_source, confirmed=result.cost_confirmed)


def money(usd: float) -> str:
    """'$0.04', '$0.025': dollars with the cents a price needs."""
    digits = 2 if round(usd, 2) == round(usd, 6) else 3
    return f"${usd:.{digits}f}"


def source_text(source: str | None) -> str:
    """Where a price comes from, in words: a page's host (as a Markdown link) or what the source says."""
    if not source:
        return "no source"
    parsed = urlparse(source)
    if parsed.scheme in ("http", "https") and parsed.netloc:
        host = parsed.netloc.removeprefix("www.")
        return f"price from [{host}]({source})"
    return source


def price_text(cost_usd: float | None, source: str | None, *, confirmed: bool = True) -> str:
    """'$0.04 (price from [docs.bfl.ml](…))', '$0.04 (billed by Runflow)'; an unconfirmed price says so."""
    if cost_usd is None:
        return NO_PRICE
    if not confirmed:
        return f"{money(cost_usd)} (not confirmed: {source_text(source)})"
    return f"{money(cost_usd)} ({source_text(source)})"


def size_text(size_bytes: int) -> str:
    """'123 KB' or '1.4 MB'."""
    if size_bytes >= 1024 * 1024:
        return f"{size_bytes / 1024 / 1024:.1f} MB"
    return f"{max(1, round(size_bytes / 1024))} KB"


def result_facts(result: JobResult, *, confirmed: bool = True) -> str:
    """Latency, cost, size and format of one finished image, as one Markdown line."""
    kind = result.mime_type.split("/")[-1].upper()
    cost = price_text(result.cost_usd, result.cost_source, confirmed=confirmed and result.cost_confirmed)
    return (
        f"**Latency** {latency_text(result)} · **Cost** {cost} · "
        f"{result.width}×{result.height} {kind}, {size_text(result.size_bytes)}"
    )


def download_label(result: JobResult) -> str:
    """The label of the download button: what you get."""
    ext = result.path.rsplit(".", 1)[-1]
    return f"Download .{ext} ({size_text(result.size_bytes)})"


def notes_markdown(notes: Sequence[str]) -> str:
    """Notes such as 'seed ignored by KIE AI', one bullet each."""
    return "\n".join(f"- {INFO} {note}" for note in notes)


def failure_help(kind: str | None, key_env: str, *, sandbox: bool, mode: TabMode = "text") -> str:
    """What a person can do about a failure of this kind (empty when the reason says it all); one piece of
    advice, fitting what they were doing (``mode``: text-to-image or edit)."""
    if kind in ("authentication", "config"):
        where = "under **Keys** on this page, or in `.env`" if not sandbox else "under **Keys**"
        return f"Enter a valid key for `{key_env}` {where}."
    if kind == "insufficient_credits":
        return "Top up the account, or use another provider."
    if kind in ("rate_limit", "unavailable", "connection", "timeout"):
        return "The provider is busy or unreachable: try again in a minute."
    if kind == "moderated":
        return "Rephrase the edit, or try another input image." if mode == "edit" else "Rephrase the prompt."
    return ""


def resume_hint(task_id: str) -> str:
    """What a stopped or timed-out panel says about its task."""
    return f"Task `{task_id}` may still finish: **Resume** waits for it again (nothing is submitted twice)."


def sent_params(wire: WireRequest | None) -> dict[str, object] | None:
    """The parameters the provider received (the JSON body, or the query for a GET)."""
    if wire is None:
        return None
    return dict(wire.body) if wire.body is not None else {"method": wire.method, "url": wire.url}


def curl_command(wire: WireRequest, key_env: str | None = None) -> str:
    """The request as a curl command; credentials appear only as $VARIABLE references."""
    lines = [f"curl -X {wire.method} {shlex.quote(wire.url)}"]
    for name, value in wire.headers.items():
        lines.append(f"  -H {_header_arg(name, value, key_env)}")
    if wire.body is not None:
        lines.append(f"  -d {shlex.quote(json.dumps(wire.body, indent=2, ensure_ascii=False))}")
    return " \\\n".join(lines)


def _header_arg(name: str, value: str, key_env: str | None) -> str:
    if name.lower() in CREDENTIAL_HEADERS and "$" not in value:
        scheme = value.split(" ", 1)[0] + " " if " " in value else ""
        value = f"{scheme}${key_env or 'API_KEY'}"
    if "$" in value:  # double quotes, so the shell expands the variable
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`")
        return f'"{name}: {escaped}"'
    return shlex.quote(f"{name}: {value}")


def capability_words(spec: ProviderSpec, *, can_host: bool = False, mode: TabMode = "edit") -> list[str]:
    """What a provider supports, in the fewest words that tell providers apart on this tab.

    ``can_host``: the app publishes local inputs at a URL of its own, so URL-only providers take files too.
    How a provider takes input files matters only when editing (``mode``).
    """
    caps = spec.capabilities
    words = []
    if not caps.text_to_image:
        words.append("edit only")
    elif not caps.edit:
        words.append("text-to-image only")
    if len(spec.models) == 1:
        words.append(f"{model_short(next(iter(spec.models)))} only")
    words += [word for word, ok in (("seed", caps.seed), ("guidance", caps.guidance)) if ok]
    if mode == "edit" and caps.edit and not (caps.upload or caps.inline_image) and not can_host:
        words.append("image URLs only")
    return words


def provider_choice_label(spec: ProviderSpec, *, can_host: bool = False, mode: TabMode = "edit") -> str:
    """'Runflow (edit only, seed, guidance)': a provider as a checkbox label."""
    words = capability_words(spec, can_host=can_host, mode=mode)
    return f"{spec.label} ({', '.join(words)})" if words else spec.label


@dataclass(frozen=True)
class Outcome:
    """One job as the summary sees it."""

    label: str
    model: str
    state: str
    latency_s: float | None = None
    cost_usd: float | None = None
    error: str | None = None
    latency_low_s: float | None = None
    kind: str | None = None

    @property
    def name(self) -> str:
        return job_name(self.label, self.model)

    @property
    def interval(self) -> tuple[float, float]:
        """When the job finished, as far as we can tell: (earliest, latest) seconds after its create."""
        end = self.latency_s or 0.0
        return (end if self.latency_low_s is None else self.latency_low_s, end)

    @property
    def phase(self) -> Phase:
        return jobstate.phase(self.state, self.kind)


def counts_text(phases: Sequence[Phase]) -> str:
    """'14 done · 1 failed · 1 stopped': how many jobs are in each phase (History rows say the same)."""
    return " · ".join(f"{n} {phase}" for phase, n in jobstate.counts(phases).items())


def run_summary(outcomes: Sequence[Outcome], wall_s: float | None = None) -> str:
    """The run in one line of counts, then fastest, cheapest and the total; each error stays in its panel."""
    if not outcomes:
        return ""
    counts = counts_text([o.phase for o in outcomes])
    ended = jobstate.run_phase(o.phase for o in outcomes) != "running"
    took = f" in {seconds_text(wall_s)}" if wall_s and ended else ""
    lines = [f"**{len(outcomes)} job{'s' if len(outcomes) != 1 else ''}{took}**: {counts}"]
    done = [o for o in outcomes if o.state == "succeeded"]
    timed = [o for o in done if o.latency_s is not None]
    if timed:
        lines.append(fastest_text(timed))
    priced = [o for o in done if o.cost_usd is not None]
    if priced:
        cheapest = min(priced, key=lambda o: o.cost_usd or 0.0)
        lines.append(f"**Cheapest**: {cheapest.name}, {money(cheapest.cost_usd or 0.0)}")
    if done:
        lines.append(_total_cost(done))
    return " · ".join(lines)


MAX_TIED_NAMED = 3  # more ties than this are counted, not named (the summary stays one line)


def fastest_text(timed: Sequence[Outcome]) -> str:
    """The fastest job, fairly: jobs whose finishing intervals overlap the fastest one's are a tie."""
    ranked = sorted(timed, key=lambda o: o.interval[1])
    best = ranked[0]
    low, high = best.interval
    tied = [o for o in ranked[1:] if o.interval[0] <= high]
    head = f"**Fastest**: {best.name}, {interval_text(low, high)}"
    if tied:
        names = ", ".join(o.name for o in tied) if len(tied) <= MAX_TIED_NAMED else f"{len(tied)} others"
        return (
            f"**Fastest**: no clear winner: {best.name} ({interval_text(low, high)}) and {names} finished "
            "within each other's measurement error."
        )
    if len(ranked) == 1:
        return head
    runner_up = ranked[1]
    lead = runner_up.interval[0] - high
    return f"{head}, at least {lead:.1f} s ahead of {runner_up.name} (sure: the measured intervals do not overlap)."


def _total_cost(done: Sequence[Outcome]) -> str:
    known = sum(o.cost_usd for o in done if o.cost_usd is not None)
    unknown = sum(1 for o in done if o.cost_usd is None)
    total = f"**Total cost**: {money(known)}"
    if unknown:
        total += f" + {unknown} with no published price"
    return total


def estimate_text(prices: Sequence[tuple[str, float | None]]) -> str:
    """'3 jobs, about $0.11 (+ 1 with no published price: KIE AI pro)': what a run would cost, before it runs."""
    if not prices:
        return ""
    known = sum(p for _, p in prices if p is not None)
    unknown = [name for name, p in prices if p is None]
    text = f"**{len(prices)} job{'s' if len(prices) != 1 else ''}**, about {money(known)}"
    return text + (f" (+ {len(unknown)} with no published price: {', '.join(unknown)})" if unknown else "")
