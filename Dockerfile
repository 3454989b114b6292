# syntax=docker/dockerfile:1
# Multi-stage: build the project's wheel (and its dependencies' wheels), then a slim runtime.
FROM python:3.11-slim AS build
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

FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 CRYPTOPRED_CONFIG=/app/config.yaml
# libgomp1: OpenMP runtime that LightGBM and XGBoost wheels load at import time
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
