"""`create_app(settings=None)`: the FastAPI app (uvicorn runs `api.app:create_app --factory`)."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from api.batch_body import BATCH_PATH
from api.clients import ClientAddressMiddleware
from api.errors import install_error_handlers
from api.headers import SecurityHeadersMiddleware
from api.limits import (
    ApiKeyMiddleware,
    BodyLimitMiddleware,
    RateLimitMiddleware,
    parse_rate_limit,
)
from api.routes import backtests, health, history, models, pages, paper, predictions
from core.logging import setup_logging
from core.settings import Settings, load_settings
from serving.models import POINTER_RECHECK_SECONDS, ModelCache
from storage.db import init_db, make_engine, make_session_factory

logger = logging.getLogger(__name__)

CONFIG_ENV = "CRYPTOPRED_CONFIG"
DEFAULT_CONFIG = Path("config.yaml")

DESCRIPTION = """
Predictions of whether the next crypto candle closes **UP** or **DOWN**, the live track
record of the signal bot, and what walk-forward evaluation and backtests expected.

* Prediction endpoints accept finite JSON numbers only (no strings, `NaN` or `Infinity`)
  and exactly the features listed by `GET /features`.
* `POST /models/{model_id}/promote` needs the `X-API-Key` header (`CRYPTOPRED_API_KEY`).
* Errors are `{"detail": ...}` naming the offending field and how to fix it.
"""


def settings_from_env() -> Settings:
    """Settings for the uvicorn factory: `$CRYPTOPRED_CONFIG`, else ./config.yaml, else defaults."""
    configured = os.environ.get(CONFIG_ENV)
    if configured:
        return load_settings(Path(configured))
    return load_settings(DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)


def known_pairs(settings: Settings) -> frozenset[tuple[str, str]]:
    """The configured (symbol, timeframe) pairs: `data` plus every bot pair."""
    pairs = {(settings.data.symbol, settings.data.timeframe)}
    pairs |= {(s, t) for s in settings.bot.symbols for t in settings.bot.timeframes}
    return frozenset(pairs)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; without `settings` (uvicorn factory) load them and set up logging."""
    if settings is None:
        settings = settings_from_env()
        setup_logging(settings.logging)
    engine = make_engine(settings.storage.db_url, busy_timeout_ms=settings.storage.busy_timeout_ms)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(init_db, engine)
        logger.info("API ready: models in %s", settings.ml.registry_dir)
        yield
        engine.dispose()

    app = FastAPI(
        title="crypto-predictor",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served below from local Swagger UI assets (works offline)
        redoc_url=None,  # ReDoc exists only on a CDN
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.models = ModelCache(
        Path(settings.ml.registry_dir),
        known_pairs=known_pairs(settings),
        decision=settings.decision,
        recheck_seconds=POINTER_RECHECK_SECONDS,
        compile_scorer=True,
    )
    app.state.templates = pages.make_templates()
    _install_middleware(app, settings)
    install_error_handlers(app)
    for module in (
        predictions,
        health,
        history,
        paper,
        models,
        backtests,
        pages,
    ):  # hot routes first
        app.include_router(module.router)
    _install_docs(app)
    app.mount("/static", StaticFiles(directory=pages.STATIC_DIR), name="static")
    return app


SWAGGER_STATIC = "/static/swagger"
SWAGGER_ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
"""Swagger UI 5 (reads OpenAPI 3.1, which FastAPI writes) shipped by `fastapi-offline`."""


def _install_docs(app: FastAPI) -> None:
    """`/docs` with the Swagger UI assets of the `fastapi-offline` package, served by this
    server (FastAPI's default page loads them from a CDN: blank offline). The
    `swagger-ui-bundle` package's Swagger UI 4 cannot render OpenAPI 3.1."""
    app.mount(
        SWAGGER_STATIC,
        StaticFiles(directory=SWAGGER_ASSETS),
        name="swagger",
    )

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API docs",
            swagger_js_url=f"{SWAGGER_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_STATIC}/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )


def _install_middleware(app: FastAPI, settings: Settings) -> None:
    """Added innermost first: body limit, API key, rate limit, CORS, security headers, client
    address (outermost).

    The rate limit sits outside the API-key check, so failed authentication attempts use up
    the client's budget too (a key cannot be guessed at full speed). `/predict/batch` reads
    its own body against a limit derived from `api.max_batch_rows`.
    """
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.api.max_body_bytes,
        self_limited_paths=frozenset({BATCH_PATH}),
    )
    if settings.api.require_key_for_all:
        app.add_middleware(ApiKeyMiddleware, expected=settings.secrets.api_key)
    if settings.api.rate_limit is not None:
        app.add_middleware(RateLimitMiddleware, rate=parse_rate_limit(settings.api.rate_limit))
    if settings.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.api.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "X-API-Key"],
        )
    # Swagger UI's page starts itself with an inline script
    app.add_middleware(SecurityHeadersMiddleware, exempt_paths=["/docs"])
    app.add_middleware(ClientAddressMiddleware, trusted_proxies=settings.api.trusted_proxies)
