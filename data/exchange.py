"""CandleSource protocol + CcxtCandleSource; the ONLY module that imports ccxt."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import ccxt
import numpy as np
import pandas as pd

from core.errors import (
    ConfigError,
    DataValidationError,
    ExchangeUnavailableError,
    TemporaryExchangeError,
)
from core.settings import ExchangeSettings, RetrySettings, Secrets
from core.timeframes import ensure_utc, from_epoch_ms, timeframe_to_ms, to_epoch_ms
from data.schema import empty_ohlcv, frame_from_rows, index_to_epoch_ms, validate_ohlcv

logger = logging.getLogger(__name__)

T = TypeVar("T")

# ccxt errors that retrying cannot fix (ExchangeError's other subclasses and every
# OperationFailed are temporary; see the fault table in NOTES.md).
PERMANENT_ERRORS: tuple[type[Exception], ...] = (
    ccxt.BadRequest,  # includes BadSymbol
    ccxt.AuthenticationError,  # includes PermissionDenied, AccountSuspended
    ccxt.NotSupported,
)
# Spot only, one exchangeInfo request, no signed sapi calls even with keys (NOTES.md).
BINANCE_SPOT_OPTIONS: dict[str, Any] = {
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,
    "fetchMargins": False,
}


class CandleSource(Protocol):
    """Where closed, validated candles come from (ccxt in production, fakes in tests)."""

    exchange_id: str

    def fetch_candles(
        self,
        symbol: str,
        timeframe: str,
        *,
        since: datetime,
        until: datetime | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> pd.DataFrame:
        """Closed candles with open time in [since, until], canonical, validated, ascending."""
        ...

    def server_time(self) -> datetime:
        """The exchange's current time (UTC)."""
        ...


def is_temporary(error: Exception) -> bool:
    """True for ccxt errors worth retrying: OperationFailed, and ExchangeError not permanent.

    >>> is_temporary(ccxt.DDoSProtection("429")), is_temporary(ccxt.BadSymbol("x"))
    (True, False)
    """
    if isinstance(error, ccxt.OperationFailed):
        return True
    return isinstance(error, ccxt.ExchangeError) and not isinstance(error, PERMANENT_ERRORS)


def backoff_seconds(attempt: int, cfg: RetrySettings) -> float:
    """Exponential backoff before retry number `attempt` (1-based), capped.

    >>> backoff_seconds(3, RetrySettings(backoff_seconds=1.0, max_backoff_seconds=30.0))
    4.0
    """
    return float(min(cfg.max_backoff_seconds, cfg.backoff_seconds * 2 ** (attempt - 1)))


def rewrite_api_urls(urls: Any, base_url: str) -> Any:
    """Replace scheme and host of every API URL (nested dicts too), keeping the paths.

    >>> rewrite_api_urls({"public": "https://api.binance.com/api/v3"}, "http://127.0.0.1:9")
    {'public': 'http://127.0.0.1:9/api/v3'}
    """
    if isinstance(urls, dict):
        return {key: rewrite_api_urls(value, base_url) for key, value in urls.items()}
    if isinstance(urls, str) and urls.startswith(("http://", "https://")):
        return base_url.rstrip("/") + urlsplit(urls).path
    return urls


def make_client(cfg: ExchangeSettings, secrets: Secrets | None = None) -> Any:
    """A sync ccxt client for `cfg.id` with ccxt's own retries off (ours are the only ones)."""
    exchange_class = getattr(ccxt, cfg.id, None) if cfg.id in ccxt.exchanges else None
    if exchange_class is None:
        raise ConfigError(
            f"exchange.id: unknown ccxt exchange {cfg.id!r}; use one of ccxt.exchanges, "
            "e.g. 'binance'"
        )
    options: dict[str, Any] = {"maxRetriesOnFailure": 0}
    if cfg.id in ("binance", "binanceus"):
        options.update(BINANCE_SPOT_OPTIONS)
    config: dict[str, Any] = {
        "enableLastJsonResponse": True,  # to tell a garbage reply from a genuinely empty one
        "timeout": cfg.timeout_ms,
        "enableRateLimit": True,
        "options": options,
    }
    if secrets is not None and secrets.exchange_api_key and secrets.exchange_secret:
        config["apiKey"] = secrets.exchange_api_key.get_secret_value()
        config["secret"] = secrets.exchange_secret.get_secret_value()
    client = exchange_class(config)
    if not client.has.get("fetchOHLCV"):
        raise ConfigError(f"exchange.id: {cfg.id!r} has no fetch_ohlcv in ccxt; pick another")
    if cfg.base_url:
        client.urls["api"] = rewrite_api_urls(client.urls["api"], cfg.base_url)
    return client


