"""The install the Docker image performs works: wheel -> fresh venv outside the repo -> run it.

Catches templates, static files and migrations missing from the wheel. The fresh venv gets the
project ONLY from the wheel; third-party packages come from the test venv through a .pth line
(pip would otherwise download ~1 GB per run), which does not expose the editable checkout.
"""

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.factories import make_ohlcv

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(args: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _copy_sources(target: Path) -> Path:
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for name in files:
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    return target


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    work = tmp_path_factory.mktemp("wheel-install")
    dist = work / "dist"
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    pip = [sys.executable, "-m", "pip"]
    source = _copy_sources(work / "src")  # a clean tree: no stale build/ from earlier builds
    _run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(source)],
        cwd=work,
        env=env,
    )
    (wheel,) = dist.glob("crypto_predictor-*.whl")
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=work, env=env)
    python = venv / "bin" / "python"
    site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            cwd=work,
            env=env,
        ).strip()
    )
    (site / "_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(
        [*pip, "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        cwd=work,
        env=env,
    )
    return venv, env


def test_wheel_install_imports_project_from_the_wheel(installed: tuple[Path, dict]) -> None:
    venv, env = installed
    where = _run(
        [str(venv / "bin" / "python"), "-c", "import api, storage; print(api.__file__)"],
        cwd=venv.parent,
        env=env,
    )
    assert str(venv) in where and str(ROOT) not in where
    assert "backtest" in _run(
        [str(venv / "bin" / "cryptopred"), "--help"], cwd=venv.parent, env=env
    )


def test_wheel_install_runs_backtest_and_serve(installed: tuple[Path, dict]) -> None:
    venv, env = installed
    work = venv.parent / "run"
    work.mkdir()
    candles = make_ohlcv(2400, seed=3).reset_index()
    candles["timestamp"] = candles["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    candles.to_csv(work / "candles.csv", index=False)
    config = {
        "ml": {
            "model": {"algorithm": "logreg"},
            "walk_forward": {"train_bars": 800, "validation_bars": 200, "step_bars": 400},
        },
        "backtest": {"models": ["logreg"]},
        "logging": {"level": "WARNING"},
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    cli = str(venv / "bin" / "cryptopred")
    out = _run([cli, "backtest", "--data", "candles.csv"], cwd=work, env=env)
    report = Path(out.strip().splitlines()[-1])
    assert report.is_file() and report.name == "report.html"
    assert (work / "var" / "cryptopred.db").is_file()  # migrations shipped and applied
    _run([cli, "train", "--data", "candles.csv"], cwd=work, env=env)
    _check_serve(cli, work, env)


def test_wheel_install_ships_the_sample_and_runs_on_it_offline(
    installed: tuple[Path, dict],
) -> None:
    # `make run` outside the repository, without internet: the wheel's sample is the data.
    venv, env = installed
    python, cli = str(venv / "bin" / "python"), str(venv / "bin" / "cryptopred")
    probe = "from data.samples import BTC_USDT_1H as s; print(s.path, s.path.is_file())"
    where = _run(
        [python, "-c", probe],
        cwd=venv.parent,
        env=env,
    ).split()
    assert where[0].startswith(str(venv)) and where[1] == "True"
    assert (Path(where[0]).parent / "README.md").is_file()
    work = venv.parent / "sample-run"
    work.mkdir()
    config = {
        "exchange": {"base_url": f"http://127.0.0.1:{_free_port()}", "timeout_ms": 500},
        "ml": {
            "model": {"algorithm": "logreg"},
            "walk_forward": {"train_bars": 800, "validation_bars": 200, "step_bars": 400},
        },
        "backtest": {"models": ["logreg"], "start": "2021-03-01"},
        "logging": {"level": "WARNING"},
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    out = _run([cli, "backtest"], cwd=work, env=env)
    assert "Data: bundled sample BTC/USDT 1h" in out
    assert Path(out.strip().splitlines()[-1]).is_file()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - local URL
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _check_serve(cli: str, work: Path, env: dict[str, str]) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [cli, "serve", "--port", str(port)],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                status, body = _get(f"{base}/health")
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("cryptopred serve did not answer /health")
        assert status in {200, 503} and b"model" in body  # 503: no bot heartbeat yet
        status, page = _get(f"{base}/")
        assert status == 200 and b"plotly.min.js" in page
        assert _get(f"{base}/static/plotly.min.js")[0] == 200
        assert _get(f"{base}/static/dashboard.js")[0] == 200
    finally:
        server.terminate()
        server.wait(timeout=10)
