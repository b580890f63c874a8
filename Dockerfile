# loanbilling gRPC server.
#   docker build -t loanbilling .
#   docker run --rm -v loanbilling-data:/data loanbilling migrate
#   docker run -d -p 50051:50051 -v loanbilling-data:/data loanbilling
# Set LOANBILLING_DATABASE_URL=postgresql+psycopg2://... to use PostgreSQL.

# --- build: install the project and its dependencies into a venv ------------
FROM python:3.11-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
WORKDIR /src
# .dockerignore lets in only what the package build needs (pyproject.toml,
# README.md, loanbilling/, generated/).
COPY . .
RUN /opt/venv/bin/pip install --no-cache-dir .

# --- runtime -----------------------------------------------------------------
FROM python:3.11-slim AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LOANBILLING_DATABASE_URL=sqlite:////data/loanbilling.db

RUN groupadd --system --gid 10001 loanbilling \
    && useradd --system --no-log-init --uid 10001 --gid loanbilling \
        --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin loanbilling \
    && mkdir /data \
    && chown loanbilling:loanbilling /data

COPY --from=build /opt/venv /opt/venv

# Numeric, so runtimes can verify runAsNonRoot.
USER 10001:10001
WORKDIR /data
VOLUME /data
EXPOSE 50051

ENTRYPOINT ["loanbilling"]
CMD ["serve", "--listen", "0.0.0.0:50051"]
