"""The paper account of a market and whether live results stay within expectations."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import PairDep, SessionDep, StoreDep
from api.paper import PaperOut, paper_report
from api.schemas import ERROR_RESPONSES

router = APIRouter(tags=["history"])


@router.get("/paper", response_model=PaperOut, responses=ERROR_RESPONSES)
def paper(session: SessionDep, store: StoreDep, pair: PairDep) -> PaperOut:
    """The market's paper position, equity vs buy-and-hold since the bot started, trades,
    the model's expectation band and the drift alarm."""
    model = store.current_or_none(pair.symbol, pair.timeframe)
    if model is None:
        store.check_known(pair.symbol, pair.timeframe)
    manifest = model.manifest if model else None
    return paper_report(session, manifest, symbol=pair.symbol, timeframe=pair.timeframe)
