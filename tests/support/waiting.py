"""Polling with a deadline: how tests wait for asynchronous effects (never a bare sleep)."""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


async def eventually(
    probe: Callable[[], Awaitable], timeout: float, what: str, interval: float = 0.1
):
    """Await `probe()` until it returns something truthy; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
