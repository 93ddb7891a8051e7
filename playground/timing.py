"""One job's latency, measured the same way for every provider: an interval, and where the time went.

The clock starts when the create request is sent. The job was done after the last status read that still
said "not done" was sent, and before the first read that said "done" was answered (or a callback arrived):
that interval is the latency with its error bar. Its end is what the playground reports.
"""

from __future__ import annotations

from typing import Any

from playground.models import Detection
from playground.watch import Reading


class Timer:
    """Clock readings of one job, fed by the runner; ``measured()`` turns them into JobResult fields."""

    def __init__(self, started_at: float) -> None:
        self.started_at = started_at
        self.submit_started: float | None = None
        self.create_sent: float | None = None
        self.create_answered: float | None = None
        self.wait_started: float | None = None
        self.last_not_done: float | None = None
        self.last_queued: float | None = None
        self.first_running: float | None = None
        self.done_at: float | None = None
        self.via: Detection = "poll"
        self.download_s: float | None = None

    def submitting(self, at: float) -> None:
        self.submit_started = at

    def created(self, sent_at: float, answered_at: float) -> None:
        self.create_sent, self.create_answered = sent_at, answered_at

    def waiting(self, at: float) -> None:
        self.wait_started = at

    def saw(self, reading: Reading) -> None:
        """Take one reading: the last 'not done' (sent), the first 'done' (answered), queued -> running."""
        status = reading.status
        if status is None:
            return
        if status.is_terminal:
            self.done_at, self.via = reading.received_at, reading.via
        elif status.state == "queued":
            self.last_not_done = self.last_queued = reading.sent_at
        else:
            self.last_not_done = reading.sent_at
            if self.first_running is None:
                self.first_running = reading.received_at

    def downloaded(self, seconds: float) -> None:
        self.download_s = seconds

    @property
    def origin(self) -> float:
        """Where the latency is counted from: the create's send, or (a resumed job) when waiting began."""
        return self.create_sent if self.create_sent is not None else self.wait_started or self.started_at

    def measured(self) -> dict[str, Any]:
        """latency_s, latency_low_s, detected_via and breakdown, for a JobResult."""
        end = self.done_at if self.done_at is not None else self.origin
        low = end if self.via == "callback" else self.last_not_done if self.last_not_done is not None else self.origin
        return {
            "latency_s": round(end - self.origin, 3),
            "latency_low_s": round(max(0.0, low - self.origin), 3),
            "detected_via": self.via,
            "breakdown": self._breakdown((low + end) / 2),
        }

    def _breakdown(self, done: float) -> dict[str, float]:
        parts: dict[str, float] = {}
        if self.submit_started is not None and self.create_sent is not None:
            parts["upload"] = self.create_sent - self.submit_started
        if self.create_sent is not None and self.create_answered is not None:
            parts["submit"] = self.create_answered - self.create_sent
        accepted = self.create_answered if self.create_answered is not None else self.origin
        generating_from = accepted
        if self.last_queued is not None and self.first_running is not None:
            generating_from = (self.last_queued + self.first_running) / 2
            parts["queued"] = max(0.0, generating_from - accepted)
        parts["generating"] = max(0.0, done - generating_from)
        if self.download_s is not None:
            parts["download"] = self.download_s
        return {name: round(seconds, 3) for name, seconds in parts.items()}
