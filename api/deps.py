"""FastAPI dependencies and their `Annotated` aliases: settings, sessions, models, keys, pair."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request

from api.limits import API_KEY_HEADER, check_api_key
from api.schemas import Symbol
from core.settings import Settings
from core.types import Timeframe
from serving.models import ModelCache
from storage.db import session_scope

DbSession = Any
"""A SQLAlchemy session; only `storage` may import sqlalchemy, so the API passes it through."""


# Dependencies that do no I/O are `async def`: FastAPI runs plain `def` dependencies in its
# thread pool, and four thread hops per request cost more than a whole compiled prediction.
def settings_of(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    return settings_of(request)


async def get_store(request: Request) -> ModelCache:
    """The app's model cache."""
    return store_of(request)


def get_session(request: Request) -> Iterator[DbSession]:
    """A read-only session (a consistent snapshot that never blocks the bot's writes)."""
    with session_scope(
        request.app.state.session_factory, operation="API read", read_only=True
    ) as session:
        yield session


def get_write_session(request: Request) -> Iterator[DbSession]:
    """A read-write session (committed when the request succeeds)."""
    with session_scope(request.app.state.session_factory, operation="API write") as session:
        yield session


async def require_api_key(
    request: Request,
    x_api_key: Annotated[
        str | None, Header(alias=API_KEY_HEADER, description="The key in CRYPTOPRED_API_KEY")
    ] = None,
) -> None:
    """Refuse unless `X-API-Key` matches the configured key (403 when none is configured)."""
    check_api_key(x_api_key, settings_of(request).secrets.api_key, action="this action")


@dataclass(frozen=True, slots=True)
class Pair:
    """The market a request is about."""

    symbol: str
    timeframe: str


SymbolQuery = Annotated[Symbol | None, Query(description="ccxt symbol; default data.symbol")]
TimeframeQuery = Annotated[
    Timeframe | None, Query(description="candle timeframe; default data.timeframe")
]


def pair_of(request: Request, symbol: str | None, timeframe: str | None) -> Pair:
    """The requested pair, defaulting to `data.symbol`/`data.timeframe`."""
    data = settings_of(request).data
    return Pair(symbol=symbol or data.symbol, timeframe=timeframe or data.timeframe)


def store_of(request: Request) -> ModelCache:
    """The app's model cache (for hot routes that skip dependency injection)."""
    store: ModelCache = request.app.state.models
    return store


async def get_pair(
    request: Request, symbol: SymbolQuery = None, timeframe: TimeframeQuery = None
) -> Pair:
    """`symbol`/`timeframe` query parameters, defaulting to `data.symbol`/`data.timeframe`."""
    return pair_of(request, symbol, timeframe)


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[ModelCache, Depends(get_store)]
SessionDep = Annotated[DbSession, Depends(get_session)]
WriteSessionDep = Annotated[DbSession, Depends(get_write_session)]
PairDep = Annotated[Pair, Depends(get_pair)]
ApiKeyDep = Depends(require_api_key)
