# order-ingest: one image for `ingest serve` (LMTP + milter + HTTP), `ingest worker`
# and the operator commands, behind Postfix (deploy/postfix/, compose.yaml).
# INGEST_ENV=production refuses the embedded defaults: set INGEST_DATABASE_URL,
# INGEST_OBJECT_STORE_URL and INGEST_QUEUE_URL at run time; nothing secret is in here.
#
# BASE_IMAGE: python:3.12-slim for users; CI builds on a Debian bookworm image of its
# own (Debian's Python 3.11), made with debootstrap (docs/containers.md). Both stages
# use it, so the virtualenv's interpreter path is the same in each.
ARG BASE_IMAGE=python:3.12-slim

# --- build: wheels of the pinned dependencies and of the project; the virtualenv ------
FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_NO_INPUT=1
WORKDIR /src
# Virtualenvs on both bases: Debian's python3 refuses pip outside one (PEP 668).
# requirements.lock is `just lock`'s export of uv.lock: every package pinned and
# hashed, so pip refuses anything else. The few that PyPI ships only as source are
# built here with setuptools from requirements-build.lock (hashed too), in a venv of
# its own, without build isolation (which would fetch unpinned build tools).
COPY requirements.lock requirements-build.lock ./
RUN python3 -m venv /opt/buildtools \
    && /opt/buildtools/bin/pip install --require-hashes --no-deps -r requirements-build.lock \
    && /opt/buildtools/bin/pip wheel --require-hashes --no-deps --no-build-isolation \
        --wheel-dir /wheels -r requirements.lock
COPY pyproject.toml README.md ./
COPY ingest_core ./ingest_core
COPY lmtpd ./lmtpd
RUN /opt/buildtools/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
    && python3 -m venv /opt/ingest \
    && /opt/ingest/bin/pip install --no-index --no-deps /wheels/*.whl \
    && /opt/ingest/bin/pip uninstall --yes pip

# --- runtime: the virtualenv and nothing to build with; non-root ----------------------
FROM ${BASE_IMAGE} AS runtime
RUN groupadd --gid 10001 ingest \
    && useradd --uid 10001 --gid 10001 --no-create-home \
        --home-dir /var/lib/ingest --shell /usr/sbin/nologin ingest \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/ingest
COPY --from=build /opt/ingest /opt/ingest

ENV PATH=/opt/ingest/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    INGEST_ENV=production \
    INGEST_DATA_DIR=/var/lib/ingest \
    INGEST_LMTP_LISTEN=0.0.0.0:24 \
    INGEST_MILTER_LISTEN=0.0.0.0:8890 \
    INGEST_HTTP_LISTEN=0.0.0.0:9325
WORKDIR /var/lib/ingest
USER 10001:10001

# Port 24 as non-root needs net.ipv4.ip_unprivileged_port_start=0 in the container:
# Docker 20.10+ sets it; podman does not (compose.yaml sets it for both; with plain
# podman pass --sysctl net.ipv4.ip_unprivileged_port_start=0, or listen on 2424).
# 9325: /healthz, /readyz, /metrics, without authentication: keep it on a private
# network. The tenant API (INGEST_API_LISTEN) stays on the loopback unless given TLS.
EXPOSE 24 8890 9325

# For `ingest serve`; a worker container has no LMTP listener (compose.yaml gives it
# a check of its own).
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["ingest", "healthcheck"]
CMD ["ingest", "serve"]
