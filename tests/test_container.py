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


# Debian release -> major version of every package the Dockerfile pins with apt (from
# packages.debian.org). A new pin or a new base release needs a row here first.
APT_MAJORS: dict[str, dict[str, int]] = {
    "bullseye": {"libgomp1": 10},
    "bookworm": {"libgomp1": 12},
    "trixie": {"libgomp1": 14},
}
_FROM = re.compile(r"^FROM\s+(\S+)", re.MULTILINE | re.IGNORECASE)
_BASE = re.compile(r"^python:[\d.]+-slim-(?P<release>[a-z]+)@sha256:[0-9a-f]{64}$")
_PIN = re.compile(r"(?<![\w-])(?P<package>[a-z0-9][a-z0-9.+-]*)=(?P<version>[^\s'\"]+)")
_MAJOR = re.compile(r"^(?:\d+:)?(\d+)")  # an optional epoch, then the upstream major


def _stages(text: str) -> list[tuple[str, str]]:
    """(image reference, instructions) per stage; continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    starts = [(m.start(), m.group(1)) for m in _FROM.finditer(joined)]
    ends = [start for start, _ in starts[1:]] + [len(joined)]
    return [(image, joined[start:end]) for (start, image), end in zip(starts, ends, strict=True)]


def apt_pin_problems(text: str) -> list[str]:
    """What is wrong with the base images and apt pins of a Dockerfile (empty: nothing)."""
    problems = []
    for image, body in _stages(text):
        base = _BASE.match(image)
        if base is None or base["release"] not in APT_MAJORS:
            problems.append(
                f"{image}: name a Debian release ({', '.join(APT_MAJORS)}) and a digest"
            )
            continue
        majors = APT_MAJORS[base["release"]]
        installs = re.findall(r"apt-get install[^&;]*", body)
        for pin in (m for install in installs for m in _PIN.finditer(install)):
            expected = majors.get(pin["package"])
            major = _MAJOR.match(pin["version"])
            if expected is None or major is None or int(major.group(1)) != expected:
                problems.append(
                    f"{pin.group(0)}: {base['release']} ships {pin['package']} {expected}.x"
                )
    return problems


def test_dockerfile_apt_pins_belong_to_the_release_the_base_image_names() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert apt_pin_problems(text) == []
    images = {image for image, _ in _stages(text)}
    assert len(images) == 1, f"build and runtime stages differ: {images}"
    assert "apt-get install" in text  # the check above did look at a pin


def test_apt_pin_check_catches_a_floating_base_and_a_release_mismatch() -> None:
    install = "RUN apt-get update \\\n    && apt-get install -y --no-install-recommends \\\n"
    install += "    libgomp1=12.*\n"
    digest = "@sha256:" + "0" * 64
    assert apt_pin_problems(f"FROM python:3.11-slim AS runtime\n{install}")  # the old file
    trixie = apt_pin_problems(f"FROM python:3.11-slim-trixie{digest}\n{install}")
    assert trixie == ["libgomp1=12.*: trixie ships libgomp1 14.x"]
    assert apt_pin_problems(f"FROM python:3.11-slim-bookworm\n{install}")  # no digest
    assert apt_pin_problems(f"FROM python:3.11-slim-bookworm{digest}\n{install}") == []


def test_compose_trains_first_in_a_one_shot_service_and_the_readme_says_so() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    train = compose["services"]["train"]
    assert train["command"] == ["train"] and train["restart"] == "no"
    assert train["profiles"] == ["setup"]  # never started by a plain `docker compose up`
    assert "cryptopred-var:/app/var" in train["volumes"]
    assert "profiles" not in compose["services"]["bot"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert 0 <= readme.index("docker compose run --rm train") < readme.index("docker compose up")
