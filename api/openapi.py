"""The OpenAPI document tells the truth about errors: every error body is ``ErrorOut`` (``detail`` a Chinese
string, ``errors`` on a failed validation), and each operation lists the error statuses it can really answer.

FastAPI documents only 422, with its own body shape (``HTTPValidationError``) that ``errors.py`` replaces. Here,
once for the whole app: 401/403 come from the caller checks an operation depends on, 413 from ``BodyLimits`` on
every request that carries a body, 422 from validation and ``RefuseBrokenText``; what a route or its service adds
(404, 409, 415, 429, 503) is listed in ``EXTRA`` below.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from fastapi import FastAPI, routing

from . import deps
from .schemas import ErrorOut

DESCRIPTIONS = {
    401: "身份验证失败：未登录、凭证无效或已过期（登录时：用户名或密码错误）",
    403: "没有权限执行此操作",
    404: "要找的对象不存在",
    409: "与当前状态冲突（例如已结束、已被他人处理、版本已变）",
    413: "请求或文件太大",
    415: "文件类型不支持，或内容与声明的类型不符",
    422: "请求有误：detail 说明原因，校验失败时 errors 列出出错的字段",
    429: "太频繁了，请按 Retry-After 的秒数稍后再试",
    503: "暂时不可用（智能助手或知识库），请稍后再试",
}
RETRY_AFTER = {"Retry-After": {"description": "建议等待的秒数", "schema": {"type": "integer"}}}

# What a route or its service answers besides its success, 422 and the statuses its dependencies bring.
_CONVERSATION_STEP = {404, 409}
EXTRA: dict[str, set[int]] = {
    "GET /healthz": {503},
    "POST /api/auth/login": {401, 403, 429},
    "POST /api/chat": {404, 429, 503},
    "GET /api/cases/{number}": {404},
    "GET /api/penalties/{number}": {404},
    "GET /api/appeals/{number}": {404},
    "POST /api/appeals": {404, 409},
    "POST /api/appeals/{number}/evidence": {404, 409, 415, 429},
    "GET /api/appeals/{number}/evidence/{evidence_id}": {404},
    "POST /api/appeals/{number}/withdraw": {404, 409},
    "GET /api/conversations/{conversation_id}": {404},
    "POST /api/messages/{message_id}/feedback": {404},
    "POST /api/conversations/{conversation_id}/rating": {404, 409},
    "POST /api/conversations/{conversation_id}/leave-message": {404, 409},
    "GET /api/staff/cases/{number}": {404},
    "POST /api/staff/cases/{number}/events": {404},
    "GET /api/staff/appeals/{number}": {404},
    "POST /api/staff/appeals/{number}/review": {404, 409},
    "POST /api/staff/users": {409},
    "GET /api/staff/conversations/{conversation_id}": {404},
    "POST /api/staff/conversations/{conversation_id}/take": _CONVERSATION_STEP,
    "POST /api/staff/conversations/{conversation_id}/reply": _CONVERSATION_STEP,
    "POST /api/staff/conversations/{conversation_id}/transfer": _CONVERSATION_STEP,
    "POST /api/staff/conversations/{conversation_id}/close": _CONVERSATION_STEP,
    "POST /api/staff/conversations/{conversation_id}/release": _CONVERSATION_STEP | {503},
    "GET /api/staff/conversations/{conversation_id}/understood": {404, 503},
    "POST /api/staff/conversations/{conversation_id}/notes": {404},
    "GET /api/staff/conversations/{conversation_id}/suggestions": {503},
    "GET /api/staff/kb/search": {503},
    "DELETE /api/staff/canned-replies/{canned_id}": {404},
    "GET /api/kb/faqs/{faq_id}": {404},
    "PUT /api/kb/faqs/{faq_id}": {404, 409},
    "POST /api/kb/faqs/{faq_id}/publish": {404},
    "POST /api/kb/faqs/{faq_id}/archive": {404},
    "GET /api/kb/faqs/{faq_id}/versions": {404},
    "PUT /api/kb/hot-questions": {404},
    "POST /api/kb/unanswered/{row_id}/resolve": {404},
    "GET /api/kb/faqs/{faq_id}/versions/{old}/diff/{new}": {404},
    "POST /api/kb/faqs/{faq_id}/versions/{version}/restore": {404},
    "GET /api/kb/inbox": {503},
    "POST /api/kb/inbox/attach": {404},
    "POST /api/kb/inbox/create-faq": {404},
    "POST /api/kb/inbox/ignore": {404},
    "GET /api/kb/inbox/conversation": {404},
    "POST /api/kb/workbench/try": {503},
    "POST /api/kb/workbench/conflicts": {503},
    "POST /api/kb/workbench/move-similar": {404},
    "POST /api/kb/tuning/start": {409},
    "POST /api/kb/tuning/rollback": {409},
}

# Statuses whose body is the operation's own report rather than an ErrorOut.
OWN_BODY = {"GET /healthz": {503: "有组件不可用（status 为 degraded），正文与 200 相同"}}

# Dependencies that find the caller answer 401; those that also check its kind or role answer 403 as well
# (``deps.require_roles`` makes a new check for every set of roles).
_WHO = {deps.get_principal, deps.principal_only, deps.require_internal_token}
_KIND = {deps.current_merchant, deps.merchant_only}
_WITH_BODY = {"post", "put", "patch"}
_REF = "#/components/schemas/"


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and /openapi.json, /docs) document the errors as they are."""
    generate = app.openapi  # FastAPI's: builds the document once and keeps it (rebuilt if routes change)

    def openapi() -> dict:
        spec = generate()
        if "ErrorOut" not in spec.get("components", {}).get("schemas", {}):
            document_errors(spec, app)
        return spec

    app.openapi = openapi


