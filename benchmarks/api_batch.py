"""Benchmark: `POST /predict/batch` with 10,000 rows vs the model's raw `predict_proba` rows/s.

Usage:
    .venv/bin/python -m benchmarks.api_batch                          # logreg + lightgbm
    .venv/bin/python -m benchmarks.api_batch --models lightgbm --repeat 9

Target (issue 6): API rows/s >= 50 % of `estimator.predict_proba(DataFrame)` rows/s of the same
model. Both request formats are measured end to end over one keep-alive connection to a
`python -m uvicorn api.app:create_app --factory` on 127.0.0.1 (client serialisation excluded,
sending and reading the whole response included): JSON `{"rows": [{name: value}, ...]}` with
full-precision floats (10.6 MB: within the batch body limit that `api.max_batch_rows` implies,
so the default config serves it) and an Arrow IPC stream (2.5 MB). The rows are the newest
10,000 feature rows of the shared BTC 1h candles.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from benchmarks.api_predict import (
    DEFAULT_DATA,
    RawClient,
    build_request,
    load_candles,
    serving_root,
    train_models,
    uvicorn_server,
)

N_ROWS = 10_000
TARGET = 0.5
ARROW = "application/vnd.apache.arrow.stream"


def feature_rows(candles: pd.DataFrame, artifact) -> pd.DataFrame:
    """The newest `N_ROWS` complete feature rows, in the model's column order."""
    from ml.features import build_features
    from ml.predict import feature_settings_of

    features = build_features(candles, feature_settings_of(artifact))
    return features[artifact.manifest.feature_names].dropna().tail(N_ROWS).reset_index(drop=True)


def arrow_body(frame: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def time_calls(call, *, repeat: int) -> float:
    """Median seconds of `repeat` calls after one warm-up call."""
    call()
    durations = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        durations.append(time.perf_counter() - started)
    return statistics.median(durations)


def check_response(body: bytes, expected: np.ndarray) -> None:
    """The API answered every row with `predict_proba`'s probability (JSON or Arrow)."""
    if body.startswith(b"{"):
        got = np.array([item["proba_up"] for item in json.loads(body)["predictions"]])
    else:
        got = pa.ipc.open_stream(pa.py_buffer(body)).read_all().column("proba_up").to_numpy()
    if len(got) != len(expected) or not np.allclose(got, expected, rtol=0, atol=1e-12):
        raise AssertionError("the API's batch predictions differ from predict_proba")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="candle file (1h)")
    parser.add_argument("--models", default="logreg,lightgbm", help="comma-separated names")
    parser.add_argument("--repeat", type=int, default=7, help="timed calls per point (median)")
    return parser.parse_args()


def bench_model(root: Path, algorithm: str, model_id: str, candles, repeat: int) -> list[tuple]:
    """Rows of (label, seconds, rows/s, ratio to raw) for one model."""
    from ml.registry import load_model
    from serving.scorer import make_scorer

    artifact = load_model(root / "models", model_id)
    X = feature_rows(candles, artifact)
    expected = artifact.estimator.predict_proba(X)[:, 1]
    raw = time_calls(lambda: artifact.estimator.predict_proba(X), repeat=repeat)
    scorer = make_scorer(artifact)
    matrix = X.to_numpy()
    compiled = time_calls(lambda: scorer.score(matrix), repeat=repeat)
    json_request = build_request(
        "POST", "/predict/batch", json.dumps({"rows": X.to_dict("records")}).encode()
    )
    arrow_request = build_request("POST", "/predict/batch", arrow_body(X), ARROW, accept=ARROW)
    served = serving_root(root, algorithm, model_id)
    env = {"CRYPTOPRED_CONFIG": str(served / "config.yaml")}
    with ExitStack() as stack:
        port = stack.enter_context(
            uvicorn_server("api.app:create_app", workers=1, ready_path="/features", env=env)
        )
        client = RawClient(port)
        stack.callback(client.close)
        timings = {}
        for label, request in (("JSON", json_request), ("Arrow", arrow_request)):
            status, body = client.send(request)
            if status != 200:
                raise AssertionError(f"{label}: HTTP {status}: {body[:300]!r}")
            check_response(body, expected)
            timings[label] = (
                time_calls(lambda r=request: client.send(r), repeat=repeat),
                len(request),
            )
    rows = [
        (f"{algorithm} predict_proba (raw)", raw, None),
        (f"{algorithm} compiled scorer", compiled, None),
    ]
    rows += [(f"{algorithm} API {label} ({size / 1e6:.1f} MB)", seconds, raw)
             for label, (seconds, size) in timings.items()]  # fmt: skip
    return rows


def main() -> int:
    args = _parse_args()
    passed = True
    lines = []
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = Path(tmp)
        ids = train_models(root, args.models.split(","), args.data)
        candles = load_candles(args.data)
        for algorithm, model_id in ids.items():
            best = 0.0
            for label, seconds, raw in bench_model(root, algorithm, model_id, candles, args.repeat):
                rate = N_ROWS / seconds
                ratio = "" if raw is None else f"{(raw / seconds):6.2f}"
                best = max(best, raw / seconds) if raw is not None else best
                lines.append(f"{label:<36} {seconds * 1000:>9.1f} {rate:>12,.0f} {ratio:>8}")
            passed &= best >= TARGET
    print(f"\n{N_ROWS:,} rows x 31 features, medians of {args.repeat} calls, 127.0.0.1")
    print(f"{'path':<36} {'ms':>9} {'rows/s':>12} {'vs raw':>8}")
    print("\n".join(lines))
    print(
        f"\n{'PASS' if passed else 'FAIL'}: target API rows/s >= {TARGET:.0%} of raw predict_proba"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
