"""Pages and files for browsers: the widget script, the demo merchant back-office and the agents' console."""

from __future__ import annotations

from functools import lru_cache

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from core.settings import REPO_ROOT

from .. import security
from ..deps import SettingsDep

WEB_DIR = REPO_ROOT / "web"
router = APIRouter(include_in_schema=False)
DEMO_TOKEN_MINUTES = 8 * 60


@lru_cache
def demo_merchants() -> dict[str, str]:
    """Code → name of the demo merchants set-up creates (the only ones the demo page can act for)."""
    from ..seed import SEED_DIR, load_yaml

    return {m["code"]: m["name"] for m in load_yaml(SEED_DIR / "demo.yml")["merchants"]}


def _demo_only(settings) -> None:
    if not settings.demo:
        raise HTTPException(status_code=404, detail="演示页面未开启（SJZS_DEMO=false）")


@router.get("/")
def index(settings: SettingsDep) -> RedirectResponse:
    return RedirectResponse("/demo" if settings.demo else "/docs")


@router.get("/demo")
def demo_page(settings: SettingsDep) -> FileResponse:
    _demo_only(settings)
    return FileResponse(WEB_DIR / "demo" / "index.html", media_type="text/html; charset=utf-8")


@router.get("/console")
def console_page() -> FileResponse:
    """The agents' console (it signs in with a staff account; the API checks every call)."""
    return FileResponse(WEB_DIR / "console" / "index.html", media_type="text/html; charset=utf-8")


@router.get("/workbench")
def workbench_page() -> FileResponse:
    """The knowledge team's FAQ workbench (it signs in with a staff account; the API checks every call)."""
    return FileResponse(WEB_DIR / "workbench" / "index.html", media_type="text/html; charset=utf-8")


@router.get("/demo/merchants")
def demo_merchant_list(settings: SettingsDep) -> list[dict]:
    _demo_only(settings)
    return [{"code": code, "name": name} for code, name in demo_merchants().items()]


@router.post("/demo/token")
def demo_token(request: Request, settings: SettingsDep, merchant: str = Query(max_length=20)) -> dict:
    """What a real back-office does on its server: sign a widget token for the merchant who is logged in."""
    _demo_only(settings)
    if merchant not in demo_merchants():
        raise HTTPException(status_code=404, detail="只能选择演示商家")
    token = security.create_merchant_token(merchant, settings.widget_secret, DEMO_TOKEN_MINUTES)
    return {"token": token, "merchant": merchant, "name": demo_merchants()[merchant]}


def mount_static(app: FastAPI) -> None:
    app.mount("/shared/static", StaticFiles(directory=WEB_DIR / "shared"), name="shared-static")  # staff sign-in
    app.mount("/widget", StaticFiles(directory=WEB_DIR / "widget"), name="widget")
    app.mount("/demo/static", StaticFiles(directory=WEB_DIR / "demo"), name="demo-static")
    app.mount("/console/static", StaticFiles(directory=WEB_DIR / "console"), name="console-static")
    app.mount("/workbench/static", StaticFiles(directory=WEB_DIR / "workbench"), name="workbench-static")
    app.mount("/console/analytics/static", StaticFiles(directory=WEB_DIR / "analytics"), name="analytics-static")


@router.get("/favicon.ico")
def favicon() -> Response:
    return Response(status_code=204)
