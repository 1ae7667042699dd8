# syntax=docker/dockerfile:1
# The MAC sidecar image: a wheel built and installed into a virtualenv in the builder stage;
# the final stage holds only that virtualenv on python:3.11-slim and runs as a non-root user
# with nothing to write (a read-only root filesystem works; Kubernetes mounts /tmp).
#
#   docker build -t mac-sidecar:0.1.0 --build-arg VERSION=0.1.0 \
#     --build-arg REVISION=$(git rev-parse HEAD) --build-arg CREATED=$(date -u +%FT%TZ) .
#   docker run --rm -p 50051:50051 -e MAC_REDIS_URL=redis://host:6379/0 \
#     -e MAC_IDENTITY_SECRET=$(openssl rand -hex 32) -e MAC_ADMIN_TOKEN=$(openssl rand -hex 24) \
#     --read-only mac-sidecar:0.1.0
# (without an admin token it refuses to start: its Admin service would listen on 0.0.0.0)

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src
# uv, pinned by hash, then exactly the runtime packages of uv.lock (the same lock `make install`
# installs) with the native extra (the opt-in MAC_GRPC_ENGINE=native), the service itself
# built as a wheel into /opt/venv.
COPY tools/uv/requirements.txt ./tools/uv/requirements.txt
RUN python -m pip install --require-hashes --no-deps -r tools/uv/requirements.txt
# Only what the wheel is built from (see .dockerignore).
COPY pyproject.toml uv.lock README.md ./
COPY sidecar ./sidecar
RUN uv sync --locked --no-dev --extra native --no-editable --compile-bytecode --python /usr/local/bin/python \
    && /opt/venv/bin/sidecar --version

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="mac-sidecar" \
      org.opencontainers.image.description="Monthly Active Contacts enforcement: a low-latency gRPC service backed by Redis" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim"
RUN groupadd --system --gid 10001 mac \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin mac
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MAC_GRPC_ADDR=0.0.0.0:50051 \
    MAC_METRICS_ADDR=0.0.0.0:9464 \
    MAC_LOG_FORMAT=json
# Numeric, so Kubernetes can verify runAsNonRoot.
USER 10001:10001
# 50051 the Enforcer (and health), 50052 the Admin service when MAC_ADMIN_ADDR is set,
# 9464 /metrics, /livez and /readyz.
EXPOSE 50051 50052 9464
STOPSIGNAL SIGTERM
ENTRYPOINT ["sidecar"]
CMD ["serve"]
