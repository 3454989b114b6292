"""`/predict/batch` limits: 10,000 full-precision JSON rows fit, and Arrow bodies are sized
from their metadata before anything is decompressed (issue 14, defects 1 and 16)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
import requests
import yaml
from fastapi.testclient import TestClient

from api.app import create_app
from api.batch_body import json_batch_bytes
from api.schemas import ARROW_STREAM
from ml.registry import ModelManifest
from tests.api.arrow_bodies import (
    arrow_stream,
    forged_row_count,
    forged_uncompressed_length,
    tiny_batches,
    zeros_batch,
    zstd_bomb,
)
from tests.api.conftest import SMALL_ML, api_settings, features_of, install_model
from tests.bot.processes import Server, wait_for

logger = logging.getLogger(__name__)

LONGEST_FLOAT = -2.2250738585072014e-308
"""A float whose `json.dumps` text is as long as any (24 characters)."""
MAX_GROWTH_KB = 50_000
"""What refusing a bomb may cost the server, in kB of resident memory."""
ARROW = {"Content-Type": ARROW_STREAM}


def _json_rows(manifest: ModelManifest, n_rows: int) -> bytes:
    row = dict.fromkeys(manifest.feature_names, LONGEST_FLOAT)
    return json.dumps({"rows": [row] * n_rows}).encode()


# ------------------------------------------------------------------------------ memory
def memory_kb(pid: int | str = "self") -> dict[str, int]:
    """`VmRSS` (resident now) and `VmHWM` (peak since the last `reset_peak`) of a process."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return {name: int(fields[name].split()[0]) for name in ("VmRSS", "VmHWM")}


