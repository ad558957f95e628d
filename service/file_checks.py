"""Work that reads the server's files for a request (model folders, datasets, run folders) runs
off the event loop, in a few threads of its own, within a deadline.

The reads themselves are bounded and never block on a FIFO (training/safe_files.py); the
deadline is for a file system that does not answer (a hung network mount). A thread cannot be
stopped, so a stuck check keeps its thread: the pool is small and separate from the loop's
default executor, so stuck checks cannot starve the rest of the API, and a check that waits
behind them times out too. A timeout is a 503 (the server's disk, not the request, is at fault).

A promote's copy takes as long as the model is large and has no deadline: it runs on a pool of
its own (COPIES), so big promotions never take the threads the checks of every create need.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from adapters.publisher import Unavailable

FILE_CHECK_TIMEOUT_S = 10.0
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="file-checks")
COPIES = ThreadPoolExecutor(max_workers=2, thread_name_prefix="promote-copies")
T = TypeVar("T")


async def off_loop(fn: Callable[..., T], *args) -> T:
    """fn(*args) on the file-check pool; Unavailable("filesystem") once FILE_CHECK_TIMEOUT_S has
    passed."""
    timeout_s = FILE_CHECK_TIMEOUT_S
    work = asyncio.get_running_loop().run_in_executor(_POOL, functools.partial(fn, *args))
    try:
        return await asyncio.wait_for(work, timeout_s)
    except TimeoutError:
        raise Unavailable("filesystem", f"reading the server's model, dataset or run folders took longer than "
                                        f"{timeout_s:g} s; try again later") from None
