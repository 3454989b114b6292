"""Console tables of the decision layer: the policy traded in each fold, gross vs net, risk."""

from __future__ import annotations

from rich import box
from rich.table import Table

from backtests.formatting import fmt_num, fmt_pct
from backtests.run import BacktestResult


def _pct(value: float) -> str:
    return fmt_pct(value).replace(" %", "%")


def decision_table(result: BacktestResult) -> Table:
    """Per fold: the traded candidate (chosen on earlier candles only), gross, net, B&H."""
    selection = result.selection
    stats = selection.stats
    mode = "nested choice" if selection.decision.mode == "auto" else "fixed policy"
    table = Table(
        title=f"Decision layer ({mode}, {selection.source}): {selection.decision.n_trials} "
        "candidate(s)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for column in ("fold", "test period", "traded candidate", "gross", "net", "B&H", "trades"):
        left = column in {"test period", "traded candidate"}
        table.add_column(
            column, justify="left" if left else "right", no_wrap=column != "traded candidate"
        )
    for fold in stats.folds:
        table.add_row(
            str(fold.fold),
            f"{fold.start:%Y-%m-%d} .. {fold.end:%Y-%m-%d}",
            fold.candidate,
            _pct(fold.gross_return),
            _pct(fold.net_return),
            _pct(fold.buy_and_hold_return),
            f"{fold.n_trades:,}",
        )
    table.add_section()
    trading, hold = selection.trading, result.buy_and_hold
    table.add_row(
        "all",
        f"{result.period_start:%Y-%m-%d} .. {result.period_end:%Y-%m-%d}",
        f"{stats.trades_per_day:.2f} trades/day, exposure {trading.exposure:.0%}",
        _pct(stats.gross_return),
        _pct(trading.total_return),
        _pct(hold.total_return),
        f"{trading.n_trades:,}",
        style="bold",
    )
    table.caption = (
        f"Sharpe {fmt_num(trading.sharpe, 2)} vs {fmt_num(hold.sharpe, 2)}, Sortino "
        f"{fmt_num(trading.sortino, 2)} vs {fmt_num(hold.sortino, 2)}, max DD "
        f"{_pct(trading.max_drawdown)} vs {_pct(hold.max_drawdown)} (strategy vs buy-and-hold). "
        "Each fold's candidate was chosen on out-of-sample candles before that fold only."
    )
    return table