def error_statuses(path: str, method: str, route=None) -> set[int]:
    """The error statuses of one operation (``route``: its APIRoute, or what FastAPI wraps it in)."""
    calls = set(_calls(route.dependant)) if route is not None else set()
    statuses = {422} | EXTRA.get(f"{method.upper()} {path}", set())
    checks_role = any(call in _KIND or _made_by_require_roles(call) for call in calls)
    if checks_role or calls & _WHO:
        statuses.add(401)
    if checks_role:
        statuses.add(403)
    if method in _WITH_BODY:
        statuses.add(413)
    return statuses


def document_errors(spec: dict, app: FastAPI) -> dict:
    routes = {(route.path_format, method.lower()): route for route in routes_of(app)
              if getattr(route, "dependant", None) is not None for method in route.methods or ()}
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            own = OWN_BODY.get(f"{method.upper()} {path}", {})
            for status in sorted(error_statuses(path, method, routes.get((path, method)))):
                response = {"description": DESCRIPTIONS[status],
                            "content": {"application/json": {"schema": {"$ref": f"{_REF}ErrorOut"}}}}
                if status in own:
                    success = next(r for code, r in responses.items() if code.startswith("2"))
                    response = {**success, "description": own[status]}
                elif status in (429, 503):
                    response["headers"] = RETRY_AFTER
                responses[str(status)] = response
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 body, which this API never sends
        if f'"{_REF}{name}"' not in json.dumps(spec):
            schemas.pop(name, None)
    error = ErrorOut.model_json_schema(ref_template=_REF + "{model}")
    schemas.update(error.pop("$defs", {}))
    schemas["ErrorOut"] = error
    return spec


def routes_of(app: FastAPI) -> Iterator:
    """Every route with the path and dependencies it has in the app (FastAPI ≥ 0.16x keeps included routers
    apart and resolves them through ``iter_route_contexts``; older versions list the routes flat)."""
    if hasattr(routing, "iter_route_contexts"):
        return routing.iter_route_contexts(app.routes)
    return iter(app.routes)


def _made_by_require_roles(call) -> bool:
    return getattr(call, "__module__", None) == deps.__name__ \
        and getattr(call, "__qualname__", "").startswith(f"{deps.require_roles.__name__}.")


def _calls(dependant) -> Iterator:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)
