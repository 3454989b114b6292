"""The report page in headless Chromium: headline cards, the sortable trade list, the layout."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backtests.report import ReportFiles, write_report
from backtests.run import BacktestResult
from core.settings import Settings
from tests.backtests.test_cli import CHROMIUM_ARGS

BETTER_RGB, WORSE_RGB = "rgb(0, 114, 178)", "rgb(213, 94, 0)"

NUMBERS_OF_COLUMN = """(key) => {
  const table = document.querySelector('table.sortable');
  const heads = Array.from(table.tHead.rows[0].cells);
  const index = heads.findIndex(th => th.querySelector('button').dataset.key === key);
  return Array.from(table.tBodies[0].rows).map(r => parseFloat(r.cells[index].dataset.v));
}"""

TABLES_CUT_OFF = """() => {
  const width = document.documentElement.clientWidth;
  const scrolls = (el) => {
    for (let node = el.parentElement; node; node = node.parentElement) {
      const style = getComputedStyle(node);
      if (['auto', 'scroll'].includes(style.overflowX) && node.clientWidth <= width) return true;
    }
    return false;
  };
  return Array.from(document.querySelectorAll('table'))
    .filter(t => t.getBoundingClientRect().width > width && !scrolls(t))
    .map(t => t.className || t.id || t.rows[0].textContent.slice(0, 40));
}"""


@pytest.fixture(scope="module")
def fixed_report(bt_fixed_result: BacktestResult, bt_fixed_settings: Settings) -> ReportFiles:
    return write_report(bt_fixed_result, bt_fixed_settings.backtest.reports_dir)


@pytest.fixture
def page_of(chromium: Path) -> Iterator[Any]:
    """Open a report at a viewport width; collect console errors and non-local requests."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)

        def open_page(path: Path, width: int) -> Any:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.errors, page.foreign = [], []
            page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: page.errors.append(str(e)))
            page.on(
                "request",
                lambda r: None if r.url.startswith("file://") else page.foreign.append(r.url),
            )
            page.goto(path.as_uri())
            page.wait_for_function("() => window.Plotly !== undefined")
            return page

        yield open_page
        browser.close()


def test_report_headline_cards_are_coloured_by_their_status(
    page_of: Any, fixed_report: ReportFiles
) -> None:
    cards = json.loads(fixed_report.json.read_text(encoding="utf-8"))["headline"]["cards"]
    page = page_of(fixed_report.html, 1400)
    shown = page.evaluate(
        "Array.from(document.querySelectorAll('.headline .card')).map(c => [c.dataset.card,"
        " c.dataset.status, getComputedStyle(c).borderLeftColor,"
        " c.querySelector('.card-mark').textContent, c.getBoundingClientRect().top])"
    )
    assert [key for key, *_ in shown] == [card["key"] for card in cards]
    colours = {"better": BETTER_RGB, "worse": WORSE_RGB}
    for (key, status, colour, mark, _), card in zip(shown, cards, strict=True):
        assert status == card["status"], key
        assert mark == card["mark"] and mark.endswith(
            {"better": "better", "worse": "worse"}.get(status, "info")
        )
        if status in colours:
            assert colour == colours[status], key
        else:
            assert colour not in colours.values(), key
    assert {status for _, status, *_ in shown} & {"better", "worse"}
    assert max(top for *_, top in shown) < 900, "the cards are on the first screen"
    assert not page.errors, page.errors
    assert not page.foreign, page.foreign


def test_report_trade_table_sorts_by_click_and_keyboard(
    page_of: Any, fixed_report: ReportFiles
) -> None:
    page = page_of(fixed_report.html, 1400)
    numbers = page.evaluate(NUMBERS_OF_COLUMN, "number")
    assert numbers == sorted(numbers) and len(numbers) >= 3
    page.click("table.sortable button[data-key=pnl_net]")
    ascending = page.evaluate(NUMBERS_OF_COLUMN, "pnl_net")
    assert ascending == sorted(ascending)
    assert page.evaluate(NUMBERS_OF_COLUMN, "number") != numbers, "rows did not move"
    page.focus("table.sortable button[data-key=pnl_net]")
    page.keyboard.press("Enter")
    descending = page.evaluate(NUMBERS_OF_COLUMN, "pnl_net")
    assert descending == sorted(ascending, reverse=True)
    sort_state = page.get_attribute("table.sortable th:has(button[data-key=pnl_net])", "aria-sort")
    assert sort_state == "descending"
    assert not page.errors, page.errors


def test_report_is_readable_at_1024_px(page_of: Any, fixed_report: ReportFiles) -> None:
    page = page_of(fixed_report.html, 1024)
    page.wait_for_timeout(500)
    assert page.evaluate(TABLES_CUT_OFF) == []
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page scrolls sideways by {overflow} px"
    assert page.evaluate("document.querySelectorAll('.headline .card').length") == 6
    assert not page.errors, page.errors
    assert not page.foreign, page.foreign
