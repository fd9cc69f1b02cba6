"""Staff log in here; merchants arrive with a token their back office signed."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import select

from .. import schemas, security
from ..deps import SessionDep, SettingsDep
from ..models import Role, User

router = APIRouter(prefix="/api/auth", tags=["auth"])


# Checked when the username does not exist, so a wrong name takes as long as a wrong password.
_NOBODY = security.hash_password("no-such-user")


def _too_many(detail: str, wait: int) -> HTTPException:
    return HTTPException(status_code=429, detail=detail, headers={"Retry-After": str(wait)})


@router.post("/login", response_model=schemas.TokenResponse, summary="客服、知识库编辑、管理员登录")
def login(body: schemas.LoginRequest, request: Request, db: SessionDep,
          settings: SettingsDep) -> schemas.TokenResponse:
    limiter, username = request.app.state.limiter, body.username.strip()
    address = request.client.host if request.client else "?"
    if wait := limiter.hit(f"login-ip:{address}", settings.login_per_minute, 60):
        raise _too_many(f"登录尝试太频繁，请 {wait} 秒后再试", wait)
    lockout = (f"login-fail:{username.lower()}", settings.login_failures_before_lockout,
               settings.login_lockout_minutes * 60)
    if wait := limiter.wait(*lockout):
        raise _too_many(f"密码错误次数过多，账号已暂时锁定，请 {max(1, round(wait / 60))} 分钟后再试", wait)
    user = db.scalar(select(User).where(User.username == username))
    good = security.verify_password(body.password, user.password_hash if user else _NOBODY)
    if user is None or not user.is_active or not good:
        limiter.hit(*lockout)
        raise HTTPException(status_code=401, detail="用户名或密码错误")
    limiter.clear(lockout[0])
    if user.role == Role.merchant:
        raise HTTPException(status_code=403, detail="商家请从商家后台进入")
    token = security.create_staff_token(user.id, user.role.value, settings.secret_key, settings.staff_token_minutes)
    return schemas.TokenResponse(access_token=token, role=user.role.value, display_name=user.display_name)
