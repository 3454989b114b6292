"""Numbers as text for the reports (HTML filters, console tables): None/NaN print as a dash."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

DASH = "-"


def is_finite_number(value: Any) -> bool:
    """True for a finite int/float (numpy floats included).

    >>> is_finite_number(1.5), is_finite_number(float("nan")), is_finite_number(None)
    (True, False, False)
    """
    return isinstance(value, int | float) and math.isfinite(value)


def fmt_num(value: Any, digits: int = 4) -> str:
    """A number for a table; None/NaN print as a dash.

    >>> fmt_num(0.512345), fmt_num(None), fmt_num(1.5, 1)
    ('0.5123', '-', '1.5')
    """
    return f"{value:.{digits}f}" if is_finite_number(value) else DASH


def fmt_pct(value: Any, *, signed: bool = True) -> str:
    """A fraction as a percentage.

    >>> fmt_pct(0.1234), fmt_pct(-0.5), fmt_pct(0.25, signed=False)
    ('+12.34 %', '-50.00 %', '25.0 %')
    """
    if not is_finite_number(value):
        return DASH
    return f"{value * 100:+.2f} %" if signed else f"{value * 100:.1f} %"


def _finite_or(fmt: Callable[[Any], str], missing: str = DASH) -> Callable[[Any], str]:
    return lambda value: fmt(value) if is_finite_number(value) else missing


TEMPLATE_FILTERS: dict[str, Callable[[Any], str]] = {
    "num": fmt_num,
    "pct": fmt_pct,
    "pct0": lambda v: fmt_pct(v, signed=False),
    "pp": _finite_or(lambda v: f"{v * 100:+.1f} pp"),
    "pval": _finite_or(lambda v: f"{v:.3g}"),
    "bps": _finite_or(lambda v: f"{v:.2f} bps"),
    "sci": _finite_or(lambda v: f"{v:.1e}", "n/a"),
    "count": _finite_or(lambda v: f"{v:,}"),
    "sign": _finite_or(lambda v: "pos" if v > 0 else "neg" if v < 0 else "", ""),
}
"""Jinja2 filters of the report templates, by name."""
