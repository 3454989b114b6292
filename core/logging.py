"""Logging setup in UTC; only entry points call `setup_logging`."""

from __future__ import annotations

import logging
import sys
import time

from core.settings import LoggingSettings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _UtcFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


class _StderrHandler(logging.Handler):
    """Write each record to whatever `sys.stderr` is when the record is emitted.

    While rich shows live progress bars in a terminal it swaps `sys.stderr` for a proxy that
    prints through the bars' console, above the bars; a handler that kept the original stream
    would glue its lines onto the bars instead.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # the logging contract: report through handleError, never raise
            self.handleError(record)


def setup_logging(cfg: LoggingSettings) -> None:
    """Send log records to stderr (and optionally a file) in one UTC format."""
    formatter = _UtcFormatter(LOG_FORMAT)
    handlers: list[logging.Handler] = [_StderrHandler()]
    if cfg.file is not None:
        cfg.file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(cfg.file, encoding="utf-8"))
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(cfg.level)
    for noisy in ("urllib3", "ccxt", "apscheduler.executors", "optuna", "distributed"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(cfg.level)))
