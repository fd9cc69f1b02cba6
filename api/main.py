"""The FastAPI application: chat gateway, service API, health."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from core.settings import Settings, get_settings

from . import errors
from .db import make_engine, make_sessionmaker
from .kb_service import KnowledgeBase
from .rasa_client import RasaClient
from .routes import auth, chat, conversations, health, internal, kb_admin, merchant, staff
from .storage import LocalFileStore


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger("httpx").setLevel(logging.WARNING)
        engine = make_engine(settings.sqlalchemy_url)
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessions = make_sessionmaker(engine)
        app.state.files = LocalFileStore(settings.evidence_dir)
        app.state.http = httpx.AsyncClient()
        app.state.rasa = RasaClient(settings, app.state.http)
        app.state.kb = KnowledgeBase(settings, app.state.sessions)
        app.state.kb.start()
        yield
        app.state.kb.close()
        await app.state.http.aclose()
        engine.dispose()

    app = FastAPI(title="商家助手 API", version="0.1.0", lifespan=lifespan)
    errors.install(app)
    for module in (health, auth, chat, merchant, conversations, staff, kb_admin, internal):
        app.include_router(module.router)
    return app


app = create_app()
