"""The database out of reach for a moment (a restart, a fail-over, the network): the caller gets a 503 with a
Chinese reason and a ``Retry-After``, never a 500. What the request had not committed is rolled back with its
session, so nothing is half-written; the pool's pre-ping reconnects once the database is back."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError

UNAVAILABLE = "服务暂时不可用，请稍后再试"
RETRY_AFTER_S = 5
log = logging.getLogger(__name__)


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    log.warning("database unavailable: %s %s: %s", request.method, request.url.path, reason[0] if reason else "")
    return JSONResponse(status_code=503, content={"detail": UNAVAILABLE}, headers={"Retry-After": str(RETRY_AFTER_S)})


def install(app: FastAPI) -> None:
    for kind in (OperationalError, InterfaceError):
        app.add_exception_handler(kind, database_unavailable)
