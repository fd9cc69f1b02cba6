"""Staff log in here; merchants arrive with a token their back office signed."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from sqlalchemy import select

from .. import schemas, security
from ..deps import SessionDep, SettingsDep
from ..models import Role, User

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/login", response_model=schemas.TokenResponse, summary="客服、知识库编辑、管理员登录")
def login(body: schemas.LoginRequest, db: SessionDep, settings: SettingsDep) -> schemas.TokenResponse:
    user = db.scalar(select(User).where(User.username == body.username.strip()))
    if user is None or not user.is_active or not security.verify_password(body.password, user.password_hash):
        raise HTTPException(status_code=401, detail="用户名或密码错误")
    if user.role == Role.merchant:
        raise HTTPException(status_code=403, detail="商家请从商家后台进入")
    token = security.create_staff_token(user.id, user.role.value, settings.secret_key, settings.staff_token_minutes)
    return schemas.TokenResponse(access_token=token, role=user.role.value, display_name=user.display_name)
