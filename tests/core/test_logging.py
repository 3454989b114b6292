"""setup_logging: one UTC format on stderr, printed above rich's live progress bars."""

import io
import logging
from collections.abc import Iterator

import pytest
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from core.logging import setup_logging
from core.settings import LoggingSettings

logger = logging.getLogger("tests.core.logging")


@pytest.fixture
def configured() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    setup_logging(LoggingSettings(level="INFO"))
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_setup_logging_writes_utc_lines_to_the_current_stderr(
    configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logger.info("Fetched %d candles", 3)
    line = capsys.readouterr().err.strip()
    assert line.endswith("INFO tests.core.logging: Fetched 3 candles")
    assert line[:24].endswith("Z") and line[10] == "T"


def test_log_lines_print_above_live_progress_bars_not_on_them(configured: None) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=80, color_system=None)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), console=console)
    with progress:
        task = progress.add_task("folds", total=4)
        progress.update(task, completed=1)
        logger.warning("Fold 1/4 done")
        progress.update(task, completed=4)
    # rich redraws the bars with cursor moves; the log line must be a line of its own.
    lines = [line.split("\r")[-1] for line in screen.getvalue().splitlines()]
    (logged,) = [line for line in lines if "Fold 1/4 done" in line]
    assert "folds" not in logged and "━" not in logged
    assert "WARNING tests.core.logging: Fold 1/4 done" in logged
