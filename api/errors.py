"""Error bodies: a Chinese message people can read, and the reason for clients."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from . import openapi
from .schemas import ErrorOut
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
    body = ErrorOut(detail=f"请求有误：{detail}", errors=fields)
    return JSONResponse(status_code=422, content=body.model_dump(exclude_none=True))


UNREADABLE_BODY = "请求有误：请求体无法解析（应为 UTF-8 编码的 JSON，或完整的表单）"
_FRAMEWORK_DETAILS = {404: "接口不存在，请检查地址", 405: "该接口不支持这种请求方法"}


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """HTTPExceptions go out as raised, except the framework's own, which speak English: a body it cannot parse
    (400: bytes that are not UTF-8, a broken multipart form) is refused like any malformed body (422), and an
    unknown path or method gets a Chinese detail. Our code never raises 400."""
    if exc.status_code == 400:
        return JSONResponse(status_code=422, content={"detail": UNREADABLE_BODY})
    if exc.status_code in _FRAMEWORK_DETAILS and exc.detail == HTTPStatus(exc.status_code).phrase:
        headers = exc.headers
        if exc.status_code == 405:  # Starlette names only the first route's methods, not all the path has
            headers = {**(headers or {}), "Allow": ", ".join(sorted(_methods_of_path(request)))}
        exc = HTTPException(exc.status_code, _FRAMEWORK_DETAILS[exc.status_code], headers)
    return await http_exception_handler(request, exc)


def _methods_of_path(request: Request) -> set[str]:
    methods = set()
    for route in openapi.routes_of(request.app):
        if route.matches(request.scope)[0] != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return methods


async def service_error(_request: Request, exc: ServiceError) -> JSONResponse:
    return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail})


async def out_of_range(_request: Request, _exc: Exception) -> JSONResponse:
    """A number in the path or body the database cannot hold (SQLite: OverflowError; PostgreSQL: DataError, as
    for a text longer than its column): bad input, not a server fault."""
    return JSONResponse(status_code=422, content={"detail": "请求有误：编号或数值超出范围"})


def install(app: FastAPI) -> None:
    """The handlers, and an OpenAPI document that describes the bodies they send (``openapi.py``)."""
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(OverflowError, out_of_range)
    app.add_exception_handler(DataError, out_of_range)
    openapi.install(app)
