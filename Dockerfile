# One image per service, from this one file. Build from the repository root (the uv workspace)
# with the service's name and port, as docker-compose.yml does:
#   docker build --build-arg SERVICE=users --build-arg PORT=8002 -t gatehouse-users .
# Stages: "build" resolves the frozen lock into a virtualenv with uv; the final stage is the bare
# Python image plus that virtualenv, run by an unprivileged numeric user.
ARG PYTHON_IMAGE=python:3.12-slim

FROM ${PYTHON_IMAGE} AS build
ARG SERVICE
ARG UV_VERSION=0.13.9
RUN test -n "${SERVICE}" || { echo "build arg SERVICE (auth, users or gateway) is required" >&2; exit 1; }
RUN pip install --no-cache-dir --root-user-action=ignore "uv==${UV_VERSION}"
# The image's own interpreter, never a downloaded one: the final stage has only that interpreter,
# and the venv's symlinks must point at it. Non-editable installs put the workspace packages
# inside the venv, so the final stage needs no source tree.
ENV UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=python3 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_EDITABLE=1 \
    UV_FROZEN=1
WORKDIR /src
# Dependencies first, from the lock and every member's metadata (uv validates the whole
# workspace), so a source change does not reinstall them.
COPY pyproject.toml uv.lock ./
COPY libs/common/pyproject.toml libs/common/
COPY libs/testing/pyproject.toml libs/testing/
COPY services/auth/pyproject.toml services/auth/
COPY services/users/pyproject.toml services/users/
COPY services/gateway/pyproject.toml services/gateway/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --no-dev --package "gatehouse-${SERVICE}" --no-install-workspace
COPY libs/common libs/common
COPY services/${SERVICE} services/${SERVICE}
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --no-dev --package "gatehouse-${SERVICE}"
# Configuration that lives beside the package goes to /app: users' alembic.ini, for the
# migration step (`alembic -c /app/alembic.ini upgrade head`); the migrations ship inside it.
RUN mkdir /app && find "services/${SERVICE}" -maxdepth 1 -name '*.ini' -exec cp {} /app/ \;

FROM ${PYTHON_IMAGE}
ARG SERVICE
ARG PORT
RUN test -n "${PORT}" || { echo "build arg PORT is required" >&2; exit 1; }
RUN groupadd --system --gid 10001 gatehouse \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin gatehouse
# Same path as in the build stage: the venv's scripts carry it in their shebangs.
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
# WEB_CONCURRENCY is read by uvicorn itself: one worker unless told otherwise (scale with
# replicas). uvicorn believes no X-Forwarded-* header at all (gatehouse_common.server).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    WEB_CONCURRENCY=1 \
    GATEHOUSE_SERVICE=${SERVICE} \
    GATEHOUSE_PORT=${PORT}
USER 10001:10001
EXPOSE ${PORT}
# `exec` makes the server PID 1, so it gets SIGTERM itself and drains in-flight requests.
CMD ["sh", "-c", "exec python -m \"gatehouse_${GATEHOUSE_SERVICE}\" --host 0.0.0.0 --port \"${GATEHOUSE_PORT}\""]
