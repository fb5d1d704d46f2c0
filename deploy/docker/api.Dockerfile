# syntax=docker/dockerfile:1.7
# stepwise-api image. Build from the repository root (the uv workspace):
#   docker build -f deploy/docker/api.Dockerfile -t stepwise/api .
ARG PYTHON_IMAGE=python:3.11-slim
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# ---- build: resolve from the one workspace lock into /app/.venv -------------------------------
FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
# Bytecode compiled at build time (the runtime root filesystem is read-only); files copied, not
# hard-linked, because the cache mount is gone after the build; the image's own interpreter only.
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Layer 1, third-party dependencies only: the lock and every member's pyproject.toml (`--locked`
# checks the whole workspace against uv.lock). Source edits do not invalidate this layer.
COPY pyproject.toml uv.lock ./
COPY libs/contract/pyproject.toml libs/contract/
COPY libs/cli/pyproject.toml libs/cli/
COPY libs/devkit/pyproject.toml libs/devkit/
COPY libs/example-plugin/pyproject.toml libs/example-plugin/
COPY services/api/pyproject.toml services/api/
COPY services/worker/pyproject.toml services/worker/
COPY services/event-router/pyproject.toml services/event-router/
COPY services/sweeper/pyproject.toml services/sweeper/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-workspace --package stepwise-api
# Layer 2, the service and the contract it imports, installed as wheels (no source tree needed).
COPY libs/contract libs/contract
COPY services/api services/api
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --package stepwise-api

# ---- runtime: the interpreter and the venv, nothing else --------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 stepwise \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin stepwise
# Owned by root: the service user can read and run the code, never change it.
COPY --from=build /app/.venv /app/.venv
ENV PATH="/app/.venv/bin:${PATH}" PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
USER 10001:10001
EXPOSE 8080
# slim has no curl: probe with the interpreter. The port follows STEPWISE_API_PORT like the service.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('STEPWISE_API_PORT', '8080') + '/healthz', timeout=2)"]
# The service stops taking work on SIGTERM and exits 0 (SPEC §1); exec form keeps python PID 1 so
# the signal reaches it directly.
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "stepwise_api"]
