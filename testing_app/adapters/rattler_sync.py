"""Run one of rattler's coroutines to completion from synchronous code.

`asyncio.run` refuses to start inside a thread that already runs an event loop (an async view,
Playwright's sync API in the browser tests); there the coroutine runs on a short-lived thread
of its own. Either way the caller blocks until rattler is done. See the fork note in solver.py.
"""

import asyncio
from collections.abc import Awaitable
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def run_rattler(make_coroutine: Callable[[], Awaitable[T]]) -> T:
    """Await `make_coroutine()` on a fresh event loop and return its result (or raise)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coroutine())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rattler") as pool:
        return pool.submit(lambda: asyncio.run(make_coroutine())).result()
