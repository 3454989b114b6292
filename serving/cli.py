"""`cryptopred models promote`: the command-line door to `serving.promotion.promote`."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from core.settings import Settings, require_settings
from serving.promotion import Promotion, promote_with_settings

logger = logging.getLogger(__name__)


def promote_from_cli(settings: Settings, model_id: str) -> Promotion:
    """Promote as the CLI (`cryptopred train --promote` and `cryptopred models promote`)."""
    return promote_with_settings(settings, model_id, actor="cli")


def promote_command(ctx: typer.Context, model_id: Annotated[str, typer.Argument()]) -> None:
    """Make a model the current one for its symbol and timeframe (recorded as a model event)."""
    done = promote_from_cli(require_settings(ctx.obj), model_id)
    previous = done.previous_model_id or "none"
    typer.echo(
        f"{model_id} is now the current {done.symbol} {done.timeframe} model (previous {previous})"
    )
