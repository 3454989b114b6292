"""Benchmark: `POST /predict` throughput and latency vs a hello-world FastAPI app.

Usage:
    .venv/bin/python -m benchmarks.api_predict                       # logreg + lightgbm
    .venv/bin/python -m benchmarks.api_predict --models logreg --seconds 3 --concurrency 1,8
    .venv/bin/python -m benchmarks.api_predict --baseline /tmp/wt-old   # before/after, interleaved

Targets (issue 6): `/predict` req/s >= 50 % of the hello-world endpoint served with the same
uvicorn settings, and p50 latency <= 3 ms at concurrency 1.

Both servers run as `python -m uvicorn <factory> --factory` on 127.0.0.1 with identical flags
(workers, no access log, warning log level). The API runs with `api.rate_limit: null` (the
default 600/minute would answer 429 after the first second). Models are trained on the shared
BTC 1h candles (synthetic ones if the file is absent) with one walk-forward fold, then
promoted. With `--baseline DIR` (a `git worktree` of an earlier commit) each model is also
served by that tree's code, measured in the same interleaved rounds. The load generator is a
keep-alive asyncio client with prebuilt request bytes, so it costs far less per request than
the server; it still shares the 2 vCPUs with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "Binance_BTCUSDT_1h.csv"
SYMBOL, TIMEFRAME = "BTC/USDT", "1h"
THROUGHPUT_TARGET = 0.5
P50_TARGET_MS = 3.0


def hello_app() -> FastAPI:
    """The reference: the smallest useful FastAPI endpoint."""
    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    return app


# ------------------------------------------------------------------------------ models
def load_candles(data: Path) -> Any:
    """Cleaned candles from `data`, or 20,000 synthetic ones when the file is missing."""
    from core.settings import QualitySettings
    from data.files import read_candle_file
    from data.quality import clean_candles

    if not data.is_file():
        from tests.factories import make_ohlcv

        print(f"{data} not found: using 20,000 synthetic candles")
        return make_ohlcv(20_000, seed=7)
    raw = read_candle_file(data)
    return clean_candles(raw.frame, timeframe=TIMEFRAME, cfg=QualitySettings()).frame


def train_models(root: Path, algorithms: list[str], data: Path) -> dict[str, str]:
    """Train each algorithm once (one walk-forward fold) into `root/models`; ids by algorithm."""
    from ml.workflow import train_model

    settings = make_settings(root)
    candles = load_candles(data)
    ids = {}
    for algorithm in algorithms:
        started = time.perf_counter()
        outcome = train_model(
            candles, settings, symbol=SYMBOL, timeframe=TIMEFRAME, algorithm=algorithm
        )
        ids[algorithm] = outcome.model_id
        print(f"trained {outcome.model_id} in {time.perf_counter() - started:.1f} s")
    return ids


def make_settings(root: Path) -> Any:
    from core.settings import load_settings

    return load_settings(write_config(root))


def write_config(root: Path) -> Path:
    """config.yaml for the benchmark server: working paths under `root`, no rate limit."""
    config = {
        "ml": {"registry_dir": str(root / "models"), "walk_forward": {"max_folds": 1}},
        "data": {"cache_dir": str(root / "cache")},
        "backtest": {"reports_dir": str(root / "reports")},
        "storage": {"db_url": f"sqlite:///{root / 'bench.db'}"},
        "api": {"rate_limit": None},
        "logging": {"level": "WARNING"},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def promote(root: Path, model_id: str) -> None:
    from ml.registry import promote_model

    promote_model(root / "models", model_id)


# ------------------------------------------------------------------------------ servers
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def uvicorn_server(
    target: str,
    *,
    workers: int,
    ready_path: str,
    env: dict[str, str] | None = None,
    code: Path = REPO,
) -> Iterator[int]:
    """Run `python -m uvicorn TARGET --factory` on a free port until the block ends, importing
    the project from `code` (the working directory comes first on `sys.path`)."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", target, "--factory", "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers), "--no-access-log",
               "--log-level", "warning"]  # fmt: skip
    process = subprocess.Popen(command, cwd=code, env={**os.environ, **(env or {})})
    try:
        _wait_ready(port, ready_path, process)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_ready(port: int, path: str, process: subprocess.Popen[bytes]) -> None:
    request = build_request("GET", path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            status, _ = RawClient(port).send(request)
            if status < 500:
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server on port {port} not ready after 60 s")


# ------------------------------------------------------------------------------ client
def build_request(
    method: str, path: str, body: bytes = b"", content_type: str = "", accept: str = ""
) -> bytes:
    """HTTP/1.1 keep-alive request bytes."""
    headers = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: keep-alive"]
    if accept:
        headers.append(f"Accept: {accept}")
    if body or method == "POST":
        headers += [f"Content-Type: {content_type or 'application/json'}",
                    f"Content-Length: {len(body)}"]  # fmt: skip
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise RuntimeError(f"response without Content-Length: {head[:200]!r}")


class RawClient:
    """A blocking keep-alive HTTP client (TCP_NODELAY) for one connection."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def send(self, request: bytes) -> tuple[int, bytes]:
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = _content_length(head)
        chunks, size = [rest], len(rest)
        while size < length:
            chunk = self._recv()
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
        self.buffer = data[length:]
        return int(head.split(b" ", 2)[1]), data[:length]

    def _recv(self) -> bytes:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("server closed the connection")
        return chunk

    def close(self) -> None:
        self.sock.close()


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Throughput and latency of one load point."""

    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


async def _connection(port: int, request: bytes, stop_at: float, latencies: list[float]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    errors = 0
    while time.perf_counter() < stop_at:
        started = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(_content_length(head))
        latencies.append(time.perf_counter() - started)
        errors += not head.startswith(b"HTTP/1.1 200")
    writer.close()
    return errors


async def _load(port: int, request: bytes, concurrency: int, seconds: float) -> LoadResult:
    latencies: list[float] = []
    warm_stop = time.perf_counter() + min(1.0, seconds / 4)
    await asyncio.gather(*(_connection(port, request, warm_stop, []) for _ in range(concurrency)))
    started = time.perf_counter()
    stop_at = started + seconds
    errors = await asyncio.gather(
        *(_connection(port, request, stop_at, latencies) for _ in range(concurrency))
    )
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return LoadResult(
        requests_per_second=len(ordered) / elapsed,
        p50_ms=1000 * statistics.median(ordered),
        p99_ms=1000 * ordered[int(0.99 * (len(ordered) - 1))],
        errors=sum(errors),
    )


def run_load(port: int, request: bytes, *, concurrency: int, seconds: float) -> LoadResult:
    """Closed-loop load: `concurrency` connections, each sending as soon as it has an answer."""
    return asyncio.run(_load(port, request, concurrency, seconds))


# ------------------------------------------------------------------------------ main
def serving_root(root: Path, algorithm: str, model_id: str) -> Path:
    """A registry of its own per served model (one current model per server), with config."""
    import shutil

    served = root / algorithm
    (served / "models").mkdir(parents=True)
    shutil.copytree(root / "models" / model_id, served / "models" / model_id)
    promote(served, model_id)
    write_config(served)
    return served


def predict_request(root: Path, model_id: str) -> bytes:
    from ml.registry import read_manifest

    manifest = read_manifest(root / "models", model_id)
    features = {name: (low + high) / 2 for name, (low, high) in manifest.feature_ranges.items()}
    return build_request("POST", "/predict", json.dumps({"features": features}).encode())


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="candle file (1h)")
    parser.add_argument("--models", default="logreg,lightgbm", help="comma-separated names")
    parser.add_argument("--concurrency", default="1,16", help="comma-separated connections")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (all servers)")
    parser.add_argument(
        "--baseline", type=Path, default=None, help="also serve each model from this code tree"
    )
    return parser.parse_args()


@dataclass(frozen=True, slots=True)
class Target:
    """One server and the request sent to it."""

    label: str
    port: int
    request: bytes


def measure(targets: list[Target], levels: list[int], *, rounds: int, seconds: float) -> dict:
    """Round-robin over targets within each round, so drifting machine load hits all alike."""
    results: dict[tuple[str, int], list[LoadResult]] = {}
    for _ in range(rounds):
        for level in levels:
            for target in targets:
                result = run_load(target.port, target.request, concurrency=level, seconds=seconds)
                results.setdefault((target.label, level), []).append(result)
    return results


def summarise(results: dict, labels: list[str], levels: list[int]) -> tuple[list[str], bool]:
    """Table rows (medians over rounds; ratio = median of per-round ratios) and the verdict."""
    rows, passed = [], True
    for label in labels:
        for level in levels:
            runs, hello = results[(label, level)], results[("hello-world", level)]
            ratios = [
                r.requests_per_second / h.requests_per_second
                for r, h in zip(runs, hello, strict=True)
            ]
            ratio, p50 = statistics.median(ratios), statistics.median(r.p50_ms for r in runs)
            rps = statistics.median(r.requests_per_second for r in runs)
            errors = sum(r.errors for r in runs)
            rows.append(
                f"{label:<22} {level:>3} {rps:>9,.0f} {p50:>8.2f}"
                f" {statistics.median(r.p99_ms for r in runs):>8.2f} {errors:>6} {ratio:>8.2f}"
            )
            if label != "hello-world":
                passed &= ratio >= THROUGHPUT_TARGET and errors == 0
                passed &= level != 1 or p50 <= P50_TARGET_MS
    return rows, passed


def main() -> int:
    args = _parse_args()
    levels = [int(level) for level in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp, ExitStack() as servers:
        root = Path(tmp)
        ids = train_models(root, args.models.split(","), args.data)
        port = servers.enter_context(
            uvicorn_server("benchmarks.api_predict:hello_app", workers=args.workers,
                           ready_path="/hello")
        )  # fmt: skip
        targets = [Target("hello-world", port, build_request("GET", "/hello"))]
        codes = {"": REPO} | ({" base": args.baseline.resolve()} if args.baseline else {})
        for algorithm, model_id in ids.items():
            served = serving_root(root, algorithm, model_id)
            env = {"CRYPTOPRED_CONFIG": str(served / "config.yaml")}
            for suffix, code in codes.items():
                port = servers.enter_context(
                    uvicorn_server("api.app:create_app", workers=args.workers,
                                   ready_path="/features", env=env, code=code)
                )  # fmt: skip
                request = predict_request(root, model_id)
                targets.append(Target(f"/predict {algorithm}{suffix}", port, request))
        results = measure(targets, levels, rounds=args.rounds, seconds=args.seconds)
    rows, passed = summarise(results, [t.label for t in targets], levels)
    print(
        f"\nuvicorn workers={args.workers}, 127.0.0.1, medians of {args.rounds} interleaved rounds"
        f" x {args.seconds:g} s per point"
    )
    print(
        f"{'endpoint':<22} {'c':>3} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} vs hello"
    )
    print("\n".join(rows))
    verdict = "PASS" if passed else "FAIL"
    print(f"\n{verdict}: targets req/s >= {THROUGHPUT_TARGET:.0%} of hello-world, p50 <= "
          f"{P50_TARGET_MS} ms at c=1")  # fmt: skip
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
