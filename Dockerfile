# syntax=docker/dockerfile:1
# loanbilling gRPC server image. See docs/operations.md for the whole procedure.
#
#   docker build -t loanbilling:0.1.0 .
#   docker run --rm -e LOANBILLING_DATABASE_URL=postgresql://... loanbilling:0.1.0 migrate
#   docker run -d -p 50051:50051 --stop-timeout 30 \
#     -v "$PWD/tls:/etc/loanbilling/tls:ro" -v "$PWD/tokens.json:/etc/loanbilling/tokens.json:ro" \
#     -e LOANBILLING_DATABASE_URL=postgresql://... \
#     -e LOANBILLING_TLS_CERT_FILE=/etc/loanbilling/tls/tls.crt \
#     -e LOANBILLING_TLS_KEY_FILE=/etc/loanbilling/tls/tls.key \
#     -e LOANBILLING_AUTH_TOKENS_FILE=/etc/loanbilling/tokens.json \
#     loanbilling:0.1.0
#
# `serve` listens on 0.0.0.0:50051 and, like outside a container, refuses to
# serve plaintext there: give it TLS files, or LOANBILLING_PLAINTEXT=true behind
# a TLS-terminating proxy or mesh. Migrations are a command of their own
# (`migrate`), run once before the servers start; `sweep` is for cron.

ARG PYTHON_IMAGE=python:3.11-slim-trixie

# --- build: the project and its pinned dependencies in a venv ------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

# A venv without pip or setuptools: the image's pip installs into it from outside,
# so the runtime stage gets no package tools.
RUN python -m venv --without-pip /opt/venv
WORKDIR /src
# Dependencies first: this layer is reused until the pins change.
COPY deploy/image-requirements.txt ./
RUN python -m pip --python /opt/venv/bin/python install --no-cache-dir \
        --requirement image-requirements.txt
# .dockerignore lets in only what these steps need.
COPY pyproject.toml README.md ./
COPY generated/ generated/
COPY loanbilling/ loanbilling/
RUN python -m pip --python /opt/venv/bin/python install --no-cache-dir --no-deps .

# --- runtime: the venv, the health check, a non-root user ---------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="loanbilling" \
      org.opencontainers.image.description="Loan billing engine for weekly microloans, served over gRPC" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LOANBILLING_LISTEN=0.0.0.0:50051 \
    LOANBILLING_DATABASE_URL=sqlite:////data/loanbilling.db

RUN groupadd --system --gid 10001 loanbilling \
    && useradd --system --no-log-init --uid 10001 --gid loanbilling \
        --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin loanbilling \
    && mkdir /data \
    && chown loanbilling:loanbilling /data

COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 deploy/healthcheck.py /usr/local/bin/loanbilling-healthcheck

# Numeric, so that runtimes can verify runAsNonRoot.
USER 10001:10001
# SQLite (the default URL) keeps its file here: mount a volume. PostgreSQL needs none.
WORKDIR /data
EXPOSE 50051

# grpc.health.v1 over the server's own transport: plaintext or TLS (and mutual
# TLS), found from the server's flags and LOANBILLING_* variables. Docker only;
# Kubernetes uses its own probes (deploy/kubernetes/deployment.yaml).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["loanbilling-healthcheck"]

ENTRYPOINT ["loanbilling"]
CMD ["serve"]
