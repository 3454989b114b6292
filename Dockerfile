FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --create-home --uid 1000 app
WORKDIR /app
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
RUN pip install --no-cache-dir . && mkdir -p /app/var && chown app:app /app/var
USER app
VOLUME ["/app/var"]
ENTRYPOINT ["cryptopred"]
CMD ["--help"]
