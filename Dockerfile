# order-ingest: `ingest serve` (LMTP + milter) for production, behind Postfix
# (see deploy/postfix/). INGEST_ENV=production refuses the embedded defaults:
# set INGEST_DATABASE_URL, INGEST_OBJECT_STORE_URL and INGEST_QUEUE_URL at run time.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 ingest \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /var/lib/ingest ingest

WORKDIR /src
COPY pyproject.toml README.md ./
COPY ingest_core ./ingest_core
COPY lmtpd ./lmtpd
# Installed the way the README installs it, without the dev extra.
RUN pip install --no-cache-dir . && rm -rf /src

WORKDIR /var/lib/ingest
USER 10001:10001

# Port 24 without root: Docker 20.10+ sets net.ipv4.ip_unprivileged_port_start=0
# inside containers, so an unprivileged process may bind ports below 1024.
# (On older engines or other runtimes, set that sysctl or listen on 2424.)
ENV INGEST_ENV=production \
    INGEST_DATA_DIR=/var/lib/ingest \
    INGEST_LMTP_LISTEN=0.0.0.0:24 \
    INGEST_MILTER_LISTEN=0.0.0.0:8890 \
    INGEST_HTTP_LISTEN=0.0.0.0:9325
# 9325: /healthz, /readyz, /metrics (no authentication: keep it on a private network)
EXPOSE 24 8890 9325

HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["ingest", "healthcheck"]
CMD ["ingest", "serve"]
