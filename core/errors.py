"""The application's exception hierarchy; each docstring tells the caller what to do."""

from __future__ import annotations


class AppError(Exception):
    """Base of every expected failure; caught only at entry points and API handlers."""


class ConfigError(AppError):
    """Invalid config.yaml or environment; fix the named key and restart."""


class DataError(AppError):
    """Candle data is missing or unusable; fix or re-fetch the data, then retry."""


class DataValidationError(DataError):
    """Candles break the OHLCV contract; the message names the first bad timestamp."""


class DataFormatError(DataError):
    """A candle file has a layout no reader recognises; convert it or pass a supported file."""


class DataNotFoundError(DataError):
    """No candles where they were expected; fetch or import them first."""


class CandleGapError(DataError):
    """Candles are missing inside the requested range and the policy says fail."""


class NotEnoughDataError(DataError):
    """Too few candles for the requested operation; provide a longer history."""


class ExchangeError(AppError):
    """The exchange could not deliver; see the subclass for whether retrying helps."""


class TemporaryExchangeError(ExchangeError):
    """A transient exchange fault (rate limit, timeout, 5xx, garbage reply); retry with backoff."""


class ExchangeUnavailableError(ExchangeError):
    """The exchange refused permanently (bad symbol, auth, geo-block) or retries ran out; stop."""


class ModelError(AppError):
    """A model artifact is missing, corrupt or incompatible; train or promote another model."""


class ModelNotFoundError(ModelError):
    """No such model (or no current model); train one with `cryptopred train`."""


class ModelIntegrityError(ModelError):
    """A model file does not match its manifest hash; never load it, retrain instead."""


class FeatureMismatchError(ModelError):
    """Features differ from what the model was trained on; retrain or fix the feature config."""


class LookAheadError(ModelError):
    """A feature uses future data; fix the named feature before trusting any result."""


class StorageError(AppError):
    """The database failed; check the URL, disk space and permissions, then retry."""