def batch_to_frame(
    rows: Any, *, timeframe: str, server_ms: int, expected: bool
) -> tuple[pd.DataFrame, int | None]:
    """Validate one ccxt OHLCV batch: (closed candles, newest open time received).

    Raises:
        TemporaryExchangeError: the batch is garbage (empty when candles were expected, missing
            or non-finite values, off-grid or conflicting duplicate candles, broken OHLC).
    """
    if not isinstance(rows, list):
        raise TemporaryExchangeError(f"reply is a {type(rows).__name__}, not a list of candles")
    if not rows:
        if expected:
            raise TemporaryExchangeError("empty reply where candles were expected")
        return empty_ohlcv(), None
    bad = [row for row in rows if not _is_complete(row)]
    if bad:
        raise TemporaryExchangeError(
            f"{len(bad)} of {len(rows)} candles have missing values (truncated or garbage "
            f"reply?), first {bad[0]!r}"
        )
    frame = frame_from_rows(rows)
    newest_ms = int(index_to_epoch_ms(pd.DatetimeIndex(frame.index)).max())
    frame = _drop_duplicates(frame.sort_index(kind="stable"))
    open_ms = index_to_epoch_ms(pd.DatetimeIndex(frame.index))
    closed = open_ms + timeframe_to_ms(timeframe) <= server_ms  # the forming candle goes
    try:
        return validate_ohlcv(frame[closed], timeframe=timeframe), newest_ms
    except DataValidationError as e:
        raise TemporaryExchangeError(f"invalid candles: {e}") from e


def _is_complete(row: Any) -> bool:
    if not isinstance(row, list | tuple) or len(row) < 6:
        return False
    return isinstance(row[0], int) and all(isinstance(v, int | float) for v in row[1:6])


