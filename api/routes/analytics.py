"""Service analytics for staff: the dashboard's figures as JSON, the conversations behind a figure, CSV of every
table, and the page (/console/analytics). Agents, knowledge editors and admins; merchants get 403.

The figures are computed by ``api/services/analytics.py`` (the definitions live there, once)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import FileResponse, Response

from core.settings import REPO_ROOT

from ..deps import Principal, SessionDep, require_roles
from ..models import Role
from ..services import analytics
from ..services.analytics import AnalyticsError

router = APIRouter(tags=["service analytics"])
StaffDep = Annotated[Principal, Depends(require_roles(Role.agent, Role.kb_editor))]
WEB = REPO_ROOT / "web" / "analytics"
CHART_JS = REPO_ROOT / "var" / "vendor" / "chart.umd.js"  # fetched from npm at set-up (devtools/vendor.py)

Day = Annotated[str | None, Query(max_length=10, description="北京时间日期 YYYY-MM-DD")]
Text = Annotated[str | None, Query(max_length=64)]


def _filters(db, start, end, category, merchant, agent) -> analytics.Filters:
    try:
        return analytics.make_filters(db, start, end, category, merchant, agent)
    except AnalyticsError as exc:
        raise HTTPException(status_code=exc.status, detail=exc.detail) from None


def _csv(name: str, text: str) -> Response:
    return Response(text.encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f"attachment; filename=\"export.csv\"; filename*=UTF-8''{quote(name)}"})


@router.get("/api/analytics/options", summary="筛选项、目标值和指标定义")
def options(_: StaffDep, db: SessionDep) -> dict:
    return analytics.options(db)


@router.get("/api/analytics/summary", summary="一段时间的服务数据：三项核心指标及其明细")
def summary(_: StaffDep, db: SessionDep, start: Day = None, end: Day = None, category: Text = None,
            merchant: Text = None, agent: Text = None) -> dict:
    return analytics.compute(db, _filters(db, start, end, category, merchant, agent))


@router.get("/api/analytics/conversations", summary="某项指标背后的会话（下钻）")
def conversations(_: StaffDep, db: SessionDep,
                  metric: Annotated[str, Query(max_length=20, description="self_service / one_contact / "
                                                                          "satisfaction / escalation")] = "self_service",
                  outcome: Annotated[str, Query(max_length=4, description="miss（未达成）/ hit / all")] = "miss",
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0, le=10**7)] = 0,
                  start: Day = None, end: Day = None, category: Text = None, merchant: Text = None,
                  agent: Text = None) -> dict:
    flt = _filters(db, start, end, category, merchant, agent)
    try:
        return analytics.drill(db, flt, metric, outcome, limit, offset)
    except AnalyticsError as exc:
        raise HTTPException(status_code=exc.status, detail=exc.detail) from None


@router.get("/api/analytics/export", summary="导出 CSV：任一表格，或某项指标背后的会话（table=conversations）",
            responses={200: {"content": {"text/csv": {}}}})
def export(_: StaffDep, db: SessionDep,
           table: Annotated[str, Query(max_length=20, description="daily / hourly / escalations / kb_decisions / "
                                                                  "faqs / categories / unanswered / agents / "
                                                                  "ratings / conversations")] = "daily",
           metric: Annotated[str, Query(max_length=20)] = "self_service",
           outcome: Annotated[str, Query(max_length=4)] = "miss",
           start: Day = None, end: Day = None, category: Text = None, merchant: Text = None,
           agent: Text = None) -> Response:
    flt = _filters(db, start, end, category, merchant, agent)
    try:
        if table == "conversations":
            return _csv(*analytics.drill_csv(db, flt, metric, outcome))
        return _csv(*analytics.table_csv(db, flt, table))
    except AnalyticsError as exc:
        raise HTTPException(status_code=exc.status, detail=exc.detail) from None


@router.get("/console/analytics", include_in_schema=False)
def analytics_page() -> FileResponse:
    """The dashboard (it signs in with a staff account; the API checks every call)."""
    return FileResponse(WEB / "index.html", media_type="text/html; charset=utf-8")


@router.get("/console/analytics/chart.umd.js", include_in_schema=False)
def chart_library() -> FileResponse:
    """Chart.js, fetched from the npm registry at set-up and checked against its hash; never from a CDN."""
    if not CHART_JS.exists():
        raise HTTPException(status_code=404, detail="图表库尚未下载：请运行 make run 或 make setup")
    return FileResponse(CHART_JS, media_type="text/javascript; charset=utf-8")
