"""The HTML dashboard and the offline Plotly bundle (served from the installed package)."""

from __future__ import annotations

import functools
import gzip
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import plotly
from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates

from api.charts import figure_json
from api.dashboard import build_dashboard, build_live_panels
from api.deps import PairDep, SessionDep, SettingsDep, StoreDep
from api.headers import CSP_HEADER, make_nonce, page_policy

router = APIRouter(include_in_schema=False)

MISSING = "\u2013"
"""Shown for a missing or undefined number (an en dash)."""

LIVE_PANELS = ("signals", "accuracy", "recent", "paper_summary", "paper_trades")
"""The macros of `panels.html` that /dashboard/live renders (the page's `data-panel` names)."""

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates"
STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


def format_pct(value: Any, digits: int = 1) -> str:
    """0.5234 -> '52.3%'; missing values -> MISSING.

    >>> format_pct(0.5234), format_pct(None)
    ('52.3%', '\u2013')
    """
    if not isinstance(value, int | float) or not math.isfinite(value):
        return MISSING
    return f"{value * 100:.{digits}f}%"


def format_num(value: Any, digits: int = 3) -> str:
    """A number with `digits` significant decimals; missing values -> MISSING."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return MISSING
    return f"{value:,d}" if isinstance(value, int) else f"{value:.{digits}f}"


def format_time(value: Any) -> str:
    """A UTC datetime as '2024-05-01 12:00'."""
    return value.strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else MISSING


def make_templates() -> Jinja2Templates:
    """Jinja2 templates with the number and time filters the dashboard uses."""
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    templates.env.filters.update(pct=format_pct, num=format_num, utc=format_time)
    return templates


@functools.cache
def plotly_bundle() -> tuple[bytes, bytes]:
    """The plotly.js bundle of the installed plotly package, raw and gzipped (read once)."""
    raw = PLOTLY_JS.read_bytes()
    return raw, gzip.compress(raw, compresslevel=6, mtime=0)


@router.get("/static/plotly.min.js")
def plotly_js(request: Request) -> Response:
    """plotly.js from the installed package (never a CDN), gzipped when the client accepts it."""
    raw, packed = plotly_bundle()
    headers = {"Cache-Control": "public, max-age=86400", "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(packed, media_type="application/javascript", headers=headers)
    return Response(raw, media_type="application/javascript", headers=headers)


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    """The site icon (browsers ask for it on every page, the backtest reports included)."""
    return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")


@router.get("/", response_class=HTMLResponse)
def dashboard(
    request: Request, pair: PairDep, session: SessionDep, store: StoreDep, settings: SettingsDep
) -> HTMLResponse:
    """The accuracy dashboard for one symbol/timeframe (`?symbol=&timeframe=`)."""
    nonce = make_nonce()
    page = build_dashboard(session, store, settings, pair, script_nonce=nonce)
    templates: Jinja2Templates = request.app.state.templates
    headers = {CSP_HEADER: page_policy([f"'nonce-{nonce}'"])}
    return templates.TemplateResponse(request, "dashboard.html", {"page": page}, headers=headers)


@router.get("/dashboard/live")
def dashboard_live(
    request: Request, pair: PairDep, session: SessionDep, store: StoreDep
) -> JSONResponse:
    """The page's live panels for its auto-refresh: each `data-panel`'s HTML, rendered by the
    macros the page itself uses, and each `data-chart`'s figure for `Plotly.react`."""
    if store.current_or_none(pair.symbol, pair.timeframe) is None:
        store.check_known(pair.symbol, pair.timeframe)
    live = build_live_panels(session, store, pair)
    templates: Jinja2Templates = request.app.state.templates
    macros = templates.env.get_template("panels.html").module
    body = {
        "panels": {name: str(getattr(macros, name)(live)) for name in LIVE_PANELS},
        "charts": {name: figure_json(fig) for name, fig in live.figures.items()},
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
