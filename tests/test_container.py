"""Static checks of the container files (no Docker engine here; hadolint runs in `make lint`)."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "data", "storage", "ml", "strategy", "backtests", "bot", "api", "cli")


def test_dockerfile_copies_every_package_and_runs_as_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    for package in PACKAGES:
        assert re.search(rf"^COPY {package} {package}$", text, re.MULTILINE), package
    assert text.count("FROM python:3.11-slim") == 2  # build stage + runtime stage
    assert re.search(r"^USER 10001$", text, re.MULTILINE)
    assert 'ENTRYPOINT ["cryptopred"' in text
    assert "HEALTHCHECK" in text and "/health" in text
    assert 'VOLUME ["/app/var"]' in text


def test_compose_api_and_bot_share_the_var_volume() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert services["api"]["command"][0] == "serve"
    assert services["bot"]["command"] == ["live"]
    assert services["postgres"]["profiles"] == ["postgres"]
    for name in ("api", "bot"):
        assert "cryptopred-var:/app/var" in services[name]["volumes"]
