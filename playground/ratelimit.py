"""Staying inside a provider's documented request rate: at most N requests in any sliding minute."""

from __future__ import annotations

from collections import deque

from playground.watch import Clock, Sleep

MINUTE_S = 60.0


class SlidingWindow:
    """At most ``limit`` acquisitions in any ``window_s``; an acquisition beyond that waits for a slot."""

    def __init__(self, limit: int, *, clock: Clock, sleep: Sleep, window_s: float = MINUTE_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._sleep = sleep
        self._stamps: deque[float] = deque()

    async def acquire(self) -> None:
        """Wait (without holding anything) until one more request fits in the window, then count it."""
        while True:
            now = self._clock()
            while self._stamps and self._stamps[0] <= now - self.window_s:
                self._stamps.popleft()
            if len(self._stamps) < self.limit:
                self._stamps.append(now)
                return
            await self._sleep(self._stamps[0] + self.window_s - now)
