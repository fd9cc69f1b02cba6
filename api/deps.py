"""FastAPI dependencies: settings, database session, services held by the app."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

import jwt
from fastapi import Depends, Header, HTTPException, Request
from sqlalchemy.orm import Session

from core.settings import Settings

from . import crud, security
from .gateway import Gateway
from .kb_service import KnowledgeBase
from .models import Merchant, Role, User
from .rasa_client import RasaClient


async def get_settings(request: Request) -> Settings:
    # Dependencies that only read the app's state are ``async def``: FastAPI runs a plain ``def`` dependency
    # in the threadpool, a thread hop per request for nothing.
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, rolled back on error."""
    session = request.app.state.sessions()
    try:
        yield session
    except Exception:
        session.rollback()
        raise
    finally:
        session.close()


async def get_kb(request: Request) -> KnowledgeBase:
    return request.app.state.kb


async def get_rasa(request: Request) -> RasaClient:
    return request.app.state.rasa


async def get_gateway(request: Request) -> Gateway:
    return request.app.state.gateway


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
KbDep = Annotated[KnowledgeBase, Depends(get_kb)]
RasaDep = Annotated[RasaClient, Depends(get_rasa)]
GatewayDep = Annotated[Gateway, Depends(get_gateway)]


async def require_internal_token(settings: SettingsDep, x_internal_token: str = Header(default="", include_in_schema=False)) -> None:
    """Calls between our own processes (the action server) carry a shared token."""
    if not hmac.compare_digest(x_internal_token.encode(), settings.internal_token.encode()):
        raise HTTPException(status_code=401, detail="内部接口需要有效的 X-Internal-Token")


# --------------------------------------------------------------------------- who is calling


@dataclass(frozen=True)
class Principal:
    """The caller: a merchant (widget token, or the action server acting for one) or a staff user."""

    role: Role
    merchant: Merchant | None = None
    user: User | None = None

    @property
    def actor(self) -> str:
        if self.user is not None:
            return self.user.username
        return self.merchant.code if self.merchant else ""


def _bearer(authorization: str) -> str:
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def get_principal(
    settings: SettingsDep,
    db: SessionDep,
    authorization: str = Header(default=""),
    x_internal_token: str = Header(default="", include_in_schema=False),
    x_merchant_id: str = Header(default="", include_in_schema=False),
) -> Principal:
    if x_internal_token:
        # Our action server, acting for the merchant the API put in Rasa's metadata.
        if not hmac.compare_digest(x_internal_token.encode(), settings.internal_token.encode()):
            raise HTTPException(status_code=401, detail="内部接口需要有效的 X-Internal-Token")
        merchant = crud.get_merchant_by_code(db, x_merchant_id.strip())
        if merchant is None:
            raise HTTPException(status_code=401, detail="缺少或无效的商家编号")
        return Principal(Role.merchant, merchant=merchant)
    token = _bearer(authorization)
    if not token:
        raise HTTPException(status_code=401, detail="请先登录", headers={"WWW-Authenticate": "Bearer"})
    try:
        kind = jwt.decode(token, options={"verify_signature": False}).get("kind", "merchant")
    except jwt.PyJWTError:
        raise HTTPException(status_code=401, detail="身份凭证无效") from None
    try:
        if kind == "staff":
            user_id, _role = security.read_staff_token(token, settings.secret_key)
            user = db.get(User, user_id)
            if user is None or not user.is_active:
                raise HTTPException(status_code=401, detail="账号不存在或已停用")
            return Principal(user.role, user=user)
    except security.TokenError as exc:
        raise HTTPException(status_code=401, detail=str(exc)) from None
    return Principal(Role.merchant, merchant=merchant_for_token(db, settings, token))


def merchant_for_token(db: Session, settings: Settings, token: str) -> Merchant:
    """The merchant a widget token (signed by the host site) names; 401 when it names nobody."""
    try:
        code = security.read_merchant_token(token, settings.widget_secret, settings.widget_token_max_minutes)
    except security.TokenError as exc:
        raise HTTPException(status_code=401, detail=str(exc)) from None
    merchant = crud.get_merchant_by_code(db, code)
    if merchant is None:
        raise HTTPException(status_code=401, detail="商家不存在")
    return merchant


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def merchant_of(principal: Principal) -> Merchant:
    if principal.merchant is None:
        raise HTTPException(status_code=403, detail="该接口仅供商家使用")
    return principal.merchant


async def current_merchant(principal: PrincipalDep) -> Merchant:
    return merchant_of(principal)


MerchantDep = Annotated[Merchant, Depends(current_merchant)]


def principal_only(request: Request, settings: SettingsDep, authorization: str = Header(default=""),
                   x_internal_token: str = Header(default="", include_in_schema=False), x_merchant_id: str = Header(default="", include_in_schema=False)) -> Principal:
    """The caller, looked up in a session that is closed before the route runs: for async routes that await the
    network and must not hold a database connection meanwhile (this runs in the threadpool)."""
    with request.app.state.sessions() as db:
        return get_principal(settings, db, authorization, x_internal_token, x_merchant_id)


async def merchant_only(principal: Annotated[Principal, Depends(principal_only)]) -> Merchant:
    return merchant_of(principal)


MerchantOnlyDep = Annotated[Merchant, Depends(merchant_only)]


def require_roles(*roles: Role, finder=get_principal):
    """A dependency that lets through staff of the given roles (admin always) and refuses merchants.

    ``finder``: how the caller is found (``principal_only`` for async routes that must hold no session)."""

    async def check(principal: Principal = Depends(finder)) -> Principal:  # noqa: B008 (FastAPI's idiom)
        if principal.user is None or (principal.role not in roles and principal.role != Role.admin):
            raise HTTPException(status_code=403, detail="没有权限执行此操作")
        return principal

    return check


AgentDep = Annotated[Principal, Depends(require_roles(Role.agent))]
AgentOnlyDep = Annotated[Principal, Depends(require_roles(Role.agent, finder=principal_only))]
EditorDep = Annotated[Principal, Depends(require_roles(Role.kb_editor))]
AdminDep = Annotated[Principal, Depends(require_roles(Role.admin))]
