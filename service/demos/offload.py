"""Running a demonstration's numpy work on the service's decode pool, off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from service.state import ServiceState

T = TypeVar("T")


async def off_loop(state: ServiceState, work: Callable[[], T]) -> T:
    """Numpy work of a request on the decode pool, so the event loop keeps serving."""
    return await asyncio.get_running_loop().run_in_executor(state.decode_pool, work)
