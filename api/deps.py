"""FastAPI dependencies and their `Annotated` aliases: settings, sessions, models, keys, pair."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request

from api.limits import API_KEY_HEADER, check_api_key
from api.models import ModelStore
from api.schemas import Symbol
from core.settings import Settings
from core.types import Timeframe
from storage.db import session_scope

DbSession = Any
"""A SQLAlchemy session; only `storage` may import sqlalchemy, so the API passes it through."""


def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> ModelStore:
    """The app's model cache."""
    store: ModelStore = request.app.state.models
    return store


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


def require_api_key(
    request: Request,
    x_api_key: Annotated[
        str | None, Header(alias=API_KEY_HEADER, description="The key in CRYPTOPRED_API_KEY")
    ] = None,
) -> None:
    """Refuse unless `X-API-Key` matches the configured key (403 when none is configured)."""
    check_api_key(x_api_key, get_settings(request).secrets.api_key, action="this action")


@dataclass(frozen=True, slots=True)
class Pair:
    """The market a request is about."""

    symbol: str
    timeframe: str


def get_pair(
    request: Request,
    symbol: Annotated[Symbol | None, Query(description="ccxt symbol; default data.symbol")] = None,
    timeframe: Annotated[
        Timeframe | None, Query(description="candle timeframe; default data.timeframe")
    ] = None,
) -> Pair:
    """`symbol`/`timeframe` query parameters, defaulting to `data.symbol`/`data.timeframe`."""
    data = get_settings(request).data
    return Pair(symbol=symbol or data.symbol, timeframe=timeframe or data.timeframe)


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[ModelStore, Depends(get_store)]
SessionDep = Annotated[DbSession, Depends(get_session)]
WriteSessionDep = Annotated[DbSession, Depends(get_write_session)]
PairDep = Annotated[Pair, Depends(get_pair)]
ApiKeyDep = Depends(require_api_key)
