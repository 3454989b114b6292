"""The bundled sample: its span and size, enough walk-forward folds, reproducible from its source;
and the unreachable-exchange rules: name the cache, else fall back to the sample (and say so)."""

import gzip
import logging
from pathlib import Path

import pytest

from core.errors import ExchangeUnavailableError
from core.settings import Settings
from data.cache import cache_path, write_cache
from data.candles import prepare_candles
from data.files import read_candle_file
from data.samples import BTC_USDT_1H, read_sample, sample_csv, write_sample
from data.samples.__main__ import main as regenerate
from ml.dataset import make_dataset
from ml.walk_forward import walk_forward_splits
from tests.conftest import SHARED_DATA
from tests.factories import make_ohlcv, make_settings

CLOSED_PORT = "http://127.0.0.1:9"  # nothing listens there: connection refused at once


def test_sample_span_rows_and_size() -> None:
    frame = read_sample(BTC_USDT_1H)
    assert frame.index[0] == BTC_USDT_1H.first and frame.index[-1] == BTC_USDT_1H.last
    assert len(frame) == 17_748  # two years and nine days, minus 12 hours missing at Binance
    assert BTC_USDT_1H.path.stat().st_size < 600_000  # well under the 1.5 MB budget
    assert BTC_USDT_1H.path.with_name("README.md").is_file()


def test_sample_gives_several_folds_with_the_default_walk_forward() -> None:
    settings = Settings()
    dataset = make_dataset(read_sample(BTC_USDT_1H), settings.ml)
    folds = walk_forward_splits(
        len(dataset.X), settings.ml.walk_forward, horizon_bars=settings.ml.labels.horizon_bars
    )
    assert len(folds) == 4


def test_write_sample_round_trips_through_the_reader(tmp_path: Path) -> None:
    frame = make_ohlcv(50, seed=1)
    path = tmp_path / "s.csv.gz"
    write_sample(frame, path)
    first = path.read_bytes()
    write_sample(frame, path)
    assert path.read_bytes() == first  # no time stamp or file name inside the gzip
    raw = read_candle_file(path)
    assert raw.format_name == "plain_csv"
    back = raw.frame[list(frame.columns)].sort_index()
    assert back.index.equals(frame.index)
    assert (back.to_numpy() == frame.to_numpy()).all()  # shortest round-trip floats: exact


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared data not available")
def test_sample_regenerates_identically_from_the_shared_export(tmp_path: Path) -> None:
    assert regenerate(["--source-dir", str(SHARED_DATA), "--check"]) == 0
    assert regenerate(["--source-dir", str(SHARED_DATA), "--out-dir", str(tmp_path)]) == 0
    rebuilt = gzip.decompress((tmp_path / BTC_USDT_1H.file_name).read_bytes()).decode("ascii")
    assert rebuilt == sample_csv(read_sample(BTC_USDT_1H))


def _offline_settings(tmp_path: Path, **data: object) -> Settings:
    return make_settings(
        tmp_path,
        data=data,
        exchange={"base_url": CLOSED_PORT, "timeout_ms": 500},
    )


def test_unreachable_exchange_falls_back_to_the_sample_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _offline_settings(tmp_path)
    with caplog.at_level(logging.WARNING, logger="data.candles"):
        prepared = prepare_candles(settings, sample_fallback=True)
    assert prepared.is_sample
    assert prepared.describe() == BTC_USDT_1H.describe()
    assert "not live data" in prepared.describe()
    assert len(prepared.frame) == 17_748
    (notice,) = [r for r in caplog.records if r.name == "data.candles"]
    assert "Cannot reach binance" in notice.getMessage()
    assert "bundled sample BTC/USDT 1h" in notice.getMessage()
    assert not (tmp_path / "cache").exists()  # the sample never enters the user's cache


@pytest.mark.parametrize(
    ("fallback", "symbol"), [(False, "BTC/USDT"), (True, "ETH/USDT")], ids=["off", "no-sample"]
)
def test_unreachable_exchange_without_sample_keeps_the_import_hint(
    tmp_path: Path, fallback: bool, symbol: str
) -> None:
    settings = _offline_settings(tmp_path, symbol=symbol)
    with pytest.raises(ExchangeUnavailableError, match=r"cannot reach binance.*DATA="):
        prepare_candles(settings, sample_fallback=fallback)


def test_unreachable_exchange_names_the_cache_and_offline_instead_of_the_sample(
    tmp_path: Path,
) -> None:
    settings = _offline_settings(tmp_path)
    target = cache_path(settings.data.cache_dir, "binance", "BTC/USDT", "1h")
    write_cache(make_ohlcv(300, seed=2), target)
    with pytest.raises(ExchangeUnavailableError) as caught:
        prepare_candles(settings, sample_fallback=True)
    message = str(caught.value)
    assert message.startswith("cannot reach binance")
    assert "300 BTC/USDT 1h candles" in message and str(target) in message
    assert "--offline" in message and "OFFLINE=1" in message
    assert prepare_candles(settings, offline=True).origin == f"cache:{target}"
