"""Background loops are stopped between steps, not in the middle of one."""

from __future__ import annotations

import asyncio

from services.common.background import stop_gracefully


async def test_a_step_in_progress_is_allowed_to_finish() -> None:
    go, finished = asyncio.Event(), []

    async def loop() -> None:
        await go.wait()  # e.g. a database statement the loop is waiting on
        finished.append("step")

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)  # the loop is now inside its step
    stopping = asyncio.create_task(stop_gracefully([task], grace_seconds=60))
    await asyncio.sleep(0)
    go.set()
    await stopping
    assert finished == ["step"] and not task.cancelled()


async def test_a_loop_that_does_not_stop_is_cancelled_after_the_grace() -> None:
    async def stuck() -> None:
        await asyncio.Event().wait()

    task = asyncio.create_task(stuck(), name="stuck-loop")
    await stop_gracefully([task], grace_seconds=0.01)
    assert task.cancelled()


async def test_nothing_to_stop() -> None:
    await stop_gracefully([], grace_seconds=1)
