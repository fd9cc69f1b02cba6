"""The queue's clock: every ``queue_check_seconds`` the API tells merchants who have waited too long (and offers
留言), and hands waiting conversations to agents who have room. Safe with several API instances: each step is a
conditional UPDATE, so only one instance acts on a conversation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from core.settings import Settings

from .gateway import Gateway
from .services import handover

log = logging.getLogger(__name__)


def check(sessions: sessionmaker[Session], settings: Settings) -> list[handover.Change]:
    with sessions() as db:
        changes = handover.notify_overdue(db, settings) + handover.assign_waiting(db, settings)
        db.commit()
        return changes


async def watch(check_once: Callable[[], list[handover.Change]], every: float, gateway: Gateway) -> None:
    """Run ``check_once`` (blocking: it goes to the threadpool) every ``every`` seconds and push what it changed."""
    while True:
        await asyncio.sleep(every)
        try:
            changes = await run_in_threadpool(check_once)
        except Exception:  # the database is away for a moment: try again next round
            log.exception("queue check failed")
            continue
        gateway.push_handover(changes)