def reset_peak(pid: int | str = "self") -> None:
    """Restart `VmHWM` from the current RSS (Linux `clear_refs`, value 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


# ------------------------------------------------------------------------------ JSON (#16)
def test_batch_json_accepts_max_batch_rows_at_full_precision(
    client: TestClient, manifest: ModelManifest
) -> None:
    api = client.app.state.settings.api
    body = _json_rows(manifest, api.max_batch_rows)
    assert len(body) > api.max_body_bytes  # 10,000 such rows were 413 before
    fits = client.post("/predict/batch", content=body, headers={"Content-Type": "application/json"})
    assert fits.status_code == 200, fits.text[:300]
    assert fits.json()["count"] == api.max_batch_rows
    over = client.post(
        "/predict/batch",
        content=_json_rows(manifest, api.max_batch_rows + 1),
        headers={"Content-Type": "application/json"},
    )
    assert over.status_code == 422
    assert over.json()["detail"] == (
        "rows: 10001 rows is over the limit of 10000 (api.max_batch_rows); split the batch"
    )


def test_batch_body_over_its_derived_limit_is_413(tmp_path, trained_registry) -> None:
    settings = api_settings(tmp_path, api={"max_batch_rows": 5, "max_body_bytes": 2048})
    manifest = install_model(trained_registry, settings)
    limit = json_batch_bytes(manifest.feature_names, max_rows=5)
    fits = _json_rows(manifest, 5)
    padded = fits[:-1] + b" " * (limit - len(fits) + 1) + b"}"
    headers = {"Content-Type": "application/json"}
    with TestClient(create_app(settings)) as small:
        accepted = small.post("/predict/batch", content=fits, headers=headers)
        declared = small.post("/predict/batch", content=padded, headers=headers)
        streamed = small.post(
            "/predict/batch", content=iter([padded[:3000], padded[3000:]]), headers=headers
        )
    assert len(fits) > settings.api.max_body_bytes and accepted.status_code == 200
    for response in (declared, streamed):
        assert response.status_code == 413
        detail = response.json()["detail"]
        assert f"> {limit}" in detail and "api.max_batch_rows" in detail and "Arrow" in detail


# ------------------------------------------------------------------------------ Arrow (#1)
@pytest.mark.parametrize(
    ("make_body", "status", "text"),
    [
        (zstd_bomb, 422, "rows: 4000000 rows is over the limit of 10000"),
        (forged_uncompressed_length, 413, "Arrow body decompresses to more than 8000000 bytes"),
        (tiny_batches, 413, "Arrow body decompresses to more than 8000000 bytes"),
        (forged_row_count, 422, "Buffer #1 too small"),
    ],
    ids=["zstd-bomb", "forged-uncompressed-length", "tiny-batches", "forged-row-count"],
)
def test_batch_arrow_is_sized_before_it_is_decoded(
    client: TestClient, manifest: ModelManifest, make_body, status: int, text: str
) -> None:
    body = make_body(manifest)
    reset_peak()
    before = memory_kb()
    response = client.post("/predict/batch", content=body, headers=ARROW)
    growth = memory_kb()["VmHWM"] - before["VmRSS"]
    assert response.status_code == status, response.text[:300]
    assert text in response.json()["detail"]
    assert growth < MAX_GROWTH_KB, f"peak memory grew by {growth} kB"


def test_batch_arrow_compressed_batches_within_the_limits_are_scored(
    client: TestClient, manifest: ModelManifest
) -> None:
    frame = pa.Table.from_pylist([features_of(manifest)] * 300)
    batches = frame.select(manifest.feature_names).to_batches(max_chunksize=100)
    for compression in ("zstd", "lz4"):
        body = arrow_stream(batches, compression=compression)
        response = client.post("/predict/batch", content=body, headers=ARROW)
        assert response.status_code == 200, response.text[:300]
        assert response.json()["count"] == 300


# ------------------------------------------------------------------------------ real server
def _serve_config(tmp_path: Path) -> Path:
    config = {
        "ml": {**SMALL_ML, "registry_dir": str(tmp_path / "models")},
        "data": {"cache_dir": str(tmp_path / "cache")},
        "backtest": {"reports_dir": str(tmp_path / "reports")},
        "storage": {"db_url": f"sqlite:///{tmp_path / 'serve.db'}"},
        "api": {"rate_limit": None},
        "logging": {"level": "WARNING"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture
def server(tmp_path: Path, trained_registry: Path) -> Iterator[tuple[Server, ModelManifest]]:
    """`cryptopred serve` (one process: uvicorn runs in it) with a promoted model."""
    manifest = install_model(trained_registry, api_settings(tmp_path))
    server = Server(_serve_config(tmp_path), tmp_path / "serve.log").start()
    try:
        wait_for(lambda: server.get_json("/features")[0] == 200, timeout=60, what="the API")
        yield server, manifest
    finally:
        server.ensure_stopped()


@pytest.mark.slow
def test_serve_memory_stays_flat_while_a_zstd_bomb_is_refused(server) -> None:
    server, manifest = server
    assert server.process is not None
    pid = server.process.pid
    url = f"{server.url}/predict/batch"
    warm_up = arrow_stream([zeros_batch(manifest, 100)], compression="zstd")
    assert requests.post(url, data=warm_up, headers=ARROW, timeout=30).status_code == 200
    bomb = zstd_bomb(manifest)
    reset_peak(pid)
    before = memory_kb(pid)
    answers = [requests.post(url, data=bomb, headers=ARROW, timeout=60) for _ in range(3)]
    after = memory_kb(pid)
    logger.info(
        "bomb of %d bytes: server RSS %d kB -> %d kB, peak %d kB",
        len(bomb), before["VmRSS"], after["VmRSS"], after["VmHWM"],
    )  # fmt: skip
    assert [answer.status_code for answer in answers] == [422] * 3
    assert "4000000 rows is over the limit" in answers[0].json()["detail"]
    assert after["VmRSS"] - before["VmRSS"] < MAX_GROWTH_KB
    assert after["VmHWM"] - before["VmRSS"] < MAX_GROWTH_KB
