"""FastAPI dependencies: settings, database session, services held by the app."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from sqlalchemy.orm import Session

from core.settings import Settings

from .kb_service import KnowledgeBase
from .rasa_client import RasaClient


def get_settings(request: Request) -> Settings:
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


def get_kb(request: Request) -> KnowledgeBase:
    return request.app.state.kb


def get_rasa(request: Request) -> RasaClient:
    return request.app.state.rasa


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
KbDep = Annotated[KnowledgeBase, Depends(get_kb)]
RasaDep = Annotated[RasaClient, Depends(get_rasa)]


def require_internal_token(settings: SettingsDep, x_internal_token: str = Header(default="")) -> None:
    """Calls between our own processes (the action server) carry a shared token."""
    if x_internal_token != settings.internal_token:
        raise HTTPException(status_code=401, detail="内部接口需要有效的 X-Internal-Token")
