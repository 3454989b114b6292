"""Backtest runs and their HTML reports (files served only from `backtest.reports_dir`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, RedirectResponse

from api.deps import SessionDep, SettingsDep
from api.headers import CSP_HEADER, file_page_policy
from api.queries import reports_root
from api.schemas import MODEL_ID_PATTERN, BacktestListOut, BacktestOut, ErrorOut
from api.summaries import REPORTS_URL, backtest_summary, report_url
from core.echo import echo_value
from storage.repository import get_backtest_run, list_backtest_runs

logger = logging.getLogger(__name__)

router = APIRouter(tags=["backtests"])

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "application/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
"""The only report files served; anything else under the reports directory stays private."""

RunId = Annotated[str, PathParam(max_length=200, pattern=MODEL_ID_PATTERN)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such run or file"}
}


@router.get("/backtests", response_model=BacktestListOut)
def backtests(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500, description="how many runs, newest first")] = 50,
) -> BacktestListOut:
    """Recorded backtest runs, newest first, with headline metrics and report links."""
    return BacktestListOut(
        items=[backtest_summary(run) for run in list_backtest_runs(session, limit=limit)]
    )


@router.get("/backtests/{run_id}", response_model=BacktestOut, responses=NOT_FOUND)
def backtest(run_id: RunId, session: SessionDep) -> BacktestOut:
    """One backtest run with every metric it recorded."""
    run = get_backtest_run(session, run_id)
    if run is None:
        raise HTTPException(
            status_code=404, detail=f"backtest run {run_id!r} not found; see GET /backtests"
        )
    summary = backtest_summary(run)
    return BacktestOut(**summary.model_dump(), config_hash=run.config_hash, metrics=run.metrics)


@router.get(
    "/backtests/{run_id}/report",
    response_class=RedirectResponse,
    status_code=307,
    responses={
        307: {
            "description": "Redirect to the report file",
            "headers": {
                "Location": {
                    "schema": {"type": "string"},
                    "example": "/reports/20240501T000000.000Z-1a2b3c4d/report.html",
                }
            },
        },
        **NOT_FOUND,
    },
)
def backtest_report(run_id: RunId, session: SessionDep, settings: SettingsDep) -> RedirectResponse:
    """Redirect to the run's HTML report (so its relative asset links resolve)."""
    run = get_backtest_run(session, run_id)
    url = report_url(run) if run is not None else None
    if (
        url is None
        or safe_report_file(reports_root(settings), url.removeprefix(f"{REPORTS_URL}/")) is None
    ):
        raise HTTPException(status_code=404, detail=f"backtest run {run_id!r} has no HTML report")
    return RedirectResponse(url, status_code=307)


@router.get(f"{REPORTS_URL}/{{path:path}}", response_class=FileResponse, include_in_schema=False)
def report_file(path: str, settings: SettingsDep) -> FileResponse:
    """A file of a backtest report (HTML, its Plotly bundle, JSON) from the reports directory."""
    file = safe_report_file(reports_root(settings), path)
    if file is None:
        raise HTTPException(
            status_code=404, detail=f"no report file {echo_value(path, max_chars=200)}"
        )
    # a report page may run its own inline (Plotly) scripts, allowed by hash, and nothing else
    headers = {CSP_HEADER: file_page_policy(file)} if file.suffix.lower() == ".html" else None
    return FileResponse(file, media_type=MEDIA_TYPES[file.suffix.lower()], headers=headers)


def safe_report_file(root: Path, relative: str) -> Path | None:
    """The file `relative` inside `root`, or None for traversal, symlinks out, or other types.

    >>> safe_report_file(Path("/tmp"), "../etc/passwd") is None
    True
    """
    if "\x00" in relative or not relative or relative.startswith(("/", "\\")):
        return None
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root) or candidate.suffix.lower() not in MEDIA_TYPES:
        return None
    return candidate if candidate.is_file() else None
