"""The headline cards in the terminal (rich): the first thing `cryptopred backtest` prints."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from backtests.headline import CardStatus, Headline

_STYLES: dict[CardStatus, str] = {
    "better": "bold blue",  # blue / dark orange: readable with red-green colour blindness
    "worse": "bold dark_orange3",
    "neutral": "",
}


def headline_table(headline: Headline) -> Table:
    """One row per card: value, reference, the status mark (coloured AND in words), detail."""
    table = Table(
        title=f"Headline: {headline.source} against buy-and-hold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("reference", no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column("detail")
    for card in headline.cards:
        style = _STYLES[card.status]
        table.add_row(
            card.title,
            f"[{style}]{card.value_text}[/]" if style else card.value_text,
            card.reference_text,
            f"[{style}]{card.mark}[/]" if style else card.mark,
            card.detail,
        )
    return table


def print_headline(headline: Headline, console: Console) -> None:
    """Caveats, the cards, the one-sentence verdict and the DSR/PBO line."""
    for caveat in headline.caveats:
        console.print(caveat, style="bold white on red", highlight=False)
    console.print(headline_table(headline))
    console.print(headline.verdict, style="bold", highlight=False)
    console.print(headline.selection_line, highlight=False)
