"""The FastAPI application: chat gateway (HTTP, WebSocket, rasa-webchat Socket.IO), service API, pages."""

from __future__ import annotations

import asyncio
import functools
import logging
from contextlib import asynccontextmanager

import anyio.to_thread
import socketio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from core.settings import Settings, get_settings

from . import db_errors, errors, queue_watch
from .body_limits import BodyLimits
from .db import make_engine, make_sessionmaker
from .gateway import Gateway
from .hub import Hub
from .kb_service import KnowledgeBase
from .rasa_client import RasaClient, http_session
from .rate_limit import RateLimiter, SharedRateLimiter
from .routes import (
    analytics,
    auth,
    chat,
    console,
    conversations,
    health,
    internal,
    kb_admin,
    kb_inbox,
    kb_tuning,
    kb_workbench,
    merchant,
    pages,
    realtime,
    staff,
    widget,
)
from .security_headers import SecurityHeaders
from .storage import LocalFileStore
from .text_guard import RefuseBrokenText
from .webchat import create_webchat


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        # One pooled connection per threadpool thread (+ the knowledge base's loader, saver, sync and synonym
        # job threads).
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threadpool_size
        engine = make_engine(settings.sqlalchemy_url, pool_size=settings.db_pool_size + 4)
        app.state.engine = engine
        app.state.sessions = make_sessionmaker(engine)
        app.state.files = LocalFileStore(settings.evidence_dir)
        # Connections to Rasa and the action server are kept open and reused (loopback, many turns a second).
        app.state.http = http_session(settings.turn_concurrency + 8)
        app.state.rasa = RasaClient(settings, app.state.http)
        await app.state.hub.start()
        app.state.gateway = Gateway(app.state.rasa, app.state.hub, app.state.sessions, settings, app.state.limiter)
        app.state.kb = KnowledgeBase(settings, app.state.sessions)
        app.state.kb.start()
        queue_clock = asyncio.create_task(queue_watch.watch(
            functools.partial(queue_watch.check, app.state.sessions, settings), settings.queue_check_seconds,
            app.state.gateway))
        yield
        queue_clock.cancel()
        await asyncio.gather(queue_clock, return_exceptions=True)
        app.state.kb.close()
        await app.state.hub.close()
        await app.state.http.close()
        engine.dispose()

    app = FastAPI(title="商家助手 API", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.hub = Hub(settings.redis_url)
    app.state.limiter = SharedRateLimiter(settings.redis_url) if settings.redis_url else RateLimiter()
    errors.install(app)
    db_errors.install(app)
    app.add_middleware(RefuseBrokenText)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimits, max_upload_bytes=settings.evidence_max_bytes)
    # The widget runs on the merchant back-office's origin and calls us with a bearer token (no cookies).
    app.add_middleware(CORSMiddleware, allow_origins=settings.widget_origins, allow_credentials=False,
                       allow_methods=["GET", "POST", "PUT", "DELETE"], allow_headers=["Authorization", "Content-Type"])
    for module in (health, auth, chat, merchant, conversations, widget, staff, console, kb_admin, internal, realtime,
                   analytics, pages):
        app.include_router(module.router)
    app.include_router(kb_inbox.router)
    app.include_router(kb_tuning.router)
    app.include_router(kb_workbench.router)
    pages.mount_static(app)
    return app


def create_server(settings: Settings | None = None) -> socketio.ASGIApp:
    """The app with rasa-webchat's Socket.IO endpoint in front of it (what uvicorn serves)."""
    app = create_app(settings)
    return socketio.ASGIApp(create_webchat(app), other_asgi_app=app, socketio_path="socket.io")


app = create_server()
