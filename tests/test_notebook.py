"""The exploration notebook runs headless, top to bottom, on the shared BTC file."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_exploration_notebook_executes(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook = nbformat.read(ROOT / "notebooks" / "exploration.ipynb", as_version=4)
    monkeypatch.setenv("CRYPTOPRED_DATA", str(shared_data / "Binance_BTCUSDT_1h.csv"))
    NotebookClient(notebook, timeout=300, kernel_name="python3").execute(
        cwd=str(ROOT / "notebooks")
    )
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    text = "".join(out.get("text", "") for out in outputs)
    assert "33,412 clean candles" in text
    charts = [out for out in outputs if "application/vnd.plotly.v1+json" in out.get("data", {})]
    assert len(charts) >= 4
    (tmp_path / "executed.ipynb").write_text(nbformat.writes(notebook), encoding="utf-8")
