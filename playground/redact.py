"""Keys stay home: one redaction step between every provider message and whatever it reaches.

A provider may echo a key back (a 401 body that repeats it, a URL with it in the query). Every event passes
through ``Secrets.event`` before it is streamed (the page, the CLI, curl snippets) or kept (history), and
every log record through ``LogRedaction``; both replace each configured key and secret, and each visitor key
while that visitor's run lasts, with ``[redacted]``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import weakref
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr

from playground.models import JobEvent

REDACTED = "[redacted]"
MIN_SECRET_CHARS = 4  # shorter values are not secrets worth the name, and replacing them would garble text

_LIVE: weakref.WeakSet[Secrets] = weakref.WeakSet()  # every set in the process, for the log filter
_LIVE_LOCK = threading.Lock()


def spellings(secret: str) -> set[str]:
    """The forms a secret may take in a message: as is, JSON-escaped, URL-encoded, and each part of an id:secret
    pair or of a comma-separated list (secrets during a rotation)."""
    found = {secret, json.dumps(secret)[1:-1], quote(secret, safe="")}
    for separator in (":", ","):
        if separator in secret:
            found |= {part.strip() for part in secret.split(separator)}
    return {s for s in found if len(s) >= MIN_SECRET_CHARS}


class Secrets:
    """The values to redact: fixed ones (configured keys and secrets) and lent ones (a visitor's, during a run)."""

    def __init__(self, values: Iterable[str | SecretStr | None] = ()) -> None:
        self._lock = threading.Lock()
        self._fixed: set[str] = set()
        self._lent: Counter[str] = Counter()
        self._forms: tuple[str, ...] = ()
        self.keep(values)
        with _LIVE_LOCK:
            _LIVE.add(self)

    def keep(self, values: Iterable[str | SecretStr | None]) -> None:
        """Redact these for as long as the process lives (configured keys and secrets)."""
        with self._lock:
            self._fixed |= {form for value in values for form in spellings(_plain(value))}
            self._refresh()

    @contextlib.contextmanager
    def lent(self, values: Iterable[str | SecretStr | None]) -> Iterator[None]:
        """Redact these while the block runs (a visitor's keys, during their run)."""
        forms = [form for value in values for form in spellings(_plain(value))]
        with self._lock:
            self._lent.update(forms)
            self._refresh()
        try:
            yield
        finally:
            with self._lock:
                self._lent.subtract(forms)
                self._lent = +self._lent  # drop the ones no run holds any more
                self._refresh()

    def forms(self) -> tuple[str, ...]:
        """Every spelling to replace, longest first (so a whole key goes before its halves)."""
        return self._forms

    def text(self, text: str) -> str:
        """``text`` with every secret replaced."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return text

    def event(self, event: JobEvent) -> JobEvent:
        """The event with every secret replaced in every field (message, error, URLs, what was sent...)."""
        if not self._forms:
            return event
        dumped = event.model_dump_json()
        if not any(form in dumped for form in self._forms):
            return event  # the common case: one scan of the JSON, no copy
        return JobEvent.model_validate(self._clean(event.model_dump(mode="json")))

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k): self._clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._clean(v) for v in value]
        return value

    def _refresh(self) -> None:
        self._forms = tuple(sorted(self._fixed | set(self._lent), key=len, reverse=True))


def _plain(value: str | SecretStr | None) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value or ""


def redact_everywhere(text: str) -> str:
    """``text`` with the secrets of every live Secrets in the process replaced (for logs and CLI errors)."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for secrets in live:
        text = secrets.text(text)
    return text


class LogRedaction(logging.Filter):
    """A handler filter that redacts every record's message and traceback before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_everywhere(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_everywhere(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_everywhere(record.stack_info)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Put LogRedaction on every handler of ``logger`` (the root logger), and on Python's last-resort handler."""
    target = logger or logging.getLogger()
    for handler in [*target.handlers, logging.lastResort]:
        if handler is not None and not any(isinstance(f, LogRedaction) for f in handler.filters):
            handler.addFilter(LogRedaction())
