"""Error bodies: a Chinese message people can read, and the reason for clients."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError

from .services.errors import ServiceError

_REASONS = {
    "missing": "缺少必填项",
    "string_too_short": "不能为空",
    "string_too_long": "太长了",
    "string_type": "应为文字",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "greater_than_equal": "数值太小",
    "less_than_equal": "数值太大",
    "json_invalid": "请求体不是合法的 JSON",
    "model_attributes_type": "请求体格式不对",
    "dict_type": "请求体格式不对",
    "list_type": "应为列表",
    "string_pattern_mismatch": "格式不正确",
    "too_long": "条目太多",
    "bool_parsing": "应为 true 或 false",
    "datetime_from_date_parsing": "日期时间格式不正确",
    "datetime_parsing": "日期时间格式不正确",
}


def _describe(err: dict) -> str:
    field = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
    reason = _REASONS.get(err.get("type", ""), "格式不正确")
    return f"{field}：{reason}" if field else reason


async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    detail = "；".join(dict.fromkeys(_describe(e) for e in errors)) or "请求格式不正确"
    fields = [{"field": ".".join(map(str, e.get("loc", ()))), "type": e.get("type")} for e in errors]
    return JSONResponse(status_code=422, content={"detail": f"请求有误：{detail}", "errors": fields})


async def service_error(_request: Request, exc: ServiceError) -> JSONResponse:
    return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail})


async def out_of_range(_request: Request, _exc: Exception) -> JSONResponse:
    """A number in the path or body the database cannot hold (SQLite: OverflowError; PostgreSQL: DataError, as
    for a text longer than its column): bad input, not a server fault."""
    return JSONResponse(status_code=422, content={"detail": "请求有误：编号或数值超出范围"})


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(OverflowError, out_of_range)
    app.add_exception_handler(DataError, out_of_range)
