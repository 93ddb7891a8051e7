"""Callback inbox: jobs wait on it, the webhook route delivers into it (from any thread), duplicates dropped."""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict

from playground.models import JobStatus

MAX_REMEMBERED_DELIVERIES = 10_000


class Waiter:
    """One job's mailbox: a verified status, or just a nudge to read the status now."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._event = asyncio.Event()
        self.status: JobStatus | None = None

    def deliver(self, status: JobStatus | None) -> None:
        """Wake the job (thread-safe). ``status`` None means: unverified, confirm with a status read."""

        def apply() -> None:
            if status is not None:
                self.status = status
            self._event.set()

        self._loop.call_soon_threadsafe(apply)

    def delivered(self) -> JobStatus | None:
        """The verified status a callback delivered, if any."""
        return self.status

    async def nap(self, seconds: float) -> None:
        """Sleep up to ``seconds``, waking early when a callback arrives."""
        try:
            await asyncio.wait_for(self._event.wait(), max(0.0, seconds))
        except TimeoutError:
            pass
        self._event.clear()


class Inbox:
    """Waiters by (provider, task id), and the delivery ids already seen."""

    def __init__(self) -> None:
        self._waiters: dict[tuple[str, str], Waiter] = {}
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._finished: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._lock = threading.Lock()

    def register(self, provider: str, task_id: str) -> Waiter:
        waiter = Waiter(asyncio.get_running_loop())
        with self._lock:
            self._waiters[(provider, task_id)] = waiter
        return waiter

    def unregister(self, provider: str, task_id: str) -> None:
        """The job is over: forget its waiter, remember it finished (late duplicates get a 2xx)."""
        with self._lock:
            self._waiters.pop((provider, task_id), None)
            _remember(self._finished, (provider, task_id))

    def finished(self, provider: str, task_id: str) -> bool:
        with self._lock:
            return (provider, task_id) in self._finished

    def waiter(self, provider: str, task_id: str) -> Waiter | None:
        with self._lock:
            return self._waiters.get((provider, task_id))

    def waiting(self) -> list[tuple[str, str]]:
        """Every (provider, task id) a job of this process is waiting for now."""
        with self._lock:
            return list(self._waiters)

    def first_time(self, provider: str, delivery_id: str | None) -> bool:
        """Whether this delivery id is new (and remember it); no id means it cannot be told apart."""
        if delivery_id is None:
            return True
        key = (provider, delivery_id)
        with self._lock:
            if key in self._seen:
                return False
            _remember(self._seen, key)
            return True


def _remember(memory: OrderedDict[tuple[str, str], None], key: tuple[str, str]) -> None:
    memory[key] = None
    while len(memory) > MAX_REMEMBERED_DELIVERIES:
        memory.popitem(last=False)
