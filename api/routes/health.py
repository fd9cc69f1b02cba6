"""``GET /healthz``: the status of every part of the stack."""

from __future__ import annotations

import asyncio

import aiohttp
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from ..deps import KbDep, RasaDep, SettingsDep

router = APIRouter(tags=["health"])


def _database(engine) -> dict:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok", "backend": engine.dialect.name}
    except Exception as exc:
        return {"status": "down", "detail": str(exc)[:200]}


async def _rasa(rasa: RasaDep) -> dict:
    try:
        status = await rasa.status()
        return {"status": "ok", "model": status.get("model_file", "")}
    except Exception as exc:
        return {"status": "down", "detail": f"Rasa 服务不可用：{type(exc).__name__}"}


async def _action_server(request: Request, url: str) -> dict:
    try:
        async with request.app.state.http.get(f"{url}/health", timeout=aiohttp.ClientTimeout(total=2.0)) as resp:
            resp.raise_for_status()
        return {"status": "ok"}
    except Exception as exc:
        return {"status": "down", "detail": f"动作服务不可用：{type(exc).__name__}"}


@router.get("/healthz", summary="各组件状态")
async def healthz(request: Request, rasa: RasaDep, kb: KbDep, settings: SettingsDep) -> JSONResponse:
    database, rasa_status, actions = await asyncio.gather(
        asyncio.to_thread(_database, request.app.state.engine), _rasa(rasa), _action_server(request, settings.action_server_url)
    )
    components = {"api": {"status": "ok"}, "database": database, "rasa": rasa_status,
                  "action_server": actions, **kb.health()}
    ok = all(c["status"] == "ok" for c in components.values())
    return JSONResponse({"status": "ok" if ok else "degraded", "components": components},
                        status_code=200 if ok else 503)
