"""How a report page gets plotly.js: a link to the copy shared by all reports (default), or the
whole library embedded so that one HTML file works on its own (`--self-contained`)."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import plotly
from plotly.offline import get_plotlyjs_version

logger = logging.getLogger(__name__)

ASSETS_DIR = "assets"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


@dataclass(frozen=True, slots=True)
class PlotlyScript:
    """What a page's `_plotly.html` partial writes: `<script src>` or the inline library."""

    src: str | None = None
    inline: str | None = None

    def __post_init__(self) -> None:
        if (self.src is None) == (self.inline is None):
            raise ValueError("a PlotlyScript has either a src or inline code")


def ensure_plotly_asset(reports_dir: Path) -> Path:
    """Copy the installed plotly.js to `<reports_dir>/assets/` once per version; return it.

    Every report links it relatively, so the pages open offline and never touch a CDN.
    """
    target = reports_dir / ASSETS_DIR / f"plotly-{get_plotlyjs_version()}.min.js"
    if not target.is_file() or target.stat().st_size != PLOTLY_JS.stat().st_size:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".plotly-", suffix=".tmp", dir=target.parent)
        os.close(fd)
        partial = Path(name)  # unique per call: concurrent runs never share a temp file
        try:
            shutil.copyfile(PLOTLY_JS, partial)
            partial.chmod(0o644)  # mkstemp makes it private; a copied reports folder needs it
            partial.replace(target)  # atomic: a concurrent run never links a half-copied file
        finally:
            partial.unlink(missing_ok=True)
        logger.info("Copied plotly.js %s to %s", get_plotlyjs_version(), target)
    return target


def plotly_script(page: Path, reports_dir: Path, *, self_contained: bool) -> PlotlyScript:
    """plotly.js for the page written at `page`: embedded (about 4.8 MB), or linked relatively
    to the shared copy in `<reports_dir>/assets/` (copied there first if needed)."""
    if self_contained:
        return PlotlyScript(inline=PLOTLY_JS.read_text(encoding="utf-8"))
    asset = ensure_plotly_asset(reports_dir)
    relative = os.path.relpath(asset.resolve(), page.parent.resolve())
    return PlotlyScript(src=Path(relative).as_posix())
