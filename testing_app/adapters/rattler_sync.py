"""Run one of rattler's coroutines to completion from synchronous code.

`asyncio.run` refuses to start inside a thread that already runs an event loop (an async view,
Playwright's sync API in the browser tests); there the coroutine runs on a short-lived thread
of its own. Either way the caller blocks until rattler is done. See the fork note in solver.py.
"""

import asyncio
import atexit
import time
from collections.abc import Awaitable
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


# rattler's runtime threads may still drop Python objects just after a call returns; if the
# interpreter is finalizing by then, the process dies (SIGSEGV/SIGABRT, about 1 exit in 30
# measured). A short pause at exit lets them finish; registered on first use only.
EXIT_PAUSE_S = 0.05
_exit_pause_registered = False


def run_rattler(make_coroutine: Callable[[], Awaitable[T]]) -> T:
    """Await `make_coroutine()` on a fresh event loop and return its result (or raise)."""
    global _exit_pause_registered  # noqa: PLW0603 - once per process
    if not _exit_pause_registered:
        atexit.register(time.sleep, EXIT_PAUSE_S)
        _exit_pause_registered = True
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coroutine())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rattler") as pool:
        return pool.submit(lambda: asyncio.run(make_coroutine())).result()