def _drop_duplicates(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop repeated identical candles; refuse two different candles for one open time."""
    repeated = frame.index.duplicated(keep="first")
    if not repeated.any():
        return frame
    first = frame[~repeated]
    again = frame[repeated]
    differs = ~np.isclose(again.to_numpy(), first.loc[again.index].to_numpy(), equal_nan=True)
    if differs.any():
        at = again.index[differs.any(axis=1)][0]
        raise TemporaryExchangeError(f"conflicting duplicate candles at {at:%Y-%m-%d %H:%M}Z")
    logger.debug("Dropped %d repeated candles", int(repeated.sum()))
    return first


@dataclass(frozen=True, slots=True)
class _Window:
    """One download: the requested range and the server time it was planned at."""

    symbol: str
    timeframe: str
    since_ms: int
    until_ms: int | None
    server_ms: int
    last_closed_ms: int

    @property
    def end_ms(self) -> int:
        """Open time of the last candle to return (closed, and <= until)."""
        if self.until_ms is None:
            return self.last_closed_ms
        return min(self.until_ms, self.last_closed_ms)

    @property
    def open_ended(self) -> bool:
        """True when the window reaches now: a live market always has candles there, so an
        empty page is garbage (before a listing or inside an outage an empty window is genuine).
        """
        return self.until_ms is None or self.until_ms >= self.last_closed_ms


class CcxtCandleSource:
    """A `CandleSource` over a real ccxt client: paginated, validated, retried."""

    def __init__(
        self,
        cfg: ExchangeSettings,
        *,
        secrets: Secrets | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.exchange_id = cfg.id
        self._cfg = cfg
        self._sleep = sleep
        self._client = make_client(cfg, secrets)

    @property
    def client(self) -> Any:
        """The underlying ccxt exchange (for diagnostics)."""
        return self._client

    def server_time(self) -> datetime:
        """The exchange's clock (local clock for exchanges without fetch_time)."""
        return from_epoch_ms(self._server_time_ms())

    def fetch_candles(
        self,
        symbol: str,
        timeframe: str,
        *,
        since: datetime,
        until: datetime | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> pd.DataFrame:
        """Closed candles with open time in [since, until] (until defaults to now).

        `progress` is called after each page with the number of new closed candles.

        Raises:
            ExchangeUnavailableError: a permanent refusal, or temporary faults outlasted retries.
        """
        started = time.perf_counter()
        since = ensure_utc(since)
        context = (
            f"Could not fetch {symbol} {timeframe} candles since {since:%Y-%m-%d %H:%M}Z "
            f"from {self.exchange_id}"
        )
        self._retry(partial(self._load_market, symbol), context)
        # Server time BEFORE the pages: a candle closed by then is final in every later reply.
        server_ms = self._server_time_ms()
        step_ms = timeframe_to_ms(timeframe)
        last_closed_ms = server_ms // step_ms * step_ms - step_ms
        window = _Window(
            symbol=symbol,
            timeframe=timeframe,
            since_ms=to_epoch_ms(since),
            until_ms=None if until is None else to_epoch_ms(ensure_utc(until)),
            server_ms=server_ms,
            last_closed_ms=last_closed_ms,
        )
        frames = self._download(window, context, progress)
        result = _combine(frames, timeframe)
        logger.info(
            "Fetched %s %s from %s: %s .. %s, %d candles, %d pages, %.2f s",
            symbol,
            timeframe,
            self.exchange_id,
            f"{since:%Y-%m-%d %H:%M}",
            f"{from_epoch_ms(window.end_ms):%Y-%m-%d %H:%M}",
            len(result),
            len(frames),
            time.perf_counter() - started,
        )
        return result

    def _download(
        self, window: _Window, context: str, progress: Callable[[int], None] | None
    ) -> list[pd.DataFrame]:
        """Page forward from `since` (since = newest open + 1 candle) until the window end."""
        step_ms = timeframe_to_ms(window.timeframe)
        full_span_ms = (self._cfg.page_limit - 1) * step_ms
        frames: list[pd.DataFrame] = []
        since_ms, expected = window.since_ms, window.open_ended
        while since_ms <= window.end_ms:
            page_context = f"{context} (page from {from_epoch_ms(since_ms):%Y-%m-%d %H:%M}Z)"
            fetch = partial(self._fetch_page, window, since_ms, expected=expected)
            page, newest_ms = self._retry(fetch, page_context)
            page_ms = index_to_epoch_ms(pd.DatetimeIndex(page.index))
            page = page[(page_ms >= window.since_ms) & (page_ms <= window.end_ms)]
            frames.append(page)
            if progress is not None:
                progress(len(page))
            if newest_ms is None or newest_ms < since_ms:
                break
            # After a short page the market may simply end; an empty next page is then genuine.
            expected = window.open_ended and newest_ms - since_ms >= full_span_ms
            since_ms = newest_ms + step_ms
        return frames

    # ------------------------------------------------------------------ internals
    def _server_time_ms(self) -> int:
        if not self._client.has.get("fetchTime"):
            return int(time.time() * 1000)
        return self._retry(self._fetch_time, f"Could not read the {self.exchange_id} server time")

    def _fetch_time(self) -> int:
        value = self._client.fetch_time()
        if not isinstance(value, int):  # a garbage reply parses to None
            raise TemporaryExchangeError(f"no server time in the reply ({value!r})")
        return value

    def _load_market(self, symbol: str) -> None:
        markets = self._client.load_markets()
        if not markets:  # a garbage exchangeInfo reply parses to no markets at all
            raise TemporaryExchangeError("the exchange listed no markets (garbage reply?)")
        if symbol not in markets:
            raise ExchangeUnavailableError(
                f"{symbol} is not a market on {self.exchange_id}; check the symbol "
                "(ccxt format, e.g. BTC/USDT)"
            )

    def _fetch_page(
        self, window: _Window, since_ms: int, *, expected: bool
    ) -> tuple[pd.DataFrame, int | None]:
        params = {} if window.until_ms is None else {"until": window.until_ms}
        self._client.last_json_response = None
        rows = self._client.fetch_ohlcv(
            window.symbol,
            window.timeframe,
            since=since_ms,
            limit=self._cfg.page_limit,
            params=params,
        )
        if self._client.last_json_response is None:  # ccxt turns such replies into rows of None
            raise TemporaryExchangeError("the reply was not JSON (truncated, HTML or empty body)")
        return batch_to_frame(
            rows, timeframe=window.timeframe, server_ms=window.server_ms, expected=expected
        )

    def _retry(self, call: Callable[[], T], context: str) -> T:
        """Run `call`, retrying temporary faults with backoff; translate ccxt errors."""
        retry = self._cfg.retry
        last: Exception | None = None
        for attempt in range(1, retry.max_attempts + 1):
            self._client.last_response_headers = None
            try:
                return call()
            except ccxt.BaseError as e:
                if not is_temporary(e):
                    raise ExchangeUnavailableError(f"{context}: {type(e).__name__}: {e}") from e
                last = e
            except TemporaryExchangeError as e:
                last = e
            if attempt < retry.max_attempts:
                self._sleep(self._wait_seconds(attempt, last, context))
        raise ExchangeUnavailableError(
            f"{context}: gave up after {retry.max_attempts} attempts: {type(last).__name__}: "
            f"{last}; check connectivity or exchange.base_url"
        ) from last

    def _wait_seconds(self, attempt: int, error: Exception, context: str) -> float:
        retry = self._cfg.retry
        wait = backoff_seconds(attempt, retry)
        retry_after = self._retry_after_seconds()
        if retry_after is not None:
            if retry_after > retry.max_backoff_seconds:
                raise ExchangeUnavailableError(
                    f"{context}: the exchange asks to wait {retry_after:.0f} s (rate limit or "
                    f"ban), more than exchange.retry.max_backoff_seconds; retry later"
                ) from error
            wait = max(wait, retry_after)
        logger.warning(
            "%s: attempt %d/%d failed (%s: %s); retrying in %.2f s",
            context,
            attempt,
            retry.max_attempts,
            type(error).__name__,
            str(error)[:200],
            wait,
        )
        return wait

    def _retry_after_seconds(self) -> float | None:
        headers = self._client.last_response_headers
        value = headers.get("Retry-After") if headers else None
        try:
            return None if value is None else max(0.0, float(value))
        except ValueError:
            return None


def _combine(frames: list[pd.DataFrame], timeframe: str) -> pd.DataFrame:
    """Concatenate pages, keep the first copy of a repeated open time, sort ascending."""
    frames = [frame for frame in frames if len(frame)]
    if not frames:
        return empty_ohlcv()
    combined = pd.concat(frames)
    combined = combined[~combined.index.duplicated(keep="first")].sort_index()
    return validate_ohlcv(combined, timeframe=timeframe)
