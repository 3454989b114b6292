# syntax=docker/dockerfile:1
# Multi-stage: build the project's wheel (and its dependencies' wheels), then a slim runtime.
#
# Base image: the tag names the Debian release (bare `python:3.11-slim` moved from bookworm to
# trixie in August 2025, where libgomp1 is 14.x, and broke the apt pin below) and the digest pins
# the exact image, so a rebuild never changes the OS under us. To refresh the digest (security
# fixes; same release), on a machine with Docker:
#   docker buildx imagetools inspect python:3.11-slim-bookworm --format '{{json .Manifest.Digest}}'
# then replace the digest on BOTH `FROM` lines, rebuild and run the tests. Moving to another Debian
# release means changing the tag AND the apt pins together: tests/test_container.py fails on a
# pin that does not belong to the release the `FROM` lines name.
FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91 AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md config.yaml ./
COPY core core
COPY data data
COPY storage storage
COPY ml ml
COPY strategy strategy
COPY backtests backtests
COPY bot bot
COPY api api
COPY cli cli
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91 AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 CRYPTOPRED_CONFIG=/app/config.yaml
# libgomp1: OpenMP runtime that LightGBM and XGBoost wheels load at import time (bookworm: 12.x)
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1=12.* \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 app
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links=/wheels "crypto-predictor==0.1.0" && rm -rf /wheels
WORKDIR /app
COPY --chown=app:app config.yaml /app/config.yaml
RUN mkdir -p /app/var && chown app:app /app/var
USER 10001
VOLUME ["/app/var"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)"]
ENTRYPOINT ["cryptopred", "--config", "/app/config.yaml"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
