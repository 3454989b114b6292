"""Fixtures for CLI tests: a config file with small, fast settings and a candle CSV."""

from pathlib import Path

import pytest
import yaml

from tests.factories import make_ohlcv


def write_config(tmp_path: Path, **sections: dict) -> Path:
    """A config.yaml with working paths under tmp_path and small walk-forward windows."""
    config = {
        "data": {"cache_dir": str(tmp_path / "cache")},
        "ml": {
            "registry_dir": str(tmp_path / "models"),
            "model": {"algorithm": "logreg"},
            "walk_forward": {"train_bars": 800, "validation_bars": 200, "step_bars": 400},
        },
        "backtest": {"reports_dir": str(tmp_path / "reports"), "models": ["logreg"]},
        "storage": {"db_url": f"sqlite:///{tmp_path / 'cp.db'}"},
        "logging": {"level": "WARNING"},
    }
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return write_config(tmp_path)


@pytest.fixture
def candle_csv(tmp_path: Path) -> Path:
    frame = make_ohlcv(3000, seed=11)
    path = tmp_path / "candles.csv"
    out = frame.reset_index()
    out["timestamp"] = out["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(path, index=False)
    return path
